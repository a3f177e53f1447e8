"""The SQLite store: migrations, WAL, per-server isolation, corpus edits and deletions, jobs across restarts."""
from __future__ import annotations

import sqlite3
from datetime import datetime, timedelta, timezone

import pytest

from bot.storage import CorpusEntry, GuildSettings, SQLiteStore
from bot.storage.migrations import MIGRATIONS
from core import ContinuoError

A, B = 111, 222  # two servers


@pytest.fixture
async def store(tmp_path):
    store = SQLiteStore(tmp_path / "bot.sqlite3")
    await store.open()
    yield store
    await store.close()


def message(guild, message_id, text, author=7, channel=70, minutes=0):
    when = datetime(2025, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minutes)
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
    assert versions == [v for v, _, _ in MIGRATIONS]


async def test_a_database_newer_than_the_bot_is_refused(tmp_path):
    path = tmp_path / "bot.sqlite3"
    store = SQLiteStore(path)
    await store.open()
    await store.close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO schema_migrations VALUES (999, 'future', '2099-01-01')")
    db.commit()
    db.close()
    with pytest.raises(ContinuoError, match="newer than this bot knows"):
        await SQLiteStore(path).open()


async def test_corpus_is_kept_per_server_in_time_order(store):
    await store.record([message(A, 2, "second in A", minutes=2), message(A, 1, "first in A", minutes=1),
                        message(B, 3, "only in B")])
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
    await store.record([message(A, 1, "one two three", author=1), message(A, 2, "four", author=2),
                        CorpusEntry(A, 1, "file text here", name="notes.txt")])
    await store.learn_channel(A, 70)
    await store.set_base_corpus(A, "chat")
    stats = await store.corpus_stats(A)
    assert (stats.messages, stats.files, stats.authors, stats.channels, stats.base) == (2, 1, 2, (70,), "chat")
    assert stats.tokens == (3 + 1) + (1 + 1) + (3 + 1)  # each text plus its line break
    assert stats.characters == len("one two three") + len("four") + len("file text here")
    assert (await store.corpus_stats(B)).messages == 0


async def test_forget_me_removes_messages_and_uploads_of_that_person(store):
    await store.record([message(A, 1, "mine", author=5), message(A, 2, "theirs", author=6),
                        CorpusEntry(A, 5, "my upload", name="a.txt")])
    assert await store.forget_author(A, 5) == (1, 1)
    assert await store.corpus_texts(A) == ["theirs"]


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
    updated = await store.update_guild_settings(A, temperature=1.2, reply_on_mention=False)
    assert updated == GuildSettings(temperature=1.2, reply_on_mention=False)
    assert await store.guild_settings(A) == updated
    assert await store.guild_settings(B) == GuildSettings()
    with pytest.raises(ValueError):
        await store.update_guild_settings(A, **{"temperature = 0; DROP TABLE guilds; --": 1})


async def test_clear_empties_one_server(store):
    await store.record([message(A, 1, "a"), message(B, 2, "b")])
    await store.set_base_corpus(A, "verse")
    assert await store.clear_corpus(A) == 1
    assert await store.corpus_texts(A) == [] and await store.base_corpus(A) is None
    assert await store.corpus_texts(B) == ["b"]


async def test_a_restart_finds_unfinished_jobs_and_keeps_the_corpus(tmp_path):
    path = tmp_path / "bot.sqlite3"
    store = SQLiteStore(path)
    await store.open()
    await store.record([message(A, 1, "kept across restarts")])
    running = await store.add_job(A, requested_by=5, channel_id=70, epochs=3, corpus_tokens=2500)
    await store.update_job(running.id, status="running")
    done = await store.add_job(B, requested_by=6, channel_id=80, epochs=1, corpus_tokens=3000)
    await store.update_job(done.id, status="succeeded", val_perplexity=42.0)
    await store.close()  # the process dies here

    store = SQLiteStore(path)
    await store.open()
    interrupted = await store.interrupt_unfinished_jobs()
    assert [(j.id, j.guild_id, j.status, j.channel_id) for j in interrupted] == [(running.id, A, "interrupted", 70)]
    assert (await store.last_job(A)).status == "interrupted"
    assert (await store.last_job(B, "succeeded")).val_perplexity == 42.0
    assert await store.interrupt_unfinished_jobs() == []
    assert await store.corpus_texts(A) == ["kept across restarts"]
    await store.close()
