"""Cluster benchmark: bot processes under load, 8 servers training at once locally and on Ray, publish-to-answer time.

1. load: concurrent /continue through a standalone Discord double answered by 1 bot process, then by 2
   processes holding one shard each (answers per second, latency percentiles from the double's clock).
2. 8 servers ask /train at once: total time with the local process runner (the embedded default) and
   with the coordinator on Ray, and the event-loop lag of the bot process meanwhile (the bot runs
   here, with an in-process double, as bench/bot_load.py does; the coordinator is its own process).
3. from a job's end on Ray to its new model answering /continue in the serving process.
Sizes are small on purpose: 2 CPU cores shared with other work. Writes bench/results/cluster.{json,md}.
Usage: python bench/cluster_bench.py [--requests 100] [--servers 8] [--skip-load] [--skip-train]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(REPO), str(REPO / "tests" / "bot"), str(REPO / "tests")]  # the double and the PostgreSQL helper

import discord  # noqa: E402

from bench.bot_load import SEEDS, LoopLag, ms, percentile  # noqa: E402
from bench.common import RESULTS, machine, write_results  # noqa: E402
from core import ModelConfig, ModelStore, TrainConfig  # noqa: E402

CHAT = REPO / "corpora" / "chat" / "corpus.txt"
CORPUS_CHARS = 15_000  # about 3,600 tokens of the chat corpus per server: a real, if small, training
TRAIN_MODEL = ModelConfig(window=12, embedding_dim=32, units=32)
CHAT_ONLY = "lol"  # a word of the chat corpus that the default (verse) model does not know
TRAIN_TIMEOUT_S = 1800
BURSTS = 7  # measured bursts per configuration, after one that compiles; the median one is reported


def shard_of(guild_id: int, count: int) -> int:
    return (guild_id >> 22) % count


# --- 1. load on 1 and 2 bot processes
async def load(processes: int, requests: int, guild_count: int, home: Path) -> dict:
    from discord_double.control import TESTS_BOT, start_standalone

    process, double, state = await start_standalone(
        "--identify-window", "1", "--heartbeat-interval", "1", "--recommended-shards", str(processes)
    )
    bots = []
    try:
        guilds = [await double.add_guild(f"Server {n}") for n in range(guild_count)]
        users = [await double.user(f"user{n}", [g["id"] for g in guilds]) for n in range(20)]
        env = {
            **os.environ,
            "DISCORD_TOKEN": state["token"],
            "CONTINUO_BOT_COOLDOWN_USES": "100000",
            "CONTINUO_BOT_IDENTIFY_INTERVAL_S": "1.5",
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": os.pathsep.join([str(TESTS_BOT), str(REPO)]),
        }
        data = home / f"load-{processes}"
        for shard in range(processes):
            shards = ["--shard-count", str(processes), "--shard-ids", str(shard)] if processes > 1 else []
            bots.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "discord_double.run_bot",
                        "--double",
                        double.base_url,
                        "--",
                        *shards,
                        "--data",
                        str(data),
                        "--log-level",
                        "WARNING",
                    ],
                    env=env,
                )
            )

        async def connected():
            current = await double.state()
            return len([s for s in current["sessions"] if s["connected"]]) == processes and current["command_syncs"]

        await double.wait_for(connected, 300, "the bot processes to connect")
        rss = [_rss_mb(bot.pid) for bot in bots]

        async def burst():
            start = time.perf_counter()
            sends = []
            for i in range(requests):  # sent as fast as the double takes them
                guild = guilds[i % len(guilds)]
                sent = await double.slash_command(
                    guild["channels"]["general"],
                    users[i % len(users)]["id"],
                    "continue",
                    {"seed": SEEDS[i % len(SEEDS)], "words": 20},
                )
                sends.append((time.perf_counter() - start, sent["id"]))

            async def outcome(interaction):
                try:
                    return await double.wait_done(interaction, 90)
                except TimeoutError:  # never answered (Discord drops an interaction not answered within 3 s)
                    return None

            done = await asyncio.gather(*(outcome(interaction) for _, interaction in sends))
            return sends, done

        def stats(sends, done) -> dict:
            good = [
                (offset, d)
                for (offset, _), d in zip(sends, done, strict=True)
                if d is not None and (d["content"] or "").startswith("**")
            ]
            latencies = [d["done_latency"] for _, d in good]
            wall = max(offset + d["done_latency"] for offset, d in good)
            return {
                "answered": len(good),
                "answers_per_s": round(len(good) / wall, 1),
                "latency_p50_ms": ms(percentile(latencies, 50)),
                "latency_p95_ms": ms(percentile(latencies, 95)),
                "latency_max_ms": ms(max(latencies)),
                "one_session_per_request": all(len(d["sessions"]) == 1 for d in done if d is not None),
            }

        await burst()  # compiles the batch sizes
        bursts = [stats(*await burst()) for _ in range(BURSTS)]
        median = sorted(bursts, key=lambda b: b["answers_per_s"])[len(bursts) // 2]
        return {
            "processes": processes,
            "requests": requests,
            "servers": guild_count,
            **median,
            "answers_per_s_each_burst": [b["answers_per_s"] for b in bursts],
            "rss_mb_per_process": rss,
        }
    finally:
        for bot in bots:
            bot.terminate()
        for bot in bots:
            try:
                bot.wait(30)
            except subprocess.TimeoutExpired:
                bot.kill()
        await double.close()
        process.terminate()
        process.wait(10)


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


# --- 2. and 3. eight servers training at once; end of a Ray job to the new model answering
async def trainings(runner: str, servers: int, home: Path, database: str) -> dict:
    from discord_double import DiscordDouble, run_client

    from bot.bot import ContinuoBot
    from bot.settings import BotSettings

    double = DiscordDouble(heartbeat_interval=1.0)
    await double.start()
    guilds = [double.add_guild(f"Server {n}") for n in range(servers + 1)]  # the last one: for part 3
    admin = double.user("admin")
    for guild in guilds:
        guild.add_member(admin, [guild.add_role("mods", discord.Permissions(manage_guild=True))])
    data = home / f"train-{runner}"
    settings = BotSettings(
        data_dir=data,
        database_url=database,
        model_storage_url=str(data / "model-store"),
        default_model=ModelStore().resolve(None),
        train_model=TRAIN_MODEL,
        train_options=TrainConfig(epochs=1, min_count=2, max_minutes=30),
        progress_interval_s=1.0,
        max_training_jobs=2,
        job_runner="coordinator" if runner == "ray" else "local",
        model_poll_s=0.5,
    )
    coordinator = None
    if runner == "ray":
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "CONTINUO_BOT_TRAIN_MODEL": _json(asdict(TRAIN_MODEL)),
            "CONTINUO_BOT_TRAIN_OPTIONS": _json(asdict(settings.train_options)),
            "CONTINUO_BOT_RAY": _json({"cpus": 1}),
            "CONTINUO_BOT_PROGRESS_INTERVAL_S": "1.0",
        }
        coordinator = subprocess.Popen(  # its own local Ray: 2 CPUs, one per job, so 2 jobs at a time
            [
                sys.executable,
                "-m",
                "bot",
                "coordinator",
                "--data",
                str(home / "coordinator"),
                "--database",
                database,
                "--model-storage",
                str(data / "model-store"),
                "--runner",
                "ray",
                "--max-jobs",
                str(servers),
                "--log-level",
                "WARNING",
            ],
            env=env,
        )
    try:
        with double.patch_discord():
            bot = ContinuoBot(settings, guild_ready_timeout=0.1)
            async with run_client(bot, double, ready_timeout=120):
                text = CHAT.read_text("utf-8")[:CORPUS_CHARS].encode()
                for guild in guilds:
                    added = await double.slash_command(
                        guild.channel("general"), admin, "corpus add", {"file": ("chat.txt", text)}
                    )
                    await added.wait_done(60)
                lag = LoopLag()
                lag.start()
                since, start = time.monotonic(), time.perf_counter()
                records = [
                    await double.slash_command(g.channel("general"), admin, "train", {"epochs": 1})
                    for g in guilds[:servers]
                ]
                await double.wait_for(lambda: all(_ended(r) for r in records), TRAIN_TIMEOUT_S, "the trainings")
                total = time.perf_counter() - start
                result = {
                    "runner": runner,
                    "servers": servers,
                    "total_s": round(total, 1),
                    "trained": sum("new model is in use" in (r.content or "") for r in records),
                    "heartbeat_gap_max_s": round(double.max_heartbeat_gap(since), 2),
                    **lag.stop(),
                }
                if runner == "ray":
                    result["end_to_answer_s"] = await end_to_answer(double, bot, guilds[servers], admin)
                return result
    finally:
        await double.stop()
        if coordinator is not None:
            coordinator.terminate()
            coordinator.wait(60)


async def end_to_answer(double, bot, guild, admin) -> float:
    """Seconds from the coordinator receiving a finished job from Ray (its `ended_at`, Unix time) to the end of the
    first /continue answered by the new version in this process (loading it included)."""
    import json

    record = await double.slash_command(guild.channel("general"), admin, "train", {"epochs": 1})
    await double.wait_for(lambda: "Training" in (record.content or ""), 600, "the job to start")
    job = await bot.store.last_job(guild.id)
    while (pointer := bot.versions.known(guild.id)) is None or pointer.version is None:
        await asyncio.sleep(0.02)  # until this process learns of the switch (the instant model answers meanwhile)
    sent_at = time.time()
    answer = await double.slash_command(guild.channel("general"), admin, "continue", {"seed": CHAT_ONLY, "words": 3})
    message = await answer.wait_done(60)
    assert message.content.startswith(f"**{CHAT_ONLY}**"), message.content
    ended_at = json.loads(await bot.store.job_progress(job.id))["ended_at"]
    return round(sent_at + answer.done_latency - ended_at, 2)


def _ended(record) -> bool:
    return "new model is in use" in (record.content or "") or "failed" in (record.content or "")


def _json(value) -> str:
    import json

    return json.dumps(value)


def table(results: dict) -> str:
    def measured(part: str) -> str:
        m = results[f"{part}_machine"]
        return (
            f"Measured {m['date']} on {m['cpus']} CPU cores shared with other work (load average "
            f"{m['load_average']:.1f} at the start); small sizes on purpose."
        )

    lines = []
    if results.get("load"):
        lines += [
            measured("load"),
            "",
            f"{results['load'][0]['requests']} concurrent /continue over "
            f"{results['load'][0]['servers']} servers, the median of {BURSTS} bursts (answers/s of each burst "
            "in brackets):",
            "",
            "| bot processes | answered | answers/s | latency p50 / p95 (ms) | RSS per process (MB) |",
            "|---|---|---|---|---|",
        ]
        for r in results["load"]:
            rss = ", ".join(map(str, r["rss_mb_per_process"]))
            each = ", ".join(map(str, r.get("answers_per_s_each_burst", [])))
            lines.append(
                f"| {r['processes']} | {r['answered']}/{r['requests']} | {r['answers_per_s']} ({each}) | "
                f"{r['latency_p50_ms']:,} / {r['latency_p95_ms']:,} | {rss} |"
            )
        lines.append("")
    if results.get("trainings"):
        lines += [
            measured("trainings"),
            "",
            "| 8 servers ask /train at once | trained | total (s) | bot event-loop lag p99 / max (ms) | "
            "longest heartbeat gap (s) |",
            "|---|---|---|---|---|",
        ]
        for r in results["trainings"]:
            label = "local processes (2 at a time)" if r["runner"] == "local" else "coordinator on Ray (1 CPU per job)"
            lines.append(
                f"| {label} | {r['trained']}/{r['servers']} | {r['total_s']} | {r['lag_p99_ms']} / "
                f"{r['lag_max_ms']} | {r['heartbeat_gap_max_s']} |"
            )
        ray = next((r for r in results["trainings"] if r["runner"] == "ray"), None)
        if ray:
            lines += [
                "",
                f"From a job's end on Ray to its new model answering /continue in the serving process: "
                f"{ray['end_to_answer_s']} s.",
            ]
    return "\n".join(lines)


async def run(args) -> dict:
    results: dict = {"machine": machine(), **vars(args)}
    with tempfile.TemporaryDirectory() as folder:
        home = Path(folder)
        if not args.skip_load:
            results["load"] = [await load(n, args.requests, args.servers, home) for n in (1, 2)]
        if not args.skip_train:
            import postgres_server as pg

            url = pg.start()
            try:
                results["trainings"] = []
                for runner in ("local", "ray"):
                    database = f"{url.replace('/postgres?', f'/{runner}?')}"
                    _create_database(url, runner)
                    results["trainings"].append(await trainings(runner, args.servers, home, database))
            finally:
                pg.stop(url)
    return results


def _create_database(url: str, name: str) -> None:
    import psycopg

    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--servers", type=int, default=8)
    parser.add_argument("--skip-load", action="store_true")
    parser.add_argument("--skip-train", action="store_true")
    args = parser.parse_args()
    results = asyncio.run(run(args))
    previous = RESULTS / "cluster.json"
    if (args.skip_load or args.skip_train) and previous.exists():  # keep the part not measured this time
        kept = json.loads(previous.read_text())
        for part, skipped in (("load", args.skip_load), ("trainings", args.skip_train)):
            if skipped and part in kept:
                results[part], results[f"{part}_machine"] = kept[part], kept.get(f"{part}_machine", kept["machine"])
    for part in ("load", "trainings"):
        results.setdefault(f"{part}_machine", results["machine"])
    write_results("cluster", results, table(results))


if __name__ == "__main__":
    main()
