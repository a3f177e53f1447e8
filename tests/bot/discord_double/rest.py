"""The REST API the bot calls: login, command sync, interaction callbacks and webhooks, channel messages."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import discord
from aiohttp import web
from discord import AppCommandType, InteractionType, MessageType
from discord import InteractionResponseType as Response

from .interactions import CHAT_INPUT, InteractionRecord, command_schema_errors
from .world import (
    ATTACHMENT_SIZE_LIMIT,
    CONTENT_LIMIT,
    EMBED_FIELD_LIMITS,
    EMBED_TOTAL_LIMIT,
    EMBEDS_LIMIT,
    EPHEMERAL,
    LOADING,
    Attachment,
    Channel,
    Message,
    User,
    Webhook,
    would_ping,
)

MESSAGE, DEFERRED = Response.channel_message.value, Response.deferred_channel_message.value
DEFERRED_UPDATE, UPDATE = Response.deferred_message_update.value, Response.message_update.value
ALLOWED_CALLBACKS = {  # the answers Discord accepts to each kind of interaction
    InteractionType.application_command.value: {MESSAGE, DEFERRED, Response.modal.value},
    InteractionType.component.value: {MESSAGE, DEFERRED, DEFERRED_UPDATE, UPDATE, Response.modal.value},
    InteractionType.autocomplete.value: {Response.autocomplete_result.value},
    InteractionType.modal_submit.value: {MESSAGE, DEFERRED, DEFERRED_UPDATE, UPDATE},
}


UNAUTHENTICATED = re.compile(r"/(interactions|webhooks)/")  # no token, and outside the global rate limit
SENDS_AND_EDITS = r"^/(webhooks/\d+/[^/]+(/messages/[^/]+)?|channels/\d+/messages(/\d+)?)$"  # POST or PATCH


@dataclass
class _Limit:
    """An injected rate limit: the next ``count`` matching requests get 429."""

    count: int
    retry_after: float
    scope: str  # "route" or "global"
    methods: tuple[str, ...]
    path: re.Pattern


def _message_type(record: InteractionRecord) -> int:
    """The type of the messages that answer an interaction: a slash command's, a context menu's, or plain."""
    command = record.payload["data"].get("type")
    if command == AppCommandType.chat_input.value:
        return MessageType.chat_input_command.value
    if command in (AppCommandType.user.value, AppCommandType.message.value):
        return MessageType.context_menu_command.value
    return MessageType.default.value


log = logging.getLogger(__name__)


_ROUTES: list[tuple[str, re.Pattern, Callable]] = []  # (method, path pattern, handler), filled by @route


def route(method: str, pattern: str) -> Callable:
    """Register a DiscordDouble method as the handler of a REST route (path relative to /api/v10)."""

    def register(handler: Callable) -> Callable:
        _ROUTES.append((method, re.compile(pattern), handler))
        return handler

    return register


@dataclass
class Rejection:
    """A request the double refused the way Discord would (status, Discord error code, message, field errors)."""

    method: str
    path: str
    status: int
    code: int
    message: str
    errors: dict | None = None


@dataclass
class RequestRecord:
    method: str
    path: str
    query: dict
    body: Any
    files: list[tuple[str, bytes]]
    status: int = 0


class _Reject(Exception):
    """Raised inside a route to answer with a Discord-style JSON error."""

    def __init__(self, status: int, code: int, message: str, errors: dict | None = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.errors = status, code, message, errors


class RestRoutes:
    """The REST half of DiscordDouble (uses its state); handlers take (request, body, files, **path parameters)."""

    async def _rest(self, request: web.Request) -> web.Response:
        path = request.path.removeprefix("/api/v10")
        record = RequestRecord(request.method, path, dict(request.query), None, [])
        self.requests.append(record)
        try:
            body, files = await self._read_body(request)
            record.body, record.files = body, [(f.filename, f.data) for f in files]
            if not UNAUTHENTICATED.match(path) and request.headers.get("Authorization") != f"Bot {self.token}":
                raise _Reject(401, 0, "401: Unauthorized")
            found = next(
                (
                    (handler, match)
                    for method, pattern, handler in _ROUTES
                    if method == request.method and (match := pattern.fullmatch(path))
                ),
                None,
            )
            if found is None or not request.path.startswith("/api/v10/"):
                self.unknown_routes.append(f"{request.method} {path}")
                raise _Reject(404, 0, "404: Not Found")
            handler, match = found
            limited = self._rate_limit(request.method, path, match.groupdict())
            if limited is not None:
                record.status = 429
                return limited
            status, result = await handler(self, request, body, files, **match.groupdict())
        except _Reject as rejection:
            if rejection.status not in (401, 404) or rejection.code:  # unknown routes are recorded above
                self.rejected_requests.append(
                    Rejection(
                        request.method, path, rejection.status, rejection.code, rejection.message, rejection.errors
                    )
                )
            status, result = rejection.status, {"message": rejection.message, "code": rejection.code}
            if rejection.errors:
                result["errors"] = rejection.errors
        except Exception as error:  # a bug in the double: never a 5xx, which discord.py retries for seconds
            log.exception("the Discord double failed on %s %s", request.method, path)
            self.double_errors.append(f"{request.method} {path}: {error!r}")
            status, result = 400, {"message": f"the Discord double failed: {error!r}", "code": 0}
        record.status = status
        self._notify()
        if status == 204:
            return web.Response(status=204)
        # discord.py compares the content type with == "application/json": no charset suffix.
        return web.Response(status=status, body=json.dumps(result).encode(), content_type="application/json")

    def rate_limit(
        self,
        count: int = 1,
        *,
        retry_after: float = 0.3,
        scope: str = "route",
        methods: tuple[str, ...] = ("POST", "PATCH"),
        path: str = SENDS_AND_EDITS,
    ) -> None:
        """Answer the next ``count`` requests whose path matches ``path`` (a regex) with 429 and ``retry_after``.

        ``scope="global"`` also refuses, for ``retry_after`` seconds, every request a global limit
        covers (all but interaction callbacks and webhooks), as Discord does.
        """
        assert scope in ("route", "global"), scope
        self._limits.append(_Limit(count, retry_after, scope, methods, re.compile(path)))

    def _rate_limit(self, method: str, path: str, params: dict) -> web.Response | None:
        """A 429 when this request goes over a rate limit (injected, ``edit_rate_limit`` or a global one)."""
        now = asyncio.get_running_loop().time()
        if now < self._global_until and not UNAUTHENTICATED.match(path):
            return self._too_many(method, path, self._global_until - now, "global")
        for limit in self._limits:
            if limit.count > 0 and method in limit.methods and limit.path.search(path):
                limit.count -= 1
                if limit.scope == "global":
                    self._global_until = now + limit.retry_after
                return self._too_many(method, path, limit.retry_after, limit.scope)
        retry_after = self._edit_retry_after(method, params, now)
        return self._too_many(method, path, retry_after, "user") if retry_after else None

    def _too_many(self, method: str, path: str, retry_after: float, scope: str) -> web.Response:
        self.rate_limited.append(f"{method} {path}" + (" (global)" if scope == "global" else ""))
        body = json.dumps(
            {
                "message": "You are being rate limited.",
                "retry_after": round(retry_after, 3),
                "global": scope == "global",
            }
        ).encode()
        headers = {"Via": "1.1 google", "X-RateLimit-Scope": scope}  # without Via discord.py suspects Cloudflare
        if scope == "global":
            headers["X-RateLimit-Global"] = "true"
        else:
            headers.update(
                {
                    "X-RateLimit-Limit": "5",
                    "X-RateLimit-Remaining": "0",
                    "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                    "X-RateLimit-Bucket": "sends-and-edits",
                    "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}",
                }
            )
        self._notify()
        return web.Response(status=429, body=body, content_type="application/json", headers=headers)

    def _edit_retry_after(self, method: str, params: dict, now: float) -> float:
        """Seconds to wait when this edit goes over ``edit_rate_limit``; 0 when it may go through."""
        if self.edit_rate_limit is None or method != "PATCH" or "message" not in params:
            return 0.0
        count, window = self.edit_rate_limit
        key = params.get("channel") or params.get("token")
        times = self._edit_times[key] = [t for t in self._edit_times.get(key, []) if t > now - window]
        if len(times) >= count:
            return max(0.001, times[0] + window - now)
        times.append(now)
        return 0.0

    async def _read_body(self, request: web.Request) -> tuple[Any, list[Attachment]]:
        if request.content_type.startswith("multipart/"):
            body, uploads = {}, []
            async for part in await request.multipart():
                if part.name == "payload_json":
                    body = json.loads(await part.text())
                elif part.filename is not None:
                    uploads.append((part.name, part.filename, await part.read(), part.headers.get("Content-Type")))
            return body, [self._upload(body, *upload) for upload in uploads]
        raw = await request.read()
        return (json.loads(raw) if raw else None), []

    def _upload(self, body: dict, name: str, filename: str, data: bytes, content_type: str | None) -> Attachment:
        index = name.removeprefix("files[").removesuffix("]")
        listed = next((a for a in body.get("attachments", []) if str(a.get("id")) == index), {})
        # The channel is set when the message is known; the url only needs to be unique until then.
        attachment = Attachment(
            self.ids(),
            listed.get("filename", filename),
            data,
            content_type or "application/octet-stream",
            "",
            listed.get("description"),
        )
        attachment.url = f"{self.base_url}/attachments/0/{attachment.id}/{quote(attachment.filename)}"
        self.attachments[attachment.id] = attachment
        return attachment

    async def _download(self, request: web.Request) -> web.Response:
        attachment = self.attachments.get(int(request.match_info["id"]))
        if attachment is None:
            self.unknown_routes.append(f"GET {request.path}")
            return web.Response(
                status=404, body=b'{"message": "404: Not Found", "code": 0}', content_type="application/json"
            )
        return web.Response(body=attachment.data, headers={"Content-Type": attachment.content_type})

    # Route handlers take (request, body, uploaded files, **path parameters) and return (status, JSON).

    @route("GET", r"/users/@me")
    async def _get_me(self, request, body, files):
        return 200, {**self.bot_user.to_json(), "verified": True, "mfa_enabled": False, "locale": "en-US"}

    @route("GET", r"/oauth2/applications/@me")
    @route("GET", r"/applications/@me")
    async def _get_application(self, request, body, files):
        return 200, {
            "id": str(self.application_id),
            "name": self.bot_user.name,
            "description": "",
            "icon": None,
            "bot_public": True,
            "bot_require_code_grant": False,
            "owner": self.owner.to_json(),
            "team": None,
            "verify_key": "0" * 64,
            "flags": 0,
            "summary": "",
            "rpc_origins": [],
            "bot": self.bot_user.to_json(),
            "install_params": None,
            "tags": [],
        }

    @route("GET", r"/gateway/bot")
    async def _get_gateway_bot(self, request, body, files):
        return 200, self.gateway_bot()

    def _command_scope(self, app: str, guild: str | None) -> int | None:
        if int(app) != self.application_id:
            raise _Reject(403, 50001, "Missing Access")
        if guild is None:
            return None
        if self._guild(int(guild)) is None:
            raise _Reject(404, 10004, "Unknown Guild")
        return int(guild)

    @route("GET", r"/applications/(?P<app>\d+)(/guilds/(?P<guild>\d+))?/commands")
    async def _list_commands(self, request, body, files, app, guild):
        return 200, self.synced_commands.get(self._command_scope(app, guild), [])

    @route("PUT", r"/applications/(?P<app>\d+)(/guilds/(?P<guild>\d+))?/commands")
    async def _sync_commands(self, request, body, files, app, guild):  # bulk overwrite (tree.sync)
        scope = self._command_scope(app, guild)
        previous = {(c["name"], c.get("type", CHAT_INPUT)): c["id"] for c in self.synced_commands.get(scope, [])}
        keys = [(c.get("name"), c.get("type", CHAT_INPUT)) for c in body]
        if len(keys) != len(set(keys)):
            raise _Reject(400, 50035, "Invalid Form Body", {"_errors": f"duplicate command names: {keys}"})
        self.synced_commands[scope] = [self._command(c, scope, previous) for c in body]
        self.command_syncs.append(scope)
        return 200, self.synced_commands[scope]

    def _command(self, body: dict, scope: int | None, previous: dict) -> dict:
        errors = command_schema_errors(body)
        if errors:
            raise _Reject(400, 50035, "Invalid Form Body", errors)
        command_id = previous.get((body["name"], body.get("type", CHAT_INPUT))) or str(self.ids())
        command = {
            "description": "",
            "options": [],
            "default_member_permissions": None,
            "nsfw": False,
            **body,
            "id": command_id,
            "application_id": str(self.application_id),
            "version": "1",
        }
        if scope is not None:
            command["guild_id"] = str(scope)
        return command

    # ---- interaction callbacks and webhooks

    @route("POST", r"/interactions/(?P<interaction>\d+)/(?P<token>[^/]+)/callback")
    async def _interaction_callback(self, request, body, files, interaction, token):
        record = self.interactions.get(int(interaction))
        if record is None or record.token != token:
            raise _Reject(404, 10062, "Unknown interaction")
        if asyncio.get_running_loop().time() - record.created > self.interaction_timeout:
            raise _Reject(404, 10062, f"Unknown interaction (answered after {self.interaction_timeout}s)")
        if record.callbacks:
            raise _Reject(400, 40060, "Interaction has already been acknowledged.")
        kind, data = body.get("type"), body.get("data") or {}
        if kind not in ALLOWED_CALLBACKS[record.type] or (kind in (UPDATE, DEFERRED_UPDATE) and record.source is None):
            raise _Reject(
                400,
                50035,
                f"Invalid Form Body: callback type {kind} for interaction type {record.type}"
                f"{'' if record.source else ' without a message'}",
            )
        if kind in (MESSAGE, UPDATE):
            self._validate(data, files, creating=kind == MESSAGE)
        record.callbacks.append(body)
        record._mark(done=kind != DEFERRED)
        message = None
        if kind in (MESSAGE, DEFERRED):
            flags = ((data.get("flags") or 0) & EPHEMERAL) | (LOADING if kind == DEFERRED else 0)
            message = self._bot_message(
                record.channel,
                data if kind == MESSAGE else {},
                files,
                flags=flags,
                type=_message_type(record),
                interaction=record,
            )
            record.original = message
            await self._dispatch_message("MESSAGE_CREATE", message)
        elif kind in (DEFERRED_UPDATE, UPDATE):
            message = record.original = record.source
            if kind == UPDATE:
                await self._apply_edit(message, data, files)
        result = {
            "interaction": {
                "id": str(record.id),
                "type": record.type,
                "response_message_loading": kind == DEFERRED,
                "response_message_ephemeral": bool(message and message.ephemeral),
            },
            "resource": {"type": kind},
        }
        if message is not None and kind != DEFERRED_UPDATE:
            result["interaction"]["response_message_id"] = str(message.id)
            result["resource"]["message"] = message.to_json()
        if request.query.get("with_response") not in ("1", "true", "True"):
            return 204, None
        return 200, result

    def _interaction_by_token(self, app: str, token: str) -> InteractionRecord:
        record = self.by_token.get(token)
        if record is None or int(app) != self.application_id:
            raise _Reject(404, 10015, "Unknown Webhook")
        if not record.callbacks:
            raise _Reject(404, 10015, "Unknown Webhook (the interaction was not answered yet)")
        return record

    @route("POST", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)")
    async def _followup(self, request, body, files, app, token):
        if int(app) in self.webhooks:  # a channel webhook the bot made, not an interaction's
            return await self._execute_webhook(request, body, files, self.webhooks[int(app)], token)
        record = self._interaction_by_token(app, token)
        self._validate(body, files, creating=True)
        original = record.original
        if record.response_type == DEFERRED and original is not None and original.loading:
            # The first followup after a defer replaces the "thinking" message, keeping its ephemerality.
            if (body.get("flags") or 0) & EPHEMERAL and not original.ephemeral:
                self.ignored_requests.append(
                    f"{record!r}: the first followup after a public defer asked to be ephemeral, but Discord "
                    f"shows it to everyone (pass ephemeral=True to defer())"
                )
            await self._apply_edit(original, body, files)
            message = original
        else:
            message = self._bot_message(
                record.channel,
                body,
                files,
                flags=(body.get("flags") or 0) & EPHEMERAL,
                type=_message_type(record),
                interaction=record,
            )
            await self._dispatch_message("MESSAGE_CREATE", message)
        record.followups.append(message)
        record._mark(done=True)
        if request.query.get("wait") not in ("1", "true", "True"):
            return 204, None  # Discord answers a followup without ?wait=1 with no content
        return 200, message.to_json()

    def _webhook_message(self, record: InteractionRecord, message_id: str) -> Message:
        message = record.original if message_id == "@original" else self.messages.get(int(message_id))
        if message is None or message.deleted or (message_id != "@original" and message not in record.followups):
            raise _Reject(404, 10008, "Unknown Message")
        return message

    @route("PATCH", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<message>@original|\d+)")
    async def _edit_webhook_message(self, request, body, files, app, token, message):
        record = self._interaction_by_token(app, token)
        target = self._webhook_message(record, message)
        self._validate(body, files, creating=False)
        await self._apply_edit(target, body, files)
        if message == "@original":
            record.edits.append(body)
            record._mark(done=True)
        return 200, target.to_json()

    # ---- channel webhooks (members' voices)

    @staticmethod
    def _webhook_name(name: object, field: str) -> str:
        """Refuse a name Discord refuses: not 1-80 characters, or containing "clyde"."""
        if not isinstance(name, str) or not 1 <= len(name) <= 80:
            raise _Reject(400, 50035, "Invalid Form Body", {field: "Must be between 1 and 80 in length."})
        if "clyde" in name.lower():
            raise _Reject(400, 50035, "Invalid Form Body", {field: 'Username cannot contain "clyde"'})
        return name

    @route("POST", r"/channels/(?P<channel>\d+)/webhooks")
    async def _create_webhook(self, request, body, files, channel):
        target = self._channel(channel)
        if target.parent is not None or target.guild is None:
            raise _Reject(400, 50024, "Cannot execute action on this channel type")
        self._require(target, discord.Permissions(manage_webhooks=True))
        name = self._webhook_name((body or {}).get("name"), "name")
        hook = Webhook(self.ids(), secrets.token_urlsafe(32), target, name, self.bot_user)
        self.webhooks[hook.id] = hook
        return 200, hook.to_json()

    @route("GET", r"/channels/(?P<channel>\d+)/webhooks")
    async def _channel_webhooks(self, request, body, files, channel):
        target = self._channel(channel)
        self._require(target, discord.Permissions(manage_webhooks=True))
        return 200, [h.to_json() for h in self.webhooks.values() if h.channel is target]

    async def _execute_webhook(self, request, body, files, hook: Webhook, token: str):
        if token != hook.token:
            raise _Reject(401, 50027, "Invalid Webhook Token")
        target = hook.channel
        if "thread_id" in request.query:
            thread = self._channel(request.query["thread_id"])
            if thread.parent is not hook.channel:
                raise _Reject(400, 220001, "Target thread is not in the webhook's channel")
            target = thread
        self._validate(body, files, creating=True)
        name = self._webhook_name(body.get("username") or hook.name, "username")
        author = User(hook.id, name, bot=True)  # as on Discord: the webhook, under the name it was given
        message = Message(self.ids(), target, author, webhook_id=hook.id, avatar_url=body.get("avatar_url"))
        self._fill(message, body, files, creating=True)
        self._store(message)
        self.sent_messages.append(message)
        hook.executed.append(message)
        await self._dispatch_message("MESSAGE_CREATE", message)
        if request.query.get("wait") not in ("1", "true", "True"):
            return 204, None
        return 200, message.to_json()

    # ---- channels and messages

    def _channel(self, channel_id: str) -> Channel:
        channel = self.channels.get(int(channel_id))
        if channel is None:
            raise _Reject(404, 10003, "Unknown Channel")
        return channel

    def _require(self, channel: Channel, needed: discord.Permissions) -> None:
        """403 (Missing Permissions) unless the bot holds `needed` in the channel (``channel.deny_bot`` takes away)."""
        if channel.guild is None:
            return
        held = self.bot_permissions & ~(channel.parent or channel).bot_denied  # a thread has its channel's
        if needed.value & ~held:
            raise _Reject(403, 50013, "Missing Permissions")

    def _message(self, channel: Channel, message_id: str) -> Message:
        message = self.messages.get(int(message_id))
        if message is None or message.deleted or message.channel is not channel or message.ephemeral:
            raise _Reject(404, 10008, "Unknown Message")
        return message

    @route("GET", r"/channels/(?P<channel>\d+)/messages")
    async def _history(self, request, body, files, channel):  # history, newest first like Discord
        target = self._channel(channel)
        self._require(target, discord.Permissions(read_message_history=True))
        history = target.history()
        query = request.query
        limit = max(1, min(100, int(query.get("limit", 50))))
        if "after" in query:
            chosen = [m for m in history if m.id > int(query["after"])][:limit]
        elif "around" in query:
            index = next((i for i, m in enumerate(history) if m.id >= int(query["around"])), len(history))
            chosen = history[max(0, index - limit // 2) : index + (limit + 1) // 2]
        else:
            before = int(query.get("before", 0)) or None
            chosen = [m for m in history if before is None or m.id < before][-limit:]
        return 200, [m.to_json() for m in reversed(chosen)]

    @route("GET", r"/channels/(?P<channel>\d+)/messages/(?P<message>\d+)")
    async def _get_message(self, request, body, files, channel, message):  # channel.fetch_message: a reply chain
        target = self._channel(channel)
        self._require(target, discord.Permissions(read_message_history=True))
        return 200, self._message(target, message).to_json()

    @route("POST", r"/channels/(?P<channel>\d+)/typing")
    async def _typing(self, request, body, files, channel):  # channel.typing(): "Continuo is typing..." for 10 s
        target = self._channel(channel)
        self._require(target, discord.Permissions(send_messages=True))
        self.typing.append((target, time.monotonic()))
        return 204, None

    @route("POST", r"/channels/(?P<channel>\d+)/messages")
    async def _create_message(self, request, body, files, channel):  # channel.send, message.reply
        target = self._channel(channel)
        self._validate(body, files, creating=True)
        reference = body.get("message_reference")
        replied = self._message(target, reference["message_id"]) if reference else None
        kind = MessageType.reply if replied else MessageType.default
        message = self._bot_message(target, body, files, type=kind.value, reference=replied)
        await self._dispatch_message("MESSAGE_CREATE", message)
        return 200, message.to_json()

    @route("PATCH", r"/channels/(?P<channel>\d+)/messages/(?P<message>\d+)")
    async def _edit_message_route(self, request, body, files, channel, message):
        target = self._message(self._channel(channel), message)
        if target.author is not self.bot_user:
            raise _Reject(403, 50005, "Cannot edit a message authored by another user")
        self._validate(body, files, creating=False)
        await self._apply_edit(target, body, files)
        return 200, target.to_json()

    # ---- what the bot writes

    def _validate(self, body: dict, files: list[Attachment], *, creating: bool) -> None:
        """Refuse what Discord refuses: over-long content, too many or too big embeds, empty messages."""
        errors = {}
        content = body.get("content") or ""
        if len(content) > CONTENT_LIMIT:
            errors["content"] = f"Must be {CONTENT_LIMIT} or fewer in length (got {len(content)})."
        embeds = body.get("embeds") or []
        if len(embeds) > EMBEDS_LIMIT:
            errors["embeds"] = f"Must be {EMBEDS_LIMIT} or fewer in length."
        total = 0
        for index, embed in enumerate(embeds):
            for key, limit in EMBED_FIELD_LIMITS.items():
                if len(embed.get(key) or "") > limit:
                    errors[f"embeds.{index}.{key}"] = f"Must be {limit} or fewer in length."
            fields = embed.get("fields") or []
            if len(fields) > 25:
                errors[f"embeds.{index}.fields"] = "Must be 25 or fewer in length."
            for n, item in enumerate(fields):
                if len(item.get("name") or "") > 256 or len(item.get("value") or "") > 1024:
                    errors[f"embeds.{index}.fields.{n}"] = "Field name over 256 or value over 1024 characters."
            total += sum(len(embed.get(k) or "") for k in ("title", "description"))
            total += len((embed.get("footer") or {}).get("text") or "")
            total += len((embed.get("author") or {}).get("name") or "")
            total += sum(len(f.get("name") or "") + len(f.get("value") or "") for f in fields)
        if total > EMBED_TOTAL_LIMIT:
            errors["embeds"] = f"Embed size exceeds maximum size of {EMBED_TOTAL_LIMIT}"
        mentions = body.get("allowed_mentions") or {}
        for kind in ("users", "roles"):
            if kind in (mentions.get("parse") or []) and mentions.get(kind):
                errors[f"allowed_mentions.{kind}"] = f"parse:[{kind}] and {kind}: [...] are mutually exclusive."
        if errors:
            raise _Reject(400, 50035, "Invalid Form Body", errors)
        if sum(len(f.data) for f in files) > ATTACHMENT_SIZE_LIMIT:
            raise _Reject(413, 40005, "Request entity too large")
        if creating and not (
            content or embeds or files or body.get("components") or body.get("sticker_ids") or body.get("poll")
        ):
            raise _Reject(400, 50006, "Cannot send an empty message")

    def _bot_message(
        self,
        channel: Channel,
        body: dict,
        files: list[Attachment],
        *,
        flags: int = 0,
        type: int = 0,
        interaction: InteractionRecord | None = None,
        reference: Message | None = None,
    ) -> Message:
        message = Message(
            self.ids(),
            channel,
            self.bot_user,
            flags=flags,
            type=type,
            interaction=interaction,
            webhook_id=self.application_id if interaction else None,
            reference=reference,
        )
        self._fill(message, body, files, creating=True)
        self._store(message)
        self.sent_messages.append(message)
        return message

    def _fill(self, message: Message, body: dict, files: list[Attachment], creating: bool = False) -> None:
        """Apply a create or edit body (absent keys keep their value) and record what it would ping."""
        for attachment in files:
            attachment.url = attachment.url.replace("/attachments/0/", f"/attachments/{message.channel.id}/")
        if "content" in body:
            message.content = body["content"] or ""
        if "embeds" in body:
            message.embeds = body["embeds"] or []
        if "components" in body:
            message.components = body["components"] or []
        if "attachments" in body:
            kept = {str(a.get("id")) for a in body["attachments"] or []}
            message.attachments = [a for a in message.attachments if str(a.id) in kept]
        message.attachments += files
        if "allowed_mentions" in body:
            message.allowed_mentions = body["allowed_mentions"]
        if "flags" in body and body["flags"] is not None:
            message.flags = (message.flags & (EPHEMERAL | LOADING)) | (body["flags"] & ~(EPHEMERAL | LOADING))
        replied = message.reference.author if creating and message.reference is not None else None
        for ping in would_ping(message.content if "content" in body else "", body.get("allowed_mentions"), replied):
            message.pings.append(ping)
            self.pings.append((message, ping))

    async def _apply_edit(self, message: Message, body: dict, files: list[Attachment]) -> None:
        was_loading = message.loading
        message.flags &= ~LOADING
        self._fill(message, body, files)
        message.edits.append(body)
        if not was_loading:
            message.edited = datetime.now(UTC).isoformat()
        await self._dispatch_message("MESSAGE_UPDATE", message)
