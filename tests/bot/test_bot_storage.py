"""The store on SQLite and on a real PostgreSQL server: migrations, per-server isolation, corpus edits and
deletions, jobs across restarts, model version pointers and their notifications."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest

from bot.storage import CorpusEntry, GuildSettings, ModelVersion, SQLiteStore, open_store, sqlite_url
from bot.storage.migrations import LATEST, MIGRATIONS
from core import ContinuoError

A, B, C = 111, 222, 333  # servers
BIG = 1_234_567_890_123_456_789  # a real Discord id needs 64 bits


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    """The same tests on each dialect: an SQLite file, or a new database on a real PostgreSQL server."""
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "bot.sqlite3")
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def store(store_url):
    store = open_store(store_url)
    await store.open()
    yield store
    await store.close()


async def reopened(url):
    store = open_store(url)
    await store.open()
    return store


def message(guild, message_id, text, author=7, channel=70, minutes=0):
    when = datetime(2025, 1, 1, tzinfo=UTC) + timedelta(minutes=minutes)
    return CorpusEntry(guild, author, text, message_id, channel, created_at=when)


async def test_open_applies_migrations_once_in_wal_mode(tmp_path):
    path = tmp_path / "bot.sqlite3"
    for _ in range(2):  # a second open finds the schema current and changes nothing
        store = SQLiteStore(path)
        await store.open()
        await store.close()
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    versions = [r[0] for r in db.execute("SELECT version FROM schema_migrations")]
    assert versions == [m.version for m in MIGRATIONS]


async def schema_versions(url) -> list[int]:
    if url.startswith("sqlite"):
        with sqlite3.connect(url[len("sqlite:///") :]) as db:
            return [r[0] for r in db.execute("SELECT version FROM schema_migrations ORDER BY version")]
    import psycopg

    async with await psycopg.AsyncConnection.connect(url) as db:
        return [
            r[0] for r in await (await db.execute("SELECT version FROM schema_migrations ORDER BY version")).fetchall()
        ]


async def test_processes_starting_together_migrate_once(store_url):
    """Five stores open one new database at once: the lock lets one migrate and the others find it done."""
    stores = [open_store(store_url) for _ in range(5)]
    await asyncio.gather(*(s.open() for s in stores))
    await stores[0].record([message(A, 1, "written after the race")])
    assert await stores[4].corpus_texts(A) == ["written after the race"]
    await asyncio.gather(*(s.close() for s in stores))
    assert await schema_versions(store_url) == [m.version for m in MIGRATIONS]


async def test_a_database_newer_than_the_bot_is_refused(store_url):
    store = await reopened(store_url)
    await store.close()
    if store_url.startswith("sqlite"):
        with sqlite3.connect(store_url[len("sqlite:///") :]) as db:
            db.execute("INSERT INTO schema_migrations VALUES (999, 'future', '2099-01-01')")
    else:
        import psycopg

        async with await psycopg.AsyncConnection.connect(store_url) as db:
            await db.execute("INSERT INTO schema_migrations VALUES (999, 'future', now())")
    with pytest.raises(ContinuoError, match=f"schema version 999 is newer than this bot knows \\({LATEST}\\)") as e:
        await open_store(store_url).open()
    assert "\n" not in str(e.value) and "upgrade Continuo" in str(e.value)


async def test_corpus_is_kept_per_server_in_time_order(store):
    await store.record(
        [message(A, 2, "second in A", minutes=2), message(A, 1, "first in A", minutes=1), message(B, 3, "only in B")]
    )
    assert await store.corpus_texts(A) == ["first in A", "second in A"]
    assert await store.corpus_texts(B) == ["only in B"]
    assert await store.forget_author(B, 7) == (1, 0)
    assert await store.corpus_texts(A) == ["first in A", "second in A"]  # A untouched by B's /forget-me


async def test_edits_and_deletions_follow_recorded_messages_only(store):
    await store.record([message(A, 1, "hello there"), message(A, 2, "bye now")])
    assert await store.edit_message(A, 1, "hello again")
    assert not await store.edit_message(A, 99, "never recorded")
    assert not await store.edit_message(B, 1, "another server's id")
    assert await store.remove_messages(A, [2, 98]) == 1
    assert await store.corpus_texts(A) == ["hello again"]
    await store.record([message(A, 1, "recorded twice")])  # a re-recorded message replaces its text
    assert await store.corpus_texts(A) == ["recorded twice"]


async def test_stats_count_messages_files_tokens_and_authors(store):
    await store.record(
        [
            message(A, 1, "one two three", author=1),
            message(A, 2, "four", author=2),
            CorpusEntry(A, 1, "file text here", name="notes.txt"),
        ]
    )
    await store.learn_channel(A, 70)
    await store.set_base_corpus(A, "chat")
    stats = await store.corpus_stats(A)
    assert (stats.messages, stats.files, stats.authors, stats.channels, stats.base) == (2, 1, 2, (70,), "chat")
    assert stats.tokens == (3 + 1) + (1 + 1) + (3 + 1)  # each text plus its line break
    assert stats.characters == len("one two three") + len("four") + len("file text here")
    assert (await store.corpus_stats(B)).messages == 0


async def test_forget_me_removes_messages_and_uploads_of_that_person(store):
    await store.record(
        [
            message(A, 1, "mine", author=5),
            message(A, 2, "theirs", author=6),
            CorpusEntry(A, 5, "my upload", name="a.txt"),
        ]
    )
    assert await store.forget_author(A, 5) == (1, 1)
    assert await store.corpus_texts(A) == ["theirs"]


async def test_voices_are_shared_per_server_stopped_and_stopped_by_forget_me(store):
    await store.record([message(A, 1, "mine", author=7), message(A, 2, "theirs", author=8)])
    await store.record([message(A, 3, "mine later", author=7, minutes=1), message(B, 4, "mine elsewhere", author=7)])
    await store.record([CorpusEntry(A, 7, "an uploaded file", name="f.txt")])
    assert not await store.voice_shared(A, 7)
    assert await store.share_voice(A, 7) and not await store.share_voice(A, 7)  # once
    assert await store.voice_shared(A, 7) and not await store.voice_shared(B, 7)  # that server only
    assert await store.member_texts(A, 7) == ["mine", "mine later"]  # their messages there, not uploads
    exported = await store.export_guild(A)
    assert [member for member, _ in exported.voices] == [7]
    assert await store.stop_voice(A, 7) and not await store.stop_voice(A, 7)
    assert not await store.voice_shared(A, 7)
    await store.share_voice(A, 7)
    await store.forget_author(A, 7)  # /forget-me implies /voice stop
    assert not await store.voice_shared(A, 7) and await store.member_texts(A, 7) == []


async def test_channels_learned_unlearned_and_forgotten(store):
    assert await store.learn_channel(A, 70)
    assert not await store.learn_channel(A, 70)
    await store.record([message(A, 1, "in 70", channel=70), message(A, 2, "in 71", channel=71)])
    assert await store.learned_channels(A) == [70]
    assert await store.learned_channels(B) == []
    assert await store.unlearn_channel(A, 70)
    assert await store.forget_channel(A, 70) == 1
    assert await store.corpus_texts(A) == ["in 71"]


async def test_settings_default_then_stored_per_server(store):
    assert await store.guild_settings(A) == GuildSettings()
    updated = await store.update_guild_settings(A, temperature=1.2, reply_on_mention=False, chime_in=2.5)
    assert updated == GuildSettings(temperature=1.2, reply_on_mention=False, chime_in=2.5)
    assert await store.guild_settings(A) == updated
    assert await store.guild_settings(B) == GuildSettings()
    with pytest.raises(ValueError):
        await store.update_guild_settings(A, **{"temperature = 0; DROP TABLE guilds; --": 1})


async def test_reads_asked_for_together_share_one_transaction_and_none_joins_one_from_before_a_write(store):
    """A burst of commands reads its server's settings once, not once each; a read asked for after a write of this
    process never gets the answer of an identical read from before it."""
    await store.record([message(A, 1, "mine", author=7), message(A, 2, "again", author=7, minutes=1)])
    real_run, ran, hold, release = store.db.run, [], [], asyncio.Event()

    async def run(body, mode, what):
        ran.append(what)
        if hold and what == "guild_settings":
            hold.pop()  # this read stays under way, before it reaches the database, until released
            await release.wait()
        return await real_run(body, mode, what)

    store.db.run = run
    settings = await asyncio.gather(*(store.guild_settings(A) for _ in range(50)))
    assert settings == [GuildSettings()] * 50 and ran.count("guild_settings") == 1
    texts = await asyncio.gather(*(store.member_texts(A, 7) for _ in range(20)), store.member_texts(A, 8))
    assert texts[:20] == [["mine", "again"]] * 20 and texts[20] == [] and ran.count("member_texts") == 2
    texts[0].append("one caller's own list")
    assert texts[1] == ["mine", "again"]

    hold.append(True)
    before = asyncio.ensure_future(store.guild_settings(A))
    await asyncio.sleep(0.05)
    await store.update_guild_settings(A, chime_in=5.0)
    after = await asyncio.wait_for(store.guild_settings(A), 10)  # joining the held read would wait for ever
    assert after.chime_in == 5.0 and not before.done()
    release.set()
    assert (await before).chime_in == 5.0  # it reached the database after the write


async def test_clear_empties_one_server(store):
    await store.record([message(A, 1, "a"), message(B, 2, "b")])
    await store.set_base_corpus(A, "verse")
    assert await store.clear_corpus(A) == 1
    assert await store.corpus_texts(A) == [] and await store.base_corpus(A) is None
    assert await store.corpus_texts(B) == ["b"]


async def test_a_restart_finds_unfinished_jobs_and_keeps_the_corpus(store_url):
    store = await reopened(store_url)
    await store.record([message(A, 1, "kept across restarts")])
    running = await store.add_job(A, requested_by=5, channel_id=70, epochs=3, corpus_tokens=2500)
    await store.update_job(running.id, status="running")
    done = await store.add_job(B, requested_by=6, channel_id=80, epochs=1, corpus_tokens=3000)
    await store.update_job(done.id, status="succeeded", val_perplexity=42.0)
    handed_back = await store.add_job(C, requested_by=7, channel_id=90, epochs=2, corpus_tokens=2500)  # by a stop
    await store.close()  # the process dies here

    store = await reopened(store_url)
    interrupted = await store.interrupt_unfinished_jobs(status="running")  # the queued one resumes (local mode)
    assert [(j.id, j.guild_id, j.status, j.channel_id) for j in interrupted] == [(running.id, A, "interrupted", 70)]
    assert (await store.last_job(A)).status == "interrupted"
    assert (await store.last_job(B, "succeeded")).val_perplexity == 42.0
    assert [j.id for j in await store.unfinished_jobs()] == [handed_back.id]
    assert [j.id for j in await store.interrupt_unfinished_jobs()] == [handed_back.id]
    assert await store.interrupt_unfinished_jobs() == []
    assert await store.corpus_texts(A) == ["kept across restarts"]
    await store.close()


async def test_job_fields_round_trip(store):
    job = await store.add_job(BIG, requested_by=BIG - 1, channel_id=BIG - 2, epochs=4, corpus_tokens=1234)
    started = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    await store.update_job(
        job.id, status="failed", started_at=started, finished_at=started + timedelta(seconds=9), error="out of memory"
    )
    last = await store.last_job(BIG)
    assert (last.guild_id, last.requested_by, last.channel_id, last.epochs, last.corpus_tokens) == (
        BIG,
        BIG - 1,
        BIG - 2,
        4,
        1234,
    )
    assert (last.status, last.started_at, last.finished_at, last.error) == (
        "failed",
        started,
        started + timedelta(seconds=9),
        "out of memory",
    )
    assert last.created_at.tzinfo is not None and await store.last_job(BIG, "succeeded") is None
    with pytest.raises(ValueError):
        await store.update_job(job.id, guild_id=A)


async def test_files_sort_with_messages_of_the_same_moment_as_sqlite_does(store):
    when = datetime(2025, 1, 1, tzinfo=UTC)
    await store.record(
        [
            CorpusEntry(A, 1, "upload", name="u.txt", created_at=when),
            CorpusEntry(A, 1, "message", 5, 70, created_at=when),
        ]
    )
    assert await store.corpus_texts(A) == ["upload", "message"]


def version(guild, name, ppl=None):
    return ModelVersion(guild, name, datetime(2026, 1, 1, tzinfo=UTC), ppl, 3000)


async def test_model_versions_switch_roll_back_and_keep_the_current_one(store):
    assert await store.current_model(A) is None and await store.model_versions(A) == []
    await store.add_model_version(version(A, "v1", 50.0))
    await store.add_model_version(version(A, "v2", 40.0))
    await store.add_model_version(version(B, "v1"))
    first = await store.switch_model(A, "v1")
    second = await store.switch_model(A, "v2")
    assert second.seq > first.seq and (await store.current_model(A)).version == "v2"
    assert [v.version for v in await store.model_versions(A)] == ["v1", "v2"]
    assert (await store.model_versions(A))[1] == version(A, "v2", 40.0)
    assert await store.current_model(B) is None  # B published but never switched
    assert await store.remove_model_versions(A, ["v1", "v2"]) == 1  # the current one stays
    assert [v.version for v in await store.model_versions(A)] == ["v2"]
    assert [v.version for v in await store.model_versions(B)] == ["v1"]
    gone = await store.switch_model(A, None)  # back to the default model
    assert (await store.current_model(A)).version is None
    assert await store.model_pointers_since(second.seq) == [gone]
    with pytest.raises(Exception):  # noqa: B017 - the database's own integrity error, whose type differs by dialect
        await store.switch_model(A, "never-published")


async def test_another_process_learns_of_a_switch(store_url):
    """One store switches; another (as another process or machine would) is told by NOTIFY or polling."""
    writer, watcher = await reopened(store_url), await reopened(store_url)
    await writer.add_model_version(version(A, "v1"))
    await writer.switch_model(A, "v1")  # before watching: not reported
    seen = []
    since = await watcher.newest_model_seq()

    async def watch():
        async for pointer in watcher.watch_models(poll_s=0.05, since=since):
            seen.append((pointer.guild_id, pointer.version))
            if len(seen) == 2:
                return

    task = asyncio.create_task(watch())  # switched before it first runs: still reported, being after `since`
    await writer.add_model_version(version(A, "v2"))
    await writer.switch_model(A, "v2")
    await writer.add_model_version(version(B, "v9"))
    await writer.switch_model(B, "v9")
    await asyncio.wait_for(task, 10)
    assert seen == [(A, "v2"), (B, "v9")]
    await writer.close()
    await watcher.close()


# --- SQLite under another process's lock, and a damaged file

HOLD_LOCK = """
import sqlite3, sys, time
db = sqlite3.connect(sys.argv[1], isolation_level=None)
db.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
time.sleep(float(sys.argv[2]))
db.execute("COMMIT")
"""


async def lock_for(path, seconds: float):
    """Another process takes SQLite's exclusive lock on the file and keeps it for `seconds`."""
    import sys

    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", HOLD_LOCK, str(path), str(seconds), stdout=asyncio.subprocess.PIPE
    )
    assert (await holder.stdout.readline()).strip() == b"locked"
    return holder


