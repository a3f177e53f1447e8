"""An interpolated, modified Kneser-Ney n-gram model over token ids: built in seconds, saved in the bundle.

It is the instant model a corpus gets before (or without) neural training, and the neural model's
partner in the mixture Continuo serves. Everything is vectorised numpy over sorted int64 keys:

- Order 1 is a dense array over the vocabulary. An n-gram of order n >= 2 is the key
  `context_id * V + word`, where `context_id` is the index of its first n-1 tokens among the
  sorted keys of order n-1. The keys of one context are therefore contiguous, and a lookup is a
  binary search (np.searchsorted).
- The highest order keeps raw counts; lower orders keep continuation counts (how many distinct
  words precede the n-gram), with three discounts per order from its counts of counts (Chen &
  Goodman 1998).

The text is padded on the left with id 0 (as the neural model pads its windows), so the start of a
corpus acts as a context of its own, and every n-gram of a real position is the suffix of an
(n+1)-gram of the same position.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

MAX_ORDER = 5
ORDERS_TRIED = (3, 4, 5)  # chosen among on the validation text


@dataclass
class _Level:
    """The n-grams of one order n >= 2, with what the probability of a word after a context needs."""

    keys: np.ndarray  # sorted int64 keys: context id * V + word
    counts: np.ndarray  # raw (highest order) or continuation counts, aligned with keys
    discounts: np.ndarray  # D1, D2, D3+
    # the two below are set by finish()
    context_total: np.ndarray = None  # type: ignore[assignment]  # per context id of the order below: sum of counts
    context_backoff: np.ndarray = None  # type: ignore[assignment]  # per context id: (D1 N1 + D2 N2 + D3 N3+) / total, the lower order's weight

    def finish(self, contexts: int, vocab_size: int) -> _Level:
        context = self.keys // vocab_size
        self.context_total = np.bincount(context, weights=self.counts, minlength=contexts)
        held = np.bincount(context, weights=self.discount(self.counts), minlength=contexts)
        with np.errstate(divide="ignore", invalid="ignore"):
            self.context_backoff = np.where(self.context_total > 0, held / self.context_total, 1.0)
        return self

    def discount(self, counts: np.ndarray) -> np.ndarray:
        d = np.zeros(len(counts))
        d[counts == 1], d[counts == 2], d[counts >= 3] = self.discounts
        return np.minimum(d, counts)

    def find(self, keys: np.ndarray) -> np.ndarray:
        """Index of each key among this level's keys, or -1."""
        if len(self.keys) == 0:
            return np.full(len(keys), -1)
        at = np.searchsorted(self.keys, keys).clip(max=len(self.keys) - 1)
        return np.where(self.keys[at] == keys, at, -1)


