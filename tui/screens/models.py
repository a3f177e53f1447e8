"""The models screen: trained models with their cards; switch, rename, delete."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from core import DEFAULT_MODEL, ContinuoError, ModelStore

from .dialogs import ConfirmScreen, PromptScreen

if TYPE_CHECKING:
    from textual import getters

    from core import StoredModel

    from ..app import ContinuoApp

COLUMNS = ("", "name", "corpus", "tokens", "vocab", "val. ppl", "epochs", "trained", "note")


def table_row(model: StoredModel, active: bool) -> tuple[str, ...]:
    mark = "●" if active else ""
    card = model.card
    if card is None:
        why = model.error.removeprefix(f"{model.path}: ")  # the row already says which model
        return (mark, model.name, "?", "", "", "", "", "", f"unreadable: {why}")
    ppl = f"{card.val_perplexity:.1f}" if card.val_perplexity is not None else "?"
    return (
        mark,
        model.name,
        card.corpus,
        f"{card.tokens:,}",
        f"{card.vocab_size:,}",
        ppl,
        str(card.epochs),
        card.created[:10],
        "",
    )


class ModelsScreen(Screen):
    """A table of the models in the store; the active one is marked ●."""

    if TYPE_CHECKING:
        app = getters.app(ContinuoApp)

    DEFAULT_CSS = """
    ModelsScreen {
        & DataTable { height: 1fr; }
        & #hint { height: 1; color: $text-muted; padding: 0 1; }
    }
    """

    BINDINGS = [
        Binding("enter", "use", "Use", tooltip="Make the selected model the active one"),
        Binding("r", "rename", "Rename", tooltip="Rename the selected model"),
        Binding("d,delete", "delete", "Delete", tooltip="Delete the selected model (asks first)"),
        Binding("ctrl+r", "reload", "Refresh", tooltip="Read the model folder again"),  # F5 is the Chat screen
    ]

    def __init__(self) -> None:
        super().__init__()
        self.models: list[StoredModel] = []

    def compose(self) -> ComposeResult:
        yield Header()
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Static("", id="hint", markup=False)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(DataTable).add_columns(*COLUMNS)
        self.watch(self.app, "model_path", lambda _: self.reload())

    def on_screen_resume(self) -> None:
        self.reload()

    def action_reload(self) -> None:
        self.reload()

    def reload(self) -> None:
        table = self.query_one(DataTable)
        row = table.cursor_row
        self.models = ModelStore().list()
        table.clear()
        for model in self.models:
            table.add_row(*table_row(model, model.path == self.app.model_path), key=model.name)
        if self.models:
            table.move_cursor(row=min(row, len(self.models) - 1))
        self.query_one("#hint", Static).update(
            "Enter: use · r: rename · d: delete" if self.models else "no models yet: train one on the Train screen (F3)"
        )

    @property
    def selected(self) -> StoredModel | None:
        table = self.query_one(DataTable)
        return self.models[table.cursor_row] if self.models and 0 <= table.cursor_row < len(self.models) else None

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        self.action_use()

    def action_use(self) -> None:
        model = self.selected
        if model is None:
            return
        if model.card is None:
            self.app.report(model.error)
            return
        self.app.inform(f"loading {model.name}…")
        self.app.open_model(model.path)

    def action_rename(self) -> None:
        model = self.selected
        if model is None:
            return

        def rename(new: str | None) -> None:
            if not new or new == model.name:
                return
            try:
                path = ModelStore().rename(model.name, new)
            except (ContinuoError, OSError) as e:
                self.app.report(e)
                return
            self.app.model_renamed(model.path, path)
            self.reload()

        self.app.push_screen(PromptScreen(f"New name for {model.name}:", model.name), rename)

    def action_delete(self) -> None:
        model = self.selected
        if model is None:
            return
        if model.name == DEFAULT_MODEL:
            self.app.report("the default model cannot be deleted")
            return

        def delete(yes: bool | None) -> None:
            if not yes:
                return
            try:
                ModelStore().delete(model.name)
            except (ContinuoError, OSError) as e:
                self.app.report(e)
                return
            note = "; it stays loaded until you switch" if self.app.model_path == model.path else ""
            self.app.inform(f"deleted {model.name}{note}")
            self.reload()

        self.app.push_screen(ConfirmScreen(f"Delete the model {model.name}? This cannot be undone."), delete)
