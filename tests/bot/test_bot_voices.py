"""Members' voices through the Discord double: consent (/voice share, /voice stop, /forget-me), one reusable webhook
per channel under the member's name and avatar, marked as an imitation and never pinging, a reply where the bot may
not manage webhooks, and no way to reach another server's members."""

from __future__ import annotations

import asyncio
import random

import discord
import pytest
from continuo_world import answer
from test_bot_forget import INVENTED, voice

from bot.models import Voice

MANAGE_WEBHOOKS = discord.Permissions(manage_webhooks=True).value
MARK = "-# an imitation of bob by Continuo"


def bobs_lines(n: int = 24, seed: int = 5) -> list[str]:
    """Bob's own way of talking (written for this test), in the server's invented words."""
    rng = random.Random(seed)
    shapes = ["honestly my {} , the {} is {} again", "my {} says the {} will {} at dawn", "honestly , {} and {} !"]
    return [rng.choice(shapes).format(*(rng.choice(INVENTED) for _ in range(3))) for _ in range(n)]


async def server_with_bobs_messages(world, bot) -> None:
    """Alpha learns #general from an upload, and bob has written there (recorded)."""
    double, general, ann, bob = world.double, world.general, world.ann, world.bob
    await answer(await double.slash_command(general, ann, "corpus learn", {"channel": general}))
    await answer(await double.slash_command(general, ann, "corpus add", {"file": ("voice.txt", voice().encode())}))
    lines = bobs_lines()
    for line in lines:
        await double.send_message(general, bob, line)
    for _ in range(200):
        if len(await bot.store.member_texts(world.alpha.id, bob.id)) == len(lines):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("bob's messages were not recorded")


async def imitate(double, channel, user, member, seed: str = "the zorblax"):
    return await answer(
        await double.slash_command(channel, user, "continue", {"seed": seed, "words": 10, "as": member})
    )


def posted_by_webhooks(double) -> list:
    return [m for m in double.sent_messages if m.webhook_id in double.webhooks]


def while_decoding(bot, action) -> list:
    """Wrap the bot's inference threads so that `action()` runs as the first batch starts decoding; the batches'
    seeds, as they come."""
    real_run, decodes = bot.models.run, []

    async def run(fn, *args):
        if getattr(fn, "__name__", "") == "generate_batch":
            decodes.append(args[0])
            if len(decodes) == 1:
                await action()
        return await real_run(fn, *args)

    bot.models.run = run
    return decodes


async def test_an_imitation_goes_through_one_reused_webhook_under_the_members_name_and_never_pings(world, make_bot):
    double, general, ann, bob = world.double, world.general, world.ann, world.bob
    double.bot_permissions |= MANAGE_WEBHOOKS
    bot = await make_bot()
    await server_with_bobs_messages(world, bot)
    shared = await answer(await double.slash_command(general, bob, "voice share"))
    assert shared.ephemeral and "You shared your voice" in shared.content and "24 recorded messages" in shared.content

    told = await imitate(double, general, ann, bob)
    assert told.ephemeral and "Posted in bob's voice" in told.content, told.content
    (hook,) = double.webhooks.values()
    assert hook.channel is general and hook.user is double.bot_user
    (posted,) = hook.executed
    assert posted.author.name == "bob (Continuo imitation)" and posted.avatar_url  # their name, marked, their avatar
    assert posted.content.startswith(MARK) and "**the zorblax**" in posted.content
    assert posted.allowed_mentions == {"parse": []} and posted.pings == []

    again = await imitate(double, general, ann, bob, "a quenlit")
    assert "Posted" in again.content
    assert list(double.webhooks.values()) == [hook] and len(hook.executed) == 2  # the same webhook, reused
    created = [r for r in double.requests if r.method == "POST" and r.path.endswith("/webhooks")]
    assert len(created) == 1
    assert all(m.pings == [] and m.allowed_mentions == {"parse": []} for m in hook.executed)
    bent = await bot.models.voice_model(Voice(world.alpha.id, bob.id, tuple(bobs_lines())))
    assert 0 < bent.weights["voice"] <= 0.9  # the server's model, bent toward bob's messages
    texts = await bot.store.corpus_texts(world.alpha.id)
    assert not any(m.content in texts for m in hook.executed)  # imitations never enter the corpus
    double.assert_clean()


