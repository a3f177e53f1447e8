"""The default Store: one SQLite file in WAL mode, used from one dedicated thread: the event loop never waits on it."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import fields, replace
from datetime import datetime
from pathlib import Path
from typing import overload

from core import ContinuoError

from ..metrics import STORE_WRITE_RETRIES, measure_writes
from ..text import count_tokens
from .base import (
    UNFINISHED,
    CorpusEntry,
    CorpusStats,
    GuildData,
    GuildSettings,
    ModelPointer,
    ModelVersion,
    TrainingJobRecord,
    utcnow,
)
from .migrations import migrate

log = logging.getLogger(__name__)

_SETTINGS = tuple(f.name for f in fields(GuildSettings))
_JOB_CHANGES = {"status", "started_at", "finished_at", "corpus_tokens", "val_perplexity", "error"}


class StoreLocked(ContinuoError):
    """Another process held the database's lock for longer than the store keeps retrying."""


def on_db_thread(method):
    """Run a synchronous method on the store's own thread, awaited from the event loop.

    Calls run one at a time in the order they were made (a FIFO lock), so a write that waits for
    another process's lock stays in line ahead of the ones made after it: none is dropped or reordered.
    While the file is locked, the call is retried with backoff for up to `write_retry_s`.
    """

    @functools.wraps(method)
    async def run(self: SQLiteStore, *args, **kwargs):
        call = functools.partial(method, self, *args, **kwargs)
        loop = asyncio.get_running_loop()
        async with self._turn:
            deadline, pause = time.monotonic() + self.write_retry_s, 0.05
            while True:
                try:
                    return await loop.run_in_executor(self._thread, self._guarded, call)
                except _Locked as e:
                    if time.monotonic() + pause > deadline:
                        log.error(
                            "%s: %s stayed locked by another process for %.0f s; giving up",
                            self.path,
                            method.__name__,
                            self.write_retry_s,
                        )
                        raise StoreLocked(
                            f"{self.path} stayed locked by another process for {self.write_retry_s:.0f} s, so "
                            f"{method.__name__.replace('_', ' ')} could not be stored; stop the other program "
                            "using that file and try again"
                        ) from None
                    log.warning(
                        "%s is locked by another process (%s); %s waits and retries", self.path, e, method.__name__
                    )
                    STORE_WRITE_RETRIES.labels(method.__name__).inc()
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 5.0)

    return run


class _Locked(Exception):
    """SQLITE_BUSY / SQLITE_LOCKED after the busy timeout: worth another try."""


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat(timespec="microseconds") if moment is not None else None


@overload
def _when(text: str) -> datetime: ...
@overload
def _when(text: None) -> None: ...
def _when(text: str | None) -> datetime | None:  # NOT NULL columns read back as datetimes, the others maybe None
    return datetime.fromisoformat(text) if text else None


def corrupt(path: Path, error: Exception) -> ContinuoError:
    return ContinuoError(
        f"{path} is not a usable SQLite database ({error}): stop the bot, restore a backup over it "
        "(made by `continuo bot backup`) or move it away to start with an empty one"
    )


