"""End to end through the Discord double: /train in a separate process with progress edits, the swap, failures,
the queue, restarts, and an event loop that keeps answering while a model trains."""

from __future__ import annotations

import asyncio
import time

import pytest
from continuo_world import CHAT, answer
from discord_double import run_client

from bot.storage import open_store
from core import TrainConfig

TRAINING_TIMEOUT = 180  # seconds; a tiny model trains in a few, but CI machines are shared


async def upload_chat(world, guild) -> None:
    record = await world.double.slash_command(
        guild.channel("general"), world.ann, "corpus add", {"file": ("chat.txt", CHAT.read_bytes())}
    )
    assert "enough to /train" in (await answer(record)).content


class LoopLag:
    """Measures how late the event loop wakes a sleeper: the lag every other coroutine suffers."""

    def __init__(self, period: float = 0.02):
        self.period, self.worst, self._task = period, 0.0, None

    async def _tick(self):
        while True:
            start = time.monotonic()
            await asyncio.sleep(self.period)
            self.worst = max(self.worst, time.monotonic() - start - self.period)

    def __enter__(self):
        self._task = asyncio.create_task(self._tick())
        return self

    def __exit__(self, *exc):
        self._task.cancel()


async def test_train_shows_progress_swaps_the_model_and_the_loop_stays_responsive(world, make_bot):
    bot = await make_bot()
    double, alpha, general = world.double, world.alpha, world.general
    await upload_chat(world, alpha)
    default = await bot.models.model_for(world.beta.id)  # the bundled model (Alpha answers from its instant one)

    since = time.monotonic()
    with LoopLag() as lag:
        record = await double.slash_command(general, world.ann, "train", {"epochs": 1})
        await double.wait_for(lambda: record.edits and "Training **Alpha**" in record.content, 60, "training to start")
        during = await answer(await double.slash_command(general, world.bob, "continue", {"seed": "good morning"}))
        await double.wait_for(
            lambda: "new model is in use" in (record.content or "") or "failed" in (record.content or ""),
            TRAINING_TIMEOUT,
            "the training to finish",
        )
    assert "new model is in use" in record.content, record.content
    assert during.content.startswith("**good morning**")  # answered while training ran (by its instant model)
    bars = [e["content"] for e in record.edits if "█" in e.get("content", "") or "░" in e.get("content", "")]
    assert bars and all("epoch 1/1" in bar for bar in bars)
    assert "validation perplexity" in record.content and "Sample: **" in record.content
    assert double.max_heartbeat_gap(since) < 2.0  # heartbeats every 0.2 s kept flowing (2 shared cores)
    assert lag.worst < 1.0, f"the event loop stalled for {lag.worst:.2f} s"

    own = await bot.models.model_for(alpha.id)
    assert own is not default and own.path == await bot.models.bundle_for(alpha.id)  # its published version
    assert own.card.corpus == "this server's text" and not own.xla  # XLA's code would outlive each reload
    assert (await bot.models.model_for(world.beta.id)) is default  # Beta never sees Alpha's model
    job = await bot.store.last_job(alpha.id)
    assert job.status == "succeeded" and job.val_perplexity == own.card.val_perplexity

    info = await answer(await double.slash_command(general, world.bob, "model info"))
    assert "its own, trained on its corpus" in info.content and f"{own.card.val_perplexity:.1f}" in info.content
    beta_info = await answer(await double.slash_command(world.beta.channel("general"), world.bob, "model info"))
    assert "bundled default model" in beta_info.content


async def test_a_corpus_too_small_is_refused_with_how_much_more_is_needed(world, make_bot):
    bot = await make_bot()
    double = world.double
    await answer(
        await double.slash_command(world.general, world.ann, "corpus add", {"file": ("a.txt", b"a few words")})
    )
    refused = await answer(await double.slash_command(world.general, world.ann, "train"))
    assert refused.ephemeral and "at least 2,000 are needed" in refused.content and "/corpus add" in refused.content
    assert await bot.store.last_job(world.alpha.id) is None


async def test_a_failed_training_is_reported_and_the_old_model_stays(world, make_bot, bot_settings):
    broken = TrainConfig(**{**bot_settings.train_options.__dict__, "max_vocab": 2})  # refused inside the worker
    bot = await make_bot(train_options=broken)
    double = world.double
    await upload_chat(world, world.alpha)
    record = await double.slash_command(world.general, world.ann, "train")
    await double.wait_for(lambda: "failed" in (record.content or ""), TRAINING_TIMEOUT, "the failure report")
    assert "max_vocab must be at least 3" in record.content and "previous model stays in use" in record.content
    assert not bot.models.has_own_model(world.alpha.id)
    assert (await bot.store.last_job(world.alpha.id)).status == "failed"


@pytest.mark.slow
async def test_one_job_per_server_and_others_queue_with_their_place(world, make_bot):
    bot = await make_bot(max_training_jobs=1)
    double, alpha, beta = world.double, world.alpha, world.beta
    await upload_chat(world, alpha)
    await upload_chat(world, beta)
    first = await double.slash_command(alpha.channel("general"), world.ann, "train")
    await first.wait_response()
    again = await answer(await double.slash_command(alpha.channel("general"), world.ann, "train"))
    assert again.ephemeral and "is training now" in again.content
    second = await double.slash_command(beta.channel("general"), world.ann, "train")
    assert "queued: place 1" in (await answer(second)).content
    for record in (first, second):
        await double.wait_for(
            lambda record=record: "new model is in use" in (record.content or ""), TRAINING_TIMEOUT, "trainings"
        )
    assert bot.models.has_own_model(alpha.id) and bot.models.has_own_model(beta.id)
    alpha_model, beta_model = await bot.models.model_for(alpha.id), await bot.models.model_for(beta.id)
    assert alpha_model is not beta_model and alpha_model.path != beta_model.path


