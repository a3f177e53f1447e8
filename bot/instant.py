"""Each server's instant model: a Kneser-Ney n-gram bundle of its own text, counted in seconds in another process.

A server answers in its own voice seconds after its first upload or backfill, before anyone runs
/train, and after a forget it answers at once from an instant model counted without the removed text.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing as mp
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from core import MIN_TOKENS, exit_with_parent

from . import metrics
from .server_corpus import ServerCorpus

log = logging.getLogger(__name__)

PREFIX = "instant-"  # guilds/<id>/instant-<ns>: a new folder per build, so a cached model of old text is never reused
RACY_NS = 100_000_000  # a folder changed this recently is listed again: file times move in coarse clock ticks


def _build(text: str, out: str, corpus_name: str) -> str:
    """In the worker process: count the n-gram model and save it as a bundle."""
    from core import build_instant

    return str(build_instant(text, out, name="instant", corpus_name=corpus_name).path)


class InstantModels:
    """Builds servers' instant bundles in one worker process, one build per server at a time, newest text wins."""

    def __init__(self, guilds_dir: Path, corpus: ServerCorpus):
        self.guilds_dir, self.corpus = Path(guilds_dir), corpus
        self._pool: ProcessPoolExecutor | None = None  # started on the first build
        self._locks: dict[int, asyncio.Lock] = {}
        self._generation: dict[int, int] = {}  # bumped by a forget: builds from text read before it are dropped
        self._listed: dict[int, tuple[int, Path | None]] = {}  # server -> (its folder's mtime, newest bundle then)

    def current(self, guild_id: int) -> Path | None:
        """The server's newest instant bundle, if it has one.

        Asked for every request and every message: the folder is listed again only when its modification time
        changed (a bundle is renamed into it whole, and older ones removed), so most calls cost one stat.
        """
        folder = self.guilds_dir / str(int(guild_id))
        try:
            stamp = folder.stat().st_mtime_ns
        except OSError:  # no folder yet: nothing built
            return None
        listed = self._listed.get(guild_id)
        if listed is not None and listed[0] == stamp:
            return listed[1]
        built = sorted(
            (p for p in folder.iterdir() if p.name.startswith(PREFIX) and (p / "config.json").is_file()),
            key=lambda p: int(p.name[len(PREFIX) :]) if p.name[len(PREFIX) :].isdigit() else -1,
        )
        newest = built[-1] if built else None
        if time.time_ns() - stamp > RACY_NS:  # a change in the same clock tick would leave the time as it is
            self._listed[guild_id] = (stamp, newest)
        return newest

    def discard(self, guild_id: int) -> None:
        """Forget the server's instant bundles now (they hold text being removed); builds under way are dropped."""
        self._generation[guild_id] = self._generation.get(guild_id, 0) + 1
        self._listed.pop(guild_id, None)
        folder = self.guilds_dir / str(int(guild_id))
        for path in folder.glob(f"{PREFIX}*") if folder.is_dir() else ():
            shutil.rmtree(path, ignore_errors=True)

    async def rebuild(self, guild_id: int) -> Path | None:
        """Count the server's instant model from its corpus as it is now; None when the corpus is too small."""
        lock = self._locks.setdefault(guild_id, asyncio.Lock())
        async with lock:
            generation = self._generation.get(guild_id, 0)
            if await self.corpus.tokens(guild_id) < MIN_TOKENS:
                metrics.INSTANT_MODEL_BUILDS.labels("too_small").inc()
                return None
            text, name = await self.corpus.text(guild_id)
            out = self.guilds_dir / str(int(guild_id)) / f"{PREFIX}{time.time_ns()}"
            started = time.monotonic()
            loop = asyncio.get_running_loop()
            try:
                path = Path(await loop.run_in_executor(self._workers(), _build, text, str(out), name))
            except Exception:
                metrics.INSTANT_MODEL_BUILDS.labels("failed").inc()
                raise
            metrics.INSTANT_MODEL_BUILDS.labels("built").inc()
            metrics.INSTANT_MODEL_BUILD_SECONDS.observe(time.monotonic() - started)
            if self._generation.get(guild_id, 0) != generation:  # a forget came while it counted the old text
                shutil.rmtree(path, ignore_errors=True)
                return None
            for older in (self.guilds_dir / str(int(guild_id))).glob(f"{PREFIX}*"):
                if older != path:
                    shutil.rmtree(older, ignore_errors=True)
            self._listed.pop(guild_id, None)
            log.info("guild %s: instant model counted in %.1f s", guild_id, time.monotonic() - started)
            return path

    def _workers(self) -> ProcessPoolExecutor:
        if self._pool is None:  # spawned, never forked: the bot's process has TensorFlow threads
            self._pool = ProcessPoolExecutor(
                max_workers=1, mp_context=mp.get_context("spawn"), initializer=exit_with_parent, initargs=(os.getpid(),)
            )
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
