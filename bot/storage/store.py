"""The one Store over SQL: every query written once, run on SQLite (sqlite.py) or PostgreSQL (postgres.py).

A store method is an `async def` over a transaction, `tx`, that it only awaits for SQL:

    @write
    async def learn_channel(self, tx: Tx, guild_id: int, channel_id: int) -> bool:
        await self._guild(tx, guild_id)
        return await tx.execute("INSERT INTO learned_channels VALUES (?, ?, ?) ON CONFLICT DO NOTHING", ...) > 0

`@write` and `@read` open the transaction on the database (`await store.learn_channel(guild_id, channel_id)`).
What differs between the databases lives in their `Database`: placeholders (always `?` here), how a moment
is stored (as text on SQLite), the next pointer number, NOTIFY, the migration lock, and how calls reach the
database (one thread in order on SQLite, a pool on PostgreSQL). SQL here is what both databases understand.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import Any, Concatenate, Literal, ParamSpec, Protocol, TypeVar, overload

from core import ContinuoError

from ..metrics import measure_writes
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

T = TypeVar("T")
P = ParamSpec("P")
Row = Mapping[str, Any]  # a row by column name
Mode = Literal["read", "write", "snapshot"]  # snapshot: every read sees one moment (export)

_SETTINGS = tuple(f.name for f in fields(GuildSettings))
_JOB_CHANGES = {"status", "started_at", "finished_at", "corpus_tokens", "val_perplexity", "error"}
_CORPUS_ORDER = "ORDER BY created_at, message_id NULLS FIRST, id"  # uploads where they were added
_CORPUS_COLUMNS = "guild_id, message_id, channel_id, author_id, kind, name, text, tokens, created_at"
_JOB_COLUMNS = "guild_id, status, epochs, requested_by, channel_id, created_at, started_at, finished_at, " + (
    "corpus_tokens, val_perplexity, error"
)


class Tx(Protocol):
    """One transaction. SQL takes `?` placeholders; datetimes go in as they are and come out as `moment()` reads."""

    async def execute(self, sql: str, params: Sequence | None = ()) -> int: ...  # rows changed; None: no placeholders
    async def executemany(self, sql: str, rows: Sequence[Sequence]) -> None: ...
    async def rows(self, sql: str, params: Sequence | None = ()) -> list[Row]: ...


class Database(Protocol):
    """What the store needs of one kind of database."""

    dialect: str  # "sqlite" or "postgresql", as migration files are named
    timestamp_type: str  # the column type of a moment
    next_pointer_seq: str  # SQL for the next model pointer number, unique across processes
    schema_lock: str | None  # SQL that holds off other processes while migrating (SQLite's write lock suffices)

    @property
    def url(self) -> str: ...
    @property
    def where(self) -> str: ...  # how messages name it: the file, or the URL without its password
    async def open(self) -> None: ...
    async def close(self) -> None: ...
    async def run(self, body: Callable[[Tx], Coroutine[Any, Any, T]], mode: Mode, what: str) -> T: ...
    async def notify(self, tx: Tx, pointer: ModelPointer) -> None: ...  # tell other processes of a switch
    def changes(self, poll_s: float) -> AsyncIterator[None]: ...  # a moment to look for switches
    async def backup(self, path: str) -> None: ...


def drive(transaction: Coroutine[Any, Any, T]) -> T:
    """Run a store method's body to its end on the calling thread (SQLite's). The body awaits nothing but
    SQLite calls, which finish at once, so it never suspends: one step runs it, with no event loop."""
    try:
        transaction.send(None)
    except StopIteration as done:
        return done.value
    transaction.close()
    raise RuntimeError("a store transaction awaited something other than its database")


@overload
def moment(value: str | datetime) -> datetime: ...
@overload
def moment(value: None) -> None: ...
def moment(value: str | datetime | None) -> datetime | None:
    """A stored moment as an aware datetime: SQLite keeps ISO text, PostgreSQL timestamptz."""
    if value is None or isinstance(value, datetime):
        return value.astimezone(UTC) if value is not None else None
    return datetime.fromisoformat(value)


def _as_is(value: datetime | None) -> datetime | None:
    return value  # each database's Tx writes moments its own way


Method = Callable[Concatenate["SQLStore", Tx, P], Coroutine[Any, Any, T]]


def _transaction(mode: Mode) -> Callable[[Method[P, T]], Callable[Concatenate[SQLStore, P], Coroutine[Any, Any, T]]]:
    """A store method over `tx` becomes one without it, run in one transaction of the store's database."""

    def decorate(method: Method[P, T]) -> Callable[Concatenate[SQLStore, P], Coroutine[Any, Any, T]]:
        @functools.wraps(method)
        async def run(self: SQLStore, *args: P.args, **kwargs: P.kwargs) -> T:
            if mode == "read":
                return await self.db.run(lambda tx: method(self, tx, *args, **kwargs), mode, method.__name__)
            self._shared.clear()  # reads asked for from now on do not join one that may have read before this write
            try:
                return await self.db.run(lambda tx: method(self, tx, *args, **kwargs), mode, method.__name__)
            finally:
                self._shared.clear()  # nor one that may have read while it ran (PostgreSQL runs them side by side)

        return run

    return decorate


