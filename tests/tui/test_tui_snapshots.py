"""Snapshots of each screen (pytest-textual-snapshot), drawn from a fixed-weight model so they never vary.

Update them with `pytest tests/tui/test_tui_snapshots.py --snapshot-update` after a deliberate change.
"""

from __future__ import annotations

import shutil
from dataclasses import replace

import pytest
from tui_helpers import SIZE, ghost_ready, model_ready, wait_until

from tui.app import ContinuoApp
from tui.widgets.candidates import CandidatesPanel
from tui.widgets.seed_editor import SeedEditor
from tui.widgets.variants import VariantCard


@pytest.fixture
def fixed_app(fixed_model_path, continuo_home, no_default_model):
    shutil.copytree(fixed_model_path, continuo_home / "models" / "fixed")
    return ContinuoApp("fixed")


async def steady(pilot) -> None:
    """Stop cursors blinking, so the picture does not depend on the moment it is taken."""
    for widget in pilot.app.screen.query("TextArea, Input"):
        widget.cursor_blink = False
        # TextArea's line cache does not tell "blinked off" from "not blinking": drop lines drawn blinked off
        widget.notify_style_update()
        widget.refresh()
    await pilot.pause()


async def type_and_settle(pilot, text: str) -> None:
    await model_ready(pilot)
    await steady(pilot)
    pilot.app.screen.query_one(SeedEditor).append(text[:-1])
    await pilot.press("space" if text[-1] == " " else text[-1])
    await ghost_ready(pilot)
    panel = pilot.app.screen.query_one(CandidatesPanel)
    expected = pilot.app.model.candidates(text, pilot.app.config.candidates, partial=True)
    await wait_until(pilot, lambda: panel.candidates == expected, what="candidates")


def test_compose_shows_ghost_text_and_candidates(snap_compare, fixed_app):
    async def run_before(pilot):
        await type_and_settle(pilot, "The harbour at Wenlow,\nthe ")

    assert snap_compare(fixed_app, terminal_size=SIZE, run_before=run_before)


def test_compose_with_variants_and_an_unfinished_word(snap_compare, fixed_app):
    async def run_before(pilot):
        await model_ready(pilot)
        pilot.app.screen.query_one("#decoding").query_one("#seed").value = "5"
        await type_and_settle(pilot, "The lamp at Carrick t")
        await pilot.press("ctrl+g")
        cards = list(pilot.app.screen.query(VariantCard))
        await wait_until(pilot, lambda: all(c.text for c in cards), what="variants")

    assert snap_compare(fixed_app, terminal_size=SIZE, run_before=run_before)


def test_compose_shows_a_bad_decoding_option(snap_compare, fixed_app):
    async def run_before(pilot):
        await model_ready(pilot)
        await steady(pilot)
        pilot.app.screen.query_one("#top_p").value = "1.5"
        await pilot.pause()

    assert snap_compare(fixed_app, terminal_size=SIZE, run_before=run_before)


def test_train_screen(snap_compare, fixed_app):
    async def run_before(pilot):
        await model_ready(pilot)
        await pilot.press("f3")
        await steady(pilot)  # the train screen's own inputs

    assert snap_compare(fixed_app, terminal_size=SIZE, run_before=run_before)


def test_models_screen(snap_compare, fixed_app, continuo_home):
    (continuo_home / "models" / "broken").mkdir(parents=True)

    async def run_before(pilot):
        await model_ready(pilot)
        await pilot.press("f4")
        await pilot.pause()

    assert snap_compare(fixed_app, terminal_size=SIZE, run_before=run_before)


def test_help_screen(snap_compare, fixed_app):
    async def run_before(pilot):
        await model_ready(pilot)
        await pilot.press("f1")
        await pilot.pause()

    assert snap_compare(fixed_app, terminal_size=SIZE, run_before=run_before)


def test_chat_screen(snap_compare, fixed_app):
    async def run_before(pilot):
        await model_ready(pilot)
        pilot.app.use_generation(replace(pilot.app.generation, seed=3))
        await pilot.press("f5")
        screen = pilot.app.screen
        await wait_until(pilot, lambda: screen.shape is not None, what="the model's turn format")
        screen.query_one("#turn").value = "The harbour at Wenlow is quiet tonight."
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.answers == 1, what="the model's answer")
        screen.query_one("#turn").value = "Dear Mara,"
        await steady(pilot)

    assert snap_compare(fixed_app, terminal_size=SIZE, run_before=run_before)
