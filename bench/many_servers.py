"""Many servers: 100 servers with their own models, 1,000 /continue spread by a Zipf popularity, a model cache in MB.

The real bot (discord.py) against the Discord double of tests/bot. Every server has its own trained
bundle at guilds/<id>/model: a Kneser-Ney model counted from that server's own text (its own invented
words), and for a share of them a neural model too (a copy of one tiny trained bundle). Requests go
to servers by a Zipf popularity (a few busy servers, a long tail), a fixed number in flight. Measured:
answered, latency percentiles, a model's cold-load time, how many loads the cache caused, the cache's
peak bytes against its setting, and the process's peak RSS (bot and double share the process).

    .venv/bin/python bench/many_servers.py [--servers 100] [--requests 1000] [--cache-mb 64 256]

Each cache size runs in its own process, so each peak RSS is its own. Writes bench/results/many_servers.{json,md}.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "bot")]  # the double lives with the bot's tests

ZIPF_S = 1.1  # popularity of the k-th server ~ 1 / k^s
IN_FLIGHT = 32  # /continue interactions outstanding at once
ANSWER_TIMEOUT_S = 120.0


def server_words(index: int) -> list[str]:
    """Words only server `index` ever wrote: what its answers must be made of."""
    return [f"s{index}w{j}" for j in range(24)]


def server_text(index: int, lines: int = 320) -> str:
    rng = random.Random(index)
    words = server_words(index)
    return "\n".join(" ".join(rng.choice(words) for _ in range(rng.randint(5, 9))) + " ." for _ in range(lines)) + "\n"


def is_neural(index: int, neural_every: int) -> bool:
    return bool(neural_every) and index % neural_every == neural_every - 1


def seed_of(index: int, neural_every: int = 0) -> str:
    return "The sea" if is_neural(index, neural_every) else " ".join(server_words(index)[:2])


def build_models(guilds_dir: Path, guild_ids: list[int], neural_every: int = 0, neural_source: Path | None = None):
    """Each server's own bundle at guilds/<id>/model: its n-gram model, or every `neural_every`-th a neural copy."""
    from core import build_instant

    for i, guild_id in enumerate(guild_ids):
        out = guilds_dir / str(guild_id) / "model"
        if neural_source is not None and is_neural(i, neural_every):
            shutil.copytree(neural_source, out)
        else:
            build_instant(server_text(i), out, name=f"server-{i}", corpus_name=f"server {i}'s text")


def zipf_choices(n: int, k: int, seed: int = 7) -> list[int]:
    weights = [1 / (rank + 1) ** ZIPF_S for rank in range(n)]
    return random.Random(seed).choices(range(n), weights=weights, k=k)


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] if ordered else float("nan")


async def traffic(double, bot, channels, users, picks: list[int], neural_every: int = 0, words: int = 12) -> dict:
    """Send the /continue interactions (IN_FLIGHT at a time); check each answer is its own server's words."""
    latencies: list[float] = []
    wrong: list[str] = []
    failed = 0
    peak_cache = 0
    gate = asyncio.Semaphore(IN_FLIGHT)

    async def one(n: int, index: int):
        nonlocal failed, peak_cache
        async with gate:
            start = time.perf_counter()
            record = await double.slash_command(
                channels[index],
                users[n % len(users)],
                "continue",
                {"seed": seed_of(index, neural_every), "words": words},
            )
            try:
                message = await record.wait_done(ANSWER_TIMEOUT_S)
            except (TimeoutError, AssertionError):
                failed += 1
                return
            latencies.append(time.perf_counter() - start)
            peak_cache = max(peak_cache, bot.models.cached_bytes)
            said = message.content.split("**", 2)[-1].replace(".", " ").split()
            own = set(server_words(index))  # a neural server's words are its model's: only errors are checked
            if message.ephemeral or (not is_neural(index, neural_every) and any(w not in own for w in said)):
                wrong.append(message.content[:120])

    start = time.perf_counter()
    await asyncio.gather(*(one(n, index) for n, index in enumerate(picks)))
    wall = time.perf_counter() - start
    return {
        "requests": len(picks),
        "answered": len(latencies),
        "failed": failed,
        "wrong_or_error": len(wrong),
        "wrong_examples": wrong[:3],
        "latency_p50_ms": round(percentile(latencies, 50) * 1000, 1),
        "latency_p95_ms": round(percentile(latencies, 95) * 1000, 1),
        "latency_max_ms": round(max(latencies, default=float("nan")) * 1000, 1),
        "answers_per_s": round(len(latencies) / wall, 1),
        "servers_asked": len(set(picks)),
        "cache_peak_mb": round(peak_cache / 1e6, 2),
    }


class LoadCounter:
    """Counts and times the model loads the cache causes (each a cold load from disk)."""

    def __init__(self, cache):
        self.cache, self.seconds = cache, []
        original = cache._load

        async def timed(path):
            start = time.perf_counter()
            try:
                return await original(path)
            finally:
                self.seconds.append(time.perf_counter() - start)

        cache._load = timed


