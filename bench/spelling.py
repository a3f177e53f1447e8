"""The spelling model and the instant model in bits per character, against a character-level Kneser-Ney model.

    python bench/spelling.py                          # verse, chat, sonnets, tinyshakespeare
    python bench/spelling.py tinyshakespeare ptb      # some of bench/quality.py's texts

Each text is split as bench/quality.py splits it (by lines, 80/10/10; PTB has its own split). For each:

1. which training words the spelling model should count (each distinct word once, by its occurrences, only
   the words outside the vocabulary, or both) and its order: bits per held-out unknown word, on the
   validation and the test part (the unknown-word cache off, so the spelling model alone is measured);
2. the unknown-word cache: its two numbers as chosen on validation, against core.spelling.CACHE;
3. bits per character of the test part: the instant model (`build_instant`, no neural training) and a
   word-level KN-5 of the same tokens, both with the spelling model, against a character-level Kneser-Ney
   model of orders 1-8, its order chosen on validation. No neural training here: bench/quality.py has that.

Writes bench/results/spelling.{json,md} (or spelling-NAMES.* for a choice of texts).
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.baselines import char_kn  # noqa: E402
from bench.common import machine, measured_on, write_results  # noqa: E402
from bench.quality import CORPORA, split  # noqa: E402
from core import NGramModel, TrainConfig, build_instant, load, read_text  # noqa: E402
from core.encoding import encode_corpus_words  # noqa: E402
from core.spelling import (  # noqa: E402
    CACHE,
    ORDER,
    WEIGHTING,
    SpellingModel,
    cache_log_probs,
    spelling_weights,
    text_as_read,  # noqa: E402
)

DEFAULT = ["verse", "chat", "sonnets", "tinyshakespeare"]
WEIGHTINGS = ("types", "tokens", "unknown", "types+unknown")
ORDERS = (3, 4, 5, 6, 7, 8)
CONCENTRATIONS = tuple(float(x) for x in np.geomspace(0.5, 5000, 14))
DISCOUNTS = (0.0, 0.2, 0.4, 0.6, 0.7, 0.8, 0.85, 0.9, 0.95)
LN2 = math.log(2)


def fit_cache(words: list[str], log_probs: np.ndarray) -> tuple[float, float]:
    """The unknown-word cache's (concentration, discount) that score these unknown words best, from a grid."""
    score = {(c, d): float(cache_log_probs(words, log_probs, c, d).sum()) for c in CONCENTRATIONS for d in DISCOUNTS}
    return max(score, key=lambda k: score[k])


def measure(name: str, folder: Path) -> dict:
    source, settings = CORPORA[name]
    train_path, valid_path, test_path = split(name, source() if callable(source) else source, folder)
    train, valid, test = read_text(train_path), read_text(valid_path), read_text(test_path)
    cfg = TrainConfig(**{k: v for k, v in settings.items() if k in ("tokenizer", "min_count", "max_vocab")})
    tokenizer, _, _, words = encode_corpus_words(train, cfg.tokenizer, cfg.min_count, cfg.max_vocab)  # type: ignore[arg-type]
    unknown = {
        part: [t for t in tokenizer.split(text) if t not in tokenizer.index]
        for part, text in (("valid", valid), ("test", test))
    }
    out: dict = {"train_types": len(words.types), "unknown_types": int((~words.known & (words.counts > 0)).sum())}
    out["unknown_words"] = {part: len(u) for part, u in unknown.items()}
    # 1. what the spelling model counts, and its order: bits per unknown word
    by_weighting: dict = {}
    for weighting in WEIGHTINGS:
        weights = spelling_weights(words.counts, words.known, weighting)
        by_weighting[weighting] = {}
        for order in ORDERS:
            start = time.perf_counter()
            model = SpellingModel.fit(words.types, weights, order).excluding([*tokenizer.vocab, ""])
            seconds = time.perf_counter() - start
            by_weighting[weighting][order] = {
                part: round(-float(model.log_probs(u).mean()) / LN2, 3) if u else None for part, u in unknown.items()
            } | {"count_s": round(seconds, 3)}
    out["bits_per_unknown_word"] = by_weighting
    # 2. the unknown-word cache, on the default spelling model
    spelling = SpellingModel.fit(words.types, spelling_weights(words.counts, words.known)).excluding(
        [*tokenizer.vocab, ""]
    )
    static = {part: spelling.log_probs(u) for part, u in unknown.items()}
    if unknown["valid"] and unknown["test"]:
        chosen = fit_cache(unknown["valid"], static["valid"])
        out["cache"] = {
            "chosen_on_valid": chosen,
            "test_bits_per_unknown_word": {
                "no cache": round(-float(static["test"].mean()) / LN2, 3),
                "chosen": round(-float(cache_log_probs(unknown["test"], static["test"], *chosen).mean()) / LN2, 3),
                "default": round(-float(cache_log_probs(unknown["test"], static["test"]).mean()) / LN2, 3),
            },
        }
    del words
    # 3. bits per character: the instant model and a word KN-5 with the spelling model, against a character KN
    start = time.perf_counter()
    instant = load(build_instant(train, folder / f"{name}-instant", cfg, valid_text=valid).path)
    out["instant_build_s"] = round(time.perf_counter() - start, 2)
    scored = instant.read_for_scoring(test)
    ngram_log_p = instant.target_log_probs_by_part(scored.ids)["ngram"]
    kn5 = NGramModel.fit(np.asarray(instant.tokenizer.encode(train), np.int64), len(instant.tokenizer), 5)
    kn5_log_p = np.log(kn5.target_probabilities(scored.ids))
    unknown_test = [t for t in instant.tokenizer.split(test) if t not in instant.tokenizer.index]
    no_cache = float(instant.spelling_model().log_probs(unknown_test).sum())  # each unknown word spelled in full
    out |= {
        "test_characters": scored.characters,
        "test_tokens": int(len(scored.ids)),
        "test_unknown": int((scored.ids == 1).sum()),
        "ngram_order": instant.ngram.order,
        "test_bpc_instant": round(scored.bits_per_character(ngram_log_p), 4),
        "test_bpc_kn5": round(scored.bits_per_character(kn5_log_p), 4),
        "test_bpc_kn5_no_cache": round(-(float(kn5_log_p.sum()) + no_cache) / LN2 / scored.characters, 4),
        "test_spelling_bpc": round(spelling_bits(scored), 4),
    }
    out |= char_kn(*(text_as_read(instant.tokenizer, t) for t in (train, valid, test)))
    out["kn5_over_char_kn"] = round(out["test_bpc_kn5"] / out["test_bpc_char_kn"], 4)
    return out


