"""Store on a PostgreSQL server: psycopg 3 async with a connection pool, shared by every bot process and machine.

Prepared statements are off (prepare_threshold=None) so the store also works behind PgBouncer in
transaction mode. Model switches are announced with NOTIFY; watch_models LISTENs on a connection of
its own (which needs a direct or session-pooled connection, not a transaction-pooled one).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Sequence
from dataclasses import fields, replace
from datetime import UTC, datetime
from typing import overload

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
from .migrations import MIGRATIONS, check_not_newer
from .urls import redact

log = logging.getLogger(__name__)

_SETTINGS = tuple(f.name for f in fields(GuildSettings))
_JOB_CHANGES = {"status", "started_at", "finished_at", "corpus_tokens", "val_perplexity", "error"}
MIGRATION_LOCK = 0x636F6E74  # pg_advisory_lock key held while migrating ("cont")
CHANNEL = "continuo_models"  # NOTIFY channel of model switches


def _as_is(moment: datetime | None) -> datetime | None:
    """psycopg writes datetimes as timestamptz itself."""
    return moment


def driver():
    """psycopg and psycopg_pool, or a one-line error: the base install does not bring them."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError:
        raise ContinuoError(
            'a postgresql:// database needs the PostgreSQL driver: pip install "continuo[scale]"'
        ) from None
    return psycopg, psycopg_pool


@overload
def _utc(moment: datetime) -> datetime: ...
@overload
def _utc(moment: None) -> None: ...
def _utc(moment: datetime | None) -> datetime | None:  # NOT NULL columns read back as datetimes, the others maybe None
    return moment.astimezone(UTC) if moment is not None else None


def _job(row: dict) -> TrainingJobRecord:
    return TrainingJobRecord(
        id=row["id"],
        guild_id=row["guild_id"],
        status=row["status"],
        epochs=row["epochs"],
        requested_by=row["requested_by"],
        channel_id=row["channel_id"],
        created_at=_utc(row["created_at"]),
        started_at=_utc(row["started_at"]),
        finished_at=_utc(row["finished_at"]),
        corpus_tokens=row["corpus_tokens"],
        val_perplexity=row["val_perplexity"],
        error=row["error"],
    )


def _version(row: dict) -> ModelVersion:
    return ModelVersion(row["guild_id"], row["version"], _utc(row["created_at"]), row["val_perplexity"], row["tokens"])


