"""The Discord bot: intents, storage, models and training wired together, extensions loaded, commands synced."""

from __future__ import annotations

import asyncio
import logging
import math
import time
from pathlib import Path

import discord
from discord import app_commands
from discord.ext import commands

from core import JobRunner, ModelStore, open_bundle_storage

from . import logs, metrics
from .cooldowns import Cooldowns
from .coordinator import Coordinator, local_publisher, make_runner
from .corpus_cap import CorpusCap
from .forgetting import migrate_forget_markers
from .health import HealthServer, NotReady, storage_check, store_check
from .instant import InstantModels
from .models import ModelService
from .replies import ChannelDisplay, tell_restarting
from .server_corpus import ServerCorpus
from .settings import BotSettings
from .storage import Store, TrainingJobRecord, open_store
from .storage.versions import ModelVersions
from .training import JobFollower, RetrainPolicy, Trainings

log = logging.getLogger(__name__)

EXTENSIONS = (
    "bot.exts.errors",
    "bot.exts.continue_text",
    "bot.exts.conversations",
    "bot.exts.corpus",
    "bot.exts.recording",
    "bot.exts.training",
    "bot.exts.server_settings",
    "bot.exts.voices",
)


def intents() -> discord.Intents:
    """Servers, their messages, and the text of those messages (to learn from channels)."""
    wanted = discord.Intents.none()
    wanted.guilds = wanted.guild_messages = wanted.message_content = True
    return wanted


DRAIN_QUIET_S = 0.3  # on a stop, the gateway counts as drained once no event came for this long
DRAIN_QUIET_MAX_S = 2.0  # but a busy bot waits for that at most this long after its work in flight is done
CLOSE_RESERVE_S = 5.0  # of the stop timeout, kept for handing back trainings and closing after the drain


def command_name(interaction: discord.Interaction) -> str:
    """The label of a command in metrics: its full name (a closed set), never anything a user typed."""
    command = interaction.command
    return command.qualified_name if command is not None else "unknown"


