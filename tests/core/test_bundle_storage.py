"""Versioned model storage on a local folder and on fsspec filesystems: immutable versions, a local cache,
and an interrupted upload that no reader ever takes."""

from __future__ import annotations

import uuid

import pytest

from core import BundleError, ContinuoError, FsspecBundleStorage, LocalBundleStorage, load, open_bundle_storage

fsspec = pytest.importorskip("fsspec", reason='model storage URLs need fsspec: pip install -e ".[test]"')


@pytest.fixture(params=["folder", "memory", "fsspec-folder"])
def storage(request, tmp_path):
    """The same bundle storage tests on a plain folder, fsspec's in-memory filesystem and a folder through fsspec."""
    cache = tmp_path / "cache"
    if request.param == "folder":
        return open_bundle_storage(str(tmp_path / "store"), cache)
    if request.param == "memory":
        return open_bundle_storage(f"memory://continuo-tests/{uuid.uuid4().hex}", cache)
    return FsspecBundleStorage(f"local://{tmp_path / 'store'}", cache)


def test_urls_choose_the_storage(tmp_path):
    assert isinstance(open_bundle_storage(tmp_path / "a", tmp_path / "c"), LocalBundleStorage)
    assert isinstance(open_bundle_storage(f"file://{tmp_path}/a", tmp_path / "c"), LocalBundleStorage)
    assert isinstance(open_bundle_storage("memory://x", tmp_path / "c"), FsspecBundleStorage)
    with pytest.raises(ContinuoError, match="model storage URL nosuchfs://x"):
        open_bundle_storage("nosuchfs://x", tmp_path / "c")


def test_publish_fetch_and_delete_versions(storage, tiny_model_path):
    assert storage.versions("1") == []
    first = storage.publish(tiny_model_path, "1")
    second = storage.publish(tiny_model_path, "1")
    assert first < second and storage.versions("1") == [first, second]
    assert storage.versions("2") == []  # keys never see each other's versions
    local = storage.fetch("1", second)
    assert storage.fetch("1", second) == local  # the second fetch is the cached copy
    model = load(local)
    assert model.card.tokens == load(tiny_model_path).card.tokens
    storage.delete("1", first)
    assert storage.versions("1") == [second]
    with pytest.raises(BundleError, match=f"model version {first} is missing"):
        storage.fetch("1", first)


def test_an_interrupted_upload_is_never_a_version(storage, tiny_model_path, monkeypatch):
    good = storage.publish(tiny_model_path, "1")
    target = storage.fs if isinstance(storage, FsspecBundleStorage) else None
    calls = []

    def dies_half_way(*args, **kwargs):
        calls.append(args)
        if len(calls) == 2:
            raise OSError("connection lost")
        return real(*args, **kwargs)

    if target is not None:
        real = target.put_file
        monkeypatch.setattr(target, "put_file", dies_half_way)
    else:  # a folder gets its version by one rename once all is copied: die just before it
        import core.bundle_storage as module

        real = module.os.rename
        calls.append("copied")
        monkeypatch.setattr(module.os, "rename", dies_half_way)
    with pytest.raises(OSError):
        storage.publish(tiny_model_path, "1")
    monkeypatch.undo()
    assert storage.versions("1") == [good]  # the half-uploaded files are not a version anyone can take


def test_what_a_killed_upload_leaves_is_never_a_version(storage, tiny_model_path):
    good = storage.publish(tiny_model_path, "1")
    partial = "29990101T000000.000000Z-dead00"  # newer than any real one, files but no manifest
    if isinstance(storage, FsspecBundleStorage):
        storage.fs.makedirs(f"{storage.root}/1/{partial}", exist_ok=True)
        storage.fs.put_file(str(tiny_model_path / "vocab.json"), f"{storage.root}/1/{partial}/vocab.json")
    else:
        (storage.root / "1" / partial).mkdir()
        (storage.root / "1" / partial / "vocab.json").write_text("{}")
    assert storage.versions("1") == [good]
    with pytest.raises(BundleError, match="is missing"):
        storage.fetch("1", partial)


def test_the_cache_keeps_only_what_it_is_told(tmp_path, tiny_model_path):
    storage = open_bundle_storage(f"memory://continuo-tests/{uuid.uuid4().hex}", tmp_path / "cache")
    a, b = storage.publish(tiny_model_path, "1"), storage.publish(tiny_model_path, "1")
    storage.fetch("1", a), storage.fetch("1", b)
    storage.evict("1", {b})
    assert sorted(p.name for p in (tmp_path / "cache" / "1").iterdir()) == [b]


def test_a_damaged_download_is_refused(tmp_path, tiny_model_path):
    storage = open_bundle_storage(f"memory://continuo-tests/{uuid.uuid4().hex}", tmp_path / "cache")
    version = storage.publish(tiny_model_path, "1")
    storage.fs.pipe_file(f"{storage.root}/1/{version}/vocab.json", b"[]")
    with pytest.raises(BundleError, match="vocab.json is damaged"):
        storage.fetch("1", version)
    assert not (tmp_path / "cache" / "1" / version).exists()