async def test_writes_wait_out_another_process_lock_in_order_and_none_is_lost(tmp_path, caplog):
    path = tmp_path / "bot.sqlite3"
    store = SQLiteStore(path, busy_timeout_s=0.2, write_retry_s=30)
    await store.open()
    holder = await lock_for(path, 1.5)  # longer than the busy timeout: a plain write would fail
    written = asyncio.gather(
        store.record([message(A, 1, "said while locked")]),
        store.edit_message(A, 1, "edited while locked"),  # only works after the record
        store.record([message(A, 2, "also while locked", minutes=1)]),
    )
    assert await written == [1, True, 1]
    await holder.wait()
    assert await store.corpus_texts(A) == ["edited while locked", "also while locked"]
    assert "is locked by another process" in caplog.text
    await store.close()


async def test_a_lock_held_past_the_retry_budget_is_one_line_and_the_store_recovers(tmp_path, caplog):
    from bot.storage import StoreLocked

    path = tmp_path / "bot.sqlite3"
    store = SQLiteStore(path, busy_timeout_s=0.1, write_retry_s=0.5)
    await store.open()
    holder = await lock_for(path, 2.5)
    with pytest.raises(StoreLocked) as e:
        await store.record([message(A, 1, "cannot be stored")])
    assert str(e.value).startswith(f"{path} stayed locked by another process") and "\n" not in str(e.value)
    assert "giving up" in caplog.text  # reported in the log as well
    await holder.wait()
    await store.record([message(A, 2, "stored once the lock is gone")])
    assert await store.corpus_texts(A) == ["stored once the lock is gone"]
    await store.close()


