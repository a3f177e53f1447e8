"""Running a real discord.py client against the double until on_ready, and closing it cleanly."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import discord

if TYPE_CHECKING:
    from .double import DiscordDouble


class _ErrorLog(logging.Handler):
    """Collects ERROR records of the discord logger into the double, so waits and teardown fail on them."""

    def __init__(self, double: DiscordDouble) -> None:
        super().__init__(logging.ERROR)
        self.double = double

    def emit(self, record: logging.LogRecord) -> None:
        text = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            text += f": {record.exc_info[1]!r}"
        self.double.client_errors.append(text)


@contextlib.asynccontextmanager
async def run_client(
    client: discord.Client, double: DiscordDouble, *, ready_timeout: float = 15.0, token: str | None = None
) -> AsyncIterator[discord.Client]:
    """Run ``client.start(token or double.token)`` in a task until on_ready; close it cleanly on exit.

    ERROR records of the ``discord`` logger (errors in commands and events) land in
    ``double.client_errors``; the caller decides whether they fail the test (the fixture does).
    """
    handler = _ErrorLog(double)
    logger = logging.getLogger("discord")
    logger.addHandler(handler)
    # discord.py waits this long after the last GUILD_CREATE before on_ready (2 s by default); it is a
    # constructor option, so a bot built elsewhere may not have lowered it.
    client._connection.guild_ready_timeout = min(client._connection.guild_ready_timeout, 0.1)
    task = asyncio.create_task(client.start(token or double.token), name=f"discord client {client!r}")
    double.watch(task)
    try:
        await double.wait_for(client.is_ready, ready_timeout, "the client's on_ready")
        yield client
    except BaseException:
        await _shut_down(client, task, double, quiet=True)  # the failure in flight says more
        raise
    else:
        await _shut_down(client, task, double, quiet=False)
    finally:
        logger.removeHandler(handler)


async def _shut_down(client: discord.Client, task: asyncio.Task, double: DiscordDouble, quiet: bool) -> None:
    double._watched.remove(task)
    await client.close()
    try:
        await asyncio.wait_for(task, 10)
    except Exception as error:
        if not quiet:
            raise RuntimeError(f"the client ended with {error!r}") from error