async def run_one(servers: int, requests: int, cache_mb: float, neural_every: int, neural_source: Path | None) -> dict:

    from discord_double import DiscordDouble, run_client

    from bot.bot import ContinuoBot
    from bot.settings import BotSettings

    double = DiscordDouble(heartbeat_interval=1.0)
    await double.start()
    guilds = [double.add_guild(f"Server {i}") for i in range(servers)]
    users = [double.user(f"user{i}") for i in range(50)]
    for guild in guilds:
        for user in users[:3]:
            guild.add_member(user)
    channels = [g.channel("general") for g in guilds]
    with tempfile.TemporaryDirectory() as home, double.patch_discord():
        settings = BotSettings(
            data_dir=Path(home), cooldown_uses=100_000, model_cache_mb=cache_mb, model_cache_size=10_000
        )
        started = time.perf_counter()
        build_models(settings.guilds_dir, [g.id for g in guilds], neural_every, neural_source)
        built_s = time.perf_counter() - started
        bot = ContinuoBot(settings, guild_ready_timeout=0.1)
        async with run_client(bot, double, ready_timeout=300):
            loads = LoadCounter(bot.models.cache)
            cold = {}
            for kind, index in (("n-gram", 0), ("neural", neural_every - 1 if neural_source else None)):
                if index is not None:
                    start = time.perf_counter()
                    await bot.models.model_for(guilds[index].id)
                    cold[kind] = round((time.perf_counter() - start) * 1000, 1)
            picks = zipf_choices(servers, requests)
            result = await traffic(double, bot, channels, users, picks, neural_every if neural_source else 0)
            result.update(
                servers=servers,
                cache_mb=cache_mb,
                neural_servers=sum(is_neural(i, neural_every) for i in range(servers)) if neural_source else 0,
                build_models_s=round(built_s, 1),
                cold_load_ms=cold,
                loads=len(loads.seconds),
                load_p50_ms=round(percentile(loads.seconds, 50) * 1000, 1),
                load_p95_ms=round(percentile(loads.seconds, 95) * 1000, 1),
                models_cached_at_end=len(bot.models.cache),
                peak_rss_mb=round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
            )
    await double.stop()
    return result


def table(results: dict) -> str:
    runs = results["runs"]
    rows = [
        ("answered", lambda r: f"{r['answered']}/{r['requests']}"),
        ("answered with another server's words or an error", lambda r: r["wrong_or_error"]),
        ("servers asked (of 100)", lambda r: r["servers_asked"]),
        ("latency p50 / p95 (ms)", lambda r: f"{r['latency_p50_ms']:,} / {r['latency_p95_ms']:,}"),
        ("answers per second", lambda r: r["answers_per_s"]),
        (
            "cold load of one model, n-gram / neural (ms)",
            lambda r: " / ".join(str(v) for v in r["cold_load_ms"].values()),
        ),
        ("model loads (cache misses)", lambda r: r["loads"]),
        ("load p50 / p95 (ms)", lambda r: f"{r['load_p50_ms']} / {r['load_p95_ms']}"),
        ("cache peak (MB) against its setting", lambda r: f"{r['cache_peak_mb']} / {r['cache_mb']:g}"),
        ("models cached at the end", lambda r: r["models_cached_at_end"]),
        ("peak RSS of the bot's process (MB)", lambda r: f"{r['peak_rss_mb']:,}"),
    ]
    first = runs[0]
    lines = [
        f"Measured {results['machine']['date']} on {results['machine']['cpus']} CPU cores: {first['servers']} servers "
        f"({first['neural_servers']} with a neural model, the others n-gram only), {first['requests']} /continue by a "
        f"Zipf({ZIPF_S}) popularity, {IN_FLIGHT} in flight, through the Discord double.",
        "",
        "| measure | " + " | ".join(f"cache {r['cache_mb']:g} MB" for r in runs) + " |",
        "|---|" + "---|" * len(runs),
    ]
    lines += [f"| {label} | " + " | ".join(str(cell(r)) for r in runs) + " |" for label, cell in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=100)
    parser.add_argument("--requests", type=int, default=1000)
    parser.add_argument("--cache-mb", type=float, nargs="+", default=[64.0, 1024.0])
    parser.add_argument("--neural-every", type=int, default=4, help="every n-th server also has a neural model")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)  # a child: one cache size
    parser.add_argument("--neural-source", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(
            json.dumps(
                asyncio.run(
                    run_one(args.servers, args.requests, args.cache_mb[0], args.neural_every, args.neural_source)
                )
            )
        )
        return
    from bench.common import machine, write_results
    from core import ModelConfig, TrainConfig, read_text, train

    with tempfile.TemporaryDirectory() as tmp:
        neural = Path(tmp) / "neural"  # one tiny neural model, trained once, copied to every n-th server
        train(
            read_text(REPO / "corpora" / "verse" / "corpus.txt"),
            neural,
            ModelConfig(window=8, embedding_dim=32, units=64),
            TrainConfig(epochs=1, max_minutes=1),
        )
        runs = []
        for cache_mb in args.cache_mb:
            child = subprocess.run(
                [
                    sys.executable,
                    __file__,
                    "--one",
                    "--servers",
                    str(args.servers),
                    "--requests",
                    str(args.requests),
                    "--cache-mb",
                    str(cache_mb),
                    "--neural-every",
                    str(args.neural_every),
                    "--neural-source",
                    str(neural),
                ],
                capture_output=True,
                text=True,
                cwd=REPO,
            )
            if child.returncode:
                raise SystemExit(child.stderr[-3000:])
            runs.append(json.loads(child.stdout.strip().splitlines()[-1]))
    results = {"machine": machine(), "zipf_s": ZIPF_S, "in_flight": IN_FLIGHT, "runs": runs}
    write_results("many_servers", results, table(results))


if __name__ == "__main__":
    main()
