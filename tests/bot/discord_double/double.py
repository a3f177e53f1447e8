"""DiscordDouble: the world, the gateway and the REST routes on one aiohttp server, and the waits tests use."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import discord
import yarl
from aiohttp import web
from discord import MessageType

from .gateway import Gateway, GatewaySession
from .interactions import CommandRefused, InteractionRecord, UserActions
from .rest import Rejection, RequestRecord, RestRoutes
from .world import (
    DEFAULT_BOT_PERMISSIONS,
    DIRECT_MESSAGES,
    DM_CHANNEL,
    GUILD_MESSAGES,
    GUILDS,
    MENTION,
    PRIVILEGED_INTENTS,
    USER_CONTENT_LIMIT,
    Attachment,
    Channel,
    Guild,
    Message,
    User,
    Webhook,
    _Ids,
    permission_value,
)


class DiscordDouble(Gateway, RestRoutes, UserActions):
    """REST, gateway and attachment downloads on one 127.0.0.1 port; see the package docstring."""

    def __init__(
        self,
        *,
        heartbeat_interval: float = 1.0,
        token: str = "test-token",
        bot_name: str = "Continuo",
        interaction_timeout: float = 3.0,
        privileged_intents: int = PRIVILEGED_INTENTS,
        bot_permissions: int | discord.Permissions = DEFAULT_BOT_PERMISSIONS,
        echo_bot_messages: bool = True,
        edit_rate_limit: tuple[int, float] | None = None,
        recommended_shards: int = 1,
        max_concurrency: int = 1,
        identify_window: float = 0.0,
        port: int = 0,
    ) -> None:
        self.ids = _Ids()
        self.heartbeat_interval = heartbeat_interval  # seconds, sent in HELLO
        self.token = token  # the only token REST and IDENTIFY accept
        self.interaction_timeout = interaction_timeout  # Discord refuses callbacks later than 3 s
        self.privileged_intents = privileged_intents  # enabled "in the developer portal"
        self.bot_permissions = permission_value(bot_permissions)
        self.echo_bot_messages = echo_bot_messages  # dispatch the bot's own messages back, like Discord
        self.edit_rate_limit = edit_rate_limit  # (edits, seconds) per channel or interaction, else 429; None: off
        self.rate_limited: list[str] = []  # requests answered with 429 (discord.py waits and retries them)
        self._edit_times: dict[str, list[float]] = {}
        self._limits: list = []  # injected by rate_limit()
        self._global_until = 0.0  # loop time until which a global rate limit refuses requests
        self.recommended_shards = recommended_shards  # the "shards" of GET /gateway/bot
        self.max_concurrency = max_concurrency  # IDENTIFY buckets: shard_id % max_concurrency
        self.identify_window = identify_window  # seconds between IDENTIFYs of a bucket, else op 9 (Discord: 5); 0: off
        self.session_start_total = 1000  # IDENTIFYs a day
        self.invalid_sessions: list[tuple[int, int] | None] = []  # shards refused with op 9 for identifying too fast
        self._last_identify: dict[int, float] = {}
        self.command_syncs: list[int | None] = []  # the scope of every bulk command overwrite (None: global)
        self.bot_user = User(self.ids(), bot_name, bot=True)
        self.application_id = self.bot_user.id
        self.owner = User(self.ids(), "owner")  # owns the guilds and the application
        self.users: dict[int, User] = {u.id: u for u in (self.bot_user, self.owner)}
        self.guilds: list[Guild] = []
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.attachments: dict[int, Attachment] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.webhooks: dict[int, Webhook] = {}  # channel webhooks the bot made, by id
        self.by_token: dict[str, InteractionRecord] = {}
        self.synced_commands: dict[int | None, list[dict]] = {None: []}
        self.sent_messages: list[Message] = []
        self.typing: list[tuple[Channel, float]] = []  # typing indicators the bot started: (channel, monotonic time)
        self.pings: list[tuple[Message, str]] = []
        self.unknown_routes: list[str] = []
        self.rejected_requests: list[Rejection] = []
        self.requests: list[RequestRecord] = []
        self.identifies: list[dict] = []
        self.heartbeats: list[float] = []
        self.unknown_gateway_ops: list[dict] = []
        self.client_errors: list[str] = []  # filled by run_client from the discord logger
        self.double_errors: list[str] = []  # bugs in the double itself (answered with a 400, never a 5xx)
        self.ignored_requests: list[str] = []  # what Discord would silently do otherwise than the bot asked
        self.sessions: dict[str, GatewaySession] = {}
        self._watched: list[asyncio.Task] = []
        self._changed: asyncio.Event | None = None
        self._runner: web.AppRunner | None = None
        self.port = port  # 0: a free one, chosen by start()

    # ------------------------------------------------------------------ lifecycle and addresses

    async def start(self, extra_routes: Callable[[web.Application], None] | None = None) -> None:
        """Listen on 127.0.0.1 (``extra_routes`` adds routes before the catch-all REST one)."""
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway_socket)
        if extra_routes is not None:
            extra_routes(app)
        app.router.add_get("/attachments/{channel}/{id}/{filename}", self._download)
        app.router.add_route("*", "/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]
        self._changed = asyncio.Event()

    async def stop(self) -> None:
        for session in self.sessions.values():
            if session.ws is not None and not session.ws.closed:
                await session.ws.close(code=1001)
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def rest_base(self) -> str:
        return f"{self.base_url}/api/v10"

    @property
    def gateway_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/gateway"

    @contextlib.contextmanager
    def patch_discord(self):
        """Point discord.py's REST and gateway at this double; restore the real addresses afterwards."""
        gateway = discord.gateway.DiscordWebSocket
        saved = discord.http.Route.BASE, gateway.DEFAULT_GATEWAY
        discord.http.Route.BASE, gateway.DEFAULT_GATEWAY = self.rest_base, yarl.URL(self.gateway_url)
        try:
            yield self
        finally:
            discord.http.Route.BASE, gateway.DEFAULT_GATEWAY = saved

    # ------------------------------------------------------------------ building the world

    def user(self, name: str, bot: bool = False) -> User:
        user = User(self.ids(), name, bot)
        self.users[user.id] = user
        return user

    def add_guild(self, name: str = "Guild", channels: Iterable[str] = ("general",)) -> Guild:
        """A guild owned by ``double.owner`` with the bot as a member (its role: bot_permissions)."""
        guild = Guild(self, self.ids(), name, self.owner)
        for channel in channels:
            guild.add_channel(channel)
        guild.add_member(self.owner)
        guild.add_member(self.bot_user, [guild.add_role(self.bot_user.name, self.bot_permissions)])
        self.guilds.append(guild)
        return guild

    async def add_thread(self, channel: Channel, name: str, owner: User | None = None) -> Channel:
        """A user (``owner``, by default the guild's owner) starts a public thread under a text channel.

        Connected clients of the guild's shard get THREAD_CREATE (with the GUILDS intent); a client
        that connects later finds it in GUILD_CREATE's ``threads``. Post in it with ``send_message``.
        """
        if channel.guild is None:
            raise ValueError(f"threads hang under a server's text channel, not under {channel!r}")
        guild = channel.guild
        thread = guild.add_thread(channel, name, owner or self.users[guild.owner_id])
        data = {**thread.to_json(), "newly_created": True}
        await self.dispatch("THREAD_CREATE", data, intent=GUILDS, required=False, guild_id=guild.id)
        self._notify()
        return thread

    def dm_channel(self, user: User) -> Channel:
        existing = next((c for c in self.channels.values() if c.guild is None and c.recipient is user), None)
        if existing is not None:
            return existing
        channel = Channel(self.ids(), user.name, None, type=DM_CHANNEL, recipient=user)
        self.channels[channel.id] = channel
        return channel

    def _guild(self, guild_id: int) -> Guild | None:
        return next((g for g in self.guilds if g.id == guild_id), None)

    def attachment(
        self,
        channel: Channel,
        filename: str,
        data: bytes,
        content_type: str | None = None,
        description: str | None = None,
    ) -> Attachment:
        """Bytes the double serves back at the returned attachment's url."""
        attachment_id = self.ids()
        url = f"{self.base_url}/attachments/{channel.id}/{attachment_id}/{quote(filename)}"
        text = filename.endswith(".txt")
        kind = content_type or ("text/plain; charset=utf-8" if text else "application/octet-stream")
        attachment = Attachment(attachment_id, filename, data, kind, url, description)
        self.attachments[attachment_id] = attachment
        return attachment

    # ------------------------------------------------------------------ waiting and checking

    def watch(self, task: asyncio.Task) -> None:
        """Make every wait fail at once if this task (the client) ends."""
        self._watched.append(task)

    def _notify(self) -> None:
        if self._changed is not None:
            self._changed.set()
            self._changed = asyncio.Event()

    async def wait_for(
        self, predicate: Callable[[], Any], timeout: float = 10.0, what: str | Callable[[], str] = "a condition"
    ) -> Any:
        """Wait until predicate() is truthy and return its value; fail fast if the client died or logged errors.

        ``what`` (or what it returns, evaluated on failure) names the awaited thing in the error.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not (result := predicate()):
            self._check_client(what() if callable(what) else what)
            remaining = deadline - loop.time()
            if remaining <= 0:
                what = what() if callable(what) else what
                raise TimeoutError(f"timed out after {timeout}s waiting for {what}; {self._state_summary()}")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.05))  # client state changes unannounced
        return result

    def _check_client(self, what: str) -> None:
        for task in self._watched:
            if task.done():
                problem = "was cancelled" if task.cancelled() else f"ended: {task.exception()!r}"
                raise RuntimeError(f"the client {problem} while waiting for {what}; {self._state_summary()}")
        if self.client_errors or self.double_errors:
            raise AssertionError(
                f"errors while waiting for {what}: client: {self.client_errors}, double: {self.double_errors}"
            )

    def _state_summary(self) -> str:
        return (
            f"unknown routes: {self.unknown_routes}, rejected: {self.rejected_requests}, "
            f"client errors: {self.client_errors}"
        )

    def assert_clean(self) -> None:
        assert not self.unknown_routes, f"the client called routes the double does not know: {self.unknown_routes}"
        assert not self.rejected_requests, f"Discord would have refused: {self.rejected_requests}"
        assert not self.client_errors, f"the client logged errors: {self.client_errors}"
        assert not self.double_errors, f"the Discord double itself failed: {self.double_errors}"
        assert not self.ignored_requests, f"Discord would not have done what the client asked: {self.ignored_requests}"
        assert not self.unanswered, f"interactions never answered (or answered too late): {self.unanswered}"

    @property
    def unanswered(self) -> list[InteractionRecord]:
        """Interactions without an accepted callback: Discord shows "The application did not respond"."""
        return [r for r in self.interactions.values() if not r.callbacks]

    def max_heartbeat_gap(self, since: float | None = None) -> float:
        """Longest time without a heartbeat after ``since`` (time.monotonic()), counting up to now."""
        since = self.heartbeats[0] if since is None and self.heartbeats else since
        if since is None:
            raise AssertionError("no heartbeat was ever received")
        times = [since] + [t for t in self.heartbeats if t > since] + [time.monotonic()]
        return max(b - a for a, b in itertools.pairwise(times))

    # ------------------------------------------------------------------ messages from users

    async def send_message(
        self,
        channel: Channel,
        author: User,
        content: str,
        *,
        mentions: Iterable[User] = (),
        attachments: Iterable[tuple] = (),
        reply_to: Message | None = None,
        dispatch: bool = True,
    ) -> Message:
        """A user posts a message (MESSAGE_CREATE); ``dispatch=False`` only adds it to the history."""
        if len(content) > USER_CONTENT_LIMIT:
            raise CommandRefused(
                f"Discord does not let users send {len(content)} characters (at most {USER_CONTENT_LIMIT})"
            )
        if channel.guild is not None:
            channel.guild.member(author)
        found = [self.users[int(u)] for u, _, _ in MENTION.findall(content) if u and int(u) in self.users]
        kind = MessageType.reply if reply_to else MessageType.default
        message = Message(
            self.ids(),
            channel,
            author,
            content,
            type=kind.value,
            reference=reply_to,
            mentions=list(dict.fromkeys([*found, *mentions])),
            attachments=[self.attachment(channel, *a) for a in attachments],
        )
        self._store(message)
        if dispatch:
            await self._dispatch_message("MESSAGE_CREATE", message)
        return message

    async def edit_message(self, message: Message, content: str) -> Message:
        """A user edits their message (MESSAGE_UPDATE)."""
        message.content, message.edited = content, datetime.now(UTC).isoformat()
        message.edits.append({"content": content})
        await self._dispatch_message("MESSAGE_UPDATE", message)
        self._notify()
        return message

    async def delete_message(self, message: Message, *, required: bool = True) -> None:
        """A message is deleted (MESSAGE_DELETE)."""
        message.deleted = True
        data = {"id": str(message.id), "channel_id": str(message.channel.id)}
        if message.guild is not None:
            data["guild_id"] = str(message.guild.id)
        intent = DIRECT_MESSAGES if message.guild is None else GUILD_MESSAGES
        await self.dispatch(
            "MESSAGE_DELETE",
            data,
            intent=intent,
            required=required,
            guild_id=message.guild.id if message.guild else None,
        )
        self._notify()

    def _store(self, message: Message) -> None:
        self.messages[message.id] = message
        message.channel.messages.append(message)
        self._notify()
