"""The Textual app: holds the active model and decoding options, and switches between its screens."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Iterable
from functools import partial
from multiprocessing import resource_tracker
from pathlib import Path

from textual import work
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import var
from textual.screen import Screen
from textual.worker import get_current_worker

import core
from core import DEFAULT_MODEL, ContinuoError, GenerationConfig, LanguageModel, ModelStore

from .config import TuiConfig
from .gate import ModelGate
from .safety import WorkerSafetyNet
from .screens.chat import ChatScreen
from .screens.compose import ComposeScreen
from .screens.help import HelpScreen
from .screens.models import ModelsScreen
from .screens.train import TrainScreen
from .suggester import ModelSuggester

NO_DEFAULT_MODEL = (
    "the default model is not trained yet: train one on the Train screen (F3), "
    "pick one on the Models screen (F4), or start with `continuo tui MODEL`"
)


class ContinuoApp(WorkerSafetyNet, App[None]):
    """Continuo in the terminal. `model`: a model name, a bundle path, a loaded model, or None for the default."""

    TITLE = "Continuo"
    MODES = {"compose": ComposeScreen, "train": TrainScreen, "models": ModelsScreen, "chat": ChatScreen}
    DEFAULT_MODE = "compose"
    BINDINGS = [
        Binding("f1", "help", "Help", tooltip="Keys and screens"),
        Binding("f2", "switch_mode('compose')", "Compose", tooltip="Type a seed and see how the model continues it"),
        Binding("f3", "switch_mode('train')", "Train", tooltip="Train a model on a corpus or a text file"),
        Binding("f4", "switch_mode('models')", "Models", tooltip="Switch, rename or delete trained models"),
        Binding("f5", "switch_mode('chat')", "Chat", tooltip="Talk with the model: it answers each turn in its voice"),
    ]

    model: var[LanguageModel | None] = var(None)  # the active model; None until one is loaded
    model_name = var("")  # its name in the model store ("default" for the bundled one)
    model_path: var[Path | None] = var(None)  # its bundle folder
    model_note = var("loading the model…")  # why there is no model, while there is none
    generation: var[GenerationConfig] = var(GenerationConfig)  # decoding options for ghost text and variants

    def __init__(
        self,
        model: str | Path | LanguageModel | None = None,
        *,
        train_source: str | None = None,
        config: TuiConfig | None = None,
    ) -> None:
        super().__init__()
        # Training processes need multiprocessing's resource tracker, which cannot start once Textual has
        # replaced sys.stderr (its fileno() is -1): start it now, while the real one is in place.
        resource_tracker.ensure_running()
        self.config = config or TuiConfig()
        self.gate = ModelGate()
        self.suggester = ModelSuggester(self.gate, self.config.ghost_seed, self.config.suggestion_cache)
        self.set_reactive(ContinuoApp.generation, self.config.generation)
        self.train_source = train_source  # a corpus or text file to offer on the Train screen
        self._first_model = model

    def on_mount(self) -> None:
        self.open_model(self._first_model)
        if self.train_source:
            self.switch_mode("train")
        # SIGTERM (a closing terminal emulator, systemd, a container's stop) quits as Ctrl-Q does: the training
        # worker stops its job, whose last finished epoch stays in its checkpoint, and the terminal is restored
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):  # no loop signals here (Windows)
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, self.exit)

    def on_unmount(self) -> None:
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGTERM)

    # --- the active model
    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def open_model(self, target: str | Path | LanguageModel | None = None) -> None:
        """Load a model (name, path, or None for the default) in a thread and make it active."""
        worker = get_current_worker()
        try:
            model = target if isinstance(target, LanguageModel) else self._load(target)
            model.warm_up()  # compile the forward pass now rather than on the first keystroke
        except (ContinuoError, OSError) as e:  # OSError: a bundle we may not read
            self.call_from_thread(self._no_model, str(e))
            return
        if not worker.is_cancelled:
            self.call_from_thread(self._activate, model)

    def _load(self, target: str | Path | None) -> LanguageModel:
        store = ModelStore()
        path = store.resolve(target)
        if path == store.path(DEFAULT_MODEL) and not path.is_dir():
            raise ContinuoError(NO_DEFAULT_MODEL)
        return core.load(path)

    def _activate(self, model: LanguageModel) -> None:
        default = ModelStore().path(DEFAULT_MODEL)
        path = model.path
        self.model_name = DEFAULT_MODEL if path == default else (path.name if path else model.card.name)
        self.model_path, self.model = path, model
        self.sub_title = self.model_name
        self.suggester.use(model, self.generation)

    def _no_model(self, why: str) -> None:
        if self.model is None:
            self.model_note = why
        self.report(why)

    def model_renamed(self, old: Path, new: Path) -> None:
        """A stored model moved from `old` to `new`: if it is the active one, it keeps being so under its new name."""
        if self.model_path == old:
            self.model_name = self.sub_title = new.name
            self.model_path = new

    def use_generation(self, generation: GenerationConfig) -> None:
        """Decode ghost text and variants with these options from now on."""
        self.generation = generation

    def watch_generation(self, generation: GenerationConfig) -> None:
        self.suggester.use(self.model, generation)

    # --- everywhere
    def report(self, error: Exception | str) -> None:
        """Show a user-fixable error as a notification (its one line, never a traceback)."""
        self.notify(str(error), title="Error", severity="error", timeout=10, markup=False)

    def inform(self, message: str) -> None:
        self.notify(message, markup=False)

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen())

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        """Textual's commands, then one for every action this package binds to a key, then the screen's extras."""
        yield from super().get_system_commands(screen)
        focused = screen.focused.ancestors_with_self if screen.focused else []
        ours = [node for node in [*focused, screen, self] if type(node).__module__.startswith(__package__)]
        seen = set()
        for node in dict.fromkeys(ours):  # focused widget first, like key presses
            for binding in node.BINDINGS:
                if isinstance(binding, Binding) and binding.description and binding.description not in seen:
                    seen.add(binding.description)
                    key = binding.key_display or self.get_key_display(binding)
                    yield SystemCommand(
                        binding.description,
                        f"{binding.tooltip or binding.description} ({key})",
                        partial(self.run_action, binding.action, node),
                    )
        yield from getattr(screen, "extra_commands", lambda: ())()
        for stored in ModelStore().list():
            if stored.card is not None and stored.path != self.model_path:
                yield SystemCommand(
                    f"Use model {stored.name}",
                    f"trained on {stored.card.corpus or '?'}",
                    partial(self.open_model, stored.path),
                )
