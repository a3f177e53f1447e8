"""`continuo bot` and `python -m bot`: run the Discord bot until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import threading
from pathlib import Path

import discord

from core import ContinuoError

EXIT_USER_ERROR = 2  # as `continuo` exits on a mistake the user can fix
DESCRIPTION = (
    "Run the Discord bot. It reads DISCORD_TOKEN from the environment or a .env file; "
    "see the README for creating the application and inviting the bot."
)


def register(commands) -> None:
    parser = commands.add_parser("bot", help="run the Discord bot", description=DESCRIPTION)
    add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--data", type=Path, help="folder for the database and servers' models (default: Continuo's data folder)"
    )
    parser.add_argument(
        "--model", type=Path, help="model bundle used while a server has none (default: the bundled one)"
    )
    parser.add_argument(
        "--sync-guild",
        type=int,
        metavar="ID",
        help="also register the commands in this server, where they appear at once",
    )
    parser.add_argument("--no-sync", action="store_true", help="do not register the commands with Discord at start-up")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_log_format_argument(parser)
    add_shard_arguments(parser)
    add_database_arguments(parser)
    parser.set_defaults(run=run)
    add_store_commands(parser)


def add_log_format_argument(parser: argparse.ArgumentParser, default=None) -> None:
    parser.add_argument(
        "--log-format",
        choices=["text", "json"],
        default=default,
        help="text (default: CONTINUO_BOT_LOG_FORMAT, else text) or json: one object per line, with the "
        "server and interaction ids",
    )


def add_shard_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--shard-count",
        type=_positive,
        metavar="N",
        help="run sharded: the bot's shards over all its processes (default: one unsharded connection)",
    )
    parser.add_argument(
        "--shard-ids",
        type=_shard_ids,
        metavar="0,1",
        help="the shards this process holds (default: all); the process holding shard 0 syncs commands",
    )


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return int(text)


def _shard_ids(text: str) -> list[int]:
    parts = [part.strip() for part in text.split(",")]
    if not all(part.isdigit() for part in parts):
        raise argparse.ArgumentTypeError(f"{text!r} is not a comma-separated list of shard numbers, e.g. 0,1")
    return [int(part) for part in parts]


def _shard_settings(args: argparse.Namespace) -> dict:
    """The shard options, checked against each other (one line and exit 2 when they do not fit)."""
    count, ids = getattr(args, "shard_count", None), getattr(args, "shard_ids", None)
    if ids is not None and count is None:
        raise ContinuoError("--shard-ids needs --shard-count (the bot's shards over all its processes)")
    if ids is not None and count is not None and (len(set(ids)) != len(ids) or any(i >= count for i in ids)):
        raise ContinuoError(f"--shard-ids must be distinct numbers from 0 to {count - 1} (--shard-count {count})")
    return {"shard_count": count, "shard_ids": ids}


def add_database_arguments(parser: argparse.ArgumentParser, default=None) -> None:
    parser.add_argument(
        "--database",
        metavar="URL",
        default=default,
        help="sqlite:///PATH (default: bot.sqlite3 in the data folder) or postgresql://USER@HOST/DB",
    )
    parser.add_argument(
        "--model-storage",
        metavar="URL",
        default=default,
        help="where published model versions live: a folder (default: model-store in the data "
        "folder) or an fsspec URL such as s3://bucket/continuo",
    )


def add_store_commands(parser: argparse.ArgumentParser) -> None:
    """`continuo bot backup PATH` and `continuo bot migrate-store FROM TO`; plain `continuo bot` runs the bot."""
    commands = parser.add_subparsers(dest="store_command", metavar="{backup,migrate-store,coordinator}")
    backup = commands.add_parser(
        "backup",
        help="copy the bot's database to PATH while the bot may run",
        description="A consistent copy of the SQLite database made with SQLite's online "
        "backup, safe while the bot runs; restore it by stopping the bot and "
        "copying it over the database file. For PostgreSQL it names the tool.",
    )
    backup.add_argument("path", type=Path, metavar="PATH")
    backup.add_argument("--data", type=Path, default=argparse.SUPPRESS, help="the data folder holding the database")
    add_database_arguments(backup, default=argparse.SUPPRESS)  # given here or before `backup`: either counts
    backup.set_defaults(run=run_backup)
    migrate = commands.add_parser(
        "migrate-store",
        help="copy servers' data from one database to another",
        description="Copy every server's data (or those given with --guild) from the "
        "database FROM to the database TO, e.g. from sqlite:///bot.sqlite3 to "
        "postgresql://continuo@db/continuo. Stop the bot first. A server TO "
        "already holds is refused before anything is copied; model files stay "
        "where model storage keeps them.",
    )
    migrate.add_argument("source", metavar="FROM", help="database URL, or the path of an SQLite file")
    migrate.add_argument("target", metavar="TO", help="database URL, or the path of an SQLite file")
    migrate.add_argument("--guild", type=int, action="append", metavar="ID", help="only this server (repeatable)")
    migrate.set_defaults(run=run_migrate)
    add_coordinator_command(commands)


def add_coordinator_command(commands) -> None:
    """`continuo bot coordinator`: the process that trains what a cluster's bot processes queue."""
    coordinator = commands.add_parser(
        "coordinator",
        help="run the training jobs of a cluster of bot processes (on Ray)",
        description="Take the training jobs that bot processes started with CONTINUO_BOT_JOB_RUNNER=coordinator "
        "queue in the shared database, run them on Ray (or local processes), write their progress back "
        "and publish each new model version. Run one per database; a restart resumes its jobs.",
    )
    coordinator.add_argument(
        "--data", type=Path, default=argparse.SUPPRESS, help="this process's folder for checkpoints and caches"
    )
    add_database_arguments(coordinator, default=argparse.SUPPRESS)
    coordinator.add_argument("--runner", choices=["ray", "local"], help="where jobs run (default: ray)")
    coordinator.add_argument(
        "--ray-address",
        metavar="ADDRESS",
        help='the Ray cluster, e.g. "auto" or host:6379 (default: RAY_ADDRESS, else a Ray started for this process)',
    )
    coordinator.add_argument(
        "--max-jobs", type=_positive, metavar="N", help="jobs run at once (default: CONTINUO_BOT_MAX_TRAINING_JOBS)"
    )
    coordinator.add_argument("--log-level", default=argparse.SUPPRESS, choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    add_log_format_argument(coordinator, default=argparse.SUPPRESS)
    coordinator.set_defaults(run=run_coordinator)


def run_coordinator(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from .coordinator import serve

    settings = _settings(args)
    changes = {"coordinator_runner": args.runner, "max_training_jobs": args.max_jobs}
    settings = settings.model_copy(update={k: v for k, v in changes.items() if v is not None})
    if args.ray_address:
        settings = settings.model_copy(update={"ray": replace(settings.ray, address=args.ray_address)})
    _setup_logging(args, settings)
    with stop_watchdog(settings.stop_timeout_s):
        return 0 if asyncio.run(serve(settings)) else EXIT_STOP_TIMED_OUT


def run(args: argparse.Namespace) -> int:
    from .sharding import make_bot

    overrides = {
        "data_dir": args.data,
        "default_model": args.model,
        "sync_guild": args.sync_guild,
        "sync_commands": False if args.no_sync else None,
        "database_url": args.database,
        "model_storage_url": args.model_storage,
        **_shard_settings(args),
    }
    settings = load_settings(**{k: v for k, v in overrides.items() if v is not None})
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        raise ContinuoError(
            "DISCORD_TOKEN is not set: put the bot's token in the environment or a .env file "
            "(see the README, 'Discord bot')"
        )
    _setup_logging(args, settings)
    with stop_watchdog(settings.stop_timeout_s):
        stopped = asyncio.run(serve(make_bot(settings), settings.discord_token.get_secret_value().strip()))
    return 0 if stopped else EXIT_STOP_TIMED_OUT


def _setup_logging(args: argparse.Namespace, settings) -> None:
    from . import logs

    fmt = getattr(args, "log_format", None) or settings.log_format
    logs.setup(getattr(logging, getattr(args, "log_level", "INFO")), fmt)  # leaves a host's logging alone


EXIT_STOP_TIMED_OUT = 1  # a stop that did not finish within CONTINUO_BOT_STOP_TIMEOUT_S (and a few seconds more)
STOP_GRACE_S = 5.0  # beyond the stop timeout, before the watchdog ends the process


@contextlib.contextmanager
def stop_watchdog(timeout_s: float):
    """Armed by the first SIGTERM or SIGINT (see `on_stop_signals`): ends the process if the stop hangs."""
    timers: list[threading.Timer] = []

    def expire() -> None:
        logging.getLogger(__name__).error(
            "the stop took longer than %.0f s; ending the process (what was in flight may be lost)", timeout_s
        )
        logging.shutdown()
        os._exit(EXIT_STOP_TIMED_OUT)

    def arm() -> None:
        if not timers:
            timers.append(threading.Timer(timeout_s + STOP_GRACE_S, expire))
            timers[0].daemon = True
            timers[0].start()

    _watchdogs.append(arm)
    try:
        yield
    finally:
        _watchdogs.remove(arm)
        for timer in timers:
            timer.cancel()


_watchdogs: list = []


def on_stop_signals(stop) -> None:
    """SIGTERM (systemd, Docker, Kubernetes) and SIGINT (Ctrl-C) call `stop()` once, on the running loop."""
    loop = asyncio.get_running_loop()
    asked: list[int] = []

    def handle(signum: int) -> None:
        if asked:
            logging.getLogger(__name__).info("already stopping (signal %d again)", signum)
            return
        asked.append(signum)
        logging.getLogger(__name__).info("signal %d: stopping", signum)
        for arm in _watchdogs:
            arm()
        stop()

    for signum in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(signum, handle, signum)
        except (ValueError, RuntimeError, NotImplementedError):  # not the main thread: the host handles signals
            return


async def serve(bot, token: str) -> bool:
    """Run the bot until it is closed or a SIGTERM/SIGINT stops it; whether it stopped in time."""
    stopping: list[asyncio.Task] = []

    def stop() -> None:
        stopping.append(asyncio.create_task(bot.shutdown(), name="continuo-stop"))

    on_stop_signals(stop)
    async with bot:
        try:
            await bot.start(token)
        except discord.LoginFailure as e:
            raise ContinuoError(
                f"DISCORD_TOKEN was rejected by Discord: {e}; copy the token again from the "
                "Developer Portal (Bot > Reset Token)"
            ) from None
        except discord.PrivilegedIntentsRequired:
            raise ContinuoError(
                "Discord refused the Message Content intent: enable it in the Developer Portal "
                "(Bot > Privileged Gateway Intents > Message Content Intent)"
            ) from None
        if stopping:  # start() returns once the stop closed the gateway; the rest of the stop finishes here
            try:
                await asyncio.wait_for(asyncio.shield(stopping[0]), bot.settings.stop_timeout_s + STOP_GRACE_S)
            except TimeoutError:
                logging.getLogger(__name__).error("the stop did not finish in time")
                return False
    return True


def _settings(args: argparse.Namespace):
    overrides = {
        "data_dir": getattr(args, "data", None),
        "database_url": getattr(args, "database", None),
        "model_storage_url": getattr(args, "model_storage", None),
    }
    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


def load_settings(**overrides):
    """BotSettings from the environment, .env and these overrides; a bad value is one line naming the setting."""
    from pydantic import ValidationError

    from .settings import BotSettings

    try:
        return BotSettings(**overrides)
    except ValidationError as e:
        first = e.errors()[0]
        name = str(first["loc"][0]) if first["loc"] else ""
        setting = f"CONTINUO_BOT_{name.upper()}: " if name and name not in overrides else ""
        raise ContinuoError(f"{setting}{first['msg']}; fix that setting (environment or .env)") from None


def run_backup(args: argparse.Namespace) -> int:
    from .storage import SQLiteStore, open_store, redact

    settings = _settings(args)
    store = open_store(settings.database)

    async def backup() -> None:
        if not isinstance(store, SQLiteStore):
            await store.backup(str(args.path))  # PostgreSQL: names the tool to use, nothing to connect to
        elif not store.path.is_file():
            raise ContinuoError(f"there is no database at {store.path} to back up; pass --data or --database")
        await store.open()
        try:
            await store.backup(str(args.path))
        finally:
            await store.close()

    asyncio.run(backup())
    where = store.path if isinstance(store, SQLiteStore) else redact(settings.database)
    print(f"backed up {redact(settings.database)} to {args.path}; to restore, stop the bot and copy it over {where}")
    return 0


def store_url(text: str) -> str:
    """A database URL, or the path of an SQLite file."""
    from .storage import sqlite_url

    return text if "://" in text else sqlite_url(Path(text).expanduser().resolve())


async def migrate_store(source_url: str, target_url: str, guilds: list[int] | None = None, say=print) -> list[int]:
    """Copy servers from one store to another, then read both back: every row arrived and nothing else was touched."""
    from dataclasses import replace

    from .storage import SQLiteStore, open_store, redact

    source, target = open_store(source_url), open_store(target_url)
    if isinstance(source, SQLiteStore) and not source.path.is_file():
        raise ContinuoError(f"there is no database at {source.path} to copy from")
    if source_url == target_url:
        raise ContinuoError("FROM and TO are the same database")
    await source.open()
    try:
        await target.open()
        try:
            wanted = guilds or await source.guild_ids()
            held = set(await source.guild_ids())
            missing = [g for g in wanted if g not in held]
            if missing:
                raise ContinuoError(f"server {missing[0]} has no data in {redact(source_url)}")
            taken = sorted(set(wanted) & set(await target.guild_ids()))
            if taken:  # checked before anything is written: nothing half-copied, nothing merged
                raise ContinuoError(
                    f"{redact(target_url)} already holds server {taken[0]}"
                    f"{f' and {len(taken) - 1} more' if len(taken) > 1 else ''}; nothing was copied "
                    "(copy into an empty database, or leave those out with --guild)"
                )
            for guild_id in wanted:
                data = await source.export_guild(guild_id)
                await target.import_guild(data)
                copied = await target.export_guild(guild_id)
                same_jobs = [replace(j, id=0) for j in data.jobs] == [replace(j, id=0) for j in copied.jobs]
                if replace(copied, jobs=[]) != replace(data, jobs=[]) or not same_jobs:
                    raise ContinuoError(
                        f"server {guild_id} reads back differently from {redact(target_url)}; "
                        "the copy is incomplete: do not use it"
                    )
                say(
                    f"server {guild_id}: {len(data.corpus):,} texts, {len(data.channels)} channels, "
                    f"{len(data.jobs)} trainings, {len(data.models)} model versions"
                )
            return wanted
        finally:
            await target.close()
    finally:
        await source.close()


def run_migrate(args: argparse.Namespace) -> int:
    from .storage import redact

    source, target = store_url(args.source), store_url(args.target)
    copied = asyncio.run(migrate_store(source, target, args.guild))
    print(f"copied {len(copied)} server{'s' if len(copied) != 1 else ''} from {redact(source)} to {redact(target)}")
    return 0
