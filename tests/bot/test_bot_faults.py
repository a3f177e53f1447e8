"""Discord's faults through the double, met by the real bot: 429s, a lost gateway, an invalid session, a cold model."""

from __future__ import annotations

import asyncio

import pytest
from continuo_world import CHAT, answer
from discord_double import DiscordDouble, InteractionRecord

SEEDS = ["The night", "I think", "And then the", "When the moon", "She said", "My love"]


def messages_of(double: DiscordDouble, record: InteractionRecord) -> list:
    """Every message the bot created for an interaction (its answer, followups), duplicates included."""
    return [m for m in double.sent_messages if m.interaction is record]


async def continue_everywhere(world, n: int) -> list[InteractionRecord]:
    guilds = [world.alpha, world.beta]
    return [
        await world.double.slash_command(
            guilds[i % 2].channel("general"), world.bob, "continue", {"seed": SEEDS[i % len(SEEDS)], "words": 4}
        )
        for i in range(n)
    ]


async def answered_once(world, records: list[InteractionRecord], timeout: float = 60) -> None:
    for record in records:
        message = await answer(record, timeout)
        seed = record.payload["data"]["options"][0]["value"]
        assert message.content.startswith(f"**{seed}**"), message.content
        assert len(record.callbacks) == 1 and messages_of(world.double, record) == [message]


async def test_followups_answered_with_429_still_arrive_once(world, make_bot):
    double = world.double
    await make_bot(defer_after_s=0.0)  # every answer is a defer, then a followup on the webhook route
    double.rate_limit(3, retry_after=0.3, path=r"^/webhooks/")
    records = await continue_everywhere(world, 6)
    await answered_once(world, records)
    assert len(double.rate_limited) == 3 and all(r.startswith("POST /webhooks/") for r in double.rate_limited)


async def test_replies_under_a_global_429_arrive_once_each(world, make_bot):
    double = world.double
    await make_bot()
    double.rate_limit(1, retry_after=0.5, scope="global", path=r"^/channels/\d+/messages$")
    asked = [
        await double.send_message(world.general, world.bob, f"{double.bot_user.mention} {seed}") for seed in SEEDS[:3]
    ]
    replies = await double.wait_for(
        lambda: (
            len([m for m in double.sent_messages if m.reference]) >= 3
            and [m for m in double.sent_messages if m.reference]
        ),
        60,
        "three replies",
    )
    assert sorted(m.reference.id for m in replies) == sorted(m.id for m in asked)  # one each, none twice
    assert double.rate_limited[0].endswith("(global)")


@pytest.mark.slow
async def test_progress_edits_under_429_arrive_in_order_and_the_last_one_stays(world, make_bot):
    double = world.double
    await make_bot()
    upload = {"file": ("chat.txt", CHAT.read_bytes())}
    uploaded = await double.slash_command(world.general, world.ann, "corpus add", upload)
    assert "enough to /train" in (await answer(uploaded)).content
    double.rate_limit(2, retry_after=0.5, methods=("PATCH",), path=r"/messages/@original$")
    record = await double.slash_command(world.general, world.ann, "train", {"epochs": 1})
    await double.wait_for(
        lambda: "new model is in use" in (record.content or "") or "failed" in (record.content or ""),
        180,
        "the training to finish",
    )
    await asyncio.sleep(1.0)  # a late, retried progress edit would land now and hide the result
    contents = [edit["content"] for edit in record.edits]
    assert "new model is in use" in record.content and contents[-1] == record.content
    assert all("new model is in use" not in content for content in contents[:-1])
    assert len(double.rate_limited) == 2


async def test_the_gateway_drops_mid_interaction_and_the_client_resumes(world, make_bot):
    double = world.double
    await make_bot()
    before = await continue_everywhere(world, 3)  # in flight when the connection goes
    await double.drop_connections()
    during = await continue_everywhere(world, 3)  # sent while the client is away: replayed on RESUME
    await answered_once(world, before + during)
    (session,) = double.sessions.values()
    assert session.resumes >= 1 and len(double.identifies) == 1


async def test_an_invalid_session_makes_the_client_identify_again(world, make_bot):
    double = world.double
    await make_bot()
    before = await continue_everywhere(world, 3)
    await double.invalidate_sessions()  # op 9, d=false: the session cannot be resumed
    # discord.py waits 5 s before a new IDENTIFY (its before_identify_hook), then gets a new session.
    await double.wait_for(lambda: len(double.sessions) == 2 and double.connected, 30, "a new session")
    after = await continue_everywhere(world, 3)
    await answered_once(world, before + after)
    old, new = double.sessions.values()
    assert old.ended and not new.ended and len(double.identifies) == 2

    def interactions(session):
        return [e["d"]["id"] for e in session.events if e["t"] == "INTERACTION_CREATE"]

    assert interactions(old) == [str(r.id) for r in before] and interactions(new) == [str(r.id) for r in after]


@pytest.mark.slow
async def test_a_cold_large_model_is_deferred_within_three_seconds(world, make_bot, bot_settings, tiny_model_path):
    from core.bundle import load_bundle, save_bundle
    from core.model import ModelConfig, build_model

    tiny = load_bundle(tiny_model_path)
    large = ModelConfig(vocab_size=len(tiny.tokenizer), window=tiny.config.window, embedding_dim=256, units=1024)
    save_bundle(
        bot_settings.guilds_dir / str(world.alpha.id) / "model", build_model(large), tiny.tokenizer, large, tiny.card
    )  # untrained, but as slow to load and to compile as a trained one of its size
    double = world.double
    await make_bot()
    cold = await double.slash_command(world.general, world.bob, "continue", {"seed": "The night", "words": 4})
    warm = await double.slash_command(world.beta.channel("general"), world.bob, "continue", {"seed": "The night"})
    assert (await cold.wait_response(10))["type"] == 5  # "thinking..." while the model loads
    assert cold.latency < 3.0, f"deferred after {cold.latency:.2f} s: Discord would have dropped it"
    await answer(warm, 30)
    assert warm.latency < 3.0  # another server's warm model answers meanwhile
    assert (await answer(cold, 180)).content.startswith("**The night**")


async def test_a_sharded_client_resumes_each_shard_after_a_drop(world, bot_settings, start_client):
    from bot.sharding import ShardedContinuoBot

    double = world.double
    settings = bot_settings.model_copy(update={"shard_count": 2, "identify_interval_s": 0.3})
    await start_client(ShardedContinuoBot(settings, guild_ready_timeout=0.1), ready_timeout=60)
    before = await continue_everywhere(world, 4)
    await double.drop_connections()
    during = await continue_everywhere(world, 4)
    await answered_once(world, before + during)
    assert sorted(s.shard for s in double.sessions.values()) == [(0, 2), (1, 2)]
    assert all(s.resumes >= 1 for s in double.sessions.values()) and len(double.identifies) == 2
