"""Training: text -> tokens -> streamed windows -> fitted model -> saved bundle, with progress and cancel."""
from __future__ import annotations

import hashlib
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .bundle import ModelCard, save_bundle
from .errors import Cancelled, ContinuoError, CorpusTooSmall
from .model import ModelConfig, build_model
from .tokenizer import Tokenizer

MIN_TOKENS = 2000  # below this there is too little text to learn from (about 1,500 words)


@dataclass
class TrainConfig:
    epochs: int = 30  # upper bound; early stopping usually ends sooner
    batch_size: int = 256  # windows per step
    learning_rate: float = 2e-3  # Adam
    clipnorm: float = 1.0  # gradient clipping keeps the LSTMs stable
    validation_split: float = 0.1  # held-out tail of the text, when no validation text is given
    patience: int = 2  # epochs without a better validation perplexity before stopping
    max_minutes: float | None = None  # time budget; the best weights so far are kept
    seed: int = 1234  # makes vocabulary, initial weights and data order repeatable
    tokenizer: str = "words"  # "words", or "whitespace" for pre-tokenized corpora like PTB
    min_count: int = 2  # rarer words become the unknown token
    max_vocab: int = 20000  # vocabulary cap, special tokens included
    short_context_rate: float = 0.15  # share of windows cut short, so short seeds work
    mixed_precision: bool = False  # bfloat16 compute: about 2x faster on CPUs with AVX-512 BF16

    def validate(self) -> "TrainConfig":
        checks = [
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (self.learning_rate > 0, f"learning_rate must be positive, got {self.learning_rate}"),
            (0 < self.validation_split < 0.5, f"validation_split must be in (0, 0.5), got {self.validation_split}"),
            (self.patience >= 1, f"patience must be at least 1, got {self.patience}"),
            (self.max_minutes is None or self.max_minutes > 0, f"max_minutes must be positive, got {self.max_minutes}"),
            (self.min_count >= 1, f"min_count must be at least 1, got {self.min_count}"),
            (self.max_vocab >= 3, f"max_vocab must be at least 3, got {self.max_vocab}"),
            (0 <= self.short_context_rate <= 1, f"short_context_rate must be in [0, 1], got {self.short_context_rate}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ContinuoError(message)
        return self


@dataclass
class Progress:
    """One progress report; front-ends draw bars, charts and logs from these."""

    phase: str  # "start", "batch", "epoch" or "done"
    epoch: int  # 1-based epoch being trained
    epochs: int  # upper bound on epochs
    batch: int = 0  # batches done in this epoch
    batches: int = 0  # batches per epoch
    loss: float | None = None  # training loss (cross-entropy, nats per token)
    val_perplexity: float | None = None  # after each epoch
    elapsed_s: float = 0.0
    eta_s: float | None = None  # time left if training runs all epochs (or to its time budget)
    message: str = ""  # a line for logs

    @property
    def fraction(self) -> float:
        if self.phase == "done":
            return 1.0
        done = (self.epoch - 1) * self.batches + self.batch
        return min(1.0, done / max(1, self.epochs * self.batches))


ProgressCallback = Callable[[Progress], None]
ShouldStop = Callable[[], bool]


@dataclass
class TrainResult:
    path: Path  # the saved bundle
    card: ModelCard
    history: dict = field(default_factory=dict)


def prepare(text: str, cfg: TrainConfig, valid_text: str | None = None):
    """(tokenizer, train ids, validation ids); refuses a corpus too small to learn from."""
    tokens = Tokenizer(mode=cfg.tokenizer).split(text)
    if len(tokens) < MIN_TOKENS:
        raise CorpusTooSmall(f"the corpus has {len(tokens):,} tokens; at least {MIN_TOKENS:,} are needed "
                             f"(about {MIN_TOKENS - len(tokens):,} more words of text)")
    if valid_text is None:
        cut = int(len(tokens) * (1 - cfg.validation_split))
        train_tokens, valid_tokens = tokens[:cut], tokens[cut:]
    else:
        train_tokens, valid_tokens = tokens, Tokenizer(mode=cfg.tokenizer).split(valid_text)
    tokenizer = Tokenizer.fit(train_tokens, cfg.tokenizer, cfg.min_count, cfg.max_vocab)
    as_ids = lambda toks: np.array(tokenizer.encode(toks), np.int32)
    return tokenizer, as_ids(train_tokens), as_ids(valid_tokens)


def train(text: str, out: str | Path, model_config: ModelConfig | None = None,
          train_config: TrainConfig | None = None, *, name: str | None = None, corpus_name: str = "",
          valid_text: str | None = None, on_progress: ProgressCallback | None = None, should_stop: ShouldStop | None = None,
          checkpoint_dir: str | Path | None = None) -> TrainResult:
    """Train a model on `text` and save it as a bundle at `out`.

    `on_progress` receives Progress reports; `should_stop` is polled every batch and, when it
    returns True, training stops at once and Cancelled is raised: nothing is written at `out`.
    With `checkpoint_dir`, each epoch is checkpointed there and an interrupted run of the same
    text and settings resumes from its last epoch.
    """
    from .backend import load_keras
    from .callbacks import Reporter, StopNow

    keras = load_keras()
    tcfg = (train_config or TrainConfig()).validate()
    mcfg = model_config or ModelConfig()
    mcfg.validate()
    keras.utils.set_random_seed(tcfg.seed)
    tokenizer, train_ids, valid_ids = prepare(text, tcfg, valid_text)
    if should_stop is not None and should_stop():
        raise Cancelled("training cancelled; the previous model is unchanged")
    mcfg = ModelConfig(**{**mcfg.to_dict(), "vocab_size": len(tokenizer)})

    if tcfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model(mcfg)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    model.compile(
        optimizer=keras.optimizers.Adam(tcfg.learning_rate, clipnorm=tcfg.clipnorm),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    train_ds = windows_for(train_ids, mcfg, tcfg, shuffle=True)
    valid_ds = windows_for(valid_ids, mcfg, tcfg, shuffle=False)
    batches = math.ceil(len(train_ids) / tcfg.batch_size)

    reporter = Reporter(tcfg, batches, on_progress or (lambda p: None), should_stop or (lambda: False))
    callbacks: list = [reporter]
    backup = _checkpoint_dir(checkpoint_dir, train_ids, mcfg, tcfg)
    if backup is not None:
        callbacks.append(keras.callbacks.BackupAndRestore(str(backup), delete_checkpoint=False))
    callbacks.append(reporter.keep_best)  # after BackupAndRestore, so it sees restored weights

    try:
        model.fit(train_ds, validation_data=valid_ds, epochs=tcfg.epochs, callbacks=callbacks,
                  shuffle=False, verbose=0)  # the dataset shuffles itself
    except StopNow:
        raise Cancelled("training cancelled; the previous model is unchanged") from None
    if reporter.keep_best.best_weights is None:
        raise Cancelled("training stopped before its first epoch ended; nothing was saved")
    model.set_weights(reporter.keep_best.best_weights)

    inference = build_model(mcfg)  # float32, without optimizer state: what the bundle keeps
    inference.set_weights(model.get_weights())
    card = ModelCard(
        name=name or Path(out).name, corpus=corpus_name, tokens=int(len(train_ids)), vocab_size=len(tokenizer),
        val_perplexity=round(math.exp(reporter.keep_best.best_loss), 3), epochs=reporter.epochs_done,
        examples=reporter.examples,
        train_seconds=round(time.monotonic() - reporter.start, 1), stopped=reporter.stop_reason(),
        hyperparameters={"model": mcfg.to_dict(), "train": asdict(tcfg)}, history=reporter.history,
    )
    path = save_bundle(out, inference, tokenizer, mcfg, card)
    if backup is not None:
        shutil.rmtree(backup, ignore_errors=True)
    reporter.emit("done", message=f"saved {path.name}: validation perplexity {card.val_perplexity:.2f}")
    return TrainResult(path, card, reporter.history)


def windows_for(ids: np.ndarray, mcfg: ModelConfig, tcfg: TrainConfig, shuffle: bool):
    from .data import windows_dataset

    return windows_dataset(ids, mcfg.window, tcfg.batch_size, shuffle=shuffle, seed=tcfg.seed,
                           short_context_rate=tcfg.short_context_rate if shuffle else 0.0)


def _checkpoint_dir(root, train_ids: np.ndarray, mcfg: ModelConfig, tcfg: TrainConfig) -> Path | None:
    """A checkpoint folder keyed by the data and settings, so only the same run resumes from it."""
    if root is None:
        return None
    digest = hashlib.sha256(train_ids.tobytes())
    digest.update(json.dumps([mcfg.to_dict(), asdict(tcfg)], sort_keys=True).encode())
    path = Path(root)
    stamp = path / "fingerprint"
    if path.exists() and (not stamp.exists() or stamp.read_text() != digest.hexdigest()):
        shutil.rmtree(path)  # another corpus or other settings: start afresh
    path.mkdir(parents=True, exist_ok=True)
    stamp.write_text(digest.hexdigest())
    return path
