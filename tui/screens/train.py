"""The train screen: pick a text and sizes, train in a separate process, watch progress, cancel, use the result."""

from __future__ import annotations

import re
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from textual import work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Button, Footer, Header, Input, Label, ProgressBar, RichLog, Select
from textual.worker import Worker, WorkerState, get_current_worker

from core import (
    Cancelled,
    ContinuoError,
    LocalProcessRunner,
    ModelConfig,
    ModelStore,
    Progress,
    TrainConfig,
    TrainRequest,
    TrainResult,
    bundled_corpora,
    find_corpus,
    get_settings,
    read_text,
)

from ..widgets.charts import MetricChart
from ..widgets.path_input import SourceInput
from .dialogs import FilePickerScreen

if TYPE_CHECKING:
    from textual import getters

    from ..app import ContinuoApp

MODEL_SIZES = {  # name -> model settings; from seconds of training (tiny) to hours on a laptop (large)
    "tiny": ModelConfig(window=8, embedding_dim=16, units=16),
    "small": ModelConfig(window=16, embedding_dim=64, units=128),  # as the bundled default model
    "medium": ModelConfig(),  # the core's defaults
    "large": ModelConfig(embedding_dim=256, units=384, bidirectional_layers=2),
}


def unique_name(store: ModelStore, source: str) -> str:
    """A free model name made from the text's name: `verse`, else `verse-2`, `verse-3`…"""
    base = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(source).stem).strip("-._")[:48] or "model"
    taken = {m.name for m in store.list()}
    return next(n for n in [base, *(f"{base}-{i}" for i in range(2, 1000))] if n not in taken)


def clock(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(round(seconds)), 60)
    return f"{minutes // 60}:{minutes % 60:02d}:{secs:02d}" if minutes >= 60 else f"{minutes}:{secs:02d}"


@dataclass
class TrainForm:
    """What the form says to train."""

    source: str  # a bundled corpus name or a text file
    name: str  # the new model's name in the store
    epochs: int  # at most; early stopping may end sooner
    minutes: float | None  # time budget; None for none
    size: str  # a key of MODEL_SIZES

    @property
    def file(self) -> Path | None:
        """The text file to train on; None for a bundled corpus (a file of the same name wins)."""
        path = Path(self.source).expanduser()
        return None if not path.exists() and find_corpus(self.source) else path

    def request(self, store: ModelStore) -> TrainRequest:
        return TrainRequest(
            out=store.path(self.name),
            instant_out=get_settings().home / "instant" / self.name,  # usable while the neural model trains
            source=self.file or self.source,
            corpus_name=self.file.name if self.file else self.source,
            model=replace(MODEL_SIZES[self.size]),  # a copy: training fills in what the size leaves open
            train=TrainConfig(epochs=self.epochs, max_minutes=self.minutes),
            checkpoint_dir=get_settings().checkpoints_dir / self.name,  # a run stopped (SIGTERM) resumes
        )


class TrainProgress(Message):
    def __init__(self, progress: Progress) -> None:
        super().__init__()
        self.progress = progress


class TrainEnded(Message):
    """The run ended: `result` when a model was saved, else `error` says why (cancelled or failed)."""

    def __init__(self, result: TrainResult | None = None, error: str = "", cancelled: bool = False) -> None:
        super().__init__()
        self.result, self.error, self.cancelled = result, error, cancelled


