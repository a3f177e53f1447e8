"""Shared fixtures: an isolated data folder for every test and one tiny real model per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"  # read-only reference corpora, by relative path
VERSE = REPO / "corpora" / "verse" / "corpus.txt"
CHAT = REPO / "corpora" / "chat" / "corpus.txt"

TINY_MODEL = dict(window=8, embedding_dim=16, units=16)  # trains in seconds on 2 cores
TINY_TRAIN = dict(epochs=1, batch_size=256, min_count=2)


@pytest.fixture(autouse=True)
def continuo_home(tmp_path, monkeypatch):
    """Every test gets its own empty data folder (CONTINUO_HOME)."""
    from core.settings import get_settings

    home = tmp_path / "continuo-home"
    monkeypatch.setenv("CONTINUO_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A real BiLSTM bundle trained for one epoch on the bundled verse corpus."""
    from core import ModelConfig, TrainConfig, read_text, train

    out = tmp_path_factory.mktemp("models") / "tiny-verse"
    train(read_text(VERSE), out, ModelConfig(**TINY_MODEL), TrainConfig(**TINY_TRAIN), corpus_name="verse")
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    """The tiny bundle loaded once, shared by tests that only read from it."""
    from core import load

    return load(tiny_model_path)
