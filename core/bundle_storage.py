"""Versioned model storage: bundles published as immutable versions under a folder or an fsspec URL, with a local cache.

Layout: <root>/<key>/<version>/ holds one bundle's files; `manifest.json` is written last, so a version
without it is an interrupted upload that no reader takes. Publishing never changes what is served:
the caller makes a version current by switching its own pointer (the bot: one row in its store) once
publish() has returned, so a crash between the two leaves the old version current. Versions never
change, so a local copy never goes stale.

`open_bundle_storage(url, cache_dir)`: a plain path or file:// URL needs nothing beyond the base
install; any other URL (memory://, s3://, gs://...) goes through fsspec (`pip install "continuo[scale]"`,
plus s3fs, gcsfs... for those filesystems).
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

from .errors import BundleError, ContinuoError

MANIFEST = "manifest.json"  # written last: its presence makes a version complete


class BundleStorage(Protocol):
    """Where published model versions live. Keys name a series of versions (the bot: a server's id)."""

    url: str

    def publish(self, bundle: str | Path, key: str) -> str: ...  # uploads a bundle folder; returns the new version
    def fetch(self, key: str, version: str) -> Path: ...  # a local folder holding that version
    def versions(self, key: str) -> list[str]: ...  # complete versions, oldest first
    def delete(self, key: str, version: str) -> None: ...
    def evict(self, key: str, keep: set[str]) -> None: ...  # drop local copies of versions not in keep


def new_version() -> str:
    """Ids that sort by publication time and never collide between processes."""
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ") + "-" + secrets.token_hex(3)


def _files(bundle: Path) -> dict[str, int]:
    if not bundle.is_dir():
        raise BundleError(f"no model bundle at {bundle}")
    return {p.relative_to(bundle).as_posix(): p.stat().st_size for p in sorted(bundle.rglob("*")) if p.is_file()}


def _check_key(key: str) -> str:
    if not key or "/" in key or key.startswith("."):
        raise ValueError(f"bad model storage key {key!r}")
    return key


class LocalBundleStorage:
    """Versions in a local folder: a version is copied next to its final name, then renamed into place."""

    def __init__(self, root: str | Path):
        self.root = Path(root).expanduser()
        self.url = str(self.root)

    def publish(self, bundle: str | Path, key: str) -> str:
        bundle, version = Path(bundle), new_version()
        files = _files(bundle)
        folder = self.root / _check_key(key)
        try:
            folder.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".tmp", dir=folder))
        except OSError as e:
            raise ContinuoError(
                f"cannot write model storage {self.root}: {e.strerror}; pick a writable folder "
                "(CONTINUO_BOT_MODEL_STORAGE_URL)"
            ) from None
        try:
            shutil.copytree(bundle, tmp, dirs_exist_ok=True)
            (tmp / MANIFEST).write_text(json.dumps({"files": files}), "utf-8")
            os.rename(tmp, folder / version)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return version

    def fetch(self, key: str, version: str) -> Path:
        path = self.root / _check_key(key) / version
        if not (path / MANIFEST).is_file():
            raise BundleError(f"model version {version} is missing from {self.root}")
        return path  # already local, and never changes

    def versions(self, key: str) -> list[str]:
        folder = self.root / _check_key(key)
        found = folder.iterdir() if folder.is_dir() else []
        return sorted(p.name for p in found if not p.name.startswith(".") and (p / MANIFEST).is_file())

    def delete(self, key: str, version: str) -> None:
        path = self.root / _check_key(key) / version
        if path.is_dir():
            trash = path.with_name(f".{version}.deleted")
            os.rename(path, trash)  # gone for readers at once
            shutil.rmtree(trash, ignore_errors=True)

    def evict(self, key: str, keep: set[str]) -> None:
        """Nothing to do: the stored folder is the local copy."""


