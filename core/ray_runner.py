"""Training jobs on a Ray cluster: each job a generator task in a fresh worker process, stopped with ray.cancel."""

from __future__ import annotations

import logging
import os
import queue
import shutil
import tempfile
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from .bundle import replace_dir
from .errors import ContinuoError
from .jobs import JobOutcome, TrainRequest, ended, run_request
from .training import CANCELLED, ProgressCallback, TrainResult

log = logging.getLogger(__name__)

_NICENESS = 5  # as local jobs: a worker sharing a host with a bot yields the CPU to its event loop
_STOP_WAIT_S = 30.0  # how long a cancelled task waits for its training thread to stop before it exits
_BASE_MEMORY_MB = 1200  # a training process on a small corpus, with margin (peak RSS: README, Running at scale)
_MEMORY_PER_TEXT_BYTE = 64  # the rest grows with the corpus (PTB's peak RSS: README, Benchmarks: PTB)
_OUTPUTS = ("out", "instant_out")  # TrainRequest's bundle paths: the worker writes its own copies, sent back here


@dataclass
class RayConfig:
    """Where the Ray cluster is and what each training job asks it for."""

    address: str | None = None  # "auto" or "ray://host:10001" or "host:6379"; None: RAY_ADDRESS, else a local Ray
    cpus: float = 2  # CPU cores per job; TensorFlow's thread pools are sized to them
    gpus: float = 0  # GPUs per job (0: CPU only)
    memory_mb: int = 0  # memory per job; 0: estimated from the corpus size
    namespace: str = "continuo"  # Ray namespace of the jobs

    def memory_bytes(self, text_chars: int) -> int:
        mb = self.memory_mb or _BASE_MEMORY_MB + text_chars * _MEMORY_PER_TEXT_BYTE / 2**20
        return int(mb * 2**20)


class RayJob(JobOutcome):
    """A training job running as a Ray generator task; a reader thread relays its progress."""

    def __init__(self, runner: RayRunner, request: TrainRequest, on_progress: ProgressCallback | None):
        self._outputs = {name: Path(getattr(request, name)) for name in _OUTPUTS if getattr(request, name, None)}
        self._on_progress = on_progress or (lambda p: None)
        super().__init__()
        self._cancelling = False
        self._stream: Any = None  # Ray's generator of the task's events
        try:
            request = _with_text(request)
        except ContinuoError as e:  # a missing or unreadable file: the job fails as a local one would
            self.id = "ray-unstarted"
            self._finish("error", str(e))
            return
        self._stream = runner.task(request).remote(request, max(1, int(runner.config.cpus)))
        self.id = f"ray-{self._stream.completed().task_id().hex()[:16]}"
        threading.Thread(target=self._pump, name=self.id, daemon=True).start()

    def _pump(self) -> None:
        import ray
        from ray.exceptions import OutOfMemoryError, RayError, TaskCancelledError, WorkerCrashedError

        try:
            for ref in self._stream:
                kind, payload = ray.get(ref)
                if kind == "bundle":  # a bundle the job saved on its way (its instant model, say)
                    output, files = payload
                    _install(files, self._outputs[output])
                elif kind == "progress":
                    try:
                        self._on_progress(payload)
                    except Exception:  # noqa: BLE001 - a client's display error must not lose the job
                        log.warning("%s: progress callback failed", self.id, exc_info=True)
                elif kind == "ok":
                    result, files = payload
                    _install(files, self._outputs["out"])
                    self._finish("ok", replace(result, path=self._outputs["out"]))
                    return
                else:
                    self._finish(kind, payload)
                    return
            # a cancelled task's stream may just end, before Ray reports the cancellation
            self._finish(
                *(
                    ("cancelled", CANCELLED)
                    if self._cancelling
                    else ("error", "the training task ended without a result")
                )
            )
        except TaskCancelledError:
            self._finish("cancelled", CANCELLED)
        except OutOfMemoryError:
            self._finish(
                "error",
                "the training worker ran out of memory; give jobs more memory "
                "(RayConfig.memory_mb) or train on a smaller corpus",
            )
        except WorkerCrashedError:
            self._finish(
                *(
                    ("cancelled", CANCELLED)
                    if self._cancelling
                    else ("error", "the training worker stopped unexpectedly")
                )
            )
        except RayError as e:
            first_line = str(e).strip().splitlines()[-1] if str(e).strip() else type(e).__name__
            self._finish("error", f"training failed on Ray: {first_line}")
        except OSError as e:
            self._finish("error", f"the trained model could not be saved: {e}")

    def cancel(self) -> None:
        """Interrupt the task (the training thread stops at its next batch); kill its worker if it lingers."""
        import ray

        if self._cancelling or self._finished.is_set():
            return
        self._cancelling = True
        ray.cancel(self._stream)
        self._after_grace(lambda: ray.cancel(self._stream, force=True))


