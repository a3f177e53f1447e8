"""`python -m discord_double.run_bot --double URL -- [continuo bot options]`: Continuo's bot against a double.

The bot is the one `continuo bot` runs, unchanged but for discord.py's two URL constants, which point
at the double (as ``DiscordDouble.patch_discord`` does in-process). DISCORD_TOKEN must be the double's
token (``test-token`` unless it was started with another).
"""

from __future__ import annotations

import argparse
import sys

import discord
import yarl


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m discord_double.run_bot", description=__doc__.splitlines()[0])
    parser.add_argument("--double", required=True, metavar="URL", help="the double, e.g. http://127.0.0.1:8123")
    parser.add_argument("bot_args", nargs=argparse.REMAINDER, help="after --: options of `continuo bot`")
    args = parser.parse_args(argv)
    base = args.double.rstrip("/")
    discord.http.Route.BASE = f"{base}/api/v10"
    discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY = yarl.URL(base.replace("http://", "ws://", 1) + "/gateway")
    from bot.__main__ import main as bot_main  # after the patch: nothing else reads the constants earlier

    bot_args = args.bot_args[1:] if args.bot_args[:1] == ["--"] else args.bot_args
    return bot_main(bot_args)


if __name__ == "__main__":
    sys.exit(main())
