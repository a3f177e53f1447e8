"""Models screen: the table of stored models with their cards; switch, rename, delete after confirmation."""

from __future__ import annotations

import shutil

from tui_helpers import SIZE, model_ready, notified, wait_until

from core import ModelStore
from tui.app import ContinuoApp
from tui.screens.dialogs import ConfirmScreen, PromptScreen
from tui.screens.models import ModelsScreen


def rows(screen: ModelsScreen) -> list[list[str]]:
    table = screen.query_one("DataTable")
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def open_models(pilot) -> ModelsScreen:
    await pilot.press("f4")
    assert isinstance(pilot.app.screen, ModelsScreen)
    return pilot.app.screen


async def test_the_table_lists_models_with_their_cards_and_marks_the_active_one(stored_tiny, no_default_model):
    shutil.copytree(stored_tiny, stored_tiny.with_name("other"))
    app = ContinuoApp("tiny")
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        screen = await open_models(pilot)
        table = rows(screen)
        assert [r[1] for r in table] == ["other", "tiny"]
        active = next(r for r in table if r[1] == "tiny")
        assert active[0] == "●" and active[2] == "verse" and float(active[5]) > 1
        assert next(r for r in table if r[1] == "other")[0] == ""


async def test_enter_switches_the_active_model(stored_tiny, no_default_model):
    shutil.copytree(stored_tiny, stored_tiny.with_name("other"))
    app = ContinuoApp("tiny")
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        screen = await open_models(pilot)
        await pilot.press("enter")  # the cursor starts on the first row: "other"
        await wait_until(pilot, lambda: app.model_name == "other", what="the switch")
        assert rows(screen)[0][0] == "●" and rows(screen)[1][0] == ""


async def test_rename_asks_for_a_name_and_renames(stored_tiny, no_default_model):
    app = ContinuoApp("tiny")
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        screen = await open_models(pilot)
        await pilot.press("r")
        assert isinstance(app.screen, PromptScreen)
        await pilot.press("ctrl+a", "ctrl+k", *"harbour", "enter")
        assert [r[1] for r in rows(screen)] == ["harbour"]
        assert app.model_name == "harbour" and app.model_path == ModelStore().path("harbour")
        await pilot.press("r", "ctrl+a", "ctrl+k", *"bad/name", "enter")
        await notified(pilot, "bad model name")


async def test_delete_asks_first_and_no_keeps_the_model(stored_tiny, no_default_model):
    app = ContinuoApp("tiny")
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        screen = await open_models(pilot)
        await pilot.press("d")
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("n")
        assert stored_tiny.is_dir() and len(rows(screen)) == 1
        await pilot.press("d", "y")
        assert not stored_tiny.exists() and rows(screen) == []
        await notified(pilot, "stays loaded")
        assert app.model is not None


async def test_an_unreadable_model_is_listed_and_using_it_is_an_error(stored_tiny, no_default_model):
    broken = stored_tiny.with_name("broken")
    broken.mkdir()
    app = ContinuoApp("tiny")
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        screen = await open_models(pilot)
        first = rows(screen)[0]
        assert first[1] == "broken" and first[-1].startswith("unreadable: not a complete model bundle")
        await pilot.press("enter")
        await notified(pilot, "not a complete model bundle")
        assert app.model_name == "tiny"
