"""When a server's model retrains by itself: the server asked for it and its corpus grew enough since the last run."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from core import ContinuoError

from ..server_corpus import ServerCorpus
from ..storage import Store
from .trainings import Display, Ticket, Trainings

log = logging.getLogger(__name__)


class RetrainPolicy:
    """Checks a server's corpus growth at most once per `check_every_s` and queues a training when it is due."""

    def __init__(
        self,
        store: Store,
        corpus: ServerCorpus,
        queue: Trainings,
        check_every_s: float,
        channel_display: Callable[[int], Display] | None = None,
    ):
        self.store, self.corpus, self.queue, self.check_every_s = store, corpus, queue, check_every_s
        self.channel_display = channel_display  # where automatic retraining shows progress: the last /train's channel
        self._last_check: dict[int, float] = {}

    async def corpus_grew(self, guild_id: int, guild_name: str) -> Ticket | None:
        """Queue a retraining when one is due; the new ticket, or None."""
        now = time.monotonic()
        if now - self._last_check.get(guild_id, -1e9) < self.check_every_s:
            return None  # counting a corpus costs a query: not on every message
        self._last_check[guild_id] = now
        if self.queue.busy(guild_id):
            return None
        growth = (await self.store.guild_settings(guild_id)).retrain_growth
        last = await self.store.last_job(guild_id, "succeeded")
        if growth <= 0 or last is None:
            return None
        tokens = await self.corpus.tokens(guild_id)
        if tokens < last.corpus_tokens * (1 + growth):
            return None
        log.info("guild %s: corpus grew from %s to %s tokens; retraining", guild_id, last.corpus_tokens, tokens)
        display = self.channel_display(last.channel_id) if self.channel_display and last.channel_id else None
        try:
            return await self.queue.submit(guild_id, guild_name, 0, last.channel_id, display=display)
        except ContinuoError as e:
            log.info("guild %s: automatic retraining not started: %s", guild_id, e)
            return None
