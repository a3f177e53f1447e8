"""The coordinator: jobs queued in the store by bot processes are trained by one process, progress and results
written back, the new model published; a restart picks up where it left off."""

from __future__ import annotations

import asyncio

import pytest

from bot.coordinator import Coordinator, publisher
from bot.storage import CorpusEntry, open_store, sqlite_url
from bot.storage.base import UNFINISHED
from bot.storage.versions import ModelVersions
from bot.training.follower import progress_from_json
from core import LocalProcessRunner, open_bundle_storage, read_card

A, B = 111, 222  # two servers
TRAINING_TIMEOUT = 180  # seconds; a tiny model trains in a few, but CI machines are shared


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


@pytest.fixture
async def cluster(bot_settings, tmp_path):
    """A coordinator on local processes with its store (SQLite: the store's own tests cover both) and versions."""
    store = open_store(sqlite_url(tmp_path / "bot.sqlite3"))
    await store.open()
    settings = bot_settings.model_copy(
        update={
            "data_dir": tmp_path / "coordinator",
            "coordinator_poll_s": 0.1,
            "progress_interval_s": 0.1,
            "max_training_jobs": 1,
        }
    )
    versions = ModelVersions(store, open_bundle_storage(str(tmp_path / "model-store"), tmp_path / "cache"))
    coordinator = Coordinator(store, LocalProcessRunner(), settings, publisher(versions))
    yield store, coordinator, versions
    await coordinator.close()
    await store.close()


async def until(condition, timeout: float = TRAINING_TIMEOUT, what: str = "the condition"):
    deadline = asyncio.get_running_loop().time() + timeout
    while not await condition():
        assert asyncio.get_running_loop().time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.1)


async def test_queued_jobs_train_one_per_server_with_progress_and_publish_a_version(cluster):
    store, coordinator, versions = cluster
    for guild in (A, B):
        await store.set_base_corpus(guild, "verse")
    first = await store.add_job(A, requested_by=5, channel_id=7, epochs=1, corpus_tokens=3000)
    second = await store.add_job(A, requested_by=5, channel_id=7, epochs=1, corpus_tokens=3000)  # same server
    other = await store.add_job(B, requested_by=6, channel_id=8, epochs=1, corpus_tokens=3000)
    coordinator.settings = coordinator.settings.model_copy(update={"max_training_jobs": 2})
    assert await coordinator.start_queued() == [first.id, other.id]  # never two jobs of one server at once
    progress: list = []

    async def finished():
        progress.append(progress_from_json(await store.job_progress(first.id))[0])
        return (await store.last_job(B)).status not in UNFINISHED and [j.id for j in await store.unfinished_jobs()] == [
            second.id
        ]

    await until(finished, what="the first two jobs")
    done = await store.last_job(B)
    assert done.id == other.id and done.status == "succeeded" and done.val_perplexity > 0
    assert any(p is not None and p.phase in ("batch", "epoch", "done") for p in progress)
    for guild in (A, B):
        pointer = await versions.pointer(guild)
        assert pointer is not None and pointer.version is not None
        card = read_card(await versions.local_bundle(guild))
        assert "verse" in card.corpus
    assert (await store.unfinished_jobs())[0].status == "queued"  # A's second waits for the next poll


async def test_a_restarted_coordinator_requeues_the_jobs_it_was_running(cluster):
    store, coordinator, versions = cluster
    await store.set_base_corpus(A, "verse")
    job = await store.add_job(A, requested_by=5, channel_id=7, epochs=1, corpus_tokens=3000)
    await store.update_job(job.id, status="running")  # as a coordinator killed mid-job leaves it
    assert [j.id for j in await coordinator.recover()] == [job.id]
    assert (await store.last_job(A)).status == "queued"
    task = asyncio.create_task(coordinator.run())
    try:
        await until(lambda: _status(store, A, "succeeded"), what="the requeued job")
    finally:
        coordinator.stop()
        await task
    assert (await versions.pointer(A)).version is not None


