"""The size cap on a server's corpus: uploads are refused over it, and recording pauses at it."""

from __future__ import annotations

from typing import TYPE_CHECKING

from core import ContinuoError

if TYPE_CHECKING:
    from .bot import ContinuoBot


class CorpusFull(ContinuoError):
    """The server's corpus reached its size limit."""


def megabytes(n: int | float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} KB"


async def check_room(bot: ContinuoBot, guild_id: int, adding: int) -> None:
    """Refuse `adding` more characters that would take the server's corpus over max_corpus_mb."""
    limit = bot.settings.max_corpus_mb * 1e6
    size = (await bot.store.corpus_stats(guild_id)).characters
    if size + adding > limit:
        raise CorpusFull(
            f"the corpus would grow to {megabytes(size + adding)}, over this bot's "
            f"{megabytes(limit)} limit; remove text with /corpus clear or /corpus unlearn first"
        )
