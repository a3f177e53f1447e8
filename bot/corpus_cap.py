"""The size cap on a server's corpus: uploads are refused over it, and recording pauses at it."""

from __future__ import annotations

import math
import time
from typing import TYPE_CHECKING

from core import ContinuoError

if TYPE_CHECKING:
    from .bot import ContinuoBot
    from .storage import Store


class CorpusFull(ContinuoError):
    """The server's corpus reached its size limit."""


def megabytes(n: int | float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} KB"


class CorpusCap:
    """The size cap on each server's corpus, checked for every recorded message and upload without reading the
    whole corpus each time: its size is read from the store (a scan of the corpus) at most every `recheck_s` while
    the server is far from the cap, and what was let in since is added to it. Within NEAR of the cap it is read
    every time, so the cap holds exactly. Text removed meanwhile only leaves the kept size too big, which errs
    toward reading it again."""

    NEAR = 0.9  # of the limit: from there on the store is asked on every check

    def __init__(self, store: Store, limit_mb: float, recheck_s: float = 60.0):
        self.store, self.limit, self.recheck_s = store, limit_mb * 1e6, recheck_s
        self._sizes: dict[int, tuple[float, int]] = {}  # server -> (when read, characters then + let in since)

    async def check(self, guild_id: int, adding: int) -> None:
        """Count `adding` more characters in, or refuse them if they would take the corpus over the limit."""
        read_at, size = self._sizes.get(guild_id, (-math.inf, 0))
        now = time.monotonic()
        if now - read_at > self.recheck_s or size + adding >= self.NEAR * self.limit:
            read_at, size = now, (await self.store.corpus_stats(guild_id)).characters
        if size + adding > self.limit:
            self._sizes[guild_id] = (read_at, size)
            raise CorpusFull(
                f"the corpus would grow to {megabytes(size + adding)}, over this bot's "
                f"{megabytes(self.limit)} limit; remove text with /corpus clear or /corpus unlearn first"
            )
        self._sizes[guild_id] = (read_at, size + adding)


async def check_room(bot: ContinuoBot, guild_id: int, adding: int) -> None:
    """Refuse `adding` more characters that would take the server's corpus over max_corpus_mb."""
    await bot.corpus_cap.check(guild_id, adding)
