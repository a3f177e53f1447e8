"""Conversations through the Discord double: a reply to the bot or a mention in a thread gets the next turn, with the
visible reply chain or thread as context, fetched through the API each time (so across a restart too)."""

from __future__ import annotations

import asyncio
import random

from continuo_world import answer
from discord_double import run_client
from test_bot_forget import voice

from bot.bot import ContinuoBot
from bot.text import turn_text


def record_prompts(bot) -> list[tuple[int, str, object]]:
    """Every (server, prompt, options) the bot decodes, still decoded by the real batched service."""
    prompts: list[tuple[int, str, object]] = []
    real = bot.models.generate

    async def generate(guild_id, seed, config, voice=None, asked=True):
        prompts.append((guild_id, seed, config))
        return await real(guild_id, seed, config, voice=voice, asked=asked)

    bot.models.generate = generate
    return prompts


async def reply_to(double, message, timeout: float = 20.0):
    """The bot's reply to `message`."""
    return await double.wait_for(
        lambda: next((m for m in double.sent_messages if m.reference is message), None),
        timeout,
        f"a reply to {message}",
    )


def fetched(double) -> list[int]:
    """Ids of the messages the bot fetched one by one (GET /channels/C/messages/M)."""
    return [int(r.path.rsplit("/", 1)[1]) for r in double.requests if r.method == "GET" and "/messages/" in r.path]


async def test_a_reply_to_the_bot_gets_the_next_turn_with_the_reply_chain_as_context(world, make_bot):
    bot = await make_bot()
    double, general = world.double, world.general
    prompts = record_prompts(bot)
    mention = await double.send_message(general, world.bob, f"{double.bot_user.mention} The harbour at Wenlow")
    continued = await reply_to(double, mention)  # a mention outside a thread still continues the words
    assert continued.content.startswith("**The harbour at Wenlow**")

    first = await double.send_message(general, world.ann, "and the lamps along the quay", reply_to=continued)
    turn = await reply_to(double, first)
    assert turn.content and not turn.content.startswith("**")  # the next turn, not a continuation of the words
    assert turn.allowed_mentions == {"parse": [], "replied_user": False} and turn.pings == []
    _, prompt, config = prompts[-1]
    assert "and the lamps along the quay" in prompt and "The harbour at Wenlow" in prompt
    assert config.stop_at in ("line", "paragraph") and config.num_return_sequences == 1  # the corpus's turn
    assert any(channel is general for channel, _ in double.typing)  # "Continuo is typing..." while it decodes

    second = await double.send_message(general, world.bob, "the tide is turning", reply_to=turn)
    await reply_to(double, second)
    _, prompt, _ = prompts[-1]
    # the whole chain, oldest first: the mention, the continuation, ann's reply, the bot's turn, bob's reply
    at = [
        prompt.index(text) for text in ("The harbour at Wenlow", "and the lamps along the quay", "the tide is turning")
    ]
    assert at == sorted(at)
    assert turn_text(turn.content, own=True) in prompt  # the bot's own turn, as it wrote it
    # Discord sends one link with a reply; the older ones were fetched through the API, nothing kept in memory
    assert first.id in fetched(double) and mention.id in fetched(double)
    double.assert_clean()


async def test_a_reply_chain_is_read_again_after_a_restart(world, make_bot, bot_settings):
    double, general = world.double, world.general
    async with run_client(ContinuoBot(bot_settings, guild_ready_timeout=0.1), double):
        opening = await double.send_message(general, world.bob, f"{double.bot_user.mention} Dear Mara,")
        continued = await reply_to(double, opening)
        question = await double.send_message(
            general, world.ann, "is the lamp at Carrick Point still out", reply_to=continued
        )
        turn = await reply_to(double, question)
    # that process has ended: whatever it held in memory is gone

    restarted = await make_bot()
    prompts = record_prompts(restarted)
    follow_up = await double.send_message(general, world.bob, "the ferry leaves at seven", reply_to=turn)
    await reply_to(double, follow_up)
    (_, prompt, _) = prompts[-1]
    for text in ("Dear Mara,", "is the lamp at Carrick Point still out", "the ferry leaves at seven"):
        assert text in prompt
    assert question.id in fetched(double)


