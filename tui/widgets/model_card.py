"""The model card: which model is active and what it was trained on."""

from __future__ import annotations

from rich.table import Table
from textual.widgets import Static

from core import ModelCard


def card_rows(card: ModelCard) -> list[tuple[str, str]]:
    """(label, value) pairs a reader wants first."""
    ppl = f"{card.val_perplexity:.1f}" if card.val_perplexity is not None else "?"
    return [
        ("corpus", card.corpus or "?"),
        ("tokens", f"{card.tokens:,}"),
        ("vocabulary", f"{card.vocab_size:,}"),
        ("val. perplexity", ppl),
        ("epochs", str(card.epochs)),
        ("trained", card.created[:10]),
    ]


class ModelCardView(Static):
    """The active model's name and card, or why there is none."""

    DEFAULT_CSS = """
    ModelCardView {
        height: auto;
        border: round $primary 60%;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    """

    def on_mount(self) -> None:
        self.border_title = "Model"

    def show(self, name: str, card: ModelCard | None, note: str = "") -> None:
        self.border_title = f"Model: {name}" if name else "Model"
        if card is None:
            self.update(note or "no model loaded")
            return
        table = Table.grid(padding=(0, 1))
        table.add_column(style="dim", no_wrap=True)
        table.add_column(overflow="fold")
        for label, value in card_rows(card):
            table.add_row(label, value)
        self.update(table)
