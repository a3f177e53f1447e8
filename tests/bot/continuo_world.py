"""Fixtures for Continuo's bot end-to-end tests: two servers on the Discord double and the real bot connected.

Its fixtures reach every test module through tests/bot/conftest.py; modules import the helpers they use.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import discord
import pytest
from discord_double import DiscordDouble, Guild, User

from bot.bot import ContinuoBot
from bot.settings import BotSettings
from core import ModelConfig, TrainConfig, read_card

REPO = Path(__file__).resolve().parents[2]
CHAT = REPO / "corpora" / "chat" / "corpus.txt"
MANAGE_SERVER = discord.Permissions(manage_guild=True)


@dataclass
class World:
    """Alpha and Beta, each with #general; ann manages both, bob is a plain member, spam is another bot."""

    double: DiscordDouble
    alpha: Guild
    beta: Guild
    ann: User
    bob: User
    spam: User

    @property
    def general(self):
        return self.alpha.channel("general")


@pytest.fixture
def world(discord_double) -> World:
    double = discord_double
    double.heartbeat_interval = 0.2  # frequent heartbeats make a blocked event loop visible at once
    alpha, beta = double.add_guild("Alpha", channels=("general", "ideas")), double.add_guild("Beta")
    ann, bob, spam = double.user("ann"), double.user("bob"), double.user("spam", bot=True)
    for guild in (alpha, beta):
        guild.add_member(ann, [guild.add_role("mods", MANAGE_SERVER)])
        guild.add_member(bob)
        guild.add_member(spam)
    return World(double, alpha, beta, ann, bob, spam)


@pytest.fixture
def bot_settings(tiny_model_path, store_database) -> BotSettings:
    """The tiny session model as the default model, and servers trained the way it was: seconds per training."""
    trained = read_card(tiny_model_path).hyperparameters
    model = {k: v for k, v in trained["model"].items() if k != "vocab_size"}
    settings = BotSettings(
        default_model=tiny_model_path,
        train_model=ModelConfig(**model),
        train_options=TrainConfig(**trained["train"]),
        progress_interval_s=0.3,
        retrain_check_s=0,
        cooldown_uses=50,
        cooldown_seconds=60,
    )
    return settings.model_copy(update={"database_url": store_database}) if store_database else settings


class _BotErrors(logging.Handler):
    """ERROR records of the bot's own loggers fail the test, as the double does for the discord logger."""

    def __init__(self, double: DiscordDouble):
        super().__init__(logging.ERROR)
        self.double = double

    def emit(self, record: logging.LogRecord) -> None:
        self.double.client_errors.append(
            f"{record.name}: {record.getMessage()} {record.exc_info and record.exc_info[1]!r}"
        )


@pytest.fixture
async def make_bot(start_client, world, bot_settings):
    """``bot = await make_bot(cooldown_uses=2)``: Continuo's bot connected to the double, with settings changed."""
    handler = _BotErrors(world.double)
    logging.getLogger("bot").addHandler(handler)

    async def make(**changes) -> ContinuoBot:
        settings = bot_settings.model_copy(update=changes)
        return await start_client(ContinuoBot(settings, guild_ready_timeout=0.1))

    yield make
    logging.getLogger("bot").removeHandler(handler)


async def answer(record, timeout: float = 20.0):
    """The finished response message of an interaction (after a defer, the message that replaced it)."""
    return await record.wait_done(timeout)
