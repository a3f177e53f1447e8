"""A model bundle: one directory with the Keras model, the vocabulary, the config and a model card.

Bundles are written to a temporary sibling directory and renamed into place, so a reader sees
either the old bundle or the new one, never half of one.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from .errors import BundleError
from .model import ModelConfig
from .tokenizer import Tokenizer

FORMAT_VERSION = 1  # bump when the files of a bundle change meaning
MODEL_FILE, VOCAB_FILE, CONFIG_FILE, CARD_FILE = "model.keras", "vocab.json", "config.json", "card.json"


@dataclass
class ModelCard:
    """What a user wants to know about a trained model."""

    name: str = ""  # the bundle's name
    corpus: str = ""  # where the text came from
    tokens: int = 0  # tokens of training text
    vocab_size: int = 0
    val_perplexity: float | None = None  # on the held-out split; lower is better
    epochs: int = 0  # epochs trained
    examples: int = 0  # training windows seen, over all epochs
    train_seconds: float = 0.0
    stopped: str = ""  # why training ended: completed, early stopping, time budget
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    hyperparameters: dict = field(default_factory=dict)  # model and training settings
    history: dict = field(default_factory=dict)  # per-epoch loss and validation perplexity

    @classmethod
    def from_dict(cls, data: dict) -> "ModelCard":
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


def save_bundle(path: str | Path, model, tokenizer: Tokenizer, config: ModelConfig, card: ModelCard) -> Path:
    """Write the bundle atomically at `path`, replacing any bundle there."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    try:
        model.save(tmp / MODEL_FILE)
        (tmp / VOCAB_FILE).write_text(tokenizer.to_json(), "utf-8")
        (tmp / CONFIG_FILE).write_text(json.dumps({"format_version": FORMAT_VERSION, "model": config.to_dict()},
                                                  indent=2), "utf-8")
        (tmp / CARD_FILE).write_text(json.dumps(asdict(card), indent=2, ensure_ascii=False), "utf-8")
        _fsync_dir(tmp)
        replace_dir(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def replace_dir(new: Path, target: Path) -> None:
    """Move directory `new` to `target`; an old `target` is swapped out first, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        os.replace(target, old)
    os.replace(new, target)
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_card(path: str | Path) -> ModelCard:
    """The card of the bundle at `path` without loading its weights."""
    path = Path(path)
    check_bundle(path)
    try:
        return ModelCard.from_dict(json.loads((path / CARD_FILE).read_text("utf-8")))
    except (ValueError, TypeError) as e:
        raise BundleError(f"{path}: corrupt model card ({e}); retrain the model") from None


def check_bundle(path: Path) -> dict:
    """The bundle's config, after checking its files are there and of our format version."""
    if not path.is_dir():
        raise BundleError(f"{path}: no model bundle there; train one with `continuo train` or pick another")
    missing = [f for f in (MODEL_FILE, VOCAB_FILE, CONFIG_FILE, CARD_FILE) if not (path / f).is_file()]
    if missing:
        raise BundleError(f"{path}: not a complete model bundle (missing {', '.join(missing)}); retrain it")
    try:
        config = json.loads((path / CONFIG_FILE).read_text("utf-8"))
    except ValueError:
        raise BundleError(f"{path}: corrupt {CONFIG_FILE}; retrain the model") from None
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise BundleError(f"{path}: bundle format {version}, this Continuo reads format {FORMAT_VERSION}; "
                          "retrain the model with this version")
    return config


def load_bundle(path: str | Path):
    """(keras model, tokenizer, model config, card) of the bundle at `path`."""
    from .backend import load_keras

    keras = load_keras()

    path = Path(path)
    config = check_bundle(path)
    try:
        tokenizer = Tokenizer.from_json((path / VOCAB_FILE).read_text("utf-8"))
        model_config = ModelConfig(**config["model"])
        model = keras.models.load_model(path / MODEL_FILE, compile=False, safe_mode=True)
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as e:
        raise BundleError(f"{path}: corrupt model bundle ({type(e).__name__}); retrain the model") from None
    if model.output_shape[-1] != len(tokenizer):
        raise BundleError(f"{path}: model and vocabulary do not match; retrain the model")
    return model, tokenizer, model_config, read_card(path)
