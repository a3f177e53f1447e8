"""A training run's time budget: when to stop training so that validating, mixing and saving still end within it."""

from __future__ import annotations

import math
import time
from collections.abc import Callable


class TimeBudget:
    """When training must stop so that validating, mixing and saving still end within `--max-minutes`."""

    SAVE_RESERVE_S = 2.0  # writing the bundle and the checkpoint of a model of the sizes a budget is used with
    EVAL_COST = 0.5  # a validation batch (forward pass only) against a training batch (forward and backward)

    def __init__(
        self,
        minutes: float | None,
        elapsed: Callable[[], float],
        valid_tokens: int,
        batch_size: int,
        targets_per_window: int = 1,
        mix_tokens: int = 20_000,
    ):
        self.seconds, self.elapsed = (minutes * 60 if minutes else None), elapsed
        self.valid_tokens, self.batch_size = valid_tokens, batch_size
        self.targets_per_window = targets_per_window  # validation scores this many tokens per window it reads
        self.mix_tokens = mix_tokens  # validation tokens the mixture weights are chosen on
        self.batch_s = 0.0  # this epoch's mean seconds per training batch
        self.compile_s: float | None = None  # the first batch, compiling included: validation's first costs as much
        self._first_batch_s = 0.0  # this epoch's first batch
        self.validated = False

    def _scoring_s(self, tokens: int) -> float:
        return math.ceil(tokens / self.batch_size) * self.batch_s * self.EVAL_COST

    def spent(self, batch: int = 0, epoch_seconds: float = 0.0) -> bool:
        """Whether training must stop now; `batch` and `epoch_seconds` tell how long its batches take."""
        if self.seconds is None:
            return False
        if batch == 1:  # an epoch's first batch waits for the data pipeline (and, once, for compiling)
            self._first_batch_s = epoch_seconds
            self.compile_s = epoch_seconds if self.compile_s is None else self.compile_s
            if self.batch_s <= 0:
                return self.elapsed() > self.seconds  # nothing measured yet to plan with
        elif batch:
            self.batch_s = (epoch_seconds - self._first_batch_s) / (batch - 1)
        compiling = 0.0 if self.validated else self.compile_s or 0.0
        validating = self._scoring_s(self.valid_tokens // self.targets_per_window)
        mixing = self._scoring_s(min(self.valid_tokens, self.mix_tokens))  # one window read per token
        reserve = self.SAVE_RESERVE_S + compiling + (self.compile_s or 0.0) + validating + mixing
        return self.elapsed() + reserve > self.seconds

    def deadline(self) -> float | None:
        """The monotonic time validation must end by, leaving time to choose the mixture and save."""
        self.validated = True
        if self.seconds is None:
            return None
        mixing = (self.compile_s or 0.0) + self._scoring_s(min(self.valid_tokens, self.mix_tokens))  # compiles anew
        return time.monotonic() + self.seconds - self.elapsed() - self.SAVE_RESERVE_S - mixing
