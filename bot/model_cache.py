"""Loaded bundles: one load per bundle however many wait for it, the most recently used kept, by count and size."""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from pathlib import Path

import numpy as np

from core import BundleError, LanguageModel, load

from . import metrics

log = logging.getLogger(__name__)

NEURAL_OVERHEAD_BYTES = 12 << 20  # a loaded neural model's compiled forward passes and graph, beyond its weights


class NoModel(BundleError):
    """Neither the server's own model nor the default model can be loaded."""


def model_bytes(model: LanguageModel) -> int:
    """Roughly the memory a loaded model holds: its weights, its n-gram and spelling tables and its vocabulary."""
    size = sum(len(t) + 60 for t in model.tokenizer.vocab)  # a str and its dict entry
    if model.model is not None:
        size += NEURAL_OVERHEAD_BYTES + sum(
            int(np.prod(v.shape)) * np.dtype(v.dtype).itemsize for v in model.model.weights
        )
    return size + _array_bytes(model.ngram) + _array_bytes(model.spelling)


def _array_bytes(obj, depth: int = 3) -> int:
    """Bytes of the numpy arrays reachable from `obj` through attributes and containers."""
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if depth == 0 or obj is None or isinstance(obj, (str, bytes, int, float)):
        return 0
    items: Iterable[object]
    if isinstance(obj, dict):
        items = obj.values()
    elif isinstance(obj, (list, tuple)):
        items = obj
    else:
        items = vars(obj).values() if hasattr(obj, "__dict__") else ()
    return sum(_array_bytes(item, depth - 1) for item in items)


def load_warm(path: Path) -> LanguageModel:
    """Load a bundle and compile its single-row forward pass, so the first /continue is not the slow one.

    Without XLA: the bot loads and drops models all day, and XLA's compiled code would stay behind each time.
    """
    return load(path, xla=False).warm_up()


class ModelCache:
    """Bundles loaded on the inference threads (`run`), keyed by path: at most `size` of them and, with
    `max_bytes`, at most that much memory (model_bytes); the least recently used go first."""

    def __init__(self, run: Callable[..., Awaitable], default_model: Path, size: int = 8, max_bytes: int | None = None):
        self.run, self.default_model, self.size, self.max_bytes = run, default_model, size, max_bytes
        self._models: OrderedDict[Path, LanguageModel] = OrderedDict()
        self._sizes: dict[Path, int] = {}  # model_bytes of each cached model
        self._loading: dict[Path, asyncio.Future] = {}

    def __len__(self) -> int:
        return len(self._models)

    @property
    def cached_bytes(self) -> int:
        return sum(self._sizes.values())

    async def get(self, path: Path) -> LanguageModel:
        model = self._models.get(path)
        if model is not None:
            self._models.move_to_end(path)
            metrics.MODEL_CACHE_HITS.inc()
            return model
        metrics.MODEL_CACHE_MISSES.inc()
        pending = self._loading.get(path)
        if pending is None:  # one load per bundle, however many requests wait for it
            pending = self._loading[path] = asyncio.ensure_future(self._load(path))
            pending.add_done_callback(lambda _: self._loading.pop(path, None))
        return await asyncio.shield(pending)

    async def load_again(self, path: Path) -> LanguageModel:
        """Load the bundle at `path` afresh and swap it in (a retrained one): requests never see it half-loaded."""
        model = await self.run(load_warm, path)
        self._put(path, model)
        return model

    async def _load(self, path: Path) -> LanguageModel:
        try:
            model = await self.run(load_warm, path)
        except BundleError as e:
            if path == self.default_model:
                raise NoModel(
                    "this server has no model yet and the default model is missing; "
                    "an admin can add text with /corpus and run /train"
                ) from None
            raise NoModel(f"this server's model cannot be loaded ({e}); an admin can run /train again") from None
        self._put(path, model)
        return model

    def _put(self, path: Path, model: LanguageModel) -> None:
        self._models[path] = model
        self._models.move_to_end(path)
        self._sizes[path] = model_bytes(model)
        while len(self._models) > 1 and (
            len(self._models) > self.size or self.max_bytes is not None and self.cached_bytes > self.max_bytes
        ):
            # least recently used first, n-gram-only models before neural ones: they load again in milliseconds,
            # where a neural model takes a second or more and leaves compiled code in the process at each load
            older = [p for p in self._models if p != path]  # the newest always stays
            dropped = next((p for p in older if self._models[p].model is None), older[0])
            del self._models[dropped]
            self._sizes.pop(dropped, None)
            metrics.MODEL_CACHE_EVICTIONS.inc()
            log.info("dropped %s from the model cache", dropped)
        metrics.MODEL_CACHE_BYTES.set(self.cached_bytes)
        metrics.MODEL_CACHE_MODELS.set(len(self._models))
