"""Continuo's core: train, load, generate, next-word candidates and evaluate word-level BiLSTM models.

Front-ends use only what this module exports; it knows nothing of terminals or Discord.
"""
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # keep TensorFlow's start-up chatter off users' screens

from .bundle import ModelCard, read_card
from .data import Corpus, bundled_corpora, decode_text, find_corpus, read_text
from .errors import (BundleError, Cancelled, ContinuoError, CorpusTooSmall, DecodingError, InputFileError,
                     SeedError)
from .generate import Candidate, Evaluation, GenerationConfig, LanguageModel
from .jobs import Job, JobRunner, LocalProcessRunner, TrainRequest, run_request
from .model import ModelConfig
from .settings import Settings, get_settings
from .store import DEFAULT_MODEL, ModelStore
from .train import MIN_TOKENS, Progress, TrainConfig, TrainResult, train

load = LanguageModel.load

__all__ = [
    "BundleError", "Cancelled", "Candidate", "ContinuoError", "Corpus", "CorpusTooSmall", "DEFAULT_MODEL",
    "DecodingError", "Evaluation", "GenerationConfig", "InputFileError", "Job", "JobRunner", "LanguageModel",
    "LocalProcessRunner", "MIN_TOKENS", "ModelCard", "ModelConfig", "ModelStore", "Progress", "SeedError",
    "Settings", "TrainConfig", "TrainRequest", "TrainResult", "bundled_corpora", "decode_text", "find_corpus",
    "get_settings", "load", "read_card", "read_text", "run_request", "train",
]
