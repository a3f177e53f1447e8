"""Chinese cut into grapheme clusters (Continuo's segmentation) or into dictionary words, in bits per character.

    pip install -e ".[bench]"     # rjieba: the Rust port of jieba, with wheels (jieba ships only a source archive)
    python bench/segmenters.py    # song-ci (bench/texts.py), into bench/results/segmenters.md

Both cuts of the same text, split as bench/quality.py splits it, get a word-level KN-5 with the spelling model
for unknown words (as bench/spelling.py scores it); bits per character divide by the same characters, so the
cut that predicts the text better wins whatever its token count. No neural training: this decides the
segmentation before any model is trained on it.
"""

from __future__ import annotations

import math
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import machine, measured_on, write_results  # noqa: E402
from bench.quality import CORPORA, split  # noqa: E402
from core import NGramModel, Tokenizer, TrainConfig, read_text  # noqa: E402
from core.encoding import encode_corpus_words  # noqa: E402
from core.spelling import SpellingModel, cache_log_probs, spelling_weights, text_as_read  # noqa: E402

LN2 = math.log(2)


def dictionary_words(text: str) -> str:
    """`text` cut by jieba into words, one space between them, its lines kept (read in `whitespace` mode)."""
    import rjieba

    return "\n".join(" ".join(w for w in rjieba.cut(line) if w.strip()) for line in text.split("\n"))


def kn5_bits(train: str, test: str, tokenizer: str, cfg: TrainConfig) -> tuple[dict, Tokenizer]:
    """Bits of `test` under a word KN-5 of `train`'s tokens, unknown words by the spelling model (with its cache);
    and the tokenizer that cut it."""
    tok, _, _, words = encode_corpus_words(train, tokenizer, cfg.min_count, cfg.max_vocab)  # type: ignore[arg-type]
    spelling = SpellingModel.fit(words.types, spelling_weights(words.counts, words.known))
    spelling = spelling.excluding([*tok.vocab, ""])
    tokens = tok.split(test)
    ids = np.asarray(tok.encode(tokens), np.int64)
    kn5 = NGramModel.fit(np.asarray(tok.encode(train), np.int64), len(tok), 5)
    log_p = np.log(kn5.target_probabilities(ids))
    unknown = [t for t, i in zip(tokens, ids, strict=True) if i == 1]
    spelled = cache_log_probs(unknown, spelling.log_probs(unknown)) if unknown else np.zeros(0)
    bits = {
        "vocabulary": len(tok),
        "test_tokens": len(ids),
        "test_unknown": len(unknown),
        "bits": -(float(log_p.sum()) + float(spelled.sum())) / LN2,
        "spelling_bits": -float(spelled.sum()) / LN2,
    }
    return bits, tok


def measure(name: str) -> dict:
    source, settings = CORPORA[name]
    with tempfile.TemporaryDirectory() as tmp:
        parts = split(name, source() if callable(source) else source, Path(tmp))
        train, _, test = (read_text(p) for p in parts)
    cfg = TrainConfig(**{k: v for k, v in settings.items() if k in ("min_count", "max_vocab")})
    graphemes, tok = kn5_bits(train, test, cfg.tokenizer, cfg)
    words, _ = kn5_bits(dictionary_words(train), dictionary_words(test), "whitespace", cfg)
    characters = len(text_as_read(tok, test))  # the text as read by Continuo; jieba's cut has spaces added
    for cut in (graphemes, words):
        cut["bpc"] = round(cut.pop("bits") / characters, 4)
        cut["spelling_bpc"] = round(cut.pop("spelling_bits") / characters, 4)
    return {"test_characters": characters, "grapheme clusters": graphemes, "jieba words": words}


def main() -> None:
    m = machine()
    results = {"machine": m, "song-ci": measure("song-ci")}
    r = results["song-ci"]
    rows = [
        f"| {cut} | {r[cut]['vocabulary']:,} | {r[cut]['test_tokens']:,} ({r[cut]['test_unknown']:,}) | "
        f"**{r[cut]['bpc']}** ({r[cut]['spelling_bpc']}) |"
        for cut in ("grapheme clusters", "jieba words")
    ]
    table = "\n".join(
        [
            f"{measured_on(m)}; song-ci, word KN-5 with the spelling model, {r['test_characters']:,} test characters.",
            "",
            "| cut | vocabulary | test tokens (unknown) | bits per character (of which spelling) |",
            "|---|---|---|---|",
            *rows,
        ]
    )
    write_results("segmenters", results, table)


if __name__ == "__main__":
    main()
