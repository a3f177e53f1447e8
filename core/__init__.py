"""Continuo's core: train, load, generate, next-word candidates and evaluate word-level BiLSTM models.

Front-ends use only what this module exports; it knows nothing of terminals or Discord. Names are
imported on first use, so `import core` is instant and TensorFlow loads only when a model is needed.
"""
from importlib import import_module

_EXPORTS = {
    "bundle": ["ModelCard", "read_card"],
    "bundle_storage": ["BundleStorage", "FsspecBundleStorage", "LocalBundleStorage", "open_bundle_storage"],
    "data": ["MIN_TOKENS", "Corpus", "bundled_corpora", "check_corpus_size", "decode_text", "find_corpus",
             "read_text"],
    "errors": ["BundleError", "Cancelled", "ConfigError", "ContinuoError", "CorpusTooSmall", "DecodingError",
               "InputFileError", "SeedError"],
    "generate": ["Candidate", "Evaluation", "GenerationConfig", "LanguageModel"],
    "jobs": ["Job", "JobRunner", "LocalProcessRunner", "TrainRequest", "run_request"],
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
