"""A stop loses nothing: `continuo bot` as a real process against the standalone double, stopped with SIGTERM.

Messages delivered before the signal are all in the corpus, a command in flight gets its answer or an
explicit "restarting" one, a running training is handed back and resumes from its checkpoint after a
restart, and the process exits 0 within the stop timeout.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import json
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import pytest
from continuo_world import CHAT, answer
from discord_double.control import TESTS_BOT, start_standalone
from probes import free_port, scrape

from bot.replies import RESTARTING
from bot.storage import open_store
from core import read_card

REPO = TESTS_BOT.parents[1]
STOP_TIMEOUT_S = 15.0
TRAINING_TIMEOUT = 180


class BotProcess:
    """`python -m discord_double.run_bot` (the code `continuo bot` runs) with its output in a file."""

    def __init__(self, double, token: str, data: Path, model: Path, env: dict | None = None):
        self.double, self.token, self.data, self.model, self.env = double, token, data, model, env or {}
        self.process: asyncio.subprocess.Process | None = None
        self.log = data.parent / f"{data.name}-bot.log"

    async def start(self) -> None:
        env = {
            **os.environ,
            "DISCORD_TOKEN": self.token,
            "PYTHONPATH": os.pathsep.join([str(TESTS_BOT), str(REPO)]),
            "CONTINUO_BOT_STOP_TIMEOUT_S": str(STOP_TIMEOUT_S),
            "CONTINUO_BOT_COOLDOWN_USES": "100",
            **self.env,
        }
        with self.log.open("a") as out:
            self.process = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "discord_double.run_bot",
                "--double",
                self.double.base_url,
                "--",
                "--data",
                str(self.data),
                "--model",
                str(self.model),
                env=env,
                stdout=out,
                stderr=asyncio.subprocess.STDOUT,
            )

        async def connected():
            current = await self.double.state()
            return any(s["connected"] for s in current["sessions"]) and current["command_syncs"]

        await self.double.wait_for(connected, 120, f"the bot to connect; its log: {self.log}")

    async def terminate(self) -> tuple[int, float]:
        """SIGTERM; (exit code, seconds it took)."""
        assert self.process is not None
        start = time.monotonic()
        self.process.send_signal(signal.SIGTERM)
        code = await asyncio.wait_for(self.process.wait(), STOP_TIMEOUT_S + 20)
        return code, time.monotonic() - start

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


@pytest.fixture
async def standalone(tmp_path):
    process, double, state = await start_standalone("--identify-window", "0", "--heartbeat-interval", "0.5")
    bots: list[BotProcess] = []

    def bot(**env) -> BotProcess:
        made = BotProcess(double, state["token"], tmp_path / "data", Path(env.pop("model")), env)
        bots.append(made)
        return made

    try:
        yield double, state, bot
    finally:
        for made in bots:
            await made.kill()
        await double.close()
        process.terminate()
        process.wait(10)


async def corpus_messages(data: Path, guild_id: int) -> list[str]:
    store = open_store(f"sqlite:///{data / 'bot.sqlite3'}")
    await store.open()
    try:
        return await store.corpus_texts(guild_id)
    finally:
        await store.close()


async def test_sigterm_records_every_delivered_message_answers_commands_in_flight_and_exits_0(
    standalone, tiny_model_path
):
    double, state, make = standalone
    guild = await double.add_guild("Alpha")
    general, owner = guild["channels"]["general"], state["owner"]
    user = await double.user("ann", [guild["id"]])
    bot = make(model=tiny_model_path, CONTINUO_BOT_LOG_FORMAT="json")
    await bot.start()
    learned = await double.wait_done(
        (await double.slash_command(general, owner, "corpus learn", {"channel": {"channel": general}}))["id"]
    )
    assert "Learning from" in learned["content"]

    sent = [f"burst message number {i} about the weather" for i in range(200)]
    await asyncio.gather(*(double.send_message(general, user["id"], text) for text in sent))  # all delivered
    in_flight = await double.slash_command(general, user["id"], "continue", {"seed": "The night", "words": 3})
    await asyncio.sleep(0.1)
    code, took = await bot.terminate()

    assert code == 0, bot.output()[-3000:]
    assert took < STOP_TIMEOUT_S, took
    recorded = await corpus_messages(bot.data, int(guild["id"]))
    assert sorted(recorded) == sorted(sent), f"{len(set(sent) - set(recorded))} of {len(sent)} messages lost"
    answered = await double.interaction(in_flight["id"])
    assert answered["done"], answered
    assert answered["content"].startswith("**The night**") or answered["content"] == RESTARTING, answered
    final = await double.state()
    assert final["unanswered"] == [] and not final["rejected_requests"] and not final["double_errors"]
    assert "Traceback" not in bot.output()
    logged = [json.loads(line) for line in bot.output().splitlines() if line.strip()]  # every line one object
    assert [e["message"] for e in logged if e["logger"] == "bot.bot"][-1] == "stopped"
    assert not any("burst message" in e["message"] for e in logged)


async def test_a_stopping_bot_answers_new_commands_restarting(world, make_bot):
    from bot import metrics

    bot = await make_bot()
    before = metrics.sample("continuo_commands_total", command="continue", outcome="restarting")
    bot.stopping = True  # what SIGTERM sets first, while work in flight finishes
    reply = await answer(await world.double.slash_command(world.general, world.bob, "continue", {"seed": "Hello"}))
    assert reply.content == RESTARTING and reply.ephemeral
    assert metrics.sample("continuo_commands_total", command="continue", outcome="restarting") == before + 1
    bot.stopping = False


async def test_an_event_dispatched_after_the_bot_closed_is_dropped_without_an_error(world, make_bot):
    bot = await make_bot()
    await bot.close()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bot.dispatch("message", None)  # as a gateway reader still running at the close would
        gc.collect()  # a coroutine made and never scheduled warns when it is collected
    assert not [str(w.message) for w in caught if "never awaited" in str(w.message)]


@pytest.mark.slow
async def test_a_training_stopped_by_sigterm_resumes_from_its_checkpoint_after_a_restart(
    standalone, tiny_model_path, bot_settings
):
    double, state, make = standalone
    guild = await double.add_guild("Alpha")
    general, owner = guild["channels"]["general"], state["owner"]
    train = read_card(tiny_model_path).hyperparameters["train"]
    env = {
        "model": tiny_model_path,
        "CONTINUO_BOT_TRAIN_MODEL": json.dumps(dataclasses.asdict(bot_settings.train_model)),
        "CONTINUO_BOT_TRAIN_OPTIONS": json.dumps(train),
        "CONTINUO_BOT_PROGRESS_INTERVAL_S": "0.2",
        "CONTINUO_BOT_RETRAIN_CHECK_S": "0",
    }
    bot = make(**dict(env))
    await bot.start()
    added = await double.wait_done(
        (
            await double.slash_command(
                general, owner, "corpus add", {"file": {"file": "chat.txt", "text": CHAT.read_text("utf-8")}}
            )
        )["id"]
    )
    assert "enough to /train" in added["content"], added
    training = await double.slash_command(general, owner, "train", {"epochs": 8})  # epochs to go at the stop

    def checkpoints() -> list[Path]:
        return list((bot.data / "guilds" / guild["id"] / "checkpoint").rglob("state.npz"))

    async def first_epoch_kept():  # a checkpoint exists from the end of the first epoch until the last one ends
        return checkpoints()

    await double.wait_for(first_epoch_kept, TRAINING_TIMEOUT, "the first epoch's checkpoint")
    code, _ = await bot.terminate()
    assert code == 0, bot.output()[-3000:]
    paused = await double.interaction(training["id"])
    assert "paused: the bot is restarting" in paused["content"], paused
    assert checkpoints(), "no checkpoint was left to resume from"

    again = make(**dict(env))
    await again.start()

    async def result():
        ended = [m["content"] for m in await double.history(general) if "new model is in use" in m["content"]]
        return ended[-1] if ended else None

    outcome = await double.wait_for(result, TRAINING_TIMEOUT, "the resumed training to finish")
    assert "new model is in use" in outcome, outcome
    shown = [e.get("content", "") for m in await double.history(general) for e in m["edits"]]
    assert any("Resuming from epoch" in text for text in shown), shown
    code, _ = await again.terminate()
    assert code == 0


@pytest.mark.slow
async def test_the_coordinator_stopped_by_sigterm_hands_its_job_back_and_a_restart_resumes_it(
    tmp_path, tiny_model_path, bot_settings
):
    from bot.storage import CorpusEntry

    database = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    store = open_store(database)
    await store.open()
    await store.record([CorpusEntry(7, 1, CHAT.read_text("utf-8"), name="chat.txt")])
    job = await store.add_job(7, 1, None, 4, 9000)
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(REPO),
        "CONTINUO_BOT_METRICS_PORT": str(port),
        "CONTINUO_BOT_COORDINATOR_POLL_S": "0.2",
        "CONTINUO_BOT_PROGRESS_INTERVAL_S": "0.2",
        "CONTINUO_BOT_STOP_TIMEOUT_S": str(STOP_TIMEOUT_S),
        "CONTINUO_BOT_TRAIN_MODEL": json.dumps(dataclasses.asdict(bot_settings.train_model)),
        "CONTINUO_BOT_TRAIN_OPTIONS": json.dumps(read_card(tiny_model_path).hyperparameters["train"]),
    }
    argv = [sys.executable, "-m", "bot", "coordinator", "--runner", "local", "--data", str(tmp_path / "coordinator")]
    argv += ["--database", database, "--model-storage", str(tmp_path / "models"), "--log-format", "json"]
    log = tmp_path / "coordinator.log"

    async def start() -> asyncio.subprocess.Process:
        with log.open("a") as out:
            return await asyncio.create_subprocess_exec(*argv, env=env, stdout=out, stderr=asyncio.subprocess.STDOUT)

    async def until(check, what: str, timeout: float = TRAINING_TIMEOUT):
        deadline = time.monotonic() + timeout
        while not (found := await check()):
            assert time.monotonic() < deadline, f"timed out waiting for {what}; log: {log.read_text()[-3000:]}"
            await asyncio.sleep(0.2)
        return found

    first = await start()
    try:
        await until(lambda: _ready(port), "/readyz")
        checkpoints = tmp_path / "coordinator" / "checkpoints" / "7"

        async def one_epoch_done():
            return list(checkpoints.rglob("state.npz"))

        await until(one_epoch_done, "the first epoch's checkpoint")
        _, body = await scrape(port, "/metrics")
        assert "continuo_training_jobs_running 1.0" in body
        first.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(first.wait(), STOP_TIMEOUT_S + 10) == 0, log.read_text()[-3000:]
        assert (await store.last_job(7)).status == "queued"  # handed back

        second = await start()
        try:

            async def finished():
                found = await store.last_job(7)
                return found if found.status not in ("queued", "running") else None

            ended = await until(finished, "the resumed job")
            assert ended.status == "succeeded" and ended.id == job.id, ended
            _, body = await scrape(port, "/metrics")
            assert 'continuo_training_jobs_finished_total{outcome="succeeded"} 1.0' in body
            second.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(second.wait(), STOP_TIMEOUT_S + 10) == 0
        finally:
            if second.returncode is None:
                second.kill()
        lines = [json.loads(line) for line in log.read_text().splitlines() if line.startswith("{")]
        started = [entry for entry in lines if "started as" in entry["message"]]
        assert len(started) == 2 and all(entry["logger"] == "bot.coordinator" for entry in started), lines[-10:]
    finally:
        if first.returncode is None:
            first.kill()
        await store.close()


async def _ready(port: int) -> bool:
    return (await scrape(port, "/readyz"))[0] == 200