@pytest.mark.slow
async def test_in_local_mode_jobs_start_and_report_without_waiting_for_a_poll(world, make_bot):
    # the coordinator runs in the bot process: woken by /train and by each job's end, it wakes the followers
    bot = await make_bot(max_training_jobs=1, coordinator_poll_s=600, progress_interval_s=600)
    double, alpha, beta = world.double, world.alpha, world.beta
    await upload_chat(world, alpha)
    await upload_chat(world, beta)
    first = await double.slash_command(alpha.channel("general"), world.ann, "train", {"epochs": 1})
    second = await double.slash_command(beta.channel("general"), world.ann, "train", {"epochs": 1})
    assert "queued: place 1" in (await answer(second)).content
    for record in (first, second):  # a poll would come long after the timeout
        await double.wait_for(
            lambda record=record: "new model is in use" in (record.content or "") or "failed" in (record.content or ""),
            TRAINING_TIMEOUT,
            "trainings",
        )
        assert "new model is in use" in record.content, record.content
        assert any("epoch 1/1" in e.get("content", "") for e in record.edits)  # its first report, shown at once
    assert [j.status for j in (await bot.store.last_job(alpha.id), await bot.store.last_job(beta.id))] == [
        "succeeded",
        "succeeded",
    ]


async def test_a_restart_reports_an_interrupted_training_and_keeps_the_corpus(world, make_bot, bot_settings):
    double, alpha, general = world.double, world.alpha, world.general
    store = open_store(bot_settings.database)  # what a bot killed mid-training left behind
    await store.open()
    job = await store.add_job(alpha.id, world.ann.id, general.id, epochs=3, corpus_tokens=2500)
    await store.update_job(job.id, status="running")
    await store.close()

    bot = await make_bot()
    notice = await double.wait_for(
        lambda: next((m for m in double.sent_messages if "interrupted" in m.content), None),
        10,
        "the interruption notice",
    )
    assert notice.channel is general and "Run /train to start again" in notice.content
    info = await answer(await double.slash_command(general, world.bob, "model info"))
    assert "interrupted" in info.content
    assert (await bot.store.last_job(alpha.id)).status == "interrupted"


async def test_shutting_down_mid_training_keeps_the_old_model_and_the_text(world, make_bot, bot_settings):
    from bot.bot import ContinuoBot

    double, alpha, general = world.double, world.alpha, world.general
    bot = ContinuoBot(bot_settings, guild_ready_timeout=0.1)
    async with run_client(bot, double):
        await upload_chat(world, alpha)
        slow = await double.slash_command(general, world.ann, "train", {"epochs": 30})
        await double.wait_for(
            lambda: any("█" in e.get("content", "") or "░" in e.get("content", "") for e in slow.edits),
            TRAINING_TIMEOUT,
            "training progress",
        )
    assert "interrupted by a shutdown" in slow.content
    assert not bot.models.bundle_path(alpha.id).exists()

    bot = await make_bot()  # the restarted bot
    assert (await bot.store.last_job(alpha.id)).status == "interrupted"
    assert len(await bot.store.corpus_texts(alpha.id)) == 1


@pytest.mark.slow
async def test_the_model_retrains_itself_once_the_corpus_grew_enough(world, make_bot):
    bot = await make_bot()
    double, alpha, general = world.double, world.alpha, world.general
    await upload_chat(world, alpha)
    first = await double.slash_command(general, world.ann, "train", {"epochs": 1})
    await double.wait_for(
        lambda: "new model is in use" in (first.content or ""), TRAINING_TIMEOUT, "the first training"
    )
    trained_on = (await bot.store.last_job(alpha.id)).corpus_tokens

    await answer(await double.slash_command(general, world.ann, "settings", {"retrain_growth_percent": 5}))
    ideas = alpha.channel("ideas")
    await answer(await double.slash_command(general, world.ann, "corpus learn", {"channel": ideas}))
    await double.send_message(ideas, world.bob, "a few more words")  # not enough growth yet
    await asyncio.sleep(0.5)
    assert (await bot.store.last_job(alpha.id)).corpus_tokens == trained_on
    line = "lol that was the best match we ever played , gg everyone\n"  # 13 tokens
    for _ in range(trained_on // 20 // (13 * 15) + 1):  # over 5% more tokens, in messages Discord would allow
        await double.send_message(ideas, world.bob, line * 15)
    retrained = await double.wait_for(
        lambda: next((m for m in double.sent_messages if m.channel is general and "automatic" in m.content), None),
        20,
        "the automatic retraining",
    )
    await double.wait_for(lambda: "new model is in use" in retrained.content, TRAINING_TIMEOUT, "the retraining")
    job = await bot.store.last_job(alpha.id)
    assert job.status == "succeeded" and job.requested_by == 0 and job.corpus_tokens > trained_on * 1.05