@measure_writes
class SQLiteStore:
    """Store on SQLite. One connection, owned by one thread: writes are serialised without locks."""

    dialect = "sqlite"

    def __init__(self, path: str | Path, busy_timeout_s: float = 5.0, write_retry_s: float = 600.0):
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s  # one try waits this long for another process's lock
        self.write_retry_s = write_retry_s  # then tries again with backoff for this long before giving up
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="continuo-sqlite")
        self._turn = asyncio.Lock()
        self._db: sqlite3.Connection | None = None

    @property
    def url(self) -> str:
        return f"sqlite:///{self.path}"

    def _guarded(self, call):
        """Tell a lock held elsewhere (retry) from a damaged file (one line naming it) from everything else."""
        try:
            return call()
        except sqlite3.OperationalError as e:
            if self._db is not None and self._db.in_transaction:
                self._db.rollback()
            if "locked" in str(e) or "busy" in str(e):
                raise _Locked(str(e)) from None
            if "malformed" in str(e) or "not a database" in str(e):
                raise corrupt(self.path, e) from None
            raise
        except sqlite3.DatabaseError as e:
            if type(e) is sqlite3.DatabaseError:  # not an integrity or programming error: the file itself
                raise corrupt(self.path, e) from None
            raise

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    # --- opening and closing
    @on_db_thread
    def open(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ContinuoError(
                f"cannot create the database folder {self.path.parent}: {e.strerror}; "
                "pick a writable --data folder or --database URL"
            ) from None
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_s)
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer; a crash never loses committed rows
            db.execute("PRAGMA synchronous=NORMAL")  # durable enough in WAL mode, much faster than FULL
            db.execute("PRAGMA foreign_keys=ON")
            migrate(db, str(self.path))
        except BaseException:
            db.close()
            raise
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._db.close)
            self._db = None
        self._thread.shutdown(wait=True)

    @on_db_thread
    def ping(self) -> None:
        """Raise unless the database answers a query and its file is still where it was opened (for /readyz)."""
        if not self.path.is_file():
            raise ContinuoError(f"{self.path} is missing")
        self.db.execute("SELECT 1 FROM guilds LIMIT 1").fetchall()

    def _guild(self, guild_id: int) -> None:
        self.db.execute("INSERT OR IGNORE INTO guilds (id, created_at) VALUES (?, ?)", (guild_id, _iso(utcnow())))

    # --- servers and their settings
    @on_db_thread
    def guild_settings(self, guild_id: int) -> GuildSettings:
        return self._settings(guild_id)

    def _settings(self, guild_id: int) -> GuildSettings:
        row = self.db.execute(
            f"SELECT {', '.join(_SETTINGS)} FROM guild_settings WHERE guild_id = ?", (guild_id,)
        ).fetchone()
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
            cur = self.db.execute(
                "INSERT OR IGNORE INTO learned_channels VALUES (?, ?, ?)", (guild_id, channel_id, _iso(utcnow()))
            )
        return cur.rowcount > 0

    @on_db_thread
    def unlearn_channel(self, guild_id: int, channel_id: int) -> bool:
        with self.db:
            cur = self.db.execute(
                "DELETE FROM learned_channels WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
            )
        return cur.rowcount > 0

    @on_db_thread
    def learned_channels(self, guild_id: int) -> list[int]:
        rows = self.db.execute(
            "SELECT channel_id FROM learned_channels WHERE guild_id = ? ORDER BY added_at, channel_id", (guild_id,)
        )
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
                [e.row(e.guild_id, _iso) for e in entries],
            )
        return len(entries)

    @on_db_thread
    def edit_message(self, guild_id: int, message_id: int, text: str) -> bool:
        with self.db:
            cur = self.db.execute(
                "UPDATE corpus_messages SET text = ?, tokens = ? WHERE guild_id = ? AND message_id = ?",
                (text, count_tokens(text), guild_id, message_id),
            )
        return cur.rowcount > 0

    @on_db_thread
    def remove_messages(self, guild_id: int, message_ids: Sequence[int]) -> int:
        with self.db:
            cur = self.db.executemany(
                "DELETE FROM corpus_messages WHERE guild_id = ? AND message_id = ?",
                [(guild_id, m) for m in message_ids],
            )
        return cur.rowcount

    @on_db_thread
    def forget_author(self, guild_id: int, author_id: int) -> tuple[int, int]:
        """(messages, files) removed."""
        counts = dict(
            self.db.execute(
                "SELECT kind, COUNT(*) FROM corpus_messages WHERE guild_id = ? AND author_id = ? GROUP BY kind",
                (guild_id, author_id),
            ).fetchall()
        )
        with self.db:
            cur = self.db.execute(
                "DELETE FROM corpus_messages WHERE guild_id = ? AND author_id = ?", (guild_id, author_id)
            )
            self._removed(guild_id, cur.rowcount)
        return counts.get("message", 0), counts.get("file", 0)

    @on_db_thread
    def forget_channel(self, guild_id: int, channel_id: int) -> int:
        with self.db:
            cur = self.db.execute(
                "DELETE FROM corpus_messages WHERE guild_id = ? AND channel_id = ?", (guild_id, channel_id)
            )
            self._removed(guild_id, cur.rowcount)
        return cur.rowcount

    @on_db_thread
    def clear_corpus(self, guild_id: int) -> int:
        with self.db:
            cur = self.db.execute("DELETE FROM corpus_messages WHERE guild_id = ?", (guild_id,))
            self.db.execute("UPDATE guilds SET base_corpus = NULL WHERE id = ?", (guild_id,))
            self._removed(guild_id, cur.rowcount)
        return cur.rowcount

    def _removed(self, guild_id: int, rows: int) -> None:
        if rows > 0:  # a forget: models trained before now must not come back (bot.storage.versions)
            self.db.execute("UPDATE guilds SET text_removed_at = ? WHERE id = ?", (_iso(utcnow()), guild_id))

    @on_db_thread
    def text_removed_at(self, guild_id: int) -> datetime | None:
        row = self.db.execute("SELECT text_removed_at FROM guilds WHERE id = ?", (guild_id,)).fetchone()
        return _when(row[0]) if row else None

    @on_db_thread
    def corpus_texts(self, guild_id: int) -> list[str]:
        """The server's texts, oldest first (uploads where they were added)."""
        rows = self.db.execute(
            "SELECT text FROM corpus_messages WHERE guild_id = ? ORDER BY created_at, message_id, id", (guild_id,)
        )
        return [r[0] for r in rows]

    @on_db_thread
    def corpus_stats(self, guild_id: int) -> CorpusStats:
        row = self.db.execute(
            "SELECT COALESCE(SUM(kind = 'message'), 0), COALESCE(SUM(kind = 'file'), 0), COALESCE(SUM(tokens), 0),"
            " COALESCE(SUM(LENGTH(text)), 0), COUNT(DISTINCT CASE WHEN kind = 'message' THEN author_id END)"
            " FROM corpus_messages WHERE guild_id = ?",
            (guild_id,),
        ).fetchone()
        channels = tuple(
            r[0]
            for r in self.db.execute(
                "SELECT channel_id FROM learned_channels WHERE guild_id = ? ORDER BY added_at, channel_id", (guild_id,)
            )
        )
        base = self.db.execute("SELECT base_corpus FROM guilds WHERE id = ?", (guild_id,)).fetchone()
        messages, files, tokens, characters, authors = row
        return CorpusStats(messages, files, tokens, characters, authors, channels, base[0] if base else None)

    # --- training jobs
    @on_db_thread
    def add_job(
        self, guild_id: int, requested_by: int, channel_id: int | None, epochs: int, corpus_tokens: int
    ) -> TrainingJobRecord:
        created = utcnow()
        with self.db:
            self._guild(guild_id)
            cur = self.db.execute(
                "INSERT INTO training_jobs (guild_id, status, epochs, requested_by, channel_id, created_at,"
                " corpus_tokens) VALUES (?, 'queued', ?, ?, ?, ?, ?)",
                (guild_id, epochs, requested_by, channel_id, _iso(created), corpus_tokens),
            )
        assert cur.lastrowid is not None  # an INSERT into a rowid table sets it
        return self._job(cur.lastrowid)

    @on_db_thread
    def update_job(self, job_id: int, **changes) -> None:
        unknown = set(changes) - _JOB_CHANGES
        if unknown:
            raise ValueError(f"unknown training job field {sorted(unknown)[0]!r}")
        values = {k: _iso(v) if isinstance(v, datetime) else v for k, v in changes.items()}
        with self.db:
            self.db.execute(
                f"UPDATE training_jobs SET {', '.join(f'{k} = ?' for k in values)} WHERE id = ?",
                (*values.values(), job_id),
            )

    def _job(self, job_id: int) -> TrainingJobRecord:
        return self._to_job(self.db.execute("SELECT * FROM training_jobs WHERE id = ?", (job_id,)).fetchone())

    @staticmethod
    def _to_job(row: sqlite3.Row) -> TrainingJobRecord:
        return TrainingJobRecord(
            id=row["id"],
            guild_id=row["guild_id"],
            status=row["status"],
            epochs=row["epochs"],
            requested_by=row["requested_by"],
            channel_id=row["channel_id"],
            created_at=_when(row["created_at"]),
            started_at=_when(row["started_at"]),
            finished_at=_when(row["finished_at"]),
            corpus_tokens=row["corpus_tokens"],
            val_perplexity=row["val_perplexity"],
            error=row["error"],
        )

    @on_db_thread
    def last_job(self, guild_id: int, status: str | None = None) -> TrainingJobRecord | None:
        query = "SELECT * FROM training_jobs WHERE guild_id = ?" + (" AND status = ?" if status else "")
        row = self.db.execute(
            query + " ORDER BY id DESC LIMIT 1", (guild_id, status) if status else (guild_id,)
        ).fetchone()
        return self._to_job(row) if row else None

    @on_db_thread
    def interrupt_unfinished_jobs(self) -> list[TrainingJobRecord]:
        """Jobs a previous run left queued or running, now marked interrupted (at start-up or shutdown)."""
        marks = ", ".join("?" for _ in UNFINISHED)
        ids = [r[0] for r in self.db.execute(f"SELECT id FROM training_jobs WHERE status IN ({marks})", UNFINISHED)]
        with self.db:
            self.db.execute(
                f"UPDATE training_jobs SET status = 'interrupted', finished_at = ?, "
                f"error = 'interrupted by a restart' WHERE status IN ({marks})",
                (_iso(utcnow()), *UNFINISHED),
            )
        return [self._job(i) for i in ids]

    @on_db_thread
    def unfinished_jobs(self) -> list[TrainingJobRecord]:
        marks = ", ".join("?" for _ in UNFINISHED)
        rows = self.db.execute(f"SELECT * FROM training_jobs WHERE status IN ({marks}) ORDER BY id", UNFINISHED)
        return [self._to_job(r) for r in rows]

    @on_db_thread
    def set_job_progress(self, job_id: int, progress: str) -> None:
        with self.db:
            self.db.execute(
                "INSERT INTO job_progress VALUES (?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET "
                "progress = excluded.progress, updated_at = excluded.updated_at",
                (job_id, progress, _iso(utcnow())),
            )

    @on_db_thread
    def job_progress(self, job_id: int) -> str | None:
        row = self.db.execute("SELECT progress FROM job_progress WHERE job_id = ?", (job_id,)).fetchone()
        return row[0] if row else None

    # --- model versions
    @on_db_thread
    def add_model_version(self, record: ModelVersion) -> None:
        with self.db:
            self._guild(record.guild_id)
            self.db.execute(
                "INSERT INTO model_versions VALUES (?, ?, ?, ?, ?)",
                (record.guild_id, record.version, _iso(record.created_at), record.val_perplexity, record.tokens),
            )

    @on_db_thread
    def model_versions(self, guild_id: int) -> list[ModelVersion]:
        rows = self.db.execute("SELECT * FROM model_versions WHERE guild_id = ? ORDER BY version", (guild_id,))
        return [
            ModelVersion(r["guild_id"], r["version"], _when(r["created_at"]), r["val_perplexity"], r["tokens"])
            for r in rows
        ]

    @on_db_thread
    def current_model(self, guild_id: int) -> ModelPointer | None:
        row = self.db.execute(
            "SELECT guild_id, version, seq FROM model_pointers WHERE guild_id = ?", (guild_id,)
        ).fetchone()
        return ModelPointer(*row) if row else None

    @on_db_thread
    def switch_model(self, guild_id: int, version: str | None) -> ModelPointer:
        """Point the server at one of its versions (None: the default model). Watchers poll for it."""
        with self.db:
            self._guild(guild_id)
            seq = self.db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM model_pointers").fetchone()[0]
            self.db.execute(
                "INSERT INTO model_pointers VALUES (?, ?, ?, ?) ON CONFLICT (guild_id) DO UPDATE SET"
                " version = excluded.version, seq = excluded.seq, switched_at = excluded.switched_at",
                (guild_id, version, seq, _iso(utcnow())),
            )
        return ModelPointer(guild_id, version, seq)

    @on_db_thread
    def remove_model_versions(self, guild_id: int, versions: Sequence[str]) -> int:
        with self.db:
            cur = self.db.executemany(
                "DELETE FROM model_versions WHERE guild_id = ? AND version = ? AND version IS NOT "
                "(SELECT version FROM model_pointers WHERE guild_id = model_versions.guild_id)",
                [(guild_id, v) for v in versions],
            )
        return cur.rowcount

    @on_db_thread
    def model_pointers_since(self, seq: int) -> list[ModelPointer]:
        rows = self.db.execute("SELECT guild_id, version, seq FROM model_pointers WHERE seq > ? ORDER BY seq", (seq,))
        return [ModelPointer(*r) for r in rows]

    async def watch_models(self, poll_s: float = 2.0) -> AsyncIterator[ModelPointer]:
        """Switches made from now on by any process on this file: SQLite cannot notify, so it is polled."""
        seen = max((p.seq for p in await self.model_pointers_since(0)), default=0)
        while True:
            await asyncio.sleep(poll_s)
            try:
                changed = await self.model_pointers_since(seen)
            except ContinuoError as e:  # locked for long, or damaged: said in the log, tried again later
                log.warning("%s", e)
                continue
            for pointer in changed:
                seen = max(seen, pointer.seq)
                yield pointer

    # --- whole servers and the whole store
    @on_db_thread
    def guild_ids(self) -> list[int]:
        return [r[0] for r in self.db.execute("SELECT id FROM guilds ORDER BY id")]

    @on_db_thread
    def export_guild(self, guild_id: int) -> GuildData:
        db = self.db
        guild = db.execute("SELECT * FROM guilds WHERE id = ?", (guild_id,)).fetchone()
        if guild is None:
            raise ContinuoError(f"server {guild_id} has no data in {self.path}")
        settings = db.execute("SELECT * FROM guild_settings WHERE guild_id = ?", (guild_id,)).fetchone()
        stored = {k: settings[k] for k in _SETTINGS if settings and settings[k] is not None}
        if "reply_on_mention" in stored:
            stored["reply_on_mention"] = bool(stored["reply_on_mention"])
        corpus = [
            CorpusEntry(
                r["guild_id"],
                r["author_id"],
                r["text"],
                r["message_id"],
                r["channel_id"],
                r["name"],
                _when(r["created_at"]),
            )
            for r in db.execute(
                "SELECT * FROM corpus_messages WHERE guild_id = ? ORDER BY created_at, message_id, id", (guild_id,)
            )
        ]
        pointer = db.execute("SELECT version FROM model_pointers WHERE guild_id = ?", (guild_id,)).fetchone()
        return GuildData(
            guild_id,
            _when(guild["created_at"]),
            guild["base_corpus"],
            stored,
            [
                (r[0], _when(r[1]))
                for r in db.execute(
                    "SELECT channel_id, added_at FROM learned_channels WHERE "
                    "guild_id = ? ORDER BY added_at, channel_id",
                    (guild_id,),
                )
            ],
            corpus,
            [
                self._to_job(r)
                for r in db.execute("SELECT * FROM training_jobs WHERE guild_id = ? ORDER BY id", (guild_id,))
            ],
            [
                ModelVersion(r["guild_id"], r["version"], _when(r["created_at"]), r["val_perplexity"], r["tokens"])
                for r in db.execute("SELECT * FROM model_versions WHERE guild_id = ? ORDER BY version", (guild_id,))
            ],
            pointer[0] if pointer else None,
            _when(guild["text_removed_at"]),
        )

    @on_db_thread
    def import_guild(self, data: GuildData) -> None:
        """Add one server's data in one transaction; a server already here is refused, never merged."""
        db, g = self.db, data.guild_id
        with db:
            if db.execute("SELECT 1 FROM guilds WHERE id = ?", (g,)).fetchone():
                raise ContinuoError(f"server {g} already has data in {self.path}; nothing of it was copied")
            db.execute(
                "INSERT INTO guilds (id, base_corpus, created_at, text_removed_at) VALUES (?, ?, ?, ?)",
                (g, data.base_corpus, _iso(data.created_at), _iso(data.text_removed_at)),
            )
            if data.settings:
                names = [k for k in _SETTINGS if k in data.settings]
                db.execute(
                    f"INSERT INTO guild_settings (guild_id, {', '.join(names)}) VALUES "
                    f"(?, {', '.join('?' for _ in names)})",
                    (g, *(data.settings[k] for k in names)),
                )
            db.executemany(
                "INSERT INTO learned_channels VALUES (?, ?, ?)", [(g, c, _iso(when)) for c, when in data.channels]
            )
            db.executemany(
                "INSERT INTO corpus_messages (guild_id, message_id, channel_id, author_id, kind, name, text,"
                " tokens, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [e.row(g, _iso) for e in data.corpus],
            )
            db.executemany(
                "INSERT INTO training_jobs (guild_id, status, epochs, requested_by, channel_id, created_at,"
                " started_at, finished_at, corpus_tokens, val_perplexity, error) VALUES"
                " (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [j.row(g, _iso) for j in data.jobs],
            )
            db.executemany(
                "INSERT INTO model_versions VALUES (?, ?, ?, ?, ?)",
                [(g, m.version, _iso(m.created_at), m.val_perplexity, m.tokens) for m in data.models],
            )
            if data.current_model is not None:
                seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM model_pointers").fetchone()[0]
                db.execute(
                    "INSERT INTO model_pointers VALUES (?, ?, ?, ?)", (g, data.current_model, seq, _iso(utcnow()))
                )

    @on_db_thread
    def backup(self, path: str) -> None:
        """A consistent copy made with SQLite's online backup while the bot may keep writing."""
        target = Path(path)
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        if not target.parent.is_dir() or not os.access(target.parent, os.W_OK):
            raise ContinuoError(
                f"cannot write the backup {target}: its folder is missing or not writable; pick another path"
            )
        try:
            copy = sqlite3.connect(tmp)
            try:
                self.db.backup(copy)
            finally:
                copy.close()
            os.replace(tmp, target)
        except OSError as e:
            raise ContinuoError(f"cannot write the backup {target}: {e.strerror}; pick another path") from None
        finally:
            tmp.unlink(missing_ok=True)
