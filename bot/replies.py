"""Answering an interaction in time: quick work is answered directly, slow work after Discord's "thinking..."."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable
from typing import Any

import discord

log = logging.getLogger(__name__)


async def answer(
    interaction: discord.Interaction, work: Awaitable[str | dict[str, Any]], defer_after: float, ephemeral: bool = False
) -> None:
    """Send what `work` returns (content, or send_message keyword arguments), deferring if it is not ready in time.

    Errors raised before the defer reach the error handler while the answer can still be private; Discord
    drops interactions not answered within 3 seconds, so `defer_after` must stay well below that.
    """
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=defer_after)
    if not done:
        await interaction.response.defer(thinking=True, ephemeral=ephemeral)
    result = await task
    message = result if isinstance(result, dict) else {"content": result}
    if interaction.response.is_done():
        await interaction.followup.send(**message, ephemeral=ephemeral)
    else:
        await interaction.response.send_message(**message, ephemeral=ephemeral)


RESTARTING = "I'm restarting right now: please ask again in a minute."


async def tell_restarting(interaction: discord.Interaction) -> None:
    """The answer to a command that a stop refused or cut short (privately, whether or not it was deferred)."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(RESTARTING, ephemeral=True)
        else:
            await interaction.response.send_message(RESTARTING, ephemeral=True)
    except discord.HTTPException as e:  # too late for Discord, or the gateway already gone
        log.info("could not tell interaction %s that the bot restarts: %s", interaction.id, e)


INTERACTION_EDIT_WINDOW_S = 14 * 60  # Discord lets a bot edit its answer to an interaction for 15 minutes


class ChannelDisplay:
    """Progress in a message the bot posts in a channel, then edits."""

    def __init__(self, channel: discord.abc.Messageable):
        self.channel = channel
        self.message: discord.Message | None = None

    async def show(self, text: str) -> None:
        if self.message is None:
            self.message = await self.channel.send(text)
        else:
            await self.message.edit(content=text)


class InteractionDisplay:
    """Progress shown by editing the answer to a command; once that can no longer be edited, a channel message."""

    def __init__(self, interaction: discord.Interaction, first: str):
        self.interaction = interaction
        self.opened_at: float | None = None
        self.pending = first  # what open() sends, unless show() came first
        self.fallback: ChannelDisplay | None = None  # once the answer can no longer be edited

    async def open(self) -> None:
        """Answer the interaction with the latest text (jobs may report before the answer is sent)."""
        await self.interaction.response.send_message(self.pending)
        self.opened_at = time.monotonic()

    async def show(self, text: str) -> None:
        if self.opened_at is None:
            self.pending = text
            return
        if self.fallback is None and time.monotonic() - self.opened_at < INTERACTION_EDIT_WINDOW_S:
            try:
                await self.interaction.edit_original_response(content=text)
                return
            except discord.HTTPException:
                log.info("the answer can no longer be edited; progress continues in a channel message")
        if self.fallback is None:
            channel = self.interaction.channel
            if not isinstance(channel, discord.abc.Messageable):  # a channel without messages: nowhere to show it
                log.info("no channel to show the progress of interaction %s in", self.interaction.id)
                log.debug("the progress was: %s", text)  # may hold a sample of the server's text: only at DEBUG
                return
            self.fallback = ChannelDisplay(channel)
        await self.fallback.show(text)
