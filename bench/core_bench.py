"""Core benchmark: Continuo against the seed method in the same run, on the same corpora and machine.

Measures training examples/s with the same layer sizes, held-out perplexity on sonnets, ms per
generated word, and peak memory while training on tiny-shakespeare. Writes bench/results/core.{json,md}.
Usage: python bench/core_bench.py [--quick]
"""

import json
import re
import statistics
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, machine, measured_on, run_json, seed_method, write_results  # noqa: E402

SAME_SIZES = dict(
    window=10, embedding_dim=100, units=150, dropout=0.2
)  # the seed's Embedding(100), BiLSTM(150), 10-word input
THROUGHPUT_RUNS = 3  # runs of each method, alternated; the table shows medians
_SEED_FILTERS = re.compile(r"[!\"#$%&()*+,\-./:;<=>?@\[\\\]^_`{|}~\t\n]")


def split_lines(path: Path, into: Path, held_out: float = 0.1) -> tuple[Path, Path]:
    """The first 90% of the lines to train on, the last 10% held out, for both methods alike."""
    lines = path.read_text("utf-8").splitlines(keepends=True)
    cut = int(len(lines) * (1 - held_out))
    train, test = into / f"{path.stem}.train.txt", into / f"{path.stem}.test.txt"
    train.write_text("".join(lines[:cut]), "utf-8")
    test.write_text("".join(lines[cut:]), "utf-8")
    return train, test


def seed_onehot_bytes(path: Path) -> int:
    """The seed method's one-hot label matrix for a corpus: examples x vocabulary x 4 bytes."""
    vocab, examples = set(), 0
    for line in path.read_text("utf-8", errors="replace").split("\n"):
        words = _SEED_FILTERS.sub(" ", line.lower()).split()
        vocab.update(words)
        examples += max(0, len(words) - 1)
    return examples * (len(vocab) + 1) * 4


def ours(train: Path, out: Path, model: dict, config: dict, test: Path | None = None) -> dict:
    argv = ["bench/train_one.py", str(train), str(out), "--model", json.dumps(model), "--config", json.dumps(config)]
    return run_json(argv + (["--test", str(test)] if test else []))


