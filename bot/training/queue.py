"""Per-server training in background processes: one job per server, a global limit, a queue with places."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace

from core import ContinuoError, Job, JobRunner, Progress, TrainRequest, check_corpus_size

from .. import metrics
from ..decoding import SAMPLE_WORDS, decoding
from ..models import ModelService
from ..server_corpus import ServerCorpus
from ..settings import BotSettings
from ..storage import Store
from ..storage.base import utcnow
from ..text import safe
from . import messages
from .messages import HOW_TO_ADD_TEXT
from .trainings import AlreadyTraining, Display, Ticket, run_job

__all__ = ["HOW_TO_ADD_TEXT", "AlreadyTraining", "Display", "Ticket", "TrainingQueue"]

log = logging.getLogger(__name__)


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
        loop = asyncio.get_running_loop()

        def on_progress(p: Progress) -> None:  # called from the runner's reader thread
            loop.call_soon_threadsafe(self._progress, ticket, p)

        async def follow(job: Job) -> None:
            ticket.job = job  # a forget stops it (bot.after_forget)
            await self._relay(ticket)

        try:
            trained = await run_job(
                ticket.record,
                self.store,
                self.corpus,
                self.runner,
                prepare=lambda text, name: self._prepare(ticket, text, name),
                on_progress=on_progress,
                follow=follow,
                publish=lambda _result, read_at: self._reload(ticket.guild_id, read_at),
                cancelled_as=lambda: "handed_back" if self._hand_back else "interrupted",
            )
            server = await self.store.guild_settings(ticket.guild_id)
            sample = await messages.sample(
                self.models, ticket.guild_id, trained.text, decoding(self.settings, server, words=SAMPLE_WORDS)
            )
            await self._show(ticket, messages.succeeded(ticket.guild_name, trained.result.card, sample))
        except asyncio.CancelledError:
            if self._hand_back:
                await self._hand_back_job(ticket)
            else:
                await self._finish_interrupted(ticket)
            raise
        except ContinuoError as e:  # recorded as failed by run_job; the old model stays
            await self._show(ticket, messages.failed(ticket.guild_name, str(e)))
        finally:
            self._running.pop(ticket.guild_id, None)
            self._start_waiting()
            self._count()
            if not self._closing:
                await self._show_places()

    async def _prepare(self, ticket: Ticket, text: str, corpus_name: str) -> TrainRequest:
        ticket.job, ticket.latest, ticket.notice = None, None, ""  # a run again after a forget starts afresh
        await self._show(ticket, messages.starting(ticket.guild_name, automatic=not ticket.record.requested_by))
        return TrainRequest(
            out=self.models.bundle_path(ticket.guild_id),
            text=text,
            corpus_name=corpus_name,
            model=self.settings.train_model,
            train=replace(self.settings.train_options, epochs=ticket.record.epochs),
            checkpoint_dir=self.models.checkpoint_path(ticket.guild_id),
        )  # a rerun after a restart resumes

    async def _reload(self, guild_id: int, read_at) -> None:
        await self.models.reload(guild_id, trained_from=read_at)

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