async def test_the_context_stops_at_its_message_and_token_limits_and_at_a_deleted_link(world, make_bot):
    bot = await make_bot(conversation_messages=3)
    double, general = world.double, world.general
    prompts = record_prompts(bot)
    message = await double.send_message(general, world.bob, f"{double.bot_user.mention} The night")
    said = ["one boat came in", "two boats came in", "three boats came in"]
    for text in said:
        message = await double.send_message(general, world.ann, text, reply_to=await reply_to(double, message))
    await reply_to(double, message)
    _, prompt, _ = prompts[-1]
    assert "two boats came in" in prompt and "three boats came in" in prompt  # 3 messages: ann, the bot, ann
    assert "one boat came in" not in prompt

    bot.settings.conversation_messages, bot.settings.conversation_tokens = 12, 8  # a message of 5 tokens and more
    message = await double.send_message(
        general, world.bob, "four boats came in", reply_to=await reply_to(double, message)
    )
    await reply_to(double, message)
    _, prompt, _ = prompts[-1]
    assert "four boats came in" in prompt and "three boats came in" not in prompt

    bot.settings.conversation_tokens = 400
    await double.delete_message(message)  # a link deleted: the chain ends there
    later = await double.send_message(general, world.bob, "five boats", reply_to=await reply_to(double, message))
    await reply_to(double, later)
    _, prompt, _ = prompts[-1]
    assert "five boats" in prompt and "four boats came in" not in prompt and "three boats" not in prompt
    assert [r.code for r in double.rejected_requests] == [10008]  # the deleted link: Unknown Message
    double.rejected_requests.clear()


async def test_a_mention_in_a_thread_answers_from_that_thread_only(world, make_bot):
    double, general = world.double, world.general
    await double.send_message(general, world.ann, "the parent channel talks of gulls", dispatch=False)
    await double.send_message(world.alpha.channel("ideas"), world.ann, "another channel talks of kites", dispatch=False)
    await double.send_message(world.beta.channel("general"), world.ann, "another server talks of bells", dispatch=False)
    bot = await make_bot()
    prompts = record_prompts(bot)
    thread = await double.add_thread(general, "the ferry", world.ann)
    await double.send_message(thread, world.ann, "the ferry leaves at seven with its lamps")
    await double.send_message(thread, world.spam, "another bot talks of coupons")
    asked = await double.send_message(thread, world.bob, f"{double.bot_user.mention} and who will wave from the bank")
    turn = await reply_to(double, asked)
    assert turn.channel is thread and turn.pings == [] and turn.content
    _, prompt, _ = prompts[-1]
    assert "the ferry leaves at seven with its lamps" in prompt and "who will wave from the bank" in prompt
    for elsewhere in ("gulls", "kites", "bells", "coupons", "<@"):
        assert elsewhere not in prompt  # only what the bot sees in this thread; other bots are no one's turn
    assert any(channel is thread for channel, _ in double.typing)


async def test_without_read_message_history_the_reply_alone_is_the_context(world, make_bot):
    bot = await make_bot()
    double, general = world.double, world.general
    prompts = record_prompts(bot)
    opening = await double.send_message(general, world.bob, f"{double.bot_user.mention} The harbour")
    continued = await reply_to(double, opening)
    general.deny_bot(read_message_history=True)
    asked = await double.send_message(general, world.ann, "what of the lamps", reply_to=continued)
    turn = await reply_to(double, asked)
    assert turn.content
    _, prompt, _ = prompts[-1]
    assert "what of the lamps" in prompt and "The harbour" in prompt  # the replied message comes with the reply
    assert [r.code for r in double.rejected_requests] == [50013]  # the older link: Missing Permissions
    double.rejected_requests.clear()


async def test_replies_can_be_switched_off_and_generated_turns_never_ping(world, make_bot):
    bot = await make_bot()
    double, general = world.double, world.general
    opening = await double.send_message(general, world.bob, f"{double.bot_user.mention} The harbour")
    continued = await reply_to(double, opening)
    user, role = world.ann.mention, world.alpha.roles[-1].mention

    async def generate(guild_id, seed, config, voice=None, asked=True):  # the real tokenizer cannot emit mentions
        return [f"@everyone and @here meet {user} {role}\n\n"]

    bot.models.generate = generate
    asked = await double.send_message(general, world.ann, "who is coming", reply_to=continued)
    turn = await reply_to(double, asked)
    assert "everyone" in turn.content and "@everyone" not in turn.content and user not in turn.content
    assert double.pings == [] and turn.allowed_mentions == {"parse": [], "replied_user": False}

    await answer(await double.slash_command(general, world.ann, "settings", {"reply_on_mention": False}))
    ignored = await double.send_message(general, world.ann, "anyone there", reply_to=turn)
    await asyncio.sleep(1.0)
    assert not any(m.reference is ignored for m in double.sent_messages)


# --- chiming in


async def own_voice(double, channel, admin, chime_in: float | None = None) -> None:
    """The server's own (instant) model from an upload, `channel` learned, and its chance to chime in."""
    await answer(await double.slash_command(channel, admin, "corpus add", {"file": ("voice.txt", voice().encode())}))
    await answer(await double.slash_command(channel, admin, "corpus learn", {"channel": channel}))
    if chime_in is not None:
        await answer(await double.slash_command(channel, admin, "settings", {"chime_in": chime_in}))


def chimed(double, channel) -> list:
    """The bot's unasked messages in `channel`: neither replies nor answers to commands."""
    return [m for m in double.sent_messages if m.channel is channel and m.reference is None and m.interaction is None]


