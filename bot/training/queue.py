"""Per-server training in background processes: one job per server, a global limit, a queue with places."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field, replace
from typing import Protocol

from core import ContinuoError, Job, JobRunner, Progress, TrainRequest, check_corpus_size

from .. import metrics
from ..decoding import SAMPLE_WORDS, decoding
from ..forgetting import may_answer
from ..models import ModelService
from ..server_corpus import ServerCorpus
from ..settings import BotSettings
from ..storage import Store, TrainingJobRecord
from ..storage.base import utcnow
from ..text import safe
from . import messages
from .messages import HOW_TO_ADD_TEXT

log = logging.getLogger(__name__)


class AlreadyTraining(ContinuoError):
    """The server already has a job queued or running."""


class Display(Protocol):
    """Where a job shows how it is doing (a Discord message that gets edited)."""

    async def show(self, text: str) -> None: ...


@dataclass
class Ticket:
    """A job in the queue or in training."""

    record: TrainingJobRecord
    guild_name: str  # already made safe to show
    display: Display | None
    latest: Progress | None = None  # the last progress report from the training process
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    job: Job | None = None  # the runner's job once it started
    notice: str = ""  # what the training found at its start, e.g. that it resumes from a checkpoint

    @property
    def guild_id(self) -> int:
        return self.record.guild_id


class TrainingQueue:
    """Starts jobs in arrival order, at most `max_training_jobs` at once, and reports their progress."""

    def __init__(
        self, store: Store, models: ModelService, settings: BotSettings, runner: JobRunner, corpus: ServerCorpus
    ):
        self.store, self.models, self.settings, self.runner, self.corpus = store, models, settings, runner, corpus
        self._waiting: list[Ticket] = []
        self._running: dict[int, Ticket] = {}
        self._tasks: set[asyncio.Task] = set()
        self._submitting: set[int] = set()  # servers whose request is between its checks and the queue
        self._closing = False
        self._hand_back = False  # a stop: running jobs are queued again, to resume at the next start
        metrics.TRAINING_QUEUE_OLDEST_AGE.set_function(self._oldest_age)

    def _oldest_age(self) -> float:
        if not self._waiting:
            return 0.0
        return max(0.0, (utcnow() - self._waiting[0].record.created_at).total_seconds())

    def _count(self) -> None:
        metrics.TRAINING_JOBS_QUEUED.set(len(self._waiting))
        metrics.TRAINING_JOBS_RUNNING.set(len(self._running))

    # --- asking
    def ticket(self, guild_id: int) -> Ticket | None:
        return self._running.get(guild_id) or next((t for t in self._waiting if t.guild_id == guild_id), None)

    def place(self, ticket: Ticket) -> int:
        """1 for the next job to start; 0 while it trains."""
        return 0 if ticket in self._running.values() else self._waiting.index(ticket) + 1

    def busy(self, guild_id: int) -> bool:
        """Whether the server has a job queued, running, or about to be queued."""
        return self.ticket(guild_id) is not None or guild_id in self._submitting

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
        current = self.ticket(guild_id)
        if current is not None:
            where = "is training now" if self.place(current) == 0 else f"is queued (place {self.place(current)})"
            raise AlreadyTraining(f"this server's model {where}; wait for that run to finish")
        if guild_id in self._submitting:
            raise AlreadyTraining("this server's model is being queued; wait for that run to finish")
        self._submitting.add(guild_id)  # claimed before the first await: two requests cannot both pass
        try:
            tokens = await self.corpus.tokens(guild_id)
            check_corpus_size(tokens, HOW_TO_ADD_TEXT)
            epochs = min(epochs or self.settings.train_options.epochs, self.settings.max_epochs)
            record = await self.store.add_job(guild_id, requested_by, channel_id, epochs, tokens)
            ticket = Ticket(record, safe(guild_name), display)
            self._waiting.append(ticket)
        finally:
            self._submitting.discard(guild_id)
        self._start_waiting()
        self._count()
        await self._show_places()
        return ticket

    def _start_waiting(self) -> None:
        while self._waiting and len(self._running) < self.settings.max_training_jobs and not self._closing:
            ticket = self._waiting.pop(0)
            self._running[ticket.guild_id] = ticket
            task = asyncio.create_task(self._train(ticket), name=f"train-guild-{ticket.guild_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _show_places(self) -> None:
        for ticket in list(self._waiting):
            await self._show(
                ticket, messages.queued(ticket.guild_name, self.place(ticket), self.settings.max_training_jobs)
            )

    @staticmethod
    async def _show(ticket: Ticket, text: str) -> None:
        if ticket.display is None:
            return
        try:
            await ticket.display.show(text)
        except Exception:  # noqa: BLE001 - a lost progress message must not stop the training
            log.warning("could not show training progress for guild %s", ticket.guild_id, exc_info=True)

    # --- training
    async def _train(self, ticket: Ticket) -> None:
        relay = None
        started = time.monotonic()

        def finished(outcome: str) -> None:
            metrics.TRAINING_JOBS_FINISHED.labels(outcome).inc()
            metrics.TRAINING_JOB_SECONDS.labels(outcome).observe(time.monotonic() - started)

        try:
            while True:
                read_at = utcnow()  # before the corpus is read: what was removed by then is not in the text
                text, name = await self.corpus.text(ticket.guild_id)
                await self.store.update_job(ticket.record.id, status="running", started_at=read_at)
                await self._show(ticket, messages.starting(ticket.guild_name, automatic=not ticket.record.requested_by))
                job = await self._start_job(ticket, text, name)
                relay = asyncio.create_task(self._relay(ticket))
                try:
                    result = await asyncio.to_thread(job.result)
                except ContinuoError:
                    if await self._read_removed_text(ticket.guild_id, read_at):
                        continue  # stopped by a forget (bot.exts.corpus): train again without that text
                    raise
                finally:
                    relay.cancel()
                    await asyncio.gather(relay, return_exceptions=True)  # no progress edit may land after the result
                if not await self._read_removed_text(ticket.guild_id, read_at):
                    break
                log.info("guild %s: text was removed while it trained; training again without it", ticket.guild_id)
            await self.models.reload(ticket.guild_id, trained_from=read_at)
            card = result.card
            await self.store.update_job(
                ticket.record.id, status="succeeded", finished_at=utcnow(), val_perplexity=card.val_perplexity
            )
            finished("succeeded")
            server = await self.store.guild_settings(ticket.guild_id)
            sample = await messages.sample(
                self.models, ticket.guild_id, text, decoding(self.settings, server, words=SAMPLE_WORDS)
            )
            await self._show(ticket, messages.succeeded(ticket.guild_name, card, sample))
        except asyncio.CancelledError:
            if ticket.job is not None:
                ticket.job.cancel()  # its last finished epoch is in its checkpoint
            if self._hand_back:
                finished("handed_back")
                await self._hand_back_job(ticket)
            else:
                finished("interrupted")
                await self._finish_interrupted(ticket)
            raise
        except Exception as e:  # noqa: BLE001 - any failure keeps the old model and is reported
            reason = str(e) if isinstance(e, ContinuoError) else f"{type(e).__name__}: {e}"
            if not isinstance(e, ContinuoError):
                log.exception("training for guild %s failed", ticket.guild_id)
            finished("failed")
            await self.store.update_job(ticket.record.id, status="failed", finished_at=utcnow(), error=reason[:500])
            await self._show(ticket, messages.failed(ticket.guild_name, reason))
        finally:
            if relay is not None:
                relay.cancel()
            self._running.pop(ticket.guild_id, None)
            self._start_waiting()
            self._count()
            if not self._closing:
                await self._show_places()

    async def _read_removed_text(self, guild_id: int, read_at) -> bool:
        """Whether text left the server's corpus after this training read it (the forget rule, bot.forgetting)."""
        return not may_answer(read_at, await self.store.text_removed_at(guild_id))

    async def _start_job(self, ticket: Ticket, text: str, corpus_name: str) -> Job:
        """Hand the job to the runner; once it exists, a cancellation reaches it."""
        loop = asyncio.get_running_loop()
        request = TrainRequest(
            out=self.models.bundle_path(ticket.guild_id),
            text=text,
            corpus_name=corpus_name,
            model=self.settings.train_model,
            train=replace(self.settings.train_options, epochs=ticket.record.epochs),
            checkpoint_dir=self.models.checkpoint_path(ticket.guild_id),
        )  # a rerun after a restart resumes

        def on_progress(p: Progress) -> None:  # called from the runner's reader thread
            loop.call_soon_threadsafe(self._progress, ticket, p)

        # starting a process sends it the whole corpus: not on the event loop
        submitting = asyncio.ensure_future(asyncio.to_thread(self.runner.submit, request, on_progress))
        try:
            ticket.job = await asyncio.shield(submitting)
        except asyncio.CancelledError:
            ticket.job = await submitting  # the process exists now: it must be told to stop
            raise
        return ticket.job

    async def _finish_interrupted(self, ticket: Ticket) -> None:
        try:
            await self.store.update_job(
                ticket.record.id, status="interrupted", finished_at=utcnow(), error="interrupted by a shutdown"
            )
        except Exception:  # noqa: BLE001 - the store may be gone; start-up marks it interrupted anyway
            pass
        await self._show(ticket, messages.interrupted(ticket.guild_name))

    async def _hand_back_job(self, ticket: Ticket) -> None:
        try:
            await self.store.update_job(ticket.record.id, status="queued")
        except Exception:  # noqa: BLE001 - the store may be gone; start-up then reports it interrupted
            log.warning("could not hand back the training of guild %s", ticket.guild_id, exc_info=True)
        await self._show(ticket, messages.handed_back(ticket.guild_name))

    def _progress(self, ticket: Ticket, progress: Progress) -> None:
        if progress.phase == "start" and progress.message:
            ticket.notice = progress.message
        if progress.val_perplexity is None and ticket.latest is not None:  # batch reports carry no perplexity
            progress = replace(progress, val_perplexity=ticket.latest.val_perplexity)
        ticket.latest = progress
        ticket.changed.set()

    async def _relay(self, ticket: Ticket) -> None:
        """Edit the progress message with the latest report, at most once per progress_interval_s."""
        while True:
            await ticket.changed.wait()
            ticket.changed.clear()
            note = f"\n{ticket.notice[:1].upper()}{ticket.notice[1:]}." if ticket.notice else ""
            await self._show(ticket, messages.progress(ticket.guild_name, ticket.latest) + note)
            await asyncio.sleep(self.settings.progress_interval_s)

    async def close(self, hand_back: bool = False) -> None:
        """Stop all jobs: running ones are cancelled and recorded as interrupted, queued ones too.

        With `hand_back` (a stop): they stay queued instead, and the next start runs them again;
        a running one resumes from its last finished epoch.
        """
        self._closing = True
        self._hand_back = self._hand_back or hand_back
        for ticket in self._waiting:
            if self._hand_back:
                metrics.TRAINING_JOBS_FINISHED.labels("handed_back").inc()
                await self._show(ticket, messages.handed_back(ticket.guild_name))
            else:
                await self._finish_interrupted(ticket)
        self._waiting.clear()
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)
