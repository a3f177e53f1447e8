"""The cogs' side of training: /train queued in the store, each job followed to its outcome in its message."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterable
from dataclasses import asdict, fields, replace
from typing import TYPE_CHECKING

from core import Progress, check_corpus_size

from ..decoding import SAMPLE_WORDS, decoding
from ..storage.base import UNFINISHED
from ..text import safe
from . import messages
from .messages import HOW_TO_ADD_TEXT
from .trainings import AlreadyTraining, Display, Ticket

if TYPE_CHECKING:
    from discord import Guild

    from ..coordinator import Coordinator
    from ..models import ModelService
    from ..server_corpus import ServerCorpus
    from ..settings import BotSettings
    from ..storage import Store, TrainingJobRecord

log = logging.getLogger(__name__)


_PROGRESS_FIELDS = {f.name for f in fields(Progress)}


def progress_json(progress: Progress, **extra) -> str:
    """The report as stored; `extra` keys (notice: what the training found at its start; ended_at: when the
    runner returned, Unix time) ride along."""
    return json.dumps({**asdict(progress), **extra})


def progress_from_json(text: str | None) -> tuple[Progress | None, str]:
    """(the stored report, its notice); None when there is none yet (or it was written by another version of
    Progress)."""
    if not text:
        return None, ""
    try:
        data = json.loads(text)
        return Progress(**{k: v for k, v in data.items() if k in _PROGRESS_FIELDS}), str(data.get("notice", ""))
    except (ValueError, TypeError):
        return None, ""


class JobFollower:
    """The cogs' bot.training.trainings.Trainings: /train adds a queued job to the store, a coordinator trains it,
    and this shows the place in line, the progress and the outcome, read back from the store.

    In local mode the coordinator runs in this process (`coordinator`): a submit starts the job at once, and
    each change it makes wakes the followers, so nothing waits for a poll. In a cluster the coordinator is
    another process and the followers poll the store every progress_interval_s. A restarted process follows
    its servers' unfinished jobs again (`follow_unfinished`), so a bot process that dies loses no training.
    """

    def __init__(
        self,
        store: Store,
        models: ModelService,
        settings: BotSettings,
        corpus: ServerCorpus,
        channel_display: Callable[[int], Display] | None = None,
        served_guilds: Callable[[], Iterable[Guild]] = tuple,
        coordinator: Coordinator | None = None,
    ) -> None:
        self.store, self.models, self.settings, self.corpus = store, models, settings, corpus
        self.channel_display = channel_display  # where a job found after a restart shows its progress
        self.served_guilds = served_guilds  # the servers this process holds (discord.Guild objects)
        self.coordinator = coordinator  # the one in this process (local mode)
        if coordinator is not None:
            coordinator.on_change = self._wake
        self._coordinating: asyncio.Task | None = None  # its run(), from the first follow_unfinished
        self._tickets: dict[int, Ticket] = {}  # server -> the job followed
        self._places: dict[int, int] = {}  # job id -> place in line (0: training)
        self._submitting: set[int] = set()
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    # --- asking
    def ticket(self, guild_id: int) -> Ticket | None:
        return self._tickets.get(guild_id)

    def place(self, ticket: Ticket) -> int:
        return self._places.get(ticket.record.id, 0)

    def busy(self, guild_id: int) -> bool:
        return guild_id in self._tickets or guild_id in self._submitting

    def restart(self, guild_id: int) -> None:
        """This process's coordinator stops the server's running job now, and it trains again on the corpus as it
        is (after a forget); a cluster's coordinator finds out when the job ends (bot.training.trainings.run_job)."""
        if self.coordinator is not None:
            self.coordinator.restart(guild_id)

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
        """Queue a training of the server's model; refuses a second one and a corpus too small."""
        refused = "this server's model is already queued or training{}; wait for that run to finish"
        current = self.ticket(guild_id)
        if current is not None:
            place = self.place(current)
            where = f": it is queued (place {place})" if place else ": it is training now"
            raise AlreadyTraining(refused.format(where))
        if guild_id in self._submitting:
            raise AlreadyTraining(refused.format(""))
        self._submitting.add(guild_id)  # claimed before the first await: two requests cannot both pass
        try:
            last = await self.store.last_job(guild_id)
            if last is not None and last.status in UNFINISHED:  # by another process of a cluster
                raise AlreadyTraining(refused.format(""))
            tokens = await self.corpus.tokens(guild_id)
            check_corpus_size(tokens, HOW_TO_ADD_TEXT)
            epochs = min(epochs or self.settings.train_options.epochs, self.settings.max_epochs)
            record = await self.store.add_job(guild_id, requested_by, channel_id, epochs, tokens)
            ticket = Ticket(record, safe(guild_name), display)
            if self.coordinator is not None:
                await self.coordinator.start_queued()  # now, not at its next poll
            _, text = await self._state(ticket)
            if text is not None:
                await self._show(ticket, text)  # before the command's answer is sent: it is that answer
            self._follow(ticket, shown=text)
        finally:
            self._submitting.discard(guild_id)
        return ticket

    async def follow_unfinished(self) -> int:
        """Follow the unfinished jobs of the servers this process holds that it does not follow yet (on_ready).
        This process's coordinator starts with the first call, once those are read: none of them ends unseen."""
        names = {guild.id: guild.name for guild in self.served_guilds()}
        unfinished = await self.store.unfinished_jobs()
        if self.coordinator is not None and self._coordinating is None:
            await self.coordinator.start_queued()  # before following: they show "starting", not a place in line
            self._coordinating = asyncio.create_task(self.coordinator.run(), name="coordinator")
        found = 0
        for record in unfinished:
            if record.guild_id in names and not self.busy(record.guild_id):
                display = (
                    self.channel_display(record.channel_id) if self.channel_display and record.channel_id else None
                )
                ticket = Ticket(record, safe(names[record.guild_id]), display)
                if self.coordinator is not None:  # this process's stop handed it back (bot.bot.ContinuoBot.setup_hook)
                    await self._show(ticket, messages.resumed(ticket.guild_name))
                self._follow(ticket)
                found += 1
        return found

    def _follow(self, ticket: Ticket, shown: str | None = None) -> None:
        if self._closed:  # a /train that was in flight at a stop: its job stays queued, the next start follows it
            return
        self._tickets[ticket.guild_id] = ticket
        task = asyncio.create_task(self._watch(ticket, shown), name=f"follow-job-{ticket.record.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _wake(self) -> None:
        """The coordinator in this process changed a job: places, progress or an outcome may have moved."""
        for ticket in self._tickets.values():
            ticket.changed.set()

    # --- following
    async def _watch(self, ticket: Ticket, shown: str | None) -> None:
        try:
            while True:
                try:
                    record, text = await self._state(ticket)
                except Exception:  # noqa: BLE001 - the store is unreachable for a moment: try again later
                    log.warning("could not read job %s", ticket.record.id, exc_info=True)
                    record, text = ticket.record, None
                ticket.record = record
                if record.status not in UNFINISHED:
                    break
                if text is not None and text != shown:
                    await self._show(ticket, text)
                    shown = text
                try:  # woken by this process's coordinator; a cluster's is polled (asyncio.timeout, unlike
                    # wait_for in Python 3.11, never swallows a cancellation that comes as the event is set)
                    async with asyncio.timeout(self.settings.progress_interval_s):
                        await ticket.changed.wait()
                except TimeoutError:
                    pass
                ticket.changed.clear()
            await self._show(ticket, await self._outcome(ticket))
        finally:
            self._tickets.pop(ticket.guild_id, None)
            self._places.pop(ticket.record.id, None)

    async def _state(self, ticket: Ticket) -> tuple[TrainingJobRecord, str | None]:
        """(the job as stored now, the text its message should show; None: none yet)."""
        record = await self.store.last_job(ticket.guild_id)
        if record is None or record.id != ticket.record.id:  # the server's data was cleared meanwhile
            return replace(ticket.record, status="interrupted"), None
        taken = self.coordinator.trains if self.coordinator is not None else lambda _job_id: False
        if record.status == "queued" and not taken(record.id):
            queued = [j.id for j in await self.store.unfinished_jobs() if j.status == "queued" and not taken(j.id)]
            place = queued.index(record.id) + 1 if record.id in queued else 1
            self._places[record.id] = place
            return record, messages.queued(ticket.guild_name, place, self.settings.max_training_jobs)
        self._places[record.id] = 0
        if record.status == "running":
            progress, notice = progress_from_json(await self.store.job_progress(record.id))
            ticket.latest = progress
            if progress is None:
                return record, messages.starting(ticket.guild_name, automatic=not record.requested_by)
            return record, messages.progress(ticket.guild_name, progress, notice)
        return record, None  # taken by this process's coordinator, about to read the corpus

    async def _outcome(self, ticket: Ticket) -> str:
        record = ticket.record
        if record.status == "succeeded":
            model = await self._serve_new_model(ticket.guild_id)
            text, _ = await self.corpus.text(ticket.guild_id)
            server = await self.store.guild_settings(ticket.guild_id)
            sample = await messages.sample(
                self.models, ticket.guild_id, text, decoding(self.settings, server, words=SAMPLE_WORDS)
            )
            return messages.succeeded(ticket.guild_name, model.card, sample)
        if record.status == "failed":
            return messages.failed(ticket.guild_name, record.error or "unknown error")
        return messages.interrupted(ticket.guild_name)

    async def _serve_new_model(self, guild_id: int):
        """The version the coordinator published: its switch is read from the store now, not awaited from the
        watcher (which learns it later, by NOTIFY or poll), so the new model answers from the first request."""
        versions = self.models.versions
        current = await self.store.current_model(guild_id) if versions is not None else None
        if versions is not None and current is not None:
            await versions.catch_up(current)
        return await self.models.model_for(guild_id)  # loaded already where this process's coordinator published it

    @staticmethod
    async def _show(ticket: Ticket, text: str) -> None:
        if ticket.display is None:
            return
        try:
            await ticket.display.show(text)
        except Exception:  # noqa: BLE001 - a lost progress message must not stop following the job
            log.warning("could not show training progress for guild %s", ticket.guild_id, exc_info=True)

    async def close(self, hand_back: bool = False) -> None:
        """Stop following. This process's coordinator stops too: its running jobs are recorded as interrupted,
        and the queued ones; with `hand_back` (a stop) they are queued, and the next start resumes them from their
        last finished epoch. A cluster's jobs go on in its coordinator, and a restarted process follows them."""
        self._closed = True
        left = list(self._tickets.values())
        if self.coordinator is not None:
            await self.coordinator.close(hand_back=hand_back)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._coordinating is not None:
            await self._coordinating  # it ends once its coordinator is closed
        for ticket in left if self.coordinator is not None else ():  # how they ended, as the coordinator recorded it
            try:
                record = await self.store.last_job(ticket.guild_id)
            except Exception:  # noqa: BLE001 - the store may be gone; the next start reports what it finds
                record = None
            status = record.status if record is not None and record.id == ticket.record.id else "interrupted"
            if status == "queued":
                await self._show(ticket, messages.handed_back(ticket.guild_name))
            elif status in UNFINISHED or status == "interrupted":
                await self._show(ticket, messages.interrupted(ticket.guild_name))