class NGramModel:
    """P(next token | the last order-1 tokens), for every token of the vocabulary."""

    def __init__(
        self,
        order: int,
        vocab_size: int,
        unigram_counts: np.ndarray,
        unigram_discounts: np.ndarray,
        levels: list[_Level],
    ):
        self.order, self.vocab_size = order, vocab_size
        self.levels = levels  # levels[n - 2] holds order n
        counts = unigram_counts.astype(np.float64)
        total = counts.sum()
        d = np.zeros(vocab_size)
        d[counts == 1], d[counts == 2], d[counts >= 3] = unigram_discounts
        d = np.minimum(d, counts)
        self.unigram_counts, self.unigram_discounts = unigram_counts, unigram_discounts
        # the unigram level backs off to the uniform distribution, so no token has probability 0
        self.unigram = (counts - d) / total + d.sum() / total / vocab_size

    # --- building
    @classmethod
    def fit(cls, ids: np.ndarray, vocab_size: int, order: int = MAX_ORDER) -> NGramModel:
        """Count the n-grams of `ids` (token ids below vocab_size) up to `order`."""
        return cls._from_tables(_Tables(np.asarray(ids, np.int32), vocab_size, order), order)

    @classmethod
    def fit_best(
        cls, ids: np.ndarray, valid_ids: np.ndarray, vocab_size: int, orders: tuple[int, ...] = ORDERS_TRIED
    ) -> tuple[NGramModel, dict[int, float]]:
        """The model of the order (among `orders`) with the lowest perplexity on `valid_ids`, and each order's."""
        tables = _Tables(np.asarray(ids, np.int32), vocab_size, max(orders))
        scores: dict[int, float] = {}
        best: NGramModel | None = None
        for order in orders:
            model = cls._from_tables(tables, order)
            scores[order] = model.perplexity(valid_ids)
            if best is None or scores[order] < scores[best.order]:
                best = model
        assert best is not None, "no order to choose from"
        return best, scores

    @classmethod
    def _from_tables(cls, tables: _Tables, order: int) -> NGramModel:
        V = tables.vocab_size
        unigram = tables.raw[1] if order == 1 else tables.continuation[1]
        levels = []
        for n in range(2, order + 1):
            counts = tables.raw[n] if n == order else tables.continuation[n]
            level = _Level(tables.keys[n], counts, _discounts(counts))
            levels.append(level.finish(len(tables.keys[n - 1]) if n > 2 else V, V))
        return cls(order, V, unigram, _discounts(unigram), levels)

    # --- probabilities
    def distribution(self, history: list[int] | np.ndarray) -> np.ndarray:
        """P(w | history) for every token w, as a vector of vocab_size probabilities summing to 1."""
        history = [int(t) for t in history][-(self.order - 1) :] if self.order > 1 else []
        history = [0] * (self.order - 1 - len(history)) + history  # pad like the training text
        p = self.unigram.copy()
        for n, level in enumerate(self.levels, 2):
            context = self._context_id(history[len(history) - (n - 1) :])
            if context < 0 or level.context_total[context] <= 0:
                continue  # unseen context: this order adds nothing to the order below
            lo, hi = np.searchsorted(level.keys, [context * self.vocab_size, (context + 1) * self.vocab_size])
            words, counts = level.keys[lo:hi] - context * self.vocab_size, level.counts[lo:hi]
            p *= level.context_backoff[context]
            p[words] += (counts - level.discount(counts)) / level.context_total[context]
        return p

    def distributions(self, histories: list[list[int]]) -> np.ndarray:
        return np.stack([self.distribution(h) for h in histories]) if histories else np.zeros((0, self.vocab_size))

    def _context_id(self, tokens: list[int]) -> int:
        """Id of the (n-1)-gram `tokens` at its order (the word itself for order 1), or -1 if unseen."""
        ident = tokens[0]
        for level, token in zip(self.levels, tokens[1:], strict=False):
            ident = int(level.find(np.array([ident * self.vocab_size + token]))[0])
            if ident < 0:
                return -1
        return ident

    def target_probabilities(self, ids: np.ndarray) -> np.ndarray:
        """P(ids[i] | what comes before it) for every position, with the text padded on the left."""
        ids = np.asarray(ids, np.int64)
        s = np.concatenate([np.zeros(self.order - 1, np.int64), ids])
        start = self.order - 1  # positions of s that are real tokens
        p = self.unigram[s[start:]]
        gram = s.copy()  # id of the (n-1)-gram ending at each position of s; order 1: the word
        for level in self.levels:
            context = np.concatenate([[-1], gram[:-1]])  # the (n-1)-gram ending just before each position
            known = context >= 0
            keys = np.where(known, context, 0) * self.vocab_size + s
            at = np.where(known, level.find(keys), -1)
            ctx = context[start:]
            seen = ctx >= 0
            total = np.where(seen, level.context_total[np.where(seen, ctx, 0)], 0.0)
            backoff = np.where(seen, level.context_backoff[np.where(seen, ctx, 0)], 1.0)
            hit = at[start:]
            counts = np.where(hit >= 0, level.counts[np.where(hit >= 0, hit, 0)], 0).astype(np.float64)
            with np.errstate(divide="ignore", invalid="ignore"):
                direct = np.where(total > 0, (counts - level.discount(counts)) / total, 0.0)
            p = np.where(total > 0, direct + backoff * p, p)
            gram = at
        return p

    def perplexity(self, ids: np.ndarray) -> float:
        return float(np.exp(-np.log(self.target_probabilities(ids)).mean()))

    # --- saving
    def save(self, file: str | Path | BinaryIO) -> None:
        """Write the counts as an .npz straight to `file` (no copy of them in memory on the way)."""
        arrays = level_arrays(self.order, self.unigram_counts, self.unigram_discounts, self.levels)
        arrays["vocab_size"] = np.array(self.vocab_size)
        np.savez(file, **arrays)

    @classmethod
    def load(cls, file: str | Path | BinaryIO) -> NGramModel:
        with np.load(file, allow_pickle=False) as f:
            order, V = int(f["order"]), int(f["vocab_size"])
            return cls(order, V, f["unigram_counts"], f["unigram_discounts"], read_levels(f, order, V))


