"""Members' voices: /voice share (a member lets the bot imitate them in this server) and /voice stop (withdraws it)."""

from __future__ import annotations

import discord
from discord import app_commands
from discord.ext import commands

from ..bot import ContinuoBot
from ..checks import guild_id


class Voices(commands.Cog):
    voice = app_commands.Group(
        name="voice", description="Let Continuo imitate you in this server, or stop it", guild_only=True
    )

    def __init__(self, bot: ContinuoBot):
        self.bot = bot

    @voice.command(name="share", description="Let /continue ... as:@you imitate your messages in this server")
    async def share(self, interaction: discord.Interaction) -> None:
        server = guild_id(interaction)
        added = await self.bot.store.share_voice(server, interaction.user.id)
        messages = len(await self.bot.store.member_texts(server, interaction.user.id))
        first = "You shared your voice in this server" if added else "Your voice is already shared in this server"
        await interaction.response.send_message(
            f"{first}: `/continue ... as:@you` continues text in it, bent toward your {messages:,} recorded "
            "messages here (learned channels only), posted under your name and avatar and marked as an imitation "
            "by Continuo. /voice stop (or /forget-me) withdraws it at once.",
            ephemeral=True,
        )

    @voice.command(name="stop", description="Stop Continuo imitating you in this server")
    async def stop(self, interaction: discord.Interaction) -> None:
        server = guild_id(interaction)
        removed = await self.bot.store.stop_voice(server, interaction.user.id)
        self.bot.models.stop_voice(server, interaction.user.id)  # from now on, and answers being decoded in it too
        await interaction.response.send_message(
            "You stopped sharing your voice: no answer imitates you in this server from now on."
            if removed
            else "Your voice was not shared in this server: nobody can imitate you here.",
            ephemeral=True,
        )


async def setup(bot: ContinuoBot) -> None:
    await bot.add_cog(Voices(bot))
