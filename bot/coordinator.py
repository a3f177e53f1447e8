"""The coordinator: the one process that runs the training jobs that a cluster's bot processes queue in the store.

Bot processes in cluster mode (`CONTINUO_BOT_JOB_RUNNER=coordinator`) only add queued jobs and show
progress read back from the store. This process takes the jobs oldest first, one per server and at
most `max_training_jobs` at once, submits them to its job runner (Ray by default), writes their
progress and outcome back, and publishes each new model. It alone holds the runner's objects (Ray
task references die with their owner), so a bot process that dies loses nothing. When it restarts,
the jobs it was running go back to the queue and resume from their last finished epoch.
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

from core import ContinuoError, Job, JobRunner, Progress, TrainRequest, TrainResult

from . import metrics
from .cluster import progress_json
from .server_corpus import ServerCorpus
from .settings import BotSettings
from .storage import Store, TrainingJobRecord
from .storage.base import utcnow
from .training.trainings import TrainingFailed, run_job

log = logging.getLogger(__name__)

Publish = Callable[[int, TrainResult, datetime], Awaitable[None]]  # (server, trained bundle, corpus read at)


class Coordinator:
    """Runs queued jobs from the store on a job runner; `run()` until `stop()`."""

    def __init__(
        self,
        store: Store,
        runner: JobRunner,
        settings: BotSettings,
        publish: Publish,
        corpus: ServerCorpus | None = None,
    ):
        self.store, self.runner, self.settings, self.publish = store, runner, settings, publish
        self.corpus = corpus or ServerCorpus(store)
        self.poll_s = settings.coordinator_poll_s
        self._running: dict[int, tuple[int, asyncio.Task]] = {}  # job id -> (server, task)
        self._stopping = asyncio.Event()

    @property
    def staging_dir(self) -> Path:
        return self.settings.home / "coordinator"

    # --- the loop
    async def run(self) -> None:
        await self.recover()
        while not self._stopping.is_set():
            try:
                await self.start_queued()
            except Exception:  # noqa: BLE001 - a store hiccup must not end the coordinator; the next poll retries
                log.exception("could not read the job queue")
            try:
                await asyncio.wait_for(self._stopping.wait(), self.poll_s)
            except TimeoutError:
                pass
        await self.close()

    def stop(self) -> None:
        self._stopping.set()

    async def check_running(self) -> None:
        """Readiness: the coordinator takes jobs (not stopping)."""
        if self._stopping.is_set():
            raise ContinuoError("stopping")

    async def recover(self) -> list[TrainingJobRecord]:
        """Jobs a previous coordinator left running (it died or stopped) go back to the queue, in their order."""
        left = [j for j in await self.store.unfinished_jobs() if j.status == "running" and j.id not in self._running]
        for job in left:
            await self.store.update_job(job.id, status="queued")
            log.info(
                "job %s of guild %s: back in the queue; it resumes from its last finished epoch", job.id, job.guild_id
            )
        return left

    async def start_queued(self) -> list[int]:
        """Start queued jobs, oldest first, one per server, while fewer than max_training_jobs run; their ids."""
        started = []
        busy = {guild for guild, _ in self._running.values()}
        unfinished = await self.store.unfinished_jobs()
        queued = [job for job in unfinished if job.status == "queued" and job.id not in self._running]
        metrics.TRAINING_JOBS_QUEUED.set(len(queued))
        oldest = min((job.created_at for job in queued), default=None)
        metrics.TRAINING_QUEUE_OLDEST_AGE.set((utcnow() - oldest).total_seconds() if oldest is not None else 0.0)
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
        metrics.TRAINING_JOBS_RUNNING.set(len(self._running))
        return started

    def _forget(self, job_id: int, _task: asyncio.Task) -> None:
        self._running.pop(job_id, None)
        metrics.TRAINING_JOBS_RUNNING.set(len(self._running))

    async def close(self) -> None:
        """Stop: running jobs are cancelled and queued again, to resume when a coordinator runs next."""
        tasks = [task for _, task in self._running.values()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # --- one job
    async def _train(self, record: TrainingJobRecord) -> None:
        loop = asyncio.get_running_loop()
        staging = self.staging_dir / f"job-{record.id}"
        latest: list = [None]
        changed = asyncio.Event()

        def note(progress: Progress) -> None:  # on the runner's thread
            latest[0] = progress
            loop.call_soon_threadsafe(changed.set)

        async def prepare(text: str, name: str) -> TrainRequest:
            return TrainRequest(
                out=staging / "model",
                text=text,
                corpus_name=name,
                model=self.settings.train_model,
                train=replace(self.settings.train_options, epochs=record.epochs),
                checkpoint_dir=self.settings.home / "checkpoints" / str(record.guild_id),
            )  # a rerun resumes

        async def follow(job: Job) -> None:
            log.info("job %s of guild %s: started as %s", record.id, record.guild_id, job.id)
            await self._relay(record.id, latest, changed)

        async def publish(result: TrainResult, read_at: datetime) -> None:
            if latest[0] is not None:  # the last report, with when the runner returned (bench/cluster_bench.py)
                await self.store.set_job_progress(record.id, progress_json(latest[0], ended_at=time.time()))
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
                cancelled_as=lambda: "handed_back",
            )
        except asyncio.CancelledError:
            try:
                await asyncio.shield(self.store.update_job(record.id, status="queued"))
            except Exception:  # noqa: BLE001 - the store may be gone; the next coordinator requeues it anyway
                pass
            raise
        except TrainingFailed:
            pass  # recorded as failed by run_job; the server keeps its model
        finally:
            await asyncio.to_thread(shutil.rmtree, staging, True)

    async def _relay(self, job_id: int, latest: list, changed: asyncio.Event) -> None:
        """Write the latest progress to the store, at most once per progress_interval_s."""
        while True:
            await changed.wait()
            changed.clear()
            try:
                await self.store.set_job_progress(job_id, progress_json(latest[0]))
            except Exception:  # noqa: BLE001 - a lost progress write must not stop the training
                log.warning("could not store the progress of job %s", job_id, exc_info=True)
            await asyncio.sleep(self.settings.progress_interval_s)


def make_runner(settings: BotSettings) -> JobRunner:
    """The coordinator's job runner: tasks on Ray (default), or local processes."""
    from core import LocalProcessRunner, RayRunner

    return RayRunner(settings.ray) if settings.coordinator_runner == "ray" else LocalProcessRunner()


def publisher(versions) -> Publish:
    """Each trained bundle becomes a new version of its server's model; serving processes switch to it."""

    async def publish(guild_id: int, result: TrainResult, corpus_read_at: datetime) -> None:
        await versions.publish(guild_id, result.path, corpus_read_at)

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
        runner = runner or make_runner(settings)
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
