"""Small modal dialogs: confirm, ask for a name, pick a file from a directory tree."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, DirectoryTree, Input, Label

DIALOG_CSS = """
%s {
    align: center middle;
    & > Vertical {
        width: 64;
        height: auto;
        max-height: 90%%;
        border: thick $primary;
        background: $surface;
        padding: 1 2;
    }
    & Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
    & Button { margin-left: 1; }
}
"""


class ConfirmScreen(ModalScreen[bool]):
    """Ask a yes/no question; y or Enter on Yes confirms, n or Escape declines."""

    DEFAULT_CSS = DIALOG_CSS % "ConfirmScreen"
    BINDINGS = [Binding("y", "answer(True)", "Yes"), Binding("n,escape", "answer(False)", "No")]

    def __init__(self, question: str) -> None:
        super().__init__()
        self.question = question

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question, markup=False)
            with Horizontal():
                yield Button("No", id="no")
                yield Button("Yes", id="yes", variant="error")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


class PromptScreen(ModalScreen["str | None"]):
    """Ask for one line of text; Enter submits it, Escape cancels."""

    DEFAULT_CSS = DIALOG_CSS % "PromptScreen"
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "") -> None:
        super().__init__()
        self.question, self.value = question, value

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(self.question, markup=False)
            yield Input(self.value, select_on_focus=True)

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value.strip() or None)

    def action_cancel(self) -> None:
        self.dismiss(None)


class FilePickerScreen(ModalScreen["Path | None"]):
    """Browse folders and pick a text file; Escape cancels."""

    DEFAULT_CSS = (
        (DIALOG_CSS % "FilePickerScreen")
        + """
    FilePickerScreen > Vertical { width: 80%; height: 80%; }
    FilePickerScreen DirectoryTree { height: 1fr; }
    """
    )
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, root: Path) -> None:
        super().__init__()
        self.root = root

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label("Pick a text file (Enter opens a folder or picks a file; Escape cancels)")
            yield DirectoryTree(self.root)

    def on_directory_tree_file_selected(self, event: DirectoryTree.FileSelected) -> None:
        self.dismiss(event.path)

    def action_cancel(self) -> None:
        self.dismiss(None)
