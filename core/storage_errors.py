"""Writes that cannot happen: a folder checked before any work, and one line naming the folder, why and what to do."""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path

from .errors import ContinuoError


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
