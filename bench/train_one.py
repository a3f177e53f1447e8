"""Train one Continuo model and print one JSON line of measurements (used by the benchmarks).

Training runs as the TUI and the bot run it, in a child process of core.jobs.LocalProcessRunner;
evaluation and generation are then timed here, in a process that only generates.
"""

import argparse
import json
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import peak_rss_mb  # noqa: E402
from core import (  # noqa: E402
    GenerationConfig,
    LocalProcessRunner,
    ModelConfig,
    TrainConfig,
    TrainRequest,
    load,
    read_text,
)

GEN_RUNS = 3  # generation is timed this many times; the median stands (a first run is often slower)


def test_scores(model, train_text: str, test_text: str, valid_text: str | None = None) -> dict:
    """Test perplexity and bits per character of the neural model alone, the n-gram model alone and what Continuo
    serves, beside a Kneser-Ney 5-gram counted from the very same training tokens and vocabulary (its unknown
    words spelled by the same spelling model) and, given `valid_text` to choose its order on, a character-level
    Kneser-Ney model."""
    import numpy as np

    from bench.baselines import char_kn
    from core import NGramModel
    from core.generate import mix_log_probs
    from core.spelling import text_as_read

    scored = model.read_for_scoring(test_text)  # token ids, unknown words' spelling, characters
    ids = scored.ids
    ppl = lambda log_p: round(float(np.exp(-log_p.mean())), 2)  # noqa: E731
    bpc = lambda log_p: round(scored.bits_per_character(log_p), 4)  # noqa: E731
    train_ids = np.array(model.tokenizer.encode(train_text), np.int32)
    t = time.perf_counter()
    kn5 = NGramModel.fit(train_ids, len(model.tokenizer), 5)
    kn5_s = time.perf_counter() - t
    # each part once, mixed here as LanguageModel.target_log_probs mixes them (a neural pass is the slow part)
    parts = model.target_log_probs_by_part(ids)
    served = mix_log_probs({name: (model.weights[name], log_p) for name, log_p in parts.items()})
    neural, ngram = parts.get("neural"), parts.get("ngram")
    kn5_log_p = np.log(kn5.target_probabilities(ids))
    unknown = int((ids == 1).sum())
    scores = {
        "test_tokens": int(len(ids)),
        "test_unknown": unknown,
        "test_ppl": ppl(served),
        "test_ppl_kn5": ppl(kn5_log_p),
        "kn5_build_s": round(kn5_s, 2),
        "kn5_tokens": int(len(train_ids)),
        "test_characters": scored.characters,
        "test_bpc": bpc(served),
        "test_bpc_kn5": bpc(kn5_log_p),
        "spelling_bits_per_unknown": round(-float(scored.spelling_log_probs.sum()) / np.log(2) / max(unknown, 1), 2),
    }
    if neural is not None:
        scores["test_ppl_neural"] = ppl(neural)
        scores["test_bpc_neural"] = bpc(neural)
    if ngram is not None:
        scores["test_ppl_ngram"] = ppl(ngram)
        scores["test_bpc_ngram"] = bpc(ngram)
    if valid_text is not None:
        scores.update(char_kn(*(text_as_read(model.tokenizer, t) for t in (train_text, valid_text, test_text))))
        scores["bpc_ratio"] = round(scores["test_bpc"] / min(scores["test_bpc_kn5"], scores["test_bpc_char_kn"]), 4)
    return scores


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("train")
    ap.add_argument("out")
    ap.add_argument("--valid")
    ap.add_argument("--test")
    ap.add_argument("--model", default="{}", help="ModelConfig fields as JSON")
    ap.add_argument("--config", default="{}", help="TrainConfig fields as JSON")
    ap.add_argument("--gen-words", type=int, default=200)
    a = ap.parse_args()
    request = TrainRequest(
        a.out,
        source=a.train,
        corpus_name=Path(a.train).name,
        model=ModelConfig(**json.loads(a.model)),
        train=TrainConfig(**json.loads(a.config)),
        valid_text=read_text(a.valid) if a.valid else None,
    )
    start = time.perf_counter()
    result = LocalProcessRunner().submit(request).result()
    train_s = time.perf_counter() - start
    card = result.card
    epoch_s = card.history["epoch_seconds"]
    out = {
        "method": "continuo",
        "tokens": card.tokens,
        "vocab": card.vocab_size,
        "epochs": card.epochs,
        "train_s": round(card.train_seconds, 2),
        "examples_per_s": round(card.examples / card.train_seconds, 1),
        # after the first epoch, which also builds the compiled steps
        "steady_examples_per_s": round(card.tokens * (len(epoch_s) - 1) / sum(epoch_s[1:]), 1)
        if len(epoch_s) > 1
        else None,
        "val_ppl": card.val_perplexity,
        "stopped": card.stopped,
        "peak_rss_train_mb": round(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, 1),
        "total_s": round(train_s, 2),
    }
    sizes = card.hyperparameters.get("model", {})
    out.update(window=sizes.get("window"), units=sizes.get("units"), architecture=sizes.get("architecture"))
    out.update(
        val_ppl_neural=card.neural_val_perplexity,
        val_ppl_ngram=card.ngram_val_perplexity,
        ngram_order=card.ngram_order,
        neural_weight=card.neural_weight,
        cache_weight=card.cache_weight,
        serves=card.serves,
    )
    model = load(result.path)
    if a.test:
        out.update(test_scores(model, read_text(a.train), read_text(a.test), read_text(a.valid) if a.valid else None))
    seed = " ".join(read_text(a.train).split()[:3])
    as_the_command_line = GenerationConfig.readable(max_new_tokens=a.gen_words, seed=0)  # `continuo generate`
    model.generate(seed, max_new_tokens=5)  # compile outside the timing
    runs = []
    for _ in range(GEN_RUNS):
        t = time.perf_counter()
        model.generate(seed, as_the_command_line)
        runs.append((time.perf_counter() - t) / a.gen_words * 1000)
    out["gen_ms_per_word"] = round(statistics.median(runs), 3)
    batch = [seed] * 32
    model.generate_batch(batch, max_new_tokens=2)  # compile the batch-32 shape outside the timing
    t = time.perf_counter()
    model.generate_batch(batch, max_new_tokens=50)
    out["gen_ms_per_word_batch32"] = round((time.perf_counter() - t) / (50 * 32) * 1000, 3)
    out["sample"] = seed + model.generate(seed, GenerationConfig.readable(max_new_tokens=30, seed=1))[0]
    out["peak_rss_mb"] = peak_rss_mb()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
