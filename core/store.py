"""Where trained bundles live: a folder of named bundles, plus the default model shipped with the package."""

from __future__ import annotations

import builtins
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

from .bundle import ModelCard, existing, leftover_names, read_card, recover, replace_dir
from .errors import BundleError, ContinuoError
from .settings import get_settings

DEFAULT_MODEL = "default"  # the name of the bundled model
DEFAULT_MODEL_PATH = Path(__file__).resolve().parent / "default_model"
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def check_name(name: str) -> str:
    if not _NAME.match(name or "") or name == DEFAULT_MODEL:
        raise ContinuoError(
            f"bad model name {name!r}: use 1-64 letters, digits, '.', '_' or '-' (and not {DEFAULT_MODEL!r})"
        )
    return name


@dataclass
class StoredModel:
    name: str
    path: Path
    card: ModelCard | None  # None when the bundle is unreadable
    error: str = ""  # why it is unreadable


class ModelStore:
    """Named bundles in one folder (the data folder's models/ by default)."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root is not None else get_settings().models_dir

    def path(self, name: str) -> Path:
        return DEFAULT_MODEL_PATH if name == DEFAULT_MODEL else self.root / check_name(name)

    def resolve(self, name_or_path: str | Path | None) -> Path:
        """A bundle's path from a model name, a path, or None for the default model."""
        if name_or_path is None or str(name_or_path) == DEFAULT_MODEL:
            return DEFAULT_MODEL_PATH
        as_path = Path(name_or_path).expanduser()
        if as_path.is_dir():
            return as_path
        if _NAME.match(str(name_or_path)) and (found := existing(self.root / str(name_or_path))).is_dir():
            return found  # the bundle itself, or the one a save killed mid-swap left aside
        raise BundleError(f"no model named {str(name_or_path)!r}; `continuo models` lists the trained ones")

    def list(self, include_default: bool = True) -> list[StoredModel]:
        found = []
        paths = [(DEFAULT_MODEL, DEFAULT_MODEL_PATH)] if include_default and DEFAULT_MODEL_PATH.is_dir() else []
        if self.root.is_dir():
            self.tidy()
            paths += sorted((p.name, p) for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        for name, path in paths:
            try:
                found.append(StoredModel(name, path, read_card(path)))
            except BundleError as e:
                found.append(StoredModel(name, path, None, str(e)))
        return found

    def tidy(self) -> builtins.list[Path]:  # `list` here is the method above
        """Remove what killed saves left (temp folders, swapped-out bundles), for names no one is training now."""
        from .locks import NameLock

        removed = []
        for name in sorted(n for n in leftover_names(self.root) if _NAME.match(n)):
            target = self.root / name
            lock = NameLock(target)
            if lock.try_acquire():  # a running training's temp folder is not a leftover
                try:
                    removed += recover(target)
                finally:
                    lock.release()
        return removed

    def rename(self, old: str, new: str) -> Path:
        src, dst = self.path(old), self.path(new)
        if old == DEFAULT_MODEL:
            raise ContinuoError("the default model cannot be renamed")
        if not src.is_dir():
            raise BundleError(f"no model named {old!r}")
        if dst.exists():
            raise ContinuoError(f"a model named {new!r} already exists; pick another name or delete it first")
        src.rename(dst)
        return dst

    def delete(self, name: str) -> None:
        if name == DEFAULT_MODEL:
            raise ContinuoError("the default model cannot be deleted")
        path = self.path(name)
        if not path.is_dir():
            raise BundleError(f"no model named {name!r}")
        trash = path.with_name(f".{name}.deleted")
        replace_dir(path, trash)  # one rename makes the model disappear at once
        shutil.rmtree(trash, ignore_errors=True)
