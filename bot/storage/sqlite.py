"""The default Store: one SQLite file in WAL mode, used from one dedicated thread so the event loop never waits on it."""
from __future__ import annotations

import asyncio
import functools
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields, replace
from datetime import datetime
from pathlib import Path
from typing import Sequence

from ..text import count_tokens
from .base import UNFINISHED, CorpusEntry, CorpusStats, GuildSettings, TrainingJobRecord, utcnow
from .migrations import migrate

_SETTINGS = tuple(f.name for f in fields(GuildSettings))
_JOB_CHANGES = {"status", "started_at", "finished_at", "corpus_tokens", "val_perplexity", "error"}


def on_db_thread(method):
    """Run a synchronous method on the store's own thread, awaited from the event loop."""
    @functools.wraps(method)
    async def run(self: "SQLiteStore", *args, **kwargs):
        call = functools.partial(method, self, *args, **kwargs)
        return await asyncio.get_running_loop().run_in_executor(self._thread, call)
    return run


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="microseconds") if moment is not None else None


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


class SQLiteStore:
    """Store on SQLite. One connection, owned by one thread: writes are serialised without locks."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="continuo-sqlite")
        self._db: sqlite3.Connection | None = None

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    # --- opening and closing
    @on_db_thread
    def open(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer; a crash never loses committed rows
        db.execute("PRAGMA synchronous=NORMAL")  # durable enough in WAL mode, much faster than FULL
        db.execute("PRAGMA foreign_keys=ON")
        migrate(db, str(self.path))
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._db.close)
            self._db = None
        self._thread.shutdown(wait=True)

    def _guild(self, guild_id: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO guilds (id, created_at) VALUES (?, ?)", (guild_id, _iso(utcnow())))

    # --- servers and their settings
    @on_db_thread
    def guild_settings(self, guild_id: int) -> GuildSettings:
        return self._settings(guild_id)

    def _settings(self, guild_id: int) -> GuildSettings:
        row = self.db.execute(f"SELECT {', '.join(_SETTINGS)} FROM guild_settings WHERE guild_id = ?",
                              (guild_id,)).fetchone()
        defaults = GuildSettings()
        if row is None:
            return defaults
        stored = {name: row[name] for name in _SETTINGS if row[name] is not None}
        if "reply_on_mention" in stored:
            stored["reply_on_mention"] = bool(stored["reply_on_mention"])
        return replace(defaults, **stored)

    @on_db_thread
    def update_guild_settings(self, guild_id: int, **changes) -> GuildSettings:
        unknown = set(changes) - set(_SETTINGS)
        if unknown:
            raise ValueError(f"unknown server setting {sorted(unknown)[0]!r}")
        with self.db:
            self._guild(guild_id)
            self.db.execute("INSERT OR IGNORE INTO guild_settings (guild_id) VALUES (?)", (guild_id,))
            for name, value in changes.items():  # names come from GuildSettings, never from users
                self.db.execute(f"UPDATE guild_settings SET {name} = ? WHERE guild_id = ?", (value, guild_id))
        return self._settings(guild_id)

    @on_db_thread
    def base_corpus(self, guild_id: int) -> str | None:
        row = self.db.execute("SELECT base_corpus FROM guilds WHERE id = ?", (guild_id,)).fetchone()
        return row[0] if row else None

    @on_db_thread
    def set_base_corpus(self, guild_id: int, name: str | None) -> None:
        with self.db:
            self._guild(guild_id)
            self.db.execute("UPDATE guilds SET base_corpus = ? WHERE id = ?", (name, guild_id))

    # --- learned channels
    @on_db_thread
    def learn_channel(self, guild_id: int, channel_id: int) -> bool:
        with self.db:
            self._guild(guild_id)
            cur = self.db.execute("INSERT OR IGNORE INTO learned_channels VALUES (?, ?, ?)",
                                  (guild_id, channel_id, _iso(utcnow())))
        return cur.rowcount > 0

    @on_db_thread
    def unlearn_channel(self, guild_id: int, channel_id: int) -> bool:
        with self.db:
            cur = self.db.execute("DELETE FROM learned_channels WHERE guild_id = ? AND channel_id = ?",
                                  (guild_id, channel_id))
        return cur.rowcount > 0

    @on_db_thread
    def learned_channels(self, guild_id: int) -> list[int]:
        rows = self.db.execute("SELECT channel_id FROM learned_channels WHERE guild_id = ? ORDER BY added_at, channel_id",
                               (guild_id,))
        return [r[0] for r in rows]

    # --- the corpus
    @on_db_thread
    def record(self, entries: Sequence[CorpusEntry]) -> int:
        """Add entries; a message recorded before is replaced by its new text."""
        with self.db:
            for guild_id in {e.guild_id for e in entries}:
                self._guild(guild_id)
            self.db.executemany(
                "INSERT INTO corpus_messages (guild_id, message_id, channel_id, author_id, kind, name, text, tokens,"
                " created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (guild_id, message_id) DO UPDATE SET"
                " text = excluded.text, tokens = excluded.tokens",
                [(e.guild_id, e.message_id, e.channel_id, e.author_id, e.kind, e.name, e.text, count_tokens(e.text),
                  _iso(e.created_at)) for e in entries])
        return len(entries)

    @on_db_thread
    def edit_message(self, guild_id: int, message_id: int, text: str) -> bool:
        with self.db:
            cur = self.db.execute("UPDATE corpus_messages SET text = ?, tokens = ? WHERE guild_id = ? AND message_id = ?",
                                  (text, count_tokens(text), guild_id, message_id))
        return cur.rowcount > 0

    @on_db_thread
    def remove_messages(self, guild_id: int, message_ids: Sequence[int]) -> int:
        with self.db:
            cur = self.db.executemany("DELETE FROM corpus_messages WHERE guild_id = ? AND message_id = ?",
                                      [(guild_id, m) for m in message_ids])
        return cur.rowcount

    @on_db_thread
    def forget_author(self, guild_id: int, author_id: int) -> tuple[int, int]:
        """(messages, files) removed."""
        counts = dict(self.db.execute("SELECT kind, COUNT(*) FROM corpus_messages WHERE guild_id = ? AND author_id = ?"
                                      " GROUP BY kind", (guild_id, author_id)).fetchall())
        with self.db:
            self.db.execute("DELETE FROM corpus_messages WHERE guild_id = ? AND author_id = ?", (guild_id, author_id))
        return counts.get("message", 0), counts.get("file", 0)

    @on_db_thread
    def forget_channel(self, guild_id: int, channel_id: int) -> int:
        with self.db:
            cur = self.db.execute("DELETE FROM corpus_messages WHERE guild_id = ? AND channel_id = ?",
                                  (guild_id, channel_id))
        return cur.rowcount

    @on_db_thread
    def clear_corpus(self, guild_id: int) -> int:
        with self.db:
            cur = self.db.execute("DELETE FROM corpus_messages WHERE guild_id = ?", (guild_id,))
            self.db.execute("UPDATE guilds SET base_corpus = NULL WHERE id = ?", (guild_id,))
        return cur.rowcount

    @on_db_thread
    def corpus_texts(self, guild_id: int) -> list[str]:
        """The server's texts, oldest first (uploads where they were added)."""
        rows = self.db.execute("SELECT text FROM corpus_messages WHERE guild_id = ? ORDER BY created_at, message_id, id",
                               (guild_id,))
        return [r[0] for r in rows]

    @on_db_thread
    def corpus_stats(self, guild_id: int) -> CorpusStats:
        row = self.db.execute(
            "SELECT COALESCE(SUM(kind = 'message'), 0), COALESCE(SUM(kind = 'file'), 0), COALESCE(SUM(tokens), 0),"
            " COALESCE(SUM(LENGTH(text)), 0), COUNT(DISTINCT CASE WHEN kind = 'message' THEN author_id END)"
            " FROM corpus_messages WHERE guild_id = ?", (guild_id,)).fetchone()
        channels = tuple(r[0] for r in self.db.execute(
            "SELECT channel_id FROM learned_channels WHERE guild_id = ? ORDER BY added_at, channel_id", (guild_id,)))
        base = self.db.execute("SELECT base_corpus FROM guilds WHERE id = ?", (guild_id,)).fetchone()
        return CorpusStats(*row, channels=channels, base=base[0] if base else None)

    # --- training jobs
    @on_db_thread
    def add_job(self, guild_id: int, requested_by: int, channel_id: int | None, epochs: int,
                corpus_tokens: int) -> TrainingJobRecord:
        created = utcnow()
        with self.db:
            self._guild(guild_id)
            cur = self.db.execute(
                "INSERT INTO training_jobs (guild_id, status, epochs, requested_by, channel_id, created_at,"
                " corpus_tokens) VALUES (?, 'queued', ?, ?, ?, ?, ?)",
                (guild_id, epochs, requested_by, channel_id, _iso(created), corpus_tokens))
        return self._job(cur.lastrowid)

    @on_db_thread
    def update_job(self, job_id: int, **changes) -> None:
        unknown = set(changes) - _JOB_CHANGES
        if unknown:
            raise ValueError(f"unknown training job field {sorted(unknown)[0]!r}")
        values = {k: _iso(v) if isinstance(v, datetime) else v for k, v in changes.items()}
        with self.db:
            self.db.execute(f"UPDATE training_jobs SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                            (*values.values(), job_id))

    def _job(self, job_id: int) -> TrainingJobRecord:
        return self._to_job(self.db.execute("SELECT * FROM training_jobs WHERE id = ?", (job_id,)).fetchone())

    @staticmethod
    def _to_job(row: sqlite3.Row) -> TrainingJobRecord:
        return TrainingJobRecord(
            id=row["id"], guild_id=row["guild_id"], status=row["status"], epochs=row["epochs"],
            requested_by=row["requested_by"], channel_id=row["channel_id"], created_at=_when(row["created_at"]),
            started_at=_when(row["started_at"]), finished_at=_when(row["finished_at"]),
            corpus_tokens=row["corpus_tokens"], val_perplexity=row["val_perplexity"], error=row["error"])

    @on_db_thread
    def last_job(self, guild_id: int, status: str | None = None) -> TrainingJobRecord | None:
        query = "SELECT * FROM training_jobs WHERE guild_id = ?" + (" AND status = ?" if status else "")
        row = self.db.execute(query + " ORDER BY id DESC LIMIT 1", (guild_id, status) if status else (guild_id,)).fetchone()
        return self._to_job(row) if row else None

    @on_db_thread
    def interrupt_unfinished_jobs(self) -> list[TrainingJobRecord]:
        """Jobs a previous run left queued or running, now marked interrupted (at start-up or shutdown)."""
        marks = ", ".join("?" for _ in UNFINISHED)
        ids = [r[0] for r in self.db.execute(f"SELECT id FROM training_jobs WHERE status IN ({marks})", UNFINISHED)]
        with self.db:
            self.db.execute(f"UPDATE training_jobs SET status = 'interrupted', finished_at = ?, "
                            f"error = 'interrupted by a restart' WHERE status IN ({marks})",
                            (_iso(utcnow()), *UNFINISHED))
        return [self._job(i) for i in ids]
