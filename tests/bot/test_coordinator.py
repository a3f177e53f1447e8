"""The coordinator: jobs queued in the store by bot processes are trained by one process, progress and results
written back, the new model published; a restart picks up where it left off."""
from __future__ import annotations

import pytest

from bot.storage import open_store, sqlite_url


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request, tmp_path):
    url = sqlite_url(tmp_path / "bot.sqlite3") if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    store = open_store(url)
    await store.open()
    yield store
    await store.close()


async def test_the_store_holds_every_servers_queue_and_each_jobs_progress(store):
    a = await store.add_job(1, requested_by=5, channel_id=7, epochs=2, corpus_tokens=3000)
    b = await store.add_job(2, requested_by=6, channel_id=8, epochs=3, corpus_tokens=4000)
    done = await store.add_job(3, requested_by=6, channel_id=9, epochs=3, corpus_tokens=4000)
    await store.update_job(done.id, status="succeeded")
    await store.update_job(b.id, status="running")
    assert [(j.id, j.status) for j in await store.unfinished_jobs()] == [(a.id, "queued"), (b.id, "running")]
    assert await store.job_progress(b.id) is None
    await store.set_job_progress(b.id, '{"epoch": 1}')
    await store.set_job_progress(b.id, '{"epoch": 2}')
    assert await store.job_progress(b.id) == '{"epoch": 2}' and await store.job_progress(a.id) is None
