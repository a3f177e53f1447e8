"""Keras callbacks that report training progress, keep the best weights and apply the time budget and cancel hook."""
from __future__ import annotations

import math
import time

from .backend import load_keras
from .training import Progress, ProgressCallback, ShouldStop, TrainConfig

keras = load_keras()


class StopNow(Exception):
    """Raised inside fit() to abandon training at once."""


def _callback_base():
    from .backend import load_keras

    keras = load_keras()

    return keras.callbacks.Callback


class KeepBest(_callback_base()):
    """Early stopping on validation loss that always ends with the best weights."""

    def __init__(self, patience: int):
        super().__init__()
        self.patience, self.best_loss, self.best_weights, self.wait = patience, math.inf, None, 0
        self.stopped_early = False

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("val_loss", math.inf)
        if loss < self.best_loss:
            self.best_loss, self.best_weights, self.wait = loss, self.model.get_weights(), 0
        else:
            self.wait += 1
            if self.wait >= self.patience:
                self.model.stop_training = self.stopped_early = True


class Reporter(keras.callbacks.Callback):
    """Turns Keras callbacks into Progress reports and applies the time budget and cancel hook."""

    REPORT_EVERY_S = 0.2  # at most five batch reports a second

    def __init__(self, cfg: TrainConfig, batches: int, on_progress: ProgressCallback, should_stop: ShouldStop):
        super().__init__()
        self.cfg, self.batches, self.on_progress, self.should_stop = cfg, batches, on_progress, should_stop
        self.keep_best = KeepBest(cfg.patience)
        self.start = time.monotonic()
        self.epoch, self.epochs_done, self.initial_epoch, self.last_report, self.loss = 1, 0, 0, 0.0, None
        self.out_of_time = False
        self.examples = 0  # training windows seen (whole batches, so the last one may be counted high)
        self.history: dict[str, list[float]] = {"loss": [], "val_perplexity": []}

    def emit(self, phase: str, batch: int = 0, val_perplexity: float | None = None, message: str = ""):
        elapsed = time.monotonic() - self.start
        done = (self.epoch - 1 - self.initial_epoch) * self.batches + batch
        left = (self.cfg.epochs - self.epoch + 1) * self.batches - batch
        eta = elapsed / done * left if done > 0 else None
        if eta is not None and self.cfg.max_minutes:
            eta = min(eta, max(0.0, self.cfg.max_minutes * 60 - elapsed))
        self.on_progress(Progress(phase, self.epoch, self.cfg.epochs, batch, self.batches, self.loss,
                                  val_perplexity, elapsed, eta if phase != "done" else 0.0, message))

    def stop_reason(self) -> str:
        if self.keep_best.stopped_early:
            return f"early stopping after {self.epoch} epochs"
        if self.out_of_time:
            return f"time budget of {self.cfg.max_minutes:g} minutes"
        return "completed all epochs"

    def on_train_begin(self, logs=None):
        self.emit("start", message=f"training: {self.batches} batches per epoch, up to {self.cfg.epochs} epochs")

    def on_epoch_begin(self, epoch, logs=None):
        if self.epochs_done == 0 and epoch > 0:
            self.initial_epoch = epoch  # resumed from a checkpoint
        self.epoch = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        self.examples += self.cfg.batch_size
        if self.should_stop():
            raise StopNow
        if self.cfg.max_minutes and time.monotonic() - self.start > self.cfg.max_minutes * 60:
            self.model.stop_training = self.out_of_time = True
        now = time.monotonic()
        if now - self.last_report >= self.REPORT_EVERY_S:
            self.loss, self.last_report = float((logs or {}).get("loss", math.nan)), now
            self.emit("batch", batch + 1)

    def on_epoch_end(self, epoch, logs=None):
        logs = logs or {}
        self.epochs_done += 1
        self.loss = float(logs.get("loss", math.nan))
        ppl = math.exp(min(logs.get("val_loss", math.inf), 50.0))
        self.history["loss"].append(round(self.loss, 4))
        self.history["val_perplexity"].append(round(ppl, 3))
        self.emit("epoch", self.batches, ppl, f"epoch {self.epoch}: loss {self.loss:.3f}, validation perplexity {ppl:.2f}")