async def test_a_damaged_database_file_is_one_line_naming_it(tmp_path):
    path = tmp_path / "bot.sqlite3"
    path.write_bytes(b"this is not a database, just some text that happens to be here " * 100)
    with pytest.raises(ContinuoError) as e:
        await SQLiteStore(path).open()
    message_ = str(e.value)
    assert message_.startswith(f"{path} is not a usable SQLite database") and "\n" not in message_
    assert "restore a backup" in message_ and "continuo bot backup" in message_


async def test_a_postgresql_server_that_goes_away_is_one_line_and_the_store_reconnects(postgres_server):
    """A server of its own for this test, stopped as by a crash while the store is open, then started again."""
    import postgres_server as pg

    url = pg.start()
    try:
        from bot.storage.postgres import PostgresStore

        store = PostgresStore(url, connect_timeout_s=2)  # a call waits this long for the server
        await store.open()
        await store.record([message(A, 1, "before the crash")])
        pg.pause(url)
        with pytest.raises(ContinuoError) as e:
            await store.record([message(A, 2, "while it is down")])
        assert str(e.value).startswith("the database postgresql://postgres@/postgres") and "\n" not in str(e.value)
        assert "cannot be reached" in str(e.value)
        pg.resume(url)
        await store.record([message(A, 3, "after the restart", minutes=3)])
        assert await store.corpus_texts(A) == ["before the crash", "after the restart"]
        await store.close()
    finally:
        pg.stop(url)


