"""`continuo bot backup`, `continuo bot migrate-store` and `--database`: a backup restores, servers move between
SQLite and PostgreSQL with nothing lost and nothing mixed, and a bad or unreachable database is one line."""

from __future__ import annotations

import asyncio
import shutil
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from bot.__main__ import main
from bot.storage import CorpusEntry, ModelVersion, open_store, sqlite_url

SERVERS = (111, 222, 1_234_567_890_123_456_789)


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out.strip(), err.strip()


async def fill(url: str, servers=SERVERS) -> None:
    """Servers with a bit of everything the store keeps, each different, so a mix-up would show."""
    store = open_store(url)
    await store.open()
    start = datetime(2026, 1, 1, tzinfo=UTC)
    for n, guild in enumerate(servers):
        await store.record(
            [
                CorpusEntry(
                    guild,
                    10 + i,
                    f"server {n} message {i} 🌊",
                    1000 + i,
                    70 + n,
                    created_at=start + timedelta(minutes=i),
                )
                for i in range(5)
            ]
        )
        await store.record([CorpusEntry(guild, 10, f"server {n} upload", name=f"{n}.txt", created_at=start)])
        await store.learn_channel(guild, 70 + n)
        await store.set_base_corpus(guild, "verse" if n % 2 else None)
        await store.update_guild_settings(guild, temperature=0.5 + n, reply_on_mention=bool(n % 2))
        for status in ("succeeded", "failed"):
            job = await store.add_job(guild, 10, 70 + n, epochs=n + 1, corpus_tokens=2500 + n)
            await store.update_job(job.id, status=status, val_perplexity=40.0 + n, finished_at=start, error=status)
        for v in ("v1", "v2"):
            await store.add_model_version(ModelVersion(guild, f"{v}-{n}", start, 40.0 + n, 2500 + n))
        await store.switch_model(guild, f"v1-{n}")
    await store.close()


async def everything(url: str) -> dict:
    """Every server's data as the store reads it back (job ids, which each store gives, left out)."""
    store = open_store(url)
    await store.open()
    try:
        found = {}
        for guild in await store.guild_ids():
            data = await store.export_guild(guild)
            found[guild] = replace(data, jobs=[replace(j, id=0) for j in data.jobs])
        return found
    finally:
        await store.close()


async def test_backup_restores_everything(tmp_path, capsys):
    data = tmp_path / "data"
    await fill(sqlite_url(data / "bot.sqlite3"))
    before = await everything(sqlite_url(data / "bot.sqlite3"))
    code, out, err = await asyncio.to_thread(
        run_cli, capsys, "backup", str(tmp_path / "backup.sqlite3"), "--data", str(data)
    )
    assert code == 0 and err == "" and f"to {tmp_path / 'backup.sqlite3'}" in out and "to restore" in out
    (data / "bot.sqlite3").write_bytes(b"disk trouble" * 1000)  # the database is lost
    for leftover in data.glob("bot.sqlite3-*"):
        leftover.unlink()
    code, _, err = await asyncio.to_thread(run_cli, capsys, "backup", str(tmp_path / "b2"), "--data", str(data))
    assert code == 2 and "is not a usable SQLite database" in err and "\n" not in err
    shutil.copy(tmp_path / "backup.sqlite3", data / "bot.sqlite3")  # restoring is copying it back
    assert await everything(sqlite_url(data / "bot.sqlite3")) == before
    assert len(before) == len(SERVERS)


def test_backup_mistakes_are_one_line(tmp_path, capsys):
    code, _, err = run_cli(capsys, "backup", str(tmp_path / "b"), "--data", str(tmp_path / "empty"))
    assert code == 2 and "there is no database at" in err and "\n" not in err
    code, _, err = run_cli(capsys, "backup", str(tmp_path / "b"), "--database", "mysql://db/continuo")
    assert code == 2 and "unknown database URL" in err and "sqlite:///PATH or postgresql://" in err


def test_backup_of_postgresql_names_pg_dump(capsys):
    code, _, err = run_cli(capsys, "backup", "/tmp/x.dump", "--database", "postgresql://bot:secret@db.example/bot")
    assert code == 2 and "pg_dump --format=custom --file /tmp/x.dump" in err
    assert "secret" not in err and "\n" not in err


async def test_servers_move_to_postgresql_and_back_with_nothing_lost_or_mixed(tmp_path, postgres_url, capsys):
    source, back = sqlite_url(tmp_path / "a.sqlite3"), sqlite_url(tmp_path / "b.sqlite3")
    await fill(source)
    await fill(postgres_url, servers=(999,))  # the target already serves another server
    before = await everything(source)
    other = (await everything(postgres_url))[999]

    code, out, err = await asyncio.to_thread(run_cli, capsys, "migrate-store", source, postgres_url)
    assert code == 0 and err == "" and f"copied {len(SERVERS)} servers" in out
    on_postgres = await everything(postgres_url)
    assert {g: on_postgres[g] for g in SERVERS} == before
    assert on_postgres[999] == other  # untouched

    code, out, _ = await asyncio.to_thread(
        run_cli,
        capsys,
        "migrate-store",
        postgres_url,
        str(tmp_path / "b.sqlite3"),
        "--guild",
        str(SERVERS[2]),
        "--guild",
        "111",
    )
    assert code == 0 and "copied 2 servers" in out
    assert await everything(back) == {g: before[g] for g in (111, SERVERS[2])}

    code, _, err = await asyncio.to_thread(run_cli, capsys, "migrate-store", source, postgres_url)
    assert code == 2 and "already holds server 111 and 2 more; nothing was copied" in err
    assert await everything(postgres_url) == on_postgres


async def test_a_wrong_or_unreachable_database_is_one_line(tmp_path, postgres_url, capsys):
    await fill(sqlite_url(tmp_path / "a.sqlite3"), servers=(1,))
    missing = postgres_url.replace("/continuo_test_", "/no_such_database_")
    for target, says in (
        (missing, 'database "no_such_database_'),
        ("postgresql://nobody@127.0.0.1:1/continuo", "cannot open the database"),
        (str(tmp_path / "nowhere.sqlite3"), "there is no database at"),
    ):
        args = (
            ("migrate-store", str(tmp_path / "a.sqlite3"), target)
            if "nowhere" not in target
            else ("migrate-store", target, str(tmp_path / "b.sqlite3"))
        )
        code, _, err = await asyncio.to_thread(run_cli, capsys, *args)
        assert code == 2 and says in err and "\n" not in err and "Traceback" not in err, err


async def test_the_bot_with_an_unreachable_database_is_one_line(world, monkeypatch, tmp_path, tiny_model_path, capsys):
    monkeypatch.setenv("DISCORD_TOKEN", world.double.token)
    monkeypatch.chdir(tmp_path)
    code = await asyncio.to_thread(
        main,
        [
            "--model",
            str(tiny_model_path),
            "--data",
            str(tmp_path),
            "--no-sync",
            "--database",
            "postgresql://continuo:secret@127.0.0.1:1/continuo",
        ],
    )
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith(
        "python -m bot: error: cannot open the database postgresql://continuo:***@127.0.0.1:1/continuo:"
    ), err
    assert "\n" not in err and "secret" not in err and "--database" in err


def test_a_postgresql_url_without_the_scale_extra_says_what_to_install(monkeypatch):
    import sys

    from core import ContinuoError

    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed
    with pytest.raises(ContinuoError, match=r'pip install "continuo\[scale\]"'):
        open_store("postgresql://db/continuo")
