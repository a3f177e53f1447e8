"""The one error handler: every failed application command ends in a short private message."""

from __future__ import annotations

import logging

import discord
from discord import app_commands
from discord.ext import commands

from core import ContinuoError

from ..bot import ContinuoBot

log = logging.getLogger(__name__)

APOLOGY = "Sorry, something went wrong on my side; it has been logged. Please try again later."


def describe(error: app_commands.AppCommandError, interaction: discord.Interaction) -> str | None:
    """The line shown for a user's mistake, or None for a bug (logged, then apologised for)."""
    name = f"/{interaction.command.qualified_name}" if interaction.command else "this command"
    if isinstance(error, app_commands.CommandOnCooldown):
        return f"You're going too fast: try again in {error.retry_after:.0f} s."
    if isinstance(error, app_commands.MissingPermissions):
        missing = ", ".join(p.replace("_", " ").replace("guild", "server").title() for p in error.missing_permissions)
        return f"You need the {missing} permission to use {name}."
    if isinstance(error, app_commands.BotMissingPermissions):
        missing = ", ".join(p.replace("_", " ").replace("guild", "server").title() for p in error.missing_permissions)
        return f"I need the {missing} permission here to run {name}; ask an admin to grant it."
    if isinstance(error, app_commands.NoPrivateMessage):
        return f"{name} works in servers only."
    if isinstance(error, app_commands.TransformerError):
        return f"{error.value!r} is not a valid {error.type.name.lower()} here; pick one from the list."
    if isinstance(error, app_commands.CheckFailure):
        return f"You can't use {name} here."
    original = getattr(error, "original", error)
    if isinstance(original, ContinuoError):
        return str(original)[:1900]
    if isinstance(original, discord.Forbidden):
        return "Discord refused: I lack a permission for that here; ask an admin to check my role."
    return None


class Errors(commands.Cog):
    def __init__(self, bot: ContinuoBot):
        self.bot = bot
        self._previous = bot.tree.on_error

    async def cog_load(self) -> None:
        self.bot.tree.error(self.on_app_command_error)

    async def cog_unload(self) -> None:
        self.bot.tree.error(self._previous)

    async def on_app_command_error(self, interaction: discord.Interaction, error: app_commands.AppCommandError) -> None:
        message = describe(error, interaction)
        self.bot.count_command(interaction, "error" if message is None else "user_error")
        if message is None:
            log.error(
                "command %s failed",
                interaction.command and interaction.command.qualified_name,
                exc_info=getattr(error, "original", error),
            )
            message = APOLOGY
        await tell(interaction, message)


async def tell(interaction: discord.Interaction, message: str) -> None:
    """A private one-line answer, whether or not the interaction was answered or deferred already."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(message, ephemeral=True)
        else:
            await interaction.response.send_message(message, ephemeral=True)
    except discord.HTTPException:
        log.warning("could not tell the user of %s about an error", interaction.command and interaction.command.name)
        log.debug("the error was: %s", message)  # may quote what the user typed: only at DEBUG


async def setup(bot: ContinuoBot) -> None:
    await bot.add_cog(Errors(bot))
