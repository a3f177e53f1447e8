"""Bot load benchmark: many concurrent /continue interactions through the local Discord double.

The real bot (discord.py, unpatched but for the two URL constants) connects to the double of
tests/bot; the double sends INTERACTION_CREATE events and records each answer. Measures answered
count, latency percentiles and event-loop lag, first idle, then while another server's model trains
in its own process. The double runs in the bot's event loop, so the lag includes its own work.
A third server with its own (instant) model takes the same burst in three alternated arms: quiet; while every
user posts one message in its learned channel (chime-in off); and with the same posts, chime-in at 100% (short
cooldown) and a share of the requests in members' shared voices (`as:`). The last two say what chime-in and
voices add to a plain /continue (issue 20, target 6); the first two what recording members' messages costs.
Writes bench/results/bot_load.{json,md}; `--only chatter` runs the third server alone (no training).
Usage: python bench/bot_load.py [--requests 200] [--users 50] [--words 20] [--model PATH] [--quick]
       [--rounds 5] [--chime-in 100] [--voice-share 0.25] [--voices 10] [--chime-in-cooldown 0.1]
       [--post-interval 0.02] [--settle 2] [--only chatter] [--results bot_load]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import statistics
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
MARK = "-# an imitation of "  # how an answer in a member's voice opens (bot/voices.py)


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


async def burst(double: DiscordDouble, channel, users, requests: int, words: int, voice_of=None, during=None) -> dict:
    """`requests` /continue interactions sent at once; each latency runs from the event to the finished answer.

    `voice_of(i)`: the member whose shared voice request i asks for (`as:`), or None; `during`: a coroutine run
    alongside the burst (members posting), awaited before the burst counts as done. One waiter watches all the
    answers, and each latency ends when the double received its answer: the measuring costs the loop the same
    little whatever else happens (a waiter per request woke on every message and post the double saw).
    """
    loop = asyncio.get_running_loop()
    latencies: list[float] = []
    voiced: list[float] = []
    plain: list[float] = []  # the requests in no member's voice
    deferred = failed = errors = 0

    async def send(i: int):
        member = voice_of(i) if voice_of is not None else None
        options = {"seed": SEEDS[i % len(SEEDS)], "words": words} | ({"as": member} if member is not None else {})
        start = loop.time()
        return member, start, await double.slash_command(channel, users[i % len(users)], "continue", options)

    async def answered() -> list:
        sent = await asyncio.gather(*(send(i) for i in range(requests)))
        pending = [record for _, _, record in sent]

        def all_done() -> bool:
            pending[:] = [record for record in pending if record.done_at is None]
            return not pending

        with contextlib.suppress(TimeoutError, AssertionError):  # what is still unanswered counts as failed
            await double.wait_for(all_done, ANSWER_TIMEOUT_S, "the burst's answers")
        return sent

    lag = LoopLag()
    lag.start()
    start = loop.time()
    sent, *_ = await asyncio.gather(answered(), *([during()] if during is not None else []))
    ends: list[float] = []
    for member, sent_at, record in sent:
        message = record.original
        if record.done_at is None or message is None:
            failed += 1
            continue
        content = message.content or ""
        if member is not None and content.startswith(MARK):  # a marked reply: the mark, then the seed in bold
            content = content.partition("\n")[2]
        if message.ephemeral or not content.startswith("**"):
            errors += 1  # answered, but with an error message
            continue
        latencies.append(record.done_at - sent_at)
        (voiced if member is not None else plain).append(latencies[-1])
        ends.append(record.done_at)
        deferred += record.response_type == 5
    wall = max(ends, default=start) - start  # until the last answer: posting that goes on after it is not theirs
    extra = (
        {
            "voice_requests": sum(voice_of(i) is not None for i in range(requests)),
            "voice_answered": len(voiced),
            "voice_latency_p50_ms": ms(percentile(voiced, 50)),
            "voice_latency_p95_ms": ms(percentile(voiced, 95)),
        }
        if voice_of is not None and any(voice_of(i) is not None for i in range(requests))
        else {}  # no voice asked for: no NaN percentiles in the JSON
    )
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
        "plain_answered": len(plain),
        "plain_latency_p50_ms": ms(percentile(plain, 50)),
        "plain_latency_p95_ms": ms(percentile(plain, 95)),
        "answers_per_s": round(len(latencies) / wall, 1) if wall > 0 else 0.0,
        **extra,
        **lag.stop(),
    }


async def chatter_server(double: DiscordDouble, bot: ContinuoBot, gamma, users, args) -> dict:
    """Gamma: its own instant model from the chat corpus, #general learned, `args.voices` members who wrote there
    and shared their voice. The same burst in three arms, alternated for `args.rounds` rounds:

    - quiet: /continue alone;
    - posts: /continue while every user posts one message there (recorded into the corpus), chime-in off;
    - chime-in and voices: the same posts, chime-in at `args.chime_in`%, and a share of the requests in a member's
      voice.

    Members' posts are load that exists whether or not chime-in is on, so "posts" against "chime-in and voices"
    says what those two add to a plain /continue (the target), the plain requests' latency apart from the voiced
    ones'. "quiet" against "posts" says what recording members' messages costs.
    """
    general = gamma.channel("general")
    admin = double.user("gamma-admin")
    gamma.add_member(admin, [gamma.add_role("mods", discord.Permissions(manage_guild=True))])
    lines = [line for line in CHAT.read_text(encoding="utf-8").splitlines() if len(line.split()) >= 3]

    async def done(record) -> str:
        message = await record.wait_done(60)
        return message.content or ""

    added = await done(
        await double.slash_command(general, admin, "corpus add", {"file": ("chat.txt", CHAT.read_bytes())})
    )
    learned = await done(await double.slash_command(general, admin, "corpus learn", {"channel": general}))
    assert await bot.models.bundle_for(gamma.id) != bot.models.default_model, added  # a model of its own
    voices = users[: args.voices]
    for n, member in enumerate(voices):  # each voice's recorded messages
        for k in range(3):
            await double.send_message(general, member, lines[(7 * n + k) % len(lines)])
    for _ in range(400):
        counts = [len(await bot.store.member_texts(gamma.id, m.id)) for m in voices]
        if min(counts, default=3) >= 3:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError(f"the voices' messages were not recorded: {counts}; {added}; {learned}")
    for member in voices:
        shared = await done(await double.slash_command(general, member, "voice share"))
        assert "shared your voice" in shared, shared

    every = round(1 / args.voice_share) if args.voice_share > 0 else 0

    def voice_of(i: int):
        return voices[(i // every) % len(voices)] if every and voices and i % every == 0 else None

    posts = 0  # each post a new line of the chat corpus, so that no round repeats a message

    async def busy(chime_in: float, voiced) -> dict:
        nonlocal posts
        await done(await double.slash_command(general, admin, "settings", {"chime_in": chime_in}))
        before = len(chimed(double, general))
        posted: list[float] = []

        async def post():  # one message per user, over the burst
            nonlocal posts
            for member in users:
                await double.send_message(general, member, lines[(13 * posts + 5) % len(lines)])
                posts += 1
                posted.append(time.perf_counter())
                await asyncio.sleep(args.post_interval)

        double.rejected_requests.clear()
        start = time.perf_counter()
        result = await burst(double, general, users, args.requests, args.words, voiced, post)
        result["posts"] = len(posted)
        result["chime_ins"] = len(chimed(double, general)) - before  # sent by the end of the burst
        await asyncio.sleep(args.settle)  # recording, chime-ins and voices' rebuilding finish before the next arm
        result["chime_ins_after_settling"] = len(chimed(double, general)) - before
        result["posting_s"] = round(posted[-1] - start, 2) if posted else 0.0
        if chime_in:
            await done(await double.slash_command(general, admin, "settings", {"chime_in": 0}))
        return result

    await burst(double, general, users, args.requests, args.words, voice_of)  # load models, build the voices
    quiets, postings, chimings = [], [], []
    for _ in range(args.rounds):  # alternated, so that the machine's other load falls on all arms alike
        double.rejected_requests.clear()
        quiets.append(await burst(double, general, users, args.requests, args.words))
        postings.append(await busy(0, None))
        chimings.append(await busy(args.chime_in, voice_of))
    paired = {  # each arm over the one just before it in its round: the machine's other load changes slowly
        "posts_over_quiet": {
            key: [ratio(b[key], q[key]) for q, b in zip(quiets, postings, strict=True)] for key in RATIO_KEYS
        },
        "chime_in_over_posts": {
            key: [ratio(c[PLAIN.get(key, key)], p[key]) for p, c in zip(postings, chimings, strict=True)]
            for key in RATIO_KEYS
        },
    }
    return {
        "quiet": summary(quiets),
        "posts": summary(postings),
        "chime_in_and_voices": summary(chimings),
        "paired_ratios": paired,
        "rounds": {"quiet": quiets, "posts": postings, "chime_in_and_voices": chimings},
    }


RATIO_KEYS = ("latency_p50_ms", "latency_p95_ms", "answers_per_s")
PLAIN = {"latency_p50_ms": "plain_latency_p50_ms", "latency_p95_ms": "plain_latency_p95_ms"}  # the target's measure


def ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b else float("nan")


COUNTS = {"requests", "answered", "failed", "errors", "deferred", "late_refused", "voice_requests", "voice_answered"}
COUNTS |= {"posts", "chime_ins", "chime_ins_after_settling", "plain_answered"}


def summary(runs: list[dict]) -> dict:
    """Rounds in one: counts summed, every other measure the median of the rounds'."""
    return {
        key: sum(r[key] for r in runs) if key in COUNTS else round(statistics.median(r[key] for r in runs), 2)
        for key in runs[0]
    }


