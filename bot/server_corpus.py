"""A server's corpus as its model trains on it: the bundled base corpus first, then the server's own texts."""

from __future__ import annotations

import asyncio

from core import find_corpus

from .storage import Store
from .text import count_tokens


class ServerCorpus:
    """Builds a server's training text and counts its tokens without reading the whole text again."""

    def __init__(self, store: Store):
        self.store = store
        self._base_token_counts: dict[str, int] = {}  # bundled corpora never change while the bot runs

    async def text(self, guild_id: int) -> tuple[str, str]:
        """(text, name) the server's model trains on: its base corpus, then its own texts, oldest first."""
        base = await self.store.base_corpus(guild_id)
        texts = await self.store.corpus_texts(guild_id)
        if base and (corpus := find_corpus(base)) is not None:
            texts.insert(0, await asyncio.to_thread(corpus.text))
        name = f"this server's text on top of {base}" if base else "this server's text"
        return await asyncio.to_thread("\n".join, texts), name

    async def tokens(self, guild_id: int) -> int:
        """Tokens the server's model would train on, from the counts kept with each stored text."""
        stats = await self.store.corpus_stats(guild_id)
        return stats.tokens + (await self._base_tokens(stats.base) if stats.base else 0)

    async def _base_tokens(self, name: str) -> int:
        if name not in self._base_token_counts:
            corpus = find_corpus(name)
            text = await asyncio.to_thread(corpus.text) if corpus is not None else ""
            self._base_token_counts[name] = await asyncio.to_thread(count_tokens, text) if text else 0
        return self._base_token_counts[name]