def level_arrays(order: int, unigram_counts, unigram_discounts, levels: Sequence[_Level]) -> dict[str, Any]:
    """The arrays that save a Kneser-Ney model's counts, by name (read back by read_levels)."""
    arrays = {"order": np.array(order), "unigram_counts": unigram_counts, "unigram_discounts": unigram_discounts}
    for n, level in enumerate(levels, 2):
        arrays |= {f"keys{n}": level.keys, f"counts{n}": level.counts, f"discounts{n}": level.discounts}
    return arrays


def read_levels(arrays: Any, order: int, vocab_size: int) -> list[_Level]:
    """The levels of orders 2..`order` saved by level_arrays, finished for lookups."""
    levels: list[_Level] = []
    previous = vocab_size
    for n in range(2, order + 1):
        level = _Level(arrays[f"keys{n}"], arrays[f"counts{n}"], arrays[f"discounts{n}"])
        levels.append(level.finish(previous, vocab_size))
        previous = len(level.keys)
    return levels


class _Tables:
    """Every n-gram of a text up to an order, as sorted keys with raw and continuation counts."""

    def __init__(self, ids: np.ndarray, vocab_size: int, order: int):
        self.vocab_size = V = vocab_size
        s = np.concatenate([np.zeros(order - 1, np.int32), ids])  # pads are context, never predicted tokens
        self.keys: dict[int, np.ndarray] = {1: np.arange(V)}
        self.raw: dict[int, np.ndarray] = {1: np.bincount(s[order - 1 :], minlength=V).astype(np.int32)}
        self.continuation: dict[int, np.ndarray] = {}
        gram = s  # gram[k]: id of the (n-1)-gram ending at position k + n - 2 (order 1: the word itself)
        for n in range(2, order + 1):
            keys = gram[:-1].astype(np.int64) * V + s[n - 1 :]  # the n-gram ending at each position from n - 1
            unique, first, inverse = _distinct(keys)
            del keys
            self.keys[n] = unique
            self.raw[n] = np.bincount(inverse[order - n :], minlength=len(unique)).astype(np.int32)
            # each distinct n-gram seen at a real position adds one to the continuation count of its suffix,
            # the (n-1)-gram ending at the same position
            suffix = gram[first + 1][self.raw[n] > 0]
            self.continuation[n - 1] = np.bincount(suffix, minlength=len(self.keys[n - 1])).astype(np.int32)
            gram = inverse  # int32: ids are below the text's length


