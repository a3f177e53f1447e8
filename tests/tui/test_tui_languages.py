"""Compose screen on a tiny model of Chinese: no space between characters, a Han character is a whole word."""

from __future__ import annotations

import pytest
from testdata import CHINESE, TINY_MODEL, TINY_TRAIN
from tui_helpers import SIZE, ghost_ready, model_ready, wait_until

from tui.app import ContinuoApp
from tui.text import appended, next_word
from tui.widgets.candidates import CandidatesPanel
from tui.widgets.seed_editor import SeedEditor


@pytest.fixture(scope="module")
def chinese_model(tmp_path_factory):
    """A real tiny BiLSTM and n-gram model of an original Chinese text, trained for one epoch."""
    from core import ModelConfig, TrainConfig, load, train

    out = tmp_path_factory.mktemp("models") / "tiny-chinese"
    train(CHINESE * 12, out, ModelConfig(**TINY_MODEL), TrainConfig(**TINY_TRAIN), corpus_name="chinese")
    return load(out)


async def test_after_a_han_character_the_candidates_are_next_characters_and_join_without_spaces(chinese_model):
    app = ContinuoApp(chinese_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        editor = app.screen.query_one(SeedEditor)
        editor.append("明天我要去山")
        await pilot.press("上")
        await ghost_ready(pilot)
        text = "明天我要去山上"
        assert editor.text == text
        ghost = editor.completion
        assert ghost and " " not in ghost and "\x00" not in ghost  # no space put between characters

        panel = app.screen.query_one(CandidatesPanel)
        expected = chinese_model.candidates(text, app.config.candidates, partial=True)
        await wait_until(pilot, lambda: panel.candidates == expected, what="candidates for the text")
        assert panel.border_title == "Next word"  # 上 is a whole word, not the start of one to complete
        assert all(len(c.token) == 1 and c.token != " " for c in panel.candidates)

        await pilot.press("ctrl+right")  # one character of the ghost, not the whole clause
        word = next_word(ghost)
        assert len(word) == 1 and editor.text == text + word

        text = editor.text
        await ghost_ready(pilot)
        expected = chinese_model.candidates(text, app.config.candidates, partial=True)
        await wait_until(pilot, lambda: panel.candidates == expected, what="candidates for the longer text")
        first = panel.candidates[0].token
        await pilot.press("alt+1")
        assert appended(text, first, chinese_model.tokenizer) == first and editor.text == text + first
