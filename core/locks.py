"""Locks on names: one training run per model at a time, held until its process ends, however it ends."""

from __future__ import annotations

import contextlib
import fcntl
import os
from pathlib import Path

from .errors import ContinuoError
from .model_size import estimated_bytes
from .storage_errors import check_writable


class ModelBusy(ContinuoError):
    """Another process is training a model of the same name."""


class NameLock:
    """An exclusive lock on one name in one folder; the kernel drops it when its process dies, however it dies."""

    def __init__(self, target: Path, what: str = "model"):
        self.target, self.what = Path(target), what
        self.path = self.target.parent / f".{self.target.name}.lock"
        self._fd: int | None = None

    def acquire(self) -> NameLock:
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
            os.close(fd)
            raise ModelBusy(
                f"the {self.what} {self.target.name!r} is being trained by another process"
                f"{f' (pid {holder})' if holder.isdigit() else ''}; wait for it to finish, or give "
                "this run another name"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        self._fd = fd
        return self

    def try_acquire(self) -> bool:
        try:
            self.acquire()
            return True
        except (ModelBusy, OSError):
            return False

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock; the file stays, so no one locks a file about to vanish
            self._fd = None

    def __enter__(self) -> NameLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


@contextlib.contextmanager
def training_guard(out: str | Path, checkpoint_dir: str | Path | None, model_config, train_config):
    """Hold what a training run of `out` needs: its folders checked, its name locked, old leftovers tidied.

    Refuses at once, with one line, a second run of the same model, a folder that cannot be written
    and a disk without room, instead of failing after the training.
    """
    from .bundle import recover

    out = Path(out)
    check_writable(out.parent, estimated_bytes(model_config, train_config))
    if checkpoint_dir is not None:
        check_writable(Path(checkpoint_dir).parent)
    with contextlib.ExitStack() as stack:
        stack.enter_context(NameLock(out))
        if checkpoint_dir is not None and Path(checkpoint_dir).resolve() != out.resolve():
            stack.enter_context(NameLock(Path(checkpoint_dir), "checkpoint of model"))
        recover(out)  # only the lock holder may touch the name's temp folders
        yield
