"""A text-source input: completes bundled corpus names and file paths; Tab accepts the completion."""

from __future__ import annotations

import os
from pathlib import Path

from textual.binding import Binding
from textual.suggester import Suggester
from textual.widgets import Input


class SourceSuggester(Suggester):
    """Completes a bundled corpus name, or the next part of a path from what is on disk."""

    def __init__(self, corpus_names: list[str]) -> None:
        super().__init__(use_cache=False, case_sensitive=True)  # the disk changes; paths are case-sensitive
        self.corpus_names = corpus_names

    async def get_suggestion(self, value: str) -> str | None:
        for name in self.corpus_names:
            if name.startswith(value) and name != value:
                return name
        head, sep, stem = value.rpartition(os.sep)
        folder = Path(head + sep).expanduser() if sep else Path(".")
        try:
            names = sorted(
                e.name + (os.sep if e.is_dir() else "")
                for e in os.scandir(folder)
                if e.name.startswith(stem) and (stem.startswith(".") or not e.name.startswith("."))
            )
        except OSError:
            return None
        match = next((n for n in names if n != stem), None)
        return head + sep + match if match else None


class SourceInput(Input):
    """The text to train on: a bundled corpus name or a path; Tab or → takes the completion."""

    BINDINGS = [Binding("tab", "accept", "Complete", show=False)]

    def __init__(self, corpus_names: list[str], **kwargs) -> None:
        super().__init__(suggester=SourceSuggester(corpus_names), **kwargs)

    def action_accept(self) -> None:
        if self._suggestion and self.cursor_at_end:
            self.action_cursor_right()
        else:
            self.screen.focus_next()
