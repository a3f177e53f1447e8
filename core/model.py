"""The network: Embedding -> Bidirectional LSTM layers -> LSTM -> dropout -> logits over the vocabulary."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .backend import load_keras


@dataclass
class ModelConfig:
    vocab_size: int = 0  # set from the tokenizer's vocabulary
    window: int = 16  # tokens of context read to predict the next one
    embedding_dim: int = 128  # size of each token's vector
    units: int = 256  # LSTM units per direction
    bidirectional_layers: int = 1  # stacked sequence layers before the final LSTM
    bidirectional: bool = True  # read the window both ways in those layers
    dropout: float = 0.2  # on the embeddings and before the output layer

    def validate(self) -> "ModelConfig":
        for name in ("window", "embedding_dim", "units"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")
        if self.bidirectional_layers < 0:
            raise ValueError(f"bidirectional_layers must be 0 or more, got {self.bidirectional_layers}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {self.dropout}")
        return self

    def to_dict(self) -> dict:
        return asdict(self)


def build_model(cfg: ModelConfig):
    """A keras.Model mapping a window of token ids (batch, window) to next-token logits (batch, vocab)."""
    keras = load_keras()
    layers = keras.layers
    cfg.validate()
    tokens = keras.Input((cfg.window,), dtype="int32", name="tokens")
    x = layers.Embedding(cfg.vocab_size, cfg.embedding_dim, name="embedding")(tokens)
    x = layers.Dropout(cfg.dropout)(x)
    for i in range(cfg.bidirectional_layers):
        lstm = layers.LSTM(cfg.units, return_sequences=True, name=f"lstm_{i}")
        x = layers.Bidirectional(lstm, name=f"bilstm_{i}")(x) if cfg.bidirectional else lstm(x)
    x = layers.LSTM(cfg.units, name="lstm_last")(x)
    x = layers.Dropout(cfg.dropout)(x)
    logits = layers.Dense(cfg.vocab_size, name="logits", dtype="float32")(x)  # float32 even under mixed precision
    return keras.Model(tokens, logits, name="continuo")
