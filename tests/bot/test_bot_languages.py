"""End to end through the Discord double: a server that writes Chinese is answered in Chinese, with no space put
between characters, a seed in a script it never wrote gets one line naming the script, and its corpus is counted by
the same segmentation that trains it."""

from __future__ import annotations

from continuo_world import answer
from testdata import CHINESE

from core import count_tokens


async def test_a_chinese_upload_is_answered_in_chinese_without_inserted_spaces(world, make_bot):
    bot = await make_bot()
    double, alpha, general, ann = world.double, world.alpha, world.general, world.ann
    text = CHINESE * 12  # about 2,600 tokens: one per character
    added = await answer(
        await double.slash_command(general, ann, "corpus add", {"file": ("chinese.txt", text.encode())})
    )
    assert "answers in its own voice" in added.content, added.content
    model = await bot.models.model_for(alpha.id)
    assert model.model is None and {"春", "风", "。"} <= set(model.tokenizer.vocab)  # its instant model, per character
    assert "春风" not in text
    for _ in range(3):
        reply = await answer(await double.slash_command(general, world.bob, "continue", {"seed": "春风", "words": 12}))
        assert reply.content.startswith("**春风**"), reply.content
        said = reply.content.split("**春风**", 1)[1]
        assert said and " " not in said and "\x00" not in said, reply.content
        assert sum("\u4e00" <= c <= "\u9fff" for c in said) >= len(said) // 2, reply.content
    thai = await answer(await double.slash_command(general, world.bob, "continue", {"seed": "ไปไหนมา"}))
    assert thai.ephemeral and "the model has never seen Thai text" in thai.content, thai.content
    stats = await answer(await double.slash_command(general, ann, "corpus stats"))
    assert f"{count_tokens(text) + 1:,} tokens" in stats.content, stats.content  # + the line break between entries
    assert count_tokens(text) == len(text.replace("\n", "")) + text.count("\n")  # a token per character
