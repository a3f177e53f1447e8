"""The network: Embedding -> Bidirectional LSTMs -> LSTM -> dropout -> next-word logits from the embedding matrix.

The "lstm-lm" architecture, an option, reads one way and predicts after every position of its window.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, cast

from .backend import load_keras
from .errors import ConfigError

# Sizes for a corpus of at most this many training tokens: small enough that a 10-minute budget trains
# several epochs of a million tokens and generation stays fast (bench/results/quality.md, core.md).
# A small corpus also gets more dropout and weight drop: its model overfits within minutes
# (bench/results/quality.md).
SIZES_BY_TOKENS: tuple[tuple[int | None, dict[str, Any]], ...] = (
    (60_000, dict(window=12, embedding_dim=128, units=128, dropout=0.3, weight_drop=0.5)),
    (250_000, dict(window=10, embedding_dim=128, units=128, dropout=0.2, weight_drop=0.0)),
    (None, dict(window=8, embedding_dim=128, units=128, dropout=0.2, weight_drop=0.0)),
)
UNROLL_MAX_WINDOW = 32  # training on a CPU (or with weight drop) unrolls the LSTM steps of windows up to this long


ARCHITECTURES = ("bilstm", "lstm-lm")


def settings_for_size(config, by_tokens: tuple[tuple[int | None, dict[str, Any]], ...], tokens: int):
    """`config` with each field left open (None) taken from the first row of `by_tokens` whose token limit
    `tokens` is within (a limit of None: any size)."""
    chosen = next(values for limit, values in by_tokens if limit is None or tokens <= limit)
    return replace(config, **{k: v for k, v in chosen.items() if getattr(config, k) is None})


@dataclass
class ModelConfig:
    vocab_size: int = 0  # set from the tokenizer's vocabulary
    window: int | None = None  # tokens of context read to predict the next one
    embedding_dim: int | None = None  # size of each token's vector
    units: int | None = None  # LSTM units per direction
    bidirectional_layers: int = 1  # stacked sequence layers before the final LSTM
    bidirectional: bool = True  # read the window both ways in those layers
    dropout: float | None = None  # on the embeddings and before the output layer
    weight_drop: float | None = None  # share of the LSTMs' recurrent weights dropped per training step (window <= 32)
    tie_embeddings: bool = True  # the output layer scores words with the embedding matrix (bundles before: False)
    architecture: str = "bilstm"  # "bilstm" reads windows both ways; "lstm-lm" one way, learning from every position

    def validate(self) -> ModelConfig:
        for name in ("window", "embedding_dim", "units"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if self.bidirectional_layers < 0:
            raise ConfigError(f"bidirectional_layers must be 0 or more, got {self.bidirectional_layers}")
        if self.dropout is not None and not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.weight_drop is not None and not 0.0 <= self.weight_drop < 1.0:
            raise ConfigError(f"weight_drop must be in [0, 1), got {self.weight_drop}")
        if self.weight_drop and (self.window or 0) > UNROLL_MAX_WINDOW:
            raise ConfigError(
                f"weight_drop needs a window of at most {UNROLL_MAX_WINDOW}, got {self.window}; pass --weight-drop 0"
            )
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(
                f"architecture must be {' or '.join(map(repr, ARCHITECTURES))}, got {self.architecture!r}"
            )
        return self

    def sized_for(self, tokens: int) -> ModelConfig:
        """This config with the sizes left open chosen for a corpus of `tokens` training tokens."""
        sized = settings_for_size(self, SIZES_BY_TOKENS, tokens)
        if self.weight_drop is None and cast(int, sized.window) > UNROLL_MAX_WINDOW:
            sized.weight_drop = 0.0  # only the unrolled LSTM drops weights
        return sized

    @property
    def every_position(self) -> bool:
        """Whether the model predicts the token after every position of its window, not just after the last."""
        return self.architecture == "lstm-lm"

    def to_dict(self) -> dict:
        return asdict(self)


def build_model(cfg: ModelConfig, training_matmuls: str | None = None):
    """A keras.Model mapping windows of token ids (batch, window) to next-token logits: (batch, vocab) after
    the last position, or with the "lstm-lm" architecture (batch, window, vocab) after every position.

    With `training_matmuls` ("float32" or "bfloat16"), the twin that trains on a CPU or with weight drop: the
    same weights in the same order, its LSTMs unrolled with their matrix products in that type
    (core/layers.py). Without, the model that is saved and served, whose LSTM loops cuDNN can run.
    """
    keras = load_keras()
    layers = keras.layers
    cfg = cfg.validate().sized_for(0)  # settings left open: the smallest corpus's, whose window is the longest
    both_ways = cfg.bidirectional and not cfg.every_position  # reading backwards would see the tokens to predict
    units = cast(int, cfg.units)
    dropout, weight_drop = cast(float, cfg.dropout), cast(float, cfg.weight_drop)

    def lstm(name: str, return_sequences: bool, go_backwards: bool = False):
        """keras' LSTM in the served model, its unrolled twin in the training one."""
        if training_matmuls is None:
            return layers.LSTM(units, return_sequences=return_sequences, go_backwards=go_backwards, name=name)
        from .layers import UnrolledLSTM

        return UnrolledLSTM(units, return_sequences, go_backwards, training_matmuls, weight_drop, name=name)

    tokens = keras.Input((cfg.window,), dtype="int32", name="tokens")
    if cfg.tie_embeddings:
        from .layers import TiedEmbedding

        embedding = TiedEmbedding(cfg.vocab_size, cast(int, cfg.embedding_dim), name="embedding")
    else:
        embedding = layers.Embedding(cfg.vocab_size, cfg.embedding_dim, name="embedding")
    x = embedding(tokens)
    x = layers.Dropout(dropout)(x)
    for i in range(cfg.bidirectional_layers):
        if not both_ways:
            x = lstm(f"lstm_{i}", True)(x)
        elif training_matmuls is None:
            x = layers.Bidirectional(lstm(f"lstm_{i}", True), name=f"bilstm_{i}")(x)
        else:  # keras' Bidirectional spelled out: the forward layer's weights, then the backward one's
            forward, backward = lstm(f"bilstm_{i}_forward", True), lstm(f"bilstm_{i}_backward", True, True)
            x = layers.Concatenate(name=f"bilstm_{i}")([forward(x), backward(x)])
    x = lstm("lstm_last", cfg.every_position)(x)
    x = layers.Dropout(dropout)(x)
    if not cfg.tie_embeddings:
        logits = layers.Dense(cfg.vocab_size, name="logits")(x)
    else:
        if cfg.units != cfg.embedding_dim:
            x = layers.Dense(cfg.embedding_dim, name="to_embedding_width")(x)
        logits = embedding(x, reverse=True)
    return keras.Model(tokens, logits, name="continuo")
