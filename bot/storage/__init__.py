"""The bot's storage: the Store interface and its one SQL implementation, on SQLite (the default) or PostgreSQL,
chosen by one database URL."""

from .base import (
    CorpusEntry,
    CorpusStats,
    GuildData,
    GuildSettings,
    ModelPointer,
    ModelVersion,
    Store,
    TrainingJobRecord,
)
from .sqlite import SQLiteStore, StoreLocked
from .store import SQLStore
from .urls import dialect, redact, sqlite_path, sqlite_url

__all__ = [
    "CorpusEntry",
    "CorpusStats",
    "GuildData",
    "GuildSettings",
    "ModelPointer",
    "ModelVersion",
    "SQLStore",
    "SQLiteStore",
    "Store",
    "StoreLocked",
    "TrainingJobRecord",
    "open_store",
    "redact",
    "sqlite_url",
]


def open_store(url: str, **sqlite_options) -> Store:
    """The store a URL names, not opened yet (`await store.open()`): sqlite:///PATH or postgresql://...

    psycopg is imported only for a postgresql:// URL, so the base install does not need it.
    `sqlite_options` (busy_timeout_s, write_retry_s) apply to SQLite only.
    """
    if dialect(url) == "sqlite":
        return SQLiteStore(sqlite_path(url), **sqlite_options)
    from .postgres import PostgresStore, driver

    driver()  # the one-line "pip install continuo[scale]" before anything starts
    return PostgresStore(url)