class RayRunner:
    """Runs each job as a Ray task in a fresh worker process, with the resources RayConfig asks for.

    The bundle is trained in the worker's own temporary folder and its files come back with the
    result, so the caller's `out` gets it whichever machine trained it.
    """

    def __init__(self, config: RayConfig | None = None):
        self.config = config or RayConfig()
        self._remote: Any = None  # the remote function, made once Ray is connected
        self._lock = threading.Lock()

    def connect(self) -> None:
        """Join the cluster (or start a local Ray) unless this process already has."""
        import ray

        with self._lock:
            if not ray.is_initialized():
                ray.init(
                    address=self.config.address,
                    namespace=self.config.namespace,
                    log_to_driver=False,
                    include_dashboard=False if self.config.address is None else None,
                )

    def task(self, request: TrainRequest):
        """The remote training function with this job's resource request."""
        import ray

        self.connect()
        if self._remote is None:
            # max_calls=1: a fresh worker per job returns all of TensorFlow's memory when it ends;
            # max_retries=0: a failed or killed training is reported, never silently run again
            self._remote = ray.remote(max_calls=1, max_retries=0)(_train_task)
        return self._remote.options(
            num_cpus=self.config.cpus,
            num_gpus=self.config.gpus,
            memory=self.config.memory_bytes(len(request.text or "")),
            name="continuo-train",
        )

    def submit(self, request: TrainRequest, on_progress: ProgressCallback | None = None) -> RayJob:
        return RayJob(self, request, on_progress)


def _with_text(request: TrainRequest) -> TrainRequest:
    """The request with its text read here: a worker on another machine cannot read this one's files."""
    if request.text is not None:
        return request
    if request.source is None:
        raise ContinuoError("nothing to train on: give a corpus name or a text file")
    from .data import resolve_text_source

    name, text = resolve_text_source(request.source)
    return replace(request, source=None, text=text, corpus_name=request.corpus_name or name)


def _train_task(request: TrainRequest, cpus: int):
    """Inside the Ray worker: train in a thread and yield ("progress", Progress) reports, then one outcome."""
    from .backend import use_a_replica_per_core

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    use_a_replica_per_core(cpus)  # TensorFlow's thread pools sized to the CPUs Ray gave this task
    try:
        os.nice(_NICENESS)
    except OSError:
        pass
    events: queue.Queue = queue.Queue()
    stop = threading.Event()
    workdir = Path(tempfile.mkdtemp(prefix="continuo-ray-"))
    theirs = {name: Path(getattr(request, name)) for name in _OUTPUTS if getattr(request, name, None)}
    local = {name: workdir / name / path.name for name, path in theirs.items()}  # same names: cards name them
    shipped: dict[str, int] = {}  # inode of each output folder as last sent (a new save is a new folder)

    def on_progress(progress) -> None:
        for name, path in local.items():
            if name != "out" or progress.phase != "done":  # the final bundle travels with the result
                inode = path.stat().st_ino if path.is_dir() else None
                if inode is not None and shipped.get(name) != inode:
                    shipped[name] = inode
                    events.put(("bundle", (name, _read_bundle(path))))
        reported = getattr(progress, "path", None)
        here = [name for name, mine in local.items() if reported and Path(reported) == mine]
        events.put(("progress", replace(progress, path=str(theirs[here[0]])) if here else progress))

    def train() -> tuple[TrainResult, dict[str, bytes]]:
        result = run_request(replace(request, **local), on_progress, stop.is_set)  # type: ignore[arg-type]  # path fields only
        return result, _read_bundle(result.path)

    def work() -> None:
        events.put(ended(train))

    trainer = threading.Thread(target=work, name="continuo-train", daemon=True)
    trainer.start()
    try:
        while True:
            try:
                kind, payload = events.get(timeout=0.2)  # a timeout, so that ray.cancel's interrupt lands promptly
            except queue.Empty:
                continue
            yield kind, payload
            if kind not in ("progress", "bundle"):
                return
    finally:  # also on ray.cancel (KeyboardInterrupt here): stop the training before the worker exits
        stop.set()
        trainer.join(_STOP_WAIT_S)
        shutil.rmtree(workdir, ignore_errors=True)


def _read_bundle(path: Path) -> dict[str, bytes]:
    return {f.name: f.read_bytes() for f in Path(path).iterdir() if f.is_file()}


def _install(files: dict[str, bytes], out: Path) -> None:
    """Write a bundle's files at `out` atomically (a temporary sibling renamed into place)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent))
    try:
        for name, data in files.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
        replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
