"""Checks shared by the bot's commands."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import discord
from discord import app_commands

if TYPE_CHECKING:
    from .bot import ContinuoBot

manage_server = app_commands.checks.has_permissions(manage_guild=True)  # checked by the bot, whatever Discord shows


def cooldown(interaction: discord.Interaction) -> bool:
    """The per-user cooldown on continuations (raises CommandOnCooldown when over it)."""
    return cast("ContinuoBot", interaction.client).cooldowns.check(interaction)


def guild_id(interaction: discord.Interaction) -> int:
    """The server a guild-only command was used in (Discord sends those from servers only)."""
    if interaction.guild_id is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild_id


def guild(interaction: discord.Interaction) -> discord.Guild:
    """The server a guild-only command was used in, as the bot sees it."""
    if interaction.guild is None:
        raise app_commands.NoPrivateMessage()
    return interaction.guild
