"""Cluster mode: bot processes queue /train in the store, the coordinator trains and publishes, the serving
process reports the result and answers with the new model; a restarted bot process follows its jobs again."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

import pytest
from continuo_world import CHAT, answer
from discord_double import run_client
from probes import free_port, scrape

from bot.coordinator import Coordinator, publisher
from bot.storage import open_store
from bot.storage.versions import ModelVersions
from core import LocalProcessRunner, open_bundle_storage, read_card

TRAINING_TIMEOUT = 180  # seconds; a tiny model trains in a few, but CI machines are shared


@pytest.fixture
async def coordinator(bot_settings, tmp_path, continuo_home):
    """``start()``: a coordinator on the bot's database and model storage, in this event loop (local processes)."""
    running = []

    async def start() -> Coordinator:
        settings = bot_settings.model_copy(
            update={"data_dir": tmp_path / "coordinator", "coordinator_poll_s": 0.1, "progress_interval_s": 0.2}
        )
        shared = bot_settings.model_copy(update={"data_dir": continuo_home})  # where the bots' settings point
        store = open_store(shared.database)
        await store.open()
        versions = ModelVersions(store, open_bundle_storage(shared.model_storage, tmp_path / "coordinator-cache"))
        coordinator = Coordinator(store, LocalProcessRunner(), settings, publisher(versions))
        running.append((coordinator, asyncio.create_task(coordinator.run()), store))
        return coordinator

    yield start
    for coordinator, task, store in running:
        coordinator.stop()
        await task
        await store.close()


def cluster_bot(make_bot, **changes):
    return make_bot(**{"job_runner": "coordinator", "model_poll_s": 0.2, "progress_interval_s": 0.2, **changes})


async def upload_chat(world, guild) -> None:
    record = await world.double.slash_command(
        guild.channel("general"), world.ann, "corpus add", {"file": ("chat.txt", CHAT.read_bytes())}
    )
    assert "enough to /train" in (await answer(record)).content


async def test_train_waits_in_the_store_for_the_coordinator_then_the_serving_process_answers_with_it(
    world, make_bot, coordinator
):
    bot = await cluster_bot(make_bot)
    double, alpha, general = world.double, world.alpha, world.general
    await upload_chat(world, alpha)
    default = await bot.models.model_for(world.beta.id)  # the bundled model (Alpha answers from its instant one)

    record = await double.slash_command(general, world.ann, "train", {"epochs": 1})
    await double.wait_for(lambda: "queued: place 1" in (record.content or ""), 30, "the place in line")
    assert [j.status for j in await bot.store.unfinished_jobs()] == ["queued"]  # nothing trains in the bot
    again = await answer(await double.slash_command(general, world.ann, "train", {"epochs": 1}))
    assert "already queued or training" in again.content

    await coordinator()
    await double.wait_for(
        lambda: "new model is in use" in (record.content or "") or "failed" in (record.content or ""),
        TRAINING_TIMEOUT,
        "the training to finish",
    )
    assert "new model is in use" in record.content and "Sample: **" in record.content, record.content
    assert any("epoch 1/1" in e.get("content", "") for e in record.edits)  # progress came from the store
    own = await bot.models.model_for(alpha.id)
    assert own.path == await bot.models.bundle_for(alpha.id) != default.path  # its published version
    assert own.card.corpus == "this server's text"
    assert await bot.models.bundle_for(world.beta.id) == bot.models.default_model  # Beta never sees Alpha's model
    assert (await bot.store.last_job(alpha.id)).status == "succeeded"
    reply = await answer(await double.slash_command(general, world.bob, "continue", {"seed": "good morning"}))
    assert reply.content.startswith("**good morning**")


