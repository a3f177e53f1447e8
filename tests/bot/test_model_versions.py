"""Servers' model versions on each store (SQLite, PostgreSQL) and model storage (a folder, fsspec memory://):
publish, switch, roll back, retention, a crash between upload and switch, other processes following along."""

from __future__ import annotations

import asyncio
import json
import shutil
import uuid

import pytest

from bot.models import ModelService
from bot.storage import open_store, sqlite_url
from bot.storage.versions import ModelVersions, NoEarlierVersion
from core import open_bundle_storage, read_card

pytest.importorskip("fsspec", reason='model storage URLs need fsspec: pip install -e ".[test]"')

A, B = 111, 222


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request, tmp_path):
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "bot.sqlite3")
    return request.getfixturevalue("postgres_url")


@pytest.fixture(params=["folder", "memory"])
def storage_url(request, tmp_path):
    return str(tmp_path / "model-store") if request.param == "folder" else f"memory://tests/{uuid.uuid4().hex}"


class Process:
    """What one bot process holds: its store connection, model storage with its own cache, its versions."""

    def __init__(self, store_url, storage_url, cache, keep=3):
        self.store = open_store(store_url)
        self.storage = open_bundle_storage(storage_url, cache)
        self.versions = ModelVersions(self.store, self.storage, keep=keep, poll_s=0.05)

    async def __aenter__(self):
        await self.store.open()
        return self

    async def __aexit__(self, *exc):
        await self.versions.close()
        await self.store.close()


@pytest.fixture
async def process(store_url, storage_url, tmp_path):
    async with Process(store_url, storage_url, tmp_path / "cache") as process:
        yield process


@pytest.fixture
def bundles(tmp_path, tiny_model_path):
    """bundles(ppl): a copy of the tiny bundle whose card says that validation perplexity (to tell them apart)."""

    def make(ppl: float):
        path = tmp_path / "trained" / str(ppl)
        shutil.copytree(tiny_model_path, path)
        card = json.loads((path / "card.json").read_text())
        (path / "card.json").write_text(json.dumps({**card, "val_perplexity": ppl}))
        return path

    return make


async def served_ppl(versions, guild):
    path = await versions.local_bundle(guild)
    return None if path is None else read_card(path).val_perplexity


async def test_publish_switches_and_rollback_goes_back_one_version_at_a_time(process, bundles):
    v = process.versions
    assert await v.local_bundle(A) is None
    with pytest.raises(NoEarlierVersion, match="no model of its own yet"):
        await v.rollback(A)
    first = await v.publish(A, bundles(50.0))
    second = await v.publish(A, bundles(40.0))
    assert (first.val_perplexity, second.val_perplexity) == (50.0, 40.0) and first.version < second.version
    assert await served_ppl(v, A) == 40.0 and await v.local_bundle(B) is None  # B never sees A's versions
    assert (await v.rollback(A)).version == first.version
    assert await served_ppl(v, A) == 50.0
    with pytest.raises(NoEarlierVersion, match="no earlier model version"):
        await v.rollback(A)
    await v.publish(A, bundles(30.0))  # a new training after a rollback is the newest and current
    assert await served_ppl(v, A) == 30.0


async def test_retention_keeps_the_newest_and_the_current(store_url, storage_url, tmp_path, bundles):
    async with Process(store_url, storage_url, tmp_path / "cache", keep=2) as p:
        made = [(await p.versions.publish(A, bundles(ppl))).version for ppl in (60.0, 50.0, 40.0, 30.0)]
        assert [m.version for m in await p.store.model_versions(A)] == made[2:]
        assert p.storage.versions(str(A)) == made[2:]  # the files of dropped versions are gone too
        await p.versions.rollback(A)
        await p.versions.publish(A, bundles(20.0))  # keeps the 2 newest: 30.0 and 20.0
        assert [m.val_perplexity for m in await p.store.model_versions(A)] == [30.0, 20.0]


async def test_a_crash_between_upload_and_switch_leaves_the_old_model_current(
    store_url, storage_url, tmp_path, bundles, monkeypatch
):
    async with Process(store_url, storage_url, tmp_path / "cache") as p:
        old = await p.versions.publish(A, bundles(50.0))

        async def killed(*args):
            raise SystemExit("the process dies here")

        monkeypatch.setattr(p.store, "add_model_version", killed)  # uploaded; never recorded nor switched
        with pytest.raises(SystemExit):
            await p.versions.publish(A, bundles(40.0))
        monkeypatch.undo()
        assert len(p.storage.versions(str(A))) == 2  # the upload is complete...

    async with Process(store_url, storage_url, tmp_path / "cache-2") as restarted:  # ...but nobody serves it
        assert (await restarted.store.current_model(A)).version == old.version
        assert await served_ppl(restarted.versions, A) == 50.0
        newest = await restarted.versions.publish(A, bundles(30.0))
        assert restarted.storage.versions(str(A)) == [old.version, newest.version]  # the orphan was cleaned up


async def test_another_process_learns_of_a_new_version_and_fetches_it(store_url, storage_url, tmp_path, bundles):
    async with (
        Process(store_url, storage_url, tmp_path / "cache-1") as trainer,
        Process(store_url, storage_url, tmp_path / "cache-2") as server,
    ):
        await trainer.versions.publish(A, bundles(50.0))
        assert await served_ppl(server.versions, A) == 50.0
        told = []

        async def listener(guild_id, version):
            told.append((guild_id, version))

        server.versions.on_switch(listener)
        await server.versions.start()  # every switch from now on is learned: no wait for the watcher to start
        new = await trainer.versions.publish(A, bundles(40.0))
        for _ in range(200):
            if told:
                break
            await asyncio.sleep(0.05)
        assert told == [(A, new.version)]
        assert server.versions.known(A).version == new.version  # no query needed to serve it
        assert await served_ppl(server.versions, A) == 40.0
        if "://" in storage_url:  # fetched into the serving process's own cache before it was served
            assert (tmp_path / "cache-2" / str(A) / new.version / "manifest.json").is_file()


