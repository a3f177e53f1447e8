"""Runs blocking model calls off the event loop, one at a time, dropping calls that newer ones made stale."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any


class Stale(Exception):
    """A newer call in the same lane arrived before this one could start (or finish, if it gave up)."""


class ModelGate:
    """Serializes per-keystroke model calls into a worker thread.

    Each call names a lane ("ghost", "candidates"). A call starts at once when the gate is idle, so a
    lone keystroke waits for nothing; while a call runs, newer calls queue and only the latest of
    each lane runs when the gate frees up: the others raise Stale. That is a leading-edge debounce
    that never lets a burst of typing queue up more model work than two calls per lane. A call made
    with `run_abandonable` is also told when it has been superseded, so it can stop early.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._latest: dict[str, object] = {}

    async def run(self, lane: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        ticket = self._latest[lane] = object()
        return await self._run(lane, ticket, lambda: fn(*args, **kwargs))

    async def run_abandonable(self, lane: str, fn: Callable[..., Any], *args: Any) -> Any:
        """Run `fn(superseded, *args)`; `superseded()` turns true (in any thread) once a newer call is waiting.

        `fn` returns None when it gave up; that raises Stale here.
        """
        ticket = self._latest[lane] = object()
        result = await self._run(lane, ticket, lambda: fn(lambda: self._latest.get(lane) is not ticket, *args))
        if result is None:
            raise Stale(lane)
        return result

    async def _run(self, lane: str, ticket: object, call: Callable[[], Any]) -> Any:
        async with self._lock:
            if self._latest.get(lane) is not ticket:
                raise Stale(lane)
            return await asyncio.to_thread(call)
