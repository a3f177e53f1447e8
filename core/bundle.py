"""A model bundle: one directory with the Keras model, the vocabulary, the config and a model card.

A bundle holds a neural model, a Kneser-Ney n-gram model, or both with the weight they are mixed
by, and (from format 3) the spelling model that scores words outside the vocabulary. Bundles are
written to a temporary sibling directory and renamed into place, so a reader sees either the old
bundle or the new one, never half of one. Formats 1 (neural only) and 2 (no spelling model) still load.
"""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import tempfile
import zipfile
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .errors import BundleError
from .model import ModelConfig
from .ngram import NGramModel
from .spelling import SpellingModel
from .tokenizer import Tokenizer

FORMAT_VERSION = 3  # bump when the files of a bundle change meaning
READABLE_VERSIONS = (1, 2, 3)  # 1: neural model only; 2: no spelling model
MODEL_FILE, VOCAB_FILE, CONFIG_FILE, CARD_FILE = "model.keras", "vocab.json", "config.json", "card.json"
NGRAM_FILE, SPELLING_FILE = "ngram.npz", "spelling.npz"


@dataclass
class ModelCard:
    """What a user wants to know about a trained model."""

    name: str = ""  # the bundle's name
    corpus: str = ""  # where the text came from
    tokens: int = 0  # tokens of training text
    vocab_size: int = 0
    val_perplexity: float | None = None  # of what is served (the mixture, if any) on the held-out split; lower: better
    neural_val_perplexity: float | None = None  # the neural model alone
    ngram_val_perplexity: float | None = None  # the n-gram model alone
    ngram_order: int = 0  # 0: no n-gram model
    spelling_order: int = 0  # the spelling model's order (letters of context + 1); 0: none (bundles before it)
    neural_weight: float = 1.0  # the neural model's share of the served mixture, chosen on the held-out split
    cache_weight: float = 0.0  # the cache's share; the n-gram model has the rest
    cache_shares: tuple[float, ...] = (1.0,)  # within the cache, the share of its orders 1, 2, ...
    epochs: int = 0  # epochs trained
    examples: int = 0  # training windows seen, over all epochs
    train_seconds: float = 0.0
    stopped: str = ""  # why training ended: completed, early stopping, time budget
    created: str = field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))
    hyperparameters: dict = field(default_factory=dict)  # model and training settings
    history: dict = field(default_factory=dict)  # per-epoch loss and validation perplexity
    turns: dict = field(default_factory=dict)  # how the corpus separates turns (core.TurnFormat); older bundles: none

    @property
    def serves(self) -> str:
        """What answers: each part of the mixture with its share."""
        shares = [(self.neural_weight, "neural"), (self.cache_weight, "cache")]
        if self.ngram_order:
            shares.append((1 - self.neural_weight - self.cache_weight, f"{self.ngram_order}-gram"))
        used = [(w, name) for w, name in shares if w > 0.005]
        return used[0][1] if len(used) == 1 else " + ".join(f"{w:.2f} {name}" for w, name in used)

    @classmethod
    def from_dict(cls, data: dict) -> ModelCard:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)


@dataclass
class Bundle:
    """What a bundle holds, loaded."""

    model: object | None  # the keras model, or None for an n-gram-only bundle
    tokenizer: Tokenizer
    config: ModelConfig | None  # the neural model's config
    card: ModelCard
    ngram: NGramModel | None = None
    neural_weight: float = 1.0  # P = w * P_neural + c * P_cache + (1 - w - c) * P_ngram
    cache_weight: float = 0.0
    cache_shares: tuple[float, ...] = (1.0,)  # the cache's orders' shares (bundles before them: a unigram cache)
    spelling: SpellingModel | None = None  # None in bundles before format 3


