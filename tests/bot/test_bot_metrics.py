"""Metrics, health checks and logs: every metric moves when what it counts happens; /readyz says what is missing."""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3

import aiohttp
import pytest
from continuo_world import CHAT, answer
from discord_double import run_client

from bot import metrics
from bot.bot import ContinuoBot
from bot.logs import JsonFormatter

TRAINING_TIMEOUT = 180


def value(name: str, **labels: str) -> float:
    return metrics.sample(name, **labels)


async def get(port: int, path: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as response:
        return response.status, await response.text()


async def test_readyz_is_503_until_the_gateway_is_ready_and_while_the_database_is_gone(world, bot_settings):
    bot = ContinuoBot(bot_settings.model_copy(update={"metrics_port": 0}), guild_ready_timeout=0.1)
    assert bot.health is not None
    await bot.health.start()  # before anything connects, as setup_hook does first
    try:
        port = bot.health.port
        assert await get(port, "/healthz") == (200, "ok\n")
        status, text = await get(port, "/readyz")
        assert status == 503 and "discord: not connected yet" in text
        assert value("continuo_ready") == 0
        async with run_client(bot, world.double):
            status, text = await get(port, "/readyz")
            assert (status, text) == (200, "ready\n")
            assert value("continuo_ready") == 1

            database = bot_settings.database_path if bot_settings.database_url is None else None
            if database is None:
                pytest.skip("the database going away is checked with SQLite's file here")
            database.rename(database.with_suffix(".away"))
            status, text = await get(port, "/readyz")
            assert status == 503 and "database:" in text and "missing" in text, text
            database.with_suffix(".away").rename(database)
            assert (await get(port, "/readyz"))[0] == 200  # and back

            status, body = await get(port, "/metrics")
            assert status == 200 and "continuo_commands_total" in body and "process_resident_memory_bytes" in body
    finally:
        await bot.health.stop()


async def test_a_continue_moves_the_command_latency_batch_and_cache_metrics(world, make_bot):
    await make_bot(model_cache_size=1)
    ok = value("continuo_commands_total", command="continue", outcome="ok")
    mistakes = value("continuo_commands_total", command="continue", outcome="user_error")
    answered = value("continuo_answer_latency_seconds_count", command="continue")
    batches, rows = value("continuo_decode_batch_rows_count"), value("continuo_decode_batch_rows_sum")
    hits, misses = value("continuo_model_cache_hits_total"), value("continuo_model_cache_misses_total")
    evictions = value("continuo_model_cache_evictions_total")

    reply = await answer(await world.double.slash_command(world.general, world.bob, "continue", {"seed": "The night"}))
    assert reply.content.startswith("**The night**")
    refused = await answer(await world.double.slash_command(world.general, world.bob, "continue", {"seed": "   "}))
    assert refused.ephemeral
    await world.double.wait_for(
        lambda: value("continuo_answer_latency_seconds_count", command="continue") == answered + 2, 5, "the counts"
    )
    assert value("continuo_commands_total", command="continue", outcome="ok") == ok + 1
    assert value("continuo_commands_total", command="continue", outcome="user_error") == mistakes + 1
    assert value("continuo_answer_latency_seconds_count", command="continue") == answered + 2
    assert value("continuo_decode_batch_rows_count") == batches + 1
    assert value("continuo_decode_batch_rows_sum") == rows + 1
    assert value("continuo_model_cache_hits_total") > hits  # the default model, loaded at start-up
    assert value("continuo_model_cache_bytes") > 0 and value("continuo_model_cache_models") == 1

    # Alpha's text makes its instant model: a build, a miss (it is loaded), an eviction (the cache holds one)
    built = value("continuo_instant_model_builds_total", outcome="built")
    writes = value("continuo_store_write_seconds_count", operation="record")
    added = await answer(
        await world.double.slash_command(
            world.general, world.ann, "corpus add", {"file": ("chat.txt", CHAT.read_bytes())}
        ),
        60,
    )
    assert "its own voice" in added.content, added.content
    assert value("continuo_instant_model_builds_total", outcome="built") == built + 1
    assert value("continuo_instant_model_build_seconds_count") >= 1
    assert value("continuo_store_write_seconds_count", operation="record") == writes + 1
    assert value("continuo_model_cache_misses_total") > misses
    assert value("continuo_model_cache_evictions_total") > evictions
    await world.double.wait_for(  # counted once the handler returns, just after its answer was sent
        lambda: value("continuo_commands_total", command="corpus add", outcome="ok") >= 1, 5, "the count"
    )


async def test_the_gateway_state_and_the_event_loop_lag_are_watched(world, make_bot):
    lags = value("continuo_event_loop_lag_seconds_count")
    await make_bot()

    def watched():  # heartbeats every 0.2 s (the world's double); the watcher looks every 0.5 s
        return (
            value("continuo_gateway_shard_connected", shard="0") == 1
            and 0 <= value("continuo_gateway_latency_seconds", shard="0") < 1
            and value("continuo_event_loop_lag_seconds_count") > lags
        )

    await world.double.wait_for(watched, 15, "the gateway's state and the event loop's lag in the metrics")


@pytest.mark.slow
async def test_trainings_move_the_job_metrics(world, make_bot):
    await make_bot(max_training_jobs=1)  # Beta's job waits while Alpha's runs
    succeeded = value("continuo_training_jobs_finished_total", outcome="succeeded")
    timed = value("continuo_training_job_duration_seconds_count", outcome="succeeded")
    records = []
    for guild in (world.alpha, world.beta):
        channel = guild.channel("general")
        upload = {"file": ("chat.txt", CHAT.read_bytes())}
        await answer(await world.double.slash_command(channel, world.ann, "corpus add", upload), 60)
        records.append(await world.double.slash_command(channel, world.ann, "train", {"epochs": 1}))
    await world.double.wait_for(lambda: "queued" in (records[1].content or ""), 60, "Beta's place in line")
    assert value("continuo_training_jobs_running") == 1 and value("continuo_training_jobs_queued") == 1
    await asyncio.sleep(0.2)
    assert value("continuo_training_queue_oldest_age_seconds") > 0
    for record in records:
        await world.double.wait_for(
            lambda record=record: "new model is in use" in (record.content or "") or "failed" in (record.content or ""),
            TRAINING_TIMEOUT,
            "the trainings to finish",
        )
        assert "new model is in use" in record.content
    assert value("continuo_training_jobs_finished_total", outcome="succeeded") == succeeded + 2
    assert value("continuo_training_job_duration_seconds_count", outcome="succeeded") == timed + 2
    assert value("continuo_training_jobs_running") == 0 and value("continuo_training_jobs_queued") == 0
    assert value("continuo_training_queue_oldest_age_seconds") == 0


async def test_a_locked_database_counts_store_write_retries(tmp_path):
    from bot.storage import SQLiteStore

    store = SQLiteStore(tmp_path / "bot.sqlite3", busy_timeout_s=0.05)
    await store.open()
    other = sqlite3.connect(tmp_path / "bot.sqlite3")
    try:
        retries = value("continuo_store_write_retries_total", operation="learn_channel")
        other.execute("BEGIN IMMEDIATE")  # another process holds the write lock

        async def release():
            await asyncio.sleep(0.4)
            other.rollback()

        await asyncio.gather(store.learn_channel(1, 2), release())
        assert value("continuo_store_write_retries_total", operation="learn_channel") > retries
        assert await store.learned_channels(1) == [2]
    finally:
        other.close()
        await store.close()


async def test_metric_labels_never_carry_server_or_user_ids(world, make_bot):
    await make_bot()
    await answer(await world.double.slash_command(world.general, world.bob, "continue", {"seed": "Hello"}))
    ids = {str(world.alpha.id), str(world.beta.id), str(world.bob.id), str(world.ann.id)}
    for family in metrics.REGISTRY.collect():
        for sample in family.samples:
            assert not ids & set(sample.labels.values()), sample
            assert set(sample.labels) <= {
                "command",
                "outcome",
                "operation",
                "shard",
                "le",
                "implementation",
                "major",
                "minor",
                "patchlevel",
                "version",
            }, sample


def test_json_logs_are_one_object_per_line_with_the_ids_in_context():
    from bot import logs

    record = logging.LogRecord("bot.test", logging.INFO, __file__, 1, "answered %d rows", (3,), None)
    token = logs.guild_id.set(1234567890123456789), logs.interaction_id.set(42)
    try:
        line = JsonFormatter().format(record)
    finally:
        logs.guild_id.reset(token[0])
        logs.interaction_id.reset(token[1])
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["message"] == "answered 3 rows" and entry["level"] == "INFO" and entry["logger"] == "bot.test"
    assert entry["guild_id"] == "1234567890123456789" and entry["interaction_id"] == "42"


async def test_no_message_text_reaches_the_logs_above_debug(world, make_bot, caplog):
    caplog.set_level(logging.INFO)
    bot = await make_bot()
    marker = "quokkamarmalade"  # in a recorded message, a seed, a mention and a refused option
    learned = await world.double.slash_command(world.general, world.ann, "corpus learn", {"channel": world.general})
    await answer(learned)
    await world.double.send_message(world.general, world.bob, f"a message about {marker} and more")
    await world.double.wait_for(lambda: bot.store is not None, 5)
    seed = f"The night {marker}"
    reply = await answer(await world.double.slash_command(world.general, world.bob, "continue", {"seed": seed}))
    assert reply.content.startswith(f"**{seed}**")
    await world.double.send_message(world.general, world.bob, f"<@{bot.user.id}> {marker} please")
    await world.double.wait_for(
        lambda: any(m.reference is not None for m in world.general.history()), 20, "the reply to the mention"
    )
    assert marker in " ".join(await bot.store.corpus_texts(world.alpha.id))  # it was handled, and recorded
    assert marker not in caplog.text


async def test_readyz_is_503_while_a_postgresql_server_is_down_and_200_once_it_is_back(postgres_server):
    """A server of its own, stopped as by a crash while the store is open, then started again."""
    import postgres_server as pg

    from bot.health import HealthServer, store_check
    from bot.storage.postgres import PostgresStore

    url = pg.start()
    store = PostgresStore(url, connect_timeout_s=1)
    health = HealthServer("127.0.0.1", 0, {"database": store_check(store)})
    try:
        await store.open()
        await health.start()
        assert await get(health.port, "/readyz") == (200, "ready\n")
        pg.pause(url)
        status, text = await get(health.port, "/readyz")
        assert status == 503 and "database: the database postgresql://postgres@/postgres" in text, text
        pg.resume(url)
        deadline = asyncio.get_running_loop().time() + 15
        while (found := await get(health.port, "/readyz"))[0] != 200:  # the pool connects again
            assert asyncio.get_running_loop().time() < deadline, found
            await asyncio.sleep(0.2)
    finally:
        await health.stop()
        await store.close()
        pg.stop(url)
