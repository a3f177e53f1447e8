"""TUI benchmark: keystroke-to-suggestion latency (p50/p95) and time from launch to the first suggestion.

Runs the real app headless (Textual's run_test) on the bundled default model (or, when it is missing, a
small model trained on the verse corpus into a temporary folder). Keys are sent as key events, one
every TYPING_INTERVAL_S like a fast typist, and each is timed from its sending until the ghost text
for the new text is in place. (Pilot.press is not used for timing: it also waits for the whole
process, TensorFlow's threads included, to go idle.) Launch time is measured in a fresh process, from
its start to the first ghost text.
Writes bench/results/tui_latency.{json,md}. Usage: python bench/tui_latency.py [--quick]
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

STARTED = time.time()  # before the heavy imports, for the launch measurement

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.common import PYTHON, REPO, machine, write_results  # noqa: E402

TARGET_P95_MS = 50.0  # the target, once the model is loaded
TYPING_INTERVAL_S = 0.12  # between key presses: about 100 words a minute
BURST_INTERVAL_S = 0.01  # keys of the burst test: faster than any model call
SEEDS = [  # typed one key at a time; some from the verse corpus, some not
    "The harbour at Wenlow keeps its boats",
    "Every night the lamp at Carrick turns,\nand",
    "Dear Mara, the tide came in at evening",
    "My mother said it goes to sea",
    "I walked along the quay and the wind",
    "Somebody's kettle is singing",
    "When the boats come home the bell",
    "Nobody knows where the light goes",
]
BURST = "Once upon a winter evening the lamp went dark"  # typed in one burst, not typed before
SIZE = (110, 32)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))]


def send(app, char: str) -> None:
    """Deliver one typed character as the terminal driver would."""
    from textual import events

    key = {" ": "space", "\n": "enter", ",": "comma", "'": "apostrophe"}.get(char, char)
    app._driver.send_message(events.Key(key, char))


async def ghost_for(editor, text: str) -> None:
    while not (editor.text == text and editor.answered_for == text):
        await asyncio.sleep(0.0005)


def bench_model(tmp: Path) -> tuple[Path, str]:
    """The default model, or a small one trained on the verse corpus when there is none yet."""
    from core import DEFAULT_MODEL, ModelConfig, ModelStore, TrainConfig, read_text, train
    from core.data import find_corpus

    default = ModelStore().path(DEFAULT_MODEL)
    if default.is_dir():
        return default, "default"
    out = tmp / "small-verse"
    train(
        read_text(find_corpus("verse").path),
        out,
        ModelConfig(window=12, embedding_dim=64, units=128),
        TrainConfig(epochs=3),
        corpus_name="verse",
    )
    return out, "small model trained on verse (no default model yet)"


async def keystrokes(model_path: Path, seeds: list[str]) -> dict:
    from tui.app import ContinuoApp
    from tui.widgets.seed_editor import SeedEditor

    app = ContinuoApp(model_path)
    latencies, called, kept = [], [], []
    async with app.run_test(size=SIZE) as pilot:
        while app.model is None:
            await pilot.pause(0.05)
        editor = app.screen.query_one(SeedEditor)
        for seed in seeds:
            await pilot.press("ctrl+l")
            await pilot.pause(0.2)
            for i, char in enumerate(seed, 1):
                calls = app.suggester.model_calls
                start = time.perf_counter()
                send(app, char)
                await ghost_for(editor, seed[:i])
                ms = (time.perf_counter() - start) * 1000
                latencies.append(ms)
                (called if app.suggester.model_calls > calls else kept).append(ms)
                await asyncio.sleep(max(0.0, TYPING_INTERVAL_S - ms / 1000))
        # a burst faster than the model: the gate should skip most of the model calls
        await pilot.press("ctrl+l")
        await pilot.pause(0.2)
        calls = app.suggester.model_calls
        start = time.perf_counter()
        for char in BURST:
            send(app, char)
            await asyncio.sleep(BURST_INTERVAL_S)
        await ghost_for(editor, BURST)
        burst_last_ms = (time.perf_counter() - start - BURST_INTERVAL_S * len(BURST)) * 1000
        burst_calls = app.suggester.model_calls - calls
    model = app.model
    complete_ms = []
    for seed in seeds:
        start = time.perf_counter()
        model.complete(seed, app.suggester._config)
        complete_ms.append((time.perf_counter() - start) * 1000)

    def summary(xs):
        if not xs:
            return {"n": 0}
        return {
            "n": len(xs),
            "p50_ms": round(percentile(xs, 50), 1),
            "p95_ms": round(percentile(xs, 95), 1),
            "max_ms": round(max(xs), 1),
        }

    return {
        "all_keys": summary(latencies),
        "keys_needing_a_model_call": summary(called),
        "keys_keeping_the_ghost": summary(kept),
        "model_complete_call": summary(complete_ms),
        "burst": {"keys": len(BURST), "model_calls": burst_calls, "last_key_to_ghost_ms": round(burst_last_ms, 1)},
    }


async def first_suggestion(model_path: Path) -> None:
    """Child process: print when the first ghost text appears, relative to this process's start."""
    from tui.app import ContinuoApp
    from tui.widgets.seed_editor import SeedEditor

    imported = time.time()
    app = ContinuoApp(model_path)
    async with app.run_test(size=SIZE):
        editor = app.screen.query_one(SeedEditor)
        for char in "The":  # typed at once, as an impatient user would
            send(app, char)
        while not (editor.answered_for == "The" and editor.completion):
            await asyncio.sleep(0.001)
        print(json.dumps({"started": STARTED, "imports_done": imported, "suggested": time.time()}))