class FsspecBundleStorage:
    """Versions on any fsspec filesystem, fetched once into a local cache folder."""

    def __init__(self, url: str, cache_dir: str | Path):
        try:
            import fsspec
        except ImportError:
            raise ContinuoError(
                f'model storage at {url} needs fsspec: pip install "continuo[scale]" (and the '
                "filesystem's own package, such as s3fs or gcsfs)"
            ) from None
        try:
            self.fs, self.root = fsspec.core.url_to_fs(url)  # one filesystem object, reused (fsspec caches them)
        except (ImportError, ValueError) as e:
            raise ContinuoError(f"model storage URL {url}: {e}") from None
        self.url, self.cache_dir = url, Path(cache_dir)
        self.root = self.root.rstrip("/")

    def _remote(self, key: str, version: str = "") -> str:
        return f"{self.root}/{_check_key(key)}" + (f"/{version}" if version else "")

    def publish(self, bundle: str | Path, key: str) -> str:
        bundle, version = Path(bundle), new_version()
        files = _files(bundle)
        remote = self._remote(key, version)
        for name in files:  # each file is one atomic object write; the manifest, last, completes the version
            self.fs.makedirs(f"{remote}/{name}".rsplit("/", 1)[0], exist_ok=True)
            self.fs.put_file(str(bundle / name), f"{remote}/{name}")
        self.fs.pipe_file(f"{remote}/{MANIFEST}", json.dumps({"files": files}).encode())
        return version

    def fetch(self, key: str, version: str) -> Path:
        local = self.cache_dir / _check_key(key) / version
        if (local / MANIFEST).is_file():
            return local
        remote = self._remote(key, version)
        try:
            files = json.loads(self.fs.cat_file(f"{remote}/{MANIFEST}"))["files"]
        except FileNotFoundError:
            raise BundleError(f"model version {version} is missing from {self.url}") from None
        local.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{version}.", suffix=".tmp", dir=local.parent))
        try:
            for name, size in files.items():
                (tmp / name).parent.mkdir(parents=True, exist_ok=True)
                self.fs.get_file(f"{remote}/{name}", str(tmp / name))
                if (tmp / name).stat().st_size != size:
                    raise BundleError(f"model version {version} in {self.url}: {name} is damaged")
            (tmp / MANIFEST).write_text(json.dumps({"files": files}), "utf-8")  # last: the copy is whole
            try:
                os.rename(tmp, local)
            except OSError:  # another process or thread fetched it meanwhile: theirs is as good
                if not (local / MANIFEST).is_file():
                    raise
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return local

    def versions(self, key: str) -> list[str]:
        folder = self._remote(key)
        if not self.fs.exists(folder):
            return []
        found = [p.rstrip("/").rsplit("/", 1)[-1] for p in self.fs.ls(folder, detail=False)]
        return sorted(v for v in found if self.fs.exists(f"{folder}/{v}/{MANIFEST}"))

    def delete(self, key: str, version: str) -> None:
        remote = self._remote(key, version)
        if self.fs.exists(f"{remote}/{MANIFEST}"):
            self.fs.rm_file(f"{remote}/{MANIFEST}")  # incomplete for readers at once
        if self.fs.exists(remote):
            self.fs.rm(remote, recursive=True)
        self.evict(key, {v for v in self._cached(key) if v != version})

    def _cached(self, key: str) -> list[str]:
        folder = self.cache_dir / _check_key(key)
        return [p.name for p in folder.iterdir() if not p.name.startswith(".")] if folder.is_dir() else []

    def evict(self, key: str, keep: set[str]) -> None:
        for version in self._cached(key):
            if version not in keep:
                shutil.rmtree(self.cache_dir / key / version, ignore_errors=True)


def open_bundle_storage(url: str | Path, cache_dir: str | Path) -> BundleStorage:
    """Storage for a plain folder or file:// URL (base install), or any other fsspec URL."""
    text = str(url)
    if "://" not in text:
        return LocalBundleStorage(text)
    if text.startswith("file://"):
        return LocalBundleStorage(text[len("file://") :])
    return FsspecBundleStorage(text, cache_dir)
