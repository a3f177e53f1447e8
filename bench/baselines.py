"""The yardsticks of bits per character: a character-level Kneser-Ney model, its order chosen on validation.

Counted with core's NGramModel over character ids. Id 0 is the line break, so the padding before a text
reads as the start of a line; characters never seen in training are one id, its probability spread
evenly over the code points never seen (as the spelling model does), so every text has a probability.
"""

from __future__ import annotations

import math
import time

import numpy as np

from core import NGramModel
from core.spelling import UNICODE

CHAR_ORDERS = tuple(range(1, 9))  # the character model's order is chosen among these on validation


def _code_points(text: str) -> np.ndarray:
    return np.frombuffer(text.encode("utf-32-le", "surrogatepass"), np.uint32).astype(np.int64)


def char_kn(train: str, valid: str, test: str, orders: tuple[int, ...] = CHAR_ORDERS) -> dict:
    """Bits per character of `test` under a character-level Kneser-Ney model of `train`, its order chosen among
    `orders` on `valid`. Pass the texts as the tokenizer reads them (core.spelling.text_as_read), so that the
    characters are those the word models are divided by."""
    start = time.perf_counter()
    seen = np.unique(_code_points(train))
    newline = ord("\n")
    alphabet = np.concatenate([[newline], seen[seen != newline]])  # id 0: the line break
    order_of = np.argsort(alphabet)
    vocab = len(alphabet) + 1  # the last id: any character never seen
    never_seen_bits = math.log2(UNICODE - len(alphabet))

    def ids(text: str) -> np.ndarray:
        points = _code_points(text)
        at = np.searchsorted(alphabet[order_of], points).clip(max=len(alphabet) - 1)
        found = alphabet[order_of][at] == points
        return np.where(found, order_of[at], len(alphabet))

    def bits(model: NGramModel, text_ids: np.ndarray) -> float:
        unseen = int((text_ids == len(alphabet)).sum())
        total = -float(np.log2(model.target_probabilities(text_ids)).sum()) + unseen * never_seen_bits
        return total / max(len(text_ids), 1)

    train_ids, valid_ids, test_ids = ids(train), ids(valid), ids(test)
    model, perplexities = NGramModel.fit_best(train_ids, valid_ids, vocab, orders)
    unseen_bits = int((valid_ids == len(alphabet)).sum()) * never_seen_bits / max(len(valid_ids), 1)
    per_order = {order: round(math.log2(ppl) + unseen_bits, 4) for order, ppl in perplexities.items()}
    return {
        "char_kn_order": model.order,
        "test_bpc_char_kn": round(bits(model, test_ids), 4),
        "valid_bpc_char_kn_by_order": per_order,
        "char_kn_s": round(time.perf_counter() - start, 2),
        "char_kn_alphabet": len(alphabet),
    }
