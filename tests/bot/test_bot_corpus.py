"""End to end through the Discord double: a server's corpus from uploads and learned channels, and who may touch it."""

from __future__ import annotations

import asyncio

import pytest
from continuo_world import answer
from discord_double import CommandRefused


async def texts(bot, guild) -> list[str]:
    return await bot.store.corpus_texts(guild.id)


async def settle(double, bot, guild, expected, what="the corpus"):
    """Wait until the server's stored corpus equals `expected` (events are handled asynchronously)."""
    box = []

    async def poll():
        while True:
            box[:] = [await texts(bot, guild)]
            if box[0] == expected:
                return
            await asyncio.sleep(0.05)

    try:
        await asyncio.wait_for(poll(), 10)
    except TimeoutError:
        pytest.fail(f"{what} is {box[0] if box else None}, expected {expected}")


async def test_upload_adds_a_text_file_and_refuses_binary_or_empty_ones(world, make_bot):
    bot = await make_bot()
    double, general, ann = world.double, world.general, world.ann
    added = await answer(
        await double.slash_command(general, ann, "corpus add", {"file": ("notes.txt", b"Hello there.\n")})
    )
    assert "Added **notes.txt**" in added.content and "more" in added.content
    assert await texts(bot, world.alpha) == ["Hello there.\n"]

    for name, data, reason in [
        ("a.png", b"\x89PNG\x00\x00", "binary"),
        ("b.txt", b"  \n ", "only whitespace"),
        ("c.txt", "café".encode("latin-1"), "not UTF-8"),
    ]:
        refused = await answer(await double.slash_command(general, ann, "corpus add", {"file": (name, data)}))
        assert refused.ephemeral and reason in refused.content and name in refused.content
    assert await texts(bot, world.alpha) == ["Hello there.\n"]


async def test_upload_over_the_size_limit_is_refused(world, make_bot):
    bot = await make_bot(max_upload_mb=0.001)
    refused = await answer(
        await world.double.slash_command(world.general, world.ann, "corpus add", {"file": ("big.txt", b"word " * 1000)})
    )
    assert refused.ephemeral and "over the 1 KB upload limit" in refused.content
    assert await texts(bot, world.alpha) == []


async def test_corpus_commands_need_manage_server(world, make_bot):
    bot = await make_bot()
    double, general, bob = world.double, world.general, world.bob
    with pytest.raises(CommandRefused):  # Discord hides the command from bob
        await double.slash_command(general, bob, "corpus stats")
    for name, options in [
        ("corpus stats", {}),
        ("corpus add", {"file": ("a.txt", b"text")}),
        ("train", {}),
        ("settings", {"words": 5}),
        ("corpus clear", {}),
    ]:
        refused = await answer(await double.slash_command(general, bob, name, options, enforce_permissions=False))
        assert refused.ephemeral and "You need the Manage Server permission" in refused.content
    assert await texts(bot, world.alpha) == [] and (await bot.store.guild_settings(world.alpha.id)).words != 5


async def test_learned_channel_records_messages_follows_edits_and_deletions(world, make_bot):
    bot = await make_bot()
    double, general, ideas, ann, bob = world.double, world.general, world.alpha.channel("ideas"), world.ann, world.bob
    learned = await answer(await double.slash_command(general, ann, "corpus learn", {"channel": ideas}))
    assert ideas.mention in learned.content

    first = await double.send_message(ideas, bob, "the first idea")
    await double.send_message(ideas, bob, "!play a song")  # another bot's command
    await double.send_message(ideas, world.spam, "I am a bot")
    await double.send_message(general, bob, "general is not learned")
    second = await double.send_message(ideas, ann, "a second idea <@123456789012345678>")
    await settle(double, bot, world.alpha, ["the first idea", "a second idea"])

    await double.edit_message(first, "the first idea, edited")
    await double.delete_message(second)
    await settle(double, bot, world.alpha, ["the first idea, edited"], "the corpus after an edit and a deletion")
    await double.edit_message(first, "!now a command")
    await settle(double, bot, world.alpha, [], "the corpus after editing into a command")

    await answer(await double.slash_command(general, ann, "corpus unlearn", {"channel": ideas}))
    await double.send_message(ideas, bob, "after unlearning")
    await asyncio.sleep(0.5)
    assert await texts(bot, world.alpha) == []


