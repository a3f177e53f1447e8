"""What a word's letters cost: a character-level Kneser-Ney model of spellings, so every string has a probability.

A word outside the vocabulary is scored as P(unknown) x P(its spelling | not a vocabulary word). The
spelling model is an interpolated, modified Kneser-Ney model (as core/ngram.py, over symbols instead of
tokens) of one word at a time: each letter given the letters before it in the same word, then the end
of the word. Its lowest order backs off to a uniform distribution over every Unicode code point and the
end, so a letter never seen in training still has a probability, and the probabilities of all strings
add up to 1 (the model ends a word with probability above 0 at every step).

- Symbols: id 0 is the end of a word (and, in contexts, the padding before its first letter), ids
  1..A the letters seen in training, A + 1 every other code point (each of them 1 / (UNICODE - A) of
  that symbol's probability).
- Counted from the training text's words with a weight each (see WEIGHTING) in vectorised numpy over
  sorted int64 keys, like core/ngram.py; memory is O(letters of the distinct words counted).
- n-grams whose first symbol is the padding are only ever preceded by padding, so their continuation
  count would always be 1: they keep their raw counts (as KenLM does for n-grams after <s>).
"""

from __future__ import annotations

import copy
import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

import numpy as np

from .ngram import _discounts, _Level, level_arrays, read_levels
from .tokenizer import Tokenizer, normalize

UNICODE = 0x110000  # code points a string may hold; the base distribution is uniform over them and the end
END = 0  # the end of a word; in contexts, the padding before its first letter
ORDER = 6  # letters of context + 1: within 2% of the best order on held-out unknown words (bench/results/spelling.md)
MAX_WORDS = 200_000  # distinct words counted at most (an even sample beyond): seconds and O(1) memory for any text
WEIGHTING = "types"  # each distinct training word counted once: best of the weightings tried (spelling_weights)