def launch(model_path: Path) -> dict:
    began = time.time()
    proc = subprocess.run(
        [PYTHON, __file__, "--first-suggestion", str(model_path)], capture_output=True, text=True, cwd=REPO, timeout=600
    )
    if proc.returncode:
        raise RuntimeError(proc.stderr[-3000:])
    t = json.loads(proc.stdout.strip().splitlines()[-1])
    return {
        "launch_to_first_suggestion_s": round(t["suggested"] - began, 2),
        "python_and_imports_s": round(t["imports_done"] - began, 2),
        "app_start_to_first_suggestion_s": round(t["suggested"] - t["imports_done"], 2),
    }


def table(results: dict) -> str:
    k = results["keystrokes"]
    rows = [
        ("all keystrokes", k["all_keys"]),
        ("keystrokes that needed a model call", k["keys_needing_a_model_call"]),
        ("keystrokes typed along the ghost (kept)", k["keys_keeping_the_ghost"]),
        ("LanguageModel.complete alone (12 tokens)", k["model_complete_call"]),
    ]
    lines = [
        f"Measured {results['machine']['date']} on {results['machine']['cpus']} CPU cores, model: {results['model']}.",
        "",
        "| keystroke → ghost text | n | p50 ms | p95 ms | max ms |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {name} | {s['n']} | {s.get('p50_ms', '-')} | {s.get('p95_ms', '-')} | {s.get('max_ms', '-')} |"
        for name, s in rows
    ]
    launch_ = results["launch"]
    verdict = "met" if k["all_keys"]["p95_ms"] <= TARGET_P95_MS else "missed"
    lines += [
        "",
        f"Target p95 ≤ {TARGET_P95_MS:g} ms after the model is loaded: **{verdict}** "
        f"(p95 {k['all_keys']['p95_ms']} ms over all keystrokes).",
        f"Burst of {k['burst']['keys']} keys {BURST_INTERVAL_S * 1000:g} ms apart: {k['burst']['model_calls']} model "
        f"calls; ghost text {k['burst']['last_key_to_ghost_ms']} ms after the last key.",
        "",
        "| launch | seconds |",
        "|---|---|",
        f"| process start → first suggestion | {launch_['launch_to_first_suggestion_s']} |",
        f"| of which Python start and imports (Textual; TensorFlow loads with the model) | "
        f"{launch_['python_and_imports_s']} |",
        f"| of which app start, model load and first completion | {launch_['app_start_to_first_suggestion_s']} |",
        "",
        f"Keys are sent to the running app {TYPING_INTERVAL_S * 1000:g} ms apart and timed from sending "
        "until the ghost text for the new text is in place: the event loop's work is included, not only "
        "the model's. 'Kept' keys typed the ghost's own next character, so no model call was needed.",
    ]
    return "\n".join(lines)


def main() -> None:
    if "--first-suggestion" in sys.argv:
        asyncio.run(first_suggestion(Path(sys.argv[-1])))
        return
    seeds = SEEDS[:3] if "--quick" in sys.argv else SEEDS
    with tempfile.TemporaryDirectory() as tmp:
        model_path, model_name = bench_model(Path(tmp))
        results = {
            "machine": machine(),
            "model": model_name,
            "target_p95_ms": TARGET_P95_MS,
            "keystrokes": asyncio.run(keystrokes(model_path, seeds)),
            "launch": launch(model_path),
        }
    write_results("tui_latency", results, table(results))


if __name__ == "__main__":
    main()