# --- databases made before the one SQL layer (bot/storage/store.py) upgrade in place

# Rows as the two hand-written stores wrote them under migrations 0001-0002 (SQLite: moments as ISO text with
# microseconds, booleans as 0/1; PostgreSQL: timestamptz, booleans, pointer numbers from model_pointer_seq).
OLD_ROWS = [
    "INSERT INTO guilds (id, base_corpus, created_at) VALUES ({g}, 'verse', '2025-01-01T00:00:00.000000+00:00')",
    "INSERT INTO guild_settings (guild_id, temperature, words, reply_on_mention) VALUES ({g}, 1.25, 12, {false})",
    "INSERT INTO learned_channels VALUES ({g}, 70, '2025-01-01T00:00:01.000000+00:00')",
    "INSERT INTO corpus_messages (guild_id, message_id, channel_id, author_id, kind, name, text, tokens, created_at)"
    " VALUES ({g}, 1, 70, 5, 'message', '', 'an old message', 4, '2025-01-01T00:01:00.000000+00:00'),"
    " ({g}, NULL, NULL, 6, 'file', 'old.txt', 'an old upload', 4, '2025-01-01T00:01:00.000000+00:00'),"
    " ({g}, 2, 70, 6, 'message', '', 'a later one', 4, '2025-01-01T00:02:00.123456+00:00')",
    "INSERT INTO training_jobs (guild_id, status, epochs, requested_by, channel_id, created_at, started_at,"
    " finished_at, corpus_tokens, val_perplexity, error) VALUES ({g}, 'succeeded', 2, 5, 70,"
    " '2025-01-02T00:00:00.000000+00:00', '2025-01-02T00:00:01.000000+00:00',"
    " '2025-01-02T00:05:00.000000+00:00', 12, 41.5, ''),"
    " ({g}, 'running', 1, 5, 70, '2025-01-03T00:00:00.000000+00:00', NULL, NULL, 12, NULL, '')",
    "INSERT INTO model_versions VALUES ({g}, 'v1', '2025-01-02T00:05:00.000000+00:00', 41.5, 12)",
    "INSERT INTO model_pointers VALUES ({g}, 'v1', {seq}, '2025-01-02T00:05:01.000000+00:00')",
]