async def test_a_restarted_bot_process_follows_its_servers_jobs_and_reports_them(
    world, make_bot, bot_settings, coordinator
):
    from bot.bot import ContinuoBot

    double, alpha, general = world.double, world.alpha, world.general
    first = ContinuoBot(bot_settings.model_copy(update={"job_runner": "coordinator"}), guild_ready_timeout=0.1)
    async with run_client(first, double):
        await upload_chat(world, alpha)
        record = await double.slash_command(general, world.ann, "train", {"epochs": 1})
        await double.wait_for(lambda: "queued" in (record.content or ""), 30, "the place in line")
    # that process went away; its job stays queued in the store, not marked interrupted

    second = await cluster_bot(make_bot)
    assert [j.status for j in await second.store.unfinished_jobs()] == ["queued"]
    await coordinator()
    await double.wait_for(
        lambda: any("new model is in use" in m.content for m in general.history()),
        TRAINING_TIMEOUT,
        "the result in the channel",
    )
    assert (await second.models.model_for(alpha.id)).card.corpus == "this server's text"


async def test_a_training_queued_before_a_forget_but_run_after_it_lifts_the_fallback(world, make_bot, coordinator):
    bot = await cluster_bot(make_bot, model_poll_s=60)  # the new model must answer before the watcher polls
    double, alpha, general, ann, bob = world.double, world.alpha, world.general, world.ann, world.bob
    await answer(await double.slash_command(general, ann, "corpus learn", {"channel": general}))
    for i in range(3):
        await double.send_message(general, bob, f"the quixotrel number {i} sails home .")
    for _ in range(200):
        if sum("quixotrel" in text for text in await bot.store.corpus_texts(alpha.id)) == 3:
            break
        await asyncio.sleep(0.05)
    await upload_chat(world, alpha)
    record = await double.slash_command(general, ann, "train", {"epochs": 1})
    await double.wait_for(lambda: "queued: place 1" in (record.content or ""), 30, "the place in line")
    forgot = await answer(await double.slash_command(general, bob, "forget-me"))
    assert "Removed 3 of your messages" in forgot.content, forgot.content
    assert not await bot.models.trained_may_answer(alpha.id)  # served from a model counted without them

    await coordinator()  # the job queued before the forget reads the corpus now, after it
    await double.wait_for(
        lambda: "new model is in use" in (record.content or "") or "failed" in (record.content or ""),
        TRAINING_TIMEOUT,
        "the training to finish",
    )
    assert "new model is in use" in record.content, record.content
    assert await bot.models.trained_may_answer(alpha.id)  # its model never saw the text: the fallback is lifted
    trained = await bot.models.model_for(alpha.id)
    assert trained.model is not None and "quixotrel" not in trained.tokenizer.vocab


# --- the whole cluster as deploy/local-cluster runs it: PostgreSQL, a Ray head, the coordinator, two bot processes

REPO = Path(__file__).resolve().parents[2]
VERSE_ONLY, CHAT_ONLY = "lamp", "lol"  # words of one bundled corpus that the other never uses


def shard_of(guild_id: int, count: int) -> int:
    return (guild_id >> 22) % count


def cluster_env(double_url: str, token: str, folder: str, tiny_model_path, bot_settings) -> dict:
    """The script's settings: the double as Discord, tiny models, 2 Ray CPUs, quick progress."""
    train = {k: v for k, v in read_card(tiny_model_path).hyperparameters["train"].items()}
    return {
        **os.environ,
        "DISCORD_TOKEN": token,
        "CONTINUO_CLUSTER_DIR": folder,
        "CONTINUO_CLUSTER_RAY_CPUS": "2",
        "CONTINUO_CLUSTER_BOT_COMMAND": f"{sys.executable} -m discord_double.run_bot --double {double_url} --",
        "CONTINUO_CLUSTER_PYTHON": sys.executable,
        "PYTHONPATH": os.pathsep.join([str(REPO / "tests" / "bot"), str(REPO)]),
        "CONTINUO_BOT_DEFAULT_MODEL": str(tiny_model_path),
        "CONTINUO_BOT_TRAIN_MODEL": json.dumps(dataclasses.asdict(bot_settings.train_model)),
        "CONTINUO_BOT_TRAIN_OPTIONS": json.dumps(train),
        "CONTINUO_BOT_RAY": json.dumps({"cpus": 1, "memory_mb": 600}),
        "CONTINUO_BOT_PROGRESS_INTERVAL_S": "0.5",
        "CONTINUO_BOT_MODEL_POLL_S": "0.5",
        "CONTINUO_BOT_IDENTIFY_INTERVAL_S": "1.5",
        "CONTINUO_BOT_COOLDOWN_USES": "50",
    }


