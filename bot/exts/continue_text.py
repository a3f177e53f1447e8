"""Continuing text: /continue, the "Continue this message" menu, and replies to mentions."""

from __future__ import annotations

import logging
import re
import time

import discord
from discord import app_commands
from discord.ext import commands

from core import ContinuoError, VoiceTooSmall

from .. import metrics
from ..bot import ContinuoBot
from ..checks import cooldown, guild_id
from ..conversations import addressed
from ..decoding import decoding
from ..models import Voice
from ..replies import RESTARTING, answer
from ..text import format_continuations
from ..voices import Webhooks, check_shared, marked, webhook_channel

log = logging.getLogger(__name__)

MIN_VOICE_MESSAGES = 2  # one counted and one held out to weigh it (core's with_voice)
MAX_SEED_CHARS = 500  # longer seeds gain nothing: the model reads only its last few words


class NothingToContinue(ContinuoError):
    """A message without text."""


class ContinueText(commands.Cog):
    def __init__(self, bot: ContinuoBot):
        self.bot = bot
        self.menu = app_commands.ContextMenu(name="Continue this message", callback=self.continue_message)
        self.menu.guild_only = True
        self.menu.add_check(bot.cooldowns.check)
        self.voice_menu = app_commands.ContextMenu(name="Continue in their voice", callback=self.continue_in_voice)
        self.voice_menu.guild_only = True
        self.voice_menu.add_check(bot.cooldowns.check)
        self.webhooks = Webhooks()  # one per channel, for imitations of members who shared their voice

    async def cog_load(self) -> None:
        self.bot.tree.add_command(self.menu)
        self.bot.tree.add_command(self.voice_menu)

    async def cog_unload(self) -> None:
        self.bot.tree.remove_command(self.menu.name, type=self.menu.type)
        self.bot.tree.remove_command(self.voice_menu.name, type=self.voice_menu.type)

    async def continuation(
        self,
        guild_id: int,
        seed: str,
        words: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        variants: int = 1,
        voice: Voice | None = None,
    ) -> str:
        """The reply to a seed: the seed in bold, each continuation after it, safe to send as it is; with `voice`,
        by the server's model bent toward that member's own messages."""
        seed = seed.strip()[-MAX_SEED_CHARS:].rstrip()
        if not seed:
            raise NothingToContinue("there is no text to continue: give a few words")
        server = await self.bot.store.guild_settings(guild_id)
        config = decoding(
            self.bot.settings, server, words=words, temperature=temperature, top_p=top_p, variants=variants
        )
        return format_continuations(seed, await self.bot.models.generate(guild_id, seed, config, voice=voice))

    async def answer(self, interaction: discord.Interaction, reply) -> None:
        await answer(interaction, reply, self.bot.settings.defer_after_s)

    @app_commands.command(name="continue", description="Continue a sentence in this server's voice")
    @app_commands.describe(
        seed="the beginning of the text to continue",
        words="how many words to add",
        temperature="lower is safer, higher is wilder (default: the server's setting)",
        top_p="only sample among the likeliest words holding this much probability",
        variants="how many different continuations to show",
        as_="in the voice of a member who shared it (/voice share), posted under their name, marked as an imitation",
    )
    @app_commands.rename(as_="as")
    @app_commands.guild_only()
    @app_commands.check(cooldown)
    async def continue_(
        self,
        interaction: discord.Interaction,
        seed: app_commands.Range[str, 1, MAX_SEED_CHARS],
        words: app_commands.Range[int, 1, 200] | None = None,
        temperature: app_commands.Range[float, 0.05, 3.0] | None = None,
        top_p: app_commands.Range[float, 0.01, 1.0] | None = None,
        variants: app_commands.Range[int, 1, 5] = 1,
        as_: discord.Member | None = None,
    ) -> None:
        if as_ is not None:
            await self.imitate(interaction, as_, seed, words, temperature, top_p, variants)
            return
        await self.answer(
            interaction, self.continuation(guild_id(interaction), seed, words, temperature, top_p, variants)
        )

    async def imitate(
        self,
        interaction: discord.Interaction,
        member: discord.Member | discord.User,
        seed: str,
        words: int | None = None,
        temperature: float | None = None,
        top_p: float | None = None,
        variants: int = 1,
    ) -> None:
        """A continuation in a member's voice (only one who shared it here): posted through the channel's webhook
        under their name and avatar where the bot may manage webhooks, else as a reply; marked as an imitation."""
        server = guild_id(interaction)
        by_webhook = interaction.app_permissions.manage_webhooks and webhook_channel(interaction.channel) is not None

        async def decode() -> str:
            # checked before anything is decoded, within the answer's time: a busy store defers the answer
            # instead of letting Discord drop it, and a refusal that comes in time is still private
            await check_shared(self.bot.store, server, member)
            voice = Voice(server, member.id, tuple(await self.bot.store.member_texts(server, member.id)))
            if len(voice.texts) < MIN_VOICE_MESSAGES:
                raise VoiceTooSmall(
                    f"{member.display_name} has {len(voice.texts)} recorded message(s) in this server: at least "
                    f"{MIN_VOICE_MESSAGES} are needed to imitate them (messages in channels learned with "
                    "/corpus learn)."
                )
            text = await self.continuation(server, seed, words, temperature, top_p, variants, voice)
            await check_shared(self.bot.store, server, member)  # again: a /voice stop may have come meanwhile
            return text

        async def reply() -> str:
            return marked(member.display_name, await decode())

        async def post() -> str:
            text, me = await decode(), self.bot.user
            try:
                await self.webhooks.post(interaction.channel, me.id if me else 0, member, text)
            except discord.Forbidden:  # the permission was taken away since Discord told us: a plain message instead
                channel = interaction.channel
                assert isinstance(channel, discord.abc.Messageable)  # webhook_channel() said it is a text channel
                await channel.send(marked(member.display_name, text), allowed_mentions=discord.AllowedMentions.none())
            return f"Posted in {member.display_name}'s voice, marked as an imitation by Continuo."

        if by_webhook:
            await answer(interaction, post(), self.bot.settings.defer_after_s, ephemeral=True)
        else:
            await self.answer(interaction, reply())

    async def continue_message(self, interaction: discord.Interaction, message: discord.Message) -> None:
        if not message.content.strip():
            raise NothingToContinue("that message has no text to continue")
        await self.answer(interaction, self.continuation(guild_id(interaction), message.content))

    async def continue_in_voice(self, interaction: discord.Interaction, message: discord.Message) -> None:
        """Apps → Continue in their voice: the message continued in its author's voice, if they shared it here."""
        if not message.content.strip():
            raise NothingToContinue("that message has no text to continue")
        await self.imitate(interaction, message.author, message.content.strip()[-MAX_SEED_CHARS:])

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        """Continue the text of a message that mentions the bot, where the server allows it."""
        me = self.bot.user
        if message.guild is None or message.author.bot or me is None or me.id not in message.raw_mentions:
            return
        if addressed(message, me.id):
            return  # a turn of a conversation: exts/conversations.py answers it
        if not (await self.bot.store.guild_settings(message.guild.id)).reply_on_mention:
            return
        if self.bot.cooldowns.hit(message.guild.id, message.author.id) is not None:
            log.debug("mention from %s ignored: cooldown", message.author.id)
            return
        seed = re.sub(rf"<@!?{me.id}>", " ", message.content).strip()
        started, outcome = time.monotonic(), "ok"
        try:
            if self.bot.stopping:
                outcome, text = "restarting", RESTARTING
            else:
                text = await self.continuation(message.guild.id, seed)
        except NothingToContinue:
            outcome, text = "user_error", "Mention me with a few words and I'll continue them, or use /continue."
        except ContinuoError as e:
            outcome, text = "user_error", str(e)
        except Exception:
            metrics.COMMANDS.labels("mention", "error").inc()
            raise
        metrics.COMMANDS.labels("mention", outcome).inc()
        metrics.ANSWER_LATENCY.labels("mention").observe(time.monotonic() - started)
        try:
            await message.reply(text, mention_author=False, allowed_mentions=discord.AllowedMentions.none())
        except discord.HTTPException as e:  # e.g. a channel where the bot may read but not write
            log.warning("could not reply to a mention in channel %s: %s", message.channel.id, e)


async def setup(bot: ContinuoBot) -> None:
    await bot.add_cog(ContinueText(bot))
