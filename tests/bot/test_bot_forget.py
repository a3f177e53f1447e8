"""End to end through the Discord double: forgetting reaches the served model at once, a retraining without the text
follows, a fresh server answers in its own voice right after an upload, and the corpus cap holds for live messages."""

from __future__ import annotations

import asyncio
import random

from continuo_world import answer

TRAINING_TIMEOUT = 240  # seconds; a tiny model trains in a few, but CI machines are shared
INVENTED = ["zorblax", "quenlit", "marrowfen", "tibbery", "ossolume", "vantrel", "gloaming-wick", "peskerel"]


def voice(lines: int = 450, seed: int = 1, words: list[str] = INVENTED) -> str:
    """A text in a voice no bundled model knows: invented words in a few sentence shapes (about 3,500 tokens)."""
    rng = random.Random(seed)
    shapes = ["the {} {} over the {} .", "a {} and a {} , said the {} .", "no {} ever {} the {} !"]
    return "\n".join(rng.choice(shapes).format(*(rng.choice(words) for _ in range(3))) for _ in range(lines)) + "\n"


async def served(bot, guild):
    return await bot.models.model_for(guild.id)


async def continuations(double, channel, user, seed: str, n: int = 4) -> list[str]:
    replies = [
        await answer(await double.slash_command(channel, user, "continue", {"seed": seed, "words": 12, "variants": 2}))
        for _ in range(n)
    ]
    return [r.content for r in replies]


async def test_a_fresh_server_answers_in_its_own_voice_right_after_an_upload(world, make_bot):
    bot = await make_bot()
    double, alpha, general, ann = world.double, world.alpha, world.general, world.ann
    added = await answer(
        await double.slash_command(general, ann, "corpus add", {"file": ("voice.txt", voice().encode())})
    )
    assert "answers in its own voice" in added.content, added.content
    model = await served(bot, alpha)
    assert model.model is None and "zorblax" in model.tokenizer.vocab  # its instant n-gram model, no /train
    replies = await continuations(double, general, world.bob, "the zorblax", n=2)
    said = " ".join(r.split("**the zorblax**", 1)[-1] for r in replies)
    assert any(word in said for word in INVENTED), replies  # continued with the server's own words
    beta = await served(bot, world.beta)  # another server still gets the default model, not Alpha's words
    assert "zorblax" not in beta.tokenizer.vocab


async def wait_until_trained(double, bot, guild) -> None:
    async def idle():
        while bot.training.busy(guild.id):
            await asyncio.sleep(0.2)

    await asyncio.wait_for(idle(), TRAINING_TIMEOUT)


async def test_forget_me_reaches_the_served_model_at_once_and_a_retraining_without_the_text_follows(world, make_bot):
    bot = await make_bot()
    double, alpha, general, ann, bob = world.double, world.alpha, world.general, world.ann, world.bob
    await answer(await double.slash_command(general, ann, "corpus learn", {"channel": general}))
    for i in range(6):  # a word only bob ever wrote (first: the last tenth of the corpus is held out for validation)
        await double.send_message(general, bob, f"the quixotrel {INVENTED[i]} over the zorblax .")
    for _ in range(100):
        if sum("quixotrel" in t for t in await bot.store.corpus_texts(alpha.id)) == 6:
            break
        await asyncio.sleep(0.05)
    await answer(await double.slash_command(general, ann, "corpus add", {"file": ("voice.txt", voice().encode())}))
    trained = await double.slash_command(general, ann, "train", {"epochs": 1})
    await double.wait_for(
        lambda: "new model is in use" in (trained.content or "") or "failed" in (trained.content or ""),
        TRAINING_TIMEOUT,
        "the training to finish",
    )
    assert "new model is in use" in trained.content, trained.content
    before = await served(bot, alpha)
    assert before.model is not None and "quixotrel" in before.tokenizer.vocab  # the trained model saw bob's word

    forgot = await answer(await double.slash_command(general, bob, "forget-me"))
    assert forgot.ephemeral and "Removed 6 of your messages" in forgot.content, forgot.content
    assert "instant model, counted again without them" in forgot.content and "retraining without them" in forgot.content
    now = await served(bot, alpha)  # from the moment the answer came: a model that never saw the word
    assert now is not before and "quixotrel" not in now.tokenizer.vocab
    replies = await continuations(double, general, ann, "the zorblax")
    assert all("quixotrel" not in r for r in replies), replies
    refused = await answer(await double.slash_command(general, ann, "continue", {"seed": "quixotrel"}))
    assert "quixotrel" not in refused.content.replace("**quixotrel**", "")

    await wait_until_trained(double, bot, alpha)  # the retraining queued by the forget
    job = await bot.store.last_job(alpha.id)
    assert job.status == "succeeded" and job.requested_by == 0, job
    retrained = await served(bot, alpha)
    assert retrained.model is not None and "quixotrel" not in retrained.tokenizer.vocab
    assert await bot.models.trained_may_answer(alpha.id)  # a model trained without the text is served again
    replies = await continuations(double, general, ann, "the zorblax", n=2)
    assert all("quixotrel" not in r for r in replies), replies