class SpellingModel:
    """P(a string) as a sequence of letters and an end, for any string."""

    def __init__(self, alphabet: str, order: int, unigram: np.ndarray, unigram_discounts: np.ndarray, levels):
        self.alphabet, self.order = alphabet, order
        self.letters = len(alphabet)
        self.size = self.letters + 2  # the end, the letters seen, any other code point
        self._code_points = np.frombuffer(alphabet.encode("utf-32-le"), np.uint32).astype(np.int64)  # sorted
        self.unigram_counts, self.unigram_discounts, self.levels = unigram, unigram_discounts, levels
        counts = unigram.astype(np.float64)
        total = counts.sum()
        d = np.zeros(self.size)
        d[counts == 1], d[counts == 2], d[counts >= 3] = unigram_discounts
        d = np.minimum(d, counts)
        base = np.full(self.size, 1.0 / (UNICODE + 1))  # uniform over the end and every code point
        base[-1] = (UNICODE - self.letters) / (UNICODE + 1)  # the code points never seen, together
        if total > 0:
            self.unigram = (counts - d) / total + d.sum() / total * base
        else:
            self.unigram = base
        self._padding_ids = self._all_padding_ids()
        self._excluded_log_mass = 0.0  # log(1 - P(any excluded string)), see excluding()

    # --- counting
    @classmethod
    def fit(
        cls,
        words: Sequence[str],
        weights: Sequence[int] | np.ndarray | None = None,
        order: int = ORDER,
        max_words: int = MAX_WORDS,
    ) -> SpellingModel:
        """Count the spellings of `words`, each `weights[i]` times (default once); words of weight 0 are skipped.
        Of more than `max_words` words, an even random sample of that many (the same each time) is counted."""
        w = np.ones(len(words), np.int64) if weights is None else np.asarray(weights, np.int64)
        keep = [i for i in np.flatnonzero(w > 0).tolist() if words[i]]  # the empty string is no word
        if len(keep) > max_words:
            keep = sorted(np.random.default_rng(0).choice(keep, max_words, replace=False).tolist())
        counted, w = [words[i] for i in keep], w[keep]
        alphabet = "".join(sorted(set().union(*counted))) if counted else ""
        model = cls(alphabet, order, np.zeros(len(alphabet) + 2, np.int32), np.array([0.5, 1.0, 1.5]), [])
        if not counted:
            return model
        seq, real, weight = model._padded(counted, w)
        del counted, w
        V, padding = model.size, [END]  # padding[n - 1]: id of the n-gram of n paddings
        counted = weight[real]
        keys: list[np.ndarray] = [np.arange(V)]
        raw: list[np.ndarray] = [np.bincount(seq[real], weights=counted, minlength=V)]
        continuation: list[np.ndarray] = []
        first_is_padding: list[np.ndarray] = [np.zeros(V, bool)]
        gram = seq  # id of the (n-1)-gram ending at each position (order 1: the symbol itself)
        for n in range(2, order + 1):
            key = np.concatenate([[padding[-1]], gram[:-1]]).astype(np.int64) * V + seq
            key[~real] = padding[-1] * V + END  # a padding position ends the n-gram of n paddings
            unique, first, inverse = np.unique(key, return_index=True, return_inverse=True)
            del key
            keys.append(unique)
            raw.append(np.bincount(inverse[real], weights=counted, minlength=len(unique)))
            # the n-gram's first symbol is padding where it starts before its word's first letter
            first_is_padding.append(~real[first] | ~real[np.maximum(first - (n - 1), 0)])
            # each distinct n-gram seen adds one to the continuation count of its suffix, the (n-1)-gram ending
            # at the same position
            suffix = gram[first[real[first]]]
            continuation.append(np.bincount(suffix, minlength=len(keys[n - 2])))
            padding.append(int(np.searchsorted(unique, padding[-1] * V + END)))
            gram = inverse.astype(np.int32)  # ids are below the number of positions
        # Kneser-Ney's counts: raw at the highest order and for n-grams that start with padding (only padding
        # ever comes before them), else the number of distinct symbols seen before the n-gram
        adjusted = [
            np.rint(
                raw[n - 1] if n == order else np.where(first_is_padding[n - 1], raw[n - 1], continuation[n - 1])
            ).astype(np.int64)
            for n in range(1, order + 1)
        ]
        levels = []
        for n in range(2, order + 1):
            level = _Level(keys[n - 1], adjusted[n - 1], _discounts(adjusted[n - 1]))
            levels.append(level.finish(len(keys[n - 2]), V))
        return cls(alphabet, order, adjusted[0], _discounts(adjusted[0]), levels)

    def _padded(self, words: Sequence[str], weights: np.ndarray | None = None):
        """(symbols, real, weight): every word as order-1 paddings, its letters and the end, one after another;
        `real` marks the positions predicted (letters and ends), `weight` each position's word's weight."""
        lengths = np.fromiter((len(w) for w in words), np.int64, len(words))
        letters = self.symbols("".join(words))
        pad = self.order - 1
        block = lengths + pad + 1
        starts = np.concatenate([[0], np.cumsum(block)[:-1]])
        seq = np.zeros(int(block.sum()), np.int32)
        offsets = np.arange(len(seq), dtype=np.int64) - np.repeat(starts, block)  # position within its word's block
        real = offsets >= pad
        seq[real & (offsets < np.repeat(block - 1, block))] = letters
        del offsets
        weight = np.repeat(np.ones(len(words), np.int64) if weights is None else weights, block)
        return seq, real, weight

    def symbols(self, text: str) -> np.ndarray:
        """The symbol id of each character of `text` (A + 1 for a character the model never saw)."""
        points = np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32).astype(np.int64)
        at = np.searchsorted(self._code_points, points)
        found = at < len(self._code_points)
        found[found] = self._code_points[at[found]] == points[found]
        return np.where(found, at + 1, self.letters + 1).astype(np.int32)

    def _all_padding_ids(self) -> list[int]:
        """The id of the n-gram of n paddings at each order (the context of a word's first letter)."""
        ids = [END]
        for level in self.levels:
            ids.append(int(level.find(np.array([ids[-1] * self.size + END]))[0]))
        return ids + [0] * (self.order - len(ids))

    # --- probabilities
    def log_probs(self, words: Sequence[str]) -> np.ndarray:
        """Natural log P(word) of each word: its letters one by one, then its end; conditioned on not being one
        of the strings given to excluding()."""
        if not words:
            return np.zeros(0)
        seq, real, _ = self._padded(words)
        p = self._symbol_probabilities(seq, real)
        log_p = np.log(p)
        unseen = seq[real] == self.letters + 1
        log_p[unseen] -= math.log(UNICODE - self.letters)  # one code point among those never seen
        owner = np.repeat(np.arange(len(words)), np.fromiter((len(w) + 1 for w in words), np.int64, len(words)))
        return np.bincount(owner, weights=log_p, minlength=len(words)) - self._excluded_log_mass

    def _symbol_probabilities(self, seq: np.ndarray, real: np.ndarray) -> np.ndarray:
        """P(symbol | the symbols of its word before it) at every real position."""
        V = self.size
        p = self.unigram[seq[real]]
        # the (n-1)-gram ending at each position; at padding, the all-padding one
        gram = np.where(real, seq, END).astype(np.int64)
        for n, level in enumerate(self.levels, 2):
            context = np.concatenate([[self._padding_ids[n - 2]], gram[:-1]])
            context = np.where(real, context, self._padding_ids[n - 2])
            at = np.where(context >= 0, level.find(np.maximum(context, 0) * V + seq), -1)
            at = np.where(real, at, self._padding_ids[n - 1])
            ctx = context[real]
            seen = ctx >= 0
            c = np.where(seen, ctx, 0)
            total = np.where(seen, level.context_total[c], 0.0)
            backoff = np.where(seen, level.context_backoff[c], 1.0)
            hit = at[real]
            counts = np.where(hit >= 0, level.counts[np.maximum(hit, 0)], 0).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                direct = np.where(total > 0, (counts - level.discount(counts)) / total, 0.0)
            p = np.where(total > 0, direct + backoff * p, p)
            gram = at
        return p

    def next_probabilities(self, prefix: str) -> np.ndarray:
        """P(next symbol | prefix) over the symbols: the end, each letter seen, any other code point (together)."""
        V = self.size
        history = [END] * (self.order - 1) + [int(s) for s in self.symbols(prefix)]
        p = self.unigram.copy()
        for n, level in enumerate(self.levels, 2):
            context = self._context_id(history[len(history) - (n - 1) :])
            if context < 0 or level.context_total[context] <= 0:
                continue
            lo, hi = np.searchsorted(level.keys, [context * V, (context + 1) * V])
            symbols, counts = level.keys[lo:hi] - context * V, level.counts[lo:hi]
            p *= level.context_backoff[context]
            p[symbols] += (counts - level.discount(counts)) / level.context_total[context]
        return p

    def _context_id(self, symbols: list[int]) -> int:
        ident = symbols[0]
        for level, s in zip(self.levels, symbols[1:], strict=False):
            ident = int(level.find(np.array([ident * self.size + s]))[0])
            if ident < 0:
                return -1
        return ident

    def excluding(self, strings: Iterable[str]) -> SpellingModel:
        """This model conditioned on the word not being one of `strings` (say the vocabulary and "": a word
        outside the vocabulary is never one of them, so their probability is spread over all other strings)."""
        model = copy.copy(self)  # shares the counts
        model._excluded_log_mass = 0.0
        unique = sorted(set(strings))
        mass = float(np.exp(model.log_probs(unique)).sum()) if unique else 0.0
        model._excluded_log_mass = math.log1p(-min(mass, 1 - 1e-12))
        return model

    # --- saving
    def save(self, file: str | Path | BinaryIO) -> None:
        arrays = level_arrays(self.order, self.unigram_counts, self.unigram_discounts, self.levels)
        arrays["alphabet"] = np.frombuffer(self.alphabet.encode("utf-32-le", "surrogatepass"), np.uint32)
        np.savez(file, **arrays)

    @classmethod
    def load(cls, file: str | Path | BinaryIO) -> SpellingModel:
        with np.load(file, allow_pickle=False) as f:
            order = int(f["order"])
            alphabet = f["alphabet"].astype("<u4").tobytes().decode("utf-32-le", "surrogatepass")
            levels = read_levels(f, order, len(alphabet) + 2)
            return cls(alphabet, order, f["unigram_counts"], f["unigram_discounts"], levels)


