"""The help screen: what each screen is for and its keys, read from the bindings themselves."""

from __future__ import annotations

from collections.abc import Iterable

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Markdown

INTRO = """\
# Continuo

Continuo learns how a body of text sounds and continues any sentence in that voice.

* **Compose** (F2): type a seed. The model's continuation appears as grey *ghost text*;
  **Tab** takes all of it, **ctrl+→** its next word. The *Next word* panel lists the likeliest
  next words; **alt+1…9** (or 1…9 in the panel, or a click) appends one. **ctrl+g** writes
  several variants side by side (again for new ones); in a variant, **Enter** appends it and
  **c** copies it. Decoding options use the core's names; a bad value is shown in red.
* **Train** (F3): pick a bundled corpus or a text file (Tab completes paths), set epochs, a
  time budget and a model size, and start (**ctrl+s**). **Escape** cancels: it stops cleanly and
  keeps any previous model of that name. When training ends, **ctrl+n** makes the new model active.
* **Models** (F4): trained models with their cards. **Enter** switches, **r** renames,
  **d** deletes (after asking).
* **Chat** (F5): write a turn and press **Enter**; the model answers with the next turn in its
  voice, word by word, ending where its corpus ends a turn (a line, or a blank line).
  **ctrl+r** answers again, **↑** puts your last turn back to edit and resend, **ctrl+l** starts
  afresh, **ctrl+s** saves the transcript as text. Where the corpus names its speakers
  (`NAME:`), write `NAME: words` to speak as NAME.
* **ctrl+p** opens the command palette: every action is there. **ctrl+q** quits.
"""


def keys_table(title: str, bindings: Iterable[BindingType]) -> str:
    """A markdown table of the bindings that have a description (ours are all Binding objects)."""
    ours = [b for b in bindings if isinstance(b, Binding) and b.description]
    rows = [f"| `{b.key_display or b.key}` | {b.tooltip or b.description} |" for b in ours]
    return f"## {title}\n\n| Key | Does |\n|---|---|\n" + "\n".join(rows) + "\n" if rows else ""


def help_markdown() -> str:
    from ..app import ContinuoApp
    from ..widgets.seed_editor import SeedEditor
    from ..widgets.variants import VariantCard
    from .chat import ChatScreen
    from .compose import ComposeScreen
    from .models import ModelsScreen
    from .train import TrainScreen

    sections = [
        ("Everywhere", ContinuoApp.BINDINGS),
        ("Compose", ComposeScreen.BINDINGS + SeedEditor.BINDINGS + VariantCard.BINDINGS),
        ("Train", TrainScreen.BINDINGS),
        ("Models", ModelsScreen.BINDINGS),
        ("Chat", ChatScreen.BINDINGS),
    ]
    return INTRO + "\n" + "\n".join(keys_table(title, b) for title, b in sections)


class HelpScreen(ModalScreen[None]):
    """Keys and screens; Escape, q or F1 closes it."""

    DEFAULT_CSS = """
    HelpScreen {
        align: center middle;
        & > VerticalScroll { width: 90%; height: 90%; border: thick $primary; background: $surface; padding: 0 1; }
    }
    """
    BINDINGS = [Binding("escape,q,f1", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll():
            yield Markdown(help_markdown())
