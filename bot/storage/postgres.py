"""The database on a PostgreSQL server: psycopg 3 async with a connection pool, shared by every bot process and machine.

Prepared statements are off (prepare_threshold=None) so the store also works behind PgBouncer in
transaction mode. Model switches are announced with NOTIFY; watching for them LISTENs on a connection of
its own (which needs a direct or session-pooled connection, not a transaction-pooled one).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from typing import Any, TypeVar

from core import ContinuoError

from .base import ModelPointer
from .store import Mode, Row, SQLStore, Tx
from .urls import redact

log = logging.getLogger(__name__)

T = TypeVar("T")
MIGRATION_LOCK = 0x636F6E74  # pg_advisory_xact_lock key held while migrating ("cont")
CHANNEL = "continuo_models"  # NOTIFY channel of model switches


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


@functools.lru_cache(maxsize=512)
def _placeholders(sql: str) -> str:
    """The store's `?` as psycopg's `%s`."""
    return sql.replace("%", "%%").replace("?", "%s")


class PostgresTx:
    """A transaction on one pooled connection."""

    def __init__(self, conn):
        self.conn = conn

    async def execute(self, sql: str, params: Sequence | None = ()) -> int:
        cur = await self.conn.execute(sql if params is None else _placeholders(sql), params)
        return cur.rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence]) -> None:
        async with self.conn.cursor() as cur:
            await cur.executemany(_placeholders(sql), rows)

    async def rows(self, sql: str, params: Sequence | None = ()) -> list[Row]:
        from psycopg.rows import dict_row

        async with self.conn.cursor(row_factory=dict_row) as cur:
            await cur.execute(sql if params is None else _placeholders(sql), params)
            return await cur.fetchall()


class PostgresDatabase:
    """Each transaction on a pooled connection; switches told with NOTIFY."""

    dialect = "postgresql"
    timestamp_type = "TIMESTAMPTZ"
    next_pointer_seq = "nextval('model_pointer_seq')"
    schema_lock: str | None = f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK})"  # holds behind PgBouncer too

    def __init__(self, url: str, pool_size: int = 4, connect_timeout_s: float = 10.0):
        self.url = url
        self.pool_size = pool_size  # connections kept open to the server
        self.connect_timeout_s = connect_timeout_s
        self._pool = None

    @property
    def where(self) -> str:
        return redact(self.url)

    async def _connect(self, **options):
        psycopg, _ = driver()
        timeout = max(1, round(self.connect_timeout_s))
        return await psycopg.AsyncConnection.connect(
            self.url, autocommit=True, prepare_threshold=None, connect_timeout=timeout, **options
        )

    async def open(self) -> None:
        psycopg, pool = driver()
        try:  # one connection first, for the server's own reason when it cannot be reached
            await (await self._connect()).close()
        except psycopg.Error as e:
            why = " ".join(str(e).split()) or type(e).__name__
            raise ContinuoError(
                f"cannot open the database {self.where}: {why}; check that the server "
                "is running and the URL (--database / CONTINUO_BOT_DATABASE_URL)"
            ) from None
        self._pool = connections = pool.AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self.pool_size,
            open=False,
            kwargs={"prepare_threshold": None},
            check=pool.AsyncConnectionPool.check_connection,
        )
        await connections.open(wait=True, timeout=self.connect_timeout_s)

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
                f"the database {self.where} cannot be reached ({why}); nothing was changed, try again once it is back"
            ) from None

    async def run(self, body: Callable[[Tx], Coroutine[Any, Any, T]], mode: Mode, what: str) -> T:
        async with self._connection() as conn:
            if mode == "snapshot":  # one snapshot of everything, as SQLite's transaction sees it
                await conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
            return await body(PostgresTx(conn))

    async def notify(self, tx: Tx, pointer: ModelPointer) -> None:
        """Delivered when the transaction commits, to every process that LISTENs."""
        payload = {"guild_id": pointer.guild_id, "version": pointer.version, "seq": pointer.seq}
        await tx.execute("SELECT pg_notify(?, ?)", (CHANNEL, json.dumps(payload)))

    async def changes(self, poll_s: float) -> AsyncIterator[None]:
        """Once after each (re)connection, for what was missed meanwhile, then at each NOTIFY; a lost
        connection is retried with backoff from `poll_s`."""
        psycopg, _ = driver()
        pause = poll_s
        while True:
            try:
                async with await self._connect() as conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    pause = poll_s
                    yield None
                    async for _ in conn.notifies():
                        yield None
            except psycopg.OperationalError as e:
                log.warning(
                    "%s: listening for model switches failed (%s); retrying in %.0f s",
                    self.where,
                    str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__,
                    pause,
                )
                await asyncio.sleep(pause)
                pause = min(pause * 2, 60.0)

    async def backup(self, path: str) -> None:
        raise ContinuoError(
            f"the database is on a PostgreSQL server: back it up with PostgreSQL's own tool, "
            f"pg_dump --format=custom --file {path} '{self.where}' (restore with pg_restore)"
        )


class PostgresStore(SQLStore):
    """The store on a PostgreSQL server."""

    def __init__(self, url: str, pool_size: int = 4, connect_timeout_s: float = 10.0):
        super().__init__(PostgresDatabase(url, pool_size, connect_timeout_s))
