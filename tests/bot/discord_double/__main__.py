"""`python -m discord_double` (with tests/bot on sys.path): the double as its own process, for bots run as processes.

It prints one JSON line (port, token, guilds with their channel ids) once it listens, then serves
until SIGTERM or SIGINT. Tests drive it through /_double/ (see ``control.RemoteDouble``); bots
reach it through ``python -m discord_double.bot --double URL -- [continuo bot options]``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys

from .control import add_control_routes, summary
from .double import DiscordDouble


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m discord_double", description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (default: a free one)")
    parser.add_argument("--token", default="test-token", help="the bot token it accepts")
    parser.add_argument("--guilds", type=int, default=0, help="servers to create, each with #general")
    parser.add_argument("--recommended-shards", type=int, default=1, help="'shards' in GET /gateway/bot")
    parser.add_argument("--max-concurrency", type=int, default=1, help="IDENTIFY buckets in GET /gateway/bot")
    parser.add_argument(
        "--identify-window",
        type=float,
        default=5.0,
        help="seconds between IDENTIFYs of one bucket, else op 9 (Discord: 5; 0: no limit)",
    )
    parser.add_argument("--heartbeat-interval", type=float, default=1.0, help="seconds, sent in HELLO")
    args = parser.parse_args(argv)
    asyncio.run(serve(args))
    return 0


async def serve(args: argparse.Namespace) -> None:
    double = DiscordDouble(
        port=args.port,
        token=args.token,
        heartbeat_interval=args.heartbeat_interval,
        recommended_shards=args.recommended_shards,
        max_concurrency=args.max_concurrency,
        identify_window=args.identify_window,
    )
    for n in range(args.guilds):
        double.add_guild(f"Guild {n}")
    await double.start(extra_routes=lambda app: add_control_routes(app, double))
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(signum, stop.set)
    print(json.dumps(summary(double)), flush=True)
    await stop.wait()
    await double.stop()


if __name__ == "__main__":
    sys.exit(main())
