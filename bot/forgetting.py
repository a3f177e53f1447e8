"""The one forget rule: a model may answer a server only if it read the server's corpus after text last left it."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

from .storage.base import Store, utcnow

log = logging.getLogger(__name__)


def may_answer(corpus_read_at: datetime | None, text_removed_at: datetime | None) -> bool:
    """Whether a model trained from a corpus read at `corpus_read_at` may answer a server whose text was last
    removed at `text_removed_at` (the store's record). A model whose reading is unknown may answer only a
    server nothing was ever removed from."""
    if text_removed_at is None:
        return True
    if corpus_read_at is None:
        return False
    return _utc(corpus_read_at) > _utc(text_removed_at)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)  # the store's times are UTC


async def migrate_forget_markers(guilds_dir: Path, store: Store) -> list[int]:
    """Data folders from before the rule kept a forget's fallback in guilds/<id>/forgotten.json (present while no
    model trained without the removed text was served). Each one becomes the store's text_removed_at, set to now
    (no model trained before now was accepted while it existed), and is deleted; the servers migrated."""
    migrated = []
    for marker in sorted(Path(guilds_dir).glob("*/forgotten.json")):
        try:
            guild_id = int(marker.parent.name)
        except ValueError:
            continue
        await store.mark_text_removed(guild_id, utcnow())
        marker.unlink(missing_ok=True)
        migrated.append(guild_id)
        log.info("guild %s: its forget marker file is now the store's record of its last forget", guild_id)
    return migrated
