"""The seed editor: multi-line text with the model's continuation shown as ghost text after the cursor."""

from __future__ import annotations

from textual.binding import Binding
from textual.suggester import Suggester
from textual.widgets import TextArea

from ..safety import WorkerSafetyNet
from ..text import next_word, shown


class SeedEditor(WorkerSafetyNet, TextArea):
    """Type a seed; the ghost text is what the model would add. Tab takes it all, ctrl+right one word.

    Ghost text is asked of the suggester after every edit, in a worker, and dropped if the text has
    changed by the time it arrives. Typing the ghost's own next characters keeps the rest of it.
    """

    DEFAULT_CSS = """
    SeedEditor {
        height: 8;
        border: round $primary 60%;
        border-title-color: $text-muted;
        &:focus { border: round $primary; }
        & .text-area--suggestion { color: $text-muted 70%; text-style: italic; }
    }
    """

    BINDINGS = [
        Binding("tab", "accept", "Accept", tooltip="Append the whole ghost text"),
        Binding("ctrl+right", "accept_word", "Word", key_display="^→", tooltip="Append the ghost's next word"),
    ]

    def __init__(self, suggester: Suggester, text: str = "", **kwargs) -> None:
        self.suggester = suggester
        self.completion = ""  # the ghost as real text (line breaks and all)
        self.answered_for: str | None = None  # the text whose ghost question was last answered
        super().__init__(text, soft_wrap=True, tab_behavior="focus", show_line_numbers=False, **kwargs)

    # --- asking for ghost text
    def update_suggestion(self) -> None:
        """TextArea's hook after every edit: keep a ghost typed along with, else ask for a new one."""
        text = self.text
        before = self.answered_for
        if (
            before is not None
            and text.startswith(before)
            and self.completion.startswith(text[len(before) :])
            and len(text) - len(before) < len(self.completion)
        ):
            self._show(text, self.completion[len(text) - len(before) :])
            return
        self.refresh_ghost()

    def refresh_ghost(self) -> None:
        """Forget the ghost and ask for one for the current text (after a model or option change too)."""
        self.completion, self.answered_for, self.suggestion = "", None, ""
        if self.text.strip():
            self.run_worker(self._ask(self.text), group="ghost", exit_on_error=False)

    async def _ask(self, text: str) -> None:
        full = await self.suggester.get_suggestion(text)
        if text != self.text:
            return  # stale: the user typed on while the model was thinking
        self._show(text, full[len(text) :] if full and full.startswith(text) else "")

    def _show(self, text: str, completion: str) -> None:
        self.completion, self.answered_for = completion, text
        self.suggestion = shown(completion) if self.cursor_at_end_of_text else ""

    def watch_selection(self, selection) -> None:
        # the ghost continues the text's end, so it shows only while the cursor is there
        at_end = selection.is_empty and selection.end == self.document.end
        self.suggestion = shown(self.completion) if at_end and self.answered_for == self.text else ""

    # --- taking it
    def append(self, text: str) -> None:
        """Add `text` at the end of the seed and put the cursor after it."""
        self.move_cursor(self.document.end)
        self.insert(text)
        self.move_cursor(self.document.end)

    def action_accept(self) -> None:
        if self.completion and self.answered_for == self.text:
            self.append(self.completion)
        else:
            self.screen.focus_next()

    def action_accept_word(self) -> None:
        if self.completion and self.answered_for == self.text and self.cursor_at_end_of_text:
            self.append(next_word(self.completion))
        else:
            self.action_cursor_word_right()

    def action_cursor_right(self, select: bool = False) -> None:
        if not select and self.completion and self.answered_for == self.text and self.cursor_at_end_of_text:
            self.append(self.completion)  # TextArea would insert the ghost as drawn, line-break marks and all
        else:
            super().action_cursor_right(select)
