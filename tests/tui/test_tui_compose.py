"""Compose screen: ghost text from a real tiny model, Tab and ctrl+→, candidates, variants, decoding options."""

from __future__ import annotations

from dataclasses import replace

from tui_helpers import SIZE, ghost_ready, model_ready, notifications, notified, wait_until

from tui.app import ContinuoApp
from tui.text import NEWLINE_MARK, appended, next_word
from tui.widgets.candidates import CandidatesPanel
from tui.widgets.decoding import DecodingControls
from tui.widgets.seed_editor import SeedEditor
from tui.widgets.variants import VariantCard


def ghost_config(app):
    """The options the app completes ghost text with (a fixed seed unless one is set)."""
    return replace(app.generation, seed=app.config.ghost_seed if app.generation.seed is None else app.generation.seed)


def keys(text: str) -> list[str]:
    return ["enter" if c == "\n" else "space" if c == " " else c for c in text]


async def type_seed(pilot, text: str) -> SeedEditor:
    """Put `text` in the seed editor: all but its last character as one edit (fast), then a real key press."""
    editor = pilot.app.screen.query_one(SeedEditor)
    editor.append(text[:-1])
    await pilot.press(*keys(text[-1:]))
    await ghost_ready(pilot)
    return editor


async def candidates_for(pilot, text: str) -> CandidatesPanel:
    panel = pilot.app.screen.query_one(CandidatesPanel)
    expected = pilot.app.model.candidates(text, pilot.app.config.candidates, partial=True)
    await wait_until(pilot, lambda: panel.candidates == expected, what="candidates for the text")
    return panel


