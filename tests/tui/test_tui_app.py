"""App-wide: command palette entries for every action, the help screen, the CLI, stale-answer dropping."""

from __future__ import annotations

import argparse
import asyncio
import threading

import pytest
from tui_helpers import SIZE, model_ready, wait_until

from core import ContinuoError
from tui.app import ContinuoApp
from tui.cli import register, resolve_target
from tui.gate import ModelGate, Stale
from tui.screens.help import HelpScreen, help_markdown
from tui.suggester import ModelSuggester


async def test_every_bound_action_is_in_the_command_palette(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Variants", "Accept", "Word", "Pick word", "Clear", "Help", "Train", "Models"} <= titles
        await pilot.press("f3")
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Start", "Cancel", "Use new", "Browse"} <= titles
        await pilot.press("f4")
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Use", "Rename", "Delete", "Refresh"} <= titles


async def test_palette_commands_run_their_actions_and_switch_models(tiny_model, stored_tiny, no_default_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        await commands["Models"].callback()
        await pilot.pause()
        assert app.current_mode == "models"
        commands["Use model tiny"].callback()
        await wait_until(pilot, lambda: app.model_path == stored_tiny, what="the switch to the stored model")
        assert "Use model tiny" not in {c.title for c in app.get_system_commands(app.screen)}


async def test_the_help_screen_opens_lists_the_keys_and_closes(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("f1")
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)
    text = help_markdown()
    for key in ("ctrl+g", "alt+1…9", "ctrl+s", "escape", "f4", "tab"):
        assert f"`{key}`" in text


def test_the_tui_command_registers_with_the_continuo_cli():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["tui", "verse"])
    assert args.model == "verse" and callable(args.run)
    assert parser.parse_args(["tui"]).model is None


def test_model_argument_is_a_model_a_corpus_or_a_text_file(stored_tiny, tiny_model_path, tmp_path):
    assert resolve_target(None) == (None, None)
    assert resolve_target("tiny") == (stored_tiny, None)
    assert resolve_target(str(tiny_model_path)) == (tiny_model_path, None)
    assert resolve_target("verse") == (None, "verse")
    text = tmp_path / "mine.txt"
    text.write_text("words")
    assert resolve_target(str(text)) == (None, str(text))
    with pytest.raises(ContinuoError, match="not a model, a bundled corpus or a text file"):
        resolve_target("no-such-thing")


def test_python_m_tui_prints_a_one_line_error_for_a_bad_model(capsys):
    from tui.__main__ import main

    assert main(["no-such-thing"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("continuo: error: 'no-such-thing' is not a model") and err.count("\n") == 1


async def test_the_gate_drops_calls_a_newer_one_superseded():
    gate, release, ran = ModelGate(), threading.Event(), []

    def slow(tag):
        release.wait(5)
        ran.append(tag)
        return tag

    first = asyncio.create_task(gate.run("ghost", slow, "first"))
    await asyncio.sleep(0.05)  # first is running in its thread now
    second = asyncio.create_task(gate.run("ghost", slow, "second"))
    other = asyncio.create_task(gate.run("candidates", slow, "other lane"))
    third = asyncio.create_task(gate.run("ghost", slow, "third"))
    await asyncio.sleep(0.05)
    release.set()
    assert await first == "first" and await third == "third" and await other == "other lane"
    with pytest.raises(Stale):
        await second
    assert ran == ["first", "other lane", "third"]  # one at a time, in order, without the stale call


async def test_an_abandonable_call_stops_once_a_newer_one_waits():
    gate, started, steps = ModelGate(), threading.Event(), []

    def long_job(superseded, tag):
        started.set()
        for step in range(500):
            if superseded():
                return None
            steps.append(step)
            threading.Event().wait(0.01)
        return tag

    first = asyncio.create_task(gate.run_abandonable("ghost", long_job, "first"))
    await asyncio.to_thread(started.wait, 5)
    second = asyncio.create_task(gate.run_abandonable("ghost", lambda superseded: "second"))
    assert await second == "second"
    with pytest.raises(Stale):
        await first
    assert len(steps) < 500  # it gave up early


async def test_the_suggester_returns_the_whole_value_and_caches_per_model_and_options(tiny_model):
    from dataclasses import replace

    from tui.config import friendly_generation

    suggester = ModelSuggester(ModelGate(), ghost_seed=3)
    assert await suggester.get_suggestion("The sea") is None  # no model yet
    suggester.use(tiny_model, friendly_generation())
    expected = tiny_model.complete("The sea ", replace(friendly_generation(), seed=3))
    assert await suggester.get_suggestion("The sea ") == "The sea " + expected
    assert await suggester.get_suggestion("The sea ") == "The sea " + expected and suggester.model_calls == 1
    suggester.use(tiny_model, replace(friendly_generation(), max_new_tokens=2))
    shorter = await suggester.completion("The sea ")
    assert suggester.model_calls == 2 and shorter == tiny_model.complete(
        "The sea ", max_new_tokens=2, seed=3, do_sample=True, temperature=0.8, top_p=0.9
    )
    assert await suggester.get_suggestion("   ") is None
