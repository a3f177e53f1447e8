"""The network: Embedding -> Bidirectional LSTM layers -> LSTM -> dropout -> logits over the vocabulary.

The "lstm-lm" architecture, an option, reads one way and predicts after every position of its window.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

from .backend import load_keras
from .errors import ConfigError

# Sizes for a corpus of at most this many training tokens: small enough that a 10-minute budget trains
# several epochs of a million tokens and generation stays fast (bench/results/quality.md, core.md).
SIZES_BY_TOKENS: tuple[tuple[int | None, dict[str, Any]], ...] = (
    (60_000, dict(window=12, embedding_dim=128, units=128)),
    (250_000, dict(window=10, embedding_dim=128, units=128)),
    (None, dict(window=8, embedding_dim=128, units=128)),
)


ARCHITECTURES = ("bilstm", "lstm-lm")


@dataclass
class ModelConfig:
    vocab_size: int = 0  # set from the tokenizer's vocabulary
    window: int | None = None  # tokens of context read to predict the next one
    embedding_dim: int | None = None  # size of each token's vector
    units: int | None = None  # LSTM units per direction
    bidirectional_layers: int = 1  # stacked sequence layers before the final LSTM
    bidirectional: bool = True  # read the window both ways in those layers
    dropout: float = 0.2  # on the embeddings and before the output layer
    architecture: str = "bilstm"  # "bilstm" reads windows both ways; "lstm-lm" one way, learning from every position

    def validate(self) -> ModelConfig:
        for name in ("window", "embedding_dim", "units"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise ConfigError(f"{name} must be at least 1, got {value}")
        if self.bidirectional_layers < 0:
            raise ConfigError(f"bidirectional_layers must be 0 or more, got {self.bidirectional_layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"dropout must be in [0, 1), got {self.dropout}")
        if self.architecture not in ARCHITECTURES:
            raise ConfigError(
                f"architecture must be {' or '.join(map(repr, ARCHITECTURES))}, got {self.architecture!r}"
            )
        return self

    def sized_for(self, tokens: int) -> ModelConfig:
        """This config with the sizes left open chosen for a corpus of `tokens` training tokens."""
        sizes = next(sizes for limit, sizes in SIZES_BY_TOKENS if limit is None or tokens <= limit)
        return replace(self, **{k: v for k, v in sizes.items() if getattr(self, k) is None})

    @property
    def every_position(self) -> bool:
        """Whether the model predicts the token after every position of its window, not just after the last."""
        return self.architecture == "lstm-lm"

    def to_dict(self) -> dict:
        return asdict(self)


def build_model(cfg: ModelConfig, unroll: bool = False):
    """A keras.Model mapping windows of token ids (batch, window) to next-token logits: (batch, vocab) after
    the last position, or with the "lstm-lm" architecture (batch, window, vocab) after every position.

    `unroll` lays the LSTM steps out one by one instead of in a loop: faster to train on a CPU over short
    windows (bench/core_bench.py), but never for a model that is saved, which keeps the loop that cuDNN needs.
    """
    keras = load_keras()
    layers = keras.layers
    cfg = cfg.validate().sized_for(0) if None in (cfg.window, cfg.embedding_dim, cfg.units) else cfg.validate()
    both_ways = cfg.bidirectional and not cfg.every_position  # reading backwards would see the tokens to predict
    tokens = keras.Input((cfg.window,), dtype="int32", name="tokens")
    x = layers.Embedding(cfg.vocab_size, cfg.embedding_dim, name="embedding")(tokens)
    x = layers.Dropout(cfg.dropout)(x)
    for i in range(cfg.bidirectional_layers):
        lstm = layers.LSTM(cfg.units, return_sequences=True, unroll=unroll, name=f"lstm_{i}")
        x = layers.Bidirectional(lstm, name=f"bilstm_{i}")(x) if both_ways else lstm(x)
    x = layers.LSTM(cfg.units, return_sequences=cfg.every_position, unroll=unroll, name="lstm_last")(x)
    x = layers.Dropout(cfg.dropout)(x)
    logits = layers.Dense(cfg.vocab_size, name="logits", dtype="float32")(x)  # float32 even under mixed precision
    return keras.Model(tokens, logits, name="continuo")