def chimed(double: DiscordDouble, channel) -> list:
    """The bot's unasked messages in `channel`: neither replies nor answers to commands."""
    return [m for m in double.sent_messages if m.channel is channel and m.reference is None and m.interaction is None]


async def run(args) -> dict:
    double = DiscordDouble(heartbeat_interval=1.0)
    await double.start()
    alpha, beta = double.add_guild("Alpha"), double.add_guild("Beta")
    gamma = double.add_guild("Gamma")  # chime-in and voices; the bot sees it from the start, as the others
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
            chime_in_cooldown_s=args.chime_in_cooldown,
        )
        bot = ContinuoBot(settings, guild_ready_timeout=0.1)
        async with run_client(bot, double, ready_timeout=120):
            if args.only == "chatter":
                results = await chatter_server(double, bot, gamma, users, args)
            else:
                results = await every_scenario(double, bot, settings, (alpha, beta, gamma), admin, users, args)
    await double.stop()
    return results


async def every_scenario(double: DiscordDouble, bot: ContinuoBot, settings: BotSettings, guilds, admin, users, args):
    """The default model's bursts (one at a time, together, while Beta trains) and Gamma's chatter."""
    alpha, beta, gamma = guilds
    await burst(double, alpha.channel("general"), users, args.requests, args.words)  # compile batch sizes
    bot.models.decoder.max_batch_rows = 1  # the same bot decoding one request at a time, for comparison
    double.rejected_requests.clear()
    one_by_one = await burst(double, alpha.channel("general"), users, args.requests, args.words)
    bot.models.decoder.max_batch_rows = settings.max_batch_rows
    double.rejected_requests.clear()
    idle = await burst(double, alpha.channel("general"), users, args.requests, args.words)
    conversing = await chatter_server(double, bot, gamma, users, args)

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
    return {"idle_one_by_one": one_by_one, "idle": idle, "training": training, **conversing}


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
    opening = (
        f"Measured {results['machine']['date']} on {results['machine']['cpus']} CPU cores (load average "
        f"{results['load_average_start']} at the start, {results['load_average_end']} at the end): {args.requests} "
        f"concurrent /continue ({args.words} words) from {args.users} users through the Discord double."
    )
    if args.only == "chatter":
        return "\n".join([opening, "", *chatter_table(results, args)])
    runs = [results["idle_one_by_one"], results["idle"], results["training"]]
    busy = results["training"]
    lines = [
        opening,
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
    return "\n".join(lines + ["", *chatter_table(results, args)])


def chatter_table(results: dict, args) -> list[str]:
    """The third server's three arms, and the ratios that say what members' posts, and chime-in and voices, add."""
    arms = [results["quiet"], results["posts"], results["chime_in_and_voices"]]

    def latencies(prefix: str):
        def cell(r: dict) -> str:
            if f"{prefix}latency_p50_ms" not in r or not r.get(f"{prefix}answered", r["answered"]):
                return "-"
            return f"{r[prefix + 'latency_p50_ms']:,} / {r[prefix + 'latency_p95_ms']:,}"

        return cell

    rows = [
        ("answered", lambda r: f"{r['answered']}/{r['requests']}"),
        ("answered with an error / not answered in 120 s", lambda r: f"{r['errors']} / {r['failed']}"),
        ("deferred (took over 1.5 s) / refused as late", lambda r: f"{r['deferred']} / {r['late_refused']}"),
        ("**plain /continue (in no one's voice): latency p50 / p95 (ms)**", latencies("plain_")),
        ("in a member's voice: latency p50 / p95 (ms)", latencies("voice_")),
        ("all requests: latency p50 / p95 / max (ms)", lambda r: f"{latencies('')(r)} / {r['latency_max_ms']:,}"),
        ("answers per second (all requests)", lambda r: f"{r['answers_per_s']}"),
        ("event-loop lag p50 / p99 / max (ms)", lambda r: f"{r['lag_p50_ms']} / {r['lag_p99_ms']} / {r['lag_max_ms']}"),
        (
            "members' messages posted (over s) / chime-ins sent by the burst's end (after settling)",
            lambda r: (
                "-"
                if "posts" not in r
                else f"{r['posts']} ({r['posting_s']}) / {r['chime_ins']} ({r['chime_ins_after_settling']})"
            ),
        ),
    ]
    voiced = f"every {round(1 / args.voice_share)}th request" if args.voice_share else "no request"
    lines = [
        f"A third server with its own (instant) model, the same {args.requests} /continue in its learned "
        f"#general, in three arms: **quiet** (/continue alone); **posts** (while each of the {args.users} users "
        f"posts one message there, one every {args.post_interval} s, recorded into the corpus; chime-in off); "
        f"**chime-in and voices** (the same posts, chime-in at {args.chime_in:g}% with a {args.chime_in_cooldown} s "
        f"cooldown, and {voiced} asks for one of {args.voices} members' shared voices, `as:`, a marked reply). "
        f"{args.rounds} rounds of the three, alternated, {args.settle} s apart after each busy arm: counts summed "
        "over them, every other measure the median over the rounds.",
        "",
        "| measure | quiet | posts | chime-in and voices |",
        "|---|---|---|---|",
        *(f"| {label} | {' | '.join(cell(r) for r in arms)} |" for label, cell in rows),
        "",
        "Round by round, each arm over the one before it in the same round (median; lowest-highest of "
        f"{args.rounds}). The target (issue 20, target 6) is the second row: the plain requests with chime-in and "
        "voices on, against the same requests with the same members' posts and both off.",
        "",
        "| ratio | latency p50 | latency p95 | answers per second |",
        "|---|---|---|---|",
    ]
    names = {
        "posts_over_quiet": "posts / quiet: what recording members' messages adds",
        "chime_in_over_posts": "chime-in and voices (plain requests) / posts: **what chime-in and voices add**",
    }
    for name, paired in results["paired_ratios"].items():
        cells = [f"{statistics.median(v):.2f} ({min(v):.2f}-{max(v):.2f})" for v in paired.values()]
        lines.append(f"| {names[name]} | {' | '.join(cells)} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--words", type=int, default=20)
    parser.add_argument("--train-epochs", type=int, default=3)
    parser.add_argument("--model", type=Path, default=None, help="default model bundle (default: the bundled one)")
    parser.add_argument("--quick", action="store_true", help="50 requests, 1 training epoch")
    parser.add_argument(
        "--voice-share", type=float, default=0.25, help="share of the third server's requests in a member's voice"
    )
    parser.add_argument("--voices", type=int, default=10, help="members who shared their voice there")
    parser.add_argument("--chime-in", type=float, default=100.0, help="the third server's chime-in chance (%%)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of the third server's three arms, alternated")
    parser.add_argument("--results", default="bot_load", help="name of the files under bench/results/")
    parser.add_argument("--chime-in-cooldown", type=float, default=0.1, help="seconds between chime-ins per channel")
    parser.add_argument("--post-interval", type=float, default=0.02, help="seconds between members' posts")
    parser.add_argument("--settle", type=float, default=2.0, help="seconds of rest after each busy arm")
    parser.add_argument(
        "--only", choices=["chatter"], default=None, help="chatter: only the third server's arms (no training)"
    )
    args = parser.parse_args()
    if args.quick:
        args.requests, args.train_epochs = 50, 1
    args.model = args.model or ModelStore().resolve(None)
    if not 0 <= args.voice_share <= 1 or args.voices < 1 or args.voices > args.users:
        parser.error("--voice-share must lie in 0..1 and --voices in 1..--users")
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    if not 0 <= args.chime_in <= 100:
        parser.error("--chime-in must lie in 0..100 (a percentage)")
    results = {"machine": machine(), "model": str(args.model), **vars(args)}
    results["load_average_start"] = round(os.getloadavg()[0], 2)
    results |= asyncio.run(run(args))
    results["load_average_end"] = round(os.getloadavg()[0], 2)
    results["model"] = str(args.model)
    write_results(args.results, results, table(results, args))


if __name__ == "__main__":
    main()