def _distinct(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """np.unique(keys, return_index=True, return_inverse=True) with the inverse as int32, at about half its
    peak memory (the text's n-gram keys are its largest arrays): the distinct keys sorted, where each first
    occurs, and each position's index among them."""
    by_key = np.argsort(keys, kind="stable")  # stable: the first of equal keys is where that n-gram first occurs
    ordered = keys[by_key]
    starts = np.empty(len(ordered), bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    unique = ordered[starts]
    del ordered
    inverse = np.empty(len(by_key), np.int32)
    inverse[by_key] = np.cumsum(starts, dtype=np.int32) - 1
    return unique, by_key[starts], inverse


def _discounts(counts: np.ndarray) -> np.ndarray:
    """Modified Kneser-Ney discounts D1, D2, D3+ from the counts of counts (Chen & Goodman 1998)."""
    n1, n2, n3, n4 = (int((counts == k).sum()) for k in (1, 2, 3, 4))
    if min(n1, n2, n3, n4) == 0:
        return np.array([0.5, 1.0, 1.5])  # too little text for the estimates: the usual fallback
    y = n1 / (n1 + 2 * n2)
    d = np.array([1 - 2 * y * n2 / n1, 2 - 3 * y * n3 / n2, 3 - 4 * y * n4 / n3])
    return d.clip([0.05, 0.1, 0.15], [1.0, 2.0, 3.0])


CACHE_SIZE = 500  # recent tokens the cache counts
CACHE_ORDERS = 3  # the cache's longest n-gram: the word after the last two tokens, where they came before
CACHE_TRUST = 20  # tokens counted at which the cache trusts its counts half: a few words say little of a text


def cache_distribution(
    history: Sequence[int] | np.ndarray,
    vocab_size: int,
    shares: Sequence[float] = (1.0,),
    size: int = CACHE_SIZE,
    counted: int | None = None,
) -> np.ndarray:
    """An n-gram cache (Kuhn & De Mori 1990) of the last `size` tokens of `history`. Its order n predicts what
    followed the last n-1 tokens where they came before (else what followed fewer of them, else how often
    each token came); `shares[n - 1]` is order n's share, chosen on held-out text with the mixture's weights.
    Texts repeat their own words and phrases (names, refrains); neither counts nor windows see that far.
    With `counted`, only the first `counted` tokens of `history` are counted (what a person wrote, when the
    rest was generated), while the context is still the end of `history`. The counts are trusted in
    proportion to how many there are (see _trusted): a three-word seed must not make its words a refrain."""
    return _shared(shares, _distributions_by_order(history, vocab_size, len(shares), size, counted))


def cache_target_probabilities(
    ids: np.ndarray, vocab_size: int, shares: Sequence[float] = (1.0,), size: int = CACHE_SIZE
) -> np.ndarray:
    """The cache's P(ids[i]) from the `size` tokens before each position: cache_distribution(ids[:i])[ids[i]]
    for every i at once."""
    return _shared(shares, cache_targets_by_order(ids, vocab_size, len(shares), size))


def _shared(shares: Sequence[float], by_order: list) -> np.ndarray:
    """The orders' probabilities, each weighed by its share."""
    return np.tensordot(np.asarray(shares, float), np.stack(by_order), axes=1)


def _distributions_by_order(history, vocab_size: int, orders: int, size: int, counted: int | None) -> list:
    """The cache's distribution of each order 1..orders, longer contexts matched on top of shorter ones."""
    h = np.concatenate([np.zeros(orders - 1, np.int64), np.asarray(history, np.int64)])  # padded as in training
    end = len(h) if counted is None else min(len(h), orders - 1 + counted)
    targets = np.arange(max(orders - 1, end - size), end)  # the window: positions of h it counts
    follows = np.ones(len(targets), bool)
    p, by_order = np.zeros(vocab_size), []
    for n in range(1, orders + 1):
        if n > 1:  # the context token n-1 places before each target matches the history's
            follows &= h[targets - (n - 1)] == h[len(h) - (n - 1)]
        if follows.any():  # else this order backs off to the one below
            p = np.bincount(h[targets[follows]], minlength=vocab_size)[:vocab_size] / follows.sum()
        by_order.append(_trusted(p, len(targets), vocab_size))
    return by_order


def cache_targets_by_order(ids: np.ndarray, vocab_size: int, orders: int = CACHE_ORDERS, size: int = CACHE_SIZE):
    """The cache's P(ids[i]) of each order 1..orders (each order backing off to the one below), in one pass."""
    ids = np.asarray(ids, np.int64)
    padded = np.concatenate([np.zeros(orders - 1, np.int64), ids])
    history = np.minimum(np.arange(len(ids)), size)
    seen = _seen_in_window(_gram_ids(padded, orders, 1, 0), size)
    p = np.where(history > 0, seen / np.maximum(history, 1), 0.0)
    by_order = [_trusted(p, history, vocab_size)]
    for n in range(2, orders + 1):
        with_word = _seen_in_window(_gram_ids(padded, orders, n, 0), size)  # the context and the word came before
        context = _seen_in_window(_gram_ids(padded, orders, n - 1, 1), size)  # the context came before a word
        p = np.where(context > 0, with_word / np.maximum(context, 1), p)
        by_order.append(_trusted(p, history, vocab_size))
    return by_order


def _trusted(p, counted, vocab_size: int):
    """The cache's estimate blended with the uniform distribution, by how many tokens it counted."""
    share = counted / (counted + CACHE_TRUST)
    return share * p + (1 - share) / vocab_size


def _gram_ids(padded: np.ndarray, order: int, k: int, skip: int) -> np.ndarray:
    """A dense id per position of the unpadded text for its k tokens ending `skip` tokens before it."""
    n = len(padded) - (order - 1)
    end = order - 1 - skip  # where, in `padded`, the gram of the first position ends
    columns = np.stack([padded[end - k + 1 + c : end - k + 1 + c + n] for c in range(k)], axis=1)
    return np.unique(columns, axis=0, return_inverse=True)[1].reshape(-1)


def _seen_in_window(keys: np.ndarray, size: int) -> np.ndarray:
    """For each position i, how many of the positions i - size .. i - 1 have the same key."""
    positions = np.arange(len(keys))
    stride = len(keys) + size + 2  # one number per (key, position), sorted by key, then position
    keys = keys.astype(np.int64)
    ranked = np.sort(keys * stride + positions)
    before = np.searchsorted(ranked, keys * stride + positions)
    return before - np.searchsorted(ranked, keys * stride + np.maximum(positions - size, 0))
