"""The gateway: HELLO, heartbeats, IDENTIFY and RESUME, and the dispatch events the bot receives."""
from __future__ import annotations

import json
import logging
import secrets
import time
from dataclasses import dataclass, field

import discord
from aiohttp import WSMsgType, web
from discord.gateway import DiscordWebSocket as Op  # its opcode constants: Op.HELLO, Op.IDENTIFY, ...

from .world import (DIRECT_MESSAGES, GUILD_MEMBERS, GUILD_MESSAGES, GUILD_PRESENCES, GUILDS, MESSAGE_CONTENT,
                    PRIVILEGED_INTENTS, Guild, Message)

log = logging.getLogger(__name__)


@dataclass(eq=False)
class GatewaySession:
    id: str
    intents: int
    sequence: int = 0
    events: list[dict] = field(default_factory=list, repr=False)  # sent dispatches, for RESUME
    ws: web.WebSocketResponse | None = None  # None while the client is away (reconnecting)
    ended: bool = False  # closed normally: cannot be resumed, gets no more events


class Gateway:
    """The gateway half of DiscordDouble (uses its state): one session per IDENTIFY, resumable until closed."""

    @property
    def intents(self) -> int | None:
        """Intents of the last IDENTIFY."""
        return self.identifies[-1]["intents"] if self.identifies else None

    @property
    def connected(self) -> bool:
        return any(s.ws is not None and not s.ws.closed for s in self.sessions.values())

    async def _gateway_socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        await ws.send_str(json.dumps({"op": Op.HELLO, "d": {"heartbeat_interval": int(self.heartbeat_interval * 1000)}}))
        session: GatewaySession | None = None
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            op, data = message.get("op"), message.get("d")
            try:
                if op == Op.HEARTBEAT:
                    self.heartbeats.append(time.monotonic())
                    await ws.send_str(json.dumps({"op": Op.HEARTBEAT_ACK}))
                elif op == Op.IDENTIFY:
                    session = await self._identify(ws, data)
                elif op == Op.RESUME:
                    session = await self._resume(ws, data)
                elif op not in (Op.PRESENCE, Op.VOICE_STATE):  # they need no answer
                    self.unknown_gateway_ops.append(message)
            except Exception as error:
                log.exception("the Discord double failed on gateway op %s", op)
                self.double_errors.append(f"gateway op {op}: {error!r}")
            self._notify()
        if session is not None and session.ws is ws:
            session.ws = None
            # A client that closes with 1000/1001 ends its session; any other close can be resumed.
            session.ended = ws.close_code in (1000, 1001)
        self._notify()
        return ws

    async def _identify(self, ws: web.WebSocketResponse, data: dict) -> GatewaySession | None:
        self.identifies.append(data)
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        intents = int(data.get("intents", 0))
        if intents & PRIVILEGED_INTENTS & ~self.privileged_intents:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return None
        session = GatewaySession(secrets.token_hex(16), intents, ws=ws)
        self.sessions[session.id] = session
        flags = discord.ApplicationFlags(gateway_presence_limited=bool(self.privileged_intents & GUILD_PRESENCES),
                                         gateway_guild_members_limited=bool(self.privileged_intents & GUILD_MEMBERS),
                                         gateway_message_content_limited=bool(self.privileged_intents & MESSAGE_CONTENT)).value
        ready = {
            "v": 10, "user": {**self.bot_user.to_json(), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in self.guilds],
            "session_id": session.id, "resume_gateway_url": self.gateway_url, "session_type": "normal",
            "application": {"id": str(self.application_id), "flags": flags},
            "private_channels": [], "relationships": [], "presences": [], "guild_join_requests": [],
            "geo_ordered_rtc_regions": [], "user_settings": {},
        }
        await self._send_event(session, "READY", ready)
        if intents & GUILDS:
            for guild in self.guilds:
                await self._send_event(session, "GUILD_CREATE", guild.to_json())
        self._notify()
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: dict) -> GatewaySession | None:
        session = self.sessions.get(data.get("session_id"))
        if session is None or session.ended or data.get("token") != self.token:
            await ws.send_str(json.dumps({"op": Op.INVALIDATE_SESSION, "d": False}))
            return None
        session.ws = ws
        for event in session.events:
            if event["s"] > (data.get("seq") or 0):
                await ws.send_str(json.dumps(event))
        await self._send_event(session, "RESUMED", {})
        self._notify()
        return session

    async def _send_event(self, session: GatewaySession, name: str, data: dict) -> None:
        session.sequence += 1
        event = {"op": Op.DISPATCH, "t": name, "s": session.sequence, "d": data}
        session.events.append(event)
        if session.ws is not None and not session.ws.closed:
            await session.ws.send_str(json.dumps(event))

    def _live_sessions(self, required: bool = True) -> list[GatewaySession]:
        """Sessions that receive events: connected ones, and resumable ones (their events are replayed).

        Events a test sends require one; echoes of what the client did over REST (possibly while
        it shuts down) do not.
        """
        live = [s for s in self.sessions.values() if not s.ended]
        if required and not live:
            raise RuntimeError("no client is connected to the Discord double")
        return live

    async def dispatch(self, name: str, data: dict, *, intent: int = 0, required: bool = True) -> None:
        """Send a dispatch event to every connected client that asked for ``intent`` (0: always)."""
        for session in self._live_sessions(required):
            if not intent or session.intents & intent:
                await self._send_event(session, name, data)

    async def _dispatch_message(self, name: str, message: Message) -> None:
        """MESSAGE_CREATE/UPDATE with content blanked for clients without the message-content intent."""
        if message.ephemeral or (message.author is self.bot_user and not self.echo_bot_messages):
            return
        dm = message.guild is None
        for session in self._live_sessions(required=message.author is not self.bot_user):
            if not session.intents & (DIRECT_MESSAGES if dm else GUILD_MESSAGES):
                continue
            readable = (session.intents & MESSAGE_CONTENT or dm or message.author is self.bot_user
                        or self.bot_user in message.mentions)
            await self._send_event(session, name, message.to_json(blank=not readable))

    def _sockets(self) -> list[web.WebSocketResponse]:
        sockets = [s.ws for s in self._live_sessions() if s.ws is not None and not s.ws.closed]
        if not sockets:
            raise RuntimeError("no client is connected to the Discord double right now")
        return sockets

    async def reconnect_client(self) -> None:
        """Ask the client to reconnect (op 7); it resumes its session and gets the events it missed."""
        for ws in self._sockets():
            await ws.send_str(json.dumps({"op": Op.RECONNECT, "d": None}))

    async def ping_client(self, timeout: float = 10.0) -> float:
        """Request a heartbeat (op 1) and return the seconds until it arrives: the client's event-loop lag."""
        count, start = len(self.heartbeats), time.monotonic()
        for ws in self._sockets():
            await ws.send_str(json.dumps({"op": Op.HEARTBEAT, "d": None}))
        await self.wait_for(lambda: len(self.heartbeats) > count, timeout, "a requested heartbeat")
        return self.heartbeats[count] - start

    async def announce_guild(self, guild: Guild) -> None:
        """GUILD_CREATE for a guild added after the client connected (the bot joined it)."""
        await self.dispatch("GUILD_CREATE", guild.to_json(), intent=GUILDS)

    async def remove_guild(self, guild: Guild) -> None:
        """The bot is removed from a guild (GUILD_DELETE); its channels become unknown."""
        self.guilds.remove(guild)
        for channel in guild.channels:
            self.channels.pop(channel.id, None)
        await self.dispatch("GUILD_DELETE", {"id": str(guild.id)}, intent=GUILDS)

