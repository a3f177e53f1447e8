"""A whole corpus to token ids in pieces: memory holds one int32 per token, never a Python string per token."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from .tokenizer import SPECIALS, Mode, Tokenizer

PIECE_CHARS = 1 << 20  # characters tokenized at a time; a piece ends at a line break, so its tokens are the text's


def pieces(text: str, mode: Mode = "words", size: int | None = None) -> Iterator[str]:
    """`text` cut into pieces of about `size` characters, each ending with a line break where there is one.

    No token spans a line break (and in `words` mode none spans a space), so tokenizing the pieces
    one by one gives the tokens of the whole text.
    """
    start, n, size = 0, len(text), size or PIECE_CHARS
    while start < n:
        end = min(n, start + size)
        if end < n:
            cut = text.rfind("\n", start, end)
            if cut < start and mode == "words":
                cut = text.rfind(" ", start, end)
            if cut < start:  # one very long line: up to its end
                cut = text.find("\n", end)
                cut = n - 1 if cut < 0 else cut
            end = cut + 1
        yield text[start:end]
        start = end


@dataclass
class Words:
    """The distinct tokens of a text's training part, with how often each came: what the spelling model counts."""

    types: list[str]  # each distinct token once
    counts: np.ndarray  # its occurrences in the training part (0: only in the held-out tail)
    known: np.ndarray  # whether it is in the vocabulary


def encode_corpus(
    text: str, mode: Mode = "words", min_count: int = 1, max_size: int | None = None, fit_share: float = 1.0
) -> tuple[Tokenizer, np.ndarray, int]:
    """(tokenizer, ids of every token, cut): the vocabulary is fitted on the first `cut` tokens."""
    tokenizer, ids, cut, _ = encode_corpus_words(text, mode, min_count, max_size, fit_share)
    return tokenizer, ids, cut


def encode_corpus_words(
    text: str, mode: Mode = "words", min_count: int = 1, max_size: int | None = None, fit_share: float = 1.0
) -> tuple[Tokenizer, np.ndarray, int, Words]:
    """(tokenizer, ids of every token, cut, the distinct tokens of the first `cut`): the vocabulary is fitted on
    the first `cut` tokens.

    The same vocabulary as `Tokenizer.fit` on those tokens (most frequent first, ties by the token),
    found in one pass: each piece's tokens get provisional ids, their counts pick the vocabulary, and
    one array lookup turns provisional ids into final ones (rarer words become the unknown token).
    """
    splitter = Tokenizer(mode=mode)
    index: dict[str, int] = {}
    parts = []
    for piece in pieces(text, mode):
        tokens = splitter.split(piece)
        parts.append(np.fromiter((index.setdefault(t, len(index)) for t in tokens), np.int32, len(tokens)))
        del tokens
    provisional = np.concatenate(parts) if parts else np.zeros(0, np.int32)
    del parts
    cut = int(len(provisional) * fit_share) if fit_share < 1 else len(provisional)
    counts = np.bincount(provisional[:cut], minlength=len(index))
    types = list(index)
    del index
    ranked = sorted(
        (i for i in np.flatnonzero(counts >= min_count) if types[i] not in SPECIALS),
        key=lambda i: (-counts[i], types[i]),
    )
    if max_size is not None:
        ranked = ranked[: max(0, max_size - len(SPECIALS))]
    final = np.ones(len(types), np.int32)  # 1: the unknown token
    final[np.asarray(ranked, np.int64)] = np.arange(len(SPECIALS), len(SPECIALS) + len(ranked), dtype=np.int32)
    tokenizer = Tokenizer(mode=mode, vocab=[*SPECIALS, *(types[i] for i in ranked)])
    return tokenizer, final[provisional], cut, Words(types, counts, final != 1)


def encode_text(tokenizer: Tokenizer, text: str) -> np.ndarray:
    """The ids of `text`'s tokens with an existing vocabulary, tokenized in pieces."""
    parts = [np.asarray(tokenizer.encode(piece), np.int32) for piece in pieces(text, tokenizer.mode)]
    return np.concatenate(parts) if parts else np.zeros(0, np.int32)
