"""The coordinator: runs the training jobs queued in the store, in a cluster's coordinator process or in a bot's own.

Bot processes in cluster mode (`CONTINUO_BOT_JOB_RUNNER=coordinator`) only add queued jobs and show
progress read back from the store. This process takes the jobs oldest first, one per server and at
most `max_training_jobs` at once, submits them to its job runner (Ray by default), writes their
progress and outcome back, and publishes each new model. It alone holds the runner's objects (Ray
task references die with their owner), so a bot process that dies loses nothing. When it restarts,
the jobs it was running go back to the queue and resume from their last finished epoch. In local mode
(the default) the bot process runs one itself, over the same queue (bot.training.follower.JobFollower).
"""

from __future__ import annotations

import asyncio
import functools
import logging
import shutil
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from datetime import datetime
from pathlib import Path
from typing import Protocol

from core import ContinuoError, Job, JobRunner, Progress, TrainRequest, TrainResult

from . import metrics
from .server_corpus import ServerCorpus
from .settings import BotSettings
from .storage import Store, TrainingJobRecord
from .storage.base import utcnow
from .training.follower import progress_json
from .training.trainings import TrainingFailed, run_job

log = logging.getLogger(__name__)

SHUTDOWN = "interrupted by a shutdown"  # the error recorded for jobs a bot process's close ends (hand_back=False)
Publish = Callable[[int, TrainResult, datetime], Awaitable[None]]  # (server, trained bundle, corpus read at)


class ServerFolders(Protocol):
    """Where a server's training writes its bundle and keeps its checkpoint: bot.models.ModelService's folders."""

    def bundle_path(self, guild_id: int) -> Path: ...

    def checkpoint_path(self, guild_id: int) -> Path: ...


