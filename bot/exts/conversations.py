"""Conversations: a reply to one of the bot's messages, or a mention of it in a thread, gets the next turn; and in
learned channels the bot chimes in now and then (/settings chime_in)."""

from __future__ import annotations

import logging
import random
import time

import discord
from discord.ext import commands

from core import ContinuoError, Turn

from ..bot import ContinuoBot
from ..conversations import Addressed, Context, addressed, conversation_request, recent_turns, reply_chain, typing
from ..decoding import turn_options
from ..text import MESSAGE_LIMIT, corpus_text, safe, shorten

log = logging.getLogger(__name__)

CHIME_IN_WAIT_S = 10.0  # a chime-in waits at most this long for asked-for answers being decoded


class Conversations(commands.Cog):
    def __init__(self, bot: ContinuoBot):
        self.bot = bot
        self.random = random.Random(bot.settings.chime_in_seed)  # the chime-in draws: repeatable under a seed
        self._chimed: dict[int, float] = {}  # channel -> when the bot last chimed in there (monotonic)

    async def next_turn(self, guild_id: int, turns: list[Turn], asked: bool = True) -> Turn:
        """The server's model's next turn after `turns` (core's Conversation), decoded together with the other
        requests for that model."""
        models = self.bot.models
        model = await models.model_for(guild_id)
        options = turn_options(self.bot.settings, await self.bot.store.guild_settings(guild_id))
        conversation, prompt, config = await models.run(conversation_request, model, turns, options)
        turn = Turn("")
        for _ in range(conversation.retries):  # a turn that ended before its first word is drawn again
            (text,) = await models.generate(guild_id, prompt, config, asked=asked)
            turn = conversation.turn_from(text)
            if turn.text:
                break
        return turn

    def context(self) -> Context:
        me = self.bot.user
        assert me is not None
        return Context(me.id, self.bot.settings.conversation_messages, self.bot.settings.conversation_tokens)

    async def answer(self, message: discord.Message, how: Addressed) -> None:
        """Reply to `message` with the next turn, "typing..." while it is decoded: its reply chain, or its thread's
        messages before it, are the conversation so far."""
        assert message.guild is not None
        try:
            async with typing(message.channel):
                turns = await (reply_chain if how == "reply" else recent_turns)(message, self.context())
                turn = await self.next_turn(message.guild.id, turns)
            text = shorten(safe(turn.text), MESSAGE_LIMIT) or "…"
        except ContinuoError as e:
            text = str(e)
        try:
            await message.reply(text, mention_author=False, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as e:  # e.g. a channel where the bot may read but not write
            log.warning("could not answer in channel %s: %s", message.channel.id, e)

    async def chime_in(self, message: discord.Message) -> None:
        """Now and then, after a member's message in a learned channel, add the next turn of the channel's talk.

        Only with the server's own model (its instant or trained one, never the bundled default), at the server's
        chance, and at most once per channel per `chime_in_cooldown_s`.
        """
        guild = message.guild
        assert guild is not None
        if message.type not in (discord.MessageType.default, discord.MessageType.reply):
            return
        if corpus_text(message.content, self.bot.user.id if self.bot.user else None) is None:
            return  # what the corpus skips (a command, a bare mention) is no one's turn either
        if self._cooling(message.channel.id):  # first, as it costs nothing: most messages of a lively channel
            return
        chance = (await self.bot.store.guild_settings(guild.id)).chime_in
        is_learned = getattr(self.bot.get_cog("Recording"), "is_learned", None)  # exts/recording.py keeps them
        if chance <= 0 or is_learned is None or not await is_learned(message):
            return
        if await self.bot.models.bundle_for(guild.id) == self.bot.models.default_model:
            return  # no model of its own: the bundled one would speak in someone else's voice
        if self._cooling(message.channel.id):  # again, checked and set with no await between: one at a time
            return
        if self.random.random() * 100 >= chance:
            return
        self._chimed[message.channel.id] = time.monotonic()
        await self.bot.models.after_asked(CHIME_IN_WAIT_S)  # unasked: the talk is read once nobody waits on an answer
        try:
            async with typing(message.channel):
                turn = await self.next_turn(guild.id, await recent_turns(message, self.context()), asked=False)
            if turn.text:
                await message.channel.send(
                    shorten(safe(turn.text), MESSAGE_LIMIT), allowed_mentions=discord.AllowedMentions.none()
                )
        except (ContinuoError, discord.HTTPException) as e:  # unasked: a failure is logged, never said
            log.warning("could not chime in in channel %s: %s", message.channel.id, e)

    def _cooling(self, channel_id: int) -> bool:
        """Whether the bot chimed in in that channel less than chime_in_cooldown_s ago."""
        last = self._chimed.get(channel_id)
        return last is not None and time.monotonic() - last < self.bot.settings.chime_in_cooldown_s

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        me = self.bot.user
        if message.guild is None or message.author.bot or me is None:  # never after a bot, or itself
            return
        how = addressed(message, me.id)
        if how is None:
            if me.id not in message.raw_mentions:  # a mention is answered by continue_text
                await self.chime_in(message)
            return
        if not (await self.bot.store.guild_settings(message.guild.id)).reply_on_mention:
            return
        if self.bot.cooldowns.hit(message.guild.id, message.author.id) is not None:
            log.debug("conversation turn for %s skipped: cooldown", message.author.id)
            return
        await self.answer(message, how)


async def setup(bot: ContinuoBot) -> None:
    await bot.add_cog(Conversations(bot))