def save_bundle(
    path: str | Path,
    model,
    tokenizer: Tokenizer,
    config: ModelConfig | None,
    card: ModelCard,
    ngram: NGramModel | None = None,
    spelling: SpellingModel | None = None,
) -> Path:
    """Write the bundle atomically at `path`, replacing any bundle there. `model` may be None if `ngram` is not."""
    if model is None and ngram is None:
        raise ValueError("a bundle needs a neural model, an n-gram model or both")
    from .storage_errors import storage_error

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent))
    except OSError as e:
        raise storage_error(e, "save the model", path.parent) from None
    try:
        if model is not None:
            model.save(tmp / MODEL_FILE)
        if ngram is not None:
            ngram.save(tmp / NGRAM_FILE)
        if spelling is not None:
            spelling.save(tmp / SPELLING_FILE)
        (tmp / VOCAB_FILE).write_text(tokenizer.to_json(), "utf-8")
        meta = {
            "format_version": FORMAT_VERSION,
            "model": config.to_dict() if model is not None and config is not None else None,
            "ngram": ngram is not None,
            "spelling": spelling is not None,
            "neural_weight": card.neural_weight if model is not None else 0.0,
            "cache_weight": card.cache_weight,
            "cache_shares": list(card.cache_shares),
        }
        (tmp / CONFIG_FILE).write_text(json.dumps(meta, indent=2), "utf-8")
        (tmp / CARD_FILE).write_text(json.dumps(asdict(card), indent=2, ensure_ascii=False), "utf-8")
        _fsync_dir(tmp)
        replace_dir(tmp, path)
    except OSError as e:  # a full disk, say: no half-written bundle stays behind to keep it full
        shutil.rmtree(tmp, ignore_errors=True)
        raise storage_error(e, "save the model", path.parent) from None
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return path


def replace_dir(new: Path, target: Path) -> None:
    """Move directory `new` to `target`, replacing any bundle there; a reader always finds one of them.

    On Linux the two are swapped by one atomic rename (RENAME_EXCHANGE). Elsewhere the old one is
    first moved to a `.NAME.PID.old` sibling, and until the new one is in place readers take that
    sibling (see `existing`), and the next training of that name puts it back (see `recover`).
    """
    if target.exists() and _exchange(new, target):
        _fsync_dir(target.parent)
        shutil.rmtree(new, ignore_errors=True)  # `new` now holds the old bundle
        return
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.{os.getpid()}.old")
        os.replace(target, old)
    os.replace(new, target)
    _fsync_dir(target.parent)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where the system cannot."""
    global _renameat2
    if _renameat2 is None:
        try:
            import ctypes

            libc = ctypes.CDLL(None, use_errno=True)
            _renameat2 = libc.renameat2
            _renameat2.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        except (OSError, AttributeError):
            _renameat2 = False
    if not _renameat2:
        return False
    at_fdcwd, rename_exchange = -100, 2
    if _renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0:
        return True
    import ctypes

    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.ENOTSUP, errno.EXDEV):
        return False  # this file system cannot: fall back to two renames
    raise OSError(err, os.strerror(err), str(b))


_renameat2: Any = None  # the libc function, looked up once; False where there is none


_LEFTOVER = re.compile(r"^\.(?P<name>.+)\.(?:[a-z0-9_]+\.tmp|\d+\.old|deleted)$")  # save_bundle, replace_dir, delete


def leftover_names(folder: Path) -> set[str]:
    """Names of the bundles in `folder` that interrupted saves or deletions left something of."""
    if not folder.is_dir():
        return set()
    return {m["name"] for p in folder.iterdir() if (m := _LEFTOVER.match(p.name)) and p.is_dir()}


def leftovers(target: Path) -> list[Path]:
    """What interrupted saves or deletions of `target` left beside it, oldest first."""
    target = Path(target)
    if not target.parent.is_dir():
        return []
    found = [
        p for p in target.parent.iterdir() if (m := _LEFTOVER.match(p.name)) and m["name"] == target.name and p.is_dir()
    ]
    return sorted(found, key=lambda p: p.stat().st_mtime)


def existing(target: Path) -> Path:
    """`target`, or while a killed swap left it missing, the bundle it swapped out (readers never find none)."""
    target = Path(target)
    if target.is_dir():
        return target
    olds = [p for p in leftovers(target) if p.name.endswith(".old")]
    return olds[-1] if olds else target


def recover(target: Path) -> list[Path]:
    """Put back a bundle a killed swap left aside, and remove other leftovers; the caller holds the name's lock."""
    target = Path(target)
    found = leftovers(target)
    olds = [p for p in found if p.name.endswith(".old")]
    if not target.exists() and olds:
        os.replace(olds[-1], target)
        found.remove(olds[-1])
    for path in found:
        shutil.rmtree(path, ignore_errors=True)
    return found


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
    """The bundle's config, after checking its files are there and of a format this version reads."""
    if not path.is_dir():
        raise BundleError(f"{path}: no model bundle there; train one with `continuo train` or pick another")
    missing = [f for f in (CONFIG_FILE, VOCAB_FILE, CARD_FILE) if not (path / f).is_file()]
    if missing:
        raise BundleError(f"{path}: not a complete model bundle (missing {', '.join(missing)}); retrain it")
    try:
        config = json.loads((path / CONFIG_FILE).read_text("utf-8"))
    except ValueError:
        raise BundleError(f"{path}: corrupt {CONFIG_FILE}; retrain the model") from None
    version = config.get("format_version") if isinstance(config, dict) else None
    if version not in READABLE_VERSIONS:
        raise BundleError(
            f"{path}: bundle format {version}, this Continuo reads formats "
            f"{', '.join(map(str, READABLE_VERSIONS))}; retrain the model with this version"
        )
    needed = [MODEL_FILE] if version == 1 or config.get("model") is not None else []
    needed += [NGRAM_FILE] if config.get("ngram") else []
    needed += [SPELLING_FILE] if config.get("spelling") else []
    missing = [f for f in needed if not (path / f).is_file()]
    if missing:
        raise BundleError(f"{path}: not a complete model bundle (missing {', '.join(missing)}); retrain it")
    return config


