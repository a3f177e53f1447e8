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
