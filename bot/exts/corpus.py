"""The /corpus commands (uploads, bundled corpora, learned channels, stats, export, clear) and /forget-me."""

from __future__ import annotations

import asyncio
import io
import logging
import time

import discord
from discord import app_commands
from discord.ext import commands

from core import ContinuoError, CorpusTooSmall, bundled_corpora, check_corpus_size, decode_text, find_corpus

from ..after_forget import after_removal
from ..bot import ContinuoBot
from ..checks import guild, guild_id, manage_server
from ..corpus_cap import CorpusFull, check_room, megabytes
from ..replies import InteractionDisplay, answer
from ..storage import CorpusEntry
from ..text import safe
from ..training.messages import HOW_TO_ADD_TEXT
from .recording import corpus_entry, recording

log = logging.getLogger(__name__)

NO_BASE = "none"


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
        after = await after_removal(self.cog.bot, interaction, "it", removed)  # an empty corpus: no instant model
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

    async def learned(self, guild_id: int) -> set[int]:
        return await recording(self.bot).learned(guild_id)

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
        await check_room(self.bot, guild_id(interaction), len(text))
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
                entry = corpus_entry(message, bot_id)
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
        after = await after_removal(self.bot, interaction, "them", removed)
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
        self.bot.models.stop_voice(guild_id(interaction), interaction.user.id)  # forgetting implies /voice stop
        removed = f"{messages:,} of your messages" + (f" and {files:,} files you uploaded" if files else "")
        after = await after_removal(self.bot, interaction, "them", messages + files)
        await interaction.followup.send(f"Removed {removed} from this server's corpus. {after}", ephemeral=True)


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