async def test_typing_shows_the_models_continuation_as_ghost_text(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        editor = app.screen.query_one(SeedEditor)
        text = "The harbour at "
        await pilot.press(*keys(text))  # every key typed, as a user would
        await ghost_ready(pilot)
        # the model's completion of the text, or of a shorter text typed on the way whose ghost the keys followed
        prefixes = [text[:i] for i in range(1, len(text) + 1)]
        fulls = [prefix + tiny_model.complete(prefix, ghost_config(app)) for prefix in prefixes]
        ghosts = [full[len(text) :] for full in fulls if full.startswith(text)]
        assert editor.completion and editor.completion in ghosts
        assert editor.suggestion == editor.completion.replace("\n", NEWLINE_MARK)  # drawn on one line after the cursor
        assert app.model_name == "tiny-verse" and app.sub_title == "tiny-verse"


async def test_tab_accepts_the_whole_ghost_and_a_new_one_follows(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        editor = await type_seed(pilot, "The lamp ")
        ghost = editor.completion
        await pilot.press("tab")
        assert editor.text == "The lamp " + ghost
        await ghost_ready(pilot)
        assert editor.completion == tiny_model.complete(editor.text, ghost_config(app))


async def test_ctrl_right_accepts_only_the_next_word(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        editor = await type_seed(pilot, "The sea ")
        ghost = editor.completion
        await pilot.press("ctrl+right")
        word = next_word(ghost)
        assert word.strip() and len(word) < len(ghost)
        assert editor.text == "The sea " + word
        assert editor.completion == ghost[len(word) :]  # the rest of the same ghost stays


async def test_the_ghost_shows_only_with_the_cursor_at_the_end_and_tab_without_one_moves_on(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        editor = await type_seed(pilot, "The sea ")
        assert editor.suggestion
        await pilot.press("left")
        assert editor.suggestion == "" and editor.completion  # hidden, not forgotten
        await pilot.press("end")
        assert editor.suggestion == editor.completion.replace("\n", NEWLINE_MARK)
        await pilot.press("ctrl+l", "tab")  # nothing to accept: Tab moves the focus on
        assert not editor.has_focus and app.screen.focused is app.screen.query(VariantCard).first()


def test_the_next_word_of_a_ghost_is_a_word_or_a_mark_with_the_space_before_it():
    assert next_word(" harbour, and") == " harbour"
    assert next_word(", and") == ","
    assert next_word("\nand the") == "\nand"
    assert next_word("our at Wenlow") == "our"


async def test_typed_characters_that_match_the_ghost_keep_it(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        editor = await type_seed(pilot, "The harbour ")
        ghost = editor.completion
        await pilot.press(*keys(ghost[:2]))
        assert editor.answered_for == editor.text and editor.completion == ghost[2:]


async def test_picking_a_candidate_by_number_or_click_appends_it(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        await type_seed(pilot, "The tide ")
        panel = await candidates_for(pilot, "The tide ")
        editor = app.screen.query_one(SeedEditor)
        second = panel.candidates[1].token
        await pilot.press("alt+2")
        assert editor.text == "The tide " + appended("The tide ", second, tiny_model.tokenizer)
        assert editor.text.endswith(second)
        text = editor.text
        panel = await candidates_for(pilot, text)
        first = panel.candidates[0].token
        await pilot.click(CandidatesPanel, offset=(4, 1))  # the first row, inside the border
        assert editor.text == text + appended(text, first, tiny_model.tokenizer)


async def test_an_unfinished_word_lists_its_completions_and_picking_one_finishes_it(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        await type_seed(pilot, "The har")
        panel = await candidates_for(pilot, "The har")
        assert panel.candidates and all(c.token.startswith("har") for c in panel.candidates)
        assert "har" in panel.border_title
        word = panel.candidates[0].token
        panel.focus()
        await pilot.press("1")  # number keys pick when the panel has focus
        assert app.screen.query_one(SeedEditor).text == "The " + word


def test_appended_spaces_tokens_as_the_tokenizer_joins_them(tiny_model):
    tok = tiny_model.tokenizer
    assert appended("The sea", ",", tok) == ","
    assert appended("The sea,", "and", tok) == " and"
    assert appended("The sea ", "and", tok) == "and"
    assert appended("The sea", "\n", tok) == "\n"
    assert appended("The sea\n", "And", tok) == "And"
    assert appended("The se", "sea", tok) == "a"
    assert appended("", "The", tok) == "The"


async def test_line_breaks_are_kept_in_the_seed_and_drawn_as_marks(tiny_model):
    from core import Candidate
    from tui.widgets.candidates import row

    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        editor = await type_seed(pilot, "The harbour at Wenlow,\nthe ")
        assert editor.text == "The harbour at Wenlow,\nthe "
        assert editor.completion == tiny_model.complete(editor.text, ghost_config(app))
        assert "\n" not in editor.suggestion
    assert str(row(1, Candidate("\n", 0.25), 0.5)).startswith(f"1 {NEWLINE_MARK} ")


async def test_variants_are_generated_side_by_side_copied_and_appended(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        editor = await type_seed(pilot, "The boats ")
        cards = list(app.screen.query(VariantCard))
        await pilot.press("ctrl+g")
        await wait_until(pilot, lambda: all(c.text for c in cards), what="variants")
        first = [c.text for c in cards]
        assert len(cards) == app.config.variants == 3 and len(set(first)) > 1
        await pilot.press("ctrl+g")  # again: regenerated with fresh seeds
        await wait_until(pilot, lambda: [c.text for c in cards] != first, what="new variants")
        cards[1].focus()
        await pilot.press("c")
        assert app.clipboard == cards[1].text
        await pilot.press("enter")
        assert editor.text == "The boats " + cards[1].text
        assert editor.has_focus


async def test_greedy_variants_are_the_best_beams(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        await type_seed(pilot, "The boats ")
        app.screen.query_one("#do_sample").toggle()
        await wait_until(pilot, lambda: not app.generation.do_sample, what="greedy decoding")
        await pilot.press("ctrl+g")
        cards = list(app.screen.query(VariantCard))
        await wait_until(pilot, lambda: all(c.text for c in cards), what="variants")
        expected = tiny_model.generate("The boats ", app.generation, num_beams=3, num_return_sequences=3)
        assert [c.text for c in cards] == expected


async def test_decoding_controls_validate_with_the_cores_messages(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        controls = app.screen.query_one(DecodingControls)
        temperature = controls.query_one("#temperature")
        temperature.value = "0"
        await pilot.pause()
        error = controls.query_one("#decoding-error")
        assert "temperature must be above 0" in str(error.render())
        assert temperature.has_class("-invalid") and app.generation.temperature == 0.8  # unchanged
        temperature.value = "abc"
        await pilot.pause()
        assert "temperature must be a number" in str(error.render()) and temperature.has_class("-invalid")
        temperature.value = "1.3"
        top_p = controls.query_one("#top_p")
        top_p.value = "2"
        await pilot.pause()
        assert top_p.has_class("-invalid") and not temperature.has_class("-invalid")  # the field the error names
        top_p.value = "1.0"
        controls.query_one("#max_new_tokens").value = "4"
        await pilot.pause()
        assert app.generation.temperature == 1.3 and app.generation.max_new_tokens == 4
        assert not temperature.has_class("-invalid") and not error.has_class("-shown")
        editor = await type_seed(pilot, "The sea ")
        assert editor.completion == tiny_model.complete("The sea ", ghost_config(app))


async def test_unknown_words_give_no_ghost_but_still_candidates(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        editor = await type_seed(pilot, "Zqxv ")
        assert editor.completion == "" and editor.suggestion == ""
        panel = app.screen.query_one(CandidatesPanel)
        # an unknown word is context the model knows (the unknown token): it still guesses what follows
        await wait_until(pilot, lambda: panel.option_count > 1, what="candidates after an unknown word")
        assert not [n for n in notifications(app) if "Traceback" in n]


async def test_an_unexpected_failure_is_a_notification_not_a_crash(tiny_model, monkeypatch):
    def boom(*args, **kwargs):
        raise RuntimeError("boom")

    monkeypatch.setattr(tiny_model, "generate", boom)
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        await type_seed(pilot, "The sea ")
        await pilot.press("ctrl+g")
        assert await notified(pilot, "variants failed") == "variants failed: RuntimeError: boom"
        assert app.is_running


async def test_without_a_default_model_the_app_opens_and_says_so(no_default_model):
    app = ContinuoApp()
    async with app.run_test(size=SIZE) as pilot:
        await notified(pilot, "default model is not trained yet")
        editor = app.screen.query_one(SeedEditor)
        await pilot.press("T", "h", "e")
        await pilot.pause(0.1)
        assert app.model is None and editor.text == "The" and editor.suggestion == ""
        await pilot.press("ctrl+g")
        await wait_until(
            pilot,
            lambda: sum("default model is not trained yet" in n for n in notifications(app)) == 2,
            what="the same notification again for ctrl+g",
        )


async def test_a_corrupt_model_is_an_error_notification(tmp_path):
    bundle = tmp_path / "broken"
    bundle.mkdir()
    for name in ("model.keras", "vocab.json", "config.json", "card.json"):
        (bundle / name).write_text("not what it should be")
    app = ContinuoApp(bundle)
    async with app.run_test(size=SIZE) as pilot:
        await notified(pilot, "corrupt", "retrain")
        assert app.model is None and app.is_running