async def test_a_forget_while_a_training_runs_stops_it_and_it_trains_again_without_the_text(world, make_bot):
    bot = await make_bot()
    double, alpha, general, ann, bob = world.double, world.alpha, world.general, world.ann, world.bob
    await answer(await double.slash_command(general, ann, "corpus learn", {"channel": general}))
    for i in range(6):
        await double.send_message(general, bob, f"the quixotrel {INVENTED[i]} over the zorblax .")
    for _ in range(100):
        if sum("quixotrel" in t for t in await bot.store.corpus_texts(alpha.id)) == 6:
            break
        await asyncio.sleep(0.05)
    await answer(await double.slash_command(general, ann, "corpus add", {"file": ("voice.txt", voice().encode())}))
    trained = await double.slash_command(general, ann, "train", {"epochs": 1})
    for _ in range(600):  # its process started: it has read the corpus with bob's messages
        ticket = bot.training.ticket(alpha.id)
        if ticket is not None and ticket.latest is not None:  # its process reported
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the training did not start")

    forgot = await answer(await double.slash_command(general, bob, "forget-me"))
    assert "so it starts again without them" in forgot.content, forgot.content
    await double.wait_for(
        lambda: "new model is in use" in (trained.content or "") or "failed" in (trained.content or ""),
        TRAINING_TIMEOUT,
        "the training to finish",
    )
    assert "new model is in use" in trained.content, trained.content
    jobs = [j for j in await bot.store.unfinished_jobs() if j.guild_id == alpha.id]
    last = await bot.store.last_job(alpha.id)
    assert jobs == [] and last.status == "succeeded" and last.requested_by == ann.id  # the same job, run again
    assert last.started_at > await bot.store.text_removed_at(alpha.id)  # its corpus was read after the forget
    model = await served(bot, alpha)
    assert model.model is not None and "quixotrel" not in model.tokenizer.vocab
    assert await bot.models.trained_may_answer(alpha.id)


async def test_unlearn_with_forget_removes_the_channel_and_its_threads_from_corpus_and_model(world, make_bot):
    bot = await make_bot()
    double, alpha, general, ann, bob = world.double, world.alpha, world.general, world.ann, world.bob
    ideas = alpha.channel("ideas")
    await answer(await double.slash_command(general, ann, "corpus learn", {"channel": ideas}))
    for i in range(4):
        await double.send_message(ideas, bob, f"the quixotrel {INVENTED[i]} over the zorblax .")
    thread = await double.add_thread(ideas, "a thread", bob)  # under #ideas: learned with it, so forgotten with it
    await double.wait_for(lambda: bot.get_guild(alpha.id).get_thread(thread.id), what="the thread in the bot's cache")
    for i in range(3):
        await double.send_message(thread, bob, f"the threadling {INVENTED[i]} over the zorblax .")
    for _ in range(100):
        texts = await bot.store.corpus_texts(alpha.id)
        if sum("quixotrel" in t for t in texts) == 4 and sum("threadling" in t for t in texts) == 3:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the channel's and the thread's messages were not all recorded: {texts}")
    await answer(await double.slash_command(general, ann, "corpus add", {"file": ("voice.txt", voice().encode())}))
    rebuilt = bot.models.instant.current(alpha.id)  # counted after the upload: the instant model saw them
    vocab = (await served(bot, alpha)).tokenizer.vocab
    assert rebuilt is not None and "quixotrel" in vocab and "threadling" in vocab

    record = await double.slash_command(general, ann, "corpus unlearn", {"channel": ideas, "forget": True})
    done = await answer(record)
    assert "Deleted the 7 messages recorded from it and its threads" in done.content, done.content
    assert "instant model, counted again without them" in done.content
    model = await served(bot, alpha)
    assert "quixotrel" not in model.tokenizer.vocab and "threadling" not in model.tokenizer.vocab
    texts = await bot.store.corpus_texts(alpha.id)
    assert not any("quixotrel" in t or "threadling" in t for t in texts)
    replies = await continuations(double, general, ann, "the zorblax", n=2)
    assert all("quixotrel" not in r and "threadling" not in r for r in replies), replies


async def test_clear_falls_back_to_the_default_model_at_once(world, make_bot):
    bot = await make_bot()
    double, alpha, general, ann = world.double, world.alpha, world.general, world.ann
    await answer(await double.slash_command(general, ann, "corpus add", {"file": ("voice.txt", voice().encode())}))
    assert "zorblax" in (await served(bot, alpha)).tokenizer.vocab
    asked = await answer(await double.slash_command(general, ann, "corpus clear"))
    done = await double.click_button(asked, "corpus-clear:confirm", ann)
    await done.wait_response()
    assert "bundled default model" in asked.content and "too small to train" in asked.content, asked.content
    assert "zorblax" not in (await served(bot, alpha)).tokenizer.vocab


async def test_live_messages_stop_being_recorded_at_the_size_cap_with_one_notice(world, make_bot):
    bot = await make_bot(max_corpus_mb=0.0002)  # 200 characters
    double, alpha, general, ann, bob = world.double, world.alpha, world.general, world.ann, world.bob
    await answer(await double.slash_command(general, ann, "corpus learn", {"channel": general}))
    for i in range(8):
        await double.send_message(general, bob, f"message number {i} with some forty characters")
    await double.wait_for(
        lambda: any("corpus is full" in m.content for m in double.sent_messages),
        10,
        "the notice that the corpus is full",
    )
    await asyncio.sleep(0.3)
    stats = await bot.store.corpus_stats(alpha.id)
    assert stats.characters <= 200 and stats.messages == 4  # the first four fit; nothing was dropped for later ones
    notices = [m for m in double.sent_messages if "corpus is full" in m.content]
    assert len(notices) == 1 and "/corpus clear" in notices[0].content


async def test_forget_me_with_nothing_recorded_changes_nothing(world, make_bot):
    bot = await make_bot()
    double, alpha, general, ann, bob = world.double, world.alpha, world.general, world.ann, world.bob
    await answer(await double.slash_command(general, ann, "corpus add", {"file": ("voice.txt", voice().encode())}))
    forgot = await answer(await double.slash_command(general, bob, "forget-me"))  # bob wrote nothing here
    assert "Removed 0 of your messages" in forgot.content and "unchanged" in forgot.content, forgot.content
    assert await bot.store.text_removed_at(alpha.id) is None and bot.training.ticket(alpha.id) is None
