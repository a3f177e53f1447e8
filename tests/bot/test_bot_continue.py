"""End to end through the Discord double: login, command sync, /continue, the context menu, mentions, cooldowns."""

from __future__ import annotations

import asyncio
import re

from continuo_world import answer
from discord_double import MESSAGE_CONTENT

from core import Tokenizer


async def test_login_syncs_commands_with_the_intents_it_needs(world, make_bot):
    await make_bot()
    double = world.double
    assert double.intents & MESSAGE_CONTENT
    synced = {(c["name"], c.get("type", 1)): c for c in double.synced_commands[None]}
    assert set(synced) == {
        ("continue", 1),
        ("corpus", 1),
        ("forget-me", 1),
        ("train", 1),
        ("model", 1),
        ("settings", 1),
        ("Continue this message", 3),
        ("Continue in their voice", 3),
        ("voice", 1),
    }
    for admin_only in ("corpus", "train", "settings"):
        assert int(synced[(admin_only, 1)]["default_member_permissions"]) == 1 << 5  # Manage Server
    assert synced[("continue", 1)].get("default_member_permissions") is None


async def test_continue_shows_the_seed_in_bold_then_the_continuation(world, make_bot):
    await make_bot()
    record = await world.double.slash_command(world.general, world.bob, "continue", {"seed": "The night", "words": 6})
    message = await answer(record)
    assert message.content.startswith("**The night**")
    assert len(message.content) > len("**The night**")
    assert not message.ephemeral and message.allowed_mentions == {"parse": []}


async def test_variants_are_numbered(world, make_bot):
    await make_bot()
    record = await world.double.slash_command(
        world.general, world.bob, "continue", {"seed": "The sea", "words": 4, "variants": 3, "temperature": 1.5}
    )
    content = (await answer(record)).content  # a continuation may hold blank lines of its own
    assert re.findall(r"^`(\d)\.` \*\*The sea\*\*", content, re.MULTILINE) == ["1", "2", "3"]


async def test_bad_seed_gets_a_one_line_private_error(world, make_bot):
    await make_bot()
    record = await world.double.slash_command(world.general, world.bob, "continue", {"seed": "zxqv qqqj"})
    message = await answer(record)
    assert message.ephemeral and "none of the seed's words are known" in message.content
    assert "\n" not in message.content and "Traceback" not in message.content


async def test_context_menu_continues_the_message(world, make_bot):
    await make_bot()
    double = world.double
    target = await double.send_message(world.general, world.bob, "The moon was")
    record = await double.message_command(world.general, world.ann, "Continue this message", target)
    message = await answer(record)
    assert message.content.startswith("**The moon was**") and not message.ephemeral


async def test_mentioning_the_bot_continues_the_text_and_can_be_switched_off(world, make_bot):
    bot = await make_bot()
    double = world.double
    asked = await double.send_message(world.general, world.bob, f"{double.bot_user.mention} The wind")
    reply = await double.wait_for(
        lambda: next((m for m in double.sent_messages if m.reference is asked), None), 20, "a reply to the mention"
    )
    assert reply.content.startswith("**The wind**") and reply.pings == []

    await answer(await double.slash_command(world.general, world.ann, "settings", {"reply_on_mention": False}))
    asked = await double.send_message(world.general, world.bob, f"{double.bot_user.mention} The wind")
    await asyncio.sleep(1.0)
    assert not any(m.reference is asked for m in double.sent_messages)
    assert not (await bot.store.guild_settings(world.alpha.id)).reply_on_mention


async def test_other_bots_are_ignored(world, make_bot):
    await make_bot()
    double = world.double
    asked = await double.send_message(world.general, world.spam, f"{double.bot_user.mention} The wind")
    await asyncio.sleep(1.0)
    assert not any(m.reference is asked for m in double.sent_messages)


async def test_a_user_who_is_too_fast_is_told_privately(world, make_bot):
    await make_bot(cooldown_uses=2, cooldown_seconds=60)
    double = world.double
    answers = []
    for _ in range(3):
        answers.append(await answer(await double.slash_command(world.general, world.bob, "continue", {"seed": "The"})))
    assert [m.ephemeral for m in answers] == [False, False, True]
    assert answers[2].content.startswith("You're going too fast: try again in")
    other = await answer(await double.slash_command(world.general, world.ann, "continue", {"seed": "The"}))
    assert not other.ephemeral  # the cooldown is per user


async def test_mentions_in_seeds_and_generated_text_never_ping(world, make_bot):
    bot = await make_bot()
    double = world.double
    everyone = "@everyone"
    role, user = world.alpha.roles[-1].mention, world.ann.mention
    record = await double.slash_command(world.general, world.bob, "continue", {"seed": f"{everyone} {role} The"})
    message = await answer(record)
    assert "The" in message.content and everyone not in message.content and role not in message.content

    async def generate(guild_id, seed, config, voice=None):  # the real tokenizer cannot emit mention syntax: force it
        return [f" {everyone} and @here meet {user} {role} <#{world.general.id}>"]

    bot.models.generate = generate
    message = await answer(await double.slash_command(world.general, world.bob, "continue", {"seed": "The"}))
    assert "everyone" in message.content
    for mention in (everyone, "@here", user, role, world.general.mention):
        assert mention not in message.content
    assert double.pings == []
    assert all(m.allowed_mentions == {"parse": []} for m in double.sent_messages)


async def test_server_settings_set_continue_defaults(world, make_bot):
    await make_bot()
    double, general = world.double, world.general
    shown = await answer(await double.slash_command(general, world.ann, "settings"))
    assert shown.ephemeral and "Length: 30 words" in shown.content and "Automatic retraining: off" in shown.content
    changed = await answer(
        await double.slash_command(
            general, world.ann, "settings", {"words": 3, "temperature": 0.5, "retrain_growth_percent": 25}
        )
    )
    assert "Length: 3 words" in changed.content and "Temperature: 0.5" in changed.content
    assert "grown by 25%" in changed.content
    message = await answer(await double.slash_command(general, world.bob, "continue", {"seed": "The"}))
    continuation = message.content.removeprefix("**The**")
    assert 1 <= len(Tokenizer().split(continuation)) <= 3  # tokens: a line break counts as one
    beta = await answer(await double.slash_command(world.beta.channel("general"), world.ann, "settings"))
    assert "Length: 30 words" in beta.content  # Alpha's settings stay Alpha's