def load_bundle(path: str | Path) -> Bundle:
    """Everything in the bundle at `path`."""
    path = Path(path)
    config = check_bundle(path)
    try:
        tokenizer = Tokenizer.from_json((path / VOCAB_FILE).read_text("utf-8"))
        model = model_config = ngram = spelling = None
        if config.get("model") is not None:
            from .backend import load_keras

            keras = load_keras()  # before core.layers imports keras: it starts TensorFlow quietly
            from .layers import CUSTOM_OBJECTS

            model_config = ModelConfig(**{"tie_embeddings": False, **config["model"]})  # older bundles: untied
            model = keras.models.load_model(
                path / MODEL_FILE, compile=False, safe_mode=True, custom_objects=CUSTOM_OBJECTS
            )
        if config.get("ngram"):
            ngram = NGramModel.load(path / NGRAM_FILE)
        if config.get("spelling"):  # format 3
            spelling = SpellingModel.load(path / SPELLING_FILE)
    except (ValueError, KeyError, TypeError, OSError, zipfile.BadZipFile) as e:
        raise BundleError(f"{path}: corrupt model bundle ({type(e).__name__}); retrain the model") from None
    sizes = [model.output_shape[-1]] if model is not None else []
    sizes += [ngram.vocab_size] if ngram is not None else []
    if any(size != len(tokenizer) for size in sizes):
        raise BundleError(f"{path}: model and vocabulary do not match; retrain the model")
    weight = float(config.get("neural_weight", 1.0)) if model is not None else 0.0
    cache = float(config.get("cache_weight", 0.0))  # format 1 and early format 2 bundles have none
    neural_weight = weight if ngram is not None else 1.0
    shares = tuple(float(x) for x in config.get("cache_shares", [1.0]))  # older bundles mixed a unigram cache
    return Bundle(model, tokenizer, model_config, read_card(path), ngram, neural_weight, cache, shares, spelling)
