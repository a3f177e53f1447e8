"""The candidates panel: the likeliest next words for the seed, their probabilities drawn as bars."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from core import Candidate

from ..text import shown

BAR_CELLS = 8  # width of a full bar: the top candidate's probability
WORD_CELLS = 11  # longer words are cut short with an ellipsis
_EIGHTHS = " ▏▎▍▌▋▊▉"


def bar(fraction: float, cells: int = BAR_CELLS) -> str:
    """A horizontal bar `fraction` of `cells` long, to an eighth of a cell."""
    eighths = round(max(0.0, min(1.0, fraction)) * cells * 8)
    full, rest = divmod(eighths, 8)
    return ("█" * full + (_EIGHTHS[rest] if rest else "")).ljust(cells)


def row(number: int, candidate: Candidate, top: float) -> Text:
    word = shown(candidate.token)
    word = word if len(word) <= WORD_CELLS else word[: WORD_CELLS - 1] + "…"
    return Text.assemble(
        (f"{number} ", "bold"),
        f"{word:<{WORD_CELLS}} ",
        (bar(candidate.probability / top), "green"),
        f" {candidate.probability * 100:5.1f}%",
    )


class CandidatesPanel(OptionList):
    """Next-word candidates; a number key (when focused), Enter or a click appends one to the seed."""

    DEFAULT_CSS = """
    CandidatesPanel {
        height: 11;
        border: round $primary 60%;
        border-title-color: $text-muted;
        &:focus { border: round $primary; }
    }
    """

    BINDINGS = [Binding(str(n), f"pick({n})", f"Pick {n}", show=False) for n in range(1, 10)]

    class Picked(Message):
        """The user chose `candidate` to append."""

        def __init__(self, candidate: Candidate) -> None:
            super().__init__()
            self.candidate = candidate

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.candidates: list[Candidate] = []

    def show(self, candidates: list[Candidate], title: str = "Next word", empty: str = "") -> None:
        self.candidates = candidates
        self.border_title = title
        top = max((c.probability for c in candidates), default=1.0) or 1.0
        options = [Option(row(i, c, top)) for i, c in enumerate(candidates, 1)]
        self.set_options(options or [Option(Text(empty, style="dim"), disabled=True)])

    def action_pick(self, number: int) -> None:
        if 1 <= number <= len(self.candidates):
            self.post_message(self.Picked(self.candidates[number - 1]))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        self.action_pick(event.option_index + 1)
