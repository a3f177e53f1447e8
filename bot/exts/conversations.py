"""Conversations: a reply to one of the bot's messages, or a mention of it in a thread, gets the next turn."""

from __future__ import annotations

import logging

import discord
from discord.ext import commands

from core import ContinuoError, Turn

from ..bot import ContinuoBot
from ..conversations import Addressed, Context, addressed, conversation_request, reply_chain, thread_turns, typing
from ..decoding import turn_options
from ..text import MESSAGE_LIMIT, safe, shorten

log = logging.getLogger(__name__)


class Conversations(commands.Cog):
    def __init__(self, bot: ContinuoBot):
        self.bot = bot

    async def next_turn(self, guild_id: int, turns: list[Turn]) -> Turn:
        """The server's model's next turn after `turns` (core's Conversation), decoded together with the other
        requests for that model."""
        models = self.bot.models
        model = await models.model_for(guild_id)
        options = turn_options(self.bot.settings, await self.bot.store.guild_settings(guild_id))
        conversation, prompt, config = await models.run(conversation_request, model, turns, options)
        turn = Turn("")
        for _ in range(conversation.retries):  # a turn that ended before its first word is drawn again
            (text,) = await models.generate(guild_id, prompt, config)
            turn = conversation.turn_from(text)
            if turn.text:
                break
        return turn

    async def context(self, message: discord.Message, how: Addressed) -> list[Turn]:
        """The conversation so far, up to the message: its reply chain, or its thread's messages before it."""
        me = self.bot.user
        assert me is not None
        settings = self.bot.settings
        context = Context(me.id, settings.conversation_messages, settings.conversation_tokens)
        return await (reply_chain if how == "reply" else thread_turns)(message, context)

    async def answer(self, message: discord.Message, how: Addressed) -> None:
        """Reply to `message` with the next turn, "typing..." while it is decoded."""
        assert message.guild is not None
        try:
            async with typing(message.channel):
                turn = await self.next_turn(message.guild.id, await self.context(message, how))
            text = shorten(safe(turn.text), MESSAGE_LIMIT) or "…"
        except ContinuoError as e:
            text = str(e)
        try:
            await message.reply(text, mention_author=False, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as e:  # e.g. a channel where the bot may read but not write
            log.warning("could not answer in channel %s: %s", message.channel.id, e)

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if message.guild is None or message.author.bot or me is None:
            return
        how = addressed(message, me.id)
        if how is None:
            return
        if not (await self.bot.store.guild_settings(message.guild.id)).reply_on_mention:
            return
        if self.bot.cooldowns.hit(message.guild.id, message.author.id) is not None:
            log.debug("conversation turn for %s skipped: cooldown", message.author.id)
            return
        await self.answer(message, how)


async def setup(bot: ContinuoBot) -> None:
    await bot.add_cog(Conversations(bot))
