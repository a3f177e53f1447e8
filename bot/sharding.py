"""A sharded bot: several processes, each holding a slice of the shards, taking turns to IDENTIFY."""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import time
from pathlib import Path

from discord.ext import commands

from .bot import ContinuoBot
from .settings import BotSettings

log = logging.getLogger(__name__)


def shard_of(guild_id: int, shard_count: int) -> int:
    """The shard Discord sends a server's events to."""
    return (int(guild_id) >> 22) % shard_count


class IdentifyGate:
    """One IDENTIFY per rate-limit bucket and interval, across every process that shares the folder.

    Discord accepts ``max_concurrency`` IDENTIFYs per 5 seconds, one per bucket ``shard_id %
    max_concurrency``, for all of a bot's connections together; one too many gets an invalid session.
    Each bucket is a lock file holding the time of its last IDENTIFY, so processes started together
    (or restarted) on one machine wait their turn instead of being refused.
    """

    def __init__(self, folder: Path, interval_s: float):
        self.folder, self.interval_s = Path(folder), interval_s
        self.max_concurrency = 1  # set from GET /gateway/bot before the first IDENTIFY

    async def wait_turn(self, shard_id: int) -> None:
        bucket = shard_id % self.max_concurrency
        self.folder.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.folder / f"identify-{bucket}.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            while True:  # poll rather than block in flock: the event loop keeps running
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    await asyncio.sleep(0.05)
            last = _read_time(fd)
            wait = last + self.interval_s - time.time()
            if wait > 0:
                log.info("shard %s waits %.1f s for its IDENTIFY turn (bucket %s)", shard_id, wait, bucket)
                await asyncio.sleep(wait)
            os.lseek(fd, 0, os.SEEK_SET)
            os.ftruncate(fd, 0)
            os.write(fd, f"{time.time():.6f}".encode())
        finally:
            os.close(fd)  # releases the lock


def _read_time(fd: int) -> float:
    os.lseek(fd, 0, os.SEEK_SET)
    with contextlib.suppress(ValueError):
        return float(os.read(fd, 64) or b"0")
    return 0.0


class ShardedContinuoBot(ContinuoBot, commands.AutoShardedBot):
    """Continuo's bot holding ``settings.shard_ids`` of ``settings.shard_count`` shards.

    Discord sends each shard only its servers' events, so a server's commands, and its model,
    are served by the one process that holds its shard. Commands are synced by the process
    holding shard 0 only.
    """

    def __init__(self, settings: BotSettings, **options):
        if settings.shard_ids is not None and 0 not in settings.shard_ids:
            # Every process syncing on start-up would only repeat the same writes (and meet rate limits).
            settings = settings.model_copy(update={"sync_commands": False})
        super().__init__(settings, shard_count=settings.shard_count, shard_ids=settings.shard_ids, **options)
        self.identify_gate = IdentifyGate(settings.home / "gateway", settings.identify_interval_s)

    async def setup_hook(self) -> None:
        await super().setup_hook()
        limits = await self.fetch_session_start_limits()
        self.identify_gate.max_concurrency = max(1, limits.max_concurrency)
        log.info(
            "shards %s of %s; %s IDENTIFYs left today, %s at once",
            self.settings.shard_ids,
            self.shard_count,
            limits.remaining,
            limits.max_concurrency,
        )

    async def before_identify_hook(self, shard_id: int | None, *, initial: bool = False) -> None:
        await self.identify_gate.wait_turn(shard_id or 0)

    def serves(self, guild_id: int) -> bool:
        """Whether this process holds the shard of that server."""
        return shard_of(guild_id, self.shard_count) in (self.shard_ids or range(self.shard_count))


def make_bot(settings: BotSettings, **options) -> ContinuoBot:
    """The unsharded bot (one connection for every server), or a sharded one when shard_count is set."""
    if settings.shard_count is None:
        return ContinuoBot(settings, **options)
    return ShardedContinuoBot(settings, **options)