OLD_SCHEMA_TABLE = (
    "CREATE TABLE schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at {moment} NOT NULL)"
)


async def old_database(url: str, migrations: int) -> None:
    """A database as the stores before the one SQL layer left it: their migration files and rows, written raw."""
    at = datetime(2025, 1, 1, tzinfo=UTC).isoformat()
    if url.startswith("sqlite"):
        dialect, values = "sqlite", {"g": BIG, "false": 0, "seq": 1}
    else:
        dialect, values = "postgresql", {"g": BIG, "false": "FALSE", "seq": "nextval('model_pointer_seq')"}
    done = [(m.version, m.name, at) for m in MIGRATIONS[:migrations]]
    schema = [m.sql[dialect] for m in MIGRATIONS[:migrations]]
    rows = [sql.format(**values) for sql in OLD_ROWS]
    if dialect == "sqlite":
        with sqlite3.connect(url[len("sqlite:///") :]) as db:
            db.execute(OLD_SCHEMA_TABLE.format(moment="TEXT"))
            db.executemany("INSERT INTO schema_migrations VALUES (?, ?, ?)", done)
            for sql in [*schema, *rows]:
                db.executescript(sql)
        return
    import psycopg

    async with await psycopg.AsyncConnection.connect(url) as db:
        await db.execute(OLD_SCHEMA_TABLE.format(moment="TIMESTAMPTZ"))
        async with db.cursor() as cur:
            await cur.executemany("INSERT INTO schema_migrations VALUES (%s, %s, %s)", done)
        for sql in [*schema, *rows]:
            await db.execute(sql)


