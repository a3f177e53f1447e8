"""The gateway: HELLO, heartbeats, IDENTIFY (sharded or not) and RESUME, and the dispatch events the bot receives."""

from __future__ import annotations

import contextlib
import json
import logging
import secrets
import time
from dataclasses import dataclass, field

import discord
from aiohttp import WSMsgType, web
from discord.gateway import DiscordWebSocket as Op  # its opcode constants: Op.HELLO, Op.IDENTIFY, ...

from .world import (
    DIRECT_MESSAGES,
    GUILD_MEMBERS,
    GUILD_MESSAGES,
    GUILD_PRESENCES,
    GUILDS,
    MESSAGE_CONTENT,
    PRIVILEGED_INTENTS,
    Guild,
    Message,
)

log = logging.getLogger(__name__)


SHARDING_REQUIRED_OVER = 2500  # servers above which Discord refuses an unsharded session (close code 4011)


def shard_of(guild_id: int | None, shard_count: int) -> int:
    """The shard Discord sends a server's events to; events without a server go to shard 0."""
    return 0 if guild_id is None else (int(guild_id) >> 22) % shard_count


@dataclass(eq=False)
class GatewaySession:
    id: str
    intents: int
    shard: tuple[int, int] | None = None  # (shard id, shard count) from IDENTIFY; None: unsharded
    sequence: int = 0
    events: list[dict] = field(default_factory=list, repr=False)  # sent dispatches, for RESUME
    ws: web.WebSocketResponse | None = None  # None while the client is away (reconnecting)
    ended: bool = False  # closed normally or invalidated: cannot be resumed, gets no more events
    resumes: int = 0  # RESUMEs that picked this session up again

    def receives(self, guild_id: int | None) -> bool:
        """Whether Discord would send this session the events of that server (None: no server, e.g. a DM)."""
        return self.shard is None or shard_of(guild_id, self.shard[1]) == self.shard[0]


