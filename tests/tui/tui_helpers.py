"""Helpers for TUI tests: wait for a running app to reach a state, read its notifications."""

from __future__ import annotations

import time

SIZE = (110, 32)  # terminal size for every pilot and snapshot test


async def wait_until(pilot, condition, timeout: float = 20.0, what: str = "condition") -> None:
    """Let the app run until `condition()` holds; fail with `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await pilot.pause(0.02)


async def model_ready(pilot) -> None:
    await wait_until(pilot, lambda: pilot.app.model is not None, what="the model to load")


async def ghost_ready(pilot) -> None:
    """Wait until the seed editor has answered for the text it holds now."""
    from tui.widgets.seed_editor import SeedEditor

    editor = pilot.app.screen.query_one(SeedEditor)
    await wait_until(pilot, lambda: editor.answered_for == editor.text, what="ghost text")


def notifications(app) -> list[str]:
    return [n.message for n in app._notifications]


async def notified(pilot, *words: str, timeout: float = 20.0) -> str:
    """Wait until the latest notification says every one of `words`, and return it.

    `App.notify` posts a message, so a notification lands a moment after the handler that made it:
    reading the list at once can miss it."""

    def said() -> bool:
        shown = notifications(pilot.app)
        return bool(shown) and all(word in shown[-1] for word in words)

    await wait_until(pilot, said, timeout, what="a notification saying " + " … ".join(repr(w) for w in words))
    return notifications(pilot.app)[-1]