class Coordinator:
    """Runs queued jobs from the store on a job runner; `run()` until `stop()`.

    `folders`: a bot process's own (local mode); none: each job writes into a staging folder of this
    process, removed once published, and keeps its checkpoint in this process's data folder.
    """

    def __init__(
        self,
        store: Store,
        runner: JobRunner,
        settings: BotSettings,
        publish: Publish,
        corpus: ServerCorpus | None = None,
        folders: ServerFolders | None = None,
    ):
        self.store, self.runner, self.settings, self.publish = store, runner, settings, publish
        self.corpus = corpus or ServerCorpus(store)
        self.folders = folders
        self.poll_s = settings.coordinator_poll_s
        self.on_change: Callable[[], None] = lambda: None  # a job started, reported or ended (a follower here)
        self._running: dict[int, tuple[int, asyncio.Task]] = {}  # job id -> (server, task)
        self._jobs: dict[int, Job] = {}  # server -> its runner job while it trains
        self._oldest_queued: datetime | None = None
        self._woken = asyncio.Event()  # look at the queue now, not at the next poll
        self._stopping = asyncio.Event()
        self._hand_back = True  # a stop queues running jobs again; a close(hand_back=False) ends them
        self._took_queue = False  # recover() or start_queued() was called: the queue is this coordinator's to end
        self._closed = False
        metrics.TRAINING_QUEUE_OLDEST_AGE.set_function(self._oldest_age)

    @property
    def staging_dir(self) -> Path:
        return self.settings.home / "coordinator"

    def _oldest_age(self) -> float:
        oldest = self._oldest_queued
        return max(0.0, (utcnow() - oldest).total_seconds()) if oldest is not None else 0.0

    # --- the loop
    async def run(self) -> None:
        await self.recover()
        while not self._stopping.is_set():
            self._woken.clear()
            try:
                await self.start_queued()
            except Exception:  # noqa: BLE001 - a store hiccup must not end the coordinator; the next poll retries
                log.exception("could not read the job queue")
            try:
                async with asyncio.timeout(self.poll_s):  # not wait_for: it may swallow a cancellation (3.11)
                    await self._woken.wait()
            except TimeoutError:
                pass
        await self.close()

    def stop(self) -> None:
        self._stopping.set()
        self._woken.set()

    async def check_running(self) -> None:
        """Readiness: the coordinator takes jobs (not stopping)."""
        if self._stopping.is_set():
            raise ContinuoError("stopping")

    def trains(self, job_id: int) -> bool:
        """Whether this coordinator took the job (it may not have read its corpus yet)."""
        return job_id in self._running

    def restart(self, guild_id: int) -> None:
        """Stop the server's running job now: it trains again on the corpus as it is (run_job, after a forget)."""
        job = self._jobs.get(guild_id)
        if job is not None:
            job.cancel()

    async def recover(self) -> list[TrainingJobRecord]:
        """Jobs a previous coordinator left running (it died or stopped) go back to the queue, in their order."""
        self._took_queue = True
        left = [j for j in await self.store.unfinished_jobs() if j.status == "running" and j.id not in self._running]
        for job in left:
            await self.store.update_job(job.id, status="queued")
            log.info(
                "job %s of guild %s: back in the queue; it resumes from its last finished epoch", job.id, job.guild_id
            )
        return left

    async def start_queued(self) -> list[int]:
        """Start queued jobs, oldest first, one per server, while fewer than max_training_jobs run; their ids."""
        if self._stopping.is_set():
            return []
        self._took_queue = True
        started = []
        unfinished = await self.store.unfinished_jobs()
        busy = {guild for guild, _ in self._running.values()}  # after the read: a submit may call this meanwhile
        for job in unfinished:
            if len(self._running) >= self.settings.max_training_jobs:
                break
            if job.status != "queued" or job.id in self._running or job.guild_id in busy:
                continue
            busy.add(job.guild_id)
            task = asyncio.create_task(self._train(job), name=f"train-job-{job.id}")
            self._running[job.id] = (job.guild_id, task)
            task.add_done_callback(functools.partial(self._forget, job.id))
            started.append(job.id)
        queued = [job for job in unfinished if job.status == "queued" and job.id not in self._running]
        metrics.TRAINING_JOBS_QUEUED.set(len(queued))
        self._oldest_queued = min((job.created_at for job in queued), default=None)
        metrics.TRAINING_JOBS_RUNNING.set(len(self._running))
        if started:
            self.on_change()  # the places in line moved
        return started

    def _forget(self, job_id: int, _task: asyncio.Task) -> None:
        self._running.pop(job_id, None)
        metrics.TRAINING_JOBS_RUNNING.set(len(self._running))
        self._woken.set()  # its place is free
        self.on_change()

    async def close(self, hand_back: bool = True) -> None:
        """Stop: running jobs are cancelled and queued again, to resume when a coordinator runs next. Without
        `hand_back` (a bot process closing in local mode) they end as interrupted, and the queued ones too, unless
        it never took the queue (a bot that failed to start): the next start finds them as they were."""
        if self._closed:
            return
        self._closed, self._hand_back = True, hand_back
        self.stop()
        tasks = [task for _, task in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if not hand_back and self._took_queue:
            try:
                await self.store.interrupt_unfinished_jobs(why=SHUTDOWN)
            except Exception:  # noqa: BLE001 - the store may be gone; the next start reports them interrupted
                log.warning("could not record the queued jobs as interrupted", exc_info=True)

    # --- one job
    async def _train(self, record: TrainingJobRecord) -> None:
        loop = asyncio.get_running_loop()
        staging = self.staging_dir / f"job-{record.id}"
        folders = self.folders
        checkpoints = (
            folders.checkpoint_path(record.guild_id)
            if folders
            else self.settings.home / "checkpoints" / str(record.guild_id)
        )
        latest: list = [None, ""]  # the last report and the notice of the run's start
        changed = asyncio.Event()

        def note(progress: Progress) -> None:  # on the runner's thread
            if progress.phase == "start" and progress.message:
                latest[1] = progress.message
            if progress.val_perplexity is None and latest[0] is not None:  # batch reports carry no perplexity
                progress = replace(progress, val_perplexity=latest[0].val_perplexity)
            latest[0] = progress
            loop.call_soon_threadsafe(changed.set)

        async def prepare(text: str, name: str) -> TrainRequest:
            latest[:] = [None, ""]  # a run again after a forget starts afresh, and so does a job handed back
            await self.store.set_job_progress(record.id, "")
            self.on_change()
            return TrainRequest(
                out=folders.bundle_path(record.guild_id) if folders else staging / "model",
                text=text,
                corpus_name=name,
                model=self.settings.train_model,
                train=replace(self.settings.train_options, epochs=record.epochs),
                checkpoint_dir=checkpoints,  # a job handed back resumes from it
                keep_checkpoint=True,  # until the job ends: a stop while it publishes leaves no epoch to train again
            )

        async def follow(job: Job) -> None:
            log.info("job %s of guild %s: started as %s", record.id, record.guild_id, job.id)
            self._jobs[record.guild_id] = job  # a forget stops it (restart)
            await self._relay(record.id, latest, changed)

        async def publish(result: TrainResult, read_at: datetime) -> None:
            if latest[0] is not None:  # the last report, with when the runner returned (bench/cluster_bench.py)
                await self.store.set_job_progress(
                    record.id, progress_json(latest[0], notice=latest[1], ended_at=time.time())
                )
            await self.publish(record.guild_id, result, read_at)
            log.info(
                "job %s of guild %s: new model published (validation perplexity %.1f)",
                record.id,
                record.guild_id,
                result.card.val_perplexity,
            )

        try:
            await run_job(
                record,
                self.store,
                self.corpus,
                self.runner,
                prepare=prepare,
                on_progress=note,
                follow=follow,
                publish=publish,
                cancelled_as=lambda: "handed_back" if self._hand_back else "interrupted",
            )
        except asyncio.CancelledError:  # its checkpoint stays: the job resumes from it
            ended = {"finished_at": utcnow(), "error": SHUTDOWN}
            try:
                await asyncio.shield(
                    self.store.update_job(record.id, **({"status": "queued"} if self._hand_back else ended))
                )
            except Exception:  # noqa: BLE001 - the store may be gone; the next start finds it running
                pass
            raise
        except TrainingFailed:
            pass  # recorded as failed by run_job; the server keeps its model
        finally:
            self._jobs.pop(record.guild_id, None)
            await asyncio.to_thread(shutil.rmtree, staging, True)
        await asyncio.to_thread(shutil.rmtree, checkpoints, True)  # the job ended: published, or failed

    async def _relay(self, job_id: int, latest: list, changed: asyncio.Event) -> None:
        """Write the latest progress to the store, at most once per progress_interval_s."""
        while True:
            await changed.wait()
            changed.clear()
            try:
                await self.store.set_job_progress(job_id, progress_json(latest[0], notice=latest[1]))
            except Exception:  # noqa: BLE001 - a lost progress write must not stop the training
                log.warning("could not store the progress of job %s", job_id, exc_info=True)
            self.on_change()
            await asyncio.sleep(self.settings.progress_interval_s)


def make_runner(settings: BotSettings, where: str) -> JobRunner:
    """A job runner: tasks on the Ray cluster of settings.ray (`where` "ray"), or a local process per job."""
    from core import LocalProcessRunner, RayRunner

    return RayRunner(settings.ray) if where == "ray" else LocalProcessRunner()


def publisher(versions) -> Publish:
    """Each trained bundle becomes a new version of its server's model; serving processes switch to it."""

    async def publish(guild_id: int, result: TrainResult, corpus_read_at: datetime) -> None:
        await versions.publish(guild_id, result.path, corpus_read_at)

    return publish


def local_publisher(models) -> Publish:
    """Local mode: the bundle trained into the server's folder becomes its model in this bot process (a new
    version, served only while its corpus was read after the server's last forget: bot.forgetting)."""

    async def publish(guild_id: int, _result: TrainResult, corpus_read_at: datetime) -> None:
        await models.reload(guild_id, trained_from=corpus_read_at)

    return publish


async def serve(settings: BotSettings, runner: JobRunner | None = None) -> bool:
    """Open the store, run the coordinator until SIGINT or SIGTERM, close the store; whether it stopped in time.

    A stop takes no new job, hands the running ones back to the queue (a coordinator started later resumes
    them from their last finished epoch) and closes the store, within stop_timeout_s.
    """
    from core import open_bundle_storage

    from .cli import on_stop_signals
    from .health import HealthServer, ray_check, storage_check, store_check
    from .storage import open_store, redact
    from .storage.versions import ModelVersions

    store = open_store(
        settings.database,
        busy_timeout_s=settings.database_busy_timeout_s,
        write_retry_s=settings.database_write_retry_s,
    )
    await store.open()
    health = None
    try:
        versions = ModelVersions(
            store,
            open_bundle_storage(settings.model_storage, settings.model_cache_dir),
            settings.model_versions_kept,
            settings.model_poll_s,
        )
        runner = runner or make_runner(settings, settings.coordinator_runner)
        coordinator = Coordinator(store, runner, settings, publisher(versions))
        on_stop_signals(coordinator.stop)
        if settings.metrics_port is not None:
            health = HealthServer(
                settings.metrics_host,
                settings.metrics_port,
                {
                    "database": store_check(store),
                    "model storage": storage_check(versions.storage),
                    "ray": ray_check(runner),
                    "coordinator": coordinator.check_running,
                },
            )
            await health.start()
        log.info(
            "coordinator: jobs from %s on %s, %d at a time",
            redact(settings.database),
            settings.coordinator_runner,
            settings.max_training_jobs,
        )
        watch = asyncio.create_task(metrics.watch_event_loop())
        try:
            await coordinator.run()
        finally:
            watch.cancel()
    finally:
        if health is not None:
            await health.stop()
        await store.close()
    return True
