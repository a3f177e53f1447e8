"""A sharded bot: two clients holding one shard each, every server answered by exactly one, commands synced once."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys

import pytest
from discord_double import DiscordDouble, run_client
from discord_double.control import TESTS_BOT, start_standalone
from discord_double.gateway import shard_of

from bot.__main__ import main
from bot.sharding import ShardedContinuoBot, make_bot

IDENTIFY_WINDOW = 0.5  # the double's start limit per bucket (Discord's is 5 s), short to keep tests quick
IDENTIFY_INTERVAL = IDENTIFY_WINDOW + 1.0  # the bots' spacing: the margin covers an IDENTIFY sent late by a busy loop


async def guilds_on_every_shard(double: DiscordDouble, shard_count: int, per_shard: int = 2) -> list:
    """Servers whose ids (which carry their creation time) spread over every shard, ``per_shard`` on each."""
    found: dict[int, list] = {shard: [] for shard in range(shard_count)}
    for n in range(500):
        guild = double.add_guild(f"Server {n}")
        found[shard_of(guild.id, shard_count)].append(guild)
        if min(len(guilds) for guilds in found.values()) >= per_shard:
            break
        await asyncio.sleep(0.002)  # the next snowflake carries a later millisecond
    assert min(len(guilds) for guilds in found.values()) >= per_shard
    return double.guilds


def sharded(settings, shard_ids: list[int], count: int = 2):
    return settings.model_copy(
        update={"shard_count": count, "shard_ids": shard_ids, "identify_interval_s": IDENTIFY_INTERVAL}
    )


@contextlib.asynccontextmanager
async def started_together(double, *bots):
    """Clients started at the same moment, as processes of one deployment are; closed on exit."""
    async with contextlib.AsyncExitStack() as stack:
        await asyncio.gather(*(stack.enter_async_context(run_client(bot, double, ready_timeout=60)) for bot in bots))
        yield bots


def handled_by(bot) -> list[int]:
    """Interaction ids this client received, recorded by a listener."""
    seen: list[int] = []

    async def on_interaction(interaction):
        seen.append(interaction.id)

    bot.add_listener(on_interaction)
    return seen


async def test_two_shards_in_two_clients_answer_each_server_exactly_once(world, bot_settings):
    double = world.double
    double.identify_window, double.max_concurrency = IDENTIFY_WINDOW, 1
    guilds = await guilds_on_every_shard(double, 2)
    for guild in guilds:
        guild.member(world.bob)
    first, second = (ShardedContinuoBot(sharded(bot_settings, [n]), guild_ready_timeout=0.1) for n in (0, 1))
    assert make_bot(sharded(bot_settings, [0])).__class__ is ShardedContinuoBot
    seen = {0: handled_by(first), 1: handled_by(second)}
    async with started_together(double, first, second):
        # The second waited for its IDENTIFY turn instead of being refused.
        assert double.invalid_sessions == []
        assert sorted(tuple(i["shard"]) for i in double.identifies) == [(0, 2), (1, 2)]
        assert double.command_syncs == [None]  # only the process holding shard 0 synced
        for bot, shard in ((first, 0), (second, 1)):
            held = {g.id for g in bot.guilds}
            assert held == {g.id for g in guilds if shard_of(g.id, 2) == shard}
            assert all(bot.serves(g.id) == (g.id in held) for g in guilds)

        asked = {"seed": "The night", "words": 3}
        records = [await double.slash_command(g.channel("general"), world.bob, "continue", asked) for g in guilds]
        for record in records:
            await record.wait_done(30)
        for guild, record in zip(guilds, records, strict=True):
            shard = shard_of(guild.id, 2)
            assert [s.shard for s in record.sessions] == [(shard, 2)]  # sent to one shard: its server's
            assert len(record.callbacks) == 1 and record.content.startswith("**The night**")
            assert record.id in seen[shard] and record.id not in seen[1 - shard]
    double.assert_clean()


async def test_identifying_too_fast_gets_an_invalid_session_and_the_client_tries_again(world, bot_settings, tmp_path):
    double = world.double
    double.identify_window = 5.0  # Discord's: longer than the two clients' start-up difference on a busy machine
    await guilds_on_every_shard(double, 2, per_shard=1)
    # Two data folders: the processes do not share an IDENTIFY gate, as on two machines without one.
    first, second = (
        ShardedContinuoBot(
            sharded(bot_settings, [n]).model_copy(update={"data_dir": tmp_path / str(n), "identify_interval_s": 5.5}),
            guild_ready_timeout=0.1,
        )
        for n in (0, 1)
    )
    async with started_together(double, first, second):
        refused = double.invalid_sessions  # whichever came second, once; accepted after its own wait
        assert len(refused) == 1 and len(double.identifies) == 3
        assert sorted(tuple(i["shard"]) for i in double.identifies) == sorted([(0, 2), (1, 2), refused[0]])
        assert {s.shard for s in double.sessions.values()} == {(0, 2), (1, 2)}
    double.assert_clean()


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["--shard-ids", "1"], "--shard-ids needs --shard-count"),
        (["--shard-count", "2", "--shard-ids", "0,2"], "distinct numbers from 0 to 1"),
        (["--shard-count", "2", "--shard-ids", "1,1"], "distinct numbers from 0 to 1"),
    ],
)
def test_shard_options_that_do_not_fit_are_one_line(argv, expected, monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DISCORD_TOKEN", "x")
    assert main(["--data", str(tmp_path), *argv]) == 2
    error = capsys.readouterr().err
    assert expected in error and len(error.strip().splitlines()) == 1


@pytest.mark.parametrize("argv", [["--shard-count", "0"], ["--shard-ids", "a,b"]])
def test_shard_options_are_numbers(argv, capsys):
    with pytest.raises(SystemExit) as exit:
        main(argv)
    assert exit.value.code == 2 and "shard" in capsys.readouterr().err


@pytest.mark.slow
async def test_two_bot_processes_against_a_standalone_double(tmp_path, tiny_model_path):
    """What a local cluster runs: the double on its own, two `continuo bot` processes with one shard each."""
    process, double, state = await start_standalone(
        "--identify-window", str(IDENTIFY_WINDOW), "--heartbeat-interval", "0.5"
    )
    bots = []
    try:
        guilds = []
        while len({shard_of(int(g["id"]), 2) for g in guilds}) < 2 or len(guilds) < 3:
            guilds.append(await double.add_guild(f"Server {len(guilds)}"))
        user = await double.user("ann", [g["id"] for g in guilds])
        env = {
            **os.environ,
            "DISCORD_TOKEN": state["token"],
            "CONTINUO_BOT_IDENTIFY_INTERVAL_S": str(IDENTIFY_INTERVAL),
            "PYTHONPATH": os.pathsep.join([str(TESTS_BOT), str(TESTS_BOT.parents[1])]),
        }
        for shard in (0, 1):
            bots.append(
                await asyncio.create_subprocess_exec(
                    sys.executable,
                    "-m",
                    "discord_double.run_bot",
                    "--double",
                    double.base_url,
                    "--",
                    "--shard-count",
                    "2",
                    "--shard-ids",
                    str(shard),
                    "--data",
                    str(tmp_path / "data"),
                    "--model",
                    str(tiny_model_path),
                    "--log-level",
                    "WARNING",
                    env=env,
                )
            )

        async def both_connected():
            sessions = (await double.state())["sessions"]
            return {tuple(s["shard"]) for s in sessions if s["connected"]} == {(0, 2), (1, 2)}

        await double.wait_for(both_connected, 120, "both bot processes to connect")
        await double.wait_for(lambda: _synced(double), 60, "the commands to be synced")
        answers = []
        for guild in guilds:
            sent = await double.slash_command(
                guild["channels"]["general"], user["id"], "continue", {"seed": "The night", "words": 3}
            )
            answers.append((guild, await double.wait_done(sent["id"], 60)))
        for guild, answer in answers:
            assert answer["shards"] == [[shard_of(int(guild["id"]), 2), 2]]
            assert answer["callbacks"] == 1 and answer["content"].startswith("**The night**")
        final = await double.state()
        assert final["command_syncs"] == [None] and final["invalid_sessions"] == []
        assert not final["unknown_routes"] and not final["double_errors"] and not final["rejected_requests"]
    finally:
        for bot in bots:
            bot.send_signal(signal.SIGINT)
        for bot in bots:
            try:
                await asyncio.wait_for(bot.wait(), 30)
            except TimeoutError:
                bot.kill()
        await double.close()
        process.terminate()
        process.wait(10)


async def _synced(double) -> bool:
    return bool((await double.state())["command_syncs"])


async def test_the_identify_gate_spaces_one_bucket_and_lets_other_buckets_through(tmp_path):
    from bot.sharding import IdentifyGate

    one, other = IdentifyGate(tmp_path, 0.6), IdentifyGate(tmp_path, 0.6)  # two processes sharing a folder
    one.max_concurrency = other.max_concurrency = 2
    loop = asyncio.get_running_loop()
    start = loop.time()
    await asyncio.gather(one.wait_turn(0), other.wait_turn(1))  # buckets 0 and 1: both at once
    assert loop.time() - start < 0.5
    await other.wait_turn(2)  # bucket 0 again: waits out shard 0's interval
    assert loop.time() - start >= 0.6
