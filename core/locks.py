"""Guards around a training run: one run per model at a time, and a writable folder with room for its files."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import shutil
import tempfile
from pathlib import Path

from .errors import ContinuoError

SAVES_IN_FLIGHT = 5  # old bundle + new bundle + checkpoint (weights, 2 Adam moments, best weights) at once, in bundles
_SLACK_BYTES = 8 << 20  # vocab, card, config, the file system's own rounding


class ModelBusy(ContinuoError):
    """Another process is training a model of the same name."""


class StorageError(ContinuoError):
    """A folder is not writable or has no room; nothing was written."""


def storage_error(e: OSError, what: str, where: str | Path) -> StorageError:
    """One line for a failed write: which folder, why, and what to do."""
    advice = {
        errno.ENOSPC: "free some space there",
        errno.EDQUOT: "free some space there",
        errno.EROFS: "the file system is read-only: set CONTINUO_HOME or --out to a writable folder",
        errno.EACCES: "give this user write permission there, or set CONTINUO_HOME or --out elsewhere",
        errno.EPERM: "give this user write permission there, or set CONTINUO_HOME or --out elsewhere",
    }
    why = e.strerror or type(e).__name__
    fix = advice.get(e.errno or 0, "check the folder")
    return StorageError(f"{where}: cannot {what} ({why}); {fix}; the previous model is unchanged")


def estimated_bytes(model_config, train_config) -> int:
    """Roughly the disk a run of these settings needs at its peak, from a vocabulary at its cap."""
    v = max(3, int(getattr(train_config, "max_vocab", 20000)))
    model_config = model_config.sized_for(0)  # sizes left open: the largest the corpus could get
    e, u, layers = model_config.embedding_dim, model_config.units, model_config.bidirectional_layers
    directions = 2 if model_config.bidirectional else 1
    params, width = v * e, e
    for _ in range(layers):
        params += directions * 4 * (width + u + 1) * u
        width = directions * u
    params += 4 * (width + u + 1) * u + (u + 1) * v
    return SAVES_IN_FLIGHT * 4 * params + _SLACK_BYTES


def check_writable(folder: Path, need_bytes: int = 0) -> None:
    """Refuse, before any work, a folder that cannot be created or written, or that lacks `need_bytes` free."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder, prefix=".continuo-probe.") as f:
            f.write(b"x")
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        raise storage_error(e, "write there", folder) from None
    free = shutil.disk_usage(folder).free
    if free < need_bytes:
        raise StorageError(
            f"{folder}: only {free / 1e6:.1f} MB free, and a model of these settings needs about "
            f"{need_bytes / 1e6:.0f} MB while it trains and saves; free some space, or set "
            "CONTINUO_HOME or --out to another disk"
        )


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
