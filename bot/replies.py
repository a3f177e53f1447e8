"""Answering an interaction in time: quick work is answered directly, slow work after Discord's "thinking..."."""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable

import discord


async def answer(interaction: discord.Interaction, work: Awaitable[str | dict[str, Any]], defer_after: float,
                 ephemeral: bool = False) -> None:
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
