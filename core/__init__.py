"""Continuo's core: train, load, generate, converse, next-word candidates and evaluate word-level BiLSTM models.

Front-ends use only what this module exports; it knows nothing of terminals or Discord. Names are
imported on first use, so `import core` is instant and TensorFlow loads only when a model is needed.
"""

from importlib import import_module
from typing import TYPE_CHECKING

from .pyfixes import serialize_ast_parsing

serialize_ast_parsing()  # before any of core's threads can parse

if TYPE_CHECKING:  # what type checkers and editors see; at run time each name is imported on first use (below)
    from .bundle import ModelCard, read_card
    from .bundle_storage import BundleStorage, FsspecBundleStorage, LocalBundleStorage, open_bundle_storage
    from .cli import CommandParser
    from .conversation import Conversation, Turn, TurnFormat, TurnStream
    from .data import MIN_TOKENS, Corpus, bundled_corpora, check_corpus_size, decode_text, find_corpus, read_text
    from .errors import (
        BundleError,
        Cancelled,
        ConfigError,
        ContinuoError,
        CorpusTooSmall,
        DecodingError,
        InputFileError,
        SeedError,
        VoiceTooSmall,
    )
    from .generate import Candidate, Evaluation, GenerationConfig, LanguageModel
    from .jobs import Job, JobRunner, LocalProcessRunner, TrainRequest, exit_with_parent, run_request
    from .model import ModelConfig
    from .ngram import NGramModel
    from .ray_runner import RayConfig, RayRunner
    from .settings import Settings, get_settings
    from .store import DEFAULT_MODEL, ModelStore, StoredModel
    from .tokenizer import Tokenizer, count_tokens
    from .training import Progress, TrainConfig, TrainResult, build_instant, train

    load = LanguageModel.load

_EXPORTS = {
    "bundle": ["ModelCard", "read_card"],
    "bundle_storage": ["BundleStorage", "FsspecBundleStorage", "LocalBundleStorage", "open_bundle_storage"],
    "cli": ["CommandParser"],
    "conversation": ["Conversation", "Turn", "TurnFormat", "TurnStream"],
    "data": ["MIN_TOKENS", "Corpus", "bundled_corpora", "check_corpus_size", "decode_text", "find_corpus", "read_text"],
    "errors": [
        "BundleError",
        "Cancelled",
        "ConfigError",
        "ContinuoError",
        "CorpusTooSmall",
        "DecodingError",
        "InputFileError",
        "SeedError",
        "VoiceTooSmall",
    ],
    "generate": ["Candidate", "Evaluation", "GenerationConfig", "LanguageModel"],
    "jobs": ["Job", "JobRunner", "LocalProcessRunner", "TrainRequest", "exit_with_parent", "run_request"],
    "model": ["ModelConfig"],
    "ray_runner": ["RayConfig", "RayRunner"],  # needs the `scale` extra (ray) once a job is submitted
    "settings": ["Settings", "get_settings"],
    "store": ["DEFAULT_MODEL", "ModelStore", "StoredModel"],
    "tokenizer": ["Tokenizer", "count_tokens"],
    "ngram": ["NGramModel"],
    "training": ["Progress", "TrainConfig", "TrainResult", "build_instant", "train"],
}
_HOME = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted([*_HOME, "load"])


def __getattr__(name: str):
    if name == "load":
        return import_module(".generate", __name__).LanguageModel.load
    if name not in _HOME:
        raise AttributeError(f"module 'core' has no attribute {name!r}")
    value = getattr(import_module(f".{_HOME[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__():
    return __all__
