"""Why the store is not on SQLAlchemy: record() of one message through the store against the same two statements
through SQLAlchemy Core 2 async (aiosqlite, psycopg), on SQLite and PostgreSQL, alternating, in this process.

SQLAlchemy is not a dependency of Continuo; this probe needs it:

    pip install "sqlalchemy[asyncio]>=2" aiosqlite
    python bench/sqlalchemy_probe.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests")]

CALLS = 2000
ROUNDS = 2
GUILD = "INSERT INTO guilds (id, created_at) VALUES (:id, :at) ON CONFLICT DO NOTHING"
MESSAGE = (
    "INSERT INTO corpus_messages (guild_id, message_id, channel_id, author_id, kind, name, text, tokens, created_at)"
    " VALUES (:g, :m, :c, :a, :k, :n, :t, :tok, :at) ON CONFLICT (guild_id, message_id) DO UPDATE SET"
    " text = excluded.text, tokens = excluded.tokens"
)


def entry(i: int):
    from bot.storage import CorpusEntry

    return CorpusEntry(111, 7, f"message {i} of server 111, a few words long", i, 70)


async def timed(call) -> dict:
    times, cpu = [], time.process_time()
    for i in range(CALLS):
        start = time.perf_counter()
        await call(i)
        times.append(time.perf_counter() - start)
    cpu = time.process_time() - cpu
    times.sort()
    return {"p50": statistics.median(times) * 1e3, "p95": times[int(CALLS * 0.95)] * 1e3, "cpu": cpu / CALLS * 1e3}


async def with_store(url: str) -> dict:
    from bot.storage import open_store

    store = open_store(url)
    await store.open()
    try:
        return await timed(lambda i: store.record([entry(i)]))
    finally:
        await store.close()


async def with_sqlalchemy(url: str) -> dict:
    import sqlalchemy as sa
    from sqlalchemy.ext.asyncio import create_async_engine
    from sqlalchemy.pool import StaticPool

    from bot.storage import open_store
    from bot.text import count_tokens

    store = open_store(url)  # the schema, by the store's migrations
    await store.open()
    await store.close()
    if url.startswith("sqlite"):
        engine = create_async_engine(url.replace("sqlite://", "sqlite+aiosqlite://", 1), poolclass=StaticPool)
        moment = lambda when: when.isoformat(timespec="microseconds")  # noqa: E731 - as the store writes it
    else:
        engine = create_async_engine(
            url.replace("postgresql://", "postgresql+psycopg://", 1),
            pool_size=4,
            connect_args={"prepare_threshold": None},
        )
        moment = lambda when: when  # noqa: E731
    guild, message = sa.text(GUILD), sa.text(MESSAGE)

    async def record(i: int) -> None:
        e = entry(i)
        row = dict(g=111, m=e.message_id, c=e.channel_id, a=e.author_id, k=e.kind, n=e.name, t=e.text)
        async with engine.begin() as conn:
            await conn.execute(guild, {"id": 111, "at": moment(datetime.now(UTC))})
            await conn.execute(message, [{**row, "tok": count_tokens(e.text), "at": moment(e.created_at)}])

    try:
        return await timed(record)
    finally:
        await engine.dispose()


async def main() -> None:
    import postgres_server as pg
    import psycopg

    from bench.common import machine, write_results

    server = pg.start()

    def database() -> str:
        name = f"probe_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(server, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{name}"')
        return urlunsplit(urlsplit(server)._replace(path=f"/{name}"))

    runs: dict[str, list[dict]] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for n in range(ROUNDS):
                for name, measure in (("store", with_store), ("SQLAlchemy Core async", with_sqlalchemy)):
                    sqlite = f"sqlite:///{Path(tmp) / f'{name[:5]}{n}.sqlite3'}"
                    runs.setdefault(f"{name}, SQLite", []).append(await measure(sqlite))
                    runs.setdefault(f"{name}, PostgreSQL", []).append(await measure(database()))
    finally:
        pg.stop(server)
    rows = [
        f"| {name} | {min(r['p50'] for r in rs):.3f} | {min(r['p95'] for r in rs):.3f} | "
        f"{min(r['cpu'] for r in rs):.3f} |"
        for name, rs in sorted(
            runs.items(), key=lambda item: (item[0].endswith("PostgreSQL"), not item[0].startswith("store"))
        )
    ]
    m = machine()
    table = "\n".join(
        [
            f"Measured {m['date']} on {m['cpus']} cores of {m['cpu_model']} (load average {m['load_average']:.1f}), "
            f"best of {ROUNDS} alternating rounds of {CALLS:,} one-message record() calls (server row, then the "
            "message, in one transaction).",
            "",
            "| through | p50 ms | p95 ms | CPU ms in this process per call |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    write_results("sqlalchemy_probe", {"machine": m, "runs": runs}, table)


if __name__ == "__main__":
    asyncio.run(main())