@measure_writes
class PostgresStore:
    """Store on PostgreSQL. Each method is one transaction on a pooled connection."""

    dialect = "postgresql"

    def __init__(self, url: str, pool_size: int = 4, connect_timeout_s: float = 10.0):
        self.url = url
        self.pool_size = pool_size  # connections kept open to the server
        self.connect_timeout_s = connect_timeout_s
        self._pool = None

    def _where(self) -> str:
        return redact(self.url)

    # --- opening and closing
    async def open(self) -> None:
        psycopg, pool = driver()
        try:
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, prepare_threshold=None, connect_timeout=max(1, round(self.connect_timeout_s))
            )
        except psycopg.Error as e:
            why = " ".join(str(e).split()) or type(e).__name__
            raise ContinuoError(
                f"cannot open the database {self._where()}: {why}; check that the server "
                "is running and the URL (--database / CONTINUO_BOT_DATABASE_URL)"
            ) from None
        async with conn:
            await self._migrate(conn)
        self._pool = connections = pool.AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            open=False,
            kwargs={"prepare_threshold": None},
            check=pool.AsyncConnectionPool.check_connection,
        )
        await connections.open(wait=True, timeout=self.connect_timeout_s)

    async def _migrate(self, conn) -> None:
        """Numbered migrations in one transaction under an advisory lock: processes starting together apply each
        exactly once. A transaction-level lock, so that it also holds behind PgBouncer in transaction mode."""
        async with conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, "
                "name TEXT NOT NULL, applied_at TIMESTAMPTZ NOT NULL)"
            )
            current = (
                await (await conn.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations")).fetchone()
            )[0]
            check_not_newer(current, self._where())
            for migration in MIGRATIONS:
                if migration.version > current:
                    await conn.execute(migration.sql["postgresql"])
                    await conn.execute(
                        "INSERT INTO schema_migrations VALUES (%s, %s, now())", (migration.version, migration.name)
                    )
                    log.info("%s: applying migration %d (%s)", self._where(), migration.version, migration.name)

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    @contextlib.asynccontextmanager
    async def _connection(self):
        """A pooled connection for one transaction: committed at the end of the block, rolled back on an error.

        A server that cannot be reached (or that went away mid-transaction: nothing of it was committed)
        is one line; the pool connects again on a later call.
        """
        if self._pool is None:
            raise RuntimeError("the store is not open")
        psycopg, pool = driver()
        try:
            async with self._pool.connection(timeout=self.connect_timeout_s) as conn:
                yield conn
        except (psycopg.OperationalError, pool.PoolTimeout) as e:
            why = " ".join(str(e).split()) or type(e).__name__
            raise ContinuoError(
                f"the database {self._where()} cannot be reached ({why}); nothing was changed, "
                "try again once it is back"
            ) from None

    async def ping(self) -> None:
        """Raise unless the server answers a query (for /readyz)."""
        async with self._connection() as conn:
            await conn.execute("SELECT 1")

    async def _rows(self, sql: str, params: Sequence = ()) -> list[dict]:
        from psycopg.rows import dict_row

        async with self._connection() as conn:
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(sql, params)
            return await cur.fetchall()

    async def _one(self, sql: str, params: Sequence = ()) -> dict | None:
        rows = await self._rows(sql, params)
        return rows[0] if rows else None

    @staticmethod
    async def _guild(conn, guild_id: int) -> None:
        await conn.execute(
            "INSERT INTO guilds (id, created_at) VALUES (%s, %s) ON CONFLICT DO NOTHING", (guild_id, utcnow())
        )

    # --- servers and their settings
    async def guild_settings(self, guild_id: int) -> GuildSettings:
        row = await self._one(f"SELECT {', '.join(_SETTINGS)} FROM guild_settings WHERE guild_id = %s", (guild_id,))
        stored = {name: row[name] for name in _SETTINGS if row[name] is not None} if row else {}
        return replace(GuildSettings(), **stored)

    async def update_guild_settings(self, guild_id: int, **changes) -> GuildSettings:
        unknown = set(changes) - set(_SETTINGS)
        if unknown:
            raise ValueError(f"unknown server setting {sorted(unknown)[0]!r}")
        async with self._connection() as conn:
            await self._guild(conn, guild_id)
            await conn.execute("INSERT INTO guild_settings (guild_id) VALUES (%s) ON CONFLICT DO NOTHING", (guild_id,))
            for name, value in changes.items():  # names come from GuildSettings, never from users
                await conn.execute(f"UPDATE guild_settings SET {name} = %s WHERE guild_id = %s", (value, guild_id))
        return await self.guild_settings(guild_id)

    async def base_corpus(self, guild_id: int) -> str | None:
        row = await self._one("SELECT base_corpus FROM guilds WHERE id = %s", (guild_id,))
        return row["base_corpus"] if row else None

    async def set_base_corpus(self, guild_id: int, name: str | None) -> None:
        async with self._connection() as conn:
            await self._guild(conn, guild_id)
            await conn.execute("UPDATE guilds SET base_corpus = %s WHERE id = %s", (name, guild_id))

    # --- learned channels
    async def learn_channel(self, guild_id: int, channel_id: int) -> bool:
        async with self._connection() as conn:
            await self._guild(conn, guild_id)
            cur = await conn.execute(
                "INSERT INTO learned_channels VALUES (%s, %s, %s) ON CONFLICT DO NOTHING",
                (guild_id, channel_id, utcnow()),
            )
            return cur.rowcount > 0

    async def unlearn_channel(self, guild_id: int, channel_id: int) -> bool:
        async with self._connection() as conn:
            cur = await conn.execute(
                "DELETE FROM learned_channels WHERE guild_id = %s AND channel_id = %s", (guild_id, channel_id)
            )
            return cur.rowcount > 0

    async def learned_channels(self, guild_id: int) -> list[int]:
        rows = await self._rows(
            "SELECT channel_id FROM learned_channels WHERE guild_id = %s ORDER BY added_at, channel_id", (guild_id,)
        )
        return [r["channel_id"] for r in rows]

    # --- the corpus
    async def record(self, entries: Sequence[CorpusEntry]) -> int:
        """Add entries; a message recorded before is replaced by its new text."""
        rows = [e.row(e.guild_id, _as_is) for e in entries]
        async with self._connection() as conn:
            for guild_id in sorted({e.guild_id for e in entries}):
                await self._guild(conn, guild_id)
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO corpus_messages (guild_id, message_id, channel_id, author_id, kind, name, text,"
                    " tokens, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (guild_id, message_id) DO UPDATE SET text = excluded.text, tokens = excluded.tokens",
                    rows,
                )
        return len(entries)

    async def edit_message(self, guild_id: int, message_id: int, text: str) -> bool:
        async with self._connection() as conn:
            cur = await conn.execute(
                "UPDATE corpus_messages SET text = %s, tokens = %s WHERE guild_id = %s AND message_id = %s",
                (text, count_tokens(text), guild_id, message_id),
            )
            return cur.rowcount > 0

    async def remove_messages(self, guild_id: int, message_ids: Sequence[int]) -> int:
        async with self._connection() as conn:
            cur = await conn.execute(
                "DELETE FROM corpus_messages WHERE guild_id = %s AND message_id = ANY(%s)",
                (guild_id, list(message_ids)),
            )
            return cur.rowcount

    async def forget_author(self, guild_id: int, author_id: int) -> tuple[int, int]:
        """(messages, files) removed."""
        async with self._connection() as conn:
            cur = await conn.execute(
                "DELETE FROM corpus_messages WHERE guild_id = %s AND author_id = %s RETURNING kind",
                (guild_id, author_id),
            )
            kinds = [r[0] for r in await cur.fetchall()]
            await self._removed(conn, guild_id, len(kinds))
        return kinds.count("message"), kinds.count("file")

    async def forget_channel(self, guild_id: int, channel_id: int) -> int:
        async with self._connection() as conn:
            cur = await conn.execute(
                "DELETE FROM corpus_messages WHERE guild_id = %s AND channel_id = %s", (guild_id, channel_id)
            )
            await self._removed(conn, guild_id, cur.rowcount)
            return cur.rowcount

    async def clear_corpus(self, guild_id: int) -> int:
        async with self._connection() as conn:
            cur = await conn.execute("DELETE FROM corpus_messages WHERE guild_id = %s", (guild_id,))
            await conn.execute("UPDATE guilds SET base_corpus = NULL WHERE id = %s", (guild_id,))
            await self._removed(conn, guild_id, cur.rowcount)
            return cur.rowcount

    @staticmethod
    async def _removed(conn, guild_id: int, rows: int) -> None:
        if rows > 0:  # a forget: models trained before now must not come back (bot.storage.versions)
            await conn.execute("UPDATE guilds SET text_removed_at = %s WHERE id = %s", (utcnow(), guild_id))

    async def text_removed_at(self, guild_id: int) -> datetime | None:
        row = await self._one("SELECT text_removed_at FROM guilds WHERE id = %s", (guild_id,))
        return _utc(row["text_removed_at"]) if row else None

    async def corpus_texts(self, guild_id: int) -> list[str]:
        """The server's texts, oldest first (uploads where they were added), in SQLite's order."""
        rows = await self._rows(
            "SELECT text FROM corpus_messages WHERE guild_id = %s ORDER BY created_at, message_id NULLS FIRST, id",
            (guild_id,),
        )
        return [r["text"] for r in rows]

    async def corpus_stats(self, guild_id: int) -> CorpusStats:
        row = await self._one(
            "SELECT COUNT(*) FILTER (WHERE kind = 'message') AS messages, COUNT(*) FILTER (WHERE kind = 'file') AS"
            " files, COALESCE(SUM(tokens), 0) AS tokens, COALESCE(SUM(LENGTH(text)), 0) AS characters, COUNT(DISTINCT"
            " author_id) FILTER (WHERE kind = 'message') AS authors FROM corpus_messages WHERE guild_id = %s",
            (guild_id,),
        )
        channels = tuple(await self.learned_channels(guild_id))
        assert row is not None  # an aggregate query returns one row
        return CorpusStats(
            row["messages"],
            row["files"],
            int(row["tokens"]),
            int(row["characters"]),
            row["authors"],
            channels=channels,
            base=await self.base_corpus(guild_id),
        )

    # --- training jobs
    async def add_job(
        self, guild_id: int, requested_by: int, channel_id: int | None, epochs: int, corpus_tokens: int
    ) -> TrainingJobRecord:
        from psycopg.rows import dict_row

        async with self._connection() as conn:
            await self._guild(conn, guild_id)
            cur = conn.cursor(row_factory=dict_row)
            await cur.execute(
                "INSERT INTO training_jobs (guild_id, status, epochs, requested_by, channel_id,"
                " created_at, corpus_tokens) VALUES (%s, 'queued', %s, %s, %s, %s, %s) RETURNING *",
                (guild_id, epochs, requested_by, channel_id, utcnow(), corpus_tokens),
            )
            return _job(await cur.fetchone())

    async def update_job(self, job_id: int, **changes) -> None:
        unknown = set(changes) - _JOB_CHANGES
        if unknown:
            raise ValueError(f"unknown training job field {sorted(unknown)[0]!r}")
        async with self._connection() as conn:
            await conn.execute(
                f"UPDATE training_jobs SET {', '.join(f'{k} = %s' for k in changes)} WHERE id = %s",
                (*changes.values(), job_id),
            )

    async def last_job(self, guild_id: int, status: str | None = None) -> TrainingJobRecord | None:
        query = "SELECT * FROM training_jobs WHERE guild_id = %s" + (" AND status = %s" if status else "")
        row = await self._one(query + " ORDER BY id DESC LIMIT 1", (guild_id, status) if status else (guild_id,))
        return _job(row) if row else None

    async def interrupt_unfinished_jobs(self) -> list[TrainingJobRecord]:
        """Jobs a previous run left queued or running, now marked interrupted (at start-up or shutdown)."""
        rows = await self._rows(
            "UPDATE training_jobs SET status = 'interrupted', finished_at = %s, error = "
            "'interrupted by a restart' WHERE status = ANY(%s) RETURNING *",
            (utcnow(), list(UNFINISHED)),
        )
        return [_job(r) for r in sorted(rows, key=lambda r: r["id"])]

    async def unfinished_jobs(self) -> list[TrainingJobRecord]:
        rows = await self._rows("SELECT * FROM training_jobs WHERE status = ANY(%s) ORDER BY id", (list(UNFINISHED),))
        return [_job(r) for r in rows]

    async def set_job_progress(self, job_id: int, progress: str) -> None:
        async with self._connection() as conn:
            await conn.execute(
                "INSERT INTO job_progress VALUES (%s, %s, %s) ON CONFLICT (job_id) DO UPDATE SET "
                "progress = excluded.progress, updated_at = excluded.updated_at",
                (job_id, progress, utcnow()),
            )

    async def job_progress(self, job_id: int) -> str | None:
        row = await self._one("SELECT progress FROM job_progress WHERE job_id = %s", (job_id,))
        return row["progress"] if row else None

    # --- model versions
    async def add_model_version(self, record: ModelVersion) -> None:
        async with self._connection() as conn:
            await self._guild(conn, record.guild_id)
            await conn.execute(
                "INSERT INTO model_versions VALUES (%s, %s, %s, %s, %s)",
                (record.guild_id, record.version, record.created_at, record.val_perplexity, record.tokens),
            )

    async def model_versions(self, guild_id: int) -> list[ModelVersion]:
        rows = await self._rows("SELECT * FROM model_versions WHERE guild_id = %s ORDER BY version", (guild_id,))
        return [_version(r) for r in rows]

    async def current_model(self, guild_id: int) -> ModelPointer | None:
        row = await self._one("SELECT guild_id, version, seq FROM model_pointers WHERE guild_id = %s", (guild_id,))
        return ModelPointer(row["guild_id"], row["version"], row["seq"]) if row else None

    async def switch_model(self, guild_id: int, version: str | None) -> ModelPointer:
        """Point the server at one of its versions (None: the default model) and NOTIFY every listener."""
        async with self._connection() as conn:
            await self._guild(conn, guild_id)
            cur = await conn.execute(
                "INSERT INTO model_pointers VALUES (%s, %s, nextval('model_pointer_seq'), now()) ON CONFLICT (guild_id)"
                " DO UPDATE SET version = excluded.version, seq = excluded.seq, switched_at = excluded.switched_at"
                " RETURNING seq",
                (guild_id, version),
            )
            pointer = ModelPointer(guild_id, version, (await cur.fetchone())[0])
            # delivered when the transaction commits, to every process that LISTENs
            await conn.execute(
                "SELECT pg_notify(%s, %s)",
                (CHANNEL, json.dumps({"guild_id": guild_id, "version": version, "seq": pointer.seq})),
            )
        return pointer

    async def remove_model_versions(self, guild_id: int, versions: Sequence[str]) -> int:
        async with self._connection() as conn:
            cur = await conn.execute(
                "DELETE FROM model_versions WHERE guild_id = %s AND version = ANY(%s) AND version IS DISTINCT FROM "
                "(SELECT version FROM model_pointers WHERE guild_id = %s)",
                (guild_id, list(versions), guild_id),
            )
            return cur.rowcount

    async def model_pointers_since(self, seq: int) -> list[ModelPointer]:
        rows = await self._rows("SELECT guild_id, version, seq FROM model_pointers WHERE seq > %s ORDER BY seq", (seq,))
        return [ModelPointer(r["guild_id"], r["version"], r["seq"]) for r in rows]

    async def watch_models(self, poll_s: float = 2.0) -> AsyncIterator[ModelPointer]:
        """Switches made from now on by any process, as NOTIFY delivers them; after a lost connection, the
        switches missed meanwhile are read from the table once it is back."""
        psycopg, _ = driver()
        seen = max((p.seq for p in await self.model_pointers_since(0)), default=0)
        pause = poll_s
        while True:
            try:
                async with await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, prepare_threshold=None
                ) as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    pause = poll_s
                    for pointer in await self.model_pointers_since(seen):
                        seen = max(seen, pointer.seq)
                        yield pointer
                    async for note in conn.notifies():
                        data = json.loads(note.payload)
                        pointer = ModelPointer(data["guild_id"], data["version"], data["seq"])
                        seen = max(seen, pointer.seq)
                        yield pointer
            except psycopg.OperationalError as e:
                log.warning(
                    "%s: listening for model switches failed (%s); retrying in %.0f s",
                    self._where(),
                    str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__,
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 60.0)

    # --- whole servers and the whole store
    async def guild_ids(self) -> list[int]:
        return [r["id"] for r in await self._rows("SELECT id FROM guilds ORDER BY id")]

    async def export_guild(self, guild_id: int) -> GuildData:
        from psycopg.rows import dict_row

        async with self._connection() as conn:
            # one snapshot of everything, as SQLite's single connection sees it
            await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            cur = conn.cursor(row_factory=dict_row)

            async def rows(sql):
                await cur.execute(sql, (guild_id,))
                return await cur.fetchall()

            guild = await rows("SELECT * FROM guilds WHERE id = %s")
            if not guild:
                raise ContinuoError(f"server {guild_id} has no data in {self._where()}")
            settings = await rows("SELECT * FROM guild_settings WHERE guild_id = %s")
            channels = await rows(
                "SELECT channel_id, added_at FROM learned_channels WHERE guild_id = %s ORDER BY added_at, channel_id"
            )
            corpus = await rows(
                "SELECT * FROM corpus_messages WHERE guild_id = %s ORDER BY created_at, message_id NULLS FIRST, id"
            )
            jobs = await rows("SELECT * FROM training_jobs WHERE guild_id = %s ORDER BY id")
            models = await rows("SELECT * FROM model_versions WHERE guild_id = %s ORDER BY version")
            pointer = await rows("SELECT version FROM model_pointers WHERE guild_id = %s")
        return GuildData(
            guild_id,
            _utc(guild[0]["created_at"]),
            guild[0]["base_corpus"],
            {k: settings[0][k] for k in _SETTINGS if settings and settings[0][k] is not None},
            [(r["channel_id"], _utc(r["added_at"])) for r in channels],
            [
                CorpusEntry(
                    r["guild_id"],
                    r["author_id"],
                    r["text"],
                    r["message_id"],
                    r["channel_id"],
                    r["name"],
                    _utc(r["created_at"]),
                )
                for r in corpus
            ],
            [_job(r) for r in jobs],
            [_version(r) for r in models],
            pointer[0]["version"] if pointer else None,
            _utc(guild[0]["text_removed_at"]),
        )

    async def import_guild(self, data: GuildData) -> None:
        """Add one server's data in one transaction; a server already here is refused, never merged."""
        g = data.guild_id
        async with self._connection() as conn:
            cur = await conn.execute(
                "INSERT INTO guilds (id, base_corpus, created_at, text_removed_at) VALUES "
                "(%s, %s, %s, %s) ON CONFLICT DO NOTHING",
                (g, data.base_corpus, data.created_at, data.text_removed_at),
            )
            if cur.rowcount == 0:
                raise ContinuoError(f"server {g} already has data in {self._where()}; nothing of it was copied")
            if data.settings:
                names = [k for k in _SETTINGS if k in data.settings]
                await conn.execute(
                    f"INSERT INTO guild_settings (guild_id, {', '.join(names)}) VALUES "
                    f"(%s, {', '.join('%s' for _ in names)})",
                    (g, *(data.settings[k] for k in names)),
                )
            async with conn.cursor() as cur:
                await cur.executemany(
                    "INSERT INTO learned_channels VALUES (%s, %s, %s)", [(g, c, when) for c, when in data.channels]
                )
                await cur.executemany(
                    "INSERT INTO corpus_messages (guild_id, message_id, channel_id, author_id, kind, name, text,"
                    " tokens, created_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [e.row(g, _as_is) for e in data.corpus],
                )
                await cur.executemany(
                    "INSERT INTO training_jobs (guild_id, status, epochs, requested_by, channel_id, created_at,"
                    " started_at, finished_at, corpus_tokens, val_perplexity, error) VALUES"
                    " (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                    [j.row(g, _as_is) for j in data.jobs],
                )
                await cur.executemany(
                    "INSERT INTO model_versions VALUES (%s, %s, %s, %s, %s)",
                    [(g, m.version, m.created_at, m.val_perplexity, m.tokens) for m in data.models],
                )
            if data.current_model is not None:
                await conn.execute(
                    "INSERT INTO model_pointers VALUES (%s, %s, nextval('model_pointer_seq'), now())",
                    (g, data.current_model),
                )

    async def backup(self, path: str) -> None:
        raise ContinuoError(
            f"the database is on a PostgreSQL server: back it up with PostgreSQL's own tool, "
            f"pg_dump --format=custom --file {path} '{self._where()}' (restore with pg_restore)"
        )
