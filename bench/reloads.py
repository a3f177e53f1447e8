"""Loading models again and again, as the bot does: resident memory after each load, the cold load, and ms per
word, with the forward pass compiled by XLA and without. Each in a process of its own (XLA's cache is per process).

    python bench/reloads.py            # trains a small model on sonnets first
    python bench/reloads.py BUNDLE     # or loads this one
"""

import gc
import json
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import DATA, machine, run_json, write_results  # noqa: E402

LOADS = 60
WORDS = 100


def resident_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 1e6


def measure(path: str, xla: bool) -> dict:
    """In this process: `LOADS` loads of the bundle, each used once and dropped, then a warm model's speed."""
    from core import load

    rss, cold_ms = [], []
    for _ in range(LOADS):
        start = time.perf_counter()
        model = load(path, xla=xla).warm_up()
        model.generate("the", max_new_tokens=3)
        cold_ms.append((time.perf_counter() - start) * 1000)
        del model
        gc.collect()
        rss.append(resident_mb())
    model = load(path, xla=xla).warm_up()
    model.generate("the", max_new_tokens=3)
    start = time.perf_counter()
    model.generate("the", max_new_tokens=WORDS)
    per_word = (time.perf_counter() - start) / WORDS * 1000
    return {
        "xla": xla,
        "rss_after_first_mb": round(rss[0]),
        "rss_after_last_mb": round(rss[-1]),
        "growth_per_load_mb": round((rss[-1] - rss[0]) / (LOADS - 1), 2),
        "cold_load_ms_median": round(sorted(cold_ms)[LOADS // 2], 1),
        "ms_per_word": round(per_word, 3),
    }


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--measure":
        path, xla = sys.argv[2].rsplit(":", 1)
        print(json.dumps(measure(path, xla == "xla")))
        return
    with tempfile.TemporaryDirectory() as tmp:
        path = sys.argv[1] if len(sys.argv) > 1 else f"{tmp}/sonnets"
        if len(sys.argv) == 1:
            config = json.dumps({"epochs": 1, "min_count": 1})
            run_json(["bench/train_one.py", str(DATA / "sonnets" / "sonnets.txt"), path, "--config", config])
        runs = [run_json(["bench/reloads.py", "--measure", f"{path}:{mode}"]) for mode in ("xla", "graph")]
        config = json.loads((Path(path) / "config.json").read_text())["model"]
    model = f"window {config['window']}, {config['units']} units, {config['vocab_size']:,} words"
    results = {"machine": machine(), "loads": LOADS, "model": model, "runs": runs}
    rows = [
        f"| {'XLA' if r['xla'] else 'graph'} | {r['rss_after_first_mb']:,} | {r['rss_after_last_mb']:,} | "
        f"{r['growth_per_load_mb']} | {r['cold_load_ms_median']} | {r['ms_per_word']} |"
        for r in runs
    ]
    m = results["machine"]
    table = "\n".join(
        [
            f"Measured {m['date']} on {m['cpus']} cores of {m['cpu_model']} (load average {m['load_average']:.1f}): "
            f"one bundle ({model}) loaded {LOADS} times, used once and dropped each time, in one process per mode.",
            "",
            "| forward pass | RSS after the first load (MB) | after the last (MB) | growth per load (MB) | "
            "cold load + first words (ms, median) | ms per word, warm |",
            "|---|---|---|---|---|---|",
            *rows,
        ]
    )
    write_results("reloads", results, table)


if __name__ == "__main__":
    main()
