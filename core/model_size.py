"""How many weights a model of given settings has, and the disk a training run of it needs at its peak."""

from __future__ import annotations

SAVES_IN_FLIGHT = 5  # old bundle + new bundle + checkpoint (weights, 2 Adam moments, best weights) at once, in bundles
_SLACK_BYTES = 8 << 20  # vocab, card, config, the file system's own rounding


def parameter_count(model_config, vocab_size: int) -> int:
    """Weights of the network (embedding, LSTM layers, softmax) over a vocabulary of `vocab_size` words."""
    e, u, layers = model_config.embedding_dim, model_config.units, model_config.bidirectional_layers
    directions = 2 if model_config.bidirectional else 1
    params, width = vocab_size * e, e
    for _ in range(layers):
        params += directions * 4 * (width + u + 1) * u
        width = directions * u
    return params + 4 * (width + u + 1) * u + (u + 1) * vocab_size


def estimated_bytes(model_config, train_config) -> int:
    """Roughly the disk a run of these settings needs at its peak, from a vocabulary at its cap."""
    vocab_size = max(3, int(getattr(train_config, "max_vocab", 20000)))
    largest = model_config.sized_for(0)  # sizes left open: the largest the corpus could get
    return SAVES_IN_FLIGHT * 4 * parameter_count(largest, vocab_size) + _SLACK_BYTES
