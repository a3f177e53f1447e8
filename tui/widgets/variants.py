"""Variants: several continuations of the seed side by side, each one copyable or appendable."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.widgets import Static


class VariantCard(Static, can_focus=True):
    """One continuation; Enter appends it to the seed, c copies it."""

    DEFAULT_CSS = """
    VariantCard {
        width: 1fr;
        height: 1fr;
        padding: 0 1;
        border: round $primary 40%;
        border-title-color: $text-muted;
        &:focus { border: round $accent; }
    }
    """

    BINDINGS = [
        Binding("enter", "use", "Append"),
        Binding("c", "copy", "Copy"),
    ]

    class Chosen(Message):
        """The user wants `text` appended (`copy` False) or copied."""

        def __init__(self, text: str, copy: bool) -> None:
            super().__init__()
            self.text, self.copy = text, copy

    def __init__(self, number: int) -> None:
        super().__init__("", markup=False)
        self.number, self.text = number, ""
        self.border_title = str(number)

    def set_text(self, text: str) -> None:
        self.text = text
        self.update(text.strip() or "…")  # a leading space or line break would only push the words aside

    def action_use(self) -> None:
        if self.text:
            self.post_message(self.Chosen(self.text, copy=False))

    def action_copy(self) -> None:
        if self.text:
            self.post_message(self.Chosen(self.text, copy=True))

    def on_click(self) -> None:
        self.focus()


class VariantsPanel(Horizontal):
    """A row of variant cards."""

    DEFAULT_CSS = """
    VariantsPanel {
        height: 1fr;
        min-height: 5;
    }
    """

    def __init__(self, count: int, **kwargs) -> None:
        super().__init__(**kwargs)
        self.count = count

    def compose(self) -> ComposeResult:
        for number in range(1, self.count + 1):
            yield VariantCard(number)

    @property
    def cards(self) -> list[VariantCard]:
        return list(self.query(VariantCard))

    def show(self, texts: list[str]) -> None:
        for card, text in zip(self.cards, texts + [""] * self.count, strict=False):  # fewer texts: blank cards
            card.set_text(text)

    def placeholder(self, message: str) -> None:
        for card in self.cards:
            card.text = ""
            card.update(message)
