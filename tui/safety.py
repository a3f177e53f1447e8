"""A worker's unexpected failure becomes an error notification, never a crash of the app."""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message_pump import MessagePump
from textual.worker import Worker, WorkerState

if TYPE_CHECKING:
    from textual import getters

    from .app import ContinuoApp


class WorkerSafetyNet(MessagePump):
    """Mixin for a Textual node whose workers run with exit_on_error=False (their messages do not bubble)."""

    if TYPE_CHECKING:
        app = getters.app(ContinuoApp)

    def on_worker_state_changed(self, event: Worker.StateChanged) -> None:
        if event.state == WorkerState.ERROR:
            error = event.worker.error
            self.app.report(f"{event.worker.group} failed: {type(error).__name__}: {error}")
