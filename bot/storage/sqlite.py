"""The default database: one SQLite file in WAL mode, used from one thread of its own: the event loop never waits."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

from core import ContinuoError

from .base import ModelPointer
from .store import Mode, Row, SQLStore, Tx, drive

log = logging.getLogger(__name__)

T = TypeVar("T")
OLDEST = (3, 35)  # RETURNING


class StoreLocked(ContinuoError):
    """Another process held the database's lock for longer than the store keeps retrying."""


class _Locked(Exception):
    """SQLITE_BUSY / SQLITE_LOCKED after the busy timeout: worth another try."""


def corrupt(path: Path, error: Exception) -> ContinuoError:
    return ContinuoError(
        f"{path} is not a usable SQLite database ({error}): stop the bot, restore a backup over it "
        "(made by `continuo bot backup`) or move it away to start with an empty one"
    )


def _stored(params: Sequence | None) -> Sequence:
    """Moments as ISO text, which sorts as time does."""
    if not params:
        return ()
    return [p.isoformat(timespec="microseconds") if isinstance(p, datetime) else p for p in params]


class SQLiteTx:
    """A transaction on the store's thread: each call runs at once."""

    def __init__(self, db: sqlite3.Connection):
        self.db = db

    async def execute(self, sql: str, params: Sequence | None = ()) -> int:
        return self.db.execute(sql, _stored(params)).rowcount

    async def executemany(self, sql: str, rows: Sequence[Sequence]) -> None:
        self.db.executemany(sql, [_stored(r) for r in rows])

    async def rows(self, sql: str, params: Sequence | None = ()) -> list[Row]:
        return self.db.execute(sql, _stored(params)).fetchall()


class SQLiteDatabase:
    """One connection, owned by one thread: calls run one at a time in the order they were made.

    The order holds under another process's lock too: a call that waits for it stays in line ahead of
    the ones made after it (a FIFO lock), none is dropped or reordered. While the file is locked, the
    call is retried with backoff for up to `write_retry_s`.
    """

    dialect = "sqlite"
    timestamp_type = "TEXT"
    next_pointer_seq = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM model_pointers)"  # under the one writer's lock
    schema_lock: str | None = None  # a write transaction (BEGIN IMMEDIATE) holds SQLite's write lock

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

    @property
    def where(self) -> str:
        return str(self.path)

    @property
    def db(self) -> sqlite3.Connection:
        if self._db is None:
            raise RuntimeError("the store is not open")
        return self._db

    async def _on_thread(self, call: Callable[[], T], what: str) -> T:
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
                            what,
                            self.write_retry_s,
                        )
                        raise StoreLocked(
                            f"{self.path} stayed locked by another process for {self.write_retry_s:.0f} s, so "
                            f"{what.strip('_').replace('_', ' ')} could not be stored; stop the other program "
                            "using that file and try again"
                        ) from None
                    log.warning("%s is locked by another process (%s); %s waits and retries", self.path, e, what)
                    await asyncio.sleep(pause)
                    pause = min(pause * 2, 5.0)

    def _guarded(self, call: Callable[[], T]) -> T:
        """Tell a lock held elsewhere (retry) from a damaged file (one line naming it) from everything else."""
        try:
            return call()
        except sqlite3.OperationalError as e:
            if "locked" in str(e) or "busy" in str(e):
                raise _Locked(str(e)) from None
            if "malformed" in str(e) or "not a database" in str(e):
                raise corrupt(self.path, e) from None
            raise
        except sqlite3.DatabaseError as e:
            if type(e) is sqlite3.DatabaseError:  # not an integrity or programming error: the file itself
                raise corrupt(self.path, e) from None
            raise

    async def open(self) -> None:
        if sqlite3.sqlite_version_info < OLDEST:
            raise ContinuoError(
                f"this Python's SQLite is {sqlite3.sqlite_version}; the store needs "
                f"{'.'.join(map(str, OLDEST))} or newer: use a newer Python build, or a postgresql:// database"
            )
        await self._on_thread(self._connect, "open")

    def _connect(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise ContinuoError(
                f"cannot create the database folder {self.path.parent}: {e.strerror}; "
                "pick a writable --data folder or --database URL"
            ) from None
        db = sqlite3.connect(self.path, timeout=self.busy_timeout_s, isolation_level=None)  # BEGIN said below
        try:
            db.row_factory = sqlite3.Row
            db.execute("PRAGMA journal_mode=WAL")  # readers never block the writer; a crash never loses committed rows
            db.execute("PRAGMA synchronous=NORMAL")  # durable enough in WAL mode, much faster than FULL
            db.execute("PRAGMA foreign_keys=ON")
        except BaseException:
            db.close()
            raise
        self._db = db

    async def close(self) -> None:
        if self._db is not None:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._db.close)
            self._db = None
        self._thread.shutdown(wait=True)

    async def run(self, body: Callable[[Tx], Coroutine[Any, Any, T]], mode: Mode, what: str) -> T:
        return await self._on_thread(functools.partial(self._transaction, body, mode), what)

    def _transaction(self, body: Callable[[Tx], Coroutine[Any, Any, T]], mode: Mode) -> T:
        """On the thread: the whole body in one transaction. A write takes the write lock first (BEGIN
        IMMEDIATE), so it never fails half-way for a lock; a snapshot reads one moment of the file."""
        db = self.db
        if mode != "read":
            db.execute("BEGIN IMMEDIATE" if mode == "write" else "BEGIN")
        try:
            result = drive(body(SQLiteTx(db)))
            if db.in_transaction:
                db.execute("COMMIT")
            return result
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise

    async def notify(self, tx: Tx, pointer: ModelPointer) -> None:
        """SQLite cannot notify: other processes poll (changes)."""

    async def changes(self, poll_s: float) -> AsyncIterator[None]:
        while True:
            await asyncio.sleep(poll_s)
            yield None

    async def backup(self, path: str) -> None:
        await self._on_thread(functools.partial(self._backup, Path(path)), "backup")

    def _backup(self, target: Path) -> None:
        """A consistent copy made with SQLite's online backup while the bot may keep writing."""
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


class SQLiteStore(SQLStore):
    """The store on an SQLite file (the default)."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 5.0, write_retry_s: float = 600.0):
        super().__init__(SQLiteDatabase(path, busy_timeout_s, write_retry_s))
        self.path = Path(path)
