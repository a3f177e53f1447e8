"""Text files in, training windows out: validated reading, bundled corpora, streamed tf.data windows."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path

import numpy as np

from .errors import CorpusTooSmall, InputFileError
from .settings import get_settings

MIN_TOKENS = 2000  # below this there is too little text to learn from (about 1,500 words)
_SNIFF_BYTES = 8192  # bytes looked at to tell text from binary
_PREFETCH_BATCHES = 2  # windows gathered ahead of the training step


def read_text(path: str | Path, max_mb: float | None = None) -> str:
    """The file's text, or a one-line InputFileError saying what is wrong with it."""
    path = Path(path).expanduser()
    max_mb = get_settings().max_file_mb if max_mb is None else max_mb
    if not path.exists():
        raise InputFileError(f"{path}: no such file; check the path")
    if path.is_dir():
        raise InputFileError(f"{path}: is a folder; give a text file")
    size = path.stat().st_size
    if size == 0:
        raise InputFileError(f"{path}: the file is empty; give a file with some text")
    if size > max_mb * 1e6:
        raise InputFileError(
            f"{path}: {size / 1e6:.1f} MB is over the {max_mb:g} MB limit; split the file or raise CONTINUO_MAX_FILE_MB"
        )
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InputFileError(f"{path}: cannot be read ({e.strerror}); check its permissions") from None
    return decode_text(data, str(path))


def decode_text(data: bytes, name: str = "text") -> str:
    """UTF-8 text from bytes; refuses binary, non-UTF-8 and blank data with a one-line reason."""
    if b"\x00" in data[:_SNIFF_BYTES]:
        raise InputFileError(f"{name}: looks like a binary file; give a UTF-8 text file")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        raise InputFileError(
            f"{name}: not UTF-8 text (bad byte at offset {e.start}); save it as UTF-8 and try again"
        ) from None
    if not text.strip():
        raise InputFileError(f"{name}: holds only whitespace; give a file with some text")
    return text


def check_corpus_size(tokens: int, how_to_add: str = "") -> None:
    """Raise the one "corpus too small" error, saying how much more text is needed (and, where given, how to add it)."""
    if tokens < MIN_TOKENS:
        raise CorpusTooSmall(
            f"the corpus has {tokens:,} tokens; at least {MIN_TOKENS:,} are needed "
            f"(about {MIN_TOKENS - tokens:,} more words of text{how_to_add})"
        )


@dataclass
class Corpus:
    """A corpus bundled with the package: corpora/<name>/corpus.txt and its CARD.md, read as package data."""

    name: str
    path: Traversable  # corpus.txt, wherever the package is installed (a checkout, a wheel, site-packages)
    card: str  # the corpus card, in markdown

    def text(self) -> str:
        return self.path.read_text("utf-8")

    @property
    def summary(self) -> str:
        """The card's first sentence as plain text, e.g. "A collection of short conversational messages ..."."""
        paragraph = []
        for line in self.card.splitlines():
            if line.strip() and not line.startswith("#"):
                paragraph.append(line.strip())
            elif paragraph:
                break
        text = re.sub(r"^\*\*[^*]+\*\*\s*", "", " ".join(paragraph))  # a bold label such as "**What it is.**"
        text = re.sub(r"\*\*|__|`", "", text)  # emphasis and code marks
        text = re.sub(r"^corpus\.txt is (an? )", lambda m: m.group(1).capitalize(), text)  # cards describe their file
        sentence = re.match(r".*?[.!?](?=\s|$)", text)
        return sentence.group() if sentence else text


def bundled_corpora() -> list[Corpus]:
    """The corpora shipped in the `corpora` package, by name."""
    found = []
    for folder in sorted(resources.files("corpora").iterdir(), key=lambda f: f.name):
        text = folder / "corpus.txt"
        if folder.is_dir() and text.is_file():
            card = folder / "CARD.md"
            found.append(Corpus(folder.name, text, card.read_text("utf-8") if card.is_file() else ""))
    return found


def find_corpus(name: str) -> Corpus | None:
    return next((c for c in bundled_corpora() if c.name == name), None)


