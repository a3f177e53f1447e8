"""Peak memory of `continuo train` on a text near the 50 MB file-size cap, and of tokenizing it whole or in pieces.

    .venv/bin/python bench/train_memory.py [MB]        # default 45 MB; writes bench/results/train_memory.{json,md}
    .venv/bin/python bench/train_memory.py [MB] han    # Chinese without a space: train_memory-han.{json,md}

The text is generated: PTB and tiny-shakespeare lines, shuffled, with numbers and rare words mixed in so
that the vocabulary keeps growing like a real large corpus's; or with `han`, the Song ci of bench/texts.py
shuffled line by line and run together without a single space or line break, one token per character.
Each measure runs in its own process and reads that process's peak RSS.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.common import machine  # noqa: E402

REPO = Path(__file__).resolve().parent.parent
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "bench" / "results"

WHOLE = """
import resource, sys, numpy as np
from core.data import read_text
from core.tokenizer import Tokenizer
text = read_text(sys.argv[1])
tokens = Tokenizer().split(text)  # what training did before: a Python string per token
cut = int(len(tokens) * 0.9)
tok = Tokenizer.fit(tokens[:cut], "words", 2, 20000)
ids = np.array(tok.encode(tokens), np.int32)
print(len(ids), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""
PIECES = """
import resource, sys
from core.data import read_text
from core.training import TrainConfig, prepare
text = read_text(sys.argv[1])
tok, train_ids, valid_ids, words = prepare(text, TrainConfig())
print(len(train_ids) + len(valid_ids), resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def generate(path: Path, megabytes: float, seed: int = 1) -> None:
    rng = random.Random(seed)
    lines = []
    for name in ("ptb/ptb.train.txt", "tinyshakespeare/input.txt"):
        source = DATA / name
        if source.exists():
            lines += [line for line in source.read_text("utf-8").splitlines() if line.strip()]
    target = int(megabytes * 1e6)
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < target:
            line = rng.choice(lines)
            if rng.random() < 0.3:  # rare words and numbers: a vocabulary that grows with the text
                line += f" {rng.choice(['Mr.', 'no.', 'at'])} {rng.randrange(10**6)} w{rng.randrange(10**6):x}"
            f.write(line + "\n")
            written += len(line) + 1


def generate_han(path: Path, megabytes: float, seed: int = 1) -> None:
    """Song ci lines (bench/texts.py) drawn at random and written one after another: no space, no line break."""
    from bench import texts

    rng = random.Random(seed)
    lines = [line for line in texts.text("song-ci").splitlines() if line.strip()]
    target = int(megabytes * 1e6)
    with open(path, "w", encoding="utf-8") as f:
        written = 0
        while written < target:
            line = rng.choice(lines)
            f.write(line)
            written += len(line.encode("utf-8"))


def peak(script_or_argv, *args: str) -> tuple[str, float, float]:
    """(stdout, peak RSS in MB, seconds) of a child process."""
    argv = [sys.executable, "-c", script_or_argv, *args] if isinstance(script_or_argv, str) else script_or_argv
    start = time.monotonic()
    env = {**os.environ, "PYTHONPATH": str(REPO), "TF_CPP_MIN_LOG_LEVEL": "3", "CONTINUO_MAX_FILE_MB": "50"}
    done = subprocess.run(["/usr/bin/time", "-f", "%M", *argv], cwd=REPO, env=env, capture_output=True, text=True)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    return done.stdout, int(done.stderr.strip().splitlines()[-1]) / 1024, time.monotonic() - start


def main() -> None:
    megabytes = float(sys.argv[1]) if len(sys.argv) > 1 else 45
    han = sys.argv[2:] == ["han"]
    with tempfile.TemporaryDirectory() as tmp:
        text = Path(tmp) / "big.txt"
        (generate_han if han else generate)(text, megabytes)
        size_mb = text.stat().st_size / 1e6
        # the whole-text tokenizing that pieces replaced is measured on the English text only
        out_whole, whole_mb, whole_s = ("", 0.0, 0.0) if han else peak(WHOLE, str(text))
        out_pieces, pieces_mb, pieces_s = peak(PIECES, str(text))
        tokens = int(out_pieces.split()[0])
        home = Path(tmp) / "home"
        train_argv = [
            sys.executable,
            "-m",
            "core.cli",
            "train",
            str(text),
            "--name",
            "big",
            "--max-minutes",
            "2",
            "--quiet",
        ]
        os.environ["CONTINUO_HOME"] = str(home)
        _, train_mb, train_s = peak(train_argv)
        card = json.loads((home / "models" / "big" / "card.json").read_text())
    result = {
        "machine": machine(),
        "file_mb": round(size_mb, 1),
        "tokens": tokens,
        "tokenize_whole_peak_mb": round(whole_mb),
        "tokenize_whole_s": round(whole_s, 1),
        "tokenize_pieces_peak_mb": round(pieces_mb),
        "tokenize_pieces_s": round(pieces_s, 1),
        "train_peak_mb": round(train_mb),
        "train_wall_s": round(train_s, 1),
        "train_card_seconds": card["train_seconds"],
        "train_stopped": card["stopped"],
        "vocab_size": card["vocab_size"],
        "command": "continuo train FILE --max-minutes 2 (default sizes)",
    }
    name = "train_memory-han" if han else "train_memory"
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(result, indent=2))
    (RESULTS / f"{name}.md").write_text(
        f"# Peak memory training on a {size_mb:.1f} MB text ({tokens:,} tokens)"
        + (", Chinese without a space or line break" if han else "")
        + f"\n\nMachine: {result['machine']}\n\n"
        "| stage | peak RSS (MB) | seconds |\n|---|---|---|\n"
        + ("" if han else f"| tokenizing the whole text at once (before) | {whole_mb:,.0f} | {whole_s:.1f} |\n")
        + f"| tokenizing in pieces (`core.encoding`, what `prepare` does now) | {pieces_mb:,.0f} | {pieces_s:.1f} |\n"
        f"| `continuo train FILE --max-minutes 2`, whole run | {train_mb:,.0f} | {train_s:.1f} |\n\n"
        f"The training card says {card['train_seconds']} s ({card['stopped']}); vocabulary {card['vocab_size']:,}.\n"
    )
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