class Gateway:
    """The gateway half of DiscordDouble (uses its state): one session per IDENTIFY, resumable until closed."""

    @property
    def intents(self) -> int | None:
        """Intents of the last IDENTIFY."""
        return self.identifies[-1]["intents"] if self.identifies else None

    @property
    def connected(self) -> bool:
        return any(s.ws is not None and not s.ws.closed for s in self.sessions.values())

    def gateway_bot(self) -> dict:
        """GET /gateway/bot: where to connect, the recommended shard count and the session start limits."""
        limit = {
            "total": self.session_start_total,
            "remaining": self.session_start_total - len(self.sessions),
            "reset_after": 24 * 3600 * 1000,
            "max_concurrency": self.max_concurrency,
        }
        return {"url": self.gateway_url, "shards": self.recommended_shards, "session_start_limit": limit}

    async def _gateway_socket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(max_msg_size=0)
        await ws.prepare(request)
        hello = {"heartbeat_interval": int(self.heartbeat_interval * 1000)}
        await ws.send_str(json.dumps({"op": Op.HELLO, "d": hello}))
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
            session.ended = session.ended or ws.close_code in (1000, 1001)
        self._notify()
        return ws

    def _identify_too_soon(self, shard_id: int) -> bool:
        """Discord's start limit: one IDENTIFY per ``identify_window`` in each bucket ``shard_id % max_concurrency``."""
        if not self.identify_window:
            return False
        bucket, now = shard_id % self.max_concurrency, time.monotonic()
        if now - self._last_identify.get(bucket, -1e9) < self.identify_window:
            return True
        self._last_identify[bucket] = now
        return False

    async def _identify(self, ws: web.WebSocketResponse, data: dict) -> GatewaySession | None:
        self.identifies.append(data)
        if data.get("token") != self.token:
            await ws.close(code=4004, message=b"Authentication failed.")
            return None
        shard = tuple(data["shard"]) if data.get("shard") else None
        if shard is not None and not (len(shard) == 2 and 0 <= shard[0] < shard[1]):
            await ws.close(code=4010, message=b"Invalid shard.")
            return None
        if shard is None and len(self.guilds) > SHARDING_REQUIRED_OVER:
            await ws.close(code=4011, message=b"Sharding required.")
            return None
        intents = int(data.get("intents", 0))
        if intents & PRIVILEGED_INTENTS & ~self.privileged_intents:
            await ws.close(code=4014, message=b"Disallowed intent(s).")
            return None
        if self._identify_too_soon(shard[0] if shard else 0):
            self.invalid_sessions.append(shard)
            await ws.send_str(json.dumps({"op": Op.INVALIDATE_SESSION, "d": False}))
            return None
        session = GatewaySession(secrets.token_hex(16), intents, shard, ws=ws)
        self.sessions[session.id] = session
        enabled = self.privileged_intents
        flags = discord.ApplicationFlags(
            gateway_presence_limited=bool(enabled & GUILD_PRESENCES),
            gateway_guild_members_limited=bool(enabled & GUILD_MEMBERS),
            gateway_message_content_limited=bool(enabled & MESSAGE_CONTENT),
        ).value
        guilds = [g for g in self.guilds if session.receives(g.id)]
        ready = {
            "v": 10,
            "user": {**self.bot_user.to_json(), "verified": True, "mfa_enabled": False},
            "guilds": [{"id": str(g.id), "unavailable": True} for g in guilds],
            "session_id": session.id,
            "resume_gateway_url": self.gateway_url,
            "session_type": "normal",
            "application": {"id": str(self.application_id), "flags": flags},
            "private_channels": [],
            "relationships": [],
            "presences": [],
            "guild_join_requests": [],
            "geo_ordered_rtc_regions": [],
            "user_settings": {},
        }
        if shard is not None:
            ready["shard"] = list(shard)
        await self._send_event(session, "READY", ready)
        if intents & GUILDS:
            for guild in guilds:
                await self._send_event(session, "GUILD_CREATE", guild.to_json())
        self._notify()
        return session

    async def _resume(self, ws: web.WebSocketResponse, data: dict) -> GatewaySession | None:
        session = self.sessions.get(data.get("session_id"))
        if session is None or session.ended or data.get("token") != self.token:
            await ws.send_str(json.dumps({"op": Op.INVALIDATE_SESSION, "d": False}))
            return None
        session.ws = ws
        session.resumes += 1
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
            try:
                await session.ws.send_str(json.dumps(event))
            except ConnectionError:  # the socket went away under us: the event waits for a RESUME
                pass

    def _live_sessions(self, required: bool = True, guild_id: int | None = None) -> list[GatewaySession]:
        """Sessions that receive a server's events: connected ones, and resumable ones (their events are replayed).

        Events a test sends require one; echoes of what the client did over REST (possibly while
        it shuts down) do not.
        """
        live = [s for s in self.sessions.values() if not s.ended and s.receives(guild_id)]
        if required and not live:
            where = "" if guild_id is None else f" holding the shard of server {guild_id}"
            raise RuntimeError(f"no client{where} is connected to the Discord double")
        return live

    async def dispatch(
        self, name: str, data: dict, *, intent: int = 0, required: bool = True, guild_id: int | None = None
    ) -> list[GatewaySession]:
        """Send a dispatch event to every live session of that server's shard that asked for ``intent`` (0: always)."""
        sent = []
        for session in self._live_sessions(required, guild_id):
            if not intent or session.intents & intent:
                await self._send_event(session, name, data)
                sent.append(session)
        return sent

    async def _dispatch_message(self, name: str, message: Message) -> None:
        """MESSAGE_CREATE/UPDATE with content blanked for clients without the message-content intent."""
        if message.ephemeral or (message.author is self.bot_user and not self.echo_bot_messages):
            return
        dm = message.guild is None
        guild_id = None if dm else message.guild.id
        for session in self._live_sessions(message.author is not self.bot_user, guild_id):
            if not session.intents & (DIRECT_MESSAGES if dm else GUILD_MESSAGES):
                continue
            readable = (
                session.intents & MESSAGE_CONTENT
                or dm
                or message.author is self.bot_user
                or self.bot_user in message.mentions
            )
            await self._send_event(session, name, message.to_json(blank=not readable))

    def _sockets(self) -> list[web.WebSocketResponse]:
        sockets = [s.ws for s in self.sessions.values() if not s.ended and s.ws is not None and not s.ws.closed]
        if not sockets:
            raise RuntimeError("no client is connected to the Discord double right now")
        return sockets

    async def reconnect_client(self) -> None:
        """Ask the client to reconnect (op 7); it resumes its session and gets the events it missed."""
        for ws in self._sockets():
            await ws.send_str(json.dumps({"op": Op.RECONNECT, "d": None}))

    async def drop_connections(self) -> None:
        """The network drops every gateway connection (no close frame); clients resume their sessions."""
        dropped = self._sockets()
        for ws in dropped:
            transport = ws._req.transport if ws._req is not None else None
            if transport is not None:
                transport.abort()
        # Wait for the double to notice, not for "disconnected": a client may be back already.
        await self.wait_for(
            lambda: all(s.ws not in dropped for s in self.sessions.values()), 10.0, "the dropped connections to close"
        )

    async def invalidate_sessions(self) -> None:
        """Op 9 with d=false to every client: its session is gone, it must IDENTIFY again (events meanwhile lost)."""
        for session in [s for s in self.sessions.values() if not s.ended]:
            session.ended = True
            if session.ws is not None and not session.ws.closed:
                with contextlib.suppress(ConnectionError):
                    await session.ws.send_str(json.dumps({"op": Op.INVALIDATE_SESSION, "d": False}))

    async def ping_client(self, timeout: float = 10.0) -> float:
        """Request a heartbeat (op 1) and return the seconds until it arrives: the client's event-loop lag."""
        count, start = len(self.heartbeats), time.monotonic()
        for ws in self._sockets():
            await ws.send_str(json.dumps({"op": Op.HEARTBEAT, "d": None}))
        await self.wait_for(lambda: len(self.heartbeats) > count, timeout, "a requested heartbeat")
        return self.heartbeats[count] - start

    async def announce_guild(self, guild: Guild) -> None:
        """GUILD_CREATE for a guild added after the client connected (the bot joined it)."""
        await self.dispatch("GUILD_CREATE", guild.to_json(), intent=GUILDS, guild_id=guild.id)

    async def remove_guild(self, guild: Guild) -> None:
        """The bot is removed from a guild (GUILD_DELETE); its channels become unknown."""
        self.guilds.remove(guild)
        for channel in [*guild.channels, *guild.threads]:
            self.channels.pop(channel.id, None)
        await self.dispatch("GUILD_DELETE", {"id": str(guild.id)}, intent=GUILDS, guild_id=guild.id)
