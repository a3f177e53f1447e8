"""/settings: a server's defaults for /continue, replies to mentions, automatic retraining and chiming in."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from ..bot import ContinuoBot
from ..checks import guild, guild_id, manage_server
from ..storage import GuildSettings
from ..text import safe


def describe(settings: GuildSettings) -> str:
    retrain = (
        f"when the corpus has grown by {settings.retrain_growth:.0%} since the last training"
        if settings.retrain_growth > 0
        else "off"
    )
    chime_in = (
        f"after {settings.chime_in:g}% of members' messages in learned channels" if settings.chime_in > 0 else "off"
    )
    return "\n".join(
        [
            f"Temperature: {settings.temperature:g}",
            f"Length: {settings.words} words",
            f"Answer mentions and replies: {'on' if settings.reply_on_mention else 'off'}",
            f"Automatic retraining: {retrain}",
            f"Chime in: {chime_in}",
        ]
    )


class ServerSettings(commands.Cog):
    def __init__(self, bot: ContinuoBot):
        self.bot = bot

    @app_commands.command(name="settings", description="Show or change this server's settings")
    @app_commands.describe(
        temperature="/continue's default temperature (lower is safer, higher is wilder)",
        words="/continue's default length in words",
        reply_on_mention="answer messages that mention me or reply to mine",
        retrain_growth_percent="retrain automatically once the corpus grew by this much (0: never)",
        chime_in="percent of members' messages in learned channels after which I add the next turn (0: never)",
    )
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @manage_server
    async def settings(
        self,
        interaction: discord.Interaction,
        temperature: app_commands.Range[float, 0.05, 3.0] | None = None,
        words: app_commands.Range[int, 1, 200] | None = None,
        reply_on_mention: bool | None = None,
        retrain_growth_percent: app_commands.Range[int, 0, 1000] | None = None,
        chime_in: app_commands.Range[float, 0.0, 100.0] | None = None,
    ) -> None:
        changes = {
            name: value
            for name, value in (
                ("temperature", temperature),
                ("words", words),
                ("reply_on_mention", reply_on_mention),
                ("retrain_growth", None if retrain_growth_percent is None else retrain_growth_percent / 100),
                ("chime_in", chime_in),
            )
            if value is not None
        }
        if changes:
            current = await self.bot.store.update_guild_settings(guild_id(interaction), **changes)
            title = f"Updated the settings of **{safe(guild(interaction).name)}**:"
        else:
            current = await self.bot.store.guild_settings(guild_id(interaction))
            title = f"Settings of **{safe(guild(interaction).name)}**:"
        await interaction.response.send_message(f"{title}\n{describe(current)}", ephemeral=True)


async def setup(bot: ContinuoBot) -> None:
    await bot.add_cog(ServerSettings(bot))
