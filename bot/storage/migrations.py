"""The schema as numbered migrations, one SQL file per dialect where they differ; a store is brought up to date
when opened.

Files live in sql/: `NNNN_name.sql` for every dialect, or `NNNN_name.sqlite.sql` and `NNNN_name.postgresql.sql`.
Append new migrations; never edit one that has shipped.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources

from core import ContinuoError

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


def now_text() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def schema_version(db: sqlite3.Connection) -> int:
    db.execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations "
        "(version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
    )
    return db.execute("SELECT COALESCE(MAX(version), 0) FROM schema_migrations").fetchone()[0]


def statements(sql: str) -> list[str]:
    """One migration's SQL cut into statements (SQLite runs one per execute)."""
    found, pending = [], ""
    for line in sql.splitlines(keepends=True):
        pending += line
        if sqlite3.complete_statement(pending):
            found.append(pending.strip())
            pending = ""
    return found + ([pending.strip()] if pending.strip() and not pending.strip().startswith("--") else [])


def migrate(db: sqlite3.Connection, path: str) -> int:
    """Apply the migrations an SQLite database lacks, each in its own transaction; returns the version reached.

    Each one runs under BEGIN IMMEDIATE (SQLite's write lock) after checking the version again, so two
    processes opening one file together apply it once.
    """
    for migration in [None, *MIGRATIONS]:
        db.execute("BEGIN IMMEDIATE")
        try:
            current = schema_version(db)
            check_not_newer(current, path)
            if migration is not None and migration.version > current:
                for statement in statements(migration.sql["sqlite"]):
                    db.execute(statement)
                db.execute(
                    "INSERT INTO schema_migrations VALUES (?, ?, ?)", (migration.version, migration.name, now_text())
                )
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
    return LATEST
