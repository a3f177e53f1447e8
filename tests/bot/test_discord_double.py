"""The Discord double against a small real discord.py bot: login, sync, every interaction kind, messages, files."""
from __future__ import annotations

import discord
import pytest
from discord import app_commands
from discord.ext import commands

from discord_double import EPHEMERAL, CommandRefused


class EchoBot(commands.Bot):
    """A tiny bot written for these tests (not Continuo's bot) that exercises each route the double serves."""

    def __init__(self) -> None:
        intents = discord.Intents.default()
        intents.message_content = True
        super().__init__(command_prefix="!", intents=intents, guild_ready_timeout=0.1,
                         allowed_mentions=discord.AllowedMentions.none())
        self.seen: list[discord.Message] = []

    async def setup_hook(self) -> None:
        @self.tree.command(description="Repeat some text")
        @app_commands.describe(text="what to repeat", times="how many times")
        async def echo(interaction: discord.Interaction, text: str, times: app_commands.Range[int, 1, 3] = 1):
            await interaction.response.send_message(" ".join([text] * times))

        await self.tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        if message.author != self.user:
            self.seen.append(message)


@pytest.fixture
async def world(discord_double):
    guild = discord_double.add_guild("Alpha")
    return guild, guild.channel("general"), discord_double.user("ann")


async def test_login_sync_and_slash_command(discord_double, start_client, world):
    guild, general, ann = world
    bot = await start_client(EchoBot())
    assert bot.user.id == discord_double.bot_user.id
    assert [c["name"] for c in discord_double.synced_commands[None]] == ["echo"]
    assert bot.get_guild(guild.id).name == "Alpha"

    record = await discord_double.slash_command(general, ann, "echo", {"text": "hi", "times": 2})
    response = await record.wait_response()
    assert response["type"] == 4
    assert record.content == "hi hi"
    assert not record.ephemeral
    assert record.original in discord_double.sent_messages
    assert record.original.allowed_mentions == {"parse": []}


async def test_options_are_checked_against_the_synced_schema(discord_double, start_client, world):
    guild, general, ann = world
    await start_client(EchoBot())
    with pytest.raises(CommandRefused, match="outside"):
        await discord_double.slash_command(general, ann, "echo", {"text": "hi", "times": 9})
    with pytest.raises(CommandRefused, match="needs the options"):
        await discord_double.slash_command(general, ann, "echo", {})
    with pytest.raises(CommandRefused, match="no slash command"):
        await discord_double.slash_command(general, ann, "nope", {})
