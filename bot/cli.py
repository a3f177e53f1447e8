"""`continuo bot` and `python -m bot`: run the Discord bot until interrupted."""
from __future__ import annotations

import argparse
import asyncio
import logging
from pathlib import Path

import discord

from core import ContinuoError

EXIT_USER_ERROR = 2  # as `continuo` exits on a mistake the user can fix
DESCRIPTION = ("Run the Discord bot. It reads DISCORD_TOKEN from the environment or a .env file; "
               "see the README for creating the application and inviting the bot.")


def register(commands) -> None:
    parser = commands.add_parser("bot", help="run the Discord bot", description=DESCRIPTION)
    add_arguments(parser)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, help="folder for the database and servers' models "
                                                  "(default: Continuo's data folder)")
    parser.add_argument("--model", type=Path, help="model bundle used while a server has none (default: the bundled one)")
    parser.add_argument("--sync-guild", type=int, metavar="ID",
                        help="also register the commands in this server, where they appear at once")
    parser.add_argument("--no-sync", action="store_true", help="do not register the commands with Discord at start-up")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from .bot import ContinuoBot
    from .settings import BotSettings

    overrides = {"data_dir": args.data, "default_model": args.model, "sync_guild": args.sync_guild,
                 "sync_commands": False if args.no_sync else None}
    settings = BotSettings(**{k: v for k, v in overrides.items() if v is not None})
    if settings.discord_token is None or not settings.discord_token.get_secret_value().strip():
        raise ContinuoError("DISCORD_TOKEN is not set: put the bot's token in the environment or a .env file "
                            "(see the README, 'Discord bot')")
    if not logging.getLogger().handlers:  # leave a host's (or a test runner's) logging alone
        discord.utils.setup_logging(level=getattr(logging, args.log_level))
    try:
        asyncio.run(serve(ContinuoBot(settings), settings.discord_token.get_secret_value().strip()))
    except KeyboardInterrupt:
        pass
    return 0


async def serve(bot, token: str) -> None:
    async with bot:
        try:
            await bot.start(token)
        except discord.LoginFailure as e:
            raise ContinuoError(f"DISCORD_TOKEN was rejected by Discord: {e}; copy the token again from the "
                                "Developer Portal (Bot > Reset Token)") from None
        except discord.PrivilegedIntentsRequired:
            raise ContinuoError("Discord refused the Message Content intent: enable it in the Developer Portal "
                                "(Bot > Privileged Gateway Intents > Message Content Intent)") from None
