"""Progress of a training run: the reports front-ends draw from, and the reporter that times them with an ETA."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Progress:
    """One progress report; front-ends draw bars, charts and logs from these."""

    phase: str  # "instant" (the n-gram model is ready), "start", "batch", "epoch" or "done"
    epoch: int  # 1-based epoch being trained
    epochs: int  # upper bound on epochs
    batch: int = 0  # batches done in this epoch
    batches: int = 0  # batches per epoch
    loss: float | None = None  # training loss (cross-entropy, nats per token)
    val_perplexity: float | None = None  # after each epoch
    elapsed_s: float = 0.0
    eta_s: float | None = None  # time left if training runs all epochs (or to its time budget)
    message: str = ""  # a line for logs
    path: str = ""  # with phase "instant": the n-gram model's bundle, usable at once

    @property
    def fraction(self) -> float:
        if self.phase == "done":
            return 1.0
        done = (self.epoch - 1) * self.batches + self.batch
        return min(1.0, done / max(1, self.epochs * self.batches))


ProgressCallback = Callable[[Progress], None]


class ProgressReporter:
    """Turns the loop's position into Progress reports, with an ETA, at most five batch reports a second."""

    REPORT_EVERY_S = 0.2

    def __init__(
        self, epochs: int, max_minutes: float | None, on_progress: ProgressCallback, start: float | None = None
    ):
        self.epochs, self.max_minutes, self.on_progress = epochs, max_minutes, on_progress
        self.batches, self.first_epoch = 0, 1  # set once the neural model's epochs are known
        self.start = start if start is not None else time.monotonic()
        self.last = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.REPORT_EVERY_S

    def __call__(
        self,
        phase: str,
        epoch: int = 1,
        batch: int = 0,
        loss: float | None = None,
        val_perplexity: float | None = None,
        message: str = "",
        path: str = "",
    ) -> None:
        self.last, elapsed = time.monotonic(), self.elapsed()
        done = (epoch - self.first_epoch) * self.batches + batch
        left = (self.epochs - epoch + 1) * self.batches - batch
        eta = elapsed / done * left if done > 0 else None
        if eta is not None and self.max_minutes:
            eta = min(eta, max(0.0, self.max_minutes * 60 - elapsed))
        self.on_progress(
            Progress(
                phase,
                epoch,
                self.epochs,
                batch,
                self.batches,
                loss,
                val_perplexity,
                elapsed,
                0.0 if phase == "done" else eta,
                message,
                path,
            )
        )
