"""Conversations on Discord: the turns before a message (its reply chain or thread), read through the API each time."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Sequence
from typing import Literal

import discord

from core import Conversation, GenerationConfig, LanguageModel, Turn

from .text import count_tokens, turn_text

log = logging.getLogger(__name__)

Addressed = Literal["reply", "thread"]


def _followed(reference: discord.MessageReference | None, message: discord.Message) -> bool:
    """A reply within the message's own channel: forwards and links to other channels or servers are never read."""
    return (
        reference is not None
        and reference.type is discord.MessageReferenceType.reply
        and reference.message_id is not None
        and reference.channel_id == message.channel.id
        and (reference.guild_id is None or message.guild is not None and reference.guild_id == message.guild.id)
    )


def addressed(message: discord.Message, bot_id: int) -> Addressed | None:
    """How a member's message asks the bot for the next turn: "reply" (it answers one of the bot's messages in its
    channel), "thread" (it mentions the bot in a thread), or None."""
    reference = message.reference
    if _followed(reference, message):
        assert reference is not None
        replied = reference.resolved  # Discord sends the message replied to with the reply
        if isinstance(replied, discord.Message) and replied.author.id == bot_id:
            return "reply"
    if bot_id in message.raw_mentions and isinstance(message.channel, discord.Thread):
        return "thread"
    return None


class Context:
    """The visible messages before one, newest first, within a number of messages and of tokens."""

    def __init__(self, bot_id: int, max_messages: int, max_tokens: int):
        self.bot_id, self.max_messages, self.max_tokens = bot_id, max_messages, max_tokens
        self.turns: list[Turn] = []  # newest first
        self.read = 0  # messages read
        self.tokens = 0

    @property
    def full(self) -> bool:
        return self.read >= self.max_messages or self.tokens >= self.max_tokens

    def add(self, message: discord.Message) -> None:
        """One message, older than those added before; other bots' messages are no one's turn."""
        self.read += 1
        own = message.author.id == self.bot_id
        if message.author.bot and not own:
            return
        text = turn_text(message.content, own=own)
        if not text:
            return
        tokens = count_tokens(text)
        if self.turns and self.tokens + tokens > self.max_tokens:
            self.tokens = self.max_tokens  # the next turn back would not fit: the context ends here
            return
        self.tokens += tokens
        self.turns.append(Turn(text, None if own else message.author.display_name))

    def oldest_first(self) -> list[Turn]:
        return self.turns[::-1]


async def reply_chain(message: discord.Message, context: Context) -> list[Turn]:
    """The turns of `message` and the messages it replies to, one link after another, oldest first.

    Each link comes with the reply Discord sent or fetches from the API (nothing is kept between messages,
    so a restart loses no chain); the chain ends at a deleted or unreadable message, at a link to another
    channel, or at the context's limits.
    """
    current = message
    context.add(current)
    while not context.full and _followed(current.reference, message):
        reference = current.reference
        assert reference is not None and reference.message_id is not None
        earlier = reference.resolved
        if earlier is None:  # Discord sends only one link with a message; older ones are fetched
            try:
                earlier = await message.channel.fetch_message(reference.message_id)
            except discord.HTTPException as e:  # deleted (404), or no Read Message History (403)
                log.info("a reply chain in channel %s ends at %s: %s", message.channel.id, reference.message_id, e)
                break
        if not isinstance(earlier, discord.Message):  # deleted
            break
        context.add(earlier)
        current = earlier
    return context.oldest_first()


async def recent_turns(message: discord.Message, context: Context) -> list[Turn]:
    """The turns of `message` and of its channel's (or thread's) messages before it, oldest first."""
    context.add(message)
    try:
        async for earlier in message.channel.history(limit=context.max_messages - 1, before=message):
            if context.full:
                break
            context.add(earlier)
    except discord.HTTPException as e:  # no Read Message History: the message alone
        log.info("channel %s's history cannot be read: %s", message.channel.id, e)
    return context.oldest_first()


def conversation_request(
    model: LanguageModel, turns: Sequence[Turn], options: dict
) -> tuple[Conversation, str, GenerationConfig]:
    """The conversation, the prompt of its next turn and its decoding options (run on an inference thread: an older
    bundle's turn format is inferred with a forward pass)."""
    conversation = Conversation(model, list(turns))
    prompt, config = conversation.request(**options)
    return conversation, prompt, config


@contextlib.asynccontextmanager
async def typing(channel: discord.abc.Messageable) -> AsyncIterator[None]:
    """Discord's "typing..." while the block runs; a channel that refuses it only goes without."""
    try:
        indicator = channel.typing()
        await indicator.__aenter__()
    except discord.HTTPException as e:
        log.info("no typing indicator: %s", e)
        yield
        return
    try:
        yield
    finally:
        await indicator.__aexit__(None, None, None)
