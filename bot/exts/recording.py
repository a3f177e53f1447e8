"""Recording learned channels: new messages go into the corpus (within its size cap), edits and deletions follow."""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import discord
from discord.ext import commands

from ..bot import ContinuoBot
from ..corpus_cap import CorpusFull, check_room, megabytes
from ..storage import CorpusEntry
from ..text import corpus_text

log = logging.getLogger(__name__)


def corpus_entry(message: discord.Message, bot_id: int | None) -> CorpusEntry | None:
    """The corpus entry of a message, or None for bots, system messages, commands and bare mentions."""
    if message.author.bot or message.webhook_id or message.guild is None:
        return None
    if message.type not in (discord.MessageType.default, discord.MessageType.reply):
        return None
    text = corpus_text(message.content, bot_id)
    if text is None:
        return None
    # a thread's messages are filed under its channel, so unlearning the channel forgets them too
    channel_id = message.channel.parent_id if isinstance(message.channel, discord.Thread) else message.channel.id
    return CorpusEntry(message.guild.id, message.author.id, text, message.id, channel_id, created_at=message.created_at)


class Recording(commands.Cog):
    """Keeps learned channels' messages in the corpus as they are sent, edited and deleted."""

    def __init__(self, bot: ContinuoBot):
        self.bot = bot
        self._learned: dict[int, set[int]] = {}  # guild -> learned channels, read once from the store
        self._full: set[int] = set()  # servers told that their corpus is full (told again after it had room)
        self._recording: dict[int, asyncio.Lock] = {}  # one check-then-record at a time per server, so the cap holds

    async def learned(self, guild_id: int) -> set[int]:
        """The server's learned channels, read once from the store; /corpus learn and unlearn change this set."""
        if guild_id not in self._learned:
            self._learned[guild_id] = set(await self.bot.store.learned_channels(guild_id))
        return self._learned[guild_id]

    async def is_learned(self, message: discord.Message) -> bool:
        if message.guild is None:
            return False
        learned = await self.learned(message.guild.id)
        return message.channel.id in learned or getattr(message.channel, "parent_id", None) in learned

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.guild is None or self.bot.user is None or message.author.bot:
            return
        if not await self.is_learned(message):
            return
        entry = corpus_entry(message, self.bot.user.id)
        if entry is None:
            return
        async with self._recording.setdefault(message.guild.id, asyncio.Lock()):  # messages come in concurrently
            if not await self.room_for(message, len(entry.text)):
                return
            await self.bot.store.record([entry])
        if not self.bot.stopping:  # a stop starts no training
            await self.bot.retraining.corpus_grew(message.guild.id, message.guild.name)

    async def room_for(self, message: discord.Message, adding: int) -> bool:
        """At the size cap, recording pauses (nothing is dropped) and the channel is told once."""
        if message.guild is None:
            return False
        guild_id = message.guild.id
        try:
            await check_room(self.bot, guild_id, adding)
        except CorpusFull:
            if guild_id not in self._full:
                self._full.add(guild_id)
                limit = megabytes(self.bot.settings.max_corpus_mb * 1e6)
                try:
                    await message.channel.send(
                        f"⚠️ This server's corpus is full ({limit}): new messages are no longer recorded. An admin "
                        "can make room with /corpus unlearn forget:true or /corpus clear; recording resumes then."
                    )
                except discord.HTTPException:
                    log.warning("guild %s: could not say that its corpus is full", guild_id)
            return False
        self._full.discard(guild_id)
        return True

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        if payload.guild_id is None or self.bot.user is None:
            return
        if payload.message.author.bot or payload.message.webhook_id:
            return  # never recorded (corpus_entry): the bot's own answers, edited as they fill in, cost no write
        entry = corpus_entry(payload.message, self.bot.user.id)
        if entry is None:  # edited into a command or nothing: it leaves the corpus
            await self.bot.store.remove_messages(payload.guild_id, [payload.message_id])
        else:  # only messages recorded before are updated
            await self.bot.store.edit_message(payload.guild_id, payload.message_id, entry.text)

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            await self.bot.store.remove_messages(payload.guild_id, [payload.message_id])

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        if payload.guild_id is not None:
            await self.bot.store.remove_messages(payload.guild_id, list(payload.message_ids))

    @commands.Cog.listener()
    async def on_guild_channel_delete(self, channel: discord.abc.GuildChannel) -> None:
        if await self.bot.store.unlearn_channel(channel.guild.id, channel.id):
            (await self.learned(channel.guild.id)).discard(channel.id)


def recording(bot: commands.Bot) -> Recording:
    """The bot's recording cog (the /corpus commands change its learned channels)."""
    cog = bot.get_cog("Recording")
    assert cog is not None, "bot.exts.recording is not loaded"
    return cast(Recording, cog)  # not isinstance: load_extension executes the module afresh, with its own class


async def setup(bot: ContinuoBot) -> None:
    await bot.add_cog(Recording(bot))