read, write, snapshot = _transaction("read"), _transaction("write"), _transaction("snapshot")


def shared(method: Callable[Concatenate[SQLStore, P], Coroutine[Any, Any, T]]):
    """A read (over `@read`) that callers asking at the same moment share: while one is under way, the same call
    (same arguments) waits for its answer instead of queueing another transaction behind it. A burst of commands
    in one server reads its settings a few times instead of once each. A write from this process ends the
    sharing, so a read asked for after a write never gets an answer read before it. Answers are shared, so they
    are immutable (a list is copied for each caller)."""

    @functools.wraps(method)
    async def run(self: SQLStore, *args: P.args, **kwargs: P.kwargs) -> T:
        key = (method.__name__, args, tuple(sorted(kwargs.items())))
        flight = self._shared.get(key)
        if flight is None:
            flight = self._shared[key] = asyncio.ensure_future(method(self, *args, **kwargs))
            flight.add_done_callback(functools.partial(self._landed, key))
        result = await asyncio.shield(flight)  # one caller cancelled does not cancel the others' read
        return list(result) if isinstance(result, list) else result  # type: ignore[return-value]

    return run


def _job(row: Row) -> TrainingJobRecord:
    return TrainingJobRecord(
        id=row["id"],
        guild_id=row["guild_id"],
        status=row["status"],
        epochs=row["epochs"],
        requested_by=row["requested_by"],
        channel_id=row["channel_id"],
        created_at=moment(row["created_at"]),
        started_at=moment(row["started_at"]),
        finished_at=moment(row["finished_at"]),
        corpus_tokens=row["corpus_tokens"],
        val_perplexity=row["val_perplexity"],
        error=row["error"],
    )


def _version(row: Row) -> ModelVersion:
    created = moment(row["created_at"])
    return ModelVersion(row["guild_id"], row["version"], created, row["val_perplexity"], row["tokens"])


def _entry(row: Row) -> CorpusEntry:
    fields_ = (row["message_id"], row["channel_id"], row["name"], moment(row["created_at"]))
    return CorpusEntry(row["guild_id"], row["author_id"], row["text"], *fields_)


def _settings(row: Row | None) -> dict:
    """The values an admin set (the others stay GuildSettings' defaults); SQLite keeps booleans as 0 and 1."""
    stored = {name: row[name] for name in _SETTINGS if row[name] is not None} if row else {}
    if "reply_on_mention" in stored:
        stored["reply_on_mention"] = bool(stored["reply_on_mention"])
    return stored


def _marks(values: Sequence) -> str:
    return ", ".join("?" for _ in values)


