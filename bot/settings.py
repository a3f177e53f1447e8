"""The bot's settings, read from the environment (prefix CONTINUO_BOT_, and DISCORD_TOKEN) or a .env file."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from core import ModelConfig, RayConfig, TrainConfig, get_settings


class BotSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CONTINUO_BOT_", env_file=".env", extra="ignore")

    discord_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("DISCORD_TOKEN", "discord_token")
    )  # the bot's token from the Developer Portal
    data_dir: Path | None = None  # database and per-server models; default: Continuo's data folder
    default_model: Path | None = None  # bundle used while a server has no model; default: the bundled one
    sync_commands: bool = True  # register the slash commands with Discord at start-up
    sync_guild: int | None = None  # also copy them to this server, where they show up at once (development)
    shard_count: int | None = Field(default=None, ge=1)  # shards over all the bot's processes; None: unsharded
    shard_ids: list[int] | None = None  # shards this process holds (default: all); shard 0's process syncs commands
    identify_interval_s: float = 5.5  # between IDENTIFYs of one rate-limit bucket, all processes (Discord: 5 s)

    cooldown_uses: int = 3  # continuations one user may ask for in each cooldown window
    cooldown_seconds: float = 15.0  # length of that window
    defer_after_s: float = 1.5  # answer "thinking..." when a continuation takes longer (Discord allows 3 s)
    inference_threads: int = 2  # generations running at once, off the event loop
    max_batch_rows: int = 128  # concurrent continuations decoded together (1: one at a time)
    model_cache_size: int = 64  # loaded models kept in memory at most (least recently used ones are dropped)
    model_cache_mb: float = 1024.0  # and at most this many megabytes of them: the cache evicts by size
    top_k: int = 50  # sampling keeps the k likeliest words
    no_repeat_ngram_size: int = 3  # never repeat a three-word phrase: reads better on small models

    max_upload_mb: float = 8.0  # largest text file /corpus add accepts
    max_corpus_mb: float = 50.0  # largest corpus a server may hold (text, in UTF-8)
    max_backfill: int = 5000  # most messages read from a channel's history by /corpus learn
    progress_interval_s: float = 2.0  # progress messages are edited at most this often

    # conversations: a reply to the bot, or a mention in a thread, is answered with the next turn
    conversation_messages: int = Field(default=12, ge=1, le=100)  # messages of the reply chain or thread read, at most
    conversation_tokens: int = Field(default=400, ge=1)  # and their tokens at most, newest first (the model reads 500)
    chime_in_cooldown_s: float = Field(default=300.0, ge=0)  # after chiming in, a channel waits this long for the next
    chime_in_seed: int | None = None  # seeds the chime-in draws (tests); None: a fresh random seed

    database_url: str | None = None  # sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DB (default: bot.sqlite3)
    database_busy_timeout_s: float = 5.0  # SQLite: one try waits this long for another process's lock
    database_write_retry_s: float = 600.0  # SQLite: a locked write is retried for this long before it is reported
    model_storage_url: str | None = None  # fsspec URL of model versions (s3://, gs://...; default: model-store/)
    model_versions_kept: int = 3  # versions kept per server: the current one and earlier ones for /model rollback
    model_poll_s: float = 2.0  # how often SQLite is asked for switched models (PostgreSQL notifies at once)

    max_training_jobs: int = 1  # trainings at once on this machine (or the coordinator's cluster); others wait in line
    # where /train runs: a process on this machine, the Ray cluster of `ray`, or the coordinator
    # (`continuo bot coordinator`) of a cluster of bot processes
    job_runner: Literal["local", "ray", "coordinator"] = "local"  # see above
    coordinator_runner: Literal["ray", "local"] = "ray"  # what the coordinator runs jobs on
    coordinator_poll_s: float = 1.0  # how often the coordinator looks for queued jobs
    ray: RayConfig = Field(
        default_factory=RayConfig
    )  # the Ray cluster's address and each job's CPUs, GPUs and memory, e.g. '{"address":"auto","cpus":2}'
    max_epochs: int = 30  # upper bound on /train's epochs
    retrain_check_s: float = 60.0  # how often a server's corpus growth is checked for automatic retraining
    train_model: ModelConfig = Field(default_factory=ModelConfig)  # network size of servers' models
    train_options: TrainConfig = Field(
        default_factory=lambda: TrainConfig(epochs=10, max_minutes=60)
    )  # training settings; /train's epochs override

    stop_timeout_s: float = Field(default=25.0, gt=0)  # on SIGTERM: finish, write and close within this (k8s: 30 s)
    metrics_port: int | None = Field(default=None, ge=0, le=65535)  # /metrics, /healthz, /readyz here; None: off
    metrics_host: str = "127.0.0.1"  # the address they listen on (0.0.0.0: every interface)
    log_format: Literal["text", "json"] = "text"  # json: one object per line (--log-format)

    @model_validator(mode="after")
    def _shards_fit(self) -> BotSettings:
        if self.shard_ids is not None:
            if self.shard_count is None:
                raise ValueError("shard ids need a shard count: give --shard-count too")
            wrong = [i for i in self.shard_ids if not 0 <= i < self.shard_count]
            if wrong or not self.shard_ids or len(set(self.shard_ids)) != len(self.shard_ids):
                raise ValueError(
                    f"shard ids must be distinct numbers from 0 to {self.shard_count - 1}, not {self.shard_ids}"
                )
        return self

    @property
    def home(self) -> Path:
        return self.data_dir if self.data_dir is not None else get_settings().home

    @property
    def database_path(self) -> Path:
        return self.home / "bot.sqlite3"

    @property
    def database(self) -> str:
        """The database URL in use."""
        return self.database_url or f"sqlite:///{self.database_path}"

    @property
    def model_storage(self) -> str:
        """The model storage URL in use."""
        return self.model_storage_url or str(self.home / "model-store")

    @property
    def model_cache_dir(self) -> Path:
        """Local copies of the model versions this process serves (immutable, so never stale)."""
        return self.home / "model-cache"

    @property
    def guilds_dir(self) -> Path:
        return self.home / "guilds"