@pytest.mark.parametrize("migrations", [2, LATEST])
async def test_a_database_made_before_the_one_sql_layer_upgrades_in_place(store_url, migrations):
    await old_database(store_url, migrations)
    store = await reopened(store_url)
    assert await schema_versions(store_url) == [m.version for m in MIGRATIONS]
    old = await store.export_guild(BIG)
    day = datetime(2025, 1, 1, tzinfo=UTC)
    assert (old.created_at, old.base_corpus, old.settings) == (
        day,
        "verse",
        {"temperature": 1.25, "words": 12, "reply_on_mention": False},
    )
    assert old.channels == [(70, day + timedelta(seconds=1))]
    assert [(e.text, e.message_id, e.author_id, e.name, e.created_at) for e in old.corpus] == [
        ("an old upload", None, 6, "old.txt", day + timedelta(minutes=1)),
        ("an old message", 1, 5, "", day + timedelta(minutes=1)),
        ("a later one", 2, 6, "", day + timedelta(minutes=2, microseconds=123456)),
    ]
    first, second = old.jobs
    assert (first.status, first.epochs, first.val_perplexity, first.finished_at) == (
        "succeeded",
        2,
        41.5,
        day + timedelta(days=1, minutes=5),
    )
    assert (second.status, second.started_at) == ("running", None)
    assert old.models == [ModelVersion(BIG, "v1", day + timedelta(days=1, minutes=5), 41.5, 12)]
    assert (old.current_model, old.text_removed_at) == ("v1", None)
    assert await store.guild_settings(BIG) == GuildSettings(temperature=1.25, words=12, reply_on_mention=False)
    assert (await store.corpus_stats(BIG)).messages == 2

    # the old rows take part in everything the new store writes
    assert [j.id for j in await store.interrupt_unfinished_jobs()] == [second.id]
    await store.record([message(BIG, 3, "a new message", author=5, minutes=3 * 24 * 60)])
    assert await store.corpus_texts(BIG) == ["an old upload", "an old message", "a later one", "a new message"]
    job = await store.add_job(BIG, requested_by=5, channel_id=70, epochs=1, corpus_tokens=16)
    assert job.id > second.id
    await store.set_job_progress(job.id, '{"epoch": 1}')
    await store.add_model_version(version(BIG, "v2"))
    pointer = await store.switch_model(BIG, "v2")
    assert pointer.seq > 1 and await store.model_pointers_since(0) == [pointer]
    assert await store.remove_model_versions(BIG, ["v1", "v2"]) == 1
    assert await store.forget_author(BIG, 5) == (2, 0)
    assert await store.text_removed_at(BIG) is not None
    await store.close()

    store = await reopened(store_url)  # found current: nothing migrated twice
    assert await store.corpus_texts(BIG) == ["an old upload", "a later one"]
    assert await store.job_progress(job.id) == '{"epoch": 1}'
    await store.close()
    assert await schema_versions(store_url) == [m.version for m in MIGRATIONS]


async def test_the_corpus_cap_reads_the_corpus_size_rarely_far_from_it_and_every_time_near_it(tmp_path, monkeypatch):
    from bot.corpus_cap import CorpusCap, CorpusFull

    store = SQLiteStore(tmp_path / "bot.sqlite3")
    await store.open()
    reads = []
    real_stats = store.corpus_stats

    async def counted(guild_id):
        reads.append(guild_id)
        return await real_stats(guild_id)

    monkeypatch.setattr(store, "corpus_stats", counted)
    cap = CorpusCap(store, limit_mb=0.001)  # 1,000 characters; NEAR from 900
    for _ in range(8):  # 800 characters let in, far from the cap: the size is read once
        await cap.check(1, 100)
        await store.record([CorpusEntry(1, 7, "x" * 100)])
    assert len(reads) == 1
    await cap.check(1, 100)  # 900: near the cap, read again
    await store.record([CorpusEntry(1, 7, "x" * 100)])
    assert len(reads) == 2
    with pytest.raises(CorpusFull):  # 1,001 would be over: refused, after reading the true size
        await cap.check(1, 101)
    assert len(reads) == 3
    await store.clear_corpus(1)  # removed text: the kept size is too big, so near the cap it reads again
    await cap.check(1, 100)
    assert len(reads) == 4 and (await store.corpus_stats(1)).characters == 0
    await store.close()
