"""Members' voices on Discord: who may be imitated, how an imitation is marked, and one reusable webhook per channel.

An imitation is always marked as one, in the name it is posted under and in its first line, and never pings.
"""

from __future__ import annotations

import asyncio
import logging
import re

import discord

from core import ContinuoError

from .storage import Store
from .text import MESSAGE_LIMIT, safe, shorten

log = logging.getLogger(__name__)

WEBHOOK_NAME = "Continuo voices"  # the one webhook the bot makes per channel, found again by this name
IMITATION = "(Continuo imitation)"  # after the member's name, where the webhook shows it
NAME_LIMIT = 80  # characters Discord allows in a webhook's username
_CLYDE = re.compile("clyde", re.IGNORECASE)  # Discord refuses names with it (python-discord/bot PR 1009)


class NotShared(ContinuoError):
    """The member has not shared their voice in this server (or has stopped)."""


def imitation_name(display_name: str) -> str:
    """The name an imitation is posted under: the member's, marked, within Discord's limit and rules."""
    name = _CLYDE.sub(lambda m: m.group(0)[0] + "\u0406" + m.group(0)[2:], display_name)  # l -> a look-alike
    return f"{shorten(name, NAME_LIMIT - len(IMITATION) - 1)} {IMITATION}"


def mark(display_name: str) -> str:
    """The first line of every imitation: whose voice, and that Continuo wrote it."""
    return f"-# an imitation of {safe(display_name)} by Continuo, from their own messages (they shared their voice)"


def marked(display_name: str, text: str) -> str:
    """An imitation as it is posted: the mark, then the text, within one message."""
    head = mark(display_name) + "\n"
    return head + shorten(text, MESSAGE_LIMIT - len(head))


async def check_shared(store: Store, guild_id: int, member: discord.abc.User) -> None:
    """Raise NotShared (one line) unless the member shared their voice in this server."""
    if member.bot or not await store.voice_shared(guild_id, member.id):
        raise NotShared(
            f"{member.display_name} has not shared their voice in this server, so I cannot imitate them: "
            "only members who ran /voice share here can be imitated."
        )


def webhook_channel(channel: object) -> tuple[discord.TextChannel, discord.Thread | None] | None:
    """Where a webhook for `channel` lives (a thread's is its parent's), or None where webhooks cannot post."""
    if isinstance(channel, discord.Thread) and isinstance(channel.parent, discord.TextChannel):
        return channel.parent, channel
    if isinstance(channel, discord.TextChannel):
        return channel, None
    return None


class Webhooks:
    """One webhook per channel, made by the bot once and reused: found by name among the channel's, else created."""

    def __init__(self) -> None:
        self._by_channel: dict[int, discord.Webhook] = {}
        self._locks: dict[int, asyncio.Lock] = {}

    async def for_channel(self, channel: discord.TextChannel, bot_id: int) -> discord.Webhook:
        async with self._locks.setdefault(channel.id, asyncio.Lock()):
            hook = self._by_channel.get(channel.id)
            if hook is None:
                hooks = await channel.webhooks()
                hook = next(
                    (
                        h
                        for h in hooks
                        if h.name == WEBHOOK_NAME and h.user is not None and h.user.id == bot_id and h.token
                    ),
                    None,
                )
                if hook is None:
                    hook = await channel.create_webhook(name=WEBHOOK_NAME, reason="members' voices (/voice share)")
                self._by_channel[channel.id] = hook
            return hook

    def drop(self, channel_id: int) -> None:
        """Forget a webhook that no longer works (deleted by an admin): the next post finds or makes another."""
        self._by_channel.pop(channel_id, None)

    async def post(self, channel: object, bot_id: int, member: discord.abc.User, text: str) -> discord.Message:
        """Post `text` as an imitation of `member` through the channel's webhook: their name and avatar, marked."""
        where = webhook_channel(channel)
        if where is None:
            raise ValueError("webhooks cannot post here")
        parent, thread = where
        hook = await self.for_channel(parent, bot_id)
        try:
            return await _send(hook, member, text, thread)
        except discord.NotFound:  # deleted since: make another once
            self.drop(parent.id)
            return await _send(await self.for_channel(parent, bot_id), member, text, thread)


async def _send(
    hook: discord.Webhook, member: discord.abc.User, text: str, thread: discord.Thread | None
) -> discord.WebhookMessage:
    return await hook.send(
        marked(member.display_name, text),
        username=imitation_name(member.display_name),
        avatar_url=member.display_avatar.url,
        allowed_mentions=discord.AllowedMentions.none(),
        thread=thread if thread is not None else discord.utils.MISSING,
        wait=True,
    )