async def script(env: dict, *args: str, timeout: float = 300) -> str:
    process = await asyncio.create_subprocess_exec(
        str(REPO / "deploy" / "local-cluster"),
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), timeout)
    assert process.returncode == 0, out.decode()
    return out.decode()


@pytest.mark.slow
async def test_the_local_cluster_script_runs_the_whole_cluster_against_the_double(
    tiny_model_path, bot_settings, postgres_server
):
    """The script starts a PostgreSQL server of its own; `postgres_server` skips this test (or fails it in CI)
    with the reason where none can run here."""
    from discord_double.control import start_standalone

    process, double, state = await start_standalone(
        "--identify-window", "1", "--heartbeat-interval", "0.5", "--recommended-shards", "2"
    )
    folder = tempfile.mkdtemp(prefix="ccl-", dir="/tmp")  # short: Ray's socket paths; reachable by postgres
    env = cluster_env(double.base_url, state["token"], folder, tiny_model_path, bot_settings)
    base = free_port()
    env["CONTINUO_CLUSTER_METRICS_PORT"] = str(base)
    ports = {"coordinator": base, "bot-0": base + 1, "bot-1": base + 2}  # as the script numbers them
    store = None
    try:
        guilds = []
        while len({shard_of(int(g["id"]), 2) for g in guilds}) < 2:
            guilds.append(await double.add_guild(f"Server {len(guilds)}"))
        alpha = guilds[0]
        beta = next(g for g in guilds if shard_of(int(g["id"]), 2) != shard_of(int(alpha["id"]), 2))
        owner = state["owner"]
        await script(env, "start")

        async def both_connected():
            current = await double.state()
            shards = {tuple(s["shard"]) for s in current["sessions"] if s["connected"]}
            return shards == {(0, 2), (1, 2)} and current["command_syncs"]

        await double.wait_for(both_connected, 180, "both bot processes to connect and sync")

        # every process serves its metrics and says it is ready (the coordinator: database, storage and Ray)
        async def all_ready():
            return all([(await scrape(port, "/readyz"))[0] == 200 for port in ports.values()])

        await double.wait_for(all_ready, 120, "every process's /readyz")
        for name, port in ports.items():
            status, body = await scrape(port, "/metrics")
            assert status == 200 and "continuo_event_loop_lag_seconds_bucket" in body, name
        shown = await script(env, "status")
        assert all(f"{name} running" in shown for name in ports) and shown.count(", ready (") == 3, shown
        continued = sum([await metric(ports[b], "continuo_commands_total", command="continue") for b in BOTS])

        async def ask(guild, name, options, timeout=60):
            sent = await double.slash_command(guild["channels"]["general"], owner, name, options)
            return await double.wait_done(sent["id"], timeout)

        # every server is answered by exactly one process: the one holding its shard
        for guild in guilds:
            answer = await ask(guild, "continue", {"seed": "The night", "words": 3})
            assert answer["shards"] == [[shard_of(int(guild["id"]), 2), 2]] and answer["callbacks"] == 1
        after = sum([await metric(ports[b], "continuo_commands_total", command="continue") for b in BOTS])
        assert after == continued + len(guilds)  # each counted once, by the process that answered it
        alpha_bot = f"bot-{shard_of(int(alpha['id']), 2)}"
        trained_before = await metric(ports["coordinator"], "continuo_training_jobs_finished_total")
        train_commands = await metric(ports[alpha_bot], "continuo_commands_total", command="train")

        # each server its own text: Alpha chat, Beta verse
        for guild, corpus in ((alpha, "chat"), (beta, "verse")):
            text = (REPO / "corpora" / corpus / "corpus.txt").read_text("utf-8")
            added = await ask(guild, "corpus add", {"file": {"file": f"{corpus}.txt", "text": text}})
            assert "enough to /train" in added["content"], added

        # a /train in Alpha runs on Ray; its new model answers in the process serving Alpha
        sent = await double.slash_command(alpha["channels"]["general"], owner, "train", {"epochs": 1})

        async def trained():
            found = await double.interaction(sent["id"])
            return (
                found
                if "new model is in use" in (found["content"] or "") or "failed" in (found["content"] or "")
                else None
            )

        result = await double.wait_for(trained, TRAINING_TIMEOUT, "Alpha's training")
        assert "new model is in use" in result["content"], result["content"]
        assert result["shards"] == [[shard_of(int(alpha["id"]), 2), 2]]
        assert "started as ray-" in (Path(folder) / "logs" / "coordinator.log").read_text()
        assert await metric(ports[alpha_bot], "continuo_commands_total", command="train") == train_commands + 1
        assert await metric(ports["coordinator"], "continuo_training_jobs_finished_total") == trained_before + 1
        assert await metric(ports["coordinator"], "continuo_training_job_duration_seconds_count") >= 1
        store = open_store(f"postgresql://postgres@/continuo?host={folder}/pg")
        await store.open()
        trained = await store.last_job(int(alpha["id"]))
        info = await ask(alpha, "model info", {})  # the trained version, not the instant n-gram model
        assert f"Validation perplexity: {trained.val_perplexity:.1f}" in info["content"], info["content"]
        assert "1 epochs" in info["content"] and info["shards"] == [[shard_of(int(alpha["id"]), 2), 2]]
        own = await ask(alpha, "continue", {"seed": CHAT_ONLY, "words": 3})
        assert own["content"].startswith(f"**{CHAT_ONLY}**")  # a word of Alpha's text: its own model
        foreign = await ask(alpha, "continue", {"seed": VERSE_ONLY, "words": 3})
        assert "none of the seed's words are known" in foreign["content"]  # Beta's text never reached it

        # a bot process killed with SIGKILL mid-training and started again loses nothing
        before = (await ask(beta, "corpus stats", {}))["content"]
        sent = await double.slash_command(beta["channels"]["general"], owner, "train", {"epochs": 1})
        await double.wait_for(lambda: _contains(double, sent["id"], "Training"), 120, "Beta's training to start")
        pid = int((Path(folder) / "run" / f"bot-{shard_of(int(beta['id']), 2)}.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        await script(env, "start")  # starts what is not running: that bot process again

        async def back():
            current = await double.state()
            return any(s["shard"] == [shard_of(int(beta["id"]), 2), 2] and s["connected"] for s in current["sessions"])

        await double.wait_for(back, 180, "the restarted bot process to connect")

        async def beta_finished():
            job = await store.last_job(int(beta["id"]))
            return job if job.status not in ("queued", "running") else None

        job = await double.wait_for(beta_finished, TRAINING_TIMEOUT, "Beta's training after the restart", every=1)
        assert job.status == "succeeded", job  # not interrupted by the kill
        assert (await store.current_model(int(beta["id"]))).version is not None
        assert (await ask(beta, "corpus stats", {}))["content"] == before
        info = await ask(beta, "model info", {})
        assert f"Validation perplexity: {job.val_perplexity:.1f}" in info["content"], info["content"]
        assert "The last training" not in info["content"]
        mine = await ask(beta, "continue", {"seed": VERSE_ONLY, "words": 3})
        assert mine["content"].startswith(f"**{VERSE_ONLY}**")
        final = await double.state()
        assert not final["unknown_routes"] and not final["double_errors"] and not final["rejected_requests"]
    except BaseException:
        for log in sorted((Path(folder) / "logs").glob("*.log")):  # what each process said, for the failure report
            print(f"--- {log.name}", *log.read_text(errors="replace").splitlines()[-25:], sep="\n")
        raise
    finally:
        if store is not None:
            await store.close()
        print(await script(env, "stop", timeout=180))
        await double.close()
        process.terminate()
        process.wait(10)
        shutil.rmtree(folder, ignore_errors=True)


BOTS = ("bot-0", "bot-1")


async def metric(port: int, name: str, **labels: str) -> float:
    """The sum of a metric's samples with those labels, as the process's /metrics shows it now."""
    from prometheus_client.parser import text_string_to_metric_families

    status, body = await scrape(port, "/metrics")
    assert status == 200, f"no /metrics on port {port}"
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


async def _contains(double, interaction_id: str, text: str) -> bool:
    return text in ((await double.interaction(interaction_id))["content"] or "")
