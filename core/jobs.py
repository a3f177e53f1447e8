"""Training jobs behind a small interface; the embedded default runs each job in its own local process."""

from __future__ import annotations

import itertools
import multiprocessing as mp
import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, cast

from .errors import Cancelled, ContinuoError
from .model import ModelConfig
from .training import CANCELLED, ProgressCallback, TrainConfig, TrainResult

_NICENESS = 5  # training yields the CPU to the UI or the bot's event loop
_CANCEL_GRACE_S = 5.0  # a cancelled job that has not stopped by then (still starting up, say) is stopped harder


@dataclass
class TrainRequest:
    """Everything a worker needs to train one bundle."""

    out: str | Path  # where the bundle is saved (atomically)
    source: str | Path | None = None  # a bundled corpus name or a text file
    text: str | None = None  # or the text itself
    corpus_name: str = ""  # shown on the model card
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    valid_text: str | None = None  # held-out text; default: the tail of the corpus
    checkpoint_dir: str | Path | None = None  # resume an interrupted run from here
    keep_checkpoint: bool = False  # True: the caller removes it once the bundle is published, not train()
    neural: bool = True  # False: only the instant n-gram model (seconds)
    instant_out: str | Path | None = None  # also save the instant n-gram model here as soon as it is counted


class Job(Protocol):
    id: str

    def cancel(self) -> None: ...
    def done(self) -> bool: ...
    def result(self, timeout: float | None = None) -> TrainResult: ...


class JobRunner(Protocol):
    def submit(self, request: TrainRequest, on_progress: ProgressCallback | None = None) -> Job: ...


def run_request(request: TrainRequest, on_progress=None, should_stop=None) -> TrainResult:
    """Train as `request` says, in this process."""
    from .data import resolve_text_source
    from .locks import training_guard
    from .training import train

    text, name = request.text, request.corpus_name
    if text is None:
        if request.source is None:
            raise ContinuoError("nothing to train on: give a corpus name or a text file")
        source_name, text = resolve_text_source(request.source)
        name = name or source_name
    with training_guard(request.out, request.checkpoint_dir, request.model, request.train):
        return train(
            text,
            request.out,
            request.model,
            request.train,
            corpus_name=name,
            valid_text=request.valid_text,
            on_progress=on_progress,
            should_stop=should_stop,
            checkpoint_dir=request.checkpoint_dir,
            keep_checkpoint=request.keep_checkpoint,
            neural=request.neural,
            instant_out=request.instant_out,
        )


def exit_with_parent(parent: int) -> None:
    """In a child process: end it as soon as `parent` is gone. A parent killed outright (SIGKILL, an
    out-of-memory kill) cannot stop its children, and nobody is left to read what they produce."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _worker(request: TrainRequest, events: mp.Queue, cancel, parent: int) -> None:
    from .backend import use_a_replica_per_core

    exit_with_parent(parent)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    use_a_replica_per_core()  # this process only trains
    try:
        os.nice(_NICENESS)
    except OSError:
        pass
    events.put(ended(lambda: run_request(request, lambda p: events.put(("progress", p)), cancel.is_set)))


def ended(train: Callable[[], object]) -> tuple[str, object]:
    """How a job's training ended, as its runner's last event: ("ok", what `train()` returned), ("cancelled",
    why) or ("error", the one line the client shows; it keeps its old model)."""
    try:
        return "ok", train()
    except Cancelled as e:
        return "cancelled", str(e)
    except ContinuoError as e:
        return "error", str(e)
    except Exception as e:  # noqa: BLE001 - reported to the client, who keeps the old model
        return "error", f"training failed: {type(e).__name__}: {e}"


class JobOutcome:
    """How a runner's job ends: set once by the job's reader thread, waited for by `result()`."""

    def __init__(self) -> None:
        self._outcome: tuple[str, object] | None = None
        self._finished = threading.Event()

    def _finish(self, kind: str, payload: object) -> None:
        if self._outcome is None:
            self._outcome = (kind, payload)
            self._finished.set()

    def _after_grace(self, action: Callable[[], None]) -> None:
        """Run `action` (a harder stop) if the job has not ended `_CANCEL_GRACE_S` after a cancel."""
        timer = threading.Timer(_CANCEL_GRACE_S, lambda: None if self._finished.is_set() else action())
        timer.daemon = True
        timer.start()

    def done(self) -> bool:
        return self._finished.is_set()

    def result(self, timeout: float | None = None) -> TrainResult:
        if not self._finished.wait(timeout):
            raise TimeoutError(f"{getattr(self, 'id', 'job')} still running")
        assert self._outcome is not None  # set before _finished
        kind, payload = self._outcome
        if kind == "ok":
            return cast(TrainResult, payload)
        raise (Cancelled if kind == "cancelled" else ContinuoError)(payload)


class ProcessJob(JobOutcome):
    """A training job in a child process; progress comes back through a queue to a reader thread."""

    _ids = itertools.count(1)

    def __init__(self, request: TrainRequest, on_progress: ProgressCallback | None = None):
        ctx = mp.get_context("spawn")  # never fork a process that has TensorFlow threads
        self.id = f"job-{os.getpid()}-{next(self._ids)}"
        self._events, self._cancel = ctx.Queue(), ctx.Event()
        self._on_progress = on_progress or (lambda p: None)
        super().__init__()
        self._process = ctx.Process(
            target=_worker, args=(request, self._events, self._cancel, os.getpid()), daemon=True
        )
        self._process.start()
        threading.Thread(target=self._pump, name=self.id, daemon=True).start()

    def _pump(self) -> None:
        outcome: tuple[str, object] | None = None
        while outcome is None:
            try:
                kind, payload = self._events.get(timeout=0.2)
            except queue.Empty:
                if not self._process.is_alive() and self._events.empty():
                    outcome = (
                        ("cancelled", CANCELLED)
                        if self._cancel.is_set()
                        else (
                            "error",
                            f"the training process stopped unexpectedly (exit code {self._process.exitcode})",
                        )
                    )
                continue
            if kind == "progress":
                try:
                    self._on_progress(payload)
                except Exception:  # noqa: BLE001 - a client's display error must not lose the job
                    pass
            else:
                outcome = (kind, payload)
        self._process.join(timeout=10)
        self._finish(*outcome)  # once the process is gone

    def cancel(self) -> None:
        """Stop the job: at its next batch, or by terminating the process after a short grace."""
        if self._cancel.is_set() or self._finished.is_set():
            return
        self._cancel.set()
        self._after_grace(self._terminate)

    def _terminate(self) -> None:
        if self._process.is_alive():
            self._process.terminate()  # the reader thread then reports the job as cancelled


class LocalProcessRunner:
    """The embedded job runner: one local process per job."""

    def submit(self, request: TrainRequest, on_progress: ProgressCallback | None = None) -> ProcessJob:
        return ProcessJob(request, on_progress)
