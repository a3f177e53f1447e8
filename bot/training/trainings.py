"""Training servers' models: the Trainings protocol the cogs use, its tickets, and run_job, a job's lifecycle."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from core import ContinuoError, Job, JobRunner, Progress, TrainRequest, TrainResult

from .. import metrics
from ..forgetting import may_answer
from ..server_corpus import ServerCorpus
from ..storage import Store, TrainingJobRecord
from ..storage.base import utcnow

log = logging.getLogger(__name__)

ProgressCallback = Callable[[Progress], None]


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
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # its job moved: look at the store now

    @property
    def guild_id(self) -> int:
        return self.record.guild_id


class Trainings(Protocol):
    """The training of servers' models as the cogs use it (bot.training.follower.JobFollower): jobs queued in the
    store, trained by a coordinator (bot.coordinator: this process's own in local mode, or a cluster's)."""

    def ticket(self, guild_id: int) -> Ticket | None:
        """The server's job while it is queued or training."""
        ...

    def place(self, ticket: Ticket) -> int:
        """1 for the next job to start; 0 while it trains."""
        ...

    def busy(self, guild_id: int) -> bool:
        """Whether the server has a job queued, running, or about to be queued."""
        ...

    def restart(self, guild_id: int) -> None:
        """Its running job trains again on the corpus as it is now (after a forget)."""
        ...

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
        ...

    async def close(self, hand_back: bool = False) -> None: ...


class TrainingFailed(ContinuoError):
    """A job failed: recorded as failed with this reason; the server keeps its model."""


@dataclass
class Trained:
    """A job's outcome once published."""

    result: TrainResult
    text: str  # the corpus it read
    read_at: datetime  # when it read it


async def run_job(
    record: TrainingJobRecord,
    store: Store,
    corpus: ServerCorpus,
    runner: JobRunner,
    *,
    prepare: Callable[[str, str], Awaitable[TrainRequest]],
    on_progress: ProgressCallback,
    follow: Callable[[Job], Coroutine[Any, Any, None]],
    publish: Callable[[TrainResult, datetime], Awaitable[None]],
    cancelled_as: Callable[[], str],
) -> Trained:
    """Run one job from queued to published: the one lifecycle of every job (bot.coordinator runs them).

    Reads the corpus and records when (the job's started_at), submits `prepare(text, corpus name)` to the
    runner (`on_progress` is called on the runner's thread), runs `follow(job)` while it trains, and
    `publish(result, read_at)`s what it trained, then records the success. A run whose text left the corpus
    meanwhile (a forget, bot.forgetting) runs again on the corpus as it is now. A failure is recorded and
    raised as TrainingFailed; a cancellation stops the runner's job and is raised, counted as `cancelled_as()`
    (the caller records what a stop means for the job).
    """
    started = time.monotonic()

    def finished(outcome: str) -> None:
        metrics.TRAINING_JOBS_FINISHED.labels(outcome).inc()
        metrics.TRAINING_JOB_SECONDS.labels(outcome).observe(time.monotonic() - started)

    try:
        while True:
            read_at = utcnow()  # before the corpus is read: what was removed by then is not in the text
            text, name = await corpus.text(record.guild_id)
            await store.update_job(record.id, status="running", started_at=read_at)
            job = await _submit(runner, await prepare(text, name), on_progress)
            following: asyncio.Task[None] = asyncio.create_task(follow(job))
            try:
                result = await asyncio.to_thread(job.result)
            except asyncio.CancelledError:
                job.cancel()  # its last finished epoch is in its checkpoint
                raise
            except ContinuoError:
                if await _read_removed_text(store, record.guild_id, read_at):
                    continue  # stopped by a forget (bot.after_forget): train again without that text
                raise
            finally:
                following.cancel()
                await asyncio.gather(following, return_exceptions=True)  # nothing it shows lands after the result
            if not await _read_removed_text(store, record.guild_id, read_at):
                break
            log.info("guild %s: text left its corpus while it trained; training again without it", record.guild_id)
        await publish(result, read_at)
        await store.update_job(
            record.id, status="succeeded", finished_at=utcnow(), val_perplexity=result.card.val_perplexity
        )
        finished("succeeded")
        return Trained(result, text, read_at)
    except asyncio.CancelledError:
        finished(cancelled_as())
        raise
    except Exception as e:  # noqa: BLE001 - any failure keeps the old model and is reported
        reason = str(e) if isinstance(e, ContinuoError) else f"{type(e).__name__}: {e}"
        if not isinstance(e, ContinuoError):
            log.exception("job %s of guild %s failed", record.id, record.guild_id)
        finished("failed")
        await store.update_job(record.id, status="failed", finished_at=utcnow(), error=reason[:500])
        raise TrainingFailed(reason) from e


async def _submit(runner: JobRunner, request: TrainRequest, on_progress: ProgressCallback) -> Job:
    """Hand the request to the runner off the event loop (it sends the whole corpus); once the job exists, a
    cancellation reaches it."""
    submitting = asyncio.ensure_future(asyncio.to_thread(runner.submit, request, on_progress))
    try:
        return await asyncio.shield(submitting)
    except asyncio.CancelledError:
        (await submitting).cancel()  # the process exists now: it must be told to stop
        raise


async def _read_removed_text(store: Store, guild_id: int, read_at: datetime) -> bool:
    """Whether text left the server's corpus after this run read it (the forget rule)."""
    return not may_answer(read_at, await store.text_removed_at(guild_id))