async def test_only_members_who_shared_their_voice_here_can_be_imitated_until_they_stop(world, make_bot):
    double, general, ann, bob = world.double, world.general, world.ann, world.bob
    bot = await make_bot()
    await server_with_bobs_messages(world, bot)
    refused = await imitate(double, general, ann, bob)
    assert refused.ephemeral and refused.content.count("\n") == 0
    assert "bob has not shared their voice in this server" in refused.content, refused.content

    await answer(await double.slash_command(general, bob, "voice share"))
    reply = await imitate(double, general, ann, bob)  # no Manage Webhooks here (the default): a reply, marked
    assert not reply.ephemeral and reply.content.startswith(MARK) and "**the zorblax**" in reply.content
    assert reply.allowed_mentions == {"parse": []}
    assert reply.pings == [] and double.webhooks == {}

    # another server: bob shared his voice in Alpha, not in Beta; carol shares hers in Beta only
    beta = world.beta.channel("general")
    assert "has not shared their voice" in (await imitate(double, beta, ann, bob)).content
    carol = double.user("carol")
    world.beta.add_member(carol)
    await answer(await double.slash_command(beta, carol, "voice share"))
    assert "carol has not shared their voice" in (await imitate(double, general, ann, carol)).content
    assert "has not shared their voice" in (await imitate(double, general, ann, world.spam)).content  # a bot
    await answer(await double.slash_command(general, carol, "voice share"))  # shared in Alpha, but never wrote there
    quiet = await imitate(double, general, ann, carol)
    assert quiet.ephemeral and "carol has 0 recorded message(s) in this server" in quiet.content, quiet.content

    stopped = await answer(await double.slash_command(general, bob, "voice stop"))
    assert stopped.ephemeral and "no answer imitates you" in stopped.content
    assert "bob has not shared their voice" in (await imitate(double, general, ann, bob)).content
    assert (world.alpha.id, bob.id) not in bot.models.voices

    await answer(await double.slash_command(general, bob, "voice share"))
    await imitate(double, general, ann, bob)
    await answer(await double.slash_command(general, bob, "forget-me"))  # implies /voice stop
    assert "bob has not shared their voice" in (await imitate(double, general, ann, bob)).content
    assert not await bot.store.voice_shared(world.alpha.id, bob.id)
    double.assert_clean()


async def test_a_voice_stopped_while_an_answer_is_decoded_is_not_posted(world, make_bot):
    double, general, ann, bob = world.double, world.general, world.ann, world.bob
    bot = await make_bot()
    await server_with_bobs_messages(world, bot)
    await answer(await double.slash_command(general, bob, "voice share"))

    async def withdraw() -> None:  # bob withdraws while his voice decodes
        await bot.store.stop_voice(world.alpha.id, bob.id)
        bot.models.stop_voice(world.alpha.id, bob.id)

    while_decoding(bot, withdraw)
    told = await imitate(double, general, ann, bob)
    assert told.ephemeral and "stopped sharing their voice" in told.content, told.content
    assert not any(m.content.startswith(MARK) for m in double.sent_messages)
    double.assert_clean()


@pytest.mark.parametrize("where", ["channel", "thread"])
async def test_without_manage_webhooks_in_the_channel_the_imitation_is_a_marked_reply(world, make_bot, where):
    double, general, ann, bob = world.double, world.general, world.ann, world.bob
    double.bot_permissions |= MANAGE_WEBHOOKS  # held in the server, taken away in #general by an overwrite
    general.deny_bot(manage_webhooks=True)
    bot = await make_bot()
    await server_with_bobs_messages(world, bot)
    await answer(await double.slash_command(general, bob, "voice share"))
    channel = general if where == "channel" else await double.add_thread(general, "harbour talk", ann)
    reply = await imitate(double, channel, ann, bob)
    assert not reply.ephemeral and reply.channel is channel and reply.content.startswith(MARK)
    assert reply.pings == [] and double.webhooks == {}
    assert not [r for r in double.requests if r.path.endswith("/webhooks")]  # not even tried: nothing refused
    double.assert_clean()


async def test_an_imitation_in_a_thread_goes_through_its_channels_webhook(world, make_bot):
    double, general, ann, bob = world.double, world.general, world.ann, world.bob
    double.bot_permissions |= MANAGE_WEBHOOKS
    bot = await make_bot()
    await server_with_bobs_messages(world, bot)
    await answer(await double.slash_command(general, bob, "voice share"))
    thread = await double.add_thread(general, "harbour talk", ann)
    assert "Posted" in (await imitate(double, thread, ann, bob)).content
    (hook,) = double.webhooks.values()
    assert hook.channel is general and hook.executed[0].channel is thread
    double.assert_clean()


