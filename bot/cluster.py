"""The bot processes' side of a cluster: /train queued in the store for the coordinator, followed from there."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import asdict, fields, replace
from typing import TYPE_CHECKING

from core import Progress

if TYPE_CHECKING:
    from datetime import datetime

    from .training.trainings import Display, Ticket

log = logging.getLogger(__name__)


_PROGRESS_FIELDS = {f.name for f in fields(Progress)}


def job_runner(settings):
    """The runner for jobs this process runs itself: a local process per job (default), or tasks on Ray."""
    from core import LocalProcessRunner, RayRunner

    return RayRunner(settings.ray) if settings.job_runner == "ray" else LocalProcessRunner()


def progress_json(progress: Progress, **extra) -> str:
    """The report as stored; `extra` keys (ended_at: when the runner returned, Unix time) ride along."""
    return json.dumps({**asdict(progress), **extra})


def progress_from_json(text: str | None) -> Progress | None:
    """The stored report, or None when there is none yet (or it was written by another version of Progress)."""
    if not text:
        return None
    try:
        data = json.loads(text)
        return Progress(**{k: v for k, v in data.items() if k in _PROGRESS_FIELDS})
    except (ValueError, TypeError):
        return None


class ClusterTraining:
    """/train in cluster mode: the job is queued in the store for the coordinator and followed from there.

    It is the cogs' bot.training.trainings.Trainings, like the training queue, but starts nothing itself:
    the coordinator trains and publishes; this process shows the place in line and the progress it reads
    back, and, when the job ends, swaps in the new model and reports it. A
    restarted process follows its servers' unfinished jobs again (`follow_unfinished`), so a bot
    process that dies loses no training.
    """

    def __init__(self, store, models, settings, corpus, channel_display=None, served_guilds=lambda: ()) -> None:
        self.store, self.models, self.settings, self.corpus = store, models, settings, corpus
        self.channel_display = channel_display  # where a job found after a restart shows its progress
        self.served_guilds = served_guilds  # the servers this process holds (discord.Guild objects)
        self._tickets: dict[int, Ticket] = {}  # server -> the job followed
        self._places: dict[int, int] = {}  # job id -> place in line (0: training)
        self._submitting: set[int] = set()
        self._tasks: set[asyncio.Task] = set()

    # --- asking
    def ticket(self, guild_id: int) -> Ticket | None:
        return self._tickets.get(guild_id)

    def place(self, ticket: Ticket) -> int:
        return self._places.get(ticket.record.id, 0)

    def busy(self, guild_id: int) -> bool:
        return guild_id in self._tickets or guild_id in self._submitting

    # --- submitting
    async def submit(
        self,
        guild_id: int,
        guild_name: str,
        requested_by: int,
        channel_id: int | None,
        epochs: int | None = None,
        display: Display | None = None,
    ) -> Ticket:
        """Queue a training for the coordinator; refuses a second one and a corpus too small."""
        from core import check_corpus_size

        from .storage.base import UNFINISHED
        from .text import safe
        from .training import messages
        from .training.messages import HOW_TO_ADD_TEXT
        from .training.trainings import AlreadyTraining, Ticket

        if self.busy(guild_id):
            raise AlreadyTraining("this server's model is already queued or training; wait for that run to finish")
        self._submitting.add(guild_id)  # claimed before the first await: two requests cannot both pass
        try:
            last = await self.store.last_job(guild_id)
            if last is not None and last.status in UNFINISHED:
                raise AlreadyTraining("this server's model is already queued or training; wait for that run to finish")
            tokens = await self.corpus.tokens(guild_id)
            check_corpus_size(tokens, HOW_TO_ADD_TEXT)
            epochs = min(epochs or self.settings.train_options.epochs, self.settings.max_epochs)
            record = await self.store.add_job(guild_id, requested_by, channel_id, epochs, tokens)
            ticket = Ticket(record, safe(guild_name), display)
            place = self._places[record.id] = len(
                [j for j in await self.store.unfinished_jobs() if j.status == "queued"]
            )
            text = messages.queued(ticket.guild_name, place, self.settings.max_training_jobs)
            await self._show(ticket, text)  # before the command's answer is sent: it is that answer
            self._follow(ticket, shown=text)
        finally:
            self._submitting.discard(guild_id)
        return ticket

    async def follow_unfinished(self) -> int:
        """Follow the unfinished jobs of the servers this process holds that it does not follow yet (on_ready)."""
        from .text import safe
        from .training.trainings import Ticket

        names = {guild.id: guild.name for guild in self.served_guilds()}
        found = 0
        for record in await self.store.unfinished_jobs():
            if record.guild_id in names and not self.busy(record.guild_id):
                display = (
                    self.channel_display(record.channel_id) if self.channel_display and record.channel_id else None
                )
                self._follow(Ticket(record, safe(names[record.guild_id]), display))
                found += 1
        return found

    def _follow(self, ticket, shown: str | None = None) -> None:
        self._tickets[ticket.guild_id] = ticket
        task = asyncio.create_task(self._watch(ticket, shown), name=f"follow-job-{ticket.record.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # --- following
    async def _watch(self, ticket, shown: str | None) -> None:
        from .training import messages

        try:
            while True:
                try:
                    record, text = await self._state(ticket)
                except Exception:  # noqa: BLE001 - the store is unreachable for a moment: try again later
                    log.warning("could not read job %s", ticket.record.id, exc_info=True)
                    record, text = ticket.record, None
                ticket.record = record
                if record.status not in ("queued", "running"):
                    break
                if text is not None and text != shown:
                    await self._show(ticket, text)
                    shown = text
                await asyncio.sleep(self.settings.progress_interval_s)
            await self._show(ticket, await self._outcome(ticket, messages))
        finally:
            self._tickets.pop(ticket.guild_id, None)
            self._places.pop(ticket.record.id, None)

    async def _state(self, ticket):
        """(the job as stored now, the text its message should show)."""
        from .training import messages

        record = await self.store.last_job(ticket.guild_id)
        if record is None or record.id != ticket.record.id:  # the server's data was cleared meanwhile
            return replace(ticket.record, status="interrupted"), None
        if record.status == "queued":
            queued = [j.id for j in await self.store.unfinished_jobs() if j.status == "queued"]
            place = queued.index(record.id) + 1 if record.id in queued else 1
            self._places[record.id] = place
            return record, messages.queued(ticket.guild_name, place, self.settings.max_training_jobs)
        self._places[record.id] = 0
        if record.status == "running":
            progress = progress_from_json(await self.store.job_progress(record.id))
            ticket.latest = progress or ticket.latest
            if progress is None:
                return record, messages.starting(ticket.guild_name, automatic=not record.requested_by)
            return record, messages.progress(ticket.guild_name, progress)
        return record, None

    async def _outcome(self, ticket, messages) -> str:
        from .decoding import SAMPLE_WORDS, decoding

        record = ticket.record
        if record.status == "succeeded":
            model = await self._serve_new_model(ticket.guild_id, record.started_at or record.created_at)
            text, _ = await self.corpus.text(ticket.guild_id)
            server = await self.store.guild_settings(ticket.guild_id)
            sample = await messages.sample(
                self.models, ticket.guild_id, text, decoding(self.settings, server, words=SAMPLE_WORDS)
            )
            return messages.succeeded(ticket.guild_name, model.card, sample)
        if record.status == "failed":
            return messages.failed(ticket.guild_name, record.error or "unknown error")
        return messages.interrupted(ticket.guild_name)

    async def _serve_new_model(self, guild_id: int, read_from: datetime):
        """Load the version the coordinator published: its switch is read from the store now, not awaited from
        the watcher (which learns it later, by NOTIFY or poll), so the new model answers from the first request."""
        versions = self.models.versions
        current = await self.store.current_model(guild_id) if versions is not None else None
        if versions is not None and current is not None:
            await versions.catch_up(current)
        return await self.models.reload(guild_id, trained_from=read_from)  # the coordinator read the corpus after it

    @staticmethod
    async def _show(ticket, text: str) -> None:
        if ticket.display is None:
            return
        try:
            await ticket.display.show(text)
        except Exception:  # noqa: BLE001 - a lost progress message must not stop following the job
            log.warning("could not show training progress for guild %s", ticket.guild_id, exc_info=True)

    async def close(self, hand_back: bool = False) -> None:
        """Stop following; the jobs go on in the coordinator, and a restarted process follows them again
        (a stop has nothing to hand back: the coordinator holds the jobs)."""
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
