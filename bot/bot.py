"""The Discord bot: intents, storage, models and training wired together, extensions loaded, commands synced."""

from __future__ import annotations

import logging
from pathlib import Path

import discord
from discord.ext import commands

from core import JobRunner, ModelStore, open_bundle_storage

from .cluster import ClusterTraining, job_runner
from .cooldowns import Cooldowns
from .instant import InstantModels
from .models import ModelService
from .replies import ChannelDisplay
from .server_corpus import ServerCorpus
from .settings import BotSettings
from .storage import Store, TrainingJobRecord, open_store
from .storage.versions import ModelVersions
from .training import RetrainPolicy, TrainingQueue

log = logging.getLogger(__name__)

EXTENSIONS = (
    "bot.exts.errors",
    "bot.exts.continue_text",
    "bot.exts.conversations",
    "bot.exts.corpus",
    "bot.exts.training",
    "bot.exts.server_settings",
)


def intents() -> discord.Intents:
    """Servers, their messages, and the text of those messages (to learn from channels)."""
    wanted = discord.Intents.none()
    wanted.guilds = wanted.guild_messages = wanted.message_content = True
    return wanted


class ContinuoBot(commands.Bot):
    """Slash commands only: prefix commands are switched off and mentions are handled by a cog."""

    def __init__(
        self,
        settings: BotSettings | None = None,
        *,
        store: Store | None = None,
        runner: JobRunner | None = None,
        default_model: Path | None = None,
        **options,
    ):
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=intents(),
            allowed_mentions=discord.AllowedMentions.none(),
            **options,
        )
        self.settings = settings or BotSettings()
        self.store: Store = store or open_store(
            self.settings.database,  # SQLite by default, or PostgreSQL
            busy_timeout_s=self.settings.database_busy_timeout_s,
            write_retry_s=self.settings.database_write_retry_s,
        )
        default = default_model or self.settings.default_model or ModelStore().resolve(None)
        self.versions = ModelVersions(
            self.store,
            open_bundle_storage(self.settings.model_storage, self.settings.model_cache_dir),
            self.settings.model_versions_kept,
            self.settings.model_poll_s,
        )
        self.corpus = ServerCorpus(self.store)
        self.models = ModelService(
            self.settings.guilds_dir,
            default,
            self.settings.model_cache_size,
            self.settings.inference_threads,
            self.settings.max_batch_rows,
            self.versions,
            cache_mb=self.settings.model_cache_mb,
            instant=InstantModels(self.settings.guilds_dir, self.corpus),
        )

        def channel_display(channel_id: int) -> ChannelDisplay:
            return ChannelDisplay(self.get_partial_messageable(channel_id))

        self.training: TrainingQueue | ClusterTraining
        if self.settings.job_runner == "coordinator":  # one of a cluster's processes: the coordinator trains
            self.training = ClusterTraining(
                self.store, self.models, self.settings, self.corpus, channel_display, lambda: self.guilds
            )
            self.add_listener(self.training.follow_unfinished, "on_ready")  # after a restart too
        else:
            self.training = TrainingQueue(
                self.store, self.models, self.settings, runner or job_runner(self.settings), self.corpus
            )
        self.retraining = RetrainPolicy(
            self.store, self.corpus, self.training, self.settings.retrain_check_s, channel_display
        )
        self.cooldowns = Cooldowns(self.settings.cooldown_uses, self.settings.cooldown_seconds)
        self.interrupted_jobs: list[TrainingJobRecord] = []  # found at start-up; reported once connected

    async def setup_hook(self) -> None:
        await self.models.warm_up()  # before connecting: importing TensorFlow later would stall the event loop
        await self.store.open()
        await self.versions.start()  # follow model switches made by other processes
        if self.settings.job_runner != "coordinator":  # a cluster's jobs outlive its bot processes
            self.interrupted_jobs = await self.store.interrupt_unfinished_jobs()
        for extension in EXTENSIONS:
            await self.load_extension(extension)
        if self.settings.sync_commands:
            synced = await self.tree.sync()
            log.info("synced %d application commands", len(synced))
            if self.settings.sync_guild:
                guild = discord.Object(self.settings.sync_guild)
                self.tree.copy_global_to(guild=guild)
                await self.tree.sync(guild=guild)

    async def on_message(self, message: discord.Message) -> None:
        """No prefix commands: the cogs' listeners see every message."""

    async def close(self) -> None:
        await self.training.close()  # before the store closes: jobs are recorded as interrupted
        await super().close()
        self.models.close()
        await self.versions.close()
        await self.store.close()