@measure_writes
class SQLStore:
    """Store on a SQL database: each method is one transaction."""

    def __init__(self, db: Database):
        self.db = db
        self._shared: dict[tuple, asyncio.Future] = {}  # reads under way that callers share (shared)

    def _landed(self, key: tuple, flight: asyncio.Future) -> None:
        if self._shared.get(key) is flight:
            del self._shared[key]
        if not flight.cancelled():
            flight.exception()  # retrieved: a failed read that no caller awaits any more is not logged as lost

    @property
    def dialect(self) -> str:
        return self.db.dialect

    @property
    def url(self) -> str:
        return self.db.url

    # --- opening and closing
    async def open(self) -> None:
        await self.db.open()
        try:
            await migrate(self.db)
        except BaseException:
            await self.db.close()
            raise

    async def close(self) -> None:
        await self.db.close()

    @read
    async def ping(self, tx: Tx) -> None:
        """Raise unless the database answers a query (for /readyz)."""
        await tx.rows("SELECT 1")

    @staticmethod
    async def _guild(tx: Tx, guild_id: int) -> None:
        sql = "INSERT INTO guilds (id, created_at) VALUES (?, ?) ON CONFLICT DO NOTHING"
        await tx.execute(sql, (guild_id, utcnow()))

    # --- servers and their settings
    @shared
    @read
    async def guild_settings(self, tx: Tx, guild_id: int) -> GuildSettings:
        return await self._guild_settings(tx, guild_id)

    @staticmethod
    async def _guild_settings(tx: Tx, guild_id: int) -> GuildSettings:
        found = await tx.rows(f"SELECT {', '.join(_SETTINGS)} FROM guild_settings WHERE guild_id = ?", (guild_id,))
        return replace(GuildSettings(), **_settings(found[0] if found else None))

    async def update_guild_settings(self, guild_id: int, **changes) -> GuildSettings:
        unknown = set(changes) - set(_SETTINGS)
        if unknown:
            raise ValueError(f"unknown server setting {sorted(unknown)[0]!r}")
        return await self._update_guild_settings(guild_id, changes)

    @write
    async def _update_guild_settings(self, tx: Tx, guild_id: int, changes: dict) -> GuildSettings:
        await self._guild(tx, guild_id)
        await tx.execute("INSERT INTO guild_settings (guild_id) VALUES (?) ON CONFLICT DO NOTHING", (guild_id,))
        if changes:  # names come from GuildSettings, never from users
            columns = ", ".join(f"{name} = ?" for name in changes)
            await tx.execute(f"UPDATE guild_settings SET {columns} WHERE guild_id = ?", (*changes.values(), guild_id))
        return await self._guild_settings(tx, guild_id)

    @read
    async def base_corpus(self, tx: Tx, guild_id: int) -> str | None:
        return await self._base_corpus(tx, guild_id)

    @staticmethod
    async def _base_corpus(tx: Tx, guild_id: int) -> str | None:
        found = await tx.rows("SELECT base_corpus FROM guilds WHERE id = ?", (guild_id,))
        return found[0]["base_corpus"] if found else None

    @write
    async def set_base_corpus(self, tx: Tx, guild_id: int, name: str | None) -> None:
        await self._guild(tx, guild_id)
        await tx.execute("UPDATE guilds SET base_corpus = ? WHERE id = ?", (name, guild_id))

    # --- learned channels
    @write
    async def learn_channel(self, tx: Tx, guild_id: int, channel_id: int) -> bool:
        await self._guild(tx, guild_id)
        added = await tx.execute(
            "INSERT INTO learned_channels VALUES (?, ?, ?) ON CONFLICT DO NOTHING", (guild_id, channel_id, utcnow())
        )
        return added > 0

    @write
    async def unlearn_channel(self, tx: Tx, guild_id: int, channel_id: int) -> bool:
        sql = "DELETE FROM learned_channels WHERE guild_id = ? AND channel_id = ?"
        return await tx.execute(sql, (guild_id, channel_id)) > 0

    @read
    async def learned_channels(self, tx: Tx, guild_id: int) -> list[int]:
        return [channel for channel, _ in await self._channels(tx, guild_id)]

    @staticmethod
    async def _channels(tx: Tx, guild_id: int) -> list[tuple[int, datetime]]:
        rows = await tx.rows(
            "SELECT channel_id, added_at FROM learned_channels WHERE guild_id = ? ORDER BY added_at, channel_id",
            (guild_id,),
        )
        return [(r["channel_id"], moment(r["added_at"])) for r in rows]

    # --- the corpus
    @write
    async def record(self, tx: Tx, entries: Sequence[CorpusEntry]) -> int:
        """Add entries; a message recorded before is replaced by its new text."""
        for guild_id in sorted({e.guild_id for e in entries}):
            await self._guild(tx, guild_id)
        await tx.executemany(
            f"INSERT INTO corpus_messages ({_CORPUS_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (guild_id, message_id) DO UPDATE SET text = excluded.text, tokens = excluded.tokens",
            [e.row(e.guild_id, _as_is) for e in entries],
        )
        return len(entries)

    @write
    async def edit_message(self, tx: Tx, guild_id: int, message_id: int, text: str) -> bool:
        changed = await tx.execute(
            "UPDATE corpus_messages SET text = ?, tokens = ? WHERE guild_id = ? AND message_id = ?",
            (text, count_tokens(text), guild_id, message_id),
        )
        return changed > 0

    @write
    async def remove_messages(self, tx: Tx, guild_id: int, message_ids: Sequence[int]) -> int:
        if not message_ids:
            return 0
        sql = f"DELETE FROM corpus_messages WHERE guild_id = ? AND message_id IN ({_marks(message_ids)})"
        return await tx.execute(sql, (guild_id, *message_ids))

    @write
    async def forget_author(self, tx: Tx, guild_id: int, author_id: int) -> tuple[int, int]:
        """(messages, files) removed; the author's voice is no longer shared (/forget-me implies /voice stop)."""
        sql = "DELETE FROM corpus_messages WHERE guild_id = ? AND author_id = ? RETURNING kind"
        kinds = [r["kind"] for r in await tx.rows(sql, (guild_id, author_id))]
        await tx.execute("DELETE FROM shared_voices WHERE guild_id = ? AND member_id = ?", (guild_id, author_id))
        await self._removed(tx, guild_id, len(kinds))
        return kinds.count("message"), kinds.count("file")

    @write
    async def forget_channel(self, tx: Tx, guild_id: int, channel_id: int) -> int:
        sql = "DELETE FROM corpus_messages WHERE guild_id = ? AND channel_id = ?"
        return await self._removed(tx, guild_id, await tx.execute(sql, (guild_id, channel_id)))

    @write
    async def clear_corpus(self, tx: Tx, guild_id: int) -> int:
        removed = await tx.execute("DELETE FROM corpus_messages WHERE guild_id = ?", (guild_id,))
        await tx.execute("UPDATE guilds SET base_corpus = NULL WHERE id = ?", (guild_id,))
        return await self._removed(tx, guild_id, removed)

    @staticmethod
    async def _removed(tx: Tx, guild_id: int, rows: int) -> int:
        if rows > 0:  # a forget: models trained before now must not come back (bot.storage.versions)
            await tx.execute("UPDATE guilds SET text_removed_at = ? WHERE id = ?", (utcnow(), guild_id))
        return rows

    @read
    async def text_removed_at(self, tx: Tx, guild_id: int) -> datetime | None:
        found = await tx.rows("SELECT text_removed_at FROM guilds WHERE id = ?", (guild_id,))
        return moment(found[0]["text_removed_at"]) if found else None

    @write
    async def mark_text_removed(self, tx: Tx, guild_id: int, at: datetime) -> None:
        """Record a forget made elsewhere (bot.forgetting.migrate_forget_markers)."""
        await self._guild(tx, guild_id)
        await tx.execute("UPDATE guilds SET text_removed_at = ? WHERE id = ?", (at, guild_id))

    @read
    async def corpus_texts(self, tx: Tx, guild_id: int) -> list[str]:
        """The server's texts, oldest first (uploads where they were added)."""
        rows = await tx.rows(f"SELECT text FROM corpus_messages WHERE guild_id = ? {_CORPUS_ORDER}", (guild_id,))
        return [r["text"] for r in rows]

    @read
    async def corpus_stats(self, tx: Tx, guild_id: int) -> CorpusStats:
        (row,) = await tx.rows(
            "SELECT COUNT(CASE WHEN kind = 'message' THEN 1 END) AS messages,"
            " COUNT(CASE WHEN kind = 'file' THEN 1 END) AS files, COALESCE(SUM(tokens), 0) AS tokens,"
            " COALESCE(SUM(LENGTH(text)), 0) AS characters,"
            " COUNT(DISTINCT CASE WHEN kind = 'message' THEN author_id END) AS authors"
            " FROM corpus_messages WHERE guild_id = ?",
            (guild_id,),
        )
        messages, files, tokens, characters, authors = (
            int(row[k]) for k in ("messages", "files", "tokens", "characters", "authors")
        )
        channels = tuple(channel for channel, _ in await self._channels(tx, guild_id))
        base = await self._base_corpus(tx, guild_id)
        return CorpusStats(messages, files, tokens, characters, authors, channels, base)

    # --- members' voices
    @write
    async def share_voice(self, tx: Tx, guild_id: int, member_id: int) -> bool:
        await self._guild(tx, guild_id)
        sql = "INSERT INTO shared_voices VALUES (?, ?, ?) ON CONFLICT DO NOTHING"
        return await tx.execute(sql, (guild_id, member_id, utcnow())) > 0

    @write
    async def stop_voice(self, tx: Tx, guild_id: int, member_id: int) -> bool:
        sql = "DELETE FROM shared_voices WHERE guild_id = ? AND member_id = ?"
        return await tx.execute(sql, (guild_id, member_id)) > 0

    @shared
    @read
    async def voice_shared(self, tx: Tx, guild_id: int, member_id: int) -> bool:
        sql = "SELECT 1 AS shared FROM shared_voices WHERE guild_id = ? AND member_id = ?"
        return bool(await tx.rows(sql, (guild_id, member_id)))

    @shared
    @read
    async def member_texts(self, tx: Tx, guild_id: int, member_id: int) -> list[str]:
        """A member's recorded messages in this server (not their uploads: a file may hold anyone's words)."""
        rows = await tx.rows(
            "SELECT text FROM corpus_messages WHERE guild_id = ? AND author_id = ? AND kind = 'message'"
            f" {_CORPUS_ORDER}",
            (guild_id, member_id),
        )
        return [r["text"] for r in rows]

    # --- training jobs
    @write
    async def add_job(
        self, tx: Tx, guild_id: int, requested_by: int, channel_id: int | None, epochs: int, corpus_tokens: int
    ) -> TrainingJobRecord:
        await self._guild(tx, guild_id)
        (row,) = await tx.rows(
            "INSERT INTO training_jobs (guild_id, status, epochs, requested_by, channel_id, created_at, corpus_tokens)"
            " VALUES (?, 'queued', ?, ?, ?, ?, ?) RETURNING *",
            (guild_id, epochs, requested_by, channel_id, utcnow(), corpus_tokens),
        )
        return _job(row)

    async def update_job(self, job_id: int, **changes) -> None:
        unknown = set(changes) - _JOB_CHANGES
        if unknown:
            raise ValueError(f"unknown training job field {sorted(unknown)[0]!r}")
        await self._update_job(job_id, changes)

    @write
    async def _update_job(self, tx: Tx, job_id: int, changes: dict) -> None:
        columns = ", ".join(f"{name} = ?" for name in changes)
        await tx.execute(f"UPDATE training_jobs SET {columns} WHERE id = ?", (*changes.values(), job_id))

    @read
    async def last_job(self, tx: Tx, guild_id: int, status: str | None = None) -> TrainingJobRecord | None:
        query = "SELECT * FROM training_jobs WHERE guild_id = ?" + (" AND status = ?" if status else "")
        found = await tx.rows(query + " ORDER BY id DESC LIMIT 1", (guild_id, status) if status else (guild_id,))
        return _job(found[0]) if found else None

    @write
    async def interrupt_unfinished_jobs(
        self, tx: Tx, status: str | None = None, why: str = "interrupted by a restart"
    ) -> list[TrainingJobRecord]:
        """Jobs left queued or running (or only in `status`), now marked interrupted with `why` as their error (at
        start-up, or as a bot process closes its own queue)."""
        statuses = (status,) if status else UNFINISHED
        rows = await tx.rows(
            "UPDATE training_jobs SET status = 'interrupted', finished_at = ?, error = ?"
            f" WHERE status IN ({_marks(statuses)}) RETURNING *",
            (utcnow(), why, *statuses),
        )
        return sorted(map(_job, rows), key=lambda job: job.id)

    @read
    async def unfinished_jobs(self, tx: Tx) -> list[TrainingJobRecord]:
        sql = f"SELECT * FROM training_jobs WHERE status IN ({_marks(UNFINISHED)}) ORDER BY id"
        return [_job(r) for r in await tx.rows(sql, UNFINISHED)]

    @write
    async def set_job_progress(self, tx: Tx, job_id: int, progress: str) -> None:
        await tx.execute(
            "INSERT INTO job_progress VALUES (?, ?, ?) ON CONFLICT (job_id) DO UPDATE SET "
            "progress = excluded.progress, updated_at = excluded.updated_at",
            (job_id, progress, utcnow()),
        )

    @read
    async def job_progress(self, tx: Tx, job_id: int) -> str | None:
        found = await tx.rows("SELECT progress FROM job_progress WHERE job_id = ?", (job_id,))
        return found[0]["progress"] if found else None

    # --- model versions
    @write
    async def add_model_version(self, tx: Tx, record: ModelVersion) -> None:
        await self._guild(tx, record.guild_id)
        await tx.execute(
            "INSERT INTO model_versions VALUES (?, ?, ?, ?, ?)",
            (record.guild_id, record.version, record.created_at, record.val_perplexity, record.tokens),
        )

    @read
    async def model_versions(self, tx: Tx, guild_id: int) -> list[ModelVersion]:
        rows = await tx.rows("SELECT * FROM model_versions WHERE guild_id = ? ORDER BY version", (guild_id,))
        return [_version(r) for r in rows]

    @read
    async def current_model(self, tx: Tx, guild_id: int) -> ModelPointer | None:
        found = await tx.rows("SELECT guild_id, version, seq FROM model_pointers WHERE guild_id = ?", (guild_id,))
        return ModelPointer(found[0]["guild_id"], found[0]["version"], found[0]["seq"]) if found else None

    @write
    async def switch_model(self, tx: Tx, guild_id: int, version: str | None) -> ModelPointer:
        """Point the server at one of its versions (None: the default model) and tell other processes."""
        await self._guild(tx, guild_id)
        (row,) = await tx.rows(
            f"INSERT INTO model_pointers VALUES (?, ?, {self.db.next_pointer_seq}, ?) ON CONFLICT (guild_id) DO UPDATE"
            " SET version = excluded.version, seq = excluded.seq, switched_at = excluded.switched_at RETURNING seq",
            (guild_id, version, utcnow()),
        )
        pointer = ModelPointer(guild_id, version, row["seq"])
        await self.db.notify(tx, pointer)  # delivered when the transaction commits
        return pointer

    @write
    async def remove_model_versions(self, tx: Tx, guild_id: int, versions: Sequence[str]) -> int:
        if not versions:
            return 0
        return await tx.execute(
            f"DELETE FROM model_versions WHERE guild_id = ? AND version IN ({_marks(versions)}) AND NOT EXISTS"
            " (SELECT 1 FROM model_pointers p WHERE p.guild_id = model_versions.guild_id"
            " AND p.version = model_versions.version)",
            (guild_id, *versions),
        )

    @read
    async def model_pointers_since(self, tx: Tx, seq: int) -> list[ModelPointer]:
        rows = await tx.rows("SELECT guild_id, version, seq FROM model_pointers WHERE seq > ? ORDER BY seq", (seq,))
        return [ModelPointer(r["guild_id"], r["version"], r["seq"]) for r in rows]

    @read
    async def newest_model_seq(self, tx: Tx) -> int:
        rows = await tx.rows("SELECT MAX(seq) AS seq FROM model_pointers")
        return rows[0]["seq"] or 0

    async def watch_models(self, poll_s: float = 2.0, since: int | None = None) -> AsyncIterator[ModelPointer]:
        """Switches made by any process after the one numbered `since` (None: from the first step of the
        iteration on): looked for whenever the database says something changed (PostgreSQL's NOTIFY, and once
        after each reconnection) or every `poll_s` (SQLite cannot notify)."""
        seen = since if since is not None else await self.newest_model_seq()
        async for _ in self.db.changes(poll_s):
            try:
                changed = await self.model_pointers_since(seen)
            except ContinuoError as e:  # locked for long, or unreachable: said in the log, tried again later
                log.warning("%s", e)
                continue
            for pointer in changed:
                seen = max(seen, pointer.seq)
                yield pointer

    # --- whole servers and the whole store
    @read
    async def guild_ids(self, tx: Tx) -> list[int]:
        return [r["id"] for r in await tx.rows("SELECT id FROM guilds ORDER BY id")]

    @snapshot
    async def export_guild(self, tx: Tx, guild_id: int) -> GuildData:
        async def rows(sql: str) -> list[Row]:
            return await tx.rows(sql, (guild_id,))

        guild = await rows("SELECT * FROM guilds WHERE id = ?")
        if not guild:
            raise ContinuoError(f"server {guild_id} has no data in {self.db.where}")
        settings = await rows("SELECT * FROM guild_settings WHERE guild_id = ?")
        pointer = await rows("SELECT version FROM model_pointers WHERE guild_id = ?")
        return GuildData(
            guild_id,
            moment(guild[0]["created_at"]),
            guild[0]["base_corpus"],
            _settings(settings[0] if settings else None),
            await self._channels(tx, guild_id),
            [_entry(r) for r in await rows(f"SELECT * FROM corpus_messages WHERE guild_id = ? {_CORPUS_ORDER}")],
            [_job(r) for r in await rows("SELECT * FROM training_jobs WHERE guild_id = ? ORDER BY id")],
            [_version(r) for r in await rows("SELECT * FROM model_versions WHERE guild_id = ? ORDER BY version")],
            pointer[0]["version"] if pointer else None,
            moment(guild[0]["text_removed_at"]),
            [
                (r["member_id"], moment(r["shared_at"]))
                for r in await rows(
                    "SELECT member_id, shared_at FROM shared_voices WHERE guild_id = ? ORDER BY member_id"
                )
            ],
        )

    @write
    async def import_guild(self, tx: Tx, data: GuildData) -> None:
        """Add one server's data in one transaction; a server already here is refused, never merged."""
        g = data.guild_id
        if await tx.rows("SELECT 1 AS held FROM guilds WHERE id = ?", (g,)):
            raise ContinuoError(f"server {g} already has data in {self.db.where}; nothing of it was copied")
        await tx.execute(
            "INSERT INTO guilds (id, base_corpus, created_at, text_removed_at) VALUES (?, ?, ?, ?)",
            (g, data.base_corpus, data.created_at, data.text_removed_at),
        )
        if data.settings:
            names = [k for k in _SETTINGS if k in data.settings]
            await tx.execute(
                f"INSERT INTO guild_settings (guild_id, {', '.join(names)}) VALUES (?, {_marks(names)})",
                (g, *(data.settings[k] for k in names)),
            )
        await tx.executemany("INSERT INTO learned_channels VALUES (?, ?, ?)", [(g, c, t) for c, t in data.channels])
        await tx.executemany("INSERT INTO shared_voices VALUES (?, ?, ?)", [(g, m, t) for m, t in data.voices])
        await tx.executemany(
            f"INSERT INTO corpus_messages ({_CORPUS_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [e.row(g, _as_is) for e in data.corpus],
        )
        await tx.executemany(
            f"INSERT INTO training_jobs ({_JOB_COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [j.row(g, _as_is) for j in data.jobs],
        )
        await tx.executemany(
            "INSERT INTO model_versions VALUES (?, ?, ?, ?, ?)",
            [(g, m.version, m.created_at, m.val_perplexity, m.tokens) for m in data.models],
        )
        if data.current_model is not None:
            await tx.execute(
                f"INSERT INTO model_pointers VALUES (?, ?, {self.db.next_pointer_seq}, ?)",
                (g, data.current_model, utcnow()),
            )

    async def backup(self, path: str) -> None:
        """A consistent copy (SQLite's online backup), or a ContinuoError naming the tool to use (PostgreSQL)."""
        await self.db.backup(path)