def resolve_text_source(source: str | Path) -> tuple[str, str]:
    """(name, text) for a bundled corpus name or a path to a text file."""
    corpus = find_corpus(str(source)) if not Path(source).exists() else None
    if corpus is not None:
        return corpus.name, corpus.text()
    return Path(source).name, read_text(source)


def windows_dataset(
    ids: np.ndarray, window: int, batch_size: int, *, shuffle: bool, seed: int, short_context_rate: float = 0.0
):
    """Batches of (last `window` ids, next id) for every position of `ids`, built on the fly.

    Only `ids` (one int32 per token) is held in memory: each batch gathers its windows from it,
    so memory is O(tokens), never O(tokens x window) or O(tokens x vocabulary). Positions before the
    start are padding (id 0). With `short_context_rate`, that share of windows keeps only a random
    number of its last tokens, so the model also learns to continue a seed of a word or two.
    """
    import tensorflow as tf

    padded = tf.constant(np.concatenate([np.zeros(window, np.int32), ids.astype(np.int32)]))
    offsets = tf.range(window + 1)
    n = len(ids)
    ds = tf.data.Dataset.range(n)
    if shuffle:
        ds = ds.shuffle(min(n, 1 << 20), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def gather(starts):
        rows = tf.gather(padded, tf.cast(starts, tf.int32)[:, None] + offsets)  # (batch, window + 1)
        x, y = rows[:, :window], rows[:, window]
        if short_context_rate > 0:
            b = tf.shape(x)[0]
            keep = tf.random.uniform([b], 1, window + 1, dtype=tf.int32)
            keep = tf.where(tf.random.uniform([b]) < short_context_rate, keep, window)
            x = tf.where(tf.range(window)[None, :] >= window - keep[:, None], x, 0)
        return x, y

    options = tf.data.Options()
    options.autotune.enabled = False  # its tuning stalled whole epochs now and then on a 2-core machine
    return ds.map(gather).prefetch(_PREFETCH_BATCHES).with_options(options)  # a gather is cheap: no parallel map


def sequences_dataset(
    ids: np.ndarray, window: int, batch_size: int, *, shuffle: bool, seed: int, short_context_rate: float = 0.0
):
    """Batches of (`window` consecutive ids, the id after each of them), for a model that predicts every position.

    The text is cut into consecutive chunks, shifted by a random offset per batch while training so that
    chunk borders move from epoch to epoch. Targets past the end are padding (id 0), which weighs nothing.
    With `short_context_rate`, that share of chunks starts with a random run of padding, as a short seed does
    when it is continued: the targets inside that run are padding too.
    """
    import tensorflow as tf

    n = len(ids)
    padded = tf.constant(np.concatenate([ids.astype(np.int32), np.zeros(2 * window + 1, np.int32)]))
    offsets = tf.range(window + 1)
    ds = tf.data.Dataset.range(math.ceil(n / window))
    if shuffle:
        ds = ds.shuffle(min(n, 1 << 20), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size)

    def gather(chunks):
        shift = tf.random.uniform([], 0, window, dtype=tf.int32) if shuffle else 0
        rows = tf.gather(padded, tf.cast(chunks, tf.int32)[:, None] * window + shift + offsets)
        x, y = rows[:, :window], rows[:, 1:]
        if short_context_rate > 0:
            b = tf.shape(x)[0]
            cut = tf.random.uniform([b], 0, window, dtype=tf.int32)
            cut = tf.where(tf.random.uniform([b]) < short_context_rate, cut, 0)
            keep = tf.range(window)[None, :] >= cut[:, None]
            x, y = tf.where(keep, x, 0), tf.where(keep, y, 0)
        return x, y

    options = tf.data.Options()
    options.autotune.enabled = False
    return ds.map(gather).prefetch(_PREFETCH_BATCHES).with_options(options)


def context_windows(ids: list[int] | np.ndarray, window: int) -> np.ndarray:
    """The window that predicts each position of `ids`, as a (len(ids), window) int32 array.

    For evaluation of modest texts; training streams windows instead (see windows_dataset).
    """
    ids = np.asarray(ids, np.int32)
    padded = np.concatenate([np.zeros(window, np.int32), ids])
    return np.lib.stride_tricks.sliding_window_view(padded, window)[: len(ids)]