def main() -> None:
    quick = "--quick" in sys.argv
    epochs = 1 if quick else 5
    results = {"machine": machine()}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        train, test = split_lines(DATA / "sonnets" / "sonnets.txt", tmp)
        fixed = dict(epochs=epochs, patience=epochs, batch_size=512, min_count=1, validation_split=0.1)
        runs = {"seed": [], "seed_1_epoch": [], "ours": []}
        for _ in range(1 if quick else THROUGHPUT_RUNS):  # alternated, so both meet the same machine
            runs["seed"].append(seed_method(train, test, epochs=epochs))
            runs["seed_1_epoch"].append(seed_method(train, epochs=1))
            runs["ours"].append(ours(train, tmp / "same", SAME_SIZES, fixed, test))
        results["throughput_runs"] = runs
        results["seed_sonnets"], results["ours_same_sizes"] = runs["seed"][0], runs["ours"][0]
        results["throughput"] = throughput(runs, epochs)
        # `continuo train` with its defaults: sizes chosen for the corpus, a 10-minute budget
        results["ours_best_sonnets"] = ours(train, tmp / "best", {}, dict(min_count=1, epochs=3 if quick else 30), test)
        # the option that predicts every position, over the same sizes and input
        results["ours_lstm_lm_same_sizes"] = ours(
            train,
            tmp / "lm",
            {**SAME_SIZES, "architecture": "lstm-lm"},
            {**fixed, "batch_size": 512 // SAME_SIZES["window"]},
            test,
        )
        shakespeare = DATA / "tinyshakespeare" / "input.txt"
        results["ours_tinyshakespeare"] = ours(
            shakespeare,
            tmp / "shake",
            dict(window=16, embedding_dim=128, units=256),
            dict(epochs=1, max_minutes=1 if quick else 3, batch_size=256),
        )
    results["seed_onehot_gb"] = {
        name: round(seed_onehot_bytes(path) / 1e9, 1)
        for name, path in [
            ("sonnets", DATA / "sonnets" / "sonnets.txt"),
            ("tinyshakespeare", shakespeare),
            ("ptb.train", DATA / "ptb" / "ptb.train.txt"),
        ]
    }
    write_results("core", results, table(results))


def throughput(runs: dict, epochs: int) -> dict:
    """Median examples/s of each method, end to end and after the first epoch (which builds the graphs).

    The seed script reports only its whole training time, so its rate after the first epoch comes
    from the difference between its run of `epochs` epochs and its run of one.
    """
    seed_end_to_end = [r["examples_per_s"] for r in runs["seed"]]
    seed_steady = (
        [
            r["examples"] * (epochs - 1) / (r["train_s"] - one["train_s"])
            for r, one in zip(runs["seed"], runs["seed_1_epoch"], strict=True)
        ]
        if epochs > 1
        else seed_end_to_end
    )
    ours_end_to_end = [r["examples_per_s"] for r in runs["ours"]]
    ours_steady = [r["steady_examples_per_s"] or r["examples_per_s"] for r in runs["ours"]]

    def median(xs):
        return round(statistics.median(xs), 1)

    return {
        "seed_end_to_end": median(seed_end_to_end),
        "seed_steady": median(seed_steady),
        "ours_end_to_end": median(ours_end_to_end),
        "ours_steady": median(ours_steady),
        "runs": len(runs["ours"]),
        "all": {
            "seed_end_to_end": seed_end_to_end,
            "seed_steady": seed_steady,
            "ours_end_to_end": ours_end_to_end,
            "ours_steady": ours_steady,
        },
    }


def table(r: dict) -> str:
    seed, same, best, shake = r["seed_sonnets"], r["ours_same_sizes"], r["ours_best_sonnets"], r["ours_tinyshakespeare"]
    lm = r["ours_lstm_lm_same_sizes"]
    cpu = r["machine"]
    tp = r["throughput"]

    def ratio(a, b):
        return f"{a / b:.1f}x"

    return "\n".join(
        [
            f"{measured_on(cpu)}; both methods in the same run, alternated.",
            "",
            "| measure | seed method | Continuo | ratio |",
            "|---|---|---|---|",
            f"| training examples/s, sonnets, Embedding 100 + BiLSTM 150, 10-word input (after the first epoch; "
            f"median of {tp['runs']}) | {tp['seed_steady']:,.0f} | {tp['ours_steady']:,.0f} | "
            f"{ratio(tp['ours_steady'], tp['seed_steady'])} faster |",
            f"| the same, end to end (first epoch and graph building included) | {tp['seed_end_to_end']:,.0f} | "
            f"{tp['ours_end_to_end']:,.0f} | {ratio(tp['ours_end_to_end'], tp['seed_end_to_end'])} faster |",
            f"| held-out perplexity, sonnets (last 10% of lines), same sizes, {same['epochs']} epochs | "
            f"{seed['test_ppl_in_vocab']:,.1f} | {same['test_ppl']:,.1f} | "
            f"{ratio(seed['test_ppl_in_vocab'], same['test_ppl'])} lower |",
            f"| tokens predicted per second, the `lstm-lm` option (one-way LSTM 150 + LSTM 150, every position of "
            f"10-token windows; after the first epoch) | {tp['seed_steady']:,.0f} | "
            f"{lm['steady_examples_per_s'] or lm['examples_per_s']:,.0f} | "
            f"{ratio(lm['steady_examples_per_s'] or lm['examples_per_s'], tp['seed_steady'])} faster |",
            f"| held-out perplexity, sonnets, `continuo train` defaults ({best['epochs']} epochs; served mixture) "
            "| - | "
            f"{best['test_ppl']:,.1f} | {ratio(seed['test_ppl_in_vocab'], best['test_ppl'])} lower |",
            f"| ms per generated word at batch 1, default sizes (window {best.get('window', '?')}, units "
            f"{best.get('units', '?')}), n-gram mixed in, sampled as `continuo generate` does | "
            f"{seed['gen_ms_per_word']:.1f} | "
            f"{best['gen_ms_per_word']:.2f} | "
            f"{ratio(seed['gen_ms_per_word'], best['gen_ms_per_word'])} faster |",
            f"| the same at the seed's sizes | {seed['gen_ms_per_word']:.1f} | {same['gen_ms_per_word']:.2f} | "
            f"{ratio(seed['gen_ms_per_word'], same['gen_ms_per_word'])} faster |",
            f"| ms per generated word (32 sequences in one batch) | - | {same['gen_ms_per_word_batch32']:.3f} | - |",
            f"| peak RSS training on sonnets (MB) | {seed['peak_rss_mb']:,.0f} | "
            f"{same['peak_rss_train_mb']:,.0f} | - |",
            f"| one-hot labels, tinyshakespeare / PTB train (GB) | {r['seed_onehot_gb']['tinyshakespeare']} / "
            f"{r['seed_onehot_gb']['ptb.train']} | 0 (sparse labels, windows streamed) | - |",
            f"| peak RSS training on tinyshakespeare (MB) | would need "
            f"{r['seed_onehot_gb']['tinyshakespeare']} GB of labels | "
            f"{shake['peak_rss_train_mb']:,.0f} | - |",
            "",
            f"Seed sample: {seed['sample'][:120]!r}",
            f"Continuo sample (early stopping): {best['sample'][:160]!r}",
            "",
            "The seed method's perplexity counts lower-cased in-vocabulary words only; Continuo's counts every "
            "token (case, punctuation and line breaks kept, unknown words included), which is the harder measure.",
        ]
    )


if __name__ == "__main__":
    main()
