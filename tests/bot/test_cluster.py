"""Cluster mode: bot processes queue /train in the store, the coordinator trains and publishes, the serving
process reports the result and answers with the new model; a restarted bot process follows its jobs again."""
from __future__ import annotations

import asyncio

import pytest

from bot.coordinator import Coordinator, publisher
from bot.storage import open_store
from bot.storage.versions import ModelVersions
from continuo_world import CHAT, answer, bot_settings, make_bot, world  # noqa: F401 - fixtures
from core import LocalProcessRunner, open_bundle_storage
from discord_double import run_client

TRAINING_TIMEOUT = 180  # seconds; a tiny model trains in a few, but CI machines are shared


@pytest.fixture
async def coordinator(bot_settings, tmp_path, continuo_home):
    """``start()``: a coordinator on the bot's database and model storage, in this event loop (local processes)."""
    running = []

    async def start() -> Coordinator:
        settings = bot_settings.model_copy(update={"data_dir": tmp_path / "coordinator", "coordinator_poll_s": 0.1,
                                                    "progress_interval_s": 0.2})
        shared = bot_settings.model_copy(update={"data_dir": continuo_home})  # where the bots' settings point
        store = open_store(shared.database)
        await store.open()
        versions = ModelVersions(store, open_bundle_storage(shared.model_storage, tmp_path / "coordinator-cache"))
        coordinator = Coordinator(store, LocalProcessRunner(), settings, publisher(versions))
        running.append((coordinator, asyncio.create_task(coordinator.run()), store))
        return coordinator

    yield start
    for coordinator, task, store in running:
        coordinator.stop()
        await task
        await store.close()


def cluster_bot(make_bot, **changes):
    return make_bot(job_runner="coordinator", model_poll_s=0.2, progress_interval_s=0.2, **changes)


async def upload_chat(world, guild) -> None:
    record = await world.double.slash_command(guild.channel("general"), world.ann, "corpus add",
                                              {"file": ("chat.txt", CHAT.read_bytes())})
    assert "enough to /train" in (await answer(record)).content


async def test_train_waits_in_the_store_for_the_coordinator_then_the_serving_process_answers_with_it(
        world, make_bot, coordinator):
    bot = await cluster_bot(make_bot)
    double, alpha, general = world.double, world.alpha, world.general
    await upload_chat(world, alpha)
    default = await bot.models.model_for(alpha.id)

    record = await double.slash_command(general, world.ann, "train", {"epochs": 1})
    await double.wait_for(lambda: "queued: place 1" in (record.content or ""), 30, "the place in line")
    assert [j.status for j in await bot.store.unfinished_jobs()] == ["queued"]  # nothing trains in the bot
    again = await answer(await double.slash_command(general, world.ann, "train", {"epochs": 1}))
    assert "already queued or training" in again.content

    await coordinator()
    await double.wait_for(lambda: "new model is in use" in (record.content or "") or "failed" in (record.content or ""),
                          TRAINING_TIMEOUT, "the training to finish")
    assert "new model is in use" in record.content and "Sample: **" in record.content, record.content
    assert any("epoch 1/1" in e.get("content", "") for e in record.edits)  # progress came from the store
    own = await bot.models.model_for(alpha.id)
    assert own is not default and own.card.corpus == "this server's text"
    assert await bot.models.model_for(world.beta.id) is default  # Beta never sees Alpha's model
    assert (await bot.store.last_job(alpha.id)).status == "succeeded"
    reply = await answer(await double.slash_command(general, world.bob, "continue", {"seed": "good morning"}))
    assert reply.content.startswith("**good morning**")


async def test_a_restarted_bot_process_follows_its_servers_jobs_and_reports_them(world, make_bot, bot_settings,
                                                                                  coordinator):
    from bot.bot import ContinuoBot

    double, alpha, general = world.double, world.alpha, world.general
    first = ContinuoBot(bot_settings.model_copy(update={"job_runner": "coordinator"}), guild_ready_timeout=0.1)
    async with run_client(first, double):
        await upload_chat(world, alpha)
        record = await double.slash_command(general, world.ann, "train", {"epochs": 1})
        await double.wait_for(lambda: "queued" in (record.content or ""), 30, "the place in line")
    # that process went away; its job stays queued in the store, not marked interrupted

    second = await cluster_bot(make_bot)
    assert [j.status for j in await second.store.unfinished_jobs()] == ["queued"]
    await coordinator()
    await double.wait_for(lambda: any("new model is in use" in m.content for m in general.history()),
                          TRAINING_TIMEOUT, "the result in the channel")
    assert (await second.models.model_for(alpha.id)).card.corpus == "this server's text"