def spelling_bits(scored) -> float:
    """Bits per character that the unknown words' spellings cost."""
    return -float(scored.spelling_log_probs.sum()) / LN2 / max(scored.characters, 1) + 0.0  # never -0.0


def main() -> None:
    names = sys.argv[1:] or DEFAULT
    results, m = {}, machine()
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            results[name] = measure(name, Path(tmp))
            print(name, json.dumps(results[name]), file=sys.stderr)
    write_results(
        "spelling" if names == DEFAULT else "spelling-" + "-".join(names),
        {"machine": m, "spelling_order": ORDER, "weighting": WEIGHTING, "cache": CACHE, "results": results},
        table(results, m),
    )


def table(results: dict, m: dict) -> str:
    lines = [f"{measured_on(m)}; the spelling model's default: order {ORDER}, weighting `{WEIGHTING}`.", ""]
    lines += [
        "Bits per held-out unknown word (test part; no unknown-word cache) by what the spelling model counts, "
        "at each order:",
        "",
        "| text | unknown words (test) | " + " | ".join(WEIGHTINGS) + " |",
        "|---|---|" + "---|" * len(WEIGHTINGS),
    ]
    for name, r in results.items():
        if not r["unknown_words"]["test"]:
            continue  # nothing to spell (PTB: its unknown words are all the word <unk>)
        cells = []
        for weighting in WEIGHTINGS:
            by_order = r["bits_per_unknown_word"][weighting]
            best = min(by_order, key=lambda o: by_order[o]["valid"] or math.inf)
            cells.append(f"{by_order[ORDER]['test']} at {ORDER} ({by_order[best]['test']} at {best}, best on valid)")
        lines.append(f"| {name} | {r['unknown_words']['test']:,} | " + " | ".join(cells) + " |")
    lines += [
        "",
        "The unknown-word cache (bits per test unknown word):",
        "",
        f"| text | no cache | default (concentration, discount) = {CACHE} | chosen on valid | chosen |",
        "|---|---|---|---|---|",
    ]
    for name, r in results.items():
        if "cache" in r:
            b = r["cache"]["test_bits_per_unknown_word"]
            c = r["cache"]["chosen_on_valid"]
            lines.append(f"| {name} | {b['no cache']} | {b['default']} | {b['chosen']} | ({c[0]:.3g}, {c[1]}) |")
    lines += [
        "",
        "Bits per character of the test part, n-gram models only (no neural training):",
        "",
        "| text | characters | tokens (unknown) | instant model (its order) | word KN-5 + spelling "
        "(of which spelling) | the same without the unknown-word cache | character KN (order chosen on valid) | "
        "word KN-5 / character KN |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        lines.append(
            f"| {name} | {r['test_characters']:,} | {r['test_tokens']:,} ({r['test_unknown']:,}) | "
            f"{r['test_bpc_instant']} ({r['ngram_order']}-gram) | {r['test_bpc_kn5']} ({r['test_spelling_bpc']}) | "
            f"{r['test_bpc_kn5_no_cache']} | "
            f"{r['test_bpc_char_kn']} ({r['char_kn_order']}) | {r['kn5_over_char_kn']:.3f} |"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    main()
