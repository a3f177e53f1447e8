"""PTB quality within a time budget: train on ptb.train.txt (early stopping, the mixture weight and the n-gram
order chosen on ptb.valid.txt), then score ptb.test.txt once, next to the published numbers.

    python bench/ptb.py [MINUTES] [ARCHITECTURE]     # 30 and lstm-lm by default
"""

import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, machine, run_json, write_results  # noqa: E402

PUBLISHED = [
    ("Kneser-Ney 5-gram (Mikolov 2012)", 141.2),
    ("Mikolov RNN-LM", 124.7),
    ("LSTM 2x200, 13 epochs (Zaremba et al. 2014)", 114.5),
    ("LSTM 2x650 (Zaremba et al. 2014)", 82.7),
]
MODELS = {  # chosen on ptb.valid only
    "lstm-lm": dict(architecture="lstm-lm", window=20, embedding_dim=256, units=256, dropout=0.2),
    "bilstm": dict(window=10, embedding_dim=200, units=200, dropout=0.3),
}
TRAIN = {
    # 32 chunks of 20 tokens: 640 targets a step (64 chunks of 24 made too few steps: 463 on valid in 30 minutes)
    "lstm-lm": dict(batch_size=32, learning_rate=4e-3),
    "bilstm": dict(batch_size=256, learning_rate=2e-3),
}
COMMON = dict(tokenizer="whitespace", min_count=1, max_vocab=10_002, short_context_rate=0.05, epochs=60, patience=3)


def main() -> None:
    minutes = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    architecture = sys.argv[2] if len(sys.argv) > 2 else "lstm-lm"
    train = {**COMMON, **TRAIN[architecture], "max_minutes": minutes}
    ptb = DATA / "ptb"
    with tempfile.TemporaryDirectory() as tmp:
        ours = run_json(
            [
                "bench/train_one.py",
                str(ptb / "ptb.train.txt"),
                f"{tmp}/ptb",
                "--valid",
                str(ptb / "ptb.valid.txt"),
                "--test",
                str(ptb / "ptb.test.txt"),
                "--model",
                json.dumps(MODELS[architecture]),
                "--config",
                json.dumps(train),
            ],
            timeout=3 * 3600,
        )
    m = MODELS[architecture]
    how = (
        f"{architecture} {m['units']} units, window {m['window']}, {ours['epochs']} epochs in "
        f"{ours['train_s'] / 60:.0f} min on {machine()['cpus']} CPU cores"
    )
    table = "\n".join(
        [
            "| PTB test perplexity (82,430 tokens, one `<eos>` per line) | valid | test |",
            "|---|---|---|",
            *[f"| {name} | - | {ppl} |" for name, ppl in PUBLISHED],
            f"| Kneser-Ney 5-gram counted here from the same tokens ({ours['kn5_build_s']} s) | - | "
            f"{ours['test_ppl_kn5']} |",
            f"| Continuo neural model alone ({how}) | {ours['val_ppl_neural']} | {ours['test_ppl_neural']} |",
            f"| Continuo n-gram model alone ({ours['ngram_order']}-gram, order chosen on valid) | "
            f"{ours['val_ppl_ngram']} | {ours['test_ppl_ngram']} |",
            f"| **Continuo as served** ({ours['serves']}, weights chosen on valid) | "
            f"{ours['val_ppl']} | **{ours['test_ppl']}** |",
        ]
    )
    write_results(f"ptb-{architecture}", {"machine": machine(), "model": m, "train": train, "continuo": ours}, table)


if __name__ == "__main__":
    main()
