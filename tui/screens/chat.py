"""The chat screen: write a turn, and the model answers with the next one in its voice, word by word."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static
from textual.worker import get_current_worker

from core import ContinuoError, Conversation, GenerationConfig, LanguageModel, Turn, TurnFormat, get_settings

from ..safety import WorkerSafetyNet
from .dialogs import PromptScreen

if TYPE_CHECKING:
    from textual import getters

    from ..app import ContinuoApp

YOU = "You"  # the label of a person's turn where the corpus names no speakers
SHAPES = {"line": "a turn is a line", "paragraph": "a turn ends at a blank line"}


class TurnView(Static):
    """One turn of the transcript: its speaker's label above its text; a model's turn grows as words come."""

    DEFAULT_CSS = """
    TurnView {
        height: auto;
        margin: 0 0 1 0;
        padding: 0 1;
        border-left: thick $primary;
        &.-model { border-left: thick $accent; }
    }
    """

    def __init__(self, turn: Turn, label: str, by_model: bool) -> None:
        super().__init__(classes="-model" if by_model else "")
        self.turn, self.label, self.by_model = turn, label, by_model
        self._draw()

    def add(self, piece: str, speaker: str | None) -> None:
        """The next piece of a turn being decoded (`speaker`: the one the model named, if any)."""
        if not self.is_attached:  # removed (regenerated, edited, cleared) while its words were on their way
            return
        self.turn = Turn(self.turn.text + piece, speaker)
        self.label = speaker or self.label
        self._draw()

    def finish(self, turn: Turn) -> None:
        self.turn = turn
        self.label = turn.speaker or self.label
        self._draw()

    def _draw(self) -> None:
        self.update(Text.assemble((self.label, "bold"), "\n", self.turn.text or "…"))


class ChatScreen(WorkerSafetyNet, Screen):
    """A transcript above, the turn you write below; Enter sends it and the model answers."""

    if TYPE_CHECKING:
        app = getters.app(ContinuoApp)

    DEFAULT_CSS = """
    ChatScreen {
        & #transcript { height: 1fr; border: round $primary 40%; padding: 0 1; }
        & #turn { margin: 0 0; }
    }
    """

    BINDINGS = [
        Binding("ctrl+r", "regenerate", "Regenerate", tooltip="Answer the last turn again"),
        Binding("up", "edit", "Edit last", key_display="↑", tooltip="Put your last turn back to edit and resend it"),
        Binding("ctrl+s", "save", "Save", tooltip="Save the transcript as text"),
        Binding("ctrl+l", "clear", "Clear", tooltip="Start a new conversation"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.shape: TurnFormat | None = None  # the active model's turns, once known
        self.answers = 0  # turns the model finished, counted for tests and benchmarks

    def compose(self) -> ComposeResult:
        yield Header()
        yield VerticalScroll(id="transcript")
        yield Input(placeholder="write a turn; Enter sends it", id="turn")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#transcript").border_title = "Conversation"
        self.watch(self.app, "model", self._model_changed)
        self.query_one(Input).focus()

    @property
    def model(self) -> LanguageModel | None:
        return self.app.model

    @property
    def views(self) -> list[TurnView]:
        return list(self.query(TurnView))

    @property
    def answering(self) -> bool:
        return any(w.is_running for w in self.workers if w.group == "answer" and w.node is self)

    # --- the model's turn format: read from its card, or inferred (a forward pass) off the event loop
    def _model_changed(self, model: LanguageModel | None) -> None:
        self.shape = None
        if model is not None:
            self.find_shape(model)

    @work(thread=True, exclusive=True, group="shape", exit_on_error=False)
    def find_shape(self, model: LanguageModel) -> None:
        shape = TurnFormat.of(model)
        if not get_current_worker().is_cancelled:
            self.app.call_from_thread(self._shape_found, model, shape)

    def _shape_found(self, model: LanguageModel, shape: TurnFormat) -> None:
        if model is self.model:
            self.shape = shape
            self.query_one("#transcript").border_subtitle = SHAPES[shape.boundary]

    # --- turns
    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if self.model is None or self.shape is None:
            self.app.report(self.app.model_note if self.model is None else "the model is still loading; try again")
            return
        self.workers.cancel_group(self, "answer")
        event.input.value = ""
        turn = self.shape.read(text)
        turns = [view.turn for view in self.views] + [turn]
        self._append(TurnView(turn, turn.speaker or YOU, by_model=False))
        self._answer(turns)

    def _append(self, view: TurnView) -> None:
        transcript = self.query_one("#transcript", VerticalScroll)
        transcript.mount(view)
        transcript.scroll_end(animate=False)

    def _answer(self, turns: list[Turn]) -> None:
        model, shape = self.model, self.shape
        if model is None or shape is None:
            self.app.report(self.app.model_note if model is None else "the model is still loading; try again")
            return
        view = TurnView(Turn(""), self.app.model_name or model.card.name or "Continuo", by_model=True)
        self._append(view)
        config = replace(
            self.app.generation, max_new_tokens=shape.turn_tokens, num_beams=1, num_return_sequences=1, stop_at=None
        )
        self.answer(Conversation(model, turns, shape), config, view)

    @work(thread=True, exclusive=True, group="answer", exit_on_error=False)
    def answer(self, conversation: Conversation, config: GenerationConfig, view: TurnView) -> None:
        """Decode the next turn, showing each word as it is chosen; a newer request stops it at its next word."""
        worker = get_current_worker()
        try:
            stream = conversation.stream(config)
            for piece in stream:
                if worker.is_cancelled:
                    stream.close()
                    return
                self.app.call_from_thread(view.add, piece, stream.speaker)
        except ContinuoError as e:
            self.app.call_from_thread(self.app.report, e)
            return
        if not worker.is_cancelled:
            self.app.call_from_thread(self._answered, view, stream.turn)

    def _answered(self, view: TurnView, turn: Turn) -> None:
        view.finish(turn)
        self.answers += 1
        self.query_one("#transcript", VerticalScroll).scroll_end(animate=False)

    # --- regenerate, edit, clear, save
    async def action_regenerate(self) -> None:
        views = self.views
        if not views:
            return
        self.workers.cancel_group(self, "answer")
        if views[-1].by_model:
            await views.pop().remove()
        self._answer([view.turn for view in views])

    async def action_edit(self) -> None:
        field = self.query_one(Input)
        views = self.views
        mine = [i for i, v in enumerate(views) if not v.by_model]
        if not mine:
            return
        if field.value.strip():
            self.app.report("the input holds a turn already: send it or empty it first")
            return
        self.workers.cancel_group(self, "answer")
        last = views[mine[-1]]
        field.value = (f"{last.turn.speaker}: " if last.turn.speaker else "") + last.turn.text
        field.cursor_position = len(field.value)
        await self.query_one("#transcript").remove_children(views[mine[-1] :])
        field.focus()

    def action_clear(self) -> None:
        self.workers.cancel_group(self, "answer")
        self.query_one("#transcript").remove_children()
        self.query_one(Input).focus()

    def transcript_text(self) -> str:
        """The conversation as text: one turn after another, as the corpus separates them, each with its label."""
        separator = self.shape.separator if self.shape else "\n"
        return "".join(f"{v.label}: {v.turn.text}{separator}" for v in self.views if v.turn.text)

    def action_save(self) -> None:
        if not self.transcript_text():
            self.app.report("nothing to save yet: write a turn first")
            return
        name = f"{self.app.model_name or 'chat'}-{time.strftime('%Y%m%d-%H%M%S')}.txt"
        default = get_settings().home / "chats" / name
        self.app.push_screen(PromptScreen("Save the transcript to", str(default)), self._save_to)

    def _save_to(self, path: str | None) -> None:
        if not path:
            return
        target = Path(path).expanduser()
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(self.transcript_text(), "utf-8")
        except OSError as e:
            self.app.report(f"{target}: {e.strerror or e}; pick another place")
            return
        self.app.inform(f"saved the transcript to {target}")
