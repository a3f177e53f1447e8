"""Bot load benchmark: many concurrent /continue interactions through the local Discord double.

The real bot (discord.py, unpatched but for the two URL constants) connects to the double of
tests/bot; the double sends INTERACTION_CREATE events and records each answer. Measures answered
count, latency percentiles and event-loop lag, first idle, then while another server's model trains
in its own process. The double runs in the bot's event loop, so the lag includes its own work.
Writes bench/results/bot_load.{json,md}.
Usage: python bench/bot_load.py [--requests 200] [--users 50] [--words 20] [--model PATH] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "bot")]  # the double lives with the bot's tests

import discord  # noqa: E402
from discord_double import DiscordDouble, run_client  # noqa: E402

from bench.common import machine, write_results  # noqa: E402
from bot.bot import ContinuoBot  # noqa: E402
from bot.settings import BotSettings  # noqa: E402
from core import ModelConfig, ModelStore, TrainConfig  # noqa: E402

CHAT = REPO / "corpora" / "chat" / "corpus.txt"
SEEDS = [
    "The night",
    "I think",
    "And then the",
    "When the moon",
    "we should",
    "She said",
    "In the morning",
    "My love",
]  # words both bundled corpora know
TRAIN_MODEL = ModelConfig(window=16, embedding_dim=64, units=64)  # a real, if small, server model
ANSWER_TIMEOUT_S = 120.0


class LoopLag:
    """How late the event loop wakes a 10 ms sleeper: what every coroutine waits on top of its own work."""

    def __init__(self):
        self.samples: list[float] = []
        self._task: asyncio.Task | None = None

    async def _tick(self):
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.01)
            self.samples.append(time.perf_counter() - start - 0.01)

    def start(self):
        self.samples.clear()
        self._task = asyncio.create_task(self._tick())

    def stop(self) -> dict:
        self._task.cancel()
        return {
            "lag_p50_ms": ms(percentile(self.samples, 50)),
            "lag_p99_ms": ms(percentile(self.samples, 99)),
            "lag_max_ms": ms(max(self.samples, default=0.0)),
        }


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


async def burst(double: DiscordDouble, channel, users, requests: int, words: int) -> dict:
    """`requests` /continue interactions sent at once; each latency runs from the event to the finished answer."""
    latencies: list[float] = []
    deferred = failed = errors = 0

    async def one(i: int):
        nonlocal deferred, failed, errors
        start = time.perf_counter()
        record = await double.slash_command(
            channel, users[i % len(users)], "continue", {"seed": SEEDS[i % len(SEEDS)], "words": words}
        )
        try:
            message = await record.wait_done(ANSWER_TIMEOUT_S)
        except (TimeoutError, AssertionError):
            failed += 1
            return
        if message.ephemeral or not message.content.startswith("**"):
            errors += 1  # answered, but with an error message
            return
        latencies.append(time.perf_counter() - start)
        deferred += record.response_type == 5

    lag = LoopLag()
    lag.start()
    start = time.perf_counter()
    await asyncio.gather(*(one(i) for i in range(requests)))
    wall = time.perf_counter() - start
    return {
        "requests": requests,
        "answered": len(latencies),
        "failed": failed,
        "errors": errors,
        "deferred": deferred,
        "late_refused": sum(r.code == 10062 for r in double.rejected_requests),
        "latency_p50_ms": ms(percentile(latencies, 50)),
        "latency_p95_ms": ms(percentile(latencies, 95)),
        "latency_max_ms": ms(max(latencies, default=float("nan"))),
        "answers_per_s": round(len(latencies) / wall, 1),
        **lag.stop(),
    }


async def run(args) -> dict:
    double = DiscordDouble(heartbeat_interval=1.0)
    await double.start()
    alpha, beta = double.add_guild("Alpha"), double.add_guild("Beta")
    admin = double.user("admin")
    beta.add_member(admin, [beta.add_role("mods", discord.Permissions(manage_guild=True))])
    users = [double.user(f"user{i}") for i in range(args.users)]
    with tempfile.TemporaryDirectory() as home, double.patch_discord():
        settings = BotSettings(
            data_dir=Path(home),
            default_model=args.model,
            cooldown_uses=10_000,
            train_model=TRAIN_MODEL,
            train_options=TrainConfig(epochs=args.train_epochs, min_count=2),
            progress_interval_s=2.0,
        )
        bot = ContinuoBot(settings, guild_ready_timeout=0.1)
        async with run_client(bot, double, ready_timeout=120):
            await burst(double, alpha.channel("general"), users, args.requests, args.words)  # compile batch sizes
            bot.models.max_batch_rows = 1  # the same bot decoding one request at a time, for comparison
            double.rejected_requests.clear()
            one_by_one = await burst(double, alpha.channel("general"), users, args.requests, args.words)
            bot.models.max_batch_rows = settings.max_batch_rows
            double.rejected_requests.clear()
            idle = await burst(double, alpha.channel("general"), users, args.requests, args.words)

            upload = await double.slash_command(
                beta.channel("general"), admin, "corpus add", {"file": ("chat.txt", CHAT.read_bytes())}
            )
            await upload.wait_done(30)
            train = await double.slash_command(beta.channel("general"), admin, "train")
            await double.wait_for(lambda: "%" in (train.content or ""), 120, "training batches to start")
            since = time.monotonic()
            double.rejected_requests.clear()
            training = await burst(double, alpha.channel("general"), users, args.requests, args.words)
            lag = LoopLag()
            lag.start()
            await double.wait_for(
                lambda: "new model is in use" in (train.content or "") or "failed" in (train.content or ""),
                1800,
                "the training to finish",
            )
            rest = lag.stop()
            training["heartbeat_gap_max_s"] = round(double.max_heartbeat_gap(since), 2)
            training["lag_max_ms_until_trained"] = max(training["lag_max_ms"], rest["lag_max_ms"])
            training["trained"] = "new model is in use" in train.content
    await double.stop()
    return {"idle_one_by_one": one_by_one, "idle": idle, "training": training}


def table(results: dict, args) -> str:
    rows = [
        ("answered", "answered", "{}/{}"),
        ("answered with an error", "errors", "{}"),
        ("not answered in 120 s", "failed", "{}"),
        ("deferred (took over 1.5 s)", "deferred", "{}"),
        ("refused as late (over 3 s)", "late_refused", "{}"),
        ("latency p50 (ms)", "latency_p50_ms", "{:,}"),
        ("latency p95 (ms)", "latency_p95_ms", "{:,}"),
        ("latency max (ms)", "latency_max_ms", "{:,}"),
        ("answers per second", "answers_per_s", "{}"),
        ("event-loop lag p50 (ms)", "lag_p50_ms", "{}"),
        ("event-loop lag p99 (ms)", "lag_p99_ms", "{}"),
        ("event-loop lag max (ms)", "lag_max_ms", "{}"),
    ]
    runs = [results["idle_one_by_one"], results["idle"], results["training"]]
    busy = results["training"]
    lines = [
        f"Measured {results['machine']['date']} on {results['machine']['cpus']} CPU cores: {args.requests} "
        f"concurrent /continue ({args.words} words) from {args.users} users through the Discord double.",
        "",
        "| measure | idle, decoded one at a time | idle, decoded together | decoded together while another "
        "server's model trains |",
        "|---|---|---|---|",
    ]
    for label, key, fmt in rows:
        cells = [fmt.format(r[key], r["requests"]) if key == "answered" else fmt.format(r[key]) for r in runs]
        lines.append(f"| {label} | {' | '.join(cells)} |")
    lines += [
        f"| longest heartbeat gap (s, interval 1 s) | - | - | {busy['heartbeat_gap_max_s']} |",
        f"| event-loop lag max until the new model was swapped in (ms) | - | - | {busy['lag_max_ms_until_trained']} |",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--words", type=int, default=20)
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None, help="default model bundle (default: the bundled one)")
    parser.add_argument("--quick", action="store_true", help="50 requests, 1 training epoch")
    args = parser.parse_args()
    if args.quick:
        args.requests, args.train_epochs = 50, 1
    args.model = args.model or ModelStore().resolve(None)
    results = {"machine": machine(), "model": str(args.model), **vars(args), **asyncio.run(run(args))}
    results["model"] = str(args.model)
    write_results("bot_load", results, table(results, args))


if __name__ == "__main__":
    main()