async def test_learn_with_backfill_reads_the_history_with_progress(world, make_bot):
    bot = await make_bot(progress_interval_s=0.0)
    double, general, ann, bob = world.double, world.general, world.ann, world.bob
    for i in range(30):
        await double.send_message(general, bob if i % 3 else world.spam, f"old message {i}", dispatch=False)
    record = await double.slash_command(general, ann, "corpus learn", {"channel": general, "backfill": 25})
    await double.wait_for(lambda: record.content and "Read 25 past messages" in record.content, 20, "backfill")
    newest = general.history()[-25:]  # the bot's own answer to /corpus learn is the newest
    expected = [m.content for m in newest if not m.author.bot]
    assert len(expected) == 16 and f"recorded {len(expected)}" in record.content
    assert record.edits and "Reading its history" in record.edits[0]["content"]
    assert await texts(bot, world.alpha) == expected  # oldest first, without bots' messages


async def test_stats_export_and_base_corpus(world, make_bot):
    await make_bot()
    double, general, ann = world.double, world.general, world.ann
    await answer(await double.slash_command(general, ann, "corpus add", {"file": ("a.txt", b"one two three")}))
    choices = await double.autocomplete(general, ann, "corpus use", {"base": "ch"}, focused="base")
    assert [c["value"] for c in choices] == ["chat"]
    used = await answer(await double.slash_command(general, ann, "corpus use", {"base": "chat"}))
    assert "starts from **chat**" in used.content and "enough to /train" in used.content
    wrong = await answer(await double.slash_command(general, ann, "corpus use", {"base": "nope"}))
    assert wrong.ephemeral and "no bundled corpus named 'nope'" in wrong.content

    stats = await answer(await double.slash_command(general, ann, "corpus stats"))
    assert stats.ephemeral and "Uploaded files: 1" in stats.content and "Base corpus: chat" in stats.content
    export = await answer(await double.slash_command(general, ann, "corpus export"))
    (attachment,) = export.attachments
    text = attachment.data.decode("utf-8")
    assert export.ephemeral and text.endswith("\none two three") and len(text) > 60_000  # chat, then the upload


async def test_clear_asks_first(world, make_bot):
    bot = await make_bot()
    double, general, ann = world.double, world.general, world.ann
    await answer(await double.slash_command(general, ann, "corpus add", {"file": ("a.txt", b"keep me")}))
    asked = await answer(await double.slash_command(general, ann, "corpus clear"))
    assert asked.ephemeral and "cannot be undone" in asked.content
    kept = await double.click_button(asked, "corpus-clear:cancel", ann)
    await kept.wait_response()
    assert "Nothing was deleted" in asked.content and await texts(bot, world.alpha) == ["keep me"]

    asked = await answer(await double.slash_command(general, ann, "corpus clear"))
    done = await double.click_button(asked, "corpus-clear:confirm", ann)
    await done.wait_response()
    assert "Deleted 1 texts" in asked.content and await texts(bot, world.alpha) == []


async def test_forget_me_removes_only_the_callers_messages(world, make_bot):
    bot = await make_bot()
    double, general, ann, bob = world.double, world.general, world.ann, world.bob
    await answer(await double.slash_command(general, ann, "corpus learn", {"channel": general}))
    for author, text in [(bob, "bob says hi"), (ann, "ann says hi"), (bob, "bob again")]:
        await double.send_message(general, author, text)
    await settle(double, bot, world.alpha, ["bob says hi", "ann says hi", "bob again"])
    reply = await answer(await double.slash_command(general, bob, "forget-me"))
    assert reply.ephemeral and "Removed 2 of your messages" in reply.content
    assert await texts(bot, world.alpha) == ["ann says hi"]


async def test_servers_never_see_each_others_corpus(world, make_bot):
    bot = await make_bot()
    double, ann = world.double, world.ann
    alpha_general, beta_general = world.general, world.beta.channel("general")
    await answer(await double.slash_command(alpha_general, ann, "corpus add", {"file": ("a.txt", b"alpha secret")}))
    await answer(await double.slash_command(alpha_general, ann, "corpus learn", {"channel": alpha_general}))
    await double.send_message(alpha_general, world.bob, "alpha chatter")
    await double.send_message(beta_general, world.bob, "beta chatter")  # beta never learned a channel
    await settle(double, bot, world.alpha, ["alpha secret", "alpha chatter"])

    empty = await answer(await double.slash_command(beta_general, ann, "corpus export"))
    assert empty.ephemeral and "corpus is empty" in empty.content
    stats = await answer(await double.slash_command(beta_general, ann, "corpus stats"))
    assert "Recorded messages: 0" in stats.content and "Uploaded files: 0" in stats.content
    forgot = await answer(await double.slash_command(beta_general, world.bob, "forget-me"))
    assert "Removed 0 of your messages" in forgot.content
    assert await texts(bot, world.alpha) == ["alpha secret", "alpha chatter"]
    assert await texts(bot, world.beta) == []
    assert not any("alpha" in m.content for m in double.sent_messages if m.guild is world.beta)
