"""Ghost text from the model as a Textual Suggester: the value typed so far plus the model's completion of it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from textual.cache import LRUCache
from textual.suggester import Suggester

from core import ContinuoError, GenerationConfig, LanguageModel

from .gate import ModelGate, Stale


def complete_unless(
    superseded: Callable[[], bool], model: LanguageModel, text: str, config: GenerationConfig
) -> str | None:
    """`model.complete(text, config)`, given up (None) at the next token once `superseded()`: a keystroke
    makes the previous one's ghost useless, and the model is free for the new text within one step."""
    return model.complete(text, config, should_stop=superseded)


class ModelSuggester(Suggester):
    """Completes a seed as `LanguageModel.complete` does, in a thread, cached per model and decoding options.

    Textual's contract: `get_suggestion(value)` returns the whole value, or None for no suggestion
    (also for a call dropped as stale: the caller has newer text by then).
    """

    def __init__(self, gate: ModelGate, ghost_seed: int = 0, cache_size: int = 1024) -> None:
        super().__init__(use_cache=False, case_sensitive=True)  # own cache: it must forget on model changes
        self.gate, self.ghost_seed = gate, ghost_seed
        self._model: LanguageModel | None = None
        self._config = GenerationConfig()
        self._cache: LRUCache[str, str] = LRUCache(cache_size)
        self._epoch = 0  # bumped on every model or option change; answers from older epochs are not cached
        self.model_calls = 0  # completions computed rather than found in the cache

    def use(self, model: LanguageModel | None, config: GenerationConfig) -> None:
        """Suggest with this model and these options from now on."""
        # a fixed sampling seed keeps the ghost still while the text does not change
        config = replace(
            config, num_return_sequences=1, num_beams=1, seed=self.ghost_seed if config.seed is None else config.seed
        )
        if model is not self._model or config != self._config:
            self._model, self._config, self._epoch = model, config, self._epoch + 1
            self._cache.clear()

    async def get_suggestion(self, value: str) -> str | None:
        completion = await self.completion(value)
        return value + completion if completion else None

    async def completion(self, value: str) -> str | None:
        """What to append to `value`; "" when the model has nothing to add, None when stale or no model."""
        model, config, epoch = self._model, self._config, self._epoch
        if model is None or not value.strip():
            return None
        cached = self._cache.get(value)
        if cached is not None:
            return cached
        try:
            completion = await self.gate.run_abandonable("ghost", complete_unless, model, value, config)
        except Stale:
            return None
        except ContinuoError:
            completion = ""  # e.g. only unknown words so far: no ghost until a known word is typed
        self.model_calls += 1
        if epoch == self._epoch:
            self._cache.set(value, completion)
        return completion
