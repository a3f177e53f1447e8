"""Driving a double in another process: HTTP routes under /_double/ and an async client for them.

A test that starts bots as processes cannot share an event loop with the double, so the double
runs standalone (``python -m discord_double``) and the test builds the world, sends interactions
and reads what the bots answered through these routes. Ids travel as strings, as in Discord's JSON.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import aiohttp
from aiohttp import web

from .interactions import CommandRefused

if TYPE_CHECKING:
    from .double import DiscordDouble
    from .interactions import InteractionRecord

TESTS_BOT = Path(__file__).resolve().parents[1]  # the folder that holds this package


def add_control_routes(app: web.Application, double: DiscordDouble) -> None:
    async def state(request: web.Request) -> web.Response:
        return _json(summary(double))

    async def add_guild(request: web.Request) -> web.Response:
        body = await request.json()
        guild = double.add_guild(body.get("name", "Guild"), channels=body.get("channels", ["general"]))
        if any(not s.ended for s in double.sessions.values()):
            await double.announce_guild(guild)
        return _json(_guild(guild))

    async def add_user(request: web.Request) -> web.Response:
        body = await request.json()
        user = double.user(body["name"])
        for guild_id in body.get("guilds", []):
            double._guild(int(guild_id)).add_member(user)
        return _json({"id": str(user.id), "name": user.name})

    async def slash(request: web.Request) -> web.Response:
        body = await request.json()
        channel, user = double.channels[int(body["channel"])], double.users[int(body["user"])]
        options = {name: _option(double, value) for name, value in (body.get("options") or {}).items()}
        try:
            record = await double.slash_command(channel, user, body["name"], options)
        except (CommandRefused, RuntimeError) as refused:  # RuntimeError: no client holds that server
            return _json({"refused": str(refused)}, status=400)
        return _json(_interaction(record))

    async def interaction(request: web.Request) -> web.Response:
        record = double.interactions.get(int(request.match_info["id"]))
        if record is None:
            return _json({"message": "unknown interaction"}, status=404)
        return _json(_interaction(record))

    async def message(request: web.Request) -> web.Response:
        body = await request.json()
        channel, user = double.channels[int(body["channel"])], double.users[int(body["user"])]
        sent = await double.send_message(channel, user, body["content"], dispatch=body.get("dispatch", True))
        return _json({"id": str(sent.id)})

    async def channel_history(request: web.Request) -> web.Response:
        channel = double.channels.get(int(request.match_info["id"]))
        if channel is None:
            return _json({"message": "unknown channel"}, status=404)
        return _json(
            [
                {"id": str(m.id), "author": str(m.author.id), "content": m.content, "edits": m.edits}
                for m in channel.history()
            ]
        )

    async def add_thread(request: web.Request) -> web.Response:
        body = await request.json()
        owner = double.users[int(body["user"])] if body.get("user") else None
        try:
            thread = await double.add_thread(double.channels[int(body["channel"])], body["name"], owner)
        except ValueError as refused:  # not a server's text channel
            return _json({"refused": str(refused)}, status=400)
        return _json({"id": str(thread.id), "name": thread.name, "parent": str(thread.parent.id)})

    async def fault(request: web.Request) -> web.Response:
        kind = request.match_info["kind"]
        if kind == "drop":
            await double.drop_connections()
        elif kind == "invalidate":
            await double.invalidate_sessions()
        elif kind == "reconnect":
            await double.reconnect_client()
        else:
            return _json({"message": f"unknown fault {kind!r}: drop, invalidate or reconnect"}, status=404)
        return _json(summary(double))

    app.router.add_get("/_double/state", state)
    app.router.add_post("/_double/guilds", add_guild)
    app.router.add_post("/_double/users", add_user)
    app.router.add_post("/_double/slash", slash)
    app.router.add_get("/_double/interactions/{id}", interaction)
    app.router.add_post("/_double/messages", message)
    app.router.add_get("/_double/channels/{id}/messages", channel_history)
    app.router.add_post("/_double/threads", add_thread)
    app.router.add_post("/_double/faults/{kind}", fault)


def _option(double: DiscordDouble, value: Any) -> Any:
    """{"channel": ID} is that channel, {"file": NAME, "text": TEXT} an attachment; other values are as sent."""
    if isinstance(value, dict) and "channel" in value:
        return double.channels[int(value["channel"])]
    if isinstance(value, dict) and "file" in value:
        return value["file"], value["text"].encode()
    return value


def summary(double: DiscordDouble) -> dict:
    """What a test in another process asserts on (the in-process attributes of the same names)."""
    return {
        "port": double.port,
        "token": double.token,
        "application_id": str(double.application_id),
        "owner": str(double.owner.id),  # owns every server: may use the Manage Server commands
        "guilds": [_guild(g) for g in double.guilds],
        "sessions": [
            {
                "id": s.id,
                "shard": s.shard,
                "connected": s.ws is not None and not s.ws.closed,
                "ended": s.ended,
                "resumes": s.resumes,
            }
            for s in double.sessions.values()
        ],
        "identifies": [i.get("shard") for i in double.identifies],
        "invalid_sessions": double.invalid_sessions,
        "command_syncs": double.command_syncs,
        "synced_commands": {str(k): [c["name"] for c in v] for k, v in double.synced_commands.items()},
        "unknown_routes": double.unknown_routes,
        "double_errors": double.double_errors,
        "rejected_requests": [f"{r.method} {r.path}: {r.status} {r.message}" for r in double.rejected_requests],
        "unanswered": [str(r.id) for r in double.unanswered],
    }


def _guild(guild) -> dict:
    return {
        "id": str(guild.id),
        "name": guild.name,
        "channels": {c.name: str(c.id) for c in guild.channels},
        "threads": {t.name: str(t.id) for t in guild.threads},
    }


def _interaction(record: InteractionRecord) -> dict:
    original = record.original
    return {
        "id": str(record.id),
        "name": record.name,
        "response_type": record.response_type,
        "content": record.content,
        "done": original is not None and not original.loading,
        "done_latency": record.done_latency,  # seconds from the event to an answer with content
        "callbacks": len(record.callbacks),
        "followups": [m.content for m in record.followups],
        "shards": [s.shard for s in record.sessions],
        "sessions": [s.id for s in record.sessions],
    }


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, body=json.dumps(data).encode(), content_type="application/json")


class RemoteDouble:
    """An async client for a standalone double's /_double/ routes (methods mirror DiscordDouble's)."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")
        self._session: aiohttp.ClientSession | None = None

    async def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        async with self._session.request(method, f"{self.base_url}/_double/{path}", json=body) as response:
            data = await response.json()
            if response.status == 400 and "refused" in data:
                raise CommandRefused(data["refused"])
            response.raise_for_status()
            return data

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()

    async def state(self) -> dict:
        return await self._call("GET", "state")

    async def add_guild(self, name: str, channels: list[str] = ("general",)) -> dict:
        return await self._call("POST", "guilds", {"name": name, "channels": list(channels)})

    async def user(self, name: str, guilds: list[str] = ()) -> dict:
        return await self._call("POST", "users", {"name": name, "guilds": list(guilds)})

    async def slash_command(self, channel: str, user: str, name: str, options: dict | None = None) -> dict:
        """Option values as JSON; a channel is {"channel": ID}, an attachment {"file": NAME, "text": TEXT}."""
        return await self._call("POST", "slash", {"channel": channel, "user": user, "name": name, "options": options})

    async def interaction(self, interaction_id: str) -> dict:
        return await self._call("GET", f"interactions/{interaction_id}")

    async def send_message(self, channel: str, user: str, content: str, dispatch: bool = True) -> dict:
        return await self._call(
            "POST", "messages", {"channel": channel, "user": user, "content": content, "dispatch": dispatch}
        )

    async def history(self, channel: str) -> list[dict]:
        """The channel's visible messages, oldest first: {"id", "author", "content", "edits" (bodies)}."""
        return await self._call("GET", f"channels/{channel}/messages")  # type: ignore[return-value]

    async def add_thread(self, channel: str, name: str, user: str | None = None) -> dict:
        """A public thread under that text channel ({"id", "name", "parent"}); post in it with send_message."""
        return await self._call("POST", "threads", {"channel": channel, "name": name, "user": user})

    async def fault(self, kind: str) -> dict:
        """ "drop" (connections lost: clients resume), "invalidate" (op 9: they IDENTIFY again), "reconnect" (op 7)."""
        return await self._call("POST", f"faults/{kind}")

    async def wait_for(self, check, timeout: float = 30.0, what: str = "a condition", every: float = 0.1):
        """Poll ``await check()`` until it returns something truthy."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (result := await check()):
            if loop.time() > deadline:
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}; double: {await self.state()}")
            await asyncio.sleep(every)
        return result

    async def wait_done(self, interaction_id: str, timeout: float = 30.0) -> dict:
        """The interaction once it is answered with content (a deferred one filled in)."""

        async def done():
            found = await self.interaction(interaction_id)
            return found if found["done"] else None

        return await self.wait_for(done, timeout, f"an answer to interaction {interaction_id}")


async def start_standalone(*args: str, env: dict | None = None) -> tuple[subprocess.Popen, RemoteDouble, dict]:
    """Start ``python -m discord_double --port 0 ARGS`` and return the process, a client and its first state.

    Stop it with ``process.terminate()``; it prints one JSON line (its state) once it listens.
    """
    environment = {**os.environ, **(env or {})}
    environment["PYTHONPATH"] = os.pathsep.join([str(TESTS_BOT), environment.get("PYTHONPATH", "")])
    process = subprocess.Popen(
        [sys.executable, "-m", "discord_double", "--port", "0", *args],
        stdout=subprocess.PIPE,
        env=environment,
        text=True,
    )
    line = await asyncio.to_thread(process.stdout.readline)
    if not line:
        raise RuntimeError(f"the standalone double ended with exit code {process.wait()}")
    state = json.loads(line)
    return process, RemoteDouble(f"http://127.0.0.1:{state['port']}"), state
