"""Training: text -> tokens -> streamed windows -> fitted model -> saved bundle, with progress and cancel."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from .backend import load_keras, training_replicas
from .bundle import ModelCard, save_bundle
from .checkpoint import EpochCheckpoint, TrainingState
from .data import check_corpus_size
from .errors import Cancelled, ContinuoError
from .model import ModelConfig, build_model
from .tokenizer import Tokenizer

CANCELLED = "training cancelled; the previous model is unchanged"


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
    check_corpus_size(len(tokens))
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
    keras = load_keras()
    tcfg = (train_config or TrainConfig()).validate()
    mcfg = (model_config or ModelConfig()).validate()
    should_stop = should_stop or (lambda: False)
    keras.utils.set_random_seed(tcfg.seed)
    tokenizer, train_ids, valid_ids = prepare(text, tcfg, valid_text)
    if should_stop():
        raise Cancelled(CANCELLED)
    mcfg = ModelConfig(**{**mcfg.to_dict(), "vocab_size": len(tokenizer)})

    if tcfg.mixed_precision:
        keras.mixed_precision.set_global_policy("mixed_bfloat16")
    try:
        model = build_model(mcfg)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    steps = _Steps(model, keras.optimizers.Adam(tcfg.learning_rate, clipnorm=tcfg.clipnorm), mcfg.window,
                   training_replicas())
    train_ds = windows_for(train_ids, mcfg, tcfg, shuffle=True)
    valid_ds = windows_for(valid_ids, mcfg, tcfg, shuffle=False)
    checkpoint = None
    if checkpoint_dir is not None:
        checkpoint = EpochCheckpoint(Path(checkpoint_dir), EpochCheckpoint.fingerprint(train_ids, mcfg, tcfg))
    state = checkpoint.restore(model, steps.optimizer) if checkpoint else TrainingState()
    batches = math.ceil(len(train_ids) / tcfg.batch_size)
    report = _Reporter(tcfg, batches, on_progress or (lambda p: None), first_epoch=state.epochs_done + 1)
    report("start", message=f"training: {batches} batches per epoch, up to {tcfg.epochs} epochs")

    out_of_time = False
    last_epoch = state.epochs_done if state.stopped_early else tcfg.epochs  # a resumed run may be done already
    for epoch in range(state.epochs_done + 1, last_epoch + 1):
        # an epoch: one update per batch, polling the cancel hook and the time budget in between
        steps.reset_mean_loss()
        epoch_start = time.monotonic()
        for batch, (x, y) in enumerate(train_ds, 1):
            steps.train(x, y)
            state.examples += int(x.shape[0])
            if should_stop():
                raise Cancelled(CANCELLED)
            out_of_time = tcfg.max_minutes is not None and report.elapsed() > tcfg.max_minutes * 60
            if report.due() or out_of_time:
                report("batch", epoch, batch, steps.mean_loss())
            if out_of_time:
                break  # a part-epoch still counts: it is validated below
        # then score it on the validation windows and keep the best weights for early stopping
        loss, val_loss = steps.mean_loss(), steps.evaluate(valid_ds)
        perplexity = math.exp(min(val_loss, 50.0))
        state.epochs_done = epoch
        state.history["loss"].append(round(loss, 4))
        state.history["val_perplexity"].append(round(perplexity, 3))
        state.history["epoch_seconds"].append(round(time.monotonic() - epoch_start, 2))
        if val_loss < state.best_loss:
            state.best_loss, state.best_weights, state.epochs_since_best = val_loss, model.get_weights(), 0
        else:
            state.epochs_since_best += 1
            state.stopped_early = state.epochs_since_best >= tcfg.patience
        if checkpoint is not None:
            checkpoint.save(state, model, steps.optimizer)
        report("epoch", epoch, batches, loss, perplexity,
               f"epoch {epoch}: loss {loss:.3f}, validation perplexity {perplexity:.2f}")
        if state.stopped_early or out_of_time:
            break
    if state.best_weights is None:
        raise Cancelled("training stopped before its first epoch ended; nothing was saved")

    inference = build_model(mcfg)  # float32, without optimizer state: what the bundle keeps
    inference.set_weights(state.best_weights)
    stopped = (f"early stopping after {state.epochs_done} epochs" if state.stopped_early
               else f"time budget of {tcfg.max_minutes:g} minutes" if out_of_time else "completed all epochs")
    card = ModelCard(
        name=name or Path(out).name, corpus=corpus_name, tokens=int(len(train_ids)), vocab_size=len(tokenizer),
        val_perplexity=round(math.exp(state.best_loss), 3), epochs=state.epochs_done, examples=state.examples,
        train_seconds=round(report.elapsed(), 1), stopped=stopped,
        hyperparameters={"model": mcfg.to_dict(), "train": asdict(tcfg)}, history=state.history,
    )
    path = save_bundle(out, inference, tokenizer, mcfg, card)
    if checkpoint is not None:
        checkpoint.remove()
    report("done", state.epochs_done, batches, message=f"saved {path.name}: validation perplexity {card.val_perplexity:.2f}")
    return TrainResult(path, card, state.history)


class _Steps:
    """The compiled training and validation steps of one model and optimizer.

    Each batch is cut into one part per training replica (see backend.use_a_replica_per_core);
    the parts' forward and backward passes do not depend on each other, so TensorFlow runs them
    side by side, and their gradients add up to the whole batch's. A plain loop over these steps
    replaces keras' fit(), which ran them a few percent slower and less evenly here.
    """

    def __init__(self, model, optimizer, window: int, replicas: int):
        import tensorflow as tf

        keras = load_keras()
        self.optimizer = optimizer
        optimizer.build(model.trainable_variables)
        self._loss_sum, self._seen = tf.Variable(0.0), tf.Variable(0.0)  # this epoch's mean training loss
        signature = [tf.TensorSpec([None, window], tf.int32), tf.TensorSpec([None], tf.int32)]
        variables = model.trainable_variables

        def padded_parts(x, y):
            """The batch padded to a multiple of the replicas and cut into one part each; padding weighs 0."""
            n = tf.shape(y)[0]
            pad = (-n) % replicas
            weights = tf.concat([tf.ones([n]), tf.zeros([pad])], 0)
            x, y = tf.pad(x, [[0, pad], [0, 0]]), tf.pad(y, [[0, pad]])
            return zip(tf.split(x, replicas), tf.split(y, replicas), tf.split(weights, replicas))

        def loss_sum(x, y, weights, training: bool):
            losses = keras.ops.sparse_categorical_crossentropy(y, model(x, training=training), from_logits=True)
            return tf.reduce_sum(weights * losses)

        @tf.function(input_signature=signature, autograph=False)
        def train(x, y):
            n = tf.cast(tf.shape(y)[0], tf.float32)
            total, grads = 0.0, None
            for xp, yp, wp in padded_parts(x, y):
                with tf.GradientTape() as tape:  # a tape per part keeps the parts' backward passes apart too
                    part = loss_sum(xp, yp, wp, training=True)
                    share = part / n  # the parts' gradients then add up to the batch mean's
                part_grads = tape.gradient(share, variables)
                grads = part_grads if grads is None else [_add_gradients(a, b) for a, b in zip(grads, part_grads)]
                total += part
            optimizer.apply(grads, variables)
            self._loss_sum.assign_add(total)
            self._seen.assign_add(n)

        @tf.function(input_signature=signature, autograph=False)
        def evaluate_batch(x, y):
            return tf.add_n([loss_sum(xp, yp, wp, training=False) for xp, yp, wp in padded_parts(x, y)])

        self.train, self._evaluate_batch = train, evaluate_batch

    def reset_mean_loss(self) -> None:
        self._loss_sum.assign(0.0)
        self._seen.assign(0.0)

    def mean_loss(self) -> float:
        return float(self._loss_sum.numpy()) / max(float(self._seen.numpy()), 1.0)

    def evaluate(self, dataset) -> float:
        """Mean cross-entropy per window over a dataset (nats per token)."""
        total, count = 0.0, 0
        for x, y in dataset:
            total += float(self._evaluate_batch(x, y))
            count += int(x.shape[0])
        return total / max(count, 1)


def _add_gradients(a, b):
    import tensorflow as tf

    if isinstance(a, tf.IndexedSlices) and isinstance(b, tf.IndexedSlices):  # embedding rows stay sparse
        return tf.IndexedSlices(tf.concat([a.values, b.values], 0), tf.concat([a.indices, b.indices], 0), a.dense_shape)
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


class _Reporter:
    """Turns the loop's position into Progress reports, with an ETA, at most five batch reports a second."""

    REPORT_EVERY_S = 0.2

    def __init__(self, cfg: TrainConfig, batches: int, on_progress: ProgressCallback, first_epoch: int):
        self.cfg, self.batches, self.on_progress, self.first_epoch = cfg, batches, on_progress, first_epoch
        self.start = self.last = time.monotonic()

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def due(self) -> bool:
        return time.monotonic() - self.last >= self.REPORT_EVERY_S

    def __call__(self, phase: str, epoch: int = 1, batch: int = 0, loss: float | None = None,
                 val_perplexity: float | None = None, message: str = "") -> None:
        self.last, elapsed = time.monotonic(), self.elapsed()
        done = (epoch - self.first_epoch) * self.batches + batch
        left = (self.cfg.epochs - epoch + 1) * self.batches - batch
        eta = elapsed / done * left if done > 0 else None
        if eta is not None and self.cfg.max_minutes:
            eta = min(eta, max(0.0, self.cfg.max_minutes * 60 - elapsed))
        self.on_progress(Progress(phase, epoch, self.cfg.epochs, batch, self.batches, loss, val_perplexity,
                                  elapsed, 0.0 if phase == "done" else eta, message))


def windows_for(ids: np.ndarray, mcfg: ModelConfig, tcfg: TrainConfig, shuffle: bool):
    from .data import windows_dataset

    return windows_dataset(ids, mcfg.window, tcfg.batch_size, shuffle=shuffle, seed=tcfg.seed,
                           short_context_rate=tcfg.short_context_rate if shuffle else 0.0)
