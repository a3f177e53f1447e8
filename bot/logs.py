"""The bot's logs: discord.py's text format, or one JSON object per line with the server and interaction ids.

What is being handled (a command, a gateway event) sets the ids in context variables, so every record
logged while handling it carries them without each call passing them. Log calls above DEBUG never
include message text or tokens: ids, names of commands and counts only.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Literal

import discord

guild_id: ContextVar[int | None] = ContextVar("continuo_guild_id", default=None)
interaction_id: ContextVar[int | None] = ContextVar("continuo_interaction_id", default=None)

LogFormat = Literal["text", "json"]
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time, level, logger, message, the ids in context, extra fields, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, var in (("guild_id", guild_id), ("interaction_id", interaction_id)):
            value = getattr(record, key, None) or var.get()
            if value is not None:
                entry[key] = str(value)  # snowflakes exceed what JSON readers hold exactly as numbers
        for key, value in vars(record).items():
            if key not in _STANDARD and key not in entry:
                entry[key] = value if isinstance(value, (str, int, float, bool, type(None))) else repr(value)
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup(level: int, fmt: LogFormat = "text") -> None:
    """Log to stderr in that format, unless a host (or a test runner) configured logging already."""
    if logging.getLogger().handlers:
        return
    if fmt == "json":
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root = logging.getLogger()
        root.addHandler(handler)
        root.setLevel(level)
    else:
        discord.utils.setup_logging(level=level)


def note_event(args: tuple) -> None:
    """Set the server id of a gateway event's handler from its first argument that names one."""
    for arg in args:
        found = getattr(arg, "guild_id", None)
        if found is None:
            guild = getattr(arg, "guild", None)
            found = getattr(guild, "id", None)
        if isinstance(found, int):
            guild_id.set(found)
            return
