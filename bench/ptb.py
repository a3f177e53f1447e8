"""PTB quality run: train on ptb.train.txt with early stopping on ptb.valid.txt within a time budget,
then report the test perplexity on ptb.test.txt next to the published numbers."""
import json
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, machine, run_json, write_results  # noqa: E402

PUBLISHED = [("Kneser-Ney 5-gram", 141.2), ("Mikolov RNN-LM", 124.7), ("LSTM 2x200 (Zaremba small)", 114.5),
             ("LSTM 2x650 (Zaremba medium)", 82.7)]
MODEL = dict(window=12, embedding_dim=200, units=256, dropout=0.3)  # chosen on ptb.valid only (batch 512 diverged twice)
TRAIN = dict(tokenizer="whitespace", min_count=1, max_vocab=10_002, batch_size=256, learning_rate=2e-3,
             patience=2, epochs=40, short_context_rate=0.05, mixed_precision=True,
             max_minutes=float(sys.argv[1]) if len(sys.argv) > 1 else 28.0)


def main() -> None:
    ptb = DATA / "ptb"
    with tempfile.TemporaryDirectory() as tmp:
        ours = run_json(["bench/train_one.py", str(ptb / "ptb.train.txt"), f"{tmp}/ptb", "--valid",
                         str(ptb / "ptb.valid.txt"), "--test", str(ptb / "ptb.test.txt"),
                         "--model", json.dumps(MODEL), "--config", json.dumps(TRAIN)], timeout=3 * 3600)
    rows = [f"| {name} | {ppl} |" for name, ppl in PUBLISHED]
    table = "\n".join([
        "| PTB test perplexity (82,430 tokens, one `<eos>` per line) | test ppl |", "|---|---|", *rows,
        f"| **Continuo** (BiLSTM {MODEL['units']}, window {MODEL['window']}, {ours['epochs']} epochs in "
        f"{ours['train_s'] / 60:.0f} min on {machine()['cpus']} CPU cores) | **{ours['test_ppl']}** |",
    ])
    write_results("ptb", {"machine": machine(), "model": MODEL, "train": TRAIN, "continuo": ours}, table)


if __name__ == "__main__":
    main()
