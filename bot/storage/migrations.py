"""The schema as numbered migrations, one SQL file per dialect where they differ; a store is brought up to date
when opened, by one runner for both databases.

Files live in sql/: `NNNN_name.sql` for every dialect, or `NNNN_name.sqlite.sql` and `NNNN_name.postgresql.sql`.
Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

from core import ContinuoError

from .base import utcnow

if TYPE_CHECKING:
    from .store import Database, Tx

log = logging.getLogger(__name__)

DIALECTS = ("sqlite", "postgresql")
_FILE = re.compile(r"^(\d{4})_(\w+?)(?:\.(sqlite|postgresql))?\.sql$")


@dataclass(frozen=True)
class Migration:
    version: int
    name: str  # the file's first comment line
    sql: dict[str, str]  # dialect -> statements


def load_migrations() -> list[Migration]:
    found: dict[int, dict[str, str]] = {}
    names: dict[int, str] = {}
    for entry in resources.files(__package__).joinpath("sql").iterdir():
        match = _FILE.match(entry.name)
        if not match:
            continue
        version, text = int(match[1]), entry.read_text("utf-8")
        for dialect in (match[3],) if match[3] else DIALECTS:
            found.setdefault(version, {})[dialect] = text
        names[version] = text.splitlines()[0].lstrip("- ").strip() if text.startswith("--") else match[2]
    migrations = [Migration(v, names[v], found[v]) for v in sorted(found)]
    for number, migration in enumerate(migrations, 1):
        missing = set(DIALECTS) - set(migration.sql)
        if migration.version != number or missing:  # a packaging mistake, caught by every test that opens a store
            raise RuntimeError(f"migration {number}: missing, or without SQL for {sorted(missing)}")
    return migrations


MIGRATIONS = load_migrations()
LATEST = MIGRATIONS[-1].version


def check_not_newer(current: int, where: str) -> None:
    """Older code never writes to a schema it does not know."""
    if current > LATEST:
        raise ContinuoError(
            f"{where}: database schema version {current} is newer than this bot knows ({LATEST}); "
            "upgrade Continuo, or point --database / CONTINUO_BOT_DATABASE_URL elsewhere"
        )


def statements(sql: str) -> list[str]:
    """One migration's SQL cut into statements (SQLite runs one per execute)."""
    found, pending = [], ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    return found + ([pending.strip()] if pending.strip() and not pending.strip().startswith("--") else [])


async def migrate(db: Database) -> int:
    """Apply the migrations a database lacks, in one transaction; returns the version reached.

    The transaction first takes a lock (SQLite's write lock, PostgreSQL's advisory lock) and then reads
    the version, so processes opening one database together apply each migration once.
    """

    async def upgrade(tx: Tx) -> None:
        if db.schema_lock:
            await tx.execute(db.schema_lock)
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations "
            f"(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at {db.timestamp_type} NOT NULL)"
        )
        (row,) = await tx.rows("SELECT COALESCE(MAX(version), 0) AS version FROM schema_migrations")
        check_not_newer(row["version"], db.where)
        for migration in MIGRATIONS[row["version"] :]:
            log.info("%s: applying migration %d (%s)", db.where, migration.version, migration.name)
            for statement in statements(migration.sql[db.dialect]):
                await tx.execute(statement, None)
            await tx.execute(
                "INSERT INTO schema_migrations VALUES (?, ?, ?)", (migration.version, migration.name, utcnow())
            )

    await db.run(upgrade, "write", "migrate")
    return LATEST
