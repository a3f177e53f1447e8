"""TUI fixtures: no default model, a store with a model in it, and a bundle whose outputs never vary."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

VERSE = Path(__file__).resolve().parents[2] / "corpora" / "verse" / "corpus.txt"


@pytest.fixture
def no_default_model(monkeypatch, tmp_path):
    """Pretend the bundled default model has not been trained yet (it may or may not exist in a checkout)."""
    import core.store

    monkeypatch.setattr(core.store, "DEFAULT_MODEL_PATH", tmp_path / "no-default-model")


@pytest.fixture
def stored_tiny(tiny_model_path, continuo_home) -> Path:
    """The tiny model copied into this test's model store as `tiny`."""
    dest = continuo_home / "models" / "tiny"
    shutil.copytree(tiny_model_path, dest)
    return dest


@pytest.fixture(scope="session")
def fixed_model_path(tmp_path_factory) -> Path:
    """A real bundle with fixed weights and card, so that screens look the same on every machine.

    Training results differ in their last bits between CPUs, which would change a snapshot's
    probabilities and words; weights drawn from a seeded generator do not. The output layer's
    bias is the words' log-frequency, so the model still says plausible, frequent words.
    """
    from core import ModelCard, ModelConfig, read_text
    from core.bundle import save_bundle
    from core.model import build_model
    from core.tokenizer import Tokenizer

    # segmentation 1, as the snapshots were drawn with it: the screens of a bundle saved before segmentation 2
    tokens = Tokenizer(segmentation=1).split(read_text(VERSE))
    tokenizer = Tokenizer.fit(tokens, min_count=3, max_size=600)
    tokenizer.segmentation = 1
    # its own output layer, whose bias is the last weight (the snapshots were drawn with it)
    config = ModelConfig(vocab_size=len(tokenizer), window=8, embedding_dim=16, units=16, tie_embeddings=False)
    model = build_model(config)
    rng = np.random.default_rng(7)
    weights = [rng.normal(0.0, 0.4, w.shape).astype("float32") for w in model.get_weights()]
    counts = np.bincount(tokenizer.encode(tokens), minlength=len(tokenizer)).astype("float64")
    weights[-1] = np.log(counts + 1.0).astype("float32")  # the logits layer's bias
    model.set_weights(weights)
    card = ModelCard(
        name="fixed",
        corpus="verse",
        tokens=len(tokens),
        vocab_size=len(tokenizer),
        val_perplexity=123.456,
        epochs=3,
        train_seconds=12.0,
        stopped="completed all epochs",
        created="2025-01-02T03:04:05+00:00",
    )
    return save_bundle(tmp_path_factory.mktemp("fixed") / "fixed", model, tokenizer, config, card)
