"""The bot's store on SQLite and PostgreSQL, this tree against an earlier commit in the same run: record() latency,
writes queued behind another process's SQLite lock, and migrate-store between the two databases.

    python bench/store_bench.py                 # against the last commit with two hand-written stores
    python bench/store_bench.py --baseline REV  # or another commit

Each tree is measured in a process of its own (its `bot` package first on the path), rounds alternating between
the two, on one PostgreSQL server started here (tests/postgres_server.py) with data in a temporary folder. Beside
wall time, the CPU time of the measuring process: what the store's own code costs, less swayed by other work.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent

BASELINE = "ab0dddb"  # the last commit with bot/storage/sqlite.py and postgres.py written by hand, one each
RECORDS = 2000  # one-message record() calls timed per database
LOCK_S = 1.0  # how long another connection holds SQLite's exclusive lock
LOCKED_WRITES = 200  # writes made while it does
SERVERS, MESSAGES = 20, 1000  # what migrate-store copies


def database(server: str) -> str:
    import psycopg

    name = f"store_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))


def entry(guild: int, i: int, minutes: int = 0):
    from bot.storage import CorpusEntry

    when = datetime(2026, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    return CorpusEntry(guild, 7 + i % 5, f"message {i} of server {guild}, a few words long", i, 70, created_at=when)


async def record_latency(url: str) -> dict:
    from bot.storage import open_store

    store = open_store(url)
    await store.open()
    times, cpu = [], time.process_time()
    for i in range(RECORDS):
        start = time.perf_counter()
        await store.record([entry(111, i)])
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu
    await store.close()
    times.sort()
    p50, p95 = statistics.median(times) * 1e3, times[int(len(times) * 0.95)] * 1e3
    return {"p50_ms": p50, "p95_ms": p95, "cpu_ms": cpu / RECORDS * 1e3}


def hold_lock(path: Path, ready: threading.Event) -> float:
    """SQLite's exclusive lock, on a connection of its own (as another process would hold it) for LOCK_S."""
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("BEGIN EXCLUSIVE")
    ready.set()
    time.sleep(LOCK_S)
    db.execute("COMMIT")
    db.close()
    return time.perf_counter()


async def locked_sqlite(folder: Path) -> dict:
    from bot.storage import SQLiteStore

    path = folder / "locked.sqlite3"
    store = SQLiteStore(path, busy_timeout_s=0.1, write_retry_s=60)
    await store.open()
    ready = threading.Event()
    holder = asyncio.create_task(asyncio.to_thread(hold_lock, path, ready))
    await asyncio.to_thread(ready.wait)
    start = time.perf_counter()
    writes = asyncio.gather(*(store.record([entry(111, i, minutes=i)]) for i in range(LOCKED_WRITES)))
    released = await holder
    await writes
    done = time.perf_counter()
    texts = await store.corpus_texts(111)
    await store.close()
    in_order = texts == [entry(111, i).text for i in range(LOCKED_WRITES)]
    return {"all_s": done - start, "after_release_ms": (done - released) * 1e3, "stored_in_order": in_order}


async def migrate(folder: Path, server: str) -> dict:
    from bot.cli import migrate_store
    from bot.storage import ModelVersion, open_store, sqlite_url

    source = sqlite_url(folder / "source.sqlite3")
    store = open_store(source)
    await store.open()
    for guild in range(1, SERVERS + 1):
        await store.record([entry(guild, i, minutes=i) for i in range(MESSAGES)])
        await store.learn_channel(guild, 70)
        job = await store.add_job(guild, 7, 70, epochs=1, corpus_tokens=MESSAGES * 10)
        await store.update_job(job.id, status="succeeded", val_perplexity=40.0)
        await store.add_model_version(ModelVersion(guild, "v1", tokens=MESSAGES * 10))
        await store.switch_model(guild, "v1")
    await store.close()
    target, back = database(server), sqlite_url(folder / "back.sqlite3")
    start, cpu = time.perf_counter(), time.process_time()
    await migrate_store(source, target, say=lambda *_: None)
    there, cpu_there = time.perf_counter(), time.process_time()
    await migrate_store(target, back, say=lambda *_: None)
    return {
        "to_postgresql_s": there - start,
        "to_postgresql_cpu_s": cpu_there - cpu,
        "to_sqlite_s": time.perf_counter() - there,
        "to_sqlite_cpu_s": time.process_time() - cpu_there,
    }