@pytest.mark.parametrize("storage_url", ["memory"], indirect=True)  # the service does not care where versions live
async def test_forgetting_drops_every_version_and_serves_the_default(process, bundles, tmp_path, tiny_model_path):
    await process.versions.publish(A, bundles(50.0))
    await process.versions.publish(A, bundles(40.0))
    service = ModelService(tmp_path / "guilds", tiny_model_path, versions=process.versions)
    try:
        assert await service.bundle_for(A) != tiny_model_path
        shutil.copytree(tiny_model_path, service.bundle_path(A))  # a bundle from before versions: not served now
        await process.versions.forget(A)
        assert await service.bundle_for(A) == tiny_model_path
        assert await process.store.model_versions(A) == [] and process.storage.versions(str(A)) == []
        with pytest.raises(NoEarlierVersion):
            await process.versions.rollback(A)
    finally:
        service.close()


@pytest.mark.parametrize("storage_url", ["memory"], indirect=True)
async def test_the_model_service_publishes_a_trained_bundle_and_serves_it(process, tmp_path, tiny_model_path, bundles):
    service = ModelService(tmp_path / "guilds", tiny_model_path, versions=process.versions)
    try:
        assert await service.bundle_for(A) == tiny_model_path and not service.has_own_model(A)
        shutil.copytree(bundles(45.0), service.bundle_path(A))  # where a training leaves its bundle
        model = await service.reload(A)
        assert model.card.val_perplexity == 45.0 and service.has_own_model(A)
        assert not service.bundle_path(A).exists()  # published: the staged copy is gone
        assert (await process.store.current_model(A)).version in str(model.path)
        assert await service.model_for(B) is not model
    finally:
        service.close()


async def test_versions_that_learned_forgotten_text_are_never_rolled_back_to(process, bundles):
    from bot.storage import CorpusEntry

    await process.store.record([CorpusEntry(A, 5, "only ann wrote zyzzyva", 1, 70), CorpusEntry(A, 6, "bob", 2, 70)])
    await process.versions.publish(A, bundles(50.0))
    await process.versions.publish(A, bundles(40.0))  # both learned ann's words
    assert await process.store.text_removed_at(A) is None
    assert await process.store.forget_author(A, 5) == (1, 0)  # /forget-me
    assert await process.store.text_removed_at(A) is not None and await process.store.text_removed_at(B) is None
    with pytest.raises(NoEarlierVersion, match="learned from text that was removed since"):
        await process.versions.rollback(A)
    retrained = await process.versions.publish(A, bundles(45.0))  # trained without them
    assert [v.version for v in await process.store.model_versions(A)] == [retrained.version]  # the others dropped
    assert process.storage.versions(str(A)) == [retrained.version]
    with pytest.raises(NoEarlierVersion):
        await process.versions.rollback(A)


@pytest.mark.parametrize("storage_url", ["memory"], indirect=True)
async def test_a_version_that_read_the_corpus_before_a_forget_never_answers_even_published_after_it(
    process, bundles, tmp_path, tiny_model_path
):
    from bot.storage import CorpusEntry
    from bot.storage.base import utcnow

    await process.store.record([CorpusEntry(A, 5, "only ann wrote zyzzyva", 1, 70), CorpusEntry(A, 6, "bob", 2, 70)])
    read_before = utcnow()  # a training reads the corpus, then ann forgets herself while it trains
    await process.store.forget_author(A, 5)
    await process.versions.publish(A, bundles(50.0), corpus_read_at=read_before)
    service = ModelService(tmp_path / "guilds", tiny_model_path, versions=process.versions)
    try:
        assert not await service.trained_may_answer(A) and await service.bundle_for(A) == tiny_model_path
        retrained = await process.versions.publish(A, bundles(45.0), corpus_read_at=utcnow())  # read after it
        assert await service.trained_may_answer(A)
        assert retrained.version in str(await service.bundle_for(A))
    finally:
        service.close()


@pytest.mark.parametrize("storage_url", ["memory"], indirect=True)
async def test_an_old_forget_marker_file_moves_into_the_store_and_keeps_the_trained_model_away(
    process, bundles, tmp_path, tiny_model_path
):
    from bot.forgetting import migrate_forget_markers
    from bot.storage.base import utcnow

    guilds = tmp_path / "guilds"
    await process.versions.publish(A, bundles(50.0))  # trained before the forget that the marker file recorded
    marker = guilds / str(A) / "forgotten.json"
    marker.parent.mkdir(parents=True)
    marker.write_text(json.dumps({"at": utcnow().isoformat()}))
    (guilds / "not-a-server").mkdir()
    assert await process.store.text_removed_at(A) is None  # from before the store's record was kept with it

    assert await migrate_forget_markers(guilds, process.store) == [A]
    assert not marker.exists() and await process.store.text_removed_at(A) is not None
    assert await process.store.text_removed_at(B) is None
    assert await migrate_forget_markers(guilds, process.store) == []  # the next start finds nothing to move
    service = ModelService(guilds, tiny_model_path, versions=process.versions)  # a restart
    try:
        assert await service.bundle_for(A) == tiny_model_path  # still not the model that saw the text
        await process.versions.publish(A, bundles(45.0), corpus_read_at=utcnow())
        assert await service.trained_may_answer(A)
    finally:
        service.close()
