"""Runs blocking model calls off the event loop, one at a time, dropping calls that newer ones made stale."""
from __future__ import annotations

import asyncio
from typing import Any, Callable


class Stale(Exception):
    """A newer call in the same lane arrived before this one could start."""


class ModelGate:
    """Serializes per-keystroke model calls into a worker thread.

    Each call names a lane ("ghost", "candidates"). A call starts at once when the gate is idle, so a
    lone keystroke waits for nothing; while a call runs, newer calls queue and only the latest of
    each lane runs when the gate frees up: the others raise Stale. That is a leading-edge debounce
    that never lets a burst of typing queue up more model work than two calls per lane.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._latest: dict[str, object] = {}

    async def run(self, lane: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        ticket = self._latest[lane] = object()
        async with self._lock:
            if self._latest.get(lane) is not ticket:
                raise Stale(lane)
            return await asyncio.to_thread(fn, *args, **kwargs)
