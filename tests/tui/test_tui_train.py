"""Train screen: a real run in its own process completes and its model appears; cancel keeps the old model;
bad files and too little text are one-line error notifications."""

from __future__ import annotations

import json

import pytest
from tui_helpers import SIZE, model_ready, notifications, notified, wait_until

from core import ModelStore
from tui.app import ContinuoApp
from tui.screens.train import TrainScreen, unique_name
from tui.widgets.charts import MetricChart


async def open_train(pilot, **fields) -> TrainScreen:
    await pilot.press("f3")
    screen = pilot.app.screen
    assert isinstance(screen, TrainScreen)
    for name, value in fields.items():
        if name == "size":
            screen.query_one("#size").value = value
        else:
            screen.query_one(f"#{name}").value = value
    await pilot.pause()
    return screen


async def run_ended(pilot, screen: TrainScreen, timeout: float = 120) -> None:
    await wait_until(pilot, lambda: not screen.running, timeout=timeout, what="the training run to end")


@pytest.mark.slow
async def test_a_training_run_completes_and_its_model_appears_and_can_be_used(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        screen = await open_train(pilot, source="verse", name="fresh", epochs="1", size="tiny")
        await pilot.press("ctrl+s")
        assert screen.running
        await run_ended(pilot, screen)
        assert "fresh" in {m.name for m in ModelStore().list()}
        assert screen.query_one("#loss", MetricChart).values  # live loss came through
        assert screen.query_one("#val", MetricChart).values  # and the epoch's validation perplexity
        await notified(pilot, "model fresh is ready")
        await pilot.press("f4")
        table = app.screen.query_one("DataTable")
        assert "fresh" in [str(table.get_row_at(i)[1]) for i in range(table.row_count)]
        await pilot.press("f3", "ctrl+n")
        await wait_until(pilot, lambda: app.model_name == "fresh", what="the new model to become active")
        assert app.model.card.corpus == "verse" and app.screen.id != "train"


@pytest.mark.slow
async def test_cancel_stops_the_run_and_keeps_the_previous_model(tiny_model, stored_tiny):
    card_before = json.loads((stored_tiny / "card.json").read_text())
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        screen = await open_train(pilot, source="verse", name="tiny", epochs="50", size="tiny")
        await pilot.press("ctrl+s")
        loss = screen.query_one("#loss", MetricChart)
        await wait_until(pilot, lambda: loss.values, timeout=120, what="the first progress report")
        await pilot.press("escape")
        await run_ended(pilot, screen)
        assert "cancelled" in str(screen.query_one("#status").render())
        await notified(pilot, "cancelled", "unchanged")
    assert json.loads((stored_tiny / "card.json").read_text()) == card_before
    assert [m.name for m in ModelStore().list(include_default=False)] == ["tiny"]


@pytest.mark.slow
async def test_an_instant_n_gram_model_can_be_used_while_the_neural_one_trains(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        screen = await open_train(pilot, source="verse", name="quick", epochs="50", size="tiny")
        await pilot.press("ctrl+s")
        await wait_until(
            pilot, lambda: any("instant" in n for n in notifications(app)), timeout=120, what="the instant model"
        )
        assert screen.running
        await pilot.press("ctrl+n")
        await wait_until(
            pilot,
            lambda: app.model is not None and app.model.model is None,
            timeout=60,
            what="the instant model to become active",
        )
        assert app.model.ngram is not None and app.model.generate("The sea")[0].strip()
        await pilot.press("f3", "escape")
        await run_ended(pilot, screen)
    assert "quick" not in {m.name for m in ModelStore().list()}  # cancelled: no neural model was saved


async def test_a_bad_file_is_an_error_notification_and_nothing_starts(tiny_model, tmp_path):
    binary = tmp_path / "photo.txt"
    binary.write_bytes(b"\x89PNG\x00\x00\x01binary")
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        screen = await open_train(pilot, source=str(binary), name="photo", epochs="1", size="tiny")
        await pilot.press("ctrl+s")
        await run_ended(pilot, screen)
        await notified(pilot, "looks like a binary file")
        screen.query_one("#source").value = str(tmp_path / "missing.txt")
        await pilot.press("ctrl+s")
        await run_ended(pilot, screen)
        await notified(pilot, "no such file")
        screen.query_one("#epochs").value = "0"
        await pilot.press("ctrl+s")
        await notified(pilot, "epochs must be at least 1")
        assert not screen.running
        screen.query_one("#epochs").value = "1"
        screen.query_one("#name").value = "no/slashes"
        await pilot.press("ctrl+s")
        await notified(pilot, "bad model name")
        assert not screen.running
    assert not ModelStore().list(include_default=False)


@pytest.mark.slow
async def test_too_little_text_is_reported_by_the_training_process(tiny_model, tmp_path):
    short = tmp_path / "short.txt"
    short.write_text("Only a few words here, not nearly enough to learn from.\n")
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        screen = await open_train(pilot, source=str(short), name="short", epochs="1", size="tiny")
        await pilot.press("ctrl+s")
        await run_ended(pilot, screen)
        await notified(pilot, "at least 2,000 are needed")
    assert not ModelStore().list(include_default=False)


async def test_a_corpus_given_on_the_command_line_opens_the_train_screen(tiny_model, stored_tiny):
    app = ContinuoApp(tiny_model, train_source="chat")
    async with app.run_test(size=SIZE) as pilot:
        await wait_until(pilot, lambda: isinstance(app.screen, TrainScreen), what="the train screen")
        assert app.screen.query_one("#source").value == "chat"
        assert app.screen.query_one("#name").value == "chat"
    assert unique_name(ModelStore(), "tiny") == "tiny-2"


async def test_the_source_field_completes_corpus_names_and_paths(tmp_path, monkeypatch):
    from tui.widgets.path_input import SourceSuggester

    (tmp_path / "poems").mkdir()
    (tmp_path / "poems" / "winter.txt").write_text("snow")
    monkeypatch.chdir(tmp_path)
    suggester = SourceSuggester(["verse", "chat"])
    assert await suggester.get_suggestion("ve") == "verse"
    assert await suggester.get_suggestion("po") == "poems/"
    assert await suggester.get_suggestion("poems/w") == "poems/winter.txt"
    assert await suggester.get_suggestion(str(tmp_path / "poems") + "/") == str(tmp_path / "poems" / "winter.txt")
    assert await suggester.get_suggestion("nothing-like-it") is None


async def test_browse_picks_the_text_file_from_a_directory_tree(tiny_model, tmp_path, monkeypatch):
    from textual.widgets import DirectoryTree

    from tui.screens.dialogs import FilePickerScreen

    (tmp_path / "poem.txt").write_text("a poem")
    monkeypatch.chdir(tmp_path)
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_train(pilot)
        await pilot.press("ctrl+b")
        assert isinstance(app.screen, FilePickerScreen)
        tree = app.screen.query_one(DirectoryTree)
        await wait_until(pilot, lambda: tree.root.children, what="the folder to be read")
        tree.focus()
        await pilot.press("down", "enter")
        await wait_until(pilot, lambda: app.screen is screen, what="the picker to close")
        assert screen.query_one("#source").value == str(tmp_path / "poem.txt")


@pytest.mark.slow
async def test_sigterm_quits_and_the_running_training_stops_with_its_checkpoint_kept(tiny_model, continuo_home):
    import multiprocessing
    import os
    import signal
    import time

    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        screen = await open_train(pilot, source="verse", name="stopped", epochs="30", size="tiny")
        await pilot.press("ctrl+s")
        checkpoints = continuo_home / "checkpoints" / "stopped"
        await wait_until(
            pilot, lambda: list(checkpoints.rglob("state.npz")), timeout=180, what="the first epoch's checkpoint"
        )
        assert screen.running
        os.kill(os.getpid(), signal.SIGTERM)  # the app's handler: as a service manager stops it
        await wait_until(pilot, lambda: not app.is_running, timeout=30, what="the app to quit")
    deadline = time.monotonic() + 30
    while multiprocessing.active_children():  # the training process does not outlive the app
        assert time.monotonic() < deadline, multiprocessing.active_children()
        time.sleep(0.1)
    assert list(checkpoints.rglob("state.npz")) and "stopped" not in {m.name for m in ModelStore().list()}
