"""Training: text -> tokens -> streamed windows -> fitted model -> saved bundle, with progress and cancel."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from .backend import bfloat16_is_faster, load_keras, training_replicas
from .bundle import ModelCard, save_bundle
from .checkpoint import EpochCheckpoint, TrainingState
from .conversation import TurnFormat
from .data import check_corpus_size
from .errors import Cancelled, ConfigError
from .model import UNROLL_MAX_WINDOW, ModelConfig, build_model, settings_for_size
from .ngram import NGramModel, cache_targets_by_order
from .spelling import SpellingModel, spelling_weights
from .training_budget import TimeBudget
from .training_progress import Progress, ProgressCallback, ProgressReporter

__all__ = ["Progress", "ProgressCallback", "TrainConfig", "TrainResult", "build_instant", "prepare", "train"]

if TYPE_CHECKING:
    from .tokenizer import Mode

CANCELLED = "training cancelled; the previous model is unchanged"
_MIN_LR_SHARE = 0.02  # where the learning rate's annealing to the end of a time budget stops
MATMULS = ("auto", "float32", "bfloat16")
MIX_TOKENS = 20_000  # the mixture weight is chosen on at most this many validation tokens (one weight needs few)
# A small corpus gives few steps an epoch and a noisy validation score: larger steps, more patience
# (bench/results/quality.md).
SCHEDULE_BY_TOKENS: tuple[tuple[int | None, dict[str, Any]], ...] = (
    (60_000, dict(learning_rate=8e-3, patience=4)),
    (None, dict(learning_rate=2e-3, patience=2)),
)


@dataclass
class TrainConfig:
    epochs: int = 60  # upper bound; early stopping or the time budget usually ends sooner
    batch_size: int = 256  # windows per step
    learning_rate: float | None = None  # Adam's initial step size
    lr_decay: float = 0.5  # the learning rate is multiplied by this after each epoch that did not improve
    anneal: bool = True  # within a time budget, the learning rate also falls linearly to almost 0 by its end
    clipnorm: float = 1.0  # gradient clipping keeps the LSTMs stable
    validation_split: float = 0.1  # held-out tail of the text, when no validation text is given
    patience: int | None = None  # epochs without a better validation perplexity before stopping
    max_minutes: float | None = 10.0  # time budget for the whole run (None: no limit); the best weights are kept
    seed: int = 1234  # makes vocabulary, initial weights and data order repeatable
    tokenizer: str = "words"  # "words", or "whitespace" for pre-tokenized corpora like PTB
    min_count: int = 2  # rarer words become the unknown token
    max_vocab: int = 20000  # vocabulary cap, special tokens included
    short_context_rate: float = 0.15  # share of windows cut short, so short seeds work
    matmuls: str = "auto"  # LSTM matrix products on a CPU: "bfloat16", "float32" or "auto" (bfloat16 where faster here)

    def validate(self) -> TrainConfig:
        checks = [
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch_size must be at least 1, got {self.batch_size}"),
            (
                self.learning_rate is None or self.learning_rate > 0,
                f"learning_rate must be positive, got {self.learning_rate}",
            ),
            (0 < self.lr_decay <= 1, f"lr_decay must be in (0, 1], got {self.lr_decay}"),
            (
                self.tokenizer in ("words", "whitespace"),
                f"tokenizer must be 'words' or 'whitespace', got {self.tokenizer!r}",
            ),
            (0 < self.validation_split < 0.5, f"validation_split must be in (0, 0.5), got {self.validation_split}"),
            (self.patience is None or self.patience >= 1, f"patience must be at least 1, got {self.patience}"),
            (self.max_minutes is None or self.max_minutes > 0, f"max_minutes must be positive, got {self.max_minutes}"),
            (self.min_count >= 1, f"min_count must be at least 1, got {self.min_count}"),
            (self.max_vocab >= 3, f"max_vocab must be at least 3, got {self.max_vocab}"),
            (0 <= self.short_context_rate <= 1, f"short_context_rate must be in [0, 1], got {self.short_context_rate}"),
            (self.matmuls in MATMULS, f"matmuls must be {', '.join(map(repr, MATMULS))}, got {self.matmuls!r}"),
        ]
        for ok, message in checks:
            if not ok:
                raise ConfigError(message)
        return self

    def sized_for(self, tokens: int) -> TrainConfig:
        """This config with the settings left open chosen for a corpus of `tokens` training tokens."""
        return settings_for_size(self, SCHEDULE_BY_TOKENS, tokens)


ShouldStop = Callable[[], bool]


@dataclass
class TrainResult:
    path: Path  # the saved bundle
    card: ModelCard
    history: dict = field(default_factory=dict)


def prepare(text: str, cfg: TrainConfig, valid_text: str | None = None):
    """(tokenizer, train ids, validation ids, the training part's distinct words); refuses a corpus too small
    to learn from.

    Tokenized in pieces (core.encoding): a 50 MB text never becomes ten million Python strings.
    """
    from .encoding import encode_corpus_words, encode_text

    share = 1.0 if valid_text is not None else 1 - cfg.validation_split
    mode = cast("Mode", cfg.tokenizer)  # validate() checked it
    tokenizer, ids, cut, words = encode_corpus_words(text, mode, cfg.min_count, cfg.max_vocab, share)
    check_corpus_size(len(ids))
    if valid_text is None:
        return tokenizer, ids[:cut], ids[cut:], words
    return tokenizer, ids, encode_text(tokenizer, valid_text), words


def train(
    text: str,
    out: str | Path,
    model_config: ModelConfig | None = None,
    train_config: TrainConfig | None = None,
    *,
    name: str | None = None,
    corpus_name: str = "",
    valid_text: str | None = None,
    on_progress: ProgressCallback | None = None,
    should_stop: ShouldStop | None = None,
    checkpoint_dir: str | Path | None = None,
    keep_checkpoint: bool = False,
    neural: bool = True,
    instant_out: str | Path | None = None,
) -> TrainResult:
    """Train on `text` and save the bundle at `out`.

    First a Kneser-Ney n-gram model is counted (seconds): with `instant_out` it is saved there at once
    as a usable bundle, and with `neural=False` it is all that is trained. Then the neural model trains
    epoch by epoch, and the bundle at `out` serves the mixture of the two that does best on the
    validation text. `on_progress` receives Progress reports; `should_stop` is polled every batch and,
    when it returns True, Cancelled is raised and nothing is written at `out`. With `checkpoint_dir`,
    each epoch is checkpointed there and an interrupted run of the same text and settings resumes; the
    checkpoint is removed once the bundle is saved (with `keep_checkpoint`, the caller removes it once it
    has published the bundle), so a run stopped after its last epoch resumes with no epoch left to train.
    """
    tcfg = (train_config or TrainConfig()).validate()
    mcfg = (model_config or ModelConfig()).validate()
    report = ProgressReporter(tcfg.epochs, tcfg.max_minutes, on_progress or (lambda p: None))
    stop = _canceller(should_stop)
    # 1. text -> vocabulary -> token ids
    tokenizer, train_ids, valid_ids, words = prepare(text, tcfg, valid_text)
    tcfg = tcfg.sized_for(len(train_ids))
    stop()
    # 2. the instant model: Kneser-Ney counts, and the spelling model that scores words outside the vocabulary
    spelling = SpellingModel.fit(words.types, spelling_weights(words.counts, words.known))
    del words  # before the n-gram counts peak
    ngram, ngram_ppl = NGramModel.fit_best(train_ids, valid_ids, len(tokenizer))
    card = _instant_card(ngram, ngram_ppl[ngram.order], spelling, len(tokenizer), len(train_ids), tcfg, report)
    card = replace(
        card, name=name or Path(out).name, corpus=corpus_name, turns=TurnFormat.measure(text, tcfg.tokenizer).to_dict()
    )
    if instant_out is not None or not neural:
        path = save_bundle(
            instant_out if neural and instant_out is not None else out, None, tokenizer, None, card, ngram, spelling
        )
        report(
            "instant",
            message=f"instant {ngram.order}-gram model ready: validation perplexity {card.val_perplexity:.2f}",
            path=str(path),
        )
        if not neural:
            report("done", message=f"saved {path.name}: validation perplexity {card.val_perplexity:.2f}")
            return TrainResult(path, card, {})
    stop()
    # 3. the neural model, epoch by epoch, with early stopping on the validation text, within the time budget
    mcfg = replace(mcfg.sized_for(len(train_ids)), vocab_size=len(tokenizer))
    targets_per_window = _window(mcfg) if mcfg.every_position else 1
    budget = TimeBudget(
        tcfg.max_minutes, report.elapsed, len(valid_ids), tcfg.batch_size, targets_per_window, MIX_TOKENS
    )
    checkpoint = None
    if checkpoint_dir is not None:
        checkpoint = EpochCheckpoint(Path(checkpoint_dir), EpochCheckpoint.fingerprint(train_ids, mcfg, tcfg))
    inference, state, stopped = _train_neural(train_ids, valid_ids, mcfg, tcfg, report, stop, checkpoint, budget)
    stop()
    # 4. the mixture of the neural model, the n-gram model and the cache that does best on the validation text
    card = _mixed_card(card, inference, tokenizer, mcfg, ngram, valid_ids[:MIX_TOKENS])
    card = replace(
        card,
        epochs=state.epochs_done,
        examples=state.examples,
        stopped=stopped,
        train_seconds=round(state.train_seconds + report.elapsed(), 1),
        hyperparameters={"model": mcfg.to_dict(), "train": asdict(tcfg)},
        history=state.history,
    )
    # 5. the bundle
    path = save_bundle(out, inference, tokenizer, mcfg, card, ngram, spelling)
    if checkpoint is not None and not keep_checkpoint:
        checkpoint.remove()
    report(
        "done",
        state.epochs_done,
        report.batches,
        message=f"saved {path.name}: validation perplexity {card.val_perplexity:.2f} (neural "
        f"{card.neural_val_perplexity:.2f}, {ngram.order}-gram {card.ngram_val_perplexity:.2f}, "
        f"serving {card.serves})",
    )
    return TrainResult(path, card, state.history)


def _instant_card(ngram, ngram_ppl: float, spelling, vocab_size: int, tokens: int, tcfg, report) -> ModelCard:
    """The card of the n-gram model alone: what answers until the neural model is trained."""
    return ModelCard(
        tokens=int(tokens),
        vocab_size=vocab_size,
        val_perplexity=round(ngram_ppl, 3),
        ngram_val_perplexity=round(ngram_ppl, 3),
        ngram_order=ngram.order,
        spelling_order=spelling.order,
        neural_weight=0.0,
        hyperparameters={"train": asdict(tcfg)},
        train_seconds=round(report.elapsed(), 1),
        stopped="n-gram model only",
    )


def _mixed_card(card: ModelCard, inference, tokenizer, mcfg: ModelConfig, ngram, mix_ids: np.ndarray) -> ModelCard:
    """The card with the weights of the neural model and of the cache's orders that score `mix_ids` best."""
    from .generate import LanguageModel

    scorer = LanguageModel(inference, tokenizer, mcfg, card, xla=False)  # used once: not worth compiling by XLA
    neural_log_p = scorer.neural_target_log_probs(mix_ids)  # window by window, as served: the costliest reading
    ngram_p = ngram.target_probabilities(mix_ids)
    caches = cache_targets_by_order(mix_ids, len(tokenizer))
    (weight, _, *by_order), mixed_ppl = mixture_weights(np.exp(neural_log_p), ngram_p, *caches)
    cache_weight = round(sum(by_order), 3)
    return replace(
        card,
        val_perplexity=round(mixed_ppl, 3),
        neural_weight=weight,
        cache_weight=cache_weight,
        cache_shares=tuple(round(w / cache_weight, 3) for w in by_order) if cache_weight > 0 else (1.0,),
        neural_val_perplexity=round(math.exp(-float(neural_log_p.mean())), 3),  # all three on the same tokens
        ngram_val_perplexity=round(math.exp(-float(np.log(ngram_p).mean())), 3),
    )


def build_instant(
    text: str,
    out: str | Path,
    train_config: TrainConfig | None = None,
    *,
    name: str | None = None,
    corpus_name: str = "",
    valid_text: str | None = None,
) -> TrainResult:
    """Count a Kneser-Ney n-gram model of `text` and save it as a bundle at `out`: a usable model in seconds."""
    return train(text, out, None, train_config, name=name, corpus_name=corpus_name, valid_text=valid_text, neural=False)


def mixture_weights(*parts: np.ndarray, rounds: int = 200) -> tuple[tuple[float, ...], float]:
    """(weights, perplexity): the shares of each part's P(target) whose mixture scores best on these targets.

    Expectation-maximisation: each round gives every part the share of the targets' probability it
    explains, which never lowers the likelihood and converges to its maximum (the problem is concave).
    """
    p = np.stack(parts)
    w = np.full(len(parts), 1.0 / len(parts))
    for _ in range(rounds):
        share = w[:, None] * p
        share /= np.maximum(share.sum(axis=0), 1e-300)
        w = share.mean(axis=1)
    w = np.round(w, 3)
    return tuple(float(x) for x in w), math.exp(-float(np.log(np.maximum(w @ p / w.sum(), 1e-300)).mean()))


def _canceller(should_stop: ShouldStop | None) -> Callable[[], None]:
    def stop() -> None:
        if should_stop is not None and should_stop():
            raise Cancelled(CANCELLED)

    return stop


def _train_neural(
    train_ids: np.ndarray,
    valid_ids: np.ndarray,
    mcfg: ModelConfig,
    tcfg: TrainConfig,
    report: ProgressReporter,
    stop: Callable[[], None],
    checkpoint: EpochCheckpoint | None,
    budget: TimeBudget,
):
    """(inference model with the best weights, the training state, why training ended)."""
    keras = load_keras()
    keras.utils.set_random_seed(tcfg.seed)
    learning_rate, patience = cast(float, tcfg.learning_rate), cast(int, tcfg.patience)  # sized by train()
    model = build_model(mcfg, _training_matmuls(tcfg, mcfg))
    steps = _Steps(
        model,
        keras.optimizers.Adam(learning_rate, clipnorm=tcfg.clipnorm),
        _window(mcfg),
        training_replicas(),
        mcfg.every_position,
    )
    train_ds = windows_for(train_ids, mcfg, tcfg, shuffle=True)
    valid_ds = windows_for(valid_ids, mcfg, tcfg, shuffle=False)
    state = checkpoint.restore(model, steps.optimizer, tcfg.epochs) if checkpoint else TrainingState()
    windows = math.ceil(len(train_ids) / _window(mcfg)) if mcfg.every_position else len(train_ids)
    report.batches, report.first_epoch = math.ceil(windows / tcfg.batch_size), state.epochs_done + 1
    report("start", message=f"training: {report.batches} batches per epoch, up to {tcfg.epochs} epochs")
    if checkpoint is not None and checkpoint.notice:
        report("start", message=checkpoint.notice)

    last_epoch = state.epochs_done if state.stopped_early else tcfg.epochs  # a resumed run may be done already
    out_of_time = False
    for epoch in range(state.epochs_done + 1, last_epoch + 1):
        epoch_start = time.monotonic()
        out_of_time = _train_epoch(steps, train_ds, epoch, learning_rate, tcfg, state, report, stop, budget)
        loss, val_loss = steps.mean_loss(), steps.evaluate(valid_ds, deadline=budget.deadline())
        perplexity = _end_epoch(state, epoch, loss, val_loss, time.monotonic() - epoch_start, patience, model)
        if checkpoint is not None:  # with the time of this run so far, so a resumed run's card counts it
            checkpoint.save(
                replace(state, train_seconds=state.train_seconds + report.elapsed()), model, steps.optimizer
            )
        report(
            "epoch",
            epoch,
            report.batches,
            loss,
            perplexity,
            f"epoch {epoch}: loss {loss:.3f}, validation perplexity {perplexity:.2f}",
        )
        if state.stopped_early or out_of_time or budget.spent():
            out_of_time = not state.stopped_early
            break
    if state.best_weights is None:
        raise Cancelled("training stopped before its first epoch ended; nothing was saved")

    inference = build_model(mcfg)  # float32, without optimizer state: what the bundle keeps
    inference.set_weights(state.best_weights)
    stopped = (
        f"early stopping after {state.epochs_done} epochs"
        if state.stopped_early
        else f"time budget of {tcfg.max_minutes:g} minutes"
        if out_of_time
        else "completed all epochs"
    )
    return inference, state, stopped


def _train_epoch(steps, train_ds, epoch, learning_rate, tcfg, state, report, stop, budget: TimeBudget) -> bool:
    """One update per batch, polling the cancel hook and the time budget in between; whether the budget ran out
    (a part-epoch still counts: it is validated next)."""
    steps.reset_mean_loss()
    epoch_start = time.monotonic()
    for batch, (x, y) in enumerate(train_ds, 1):
        steps.set_learning_rate(learning_rate * _lr_factor(tcfg, state, report.elapsed()))
        steps.train(x, y)
        state.examples += int(np.prod(y.shape))  # tokens predicted
        stop()
        out_of_time = budget.spent(batch, time.monotonic() - epoch_start)
        if report.due() or out_of_time:
            report("batch", epoch, batch, steps.mean_loss())
        if out_of_time:
            return True
    return False


def _end_epoch(state: TrainingState, epoch: int, loss, val_loss, seconds: float, patience: int, model) -> float:
    """Record the epoch's scores, keep the best weights for early stopping; its validation perplexity."""
    perplexity = math.exp(min(val_loss, 50.0))
    state.epochs_done = epoch
    state.history["loss"].append(round(loss, 4))
    state.history["val_perplexity"].append(round(perplexity, 3))
    state.history["epoch_seconds"].append(round(seconds, 2))
    if val_loss < state.best_loss:
        state.best_loss, state.best_weights, state.epochs_since_best = val_loss, model.get_weights(), 0
    else:
        state.epochs_since_best += 1
        state.stopped_early = state.epochs_since_best >= patience
    return perplexity


def _training_matmuls(cfg: TrainConfig, model: ModelConfig) -> str | None:
    """How the training model computes (see build_model): unrolled over short windows, with its matrix
    products in bfloat16 where this CPU computes them faster so; on a GPU, keras' cuDNN loop unless weights
    are dropped, which only the unrolled LSTM does."""
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    if _window(model) > UNROLL_MAX_WINDOW or (gpu and not model.weight_drop):
        return None
    if cfg.matmuls == "auto":
        rows = math.ceil(cfg.batch_size / training_replicas())  # a replica's share of a batch
        return "bfloat16" if not gpu and bfloat16_is_faster(rows, cast(int, model.units)) else "float32"
    return cfg.matmuls


def _lr_factor(cfg: TrainConfig, state: TrainingState, elapsed_s: float) -> float:
    """The learning rate's share of its start: lower after each epoch that did not improve, and falling
    linearly to almost nothing by the end of a time budget (so the budget ends on annealed weights)."""
    factor = cfg.lr_decay**state.epochs_since_best
    if cfg.max_minutes and cfg.anneal:
        factor *= max(_MIN_LR_SHARE, 1.0 - elapsed_s / (cfg.max_minutes * 60))
    return factor


class _Steps:
    """The compiled training and validation steps of one model and optimizer.

    Each batch is cut into one part per training replica (see backend.use_a_replica_per_core);
    the parts' forward and backward passes do not depend on each other, so TensorFlow runs them
    side by side, and their gradients add up to the whole batch's. A plain loop over these steps
    replaces keras' fit(): the same updates, with no callbacks to thread state through.
    """

    def __init__(self, model, optimizer, window: int, replicas: int, every_position: bool = False):
        import tensorflow as tf

        keras = load_keras()
        self.optimizer = optimizer
        self._learning_rate = float(optimizer.learning_rate.numpy())
        optimizer.build(model.trainable_variables)
        self._loss_sum, self._seen = tf.Variable(0.0), tf.Variable(0.0)  # this epoch's mean training loss
        targets = [None, window] if every_position else [None]
        signature = [tf.TensorSpec([None, window], tf.int32), tf.TensorSpec(targets, tf.int32)]
        variables = model.trainable_variables

        def padded_parts(x, y):
            """The batch padded to a multiple of the replicas and cut into one part each."""
            pad = (-tf.shape(y)[0]) % replicas
            x, y = tf.pad(x, [[0, pad], [0, 0]]), tf.pad(y, [[0, pad]] + [[0, 0]] * (len(targets) - 1))
            return zip(tf.split(x, replicas), tf.split(y, replicas), strict=True)

        def weights(y):
            return tf.cast(tf.not_equal(y, 0), tf.float32)  # a padding target (id 0, never a real token) weighs 0

        def loss_sum(x, y, training: bool):
            losses = keras.ops.sparse_categorical_crossentropy(y, model(x, training=training), from_logits=True)
            return tf.reduce_sum(weights(y) * losses)

        @tf.function(input_signature=signature, autograph=False)
        def train(x, y):
            n = tf.reduce_sum(weights(y))
            total, grads = 0.0, None
            for xp, yp in padded_parts(x, y):
                with tf.GradientTape() as tape:  # a tape per part keeps the parts' backward passes apart too
                    part = loss_sum(xp, yp, training=True)
                    share = part / n  # the parts' gradients then add up to the batch mean's
                part_grads = tape.gradient(share, variables)
                if grads is None:
                    grads = part_grads
                else:
                    grads = [_add_gradients(a, b) for a, b in zip(grads, part_grads, strict=True)]
                total += part
            optimizer.apply(grads, variables)
            self._loss_sum.assign_add(total)
            self._seen.assign_add(n)

        @tf.function(input_signature=signature, autograph=False)
        def evaluate_batch(x, y):
            return tf.add_n([loss_sum(xp, yp, training=False) for xp, yp in padded_parts(x, y)]), tf.reduce_sum(
                weights(y)
            )

        self.train, self._evaluate_batch = train, evaluate_batch

    def set_learning_rate(self, value: float) -> None:
        if (
            abs(value - self._learning_rate) > 0.005 * self._learning_rate
        ):  # skip the op for changes too small to matter
            self.optimizer.learning_rate = value
            self._learning_rate = value

    def reset_mean_loss(self) -> None:
        self._loss_sum.assign(0.0)
        self._seen.assign(0.0)

    def mean_loss(self) -> float:
        return float(self._loss_sum.numpy()) / max(float(self._seen.numpy()), 1.0)

    def evaluate(self, dataset, deadline: float | None = None) -> float:
        """Mean cross-entropy per target over a dataset (nats per token); past `deadline`, over its first batches."""
        total, count = 0.0, 0.0
        for x, y in dataset:
            batch_total, batch_count = self._evaluate_batch(x, y)
            total, count = total + float(batch_total), count + float(batch_count)
            if deadline is not None and time.monotonic() > deadline:
                break  # the time budget is spent: the batches scored so far stand for the rest
        return total / max(count, 1)


def _add_gradients(a, b):
    import tensorflow as tf

    if isinstance(a, tf.IndexedSlices) and isinstance(b, tf.IndexedSlices):  # embedding rows stay sparse
        return tf.IndexedSlices(tf.concat([a.values, b.values], 0), tf.concat([a.indices, b.indices], 0), a.dense_shape)
    return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)


def _window(mcfg: ModelConfig) -> int:
    """The context a sized config reads (sized_for() fills it in when it was left open)."""
    assert mcfg.window is not None, "the model config was not sized for its corpus"
    return mcfg.window


def windows_for(ids: np.ndarray, mcfg: ModelConfig, tcfg: TrainConfig, shuffle: bool):
    from .data import sequences_dataset, windows_dataset

    make = sequences_dataset if mcfg.every_position else windows_dataset
    return make(
        ids,
        _window(mcfg),
        tcfg.batch_size,
        shuffle=shuffle,
        seed=tcfg.seed,
        short_context_rate=tcfg.short_context_rate if shuffle else 0.0,
    )
