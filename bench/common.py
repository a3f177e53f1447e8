"""Shared helpers for the benchmarks: paths, the seed method's runner, peak memory of a child process."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SHARED = Path(os.environ.get("CONTINUO_SHARED", REPO.parent / "shared"))  # the read-only shared data
DATA = SHARED / "data"
SEED_BASELINE = SHARED / "bench" / "seed_baseline.py"
RESULTS = REPO / "bench" / "results"
PYTHON = sys.executable


def run_json(argv: list[str], timeout: float = 3600) -> dict:
    """Run a Python script that prints one JSON line last; return it plus the child's wall time."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    start = time.perf_counter()
    proc = subprocess.run([PYTHON, *argv], capture_output=True, text=True, timeout=timeout, env=env, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv[0]} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    result["wall_s"] = round(time.perf_counter() - start, 2)
    return result


def seed_method(train: Path, test: Path | None = None, epochs: int = 1, max_lines: int = 0) -> dict:
    argv = [str(SEED_BASELINE), str(train), "--epochs", str(epochs)]
    if test:
        argv += ["--test", str(test)]
    if max_lines:
        argv += ["--max-lines", str(max_lines)]
    return run_json(argv)


def peak_rss_mb() -> float:
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)


def write_results(name: str, results: dict, table: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps(results, indent=2) + "\n")
    (RESULTS / f"{name}.md").write_text(table + "\n")
    print(table)


def measured_on(m: dict) -> str:
    """The line that opens a result: when, and on which CPU, with the vector features that decide its speed."""
    return (
        f"Measured {m['date']} on {m['cpus']} cores of {m['cpu_model']} (AVX2 {m['avx2']}, AVX-512 {m['avx512']}, "
        f"native bfloat16 {m['native_bfloat16']}; load average {m['load_average']:.1f} at the start)"
    )


def machine() -> dict:
    """Where a result was measured: machines differ by 4-5x here, so results are read as same-run ratios."""
    from core.backend import cpu_features

    cpu = cpu_features()
    return {
        "cpus": os.cpu_count(),
        "cpu_model": cpu["model"],
        "avx2": cpu["avx2"],
        "avx512": cpu["avx512"],
        "native_bfloat16": cpu["bfloat16"],
        "load_average": os.getloadavg()[0],
        "python": sys.version.split()[0],
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