class ContinuoTree(app_commands.CommandTree):
    """Once the bot is stopping, new commands are answered "restarting"; running ones are followed until done."""

    async def interaction_check(self, interaction: discord.Interaction, /) -> bool:
        bot = self.client
        logs.guild_id.set(interaction.guild_id)  # this runs on the command's own task: its logs carry both
        logs.interaction_id.set(interaction.id)
        if not isinstance(bot, ContinuoBot):
            return True
        if interaction.type is discord.InteractionType.autocomplete:
            return not bot.stopping
        if bot.stopping:
            metrics.COMMANDS.labels(command_name(interaction), "restarting").inc()
            await tell_restarting(interaction)
            return False
        bot.follow_interaction(interaction)
        return True


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
            tree_cls=ContinuoTree,
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
        self.corpus_cap = CorpusCap(self.store, self.settings.max_corpus_mb)
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

        coordinator = None  # a cluster's trains its jobs (CONTINUO_BOT_JOB_RUNNER=coordinator); else this process's
        if self.settings.job_runner != "coordinator":
            runner = runner or make_runner(self.settings, self.settings.job_runner)
            publish = local_publisher(self.models)
            coordinator = Coordinator(self.store, runner, self.settings, publish, self.corpus, folders=self.models)
        follower = JobFollower(
            self.store, self.models, self.settings, self.corpus, channel_display, lambda: self.guilds, coordinator
        )
        self.add_listener(follower.follow_unfinished, "on_ready")  # after a restart too
        self.training: Trainings = follower
        self.retraining = RetrainPolicy(
            self.store, self.corpus, self.training, self.settings.retrain_check_s, channel_display
        )
        self.cooldowns = Cooldowns(self.settings.cooldown_uses, self.settings.cooldown_seconds)
        self.interrupted_jobs: list[TrainingJobRecord] = []  # found at start-up; reported once connected
        self.stopping = False  # a stop began: new commands are answered "restarting"
        self._interactions: dict[int, tuple[discord.Interaction, asyncio.Task]] = {}  # commands being handled
        self._events: set[asyncio.Task] = set()  # event handlers running (recording messages, mentions)
        self._last_event = time.monotonic()
        self._watcher: asyncio.Task | None = None
        self._closed = False
        self.health: HealthServer | None = None
        if self.settings.metrics_port is not None:
            self.health = HealthServer(
                self.settings.metrics_host,
                self.settings.metrics_port,
                {
                    "discord": self._discord_ready,
                    "database": store_check(self.store),
                    "model storage": storage_check(self.versions.storage),
                },
            )

    async def setup_hook(self) -> None:
        if self.health is not None:  # first: /healthz answers while the rest starts, /readyz says what is missing
            await self.health.start()
        self._watcher = asyncio.create_task(self._watch(), name="continuo-watch")
        await self.models.warm_up()  # before connecting: importing TensorFlow later would stall the event loop
        await self.store.open()
        await migrate_forget_markers(self.settings.guilds_dir, self.store)  # data folders from before the store held it
        await self.versions.start()  # follow model switches made by other processes
        if self.settings.job_runner != "coordinator":  # a cluster's jobs outlive its bot processes
            # a job still marked running was cut short by a crash: reported, not retried (it may be the cause);
            # those a stop handed back are queued: this process's coordinator resumes them from their checkpoint
            self.interrupted_jobs = await self.store.interrupt_unfinished_jobs(status="running")
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

    # --- following work in flight, for a stop that loses nothing
    def follow_interaction(self, interaction: discord.Interaction) -> None:
        """Note a command being handled (called on its own task) and when it arrived, for metrics and stops."""
        interaction.extras["started"] = time.monotonic()
        task = asyncio.current_task()
        if task is not None:
            self._interactions[interaction.id] = (interaction, task)
            task.add_done_callback(lambda _: self._interactions.pop(interaction.id, None))

    def count_command(self, interaction: discord.Interaction, outcome: str) -> None:
        name = command_name(interaction)
        metrics.COMMANDS.labels(name, outcome).inc()
        started = interaction.extras.get("started")
        if started is not None:
            metrics.ANSWER_LATENCY.labels(name).observe(time.monotonic() - started)

    async def on_app_command_completion(self, interaction: discord.Interaction, _command) -> None:
        self.count_command(interaction, "ok")

    def dispatch(self, event_name: str, /, *args, **kwargs) -> None:
        if self.loop is discord.utils.MISSING:  # closed: discord.py would make each handler's coroutine, fail to
            return  # schedule it, raise to the gateway's reader and warn that the coroutine was never awaited
        self._last_event = time.monotonic()
        super().dispatch(event_name, *args, **kwargs)

    async def _run_event(self, coro, event_name: str, *args, **kwargs) -> None:
        logs.note_event(args)  # on the handler's own task: its logs carry the server id
        await super()._run_event(coro, event_name, *args, **kwargs)

    def _schedule_event(self, coro, event_name: str, *args, **kwargs) -> asyncio.Task:
        task = super()._schedule_event(coro, event_name, *args, **kwargs)
        self._events.add(task)
        task.add_done_callback(self._events.discard)
        return task

    def _busy(self) -> bool:
        current = asyncio.current_task()
        return bool(self._interactions) or any(t is not current for t in self._events)

    async def shutdown(self, timeout_s: float | None = None) -> None:
        """Stop without losing anything, within `timeout_s` (default: the stop_timeout_s setting).

        Running trainings are handed back first (queued again: the next start resumes them from their last
        checkpoint), so that the drain has the CPU to itself and no job is cut short half-way through its
        publication at the end. New commands are answered "restarting"; commands being handled finish (those
        still running near the end are cut short with a "restarting" answer); messages the gateway delivered
        are recorded; then the gateway, the database and the rest are closed.
        """
        loop = asyncio.get_running_loop()
        timeout_s = self.settings.stop_timeout_s if timeout_s is None else timeout_s
        deadline = loop.time() + timeout_s
        drain_until = deadline - min(CLOSE_RESERVE_S, timeout_s * 0.3)
        self.stopping = True
        log.info("stopping: finishing the work in flight (at most %.0f s)", timeout_s)
        await self.training.close(hand_back=True)
        idle_since: float | None = None  # nothing in flight since then
        while loop.time() < drain_until:
            if not self._busy():
                idle_since = idle_since if idle_since is not None else loop.time()
                quiet = time.monotonic() - self._last_event >= DRAIN_QUIET_S
                if quiet or loop.time() - idle_since >= DRAIN_QUIET_MAX_S:
                    break
            else:
                idle_since = None
            await asyncio.sleep(0.05)
        await self._cut_short()
        await self.close()
        log.info("stopped")

    async def _cut_short(self) -> None:
        """Commands still running past the drain: stopped, and their users told to ask again."""
        left = list(self._interactions.values())
        for _, task in left:
            task.cancel()
        if left:
            await asyncio.wait([task for _, task in left], timeout=2.0)
        for interaction, _ in left:
            self.count_command(interaction, "restarting")
            await tell_restarting(interaction)
        current = asyncio.current_task()
        events = [t for t in self._events if t is not current]
        if events:  # handlers of delivered messages (recording them): a last chance before the store closes
            await asyncio.wait(events, timeout=2.0)

    # --- health and metrics
    def shard_states(self) -> dict[int, tuple[bool, float]]:
        """Shard -> (connected, heartbeat latency in seconds)."""
        shards = getattr(self, "shards", None)
        if isinstance(shards, dict):
            return {i: (not info.is_closed(), info.latency) for i, info in shards.items()}
        ws = getattr(self, "ws", None)
        return {self.shard_id or 0: (ws is not None and ws.open and not self.is_closed(), self.latency)}

    async def _discord_ready(self) -> None:
        if self.stopping:
            raise NotReady("stopping")
        if not self.is_ready() or self.is_closed():
            raise NotReady("not connected yet")
        down = [str(shard) for shard, (connected, _) in self.shard_states().items() if not connected]
        if down:
            raise NotReady(f"shard {', '.join(down)} not connected")

    async def _watch(self, interval_s: float = 0.5) -> None:
        """Event-loop lag and the gateway's state, kept current for /metrics."""
        loop = asyncio.get_running_loop()
        while True:
            start = loop.time()
            await asyncio.sleep(interval_s)
            metrics.EVENT_LOOP_LAG.observe(max(0.0, loop.time() - start - interval_s))
            for shard, (connected, latency) in self.shard_states().items():
                metrics.GATEWAY_SHARD_CONNECTED.labels(str(shard)).set(1 if connected and self.is_ready() else 0)
                if math.isfinite(latency):
                    metrics.GATEWAY_LATENCY.labels(str(shard)).set(latency)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self.training.close()  # before the store closes: jobs are recorded as interrupted
        await super().close()
        if self._watcher is not None:
            self._watcher.cancel()
        current = asyncio.current_task()
        events = [t for t in self._events if t is not current]
        if events:  # what the gateway delivered before it closed is still recorded
            await asyncio.wait(events, timeout=5.0)
        self.models.close()
        await self.versions.close()
        await self.store.close()
        if self.health is not None:
            await self.health.stop()