async def measure(server: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        return {
            "record_sqlite": await record_latency(f"sqlite:///{folder / 'record.sqlite3'}"),
            "record_postgresql": await record_latency(database(server)),
            "locked_sqlite": await locked_sqlite(folder),
            "migrate_store": await migrate(folder, server),
        }


ROWS = [  # (label, measure, field, format)
    ("record(), one message, SQLite: p50 ms", "record_sqlite", "p50_ms", "{:.3f}"),
    ("record(), one message, SQLite: p95 ms", "record_sqlite", "p95_ms", "{:.3f}"),
    ("... CPU ms in the bot's process per record()", "record_sqlite", "cpu_ms", "{:.3f}"),
    ("record(), one message, PostgreSQL: p50 ms", "record_postgresql", "p50_ms", "{:.3f}"),
    ("record(), one message, PostgreSQL: p95 ms", "record_postgresql", "p95_ms", "{:.3f}"),
    ("... CPU ms in the bot's process per record()", "record_postgresql", "cpu_ms", "{:.3f}"),
    (f"{LOCKED_WRITES} writes behind a {LOCK_S:.0f} s SQLite lock: all done, s", "locked_sqlite", "all_s", "{:.2f}"),
    ("... done after the lock went, ms", "locked_sqlite", "after_release_ms", "{:.0f}"),
    ("... all stored, in order", "locked_sqlite", "stored_in_order", "{}"),
    (
        f"migrate-store {SERVERS} servers x {MESSAGES:,} messages, SQLite to PostgreSQL: s",
        "migrate_store",
        "to_postgresql_s",
        "{:.2f}",
    ),
    ("... CPU s in the copying process", "migrate_store", "to_postgresql_cpu_s", "{:.2f}"),
    ("... and back to SQLite: s", "migrate_store", "to_sqlite_s", "{:.2f}"),
    ("... CPU s in the copying process", "migrate_store", "to_sqlite_cpu_s", "{:.2f}"),
]


def best(runs: list[dict]) -> dict:
    """Per number, the best of the rounds (the least disturbed by other work on the machine)."""
    merged: dict = {}
    for _, kind, name, _ in ROWS:
        values = [r[kind][name] for r in runs]
        merged.setdefault(kind, {})[name] = all(values) if isinstance(values[0], bool) else min(values)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--baseline", default=BASELINE, help="the commit to compare with")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--measure", help=argparse.SUPPRESS)  # a child: the PostgreSQL server's URL
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(asyncio.run(measure(args.measure))))
        return

    sys.path[:0] = [str(REPO), str(REPO / "tests")]  # here only: a child imports `bot` from the tree it measures
    import postgres_server as pg

    from bench.common import machine, write_results

    server = pg.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            before = Path(tmp) / "before"
            before.mkdir()
            archive = subprocess.run(["git", "archive", args.baseline], cwd=REPO, capture_output=True, check=True)
            subprocess.run(["tar", "-x", "-C", str(before)], input=archive.stdout, check=True)
            runs: dict[str, list[dict]] = {"before": [], "after": []}
            for _ in range(args.rounds):
                for name, tree in (("before", before), ("after", REPO)):
                    env = {**os.environ, "PYTHONPATH": str(tree), "TF_CPP_MIN_LOG_LEVEL": "3"}
                    child = [sys.executable, str(Path(__file__).resolve()), "--measure", server]
                    done = subprocess.run(child, cwd=tree, env=env, capture_output=True, text=True, timeout=1200)
                    if done.returncode != 0:
                        raise RuntimeError(f"the {name} tree failed:\n{done.stderr[-3000:]}")
                    runs[name].append(json.loads(done.stdout.strip().splitlines()[-1]))
    finally:
        pg.stop(server)
    old, new = best(runs["before"]), best(runs["after"])
    rows = []
    for label, kind, name, form in ROWS:
        a, b = old[kind][name], new[kind][name]
        ratio = "" if isinstance(a, bool) else f"{b / a:.2f}"
        rows.append(f"| {label} | {form.format(a)} | {form.format(b)} | {ratio} |")
    m = machine()
    table = "\n".join(
        [
            f"Measured {m['date']} on {m['cpus']} cores of {m['cpu_model']} (load average {m['load_average']:.1f}), "
            f"best of {args.rounds} alternating rounds: the store at {args.baseline} (two hand-written stores) "
            "against this tree.",
            "",
            f"| measure | before ({args.baseline}) | after | after / before |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    write_results("store", {"machine": m, "baseline": args.baseline, "runs": runs}, table)


if __name__ == "__main__":
    main()