def spelling_weights(counts: np.ndarray, known: np.ndarray, weighting: str = WEIGHTING) -> np.ndarray:
    """How many times each distinct training word is counted: `counts` its occurrences, `known` whether it is in
    the vocabulary. "types" counts each word once, "tokens" by its occurrences, "unknown" only the occurrences of
    words outside the vocabulary (mostly words seen once), "types+unknown" both. Held-out unknown words scored
    best with "types" (bench/results/spelling.md): frequent words' spellings are atypical, and the words outside
    the vocabulary alone are too few to count letters from."""
    counts = np.asarray(counts, np.int64)
    unknown = np.where(known, 0, counts)
    present = (counts > 0).astype(np.int64)
    return {
        "tokens": counts,
        "types": present,
        "unknown": unknown,
        "types+unknown": present + unknown,
    }[weighting]


CACHE = (100.0, 0.8)  # the unknown-word cache's concentration and discount: within 0.1 bit per unknown word of
# the best chosen on each text's validation part (bench/results/spelling.md)


def _cache_counts(words: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """For each position: how often its word came before it, and how many distinct words came before it."""
    _, first, inverse = np.unique(np.asarray(words, dtype=object), return_index=True, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    starts = np.searchsorted(inverse[order], inverse[order])  # where each word's run starts among the sorted
    before = np.empty(len(words), np.int64)
    before[order] = np.arange(len(words)) - starts
    is_first = np.zeros(len(words), np.int64)
    is_first[first] = 1
    distinct = np.concatenate([[0], np.cumsum(is_first)[:-1]])
    return before, distinct


def cache_log_probs(
    words: Sequence[str], log_probs: np.ndarray, concentration: float = CACHE[0], discount: float = CACHE[1]
) -> np.ndarray:
    """log P of each of a text's unknown words, in order, given the unknown words before it: a Pitman-Yor cache
    (Teh 2006, one table per word) over the spelling model's `log_probs`. A name the text keeps repeating costs
    its letters once and little after; the probabilities of all strings still add up to 1 at every position:
    (max(n_w - d, 0) + (c + d K) P_spell(w)) / (N + c), with n_w the word's count so far, N all unknown words so
    far and K the distinct ones."""
    if len(words) == 0:
        return np.zeros(0)
    before, distinct = _cache_counts(words)
    return _cached(before, distinct, np.asarray(log_probs, np.float64), concentration, discount)


def _cached(before, distinct, log_probs, concentration: float, discount: float) -> np.ndarray:
    seen = np.where(before > 0, before - discount, 0.0)
    new = np.log(concentration + discount * distinct) + log_probs
    with np.errstate(divide="ignore"):
        mixed = np.logaddexp(np.log(seen), new)
    return mixed - np.log(np.arange(len(before)) + concentration)


def text_as_read(tokenizer: Tokenizer, text: str, tokens: list[str] | None = None) -> str:
    """The characters of `text` that bits per character divide by: the text as its tokenizer reads it (normalized:
    line endings unified, control characters dropped, runs of spaces as one), or for pre-tokenized text (PTB's
    `whitespace` mode) its tokens with one space between them and a line break per line."""
    if tokenizer.mode == "whitespace":
        return tokenizer.join(tokenizer.split(text) if tokens is None else tokens)
    return normalize(text)
