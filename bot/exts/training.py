"""/train (in the background, with an edited progress message), /model info and /model rollback."""

from __future__ import annotations

import asyncio
import logging

import discord
from discord import app_commands
from discord.ext import commands

from core import BundleError, read_card

from ..bot import ContinuoBot
from ..checks import guild, guild_id, manage_server
from ..replies import InteractionDisplay
from ..text import duration, safe

log = logging.getLogger(__name__)


class Training(commands.Cog):
    model = app_commands.Group(name="model", description="This server's model", guild_only=True)

    def __init__(self, bot: ContinuoBot):
        self.bot = bot

    @app_commands.command(name="train", description="Train this server's model on its corpus, in the background")
    @app_commands.describe(
        epochs="passes over the corpus (more is slower; training stops early when it stops improving)"
    )
    @app_commands.guild_only()
    @app_commands.default_permissions(manage_guild=True)
    @manage_server
    async def train(
        self, interaction: discord.Interaction, epochs: app_commands.Range[int, 1, 100] | None = None
    ) -> None:
        display = InteractionDisplay(interaction, "🏋️ Preparing to train…")
        await self.bot.training.submit(
            guild_id(interaction), guild(interaction).name, interaction.user.id, interaction.channel_id, epochs, display
        )
        await display.open()

    @model.command(name="info", description="What this server's model learned from, when, and how well")
    async def info(self, interaction: discord.Interaction) -> None:
        server_id = guild_id(interaction)
        path = await self.bot.models.bundle_for(server_id)
        own = path != self.bot.models.default_model
        lines = [
            f"**Model of {safe(guild(interaction).name)}**: "
            + (
                "its own, trained on its corpus"
                if own
                else "the bundled default model (this server has not trained its own yet: /corpus, then /train)"
            )
        ]
        try:
            card = await asyncio.to_thread(read_card, path)
        except BundleError as e:
            lines.append(f"The model cannot be read: {e}")
        else:
            created = (
                discord.utils.format_dt(discord.utils.parse_time(card.created), "R") if card.created else "unknown"
            )
            ppl = f"{card.val_perplexity:.1f}" if card.val_perplexity is not None else "unknown"
            stopped = card.stopped or "completed"
            lines += [
                f"Trained {created} in {duration(card.train_seconds)}: {card.epochs} epochs ({stopped})",
                f"Learned from {card.tokens:,} tokens of {safe(card.corpus or 'text')}; "
                f"knows {card.vocab_size:,} words",
                f"Validation perplexity: {ppl} (lower is better)",
            ]
            if own:
                now = await self.bot.corpus.tokens(server_id)
                growth = (now / card.tokens - 1) if card.tokens else 0
                lines.append(f"The corpus now holds {now:,} tokens ({growth:+.0%} since then)")
        lines.append(await self.job_line(server_id))
        await interaction.response.send_message("\n".join(line for line in lines if line))

    @model.command(name="rollback", description="Go back to this server's previous model (Manage Server)")
    @manage_server
    async def rollback(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(thinking=True)  # fetching and loading the version may take seconds
        version = await self.bot.versions.rollback(guild_id(interaction))
        await self.bot.models.model_for(guild_id(interaction))  # loaded before the answer: the next request is quick
        ppl = (
            f"validation perplexity {version.val_perplexity:.1f}"
            if version.val_perplexity is not None
            else "validation perplexity unknown"
        )
        await interaction.followup.send(
            f"↩️ **{safe(guild(interaction).name)}** is back to its model trained "
            f"{discord.utils.format_dt(version.created_at, 'R')} ({ppl}, {version.tokens:,} tokens). "
            "/model rollback again goes further back; /train makes a new one."
        )

    async def job_line(self, guild_id: int) -> str:
        ticket = self.bot.training.ticket(guild_id)
        if ticket is not None:
            place = self.bot.training.place(ticket)
            if place:
                return f"A training is queued: place {place}."
            progress = ticket.latest
            return f"Training now: {progress.fraction:.0%} done." if progress else "Training now: starting."
        job = await self.bot.store.last_job(guild_id)
        if job is None or job.status == "succeeded":
            return ""
        when = discord.utils.format_dt(job.created_at, "R")
        return f"The last training (asked {when}) {job.status}: {safe(job.error)}. Run /train to try again."

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Tell servers whose training a restart interrupted (once: on_ready also follows reconnects); those a
        stop handed back carry on by themselves (bot.training.follower.JobFollower.follow_unfinished)."""
        jobs, self.bot.interrupted_jobs = self.bot.interrupted_jobs, []
        for job in jobs:
            if job.channel_id is None:
                continue
            try:
                await self.bot.get_partial_messageable(job.channel_id, guild_id=job.guild_id).send(
                    "⚠️ This server's model training was interrupted by a restart of the bot; the previous model "
                    "stays in use. Run /train to start again (it resumes from its last finished epoch)."
                )
            except discord.HTTPException:
                log.warning("could not report the interrupted training of guild %s", job.guild_id)


async def setup(bot: ContinuoBot) -> None:
    await bot.add_cog(Training(bot))