async def test_the_apps_menu_continues_a_message_in_its_authors_voice_only_if_they_shared_it(world, make_bot):
    double, general, ann, bob = world.double, world.general, world.ann, world.bob
    bot = await make_bot()
    await server_with_bobs_messages(world, bot)
    said = await double.send_message(general, bob, "honestly my zorblax , the quenlit")
    menu = "Continue in their voice"
    refused = await answer(await double.message_command(general, ann, menu, said))
    assert refused.ephemeral and "bob has not shared their voice" in refused.content
    await answer(await double.slash_command(general, bob, "voice share"))
    reply = await answer(await double.message_command(general, ann, menu, said))
    assert reply.content.startswith(MARK) and "**honestly my zorblax , the quenlit**" in reply.content
    assert reply.pings == []
    double.assert_clean()


async def test_an_imitation_holding_mention_syntax_pings_nobody_through_the_webhook(world, make_bot):
    double, general, ann, bob = world.double, world.general, world.ann, world.bob
    double.bot_permissions |= MANAGE_WEBHOOKS
    bot = await make_bot()
    await server_with_bobs_messages(world, bot)
    await answer(await double.slash_command(general, bob, "voice share"))
    role = world.alpha.roles[-1].mention

    async def generate(guild_id, seed, config, voice=None):  # the real tokenizer cannot emit mention syntax: force it
        assert voice is not None and voice.member_id == bob.id and voice.guild_id == world.alpha.id
        return [f" @everyone and @here meet {ann.mention} {role}"]

    bot.models.generate = generate
    await imitate(double, general, ann, bob)
    (hook,) = double.webhooks.values()
    posted = hook.executed[-1]
    assert "everyone" in posted.content and "@everyone" not in posted.content and ann.mention not in posted.content
    assert posted.pings == [] and double.pings == [] and posted.allowed_mentions == {"parse": []}
    double.assert_clean()


async def test_a_voice_is_built_once_kept_while_its_member_writes_a_little_and_built_again_without_removed_text(
    world, make_bot
):
    double, general, ann, bob = world.double, world.general, world.ann, world.bob
    bot = await make_bot()
    await server_with_bobs_messages(world, bot)
    await answer(await double.slash_command(general, bob, "voice share"))
    builds, real_run = [], bot.models.run

    async def run(fn, *args):
        if getattr(fn, "__name__", "") == "with_voice":
            builds.append(list(args[0]))
        return await real_run(fn, *args)

    bot.models.run = run
    seeds = ("the zorblax", "a quenlit", "the quenlit")
    together = await asyncio.gather(*(imitate(double, general, ann, bob, seed) for seed in seeds))
    assert all(r.content.startswith(MARK) for r in together), [r.content for r in together]
    assert len(builds) == 1  # the requests that came while it was built waited for that build

    async def recorded(n: int) -> None:
        await double.wait_for(lambda: len(texts) == n, 10, f"{n} of bob's messages recorded")

    texts: list[str] = []

    async def watch():
        while True:
            texts[:] = await bot.store.member_texts(world.alpha.id, bob.id)
            await asyncio.sleep(0.02)

    watcher = asyncio.ensure_future(watch())
    try:
        await double.send_message(general, bob, "honestly my kettle is late again")
        await recorded(25)
        await imitate(double, general, ann, bob)
        assert len(builds) == 1  # one new message: the voice counted from the 24 before it still answers

        first = next(m for m in general.messages if m.author is bob)
        await double.delete_message(first)
        await recorded(24)
        assert (await imitate(double, general, ann, bob)).content.startswith(MARK)
        assert len(builds) == 2 and first.content not in builds[-1]  # counted again, without the removed message
        assert builds[-1] == texts and "honestly my kettle is late again" in builds[-1]
    finally:
        watcher.cancel()
    double.assert_clean()


async def test_an_answer_in_a_voice_is_not_decoded_again_from_messages_read_before_text_was_removed(world, make_bot):
    double, general, ann, bob = world.double, world.general, world.ann, world.bob
    bot = await make_bot()
    await server_with_bobs_messages(world, bot)
    await answer(await double.slash_command(general, bob, "voice share"))
    decodes = while_decoding(bot, lambda: bot.models.forgot(world.alpha.id))  # text leaves while the voice decodes
    told = await imitate(double, general, ann, bob)
    assert told.ephemeral and "text was removed from this server" in told.content, told.content
    assert len(decodes) == 1 and not any(m.content.startswith(MARK) for m in double.sent_messages)
    double.assert_clean()
