"""Fixtures for the bot's end-to-end tests: a started Discord double and real discord.py clients run against it."""

from __future__ import annotations

import contextlib

import pytest
from continuo_world import bot_settings, make_bot, world  # noqa: F401 - the bot fixtures, for every module here
from discord_double import DiscordDouble, run_client

# The bot's end-to-end modules whose fast tests run once on each database the bot can keep its data in.
BOTH_DATABASES = {"test_bot_continue", "test_bot_corpus", "test_bot_training", "test_bot_forget", "test_bot_models"}


def pytest_generate_tests(metafunc):
    """Runs those modules' fast tests with SQLite and again with PostgreSQL (skipped with the reason where no
    PostgreSQL server can be started, failed in CI), so that one `pytest` covers what two passes did."""
    name = metafunc.module.__name__.rpartition(".")[2]
    if name in BOTH_DATABASES and "store_database" in metafunc.fixturenames:
        if not metafunc.definition.get_closest_marker("slow"):
            metafunc.parametrize("store_database", ["sqlite", "postgresql"], indirect=True)


@pytest.fixture(autouse=True)
def store_database(request) -> str | None:
    """The URL of a fresh PostgreSQL database for a test parametrized with "postgresql", else None (SQLite in the
    test's data folder). Autouse, so the database outlives the clients."""
    if getattr(request, "param", "sqlite") != "postgresql":
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
