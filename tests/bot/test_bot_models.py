"""The model service: per-server bundles or the default, a bounded cache, batched decoding, swaps after training."""

from __future__ import annotations

import asyncio
import shutil
import time
from dataclasses import replace

import pytest

from bot.batching import Turns
from bot.models import ModelService, NoModel
from core import GenerationConfig, SeedError

CONFIG = GenerationConfig(max_new_tokens=4, do_sample=True, top_k=20)


@pytest.fixture
def service(tmp_path, tiny_model_path):
    service = ModelService(tmp_path / "guilds", tiny_model_path, cache_size=1)
    yield service
    service.close()


def give_own_model(service, guild_id, bundle):
    shutil.copytree(bundle, service.bundle_path(guild_id))


async def test_servers_without_a_model_share_the_default_and_never_another_servers(service, tiny_model_path):
    give_own_model(service, 1, tiny_model_path)
    own, default = await service.model_for(1), await service.model_for(2)
    assert own.path == service.bundle_path(1) and default.path == tiny_model_path
    assert own is not default


async def test_the_cache_keeps_only_the_most_recent_models(service, tiny_model_path):
    give_own_model(service, 1, tiny_model_path)
    first = await service.model_for(1)
    assert await service.model_for(1) is first  # cached
    await service.model_for(2)  # the default pushes server 1's model out (cache_size=1)
    assert await service.model_for(1) is not first


async def test_concurrent_requests_are_decoded_together_and_a_bad_seed_fails_alone(service, monkeypatch):
    batches = []
    model = await service.model_for(1)
    real = model.generate_batch
    monkeypatch.setattr(model, "generate_batch", lambda seeds, c: batches.append(len(seeds)) or real(seeds, c))
    seeds = ["The night", "And the", "zzqx qqj", "The"] * 5
    results = await asyncio.gather(*(service.generate(1, s, CONFIG) for s in seeds), return_exceptions=True)
    assert sum(batches) == len(seeds) and len(batches) < len(seeds) / 2  # batched, not one by one
    for seed, result in zip(seeds, results, strict=True):
        if seed == "zzqx qqj":
            assert isinstance(result, SeedError)
        else:
            assert isinstance(result, list) and len(result) == 1 and result[0]


async def test_batches_over_one_bundle_take_turns_and_another_bundles_run_alongside(tmp_path, tiny_model_path):
    service = ModelService(tmp_path / "guilds", tiny_model_path, cache_size=4)
    give_own_model(service, 1, tiny_model_path)
    gate, started, real_run = asyncio.Event(), [], service.run

    async def run(fn, *args):  # the first batch decodes until the gate opens
        if getattr(fn, "__name__", "") == "generate_batch":
            started.append((fn.__self__.path, args[1].max_new_tokens))
            if len(started) == 1:
                await gate.wait()
        return await real_run(fn, *args)

    service.run = run
    try:
        first = asyncio.ensure_future(service.generate(2, "The night", CONFIG))  # server 2: the default bundle
        while not started:
            await asyncio.sleep(0.01)
        other_options = asyncio.ensure_future(service.generate(2, "The night", replace(CONFIG, max_new_tokens=3)))
        own = await asyncio.wait_for(service.generate(1, "The night", CONFIG), 30)  # its own bundle: alongside
        assert own[0] and started[1] == (service.bundle_path(1), 4)
        await asyncio.sleep(0.2)
        assert len(started) == 2 and not other_options.done()  # the same bundle: its turn comes after the first
        gate.set()
        assert (await first)[0] and (await other_options)[0]
        assert started[2] == (tiny_model_path, 3)
    finally:
        service.close()


async def test_the_next_turn_over_a_bundle_goes_to_the_batch_holding_the_request_that_waited_longest():
    turns, order = Turns(), []
    await turns.take([("decoding now", None, 0)])

    async def batch(waiting, name):
        await turns.take(waiting)
        order.append(name)
        turns.give()

    first_in_line = asyncio.ensure_future(batch([("asked later", None, 5)], "later"))
    second_in_line = asyncio.ensure_future(batch([("asked earlier", None, 1)], "earlier"))
    await asyncio.sleep(0.01)
    turns.give()
    await asyncio.gather(first_in_line, second_in_line)
    assert order == ["earlier", "later"] and not turns.busy


async def test_reload_swaps_in_a_retrained_bundle(service, tiny_model_path):
    give_own_model(service, 1, tiny_model_path)
    before = await service.model_for(1)
    after = await service.reload(1)
    assert after is not before and await service.model_for(1) is after


async def test_a_missing_default_model_is_a_clear_error(tmp_path):
    service = ModelService(tmp_path / "guilds", tmp_path / "nowhere")
    with pytest.raises(NoModel, match="this server has no model yet and the default model is missing"):
        await service.model_for(1)
    service.close()


def test_the_newest_instant_bundle_is_listed_again_only_when_its_folder_changed(tmp_path, monkeypatch):
    """Asked for every request and message, the server's instant bundle costs a stat while its folder is unchanged,
    and one renamed into it whole by another process, or removed, is seen at once."""
    from bot import instant
    from bot.server_corpus import ServerCorpus

    monkeypatch.setattr(instant, "RACY_NS", 0)  # each change below comes a few clock ticks after the last
    ours, theirs = (instant.InstantModels(tmp_path, ServerCorpus(None)) for _ in range(2))
    folder = tmp_path / "5"
    assert ours.current(5) is None  # no folder yet

    def built(ns: int):
        time.sleep(0.05)  # file times move in clock ticks: what RACY_NS guards against, here waited out
        staged = tmp_path / f".staged-{ns}"
        staged.mkdir()
        (staged / "config.json").write_text("{}")
        folder.mkdir(exist_ok=True)
        staged.rename(folder / f"{instant.PREFIX}{ns}")  # as bundles are saved: whole, by one rename
        return folder / f"{instant.PREFIX}{ns}"

    first = built(100)
    assert ours.current(5) == first
    listed = []
    monkeypatch.setattr(type(folder), "iterdir", lambda self: listed.append(self) or iter(()))
    assert ours.current(5) == first and listed == []  # unchanged: not listed again
    monkeypatch.undo()
    monkeypatch.setattr(instant, "RACY_NS", 0)
    second = built(200)  # by the other process
    assert ours.current(5) == second and theirs.current(5) == second
    time.sleep(0.05)
    shutil.rmtree(second)
    assert ours.current(5) == first
