"""Fixtures for the bot's end-to-end tests: a started Discord double and real discord.py clients run against it."""

from __future__ import annotations

import contextlib
import os

import pytest
from continuo_world import bot_settings, make_bot, world  # noqa: F401 - the bot fixtures, for every module here
from discord_double import DiscordDouble, run_client


@pytest.fixture(autouse=True)
def store_database(request) -> str | None:
    """With CONTINUO_TEST_BOT_STORE=postgresql (a second pass in .ci/run), every end-to-end test's bot keeps its
    data in a fresh PostgreSQL database; by default in SQLite. Autouse, so the database outlives the clients."""
    if os.environ.get("CONTINUO_TEST_BOT_STORE") != "postgresql":
        return None
    return request.getfixturevalue("postgres_url")


@pytest.fixture
async def discord_double():
    """A started DiscordDouble with discord.py pointed at it (restored afterwards).

    Set ``discord_double.heartbeat_interval`` before starting a client to change the HELLO interval.
    """
    double = DiscordDouble()
    await double.start()
    with double.patch_discord():
        yield double
    await double.stop()


@pytest.fixture
async def start_client(discord_double):
    """``client = await start_client(client)``: runs it against the double until on_ready.

    At teardown every started client is closed, and the test fails if any of them logged an ERROR
    through the ``discord`` logger, called a route the double does not know, or sent something Discord
    would refuse (clear ``discord_double.rejected_requests`` / ``client_errors`` when that is expected).
    """
    async with contextlib.AsyncExitStack() as stack:

        async def start(client, ready_timeout: float = 15.0):
            return await stack.enter_async_context(run_client(client, discord_double, ready_timeout=ready_timeout))

        yield start
    discord_double.assert_clean()
