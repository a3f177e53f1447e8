"""Continuations decoded together: requests for one model and options that come while it decodes form its next batch."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import math
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import astuple

from core import GenerationConfig, LanguageModel

from . import metrics


class Turns:
    """Batches over one bundle decode one at a time; the next is the one holding the request that waited longest
    (each waiting request is (seed, its future, its arrival number))."""

    def __init__(self) -> None:
        self.busy = False
        self.users = 0  # decoders that may take a turn here
        self._queue: list[tuple[list, asyncio.Future]] = []

    async def take(self, waiting: list) -> None:
        if not self.busy:
            self.busy = True
            return
        entry = (waiting, asyncio.get_running_loop().create_future())
        self._queue.append(entry)
        try:
            await entry[1]
        except asyncio.CancelledError:
            if any(e is entry for e in self._queue):
                self._queue.remove(entry)
            else:  # given the turn as it was cancelled: pass it on
                self.give()
            raise

    def give(self) -> None:
        if not self._queue:
            self.busy = False
            return
        entry = min(self._queue, key=lambda e: e[0][0][2] if e[0] else math.inf)
        self._queue.remove(entry)
        entry[1].set_result(None)


class BatchedDecoder:
    """Decodes continuations on the inference threads (`run`), many requests in one batch.

    Requests for the same model and options that arrive while one is being decoded wait for it, then are
    decoded together: one forward pass per step for all of them, since a row costs little next to a pass
    (bench/results/bot_load.md compares it with one request at a time). Batches over one bundle (its option
    sets, its members' voices) take turns (Turns), where side by side on the inference threads they contended
    for the interpreter (an n-gram model decodes in Python); other bundles' batches still run alongside.
    """

    def __init__(self, run: Callable[..., Awaitable], max_batch_rows: int = 128):
        self.run, self.max_batch_rows = run, max_batch_rows
        self._waiting: dict[tuple, list[tuple[str, asyncio.Future, int]]] = {}  # (model, options) -> seeds to continue
        self._arrivals = itertools.count()  # each waiting seed's place in line (Turns)
        self._decoders: set[asyncio.Task] = set()  # referenced, so the loop cannot drop them half-way
        self._bundle_turns: dict[object, Turns] = {}
        self._asked = 0  # asked-for continuations being decoded (see asked)
        self._none_asked = asyncio.Event()  # set while there are none: unasked turns go then (after_asked)
        self._none_asked.set()

    @contextlib.contextmanager
    def asked(self) -> Iterator[None]:
        """Someone waits for the continuations decoded meanwhile (after_asked counts them)."""
        self._asked += 1
        self._none_asked.clear()
        try:
            yield
        finally:
            self._asked -= 1
            if not self._asked:
                self._none_asked.set()

    async def after_asked(self, at_most_s: float) -> None:
        """Wait until no asked-for continuation is being decoded, for at most `at_most_s`: unasked turns (chime-ins)
        take the time nobody waits on, and still come under a load that never ends."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._none_asked.wait(), at_most_s)

    async def decode(self, model: LanguageModel, seed: str, config: GenerationConfig) -> list[str]:
        """The continuations of `seed`, decoded in the next batch for this model and these options."""
        key = (id(model), astuple(config))
        done = asyncio.get_running_loop().create_future()
        waiting = self._waiting.setdefault(key, [])
        waiting.append((seed, done, next(self._arrivals)))
        if len(waiting) == 1:
            task = asyncio.create_task(self._decode_waiting(key, model, config))
            self._decoders.add(task)
            task.add_done_callback(self._decoders.discard)
        return await done

    async def _decode_waiting(self, key: tuple, model: LanguageModel, config: GenerationConfig) -> None:
        size = max(1, self.max_batch_rows // config.num_return_sequences)
        waiting = self._waiting[key]
        turns = self._bundle_turns.setdefault(model.path or id(model), Turns())  # a voice: its server's bundle
        turns.users += 1
        try:
            while waiting:
                await turns.take(waiting)  # more requests join the batch meanwhile
                try:
                    batch = waiting[:size]
                    metrics.DECODE_BATCH_ROWS.observe(len(batch) * config.num_return_sequences)
                    try:
                        results: list[list[str] | Exception] = list(
                            await self.run(model.generate_batch, [seed for seed, _, _ in batch], config)
                        )  # a bad seed fails itself
                    except Exception as e:  # noqa: BLE001 - each waiting request gets the error
                        results = [e] * len(batch)
                    del waiting[: len(batch)]
                finally:
                    turns.give()
                for (_, done, _), result in zip(batch, results, strict=True):
                    if done.done():
                        continue  # its asker gave up (cancelled)
                    if isinstance(result, Exception):
                        done.set_exception(result)
                    else:
                        done.set_result(result)
        finally:
            del self._waiting[key]
            turns.users -= 1
            if not turns.users:
                del self._bundle_turns[model.path or id(model)]