async def test_a_failing_job_is_recorded_with_its_reason_and_the_stop_requeues_running_ones(cluster):
    store, coordinator, versions = cluster
    await store.record([CorpusEntry(A, 5, "far too short to train on", message_id=1, channel_id=7)])
    failing = await store.add_job(A, requested_by=5, channel_id=7, epochs=1, corpus_tokens=3000)
    await coordinator.start_queued()
    await until(lambda: _status(store, A, "failed"), what="the failure")
    assert "at least 2,000 are needed" in (await store.last_job(A)).error
    assert await versions.pointer(A) is None  # nothing published: the server keeps its model

    await store.set_base_corpus(B, "verse")
    long = await store.add_job(B, requested_by=5, channel_id=7, epochs=100, corpus_tokens=3000)
    await coordinator.start_queued()
    await until(lambda: _status(store, B, "running"), what="the long job to start")
    await coordinator.close()  # a coordinator stopping (SIGTERM) puts its jobs back in the queue
    assert (await store.last_job(B)).status == "queued" and failing.id != long.id


async def test_a_close_ends_the_queue_only_once_the_coordinator_took_it(cluster, tmp_path, caplog):
    store, coordinator, _ = cluster
    job = await store.add_job(A, requested_by=5, channel_id=7, epochs=1, corpus_tokens=3000)
    never_opened = open_store(sqlite_url(tmp_path / "bot.sqlite3"))  # a bot that failed before opening its store
    failed_to_start = Coordinator(never_opened, coordinator.runner, coordinator.settings, coordinator.publish)
    await failed_to_start.close(hand_back=False)
    assert "could not record" not in caplog.text
    assert (await store.last_job(A)).status == "queued"  # the next start finds it as it was

    no_slot = coordinator.settings.model_copy(update={"max_training_jobs": 0})
    taking = Coordinator(store, coordinator.runner, no_slot, coordinator.publish)
    assert await taking.start_queued() == []  # it took the queue, with no slot free to start the job
    await taking.close(hand_back=False)  # a bot process closing in local mode ends what it took
    ended = await store.last_job(A)
    assert (ended.id, ended.status, ended.error) == (job.id, "interrupted", "interrupted by a shutdown")


async def test_a_stop_while_a_trained_job_publishes_hands_it_back_with_no_epoch_to_train_again(cluster):
    store, coordinator, versions = cluster
    await store.set_base_corpus(A, "verse")
    await store.add_job(A, requested_by=5, channel_id=7, epochs=2, corpus_tokens=3000)
    publishing, publish = asyncio.Event(), coordinator.publish

    async def never_done(*_):  # the stop comes while the trained model is being published
        publishing.set()
        await asyncio.Event().wait()

    coordinator.publish = never_done
    await coordinator.start_queued()
    await asyncio.wait_for(publishing.wait(), TRAINING_TIMEOUT)
    await coordinator.close(hand_back=True)
    assert (await store.last_job(A)).status == "queued"
    checkpoints = coordinator.settings.home / "checkpoints" / str(A)
    assert (checkpoints / "state.npz").is_file()

    again = Coordinator(store, LocalProcessRunner(), coordinator.settings, publish)
    try:
        await again.start_queued()
        await until(lambda: _status(store, A, "succeeded"), what="the job handed back")
    finally:
        await again.close()
    job = await store.last_job(A)
    progress, notice = progress_from_json(await store.job_progress(job.id))
    assert "all its epochs came from the checkpoint (epochs 1-2)" in notice, notice
    assert (await versions.pointer(A)).version is not None and not checkpoints.exists()


async def _status(store, guild, status):
    job = await store.last_job(guild)
    return job is not None and job.status == status


async def test_a_job_whose_text_left_the_corpus_while_it_trained_trains_again_before_it_publishes(cluster):
    from bot.forgetting import may_answer
    from bot.storage import CorpusEntry

    store, coordinator, versions = cluster
    await store.set_base_corpus(A, "verse")
    await store.record([CorpusEntry(A, 5, "only ann wrote zyzzyva here", 1, 70)])
    job = await store.add_job(A, requested_by=5, channel_id=7, epochs=1, corpus_tokens=3000)
    assert await coordinator.start_queued() == [job.id]

    async def running():
        return (await store.last_job(A)).status == "running"

    await until(running, what="the job to read its corpus")
    first_read = (await store.last_job(A)).started_at
    assert await store.forget_author(A, 5) == (1, 0)  # while it trains on ann's words

    async def ended():
        return (await store.last_job(A)).status in ("succeeded", "failed")

    await until(ended, what="the job to end")
    done, removed = await store.last_job(A), await store.text_removed_at(A)
    assert done.status == "succeeded", done.error
    assert first_read < removed < done.started_at  # it read the corpus again after the forget
    published = await store.model_versions(A)
    assert len(published) == 1 and may_answer(published[0].created_at, removed)  # only the rerun was published
