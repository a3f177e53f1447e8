"""Shared fixtures: an isolated data folder for every test and one tiny real model per session."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from testdata import TINY_MODEL, TINY_TRAIN, VERSE


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
