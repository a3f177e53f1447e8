"""A server's corpus: uploads, learned channels (with edits and deletions), stats, export, clear, /forget-me."""

from __future__ import annotations

import asyncio
import io
import logging
import time

import discord
from discord import app_commands
from discord.ext import commands

from core import ContinuoError, CorpusTooSmall, bundled_corpora, check_corpus_size, decode_text, find_corpus

from ..bot import ContinuoBot
from ..checks import guild, guild_id, manage_server
from ..replies import InteractionDisplay, answer
from ..storage import CorpusEntry
from ..text import corpus_text, safe
from ..training.messages import HOW_TO_ADD_TEXT

log = logging.getLogger(__name__)

NO_BASE = "none"


class CorpusFull(ContinuoError):
    """The server's corpus reached its size limit."""


def megabytes(n: int | float) -> str:
    return f"{n / 1e6:.1f} MB" if n >= 1e5 else f"{n / 1e3:.0f} KB"


class ConfirmClear(discord.ui.View):
    """Two buttons; only the admin who asked can press them."""

    def __init__(self, cog: Corpus, owner_id: int, timeout: float = 60):
        super().__init__(timeout=timeout)
        self.cog, self.owner_id = cog, owner_id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.owner_id

    @discord.ui.button(label="Delete the corpus", style=discord.ButtonStyle.danger, custom_id="corpus-clear:confirm")
    async def confirm(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        self.stop()
        removed = await self.cog.bot.store.clear_corpus(guild_id(interaction))
        after = await self.cog.after_removal(interaction, "it")  # an empty corpus has no instant model: quick
        await interaction.response.edit_message(
            content=f"Deleted {removed:,} texts: this server's corpus is empty. {after}", view=None
        )

    @discord.ui.button(label="Keep it", style=discord.ButtonStyle.secondary, custom_id="corpus-clear:cancel")
    async def cancel(self, interaction: discord.Interaction, _button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(content="Nothing was deleted.", view=None)


class Corpus(commands.Cog):
    corpus = app_commands.Group(
        name="corpus",
        description="This server's text, which its model learns from",
        guild_only=True,
        default_permissions=discord.Permissions(manage_guild=True),
    )

    def __init__(self, bot: ContinuoBot):
        self.bot = bot
        self._learned: dict[int, set[int]] = {}  # guild -> learned channels, read once from the store
        self._full: set[int] = set()  # servers told that their corpus is full (told again after it had room)
        self._recording: dict[int, asyncio.Lock] = {}  # one check-then-record at a time per server, so the cap holds

    async def learned(self, guild_id: int) -> set[int]:
        if guild_id not in self._learned:
            self._learned[guild_id] = set(await self.bot.store.learned_channels(guild_id))
        return self._learned[guild_id]

    async def check_room(self, guild_id: int, adding: int) -> None:
        limit = self.bot.settings.max_corpus_mb * 1e6
        size = (await self.bot.store.corpus_stats(guild_id)).characters
        if size + adding > limit:
            raise CorpusFull(
                f"the corpus would grow to {megabytes(size + adding)}, over this bot's "
                f"{megabytes(limit)} limit; remove text with /corpus clear or /corpus unlearn first"
            )

    # --- uploads and bundled corpora
    @corpus.command(name="add", description="Add a UTF-8 text file to this server's corpus")
    @app_commands.describe(file="a plain text file (.txt), UTF-8")
    @manage_server
    async def add(self, interaction: discord.Interaction, file: discord.Attachment) -> None:
        limit = self.bot.settings.max_upload_mb * 1e6
        if file.size > limit:
            raise CorpusFull(
                f"{file.filename}: {megabytes(file.size)} is over the {megabytes(limit)} upload limit; "
                "split the file and add the parts"
            )
        await answer(interaction, self.add_file(interaction, file), self.bot.settings.defer_after_s)

    async def add_file(self, interaction: discord.Interaction, file: discord.Attachment) -> str:
        data = await file.read()
        text = await asyncio.to_thread(decode_text, data, file.filename)
        await self.check_room(guild_id(interaction), len(text))
        await self.bot.store.record([CorpusEntry(guild_id(interaction), interaction.user.id, text, name=file.filename)])
        tokens = await self.bot.corpus.tokens(guild_id(interaction))
        voice = await self.instant_after_adding(guild_id(interaction))
        return f"Added **{safe(file.filename)}** ({megabytes(len(data))}). {readiness(tokens)}{voice}"

    async def instant_after_adding(self, guild_id: int) -> str:
        """Count the server's instant model again when it is what the server is answered from; a line saying so."""
        models = self.bot.models
        if models.has_own_model(guild_id) and await models.trained_may_answer(guild_id):
            return ""  # its trained model answers; /train or automatic retraining learns the new text
        try:
            path = await models.rebuild_instant(guild_id)
        except Exception:  # noqa: BLE001 - the text is stored; only the instant model is missing
            log.exception("guild %s: the instant model could not be counted", guild_id)
            return ""
        return (
            "\nThis server now answers in its own voice: an instant model of its text answers until a /train."
            if path is not None
            else ""
        )

    @corpus.command(name="use", description="Start this server's corpus from a bundled one")
    @app_commands.describe(base="a bundled corpus, or 'none' to stop using one")
    @manage_server
    async def use(self, interaction: discord.Interaction, base: str) -> None:
        if base == NO_BASE:
            await self.bot.store.set_base_corpus(guild_id(interaction), None)
            await interaction.response.send_message("This server's corpus no longer starts from a bundled corpus.")
            return
        corpus = find_corpus(base)
        if corpus is None:
            names = ", ".join(c.name for c in bundled_corpora())
            raise ContinuoError(f"there is no bundled corpus named {base!r}; pick one of: {names}")
        await self.bot.store.set_base_corpus(guild_id(interaction), corpus.name)
        tokens = await self.bot.corpus.tokens(guild_id(interaction))
        await interaction.response.send_message(
            f"This server's corpus now starts from **{corpus.name}** ({safe(corpus.summary)}). {readiness(tokens)}"
        )

    @use.autocomplete("base")
    async def base_names(self, _interaction: discord.Interaction, typed: str) -> list[app_commands.Choice[str]]:
        names = [c.name for c in bundled_corpora()] + [NO_BASE]
        return [app_commands.Choice(name=n, value=n) for n in names if typed.lower() in n.lower()][:25]

    # --- channels
    @corpus.command(name="learn", description="Record new messages in a channel (and optionally its history)")
    @app_commands.describe(
        channel="the channel to learn from", backfill="also read up to this many past messages of the channel"
    )
    @manage_server
    async def learn(
        self,
        interaction: discord.Interaction,
        channel: discord.TextChannel,
        backfill: app_commands.Range[int, 0, 100_000] = 0,
    ) -> None:
        await self.bot.store.learn_channel(guild_id(interaction), channel.id)
        (await self.learned(guild_id(interaction))).add(channel.id)
        note = f"Learning from {channel.mention}: its new messages go into this server's corpus."
        if not backfill:
            await interaction.response.send_message(note)
            return
        display = InteractionDisplay(interaction, f"{note}\nReading its history…")
        await display.open()
        read, kept = await self.backfill(channel, min(backfill, self.bot.settings.max_backfill), note, display)
        tokens = await self.bot.corpus.tokens(guild_id(interaction))
        voice = await self.instant_after_adding(guild_id(interaction)) if kept else ""
        await display.show(f"{note}\nRead {read:,} past messages, recorded {kept:,}. {readiness(tokens)}{voice}")

    async def backfill(
        self, channel: discord.TextChannel, limit: int, note: str, display: InteractionDisplay
    ) -> tuple[int, int]:
        """Record up to `limit` past messages, newest first, showing progress as it goes."""
        read = kept = 0
        batch: list[CorpusEntry] = []
        last_shown = time.monotonic()
        bot_id = self.bot.user.id if self.bot.user else None  # connected by now: commands come through the gateway
        try:
            async for message in channel.history(limit=limit):
                read += 1
                entry = self.entry(message, bot_id)
                if entry is not None:
                    batch.append(entry)
                if len(batch) >= 200:
                    kept += await self.bot.store.record(batch)
                    batch = []
                if time.monotonic() - last_shown >= self.bot.settings.progress_interval_s:
                    last_shown = time.monotonic()
                    await display.show(f"{note}\nReading its history: {read:,} of up to {limit:,} messages…")
        except discord.Forbidden:
            raise ContinuoError(
                f"I can't read {channel.mention}'s history: give me the Read Message History "
                "permission there, then run /corpus learn again"
            ) from None
        finally:
            if batch:
                kept += await self.bot.store.record(batch)
        return read, kept

    @corpus.command(name="unlearn", description="Stop recording a channel's messages")
    @app_commands.describe(channel="the channel to stop learning from", forget="also delete what was recorded from it")
    @manage_server
    async def unlearn(
        self, interaction: discord.Interaction, channel: discord.TextChannel, forget: bool = False
    ) -> None:
        was = await self.bot.store.unlearn_channel(guild_id(interaction), channel.id)
        (await self.learned(guild_id(interaction))).discard(channel.id)
        text = f"Stopped learning from {channel.mention}." if was else f"{channel.mention} was not being learned."
        if not forget:
            await interaction.response.send_message(text)
            return
        await interaction.response.defer()  # counting the instant model again may take a few seconds
        removed = 0
        for recorded_in in {channel.id, *self.threads_of(channel)}:  # threads recorded before they were filed
            removed += await self.bot.store.forget_channel(guild_id(interaction), recorded_in)  # under the channel
        after = await self.after_removal(interaction, "them")
        await interaction.followup.send(
            f"{text} Deleted the {removed:,} messages recorded from it and its threads. {after}"
        )

    @staticmethod
    def threads_of(channel: discord.TextChannel) -> set[int]:
        """Threads under `channel` this process knows of (active ones, and archived ones it has seen)."""
        return {t.id for t in channel.guild.threads if t.parent_id == channel.id} | {t.id for t in channel.threads}

    # --- looking at it
    @corpus.command(name="stats", description="How much text this server's corpus holds")
    @manage_server
    async def stats(self, interaction: discord.Interaction) -> None:
        stats = await self.bot.store.corpus_stats(guild_id(interaction))
        tokens = await self.bot.corpus.tokens(guild_id(interaction))
        channels = ", ".join(f"<#{c}>" for c in stats.channels) or "none (use /corpus learn)"
        lines = [
            f"**Corpus of {safe(guild(interaction).name)}**",
            f"Recorded messages: {stats.messages:,} from {stats.authors:,} people",
            f"Uploaded files: {stats.files:,}",
            f"Size: {stats.tokens:,} tokens ({megabytes(stats.characters)}) of this server's own text",
            f"Base corpus: {stats.base or 'none (use /corpus use)'}",
            f"Learned channels: {channels}",
            readiness(tokens),
        ]
        await interaction.response.send_message("\n".join(lines), ephemeral=True)

    @corpus.command(name="export", description="Download this server's corpus as a text file")
    @manage_server
    async def export(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        text, _ = await self.bot.corpus.text(guild_id(interaction))
        if not text:
            raise ContinuoError("this server's corpus is empty; add text with /corpus add or /corpus learn")
        data = text.encode("utf-8")
        if len(data) > interaction.filesize_limit:
            raise CorpusFull(
                f"the corpus is {megabytes(len(data))}, over Discord's {megabytes(interaction.filesize_limit)} "
                "upload limit for this server"
            )
        await interaction.followup.send(
            f"This server's corpus ({megabytes(len(data))}):",
            ephemeral=True,
            file=discord.File(io.BytesIO(data), f"corpus-{guild_id(interaction)}.txt"),
        )

    @corpus.command(name="clear", description="Delete this server's whole corpus (asks first)")
    @manage_server
    async def clear(self, interaction: discord.Interaction) -> None:
        stats = await self.bot.store.corpus_stats(guild_id(interaction))
        await interaction.response.send_message(
            f"Delete all {stats.messages:,} recorded messages and {stats.files:,} uploaded files of this server's "
            "corpus? This cannot be undone.",
            view=ConfirmClear(self, interaction.user.id),
            ephemeral=True,
        )

    # --- anyone
    @app_commands.command(name="forget-me", description="Remove your messages from this server's corpus")
    @app_commands.guild_only()
    async def forget_me(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)  # the instant model is counted again
        messages, files = await self.bot.store.forget_author(guild_id(interaction), interaction.user.id)
        removed = f"{messages:,} of your messages" + (f" and {files:,} files you uploaded" if files else "")
        after = await self.after_removal(interaction, "them")
        await interaction.followup.send(f"Removed {removed} from this server's corpus. {after}", ephemeral=True)

    # --- after text was removed: no answer from a model that saw it
    async def after_removal(self, interaction: discord.Interaction, them: str) -> str:
        """Serve the server from a model that never saw the removed text, queue a retraining without it; say so."""
        server_id, models = guild_id(interaction), self.bot.models
        await models.forgot(server_id)  # from now on: the instant model counted without it, or the default one
        try:
            instant = await models.rebuild_instant(server_id)
        except Exception:  # noqa: BLE001 - the default model, which holds no server's text, answers meanwhile
            log.exception("guild %s: the instant model could not be counted again", server_id)
            instant = None
        serving = (
            "its instant model, counted again without " + them
            if instant is not None
            else "the bundled default model, which holds no server's text"
        )
        return f"This server now answers from {serving}; {await self.retrain_without(interaction, them)}"

    async def retrain_without(self, interaction: discord.Interaction, it: str) -> str:
        training, server_id = self.bot.training, guild_id(interaction)
        ticket = training.ticket(server_id)
        if ticket is not None and training.place(ticket) > 0:
            return f"the retraining already queued (place {training.place(ticket)}) reads the corpus without {it}."
        if ticket is not None:  # it read the corpus before: its model is not served, and it trains again
            if ticket.job is not None:
                ticket.job.cancel()  # this machine's job stops now; a cluster's finds out when it ends
            return f"the training that was running had read {it}, so it starts again without {it}."
        try:
            ticket = await training.submit(server_id, guild(interaction).name, 0, interaction.channel_id)
        except CorpusTooSmall:
            return "the corpus is now too small to train a model on; add text and run /train."
        except ContinuoError as e:
            return f"a retraining was not queued ({e})."
        place = training.place(ticket)
        return (
            f"a retraining without {it} has started."
            if place == 0
            else f"a retraining without {it} is queued (place {place})."
        )

    # --- recording channels
    def entry(self, message: discord.Message, bot_id: int | None) -> CorpusEntry | None:
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
        return CorpusEntry(
            message.guild.id, message.author.id, text, message.id, channel_id, created_at=message.created_at
        )

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
        entry = self.entry(message, self.bot.user.id)
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
            await self.check_room(guild_id, adding)
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
        entry = self.entry(payload.message, self.bot.user.id)
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


def readiness(tokens: int) -> str:
    """Whether the corpus is big enough to train on, as a sentence; core words the shortfall."""
    try:
        check_corpus_size(tokens, HOW_TO_ADD_TEXT)
    except CorpusTooSmall as e:
        line = str(e)
        return f"{line[:1].upper()}{line[1:]}."
    return f"The corpus has {tokens:,} tokens: enough to /train."


async def setup(bot: ContinuoBot) -> None:
    await bot.add_cog(Corpus(bot))