async def test_chime_in_follows_its_seeded_chance_and_is_decoded_in_one_batch(world, make_bot):
    bot = await make_bot(chime_in_seed=7, chime_in_cooldown_s=0)
    double, general = world.double, world.general
    await own_voice(double, general, world.ann, chime_in=50)
    gate, batches, real_run = asyncio.Event(), [], bot.models.run

    async def run(fn, *args):  # the first decoding waits, so that the others queue behind it
        if getattr(fn, "__name__", "") == "generate_batch":
            batches.append(len(args[0]))
            await gate.wait()
        return await real_run(fn, *args)

    bot.models.run = run
    draws = random.Random(7)
    expected = sum(draws.random() * 100 < 50 for _ in range(12))
    assert 0 < expected < 12
    for n in range(12):
        await double.send_message(general, (world.ann, world.bob)[n % 2], f"the tide is out, {n} boats on the mud")
    queued = lambda: sum(len(w) for w in bot.models.decoder._waiting.values())  # noqa: E731 - read twice below
    await double.wait_for(lambda: queued() == expected, 20, lambda: f"{expected} chime-ins queued, not {queued()}")
    gate.set()
    await double.wait_for(lambda: len(chimed(double, general)) == expected, 30, f"{expected} chime-ins")
    await asyncio.sleep(1.0)
    said = chimed(double, general)
    assert len(said) == expected  # the seeded draws decide, and the bot never chimes in after itself
    assert len(batches) == 2 and sum(batches) == expected  # the first, then all that waited for it, together
    assert all(m.allowed_mentions == {"parse": []} and m.pings == [] for m in said)
    assert len([c for c, _ in double.typing if c is general]) >= expected


async def test_a_chime_in_waits_for_the_asked_answers_being_decoded(world, make_bot):
    bot = await make_bot(chime_in_cooldown_s=0)
    double, general, seed = world.double, world.general, "the harbour"
    await own_voice(double, general, world.ann, chime_in=100)
    gate, decoded, real_run = asyncio.Event(), [], bot.models.run

    async def run(fn, *args):  # the asked /continue decodes until the gate opens
        if getattr(fn, "__name__", "") == "generate_batch":
            decoded.append(list(args[0]))
            if args[0] == [seed]:
                await gate.wait()
        return await real_run(fn, *args)

    bot.models.run = run
    asked = await double.slash_command(general, world.ann, "continue", {"seed": seed, "words": 5})
    await double.wait_for(lambda: decoded, 10, "the asked answer decoding")
    await double.send_message(general, world.bob, "the lamps are lit along the quay")
    await asyncio.sleep(1.0)
    assert decoded == [[seed]] and chimed(double, general) == []  # the unasked turn waits
    gate.set()
    assert "**the harbour**" in (await answer(asked)).content
    await double.wait_for(lambda: chimed(double, general), 20, "the chime-in, once the answer was decoded")
    assert len(decoded) >= 2


async def test_chime_in_waits_out_a_cooldown_per_channel(world, make_bot):
    await make_bot(chime_in_cooldown_s=300)
    double, general, ideas = world.double, world.general, world.alpha.channel("ideas")
    await own_voice(double, general, world.ann, chime_in=100)
    await answer(await double.slash_command(general, world.ann, "corpus learn", {"channel": ideas}))
    for n in range(3):
        await double.send_message(general, world.bob, f"the ferry is late again, {n}")
    await double.wait_for(lambda: chimed(double, general), 20, "a chime-in")
    await double.send_message(ideas, world.bob, "a kite over the harbour")
    await double.wait_for(lambda: chimed(double, ideas), 20, "a chime-in in another channel")
    await asyncio.sleep(1.0)
    assert len(chimed(double, general)) == 1 and len(chimed(double, ideas)) == 1


async def test_chime_in_never_without_a_model_of_its_own_after_a_bot_or_outside_learned_channels(world, make_bot):
    bot = await make_bot(chime_in_cooldown_s=0)
    double, general, ideas = world.double, world.general, world.alpha.channel("ideas")
    shown = await answer(await double.slash_command(general, world.ann, "settings"))
    assert "Chime in: off" in shown.content  # 0 by default
    await answer(await double.slash_command(general, world.ann, "corpus learn", {"channel": general}))
    await answer(await double.slash_command(general, world.ann, "settings", {"chime_in": 100}))
    await double.send_message(general, world.bob, "anyone seen the harbour master")
    await asyncio.sleep(1.0)
    assert chimed(double, general) == []  # the bundled model is no one's voice here
    assert await bot.models.bundle_for(world.alpha.id) == bot.models.default_model

    await own_voice(double, general, world.ann)
    await double.send_message(general, world.spam, "another bot posts its news")
    await double.send_message(ideas, world.bob, "ideas is not learned")
    await asyncio.sleep(1.0)
    assert chimed(double, general) == [] and chimed(double, ideas) == []
    await double.send_message(general, world.bob, "the lamps are lit along the quay")
    await double.wait_for(lambda: chimed(double, general), 20, "a chime-in")
    await asyncio.sleep(1.0)
    assert len(chimed(double, general)) == 1  # its own message is not followed by another, even without a cooldown