class TrainScreen(Screen):
    """Train a model in its own process with a progress bar, charts, a log and Cancel."""

    if TYPE_CHECKING:
        app = getters.app(ContinuoApp)

    DEFAULT_CSS = """
    TrainScreen {
        & #form { height: auto; border: round $primary 60%; border-title-color: $text-muted; padding: 0 1; }
        & #form > Horizontal { height: auto; }
        & #buttons { margin-top: 1; }
        & #form Label { padding: 0 1 0 0; color: $text-muted; }
        & #form Label.hint { color: $text-muted 60%; padding: 0; }
        & #source { width: 1fr; }
        & #name { width: 20; }
        & #epochs, & #minutes { width: 6; }
        & #size { width: 14; }
        & #buttons Button { margin-right: 2; }
        & #status-row { height: 1; margin: 1 1 0 1; }
        & ProgressBar { width: 50; }
        & #status { width: 1fr; }
        & RichLog { height: 1fr; border: round $primary 60%; border-title-color: $text-muted; }
    }
    """

    BINDINGS = [
        Binding("ctrl+s", "start", "Start", tooltip="Start training"),
        Binding("escape", "cancel", "Cancel", tooltip="Stop training; the previous model stays"),
        Binding("ctrl+n", "use", "Use new", tooltip="Make the model just trained the active one"),
        Binding("ctrl+b", "browse", "Browse", show=False, tooltip="Pick the text file from a directory tree"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.running = False  # from Start until the run has ended
        self.cancel_requested = False  # Cancel was pressed; the worker passes it on to the job
        self.trained: Path | None = None  # the last bundle this screen trained

    def compose(self) -> ComposeResult:
        corpora = [c.name for c in bundled_corpora()]
        source = self.app.train_source or ("verse" if "verse" in corpora else corpora[0] if corpora else "")
        yield Header()
        with Vertical(id="form"):
            with Horizontal():
                yield Label("text")
                yield SourceInput(
                    corpora,
                    value=source,
                    id="source",
                    compact=True,
                    placeholder="a bundled corpus name or a text file path",
                )
                yield Button("Browse…", id="browse", compact=True)
            yield Label(
                f"     bundled: {', '.join(corpora) or 'none'} · or a text file (Tab completes, ^b browses)",
                classes="hint",
                markup=False,
            )
            with Horizontal():
                yield Label("name")
                yield Input(unique_name(ModelStore(), source), id="name", compact=True)
                yield Label(" epochs")
                yield Input("5", id="epochs", compact=True, type="integer")
                yield Label(" minutes")
                yield Input("", id="minutes", compact=True, type="number", placeholder="any")
                yield Label(" size")
                yield Select(
                    [(name, name) for name in MODEL_SIZES], value="small", allow_blank=False, id="size", compact=True
                )
            with Horizontal(id="buttons"):
                yield Button("Start", id="start", variant="primary", compact=True)
                yield Button("Cancel", id="cancel", variant="error", compact=True, disabled=True)
                yield Button("Use model", id="use", variant="success", compact=True, disabled=True)
        with Horizontal(id="status-row"):
            yield ProgressBar(total=1.0, show_eta=False)
            yield Label("not started", id="status", markup=False)
        yield MetricChart("loss", id="loss")
        yield MetricChart("val. perplexity", id="val")
        yield RichLog(markup=False, wrap=True, id="log")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one("#form").border_title = "What to train"
        self.query_one(RichLog).border_title = "Log"
        if self.app.train_source:
            self.app.inform(f"set the sizes and press Start (ctrl+s) to train on {self.app.train_source}")

    # --- the form
    def read_form(self) -> TrainForm:
        def value(id_: str) -> str:
            return self.query_one(f"#{id_}", Input).value.strip()

        source, name = value("source"), value("name")
        if not source:
            raise ContinuoError("nothing to train on: give a bundled corpus name or a text file path")
        try:
            epochs = int(value("epochs"))
            minutes = float(value("minutes")) if value("minutes") else None
        except ValueError:
            raise ContinuoError("epochs must be a whole number and minutes a number (or blank)") from None
        TrainConfig(epochs=epochs, max_minutes=minutes).validate()
        ModelStore().path(name)  # checks the name
        return TrainForm(source, name, epochs, minutes, str(self.query_one("#size", Select).value))

    async def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id:  # each button's id names its action
            await self.run_action(event.button.id)

    def action_browse(self) -> None:
        def picked(path: Path | None) -> None:
            if path is not None:
                self.query_one("#source", Input).value = str(path)

        self.app.push_screen(FilePickerScreen(Path.cwd()), picked)

    # --- running
    def action_start(self) -> None:
        if self.running:
            self.app.report("a training run is going: cancel it (Escape) or wait for it to end")
            return
        try:
            form = self.read_form()
            request = form.request(ModelStore())
        except ContinuoError as e:
            self.app.report(e)
            return
        for chart in self.query(MetricChart):
            chart.clear()
        self.query_one(ProgressBar).update(progress=0)
        log = self.query_one(RichLog)
        replaced = " (replaces the model of that name when done)" if Path(request.out).is_dir() else ""
        log.write(
            f"training {form.name} on {request.corpus_name}: {form.size} model, up to {form.epochs} epochs{replaced}"
        )
        self.trained = None
        self._set_running(True)
        self.train(request, form.file)

    @work(thread=True, exclusive=True, group="train", exit_on_error=False)
    def train(self, request: TrainRequest, file: Path | None) -> None:
        """Check the text file, then run the job in its own process and wait for it, cancelling it if we are."""
        worker = get_current_worker()
        if file is not None:
            try:
                read_text(file)  # a bad file is reported at once, not after a training process has started
            except ContinuoError as e:
                self.post_message(TrainEnded(error=str(e)))
                return
            except OSError as e:  # e.g. a file we may not read
                self.post_message(TrainEnded(error=f"{file}: {e.strerror or e}; check the file"))
                return
        if self.cancel_requested:
            self.post_message(TrainEnded(error="training cancelled before it started", cancelled=True))
            return

        def on_progress(progress: Progress) -> None:
            self.post_message(TrainProgress(progress))

        job = LocalProcessRunner().submit(request, on_progress)
        while True:
            if worker.is_cancelled or self.cancel_requested:
                job.cancel()  # also when the app is closing: the process must not outlive it
            try:
                result = job.result(timeout=0.25)
            except TimeoutError:
                continue
            except Cancelled as e:
                self.post_message(TrainEnded(error=str(e), cancelled=True))
            except ContinuoError as e:
                self.post_message(TrainEnded(error=str(e)))
            else:
                self.post_message(TrainEnded(result))
            return

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.worker.group == "train" and event.state == WorkerState.ERROR:
            event.stop()  # reported here, as the end of the run, rather than by the app's safety net
            error = event.worker.error
            self.post_message(TrainEnded(error=f"training failed: {type(error).__name__}: {error}"))

    def action_cancel(self) -> None:
        if self.running and not self.cancel_requested:
            self.cancel_requested = True
            self.query_one(RichLog).write("cancelling…")

    def on_train_progress(self, message: TrainProgress) -> None:
        p = message.progress
        self.query_one(ProgressBar).update(progress=p.fraction)
        eta = f" · ETA {clock(p.eta_s)}" if p.phase != "done" else ""
        self.query_one("#status", Label).update(
            f"epoch {p.epoch}/{p.epochs} · batch {p.batch}/{p.batches} · {clock(p.elapsed_s)}{eta}"
        )
        if p.phase == "batch" and p.loss is not None:
            self.query_one("#loss", MetricChart).add(p.loss)
        if p.phase == "epoch" and p.val_perplexity is not None:
            self.query_one("#val", MetricChart).add(p.val_perplexity)
        if p.message:
            self.query_one(RichLog).write(p.message)
        if p.phase == "instant" and p.path:
            self.trained = Path(p.path)
            self.query_one("#use", Button).disabled = False
            self.app.inform("an instant n-gram model is ready: ctrl+n uses it now; the neural model follows")

    def on_train_ended(self, message: TrainEnded) -> None:
        self._set_running(False)
        log = self.query_one(RichLog)
        if message.result is None:
            log.write(message.error)
            if message.cancelled:
                self.app.inform(message.error)
            else:
                self.app.report(message.error)
            self.query_one("#status", Label).update("cancelled" if message.cancelled else "failed")
            return
        card = message.result.card
        self.trained = Path(message.result.path)
        self.query_one("#use", Button).disabled = False
        self.query_one("#status", Label).update(f"done: {card.epochs} epochs, {card.stopped}")
        self.app.inform(
            f"model {self.trained.name} is ready (validation perplexity {card.val_perplexity:.1f}): "
            "ctrl+n makes it active"
        )
        self.query_one("#name", Input).value = unique_name(ModelStore(), self.query_one("#source", Input).value)

    def _set_running(self, running: bool) -> None:
        self.running, self.cancel_requested = running, False
        self.query_one("#start", Button).disabled = running
        self.query_one("#cancel", Button).disabled = not running
        self.query_one("#use", Button).disabled = self.trained is None

    def action_use(self) -> None:
        if self.trained is None:
            self.app.report("no model trained yet on this screen: start a run first")
            return
        self.app.open_model(self.trained)
        self.app.switch_mode("compose")
