"""The instant n-gram model: seconds per million tokens to count it (order chosen on validation), its size in
the bundle, its held-out perplexity, and what it costs per generated word.

    python bench/ngram_bench.py
"""

import io
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, machine, write_results  # noqa: E402
from core import NGramModel, Tokenizer, read_text  # noqa: E402


def measure(name: str, train_text: str, valid_text: str, test_text: str, mode: str, min_count: int) -> dict:
    start = time.perf_counter()
    tokenizer = Tokenizer(mode=mode)
    train_tokens = tokenizer.split(train_text)
    vocab = Tokenizer.fit(train_tokens, mode, min_count, 20_000 if mode == "words" else 10_002)
    ids = lambda tokens: np.array(vocab.encode(tokens), np.int32)  # noqa: E731
    train_ids, valid_ids, test_ids = (
        ids(train_tokens),
        ids(tokenizer.split(valid_text)),
        ids(tokenizer.split(test_text)),
    )
    tokenized = time.perf_counter()
    model, by_order = NGramModel.fit_best(train_ids, valid_ids, len(vocab))
    counted = time.perf_counter()
    history = list(test_ids[:200])
    t = time.perf_counter()
    for i in range(200):
        model.distribution(history[max(0, i - 4) : i])
    per_word_ms = (time.perf_counter() - t) / 200 * 1000
    return {
        "corpus": name,
        "tokens": int(len(train_ids)),
        "vocab": len(vocab),
        "order": model.order,
        "valid_ppl_by_order": {k: round(v, 2) for k, v in by_order.items()},
        "test_ppl": round(model.perplexity(test_ids), 2),
        "tokenize_s": round(tokenized - start, 2),
        "count_and_choose_s": round(counted - tokenized, 2),
        "s_per_million_tokens": round((counted - tokenized) / len(train_ids) * 1e6, 2),
        "bundle_mb": round(_saved_bytes(model) / 1e6, 1),
        "distribution_ms": round(per_word_ms, 3),
    }


def _saved_bytes(model: NGramModel) -> int:
    buffer = io.BytesIO()
    model.save(buffer)
    return buffer.tell()


def main() -> None:
    ptb = DATA / "ptb"
    rows = [
        measure(
            "ptb",
            read_text(ptb / "ptb.train.txt"),
            read_text(ptb / "ptb.valid.txt"),
            read_text(ptb / "ptb.test.txt"),
            "whitespace",
            1,
        )
    ]
    lines = read_text(DATA / "tinyshakespeare" / "input.txt").splitlines(keepends=True)
    a, b = int(len(lines) * 0.8), int(len(lines) * 0.9)
    rows.append(measure("tinyshakespeare", "".join(lines[:a]), "".join(lines[a:b]), "".join(lines[b:]), "words", 2))
    table = "\n".join(
        [
            "| corpus | training tokens | order (chosen on valid) | count + choose order | per million tokens | "
            "test ppl | in the bundle | P(next) for one history |",
            "|---|---|---|---|---|---|---|---|",
            *[
                f"| {r['corpus']} | {r['tokens']:,} | {r['order']} | {r['count_and_choose_s']} s | "
                f"{r['s_per_million_tokens']} s | {r['test_ppl']} | {r['bundle_mb']} MB | {r['distribution_ms']} ms |"
                for r in rows
            ],
        ]
    )
    write_results("ngram", {"machine": machine(), "results": rows}, table)


if __name__ == "__main__":
    main()
