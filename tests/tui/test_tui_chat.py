"""Chat screen: a turn written, the model's next turn streamed word by word; regenerate, edit, clear, save."""

from __future__ import annotations

import threading
import time
from dataclasses import replace

from tui_helpers import SIZE, model_ready, notified, wait_until

from core import Conversation, GenerationConfig, Turn, TurnFormat, build_instant, load
from tui.app import ContinuoApp
from tui.config import TuiConfig
from tui.screens.chat import ChatScreen, TurnView
from tui.screens.dialogs import PromptScreen

SEEDED = TuiConfig(generation=GenerationConfig.readable(max_new_tokens=12, seed=4))


async def open_chat(pilot) -> ChatScreen:
    await model_ready(pilot)
    await pilot.press("f5")
    screen = pilot.app.screen
    assert isinstance(screen, ChatScreen)
    await wait_until(pilot, lambda: screen.shape is not None, what="the model's turn format")
    return screen


async def send(pilot, screen: ChatScreen, text: str) -> None:
    answers = screen.answers
    screen.query_one("#turn").value = text
    await pilot.press("enter")
    await wait_until(pilot, lambda: screen.answers > answers, what="the model's answer")


def expected_answer(app, turns: list[Turn]) -> Turn:
    """What the core's conversation answers, with the options the screen decodes with."""
    model = app.model
    shape = TurnFormat.of(model)
    config = replace(app.generation, max_new_tokens=shape.turn_tokens, stop_at=None)
    return Conversation(model, turns).reply(config)


async def test_a_turn_gets_the_models_next_turn_word_by_word(tiny_model, monkeypatch):
    pieces: list[str] = []
    add = TurnView.add

    def recording(self, piece, speaker):
        pieces.append(piece)
        add(self, piece, speaker)

    monkeypatch.setattr(TurnView, "add", recording)
    app = ContinuoApp(tiny_model, config=SEEDED)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, screen, "The harbour at Wenlow is quiet tonight.")
        you, model = screen.views
        assert (you.label, you.turn.text, you.by_model) == ("You", "The harbour at Wenlow is quiet tonight.", False)
        answer = expected_answer(app, [you.turn])
        assert model.by_model and model.label == "tiny-verse" and model.turn == answer and answer.text
        assert len(pieces) > 1 and "".join(pieces) == answer.text  # shown as each word was chosen
        assert "\n\n" not in answer.text  # a verse turn: one stanza
        # a second turn: the answer reads the whole conversation
        await send(pilot, screen, "And the lamp?")
        turns = [v.turn for v in screen.views]
        assert len(turns) == 4 and turns[3] == expected_answer(app, turns[:3])


async def test_keystrokes_never_wait_for_the_model(tiny_model, monkeypatch):
    slow, released = threading.Event(), threading.Event()
    next_log_probs = type(tiny_model).next_log_probs

    def slow_step(self, rows, written=None):
        slow.set()
        released.wait(10)  # the model is busy until the test lets it go
        return next_log_probs(self, rows, written)

    app = ContinuoApp(tiny_model, config=SEEDED)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot)
        monkeypatch.setattr(type(tiny_model), "next_log_probs", slow_step)
        screen.query_one("#turn").value = "The tide"
        await pilot.press("enter")
        await wait_until(pilot, slow.is_set, what="the model to start")
        start = time.monotonic()
        await pilot.press(*"and then")
        assert screen.query_one("#turn").value == "and then" and time.monotonic() - start < 5
        assert screen.answering  # still deciding its first word while the keys went in
        released.set()
        await wait_until(pilot, lambda: screen.answers == 1, what="the answer")


async def test_regenerate_edit_and_resend_and_clear(tiny_model):
    app = ContinuoApp(tiny_model)  # no seed: each answer is drawn afresh
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, screen, "Dear Mara,")
        await pilot.press("ctrl+r")
        await wait_until(pilot, lambda: screen.answers == 2, what="the new answer")
        views = screen.views
        assert len(views) == 2 and views[1].by_model and views[1].turn.text  # the answer replaced, not added
        await pilot.press("up")  # the last turn back into the input, its answer gone
        assert screen.query_one("#turn").value == "Dear Mara," and screen.views == []
        screen.query_one("#turn").value += " come home"
        await pilot.press("enter")
        await wait_until(pilot, lambda: screen.answers == 3, what="the answer to the edited turn")
        assert [v.turn.text for v in screen.views][0] == "Dear Mara, come home"
        await pilot.press("ctrl+l")
        await pilot.pause()
        assert screen.views == []


async def test_save_writes_the_transcript_where_the_notification_says(tiny_model, continuo_home):
    app = ContinuoApp(tiny_model, config=SEEDED)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot)
        await pilot.press("ctrl+s")
        await notified(pilot, "nothing to save yet")
        await send(pilot, screen, "The lamp at Carrick")
        await pilot.press("ctrl+s")
        await wait_until(pilot, lambda: isinstance(app.screen, PromptScreen), what="the save dialog")
        await pilot.press("enter")  # the proposed file in the data folder
        message = await notified(pilot, "saved the transcript to")
        path = continuo_home / "chats" / message.rsplit("/", 1)[-1]
        you, model = screen.views
        assert path.read_text() == f"You: {you.turn.text}\n\ntiny-verse: {model.turn.text}\n\n"


async def test_chat_is_in_the_palette_with_its_actions(tiny_model):
    app = ContinuoApp(tiny_model)
    async with app.run_test(size=SIZE) as pilot:
        await model_ready(pilot)
        assert "Chat" in {c.title for c in app.get_system_commands(app.screen)}
        await open_chat(pilot)
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Regenerate", "Edit last", "Save", "Clear"} <= titles


async def test_speakers_are_labelled_where_the_corpus_names_them(tmp_path):
    lines = ["Is the ship in yet?", "Not yet, sir.", "Then we wait.", "Fetch me a chair.", "The cat has it."]
    play = "".join(f"{['MARLOW', 'TESS', 'PIKE'][i % 3]}:\n{lines[i % 5]}\n\n" for i in range(600))
    model = load(build_instant(play, tmp_path / "play").path)
    app = ContinuoApp(model, config=SEEDED)
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_chat(pilot)
        await send(pilot, screen, "TESS: Is the ship in yet?")
        you, answer = screen.views
        assert (you.label, you.turn) == ("TESS", Turn("Is the ship in yet?", "TESS"))
        assert answer.label in {"MARLOW", "TESS", "PIKE"} and answer.turn.speaker == answer.label
