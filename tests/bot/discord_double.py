"""A local Discord double: REST and gateway on 127.0.0.1 that the real, unpatched discord.py client talks to.

Only two URL constants of discord.py are changed (``discord.http.Route.BASE`` and
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``), by ``double.patch_discord()`` or the
``discord_double`` fixture. See ../shared/notes/discord-protocol.md for the protocol facts it relies on.

Test API (everything is async-safe on the test's event loop; the double runs in that same loop)
---------------------------------------------------------------------------------------------
Setup::

    double = DiscordDouble(heartbeat_interval=0.2)   # seconds; Discord's is 41.25
    await double.start()                             # random port on 127.0.0.1
    with double.patch_discord():                     # points discord.py here, restores afterwards
        async with run_client(bot, double):          # bot.start(double.token), waits for on_ready
            ...
    await double.stop()

In tests use the fixtures of tests/bot/conftest.py instead: ``discord_double`` (started and patched)
and ``start_client`` (``bot = await start_client(bot)``; closed at teardown, where ``assert_clean()``
fails the test on ERROR records of the ``discord`` logger, unknown routes and refused requests).
Outside tests (bench/), put tests/bot on sys.path and use ``DiscordDouble`` and ``run_client`` directly.

The world (build it before the client connects; ids are snowflakes; ``.mention`` gives ``<@id>``)::

    alpha = double.add_guild("Alpha")                # an @everyone role, a #general channel, the bot
    general = alpha.channel("general"); ideas = alpha.add_channel("ideas")
    mods = alpha.add_role("mods", permissions=discord.Permissions(manage_guild=True))
    ann = double.user("ann"); alpha.add_member(ann, roles=[mods])    # users join guilds on first use
    double.bot_user, double.application_id, double.token, double.owner, double.dm_channel(ann)
    await double.announce_guild(beta); await double.remove_guild(alpha)   # join/leave while connected
    channel.history(), guild.messages()              # visible messages, oldest first

Events to the connected client (each returns what it created)::

    rec = await double.slash_command(channel, ann, "continue", {"seed": "Once", "words": 5})
    rec = await double.slash_command(channel, ann, "corpus add", {"file": ("a.txt", b"text")})
    rec = await double.message_command(channel, ann, "Continue this message", message)
    rec = await double.user_command(channel, ann, "Profile", target_user)
    rec = await double.click_button(message, "confirm", ann)          # custom_id of a button on it
    rec = await double.select(message, "pick", ["a"], ann)
    rec = await double.submit_modal(rec, {"field": "value"}, ann)     # rec answered with a modal
    choices = await double.autocomplete(channel, ann, "corpus use", {"base": "ve"}, focused="base")
    msg = await double.send_message(channel, ann, f"{double.bot_user.mention} hi")  # MESSAGE_CREATE
    await double.edit_message(msg, "new text"); await double.delete_message(msg)
    msg = await double.send_message(channel, ann, "old", dispatch=False)  # history only (backfill)

Slash options are typed from the synced command (so a test cannot send what Discord would not):
str/int/float/bool values; a ``User``, ``Channel`` or ``Role`` for those types; an attachment is
``(filename, bytes)`` or ``(filename, bytes, content_type)`` and is served back by the double at
its ``url``. Sub-commands and groups are spaces in the name (``"corpus add"``). Unknown commands,
unknown or missing required options, values outside min/max/choices, and commands whose
``default_member_permissions`` the user lacks raise ``CommandRefused`` (Discord's client would not
send them); pass ``permissions=`` to override the member's computed permissions, and
``enforce_permissions=False`` to reach the bot's own permission checks.

Interaction records (``InteractionRecord``)::

    body = await rec.wait_response(timeout)     # the callback body {"type": 4/5/6/7/8/9, "data": {...}}
    msgs = await rec.wait_followups(n, timeout) # the n first followup Messages
    edits = await rec.wait_edits(n, timeout)    # PATCH bodies of @original
    await rec.wait_done(timeout)                # answered with content (deferred ones edited/followed up)
    await rec.wait_content("perplexity")        # the response's content once it contains that (or a predicate)
    rec.original (Message), rec.content, rec.ephemeral, rec.response_type, rec.followups, rec.edits,
    rec.modal, rec.choices, rec.latency (dispatch to callback, s), rec.done_latency (to an answer with content)

``Message`` has content, embeds, components, attachments (``Attachment.data`` holds the bytes),
flags, ephemeral, allowed_mentions, pings (what it would notify), edits (bodies), deleted, author.

Bookkeeping a test asserts on::

    double.sent_messages        # every Message the bot created, on any route, in order
    double.pings                # (message, "@everyone" | "user:ID" | "role:ID" | "reply:ID") it would notify
    double.unknown_routes       # requests to routes the double does not know (answered with a JSON 404)
    double.rejected_requests    # requests Discord would refuse (limits, empty message, late answers...)
    double.ignored_requests     # what Discord would silently do otherwise (an ephemeral followup after a public defer)
    double.rate_limited         # edits answered with 429 under DiscordDouble(edit_rate_limit=(5, 5.0)) (opt-in)
    double.unanswered           # interactions without an accepted callback ("The application did not respond")
    double.synced_commands      # {None: [global commands], guild_id: [guild commands]}
    double.identifies           # IDENTIFY payloads; double.intents is the last one's intents
    double.heartbeats           # monotonic times of heartbeats received
    double.max_heartbeat_gap(since)  # longest gap between heartbeats since then, including up to now
    await double.ping_client()  # round trip of a server-requested heartbeat (event-loop lag)
    await double.wait_for(predicate, timeout, what)  # generic wait, fails fast if the client died or
                                # logged an error; polls every 50 ms, so it sees the client's own state
    double.assert_clean()       # none of the above lists, client errors or errors of the double itself

Fidelity: MESSAGE_CREATE content is blanked without the message-content intent (except mentions of
the bot, DMs and the bot's own messages), guild message events need the GUILD_MESSAGES intent, the
bot receives its own non-ephemeral messages, privileged intents not enabled are refused with close
code 4014, a wrong token gets 401 / close 4004, callbacks later than ``interaction_timeout`` (3 s)
get "Unknown interaction", a second callback gets "already acknowledged", messages over Discord's
limits (2000 characters, 10 embeds, 6000 embed characters, 25 MiB of files) get 400 like Discord,
and the first followup after a defer fills the deferred message and keeps the defer's ephemerality, as
on Discord (so ``defer(ephemeral=True)`` decides whether an error sent as that followup is private).
"""
from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import logging
import re
import secrets
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, AsyncIterator, Callable, Iterable
from urllib.parse import quote

import discord
import yarl
from aiohttp import WSMsgType, web

DISCORD_EPOCH_MS = 1420070400000
EPHEMERAL = 1 << 6  # message flag
LOADING = 1 << 7  # message flag of a deferred response still "thinking"

GUILDS = 1 << 0  # intents
GUILD_MEMBERS = 1 << 1
GUILD_PRESENCES = 1 << 8
GUILD_MESSAGES = 1 << 9
DIRECT_MESSAGES = 1 << 12
MESSAGE_CONTENT = 1 << 15
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT

ADMINISTRATOR = discord.Permissions(administrator=True).value
DEFAULT_EVERYONE_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, embed_links=True, attach_files=True, read_message_history=True,
    add_reactions=True, use_application_commands=True, use_external_emojis=True, create_instant_invite=True,
).value
DEFAULT_BOT_PERMISSIONS = discord.Permissions(
    view_channel=True, send_messages=True, embed_links=True, attach_files=True, read_message_history=True,
    add_reactions=True, manage_messages=True, mention_everyone=True,  # worst case: its pings would notify
).value

ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024  # Discord's default upload limit per message (unboosted server)
CONTENT_LIMIT = 2000  # characters in a message a bot sends
USER_CONTENT_LIMIT = 4000  # characters a user may type (with Nitro; 2000 without)
EMBEDS_LIMIT = 10
EMBED_TOTAL_LIMIT = 6000
EMBED_FIELD_LIMITS = {"title": 256, "description": 4096}

COMMAND_TYPES = {1: "slash", 2: "user", 3: "message"}  # application command types
SUB_COMMAND, SUB_COMMAND_GROUP = 1, 2  # option types that nest
STRING, INTEGER, BOOLEAN, USER, CHANNEL, ROLE, MENTIONABLE, NUMBER, ATTACHMENT = range(3, 12)
MESSAGE_TYPE_FOR_COMMAND = {1: 20, 2: 23, 3: 23}  # CHAT_INPUT_COMMAND, CONTEXT_MENU_COMMAND
MENTION = re.compile(r"<@!?(\d+)>|<@&(\d+)>|@(everyone|here)")

log = logging.getLogger(__name__)


_ROUTES: list[tuple[str, re.Pattern, Callable]] = []  # (method, path pattern, handler), filled by @route


def route(method: str, pattern: str) -> Callable:
    """Register a DiscordDouble method as the handler of a REST route (path relative to /api/v10)."""
    def register(handler: Callable) -> Callable:
        _ROUTES.append((method, re.compile(pattern), handler))
        return handler
    return register


class CommandRefused(Exception):
    """What a real Discord client would not let a user send (unknown command, bad options, no permission)."""


class _Ids:
    """Snowflakes that increase strictly and carry the time they were made, like Discord's."""

    def __init__(self) -> None:
        self.last = 0

    def __call__(self) -> int:
        stamp = (int(time.time() * 1000) - DISCORD_EPOCH_MS) << 22
        self.last = max(self.last + 1, stamp)
        return self.last


def snowflake_time(snowflake: int) -> str:
    """ISO timestamp encoded in a snowflake."""
    ms = (snowflake >> 22) + DISCORD_EPOCH_MS
    return datetime.fromtimestamp(ms / 1000, tz=timezone.utc).isoformat()


def _permission_value(permissions: int | discord.Permissions) -> int:
    return permissions.value if isinstance(permissions, discord.Permissions) else int(permissions)


# ---------------------------------------------------------------------------------------- the world


@dataclass(eq=False)
class User:
    id: int
    name: str
    bot: bool = False

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def to_json(self) -> dict:
        return {"id": str(self.id), "username": self.name, "global_name": self.name, "discriminator": "0",
                "avatar": None, "bot": self.bot, "public_flags": 0, "flags": 0}


@dataclass(eq=False)
class Role:
    id: int
    name: str
    permissions: int = 0
    position: int = 0
    mentionable: bool = False

    @property
    def mention(self) -> str:
        return f"<@&{self.id}>"

    def to_json(self) -> dict:
        return {"id": str(self.id), "name": self.name, "permissions": str(self.permissions),
                "position": self.position, "color": 0, "colors": {"primary_color": 0}, "hoist": False,
                "managed": False, "mentionable": self.mentionable, "flags": 0}


@dataclass(eq=False)
class Member:
    user: User
    guild: Guild
    roles: list[Role] = field(default_factory=list)
    joined: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat())

    def __repr__(self) -> str:
        return f"<Member {self.user.name} of {self.guild.name}>"

    @property
    def permissions(self) -> int:
        if self.user.id == self.guild.owner_id:
            return discord.Permissions.all().value
        value = self.guild.everyone.permissions
        for role in self.roles:
            value |= role.permissions
        return discord.Permissions.all().value if value & ADMINISTRATOR else value

    def to_json(self, *, with_user: bool = True, with_permissions: bool = False) -> dict:
        data = {"roles": [str(r.id) for r in self.roles], "joined_at": self.joined, "nick": None, "avatar": None,
                "flags": 0, "deaf": False, "mute": False, "pending": False, "premium_since": None}
        if with_user:
            data["user"] = self.user.to_json()
        if with_permissions:
            data["permissions"] = str(self.permissions)
        return data


@dataclass(eq=False)
class Channel:
    id: int
    name: str
    guild: Guild | None
    type: int = 0  # 0 guild text, 1 DM
    position: int = 0
    recipient: User | None = None  # for DMs
    messages: list[Message] = field(default_factory=list)  # history, oldest first, deleted ones included

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def __repr__(self) -> str:
        return f"<Channel #{self.name} {self.id}>"

    def history(self) -> list[Message]:
        """Visible messages, oldest first."""
        return [m for m in self.messages if not m.deleted and not m.ephemeral]

    def to_json(self) -> dict:
        if self.guild is None:
            return {"id": str(self.id), "type": 1, "recipients": [self.recipient.to_json()], "last_message_id": None}
        return {"id": str(self.id), "type": self.type, "name": self.name, "position": self.position,
                "guild_id": str(self.guild.id), "permission_overwrites": [], "nsfw": False, "topic": None,
                "parent_id": None, "rate_limit_per_user": 0, "last_message_id": None, "flags": 0,
                "permissions": str(discord.Permissions.all().value)}


class Guild:
    """A server: roles (with @everyone, whose id is the guild's), text channels and members."""

    def __repr__(self) -> str:
        return f"<Guild {self.name} {self.id}>"

    def __init__(self, double: DiscordDouble, id: int, name: str, owner: User) -> None:
        self.double, self.id, self.name, self.owner_id = double, id, name, owner.id
        self.everyone = Role(id, "@everyone", DEFAULT_EVERYONE_PERMISSIONS)  # its id is the guild's, as on Discord
        self.roles: list[Role] = [self.everyone]
        self.channels: list[Channel] = []
        self.members: dict[int, Member] = {}

    def add_channel(self, name: str) -> Channel:
        channel = Channel(self.double.ids(), name, self, position=len(self.channels))
        self.channels.append(channel)
        self.double.channels[channel.id] = channel
        return channel

    def channel(self, name: str) -> Channel:
        found = next((c for c in self.channels if c.name == name), None)
        if found is None:
            raise LookupError(f"{self.name} has no channel {name!r}: {[c.name for c in self.channels]}")
        return found

    def messages(self) -> list[Message]:
        """Visible messages of every channel of this guild, oldest first."""
        return sorted((m for c in self.channels for m in c.history()), key=lambda m: m.id)

    def add_role(self, name: str, permissions: int | discord.Permissions = 0, mentionable: bool = False) -> Role:
        role = Role(self.double.ids(), name, _permission_value(permissions), len(self.roles), mentionable)
        self.roles.append(role)
        return role

    def add_member(self, user: User, roles: Iterable[Role] = ()) -> Member:
        member = self.members.get(user.id) or Member(user, self)
        member.roles.extend(r for r in roles if r not in member.roles)
        self.members[user.id] = member
        return member

    def member(self, user: User) -> Member:
        """The user's membership, joining them on first use."""
        return self.members.get(user.id) or self.add_member(user)

    def to_json(self) -> dict:
        return {
            "id": str(self.id), "name": self.name, "owner_id": str(self.owner_id), "icon": None, "splash": None,
            "description": None, "features": [], "verification_level": 0, "default_message_notifications": 0,
            "explicit_content_filter": 0, "mfa_level": 0, "nsfw_level": 0, "premium_tier": 0,
            "preferred_locale": "en-US", "system_channel_id": None, "afk_timeout": 300, "emojis": [],
            "stickers": [], "large": False, "unavailable": False, "joined_at": snowflake_time(self.id),
            "roles": [r.to_json() for r in self.roles], "channels": [c.to_json() for c in self.channels],
            "member_count": len(self.members),  # equal to the list: the client never asks for chunks
            "members": [m.to_json() for m in self.members.values()],
            "threads": [], "presences": [], "voice_states": [], "stage_instances": [],
            "guild_scheduled_events": [], "soundboard_sounds": [],
        }


@dataclass(eq=False, repr=False)
class Attachment:
    id: int
    filename: str
    data: bytes
    content_type: str
    url: str
    description: str | None = None

    def __repr__(self) -> str:
        return f"<Attachment {self.filename} {len(self.data)} bytes>"

    def to_json(self) -> dict:
        return {"id": str(self.id), "filename": self.filename, "size": len(self.data), "url": self.url,
                "proxy_url": self.url, "content_type": self.content_type, "description": self.description}


@dataclass(eq=False)
class Message:
    id: int
    channel: Channel
    author: User
    content: str = ""
    embeds: list[dict] = field(default_factory=list)
    components: list[dict] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    flags: int = 0
    type: int = 0
    allowed_mentions: dict | None = None  # as the last body that set it sent it
    mentions: list[User] = field(default_factory=list)  # for messages that tests send
    reference: Message | None = None
    interaction: InteractionRecord | None = None  # set on interaction responses and followups
    webhook_id: int | None = None
    pings: list[str] = field(default_factory=list)  # every notification its bodies would have caused
    edits: list[dict] = field(default_factory=list)  # bodies of edits, in order
    reactions: list[str] = field(default_factory=list)
    edited: str | None = None
    deleted: bool = False

    def __repr__(self) -> str:
        state = "".join(f" {s}" for s, on in (("ephemeral", self.ephemeral), ("loading", self.loading),
                                               ("deleted", self.deleted)) if on)
        return f"<Message {self.id} by {self.author.name} in #{self.channel.name}{state}: {self.content[:80]!r}>"

    @property
    def ephemeral(self) -> bool:
        return bool(self.flags & EPHEMERAL)

    @property
    def loading(self) -> bool:
        return bool(self.flags & LOADING)

    @property
    def guild(self) -> Guild | None:
        return self.channel.guild

    def to_json(self, *, blank: bool = False) -> dict:
        """The message object; ``blank`` drops what the message-content intent guards."""
        guild = self.guild
        data = {
            "id": str(self.id), "channel_id": str(self.channel.id), "author": self.author.to_json(),
            "content": "" if blank else self.content, "timestamp": snowflake_time(self.id),
            "edited_timestamp": self.edited, "tts": False, "pinned": False, "type": self.type,
            "flags": self.flags, "mention_everyone": "@everyone" in self.pings,
            "mentions": [u.to_json() for u in self.mentions], "mention_roles": [],
            "embeds": [] if blank else self.embeds, "components": [] if blank else self.components,
            "attachments": [] if blank else [a.to_json() for a in self.attachments],
            "reactions": [{"count": 1, "me": True, "emoji": {"id": None, "name": r}} for r in self.reactions],
        }
        if guild is not None:
            data["guild_id"] = str(guild.id)
            if self.author.id in guild.members and self.webhook_id is None:
                data["member"] = guild.members[self.author.id].to_json(with_user=False)
        if self.webhook_id is not None:
            data["webhook_id"] = str(self.webhook_id)
            data["application_id"] = str(self.webhook_id)
        if self.interaction is not None:
            data["interaction_metadata"] = self.interaction.metadata()
        if self.reference is not None:
            data["message_reference"] = {"type": 0, "message_id": str(self.reference.id),
                                         "channel_id": str(self.channel.id),
                                         **({"guild_id": str(guild.id)} if guild else {})}
            data["referenced_message"] = None if self.reference.deleted else self.reference.to_json(blank=blank)
        return data


def would_ping(content: str, allowed_mentions: dict | None, replied_to: User | None = None) -> list[str]:
    """What Discord would notify for this content: "@everyone", "user:ID", "role:ID" or "reply:ID".

    Without ``allowed_mentions`` Discord parses every mention; with it, only the kinds in ``parse``
    and the ids listed in ``users`` / ``roles``. Conservative: the author is assumed to be allowed
    to mention everyone and every role.
    """
    allowed = allowed_mentions if allowed_mentions is not None else {"parse": ["users", "roles", "everyone"]}
    parse = set(allowed.get("parse") or ())
    users = {int(u) for u in allowed.get("users") or ()}
    roles = {int(r) for r in allowed.get("roles") or ()}
    pings = []
    for user_id, role_id, everyone in MENTION.findall(content or ""):
        if everyone and "everyone" in parse:
            pings.append("@everyone")
        elif user_id and ("users" in parse or int(user_id) in users):
            pings.append(f"user:{user_id}")
        elif role_id and ("roles" in parse or int(role_id) in roles):
            pings.append(f"role:{role_id}")
    if replied_to is not None and (allowed_mentions is None or allowed.get("replied_user")):
        pings.append(f"reply:{replied_to.id}")
    return list(dict.fromkeys(pings))


SLASH_NAME = re.compile(r"[-_\w]{1,32}")  # Discord's rule, with \w for its letter and number classes


def command_schema_errors(command: dict) -> dict[str, str]:
    """What Discord's API would refuse in an application command (names, descriptions, option order, counts)."""
    errors: dict[str, str] = {}
    kind, name = command.get("type", 1), command.get("name", "")
    if kind == 1:
        _check_named(command, "", errors)
        _check_options(command.get("options") or [], "options", errors)
    elif not 1 <= len(name) <= 32 or command.get("description"):
        errors["name"] = f"context menu command {name!r}: 1 to 32 characters and no description"
    return errors


def _check_named(item: dict, where: str, errors: dict) -> None:
    name, description = item.get("name", ""), item.get("description", "")
    if not SLASH_NAME.fullmatch(name) or name != name.lower():
        errors[f"{where}name"] = f"{name!r} must be 1 to 32 lowercase letters, digits, - or _"
    if not 1 <= len(description) <= 100:
        errors[f"{where}description"] = f"{name!r}: the description must be 1 to 100 characters"


def _check_options(options: list[dict], where: str, errors: dict) -> None:
    if len(options) > 25:
        errors[where] = "at most 25 options"
    seen_optional = False
    for index, option in enumerate(options):
        at = f"{where}.{index}."
        _check_named(option, at, errors)
        if option.get("required"):
            if seen_optional:
                errors[f"{at}required"] = "required options must come before optional ones"
        else:
            seen_optional = True
        if len(option.get("choices") or []) > 25:
            errors[f"{at}choices"] = "at most 25 choices"
        if option.get("type") in (SUB_COMMAND, SUB_COMMAND_GROUP):
            _check_options(option.get("options") or [], f"{at}options", errors)


# ---------------------------------------------------------------------------------------- interactions


class InteractionRecord:
    """One interaction the double dispatched and everything the bot answered to it."""

    def __init__(self, double: DiscordDouble, payload: dict, channel: Channel, user: User,
                 source: Message | None = None) -> None:
        self.double, self.payload, self.channel, self.user = double, payload, channel, user
        self.id, self.token, self.type = int(payload["id"]), payload["token"], payload["type"]
        self.name = payload["data"].get("name") or payload["data"].get("custom_id")
        self.source = source  # the message a component or modal-from-component sits on
        self.created = asyncio.get_running_loop().time()  # loop time when it was dispatched
        self.answered_at: float | None = None  # loop time of the callback
        self.done_at: float | None = None  # loop time when the answer had content (a deferred one filled in)
        self.callbacks: list[dict] = []  # callback bodies; more than one is refused
        self.original: Message | None = None  # the response message (or the component's message)
        self.followups: list[Message] = []
        self.edits: list[dict] = []  # PATCH bodies of @original

    def __repr__(self) -> str:
        return f"<InteractionRecord {self.name!r} type={self.type} response={self.response_type}>"

    @property
    def response(self) -> dict | None:
        return self.callbacks[0] if self.callbacks else None

    @property
    def latency(self) -> float | None:
        """Seconds from dispatch to the callback (Discord allows 3)."""
        return None if self.answered_at is None else self.answered_at - self.created

    @property
    def done_latency(self) -> float | None:
        """Seconds from dispatch to an answer with content (for a deferred one: its first fill)."""
        return None if self.done_at is None else self.done_at - self.created

    def _mark(self, done: bool) -> None:
        now = asyncio.get_running_loop().time()
        self.answered_at = self.answered_at or now
        if done and self.done_at is None:
            self.done_at = now

    @property
    def response_type(self) -> int | None:
        return self.response["type"] if self.response else None

    @property
    def modal(self) -> dict | None:
        return self.response["data"] if self.response_type == 9 else None

    @property
    def choices(self) -> list[dict] | None:
        return self.response["data"].get("choices", []) if self.response_type == 8 else None

    @property
    def content(self) -> str | None:
        """The response message's current content (None before there is one)."""
        return self.original.content if self.original is not None else None

    @property
    def ephemeral(self) -> bool:
        return self.original is not None and self.original.ephemeral

    @property
    def messages(self) -> list[Message]:
        """The response message and the followups, each once."""
        found = [self.original] if self.original is not None else []
        return found + [m for m in self.followups if m is not self.original]

    def metadata(self) -> dict:
        return {"id": str(self.id), "type": self.type, "name": self.name, "user": self.user.to_json(),
                "authorizing_integration_owners": self.payload.get("authorizing_integration_owners", {})}

    async def wait_response(self, timeout: float = 10.0) -> dict:
        return await self.double.wait_for(lambda: self.response, timeout, f"a response to {self!r}")

    async def wait_followups(self, n: int = 1, timeout: float = 10.0) -> list[Message]:
        await self.double.wait_for(lambda: len(self.followups) >= n, timeout, f"{n} followups to {self!r}")
        return self.followups[:n]

    async def wait_edits(self, n: int = 1, timeout: float = 10.0) -> list[dict]:
        await self.double.wait_for(lambda: len(self.edits) >= n, timeout, f"{n} edits of {self!r}")
        return self.edits[:n]

    async def wait_content(self, expected: str | Callable[[str], bool], timeout: float = 10.0) -> str:
        """The response's content once it contains ``expected`` (or satisfies it, if a predicate)."""
        check = expected if callable(expected) else (lambda content: expected in content)
        await self.double.wait_for(lambda: self.content is not None and check(self.content), timeout,
                                   lambda: f"content {expected!r} in the response to {self!r} (now {self.content!r})")
        return self.content

    async def wait_done(self, timeout: float = 10.0) -> Message:
        """The response message once it is no longer a deferred "thinking" placeholder."""
        def done() -> Message | None:
            original = self.original
            return original if original is not None and not original.loading else None
        return await self.double.wait_for(done, timeout, f"a finished response to {self!r}")


# ---------------------------------------------------------------------------------------- gateway


@dataclass(eq=False)
class GatewaySession:
    id: str
    intents: int
    sequence: int = 0
    events: list[dict] = field(default_factory=list, repr=False)  # sent dispatches, for RESUME
    ws: web.WebSocketResponse | None = None  # None while the client is away (reconnecting)
    ended: bool = False  # closed normally: cannot be resumed, gets no more events


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


class DiscordDouble:
    """REST, gateway and attachment downloads on one random 127.0.0.1 port; see the module docstring."""

    def __init__(self, *, heartbeat_interval: float = 1.0, token: str = "test-token", bot_name: str = "Continuo",
                 interaction_timeout: float = 3.0, privileged_intents: int = PRIVILEGED_INTENTS,
                 bot_permissions: int | discord.Permissions = DEFAULT_BOT_PERMISSIONS,
                 echo_bot_messages: bool = True, edit_rate_limit: tuple[int, float] | None = None) -> None:
        self.ids = _Ids()
        self.heartbeat_interval = heartbeat_interval  # seconds, sent in HELLO
        self.token = token  # the only token REST and IDENTIFY accept
        self.interaction_timeout = interaction_timeout  # Discord refuses callbacks later than 3 s
        self.privileged_intents = privileged_intents  # enabled "in the developer portal"
        self.bot_permissions = _permission_value(bot_permissions)
        self.echo_bot_messages = echo_bot_messages  # dispatch the bot's own messages back, like Discord
        self.edit_rate_limit = edit_rate_limit  # (edits, seconds) per channel or interaction, else 429; None: off
        self.rate_limited: list[str] = []  # requests answered with 429 (discord.py waits and retries them)
        self._edit_times: dict[str, list[float]] = {}
        self.bot_user = User(self.ids(), bot_name, bot=True)
        self.application_id = self.bot_user.id
        self.owner = User(self.ids(), "owner")  # owns the guilds and the application
        self.users: dict[int, User] = {u.id: u for u in (self.bot_user, self.owner)}
        self.guilds: list[Guild] = []
        self.channels: dict[int, Channel] = {}
        self.messages: dict[int, Message] = {}
        self.attachments: dict[int, Attachment] = {}
        self.interactions: dict[int, InteractionRecord] = {}
        self.by_token: dict[str, InteractionRecord] = {}
        self.synced_commands: dict[int | None, list[dict]] = {None: []}
        self.sent_messages: list[Message] = []
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
        self.port = 0

    # ------------------------------------------------------------------ lifecycle and addresses

    async def start(self) -> None:
        app = web.Application(client_max_size=64 * 1024 * 1024)
        app.router.add_get("/gateway", self._gateway_socket)
        app.router.add_get("/attachments/{channel}/{id}/{filename}", self._download)
        app.router.add_route("*", "/{path:.*}", self._rest)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
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

    def dm_channel(self, user: User) -> Channel:
        existing = next((c for c in self.channels.values() if c.guild is None and c.recipient is user), None)
        if existing is not None:
            return existing
        channel = Channel(self.ids(), user.name, None, type=1, recipient=user)
        self.channels[channel.id] = channel
        return channel

    def attachment(self, channel: Channel, filename: str, data: bytes, content_type: str | None = None,
                   description: str | None = None) -> Attachment:
        """Bytes the double serves back at the returned attachment's url."""
        attachment_id = self.ids()
        url = f"{self.base_url}/attachments/{channel.id}/{attachment_id}/{quote(filename)}"
        kind = content_type or ("text/plain; charset=utf-8" if filename.endswith(".txt") else "application/octet-stream")
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

    async def wait_for(self, predicate: Callable[[], Any], timeout: float = 10.0,
                       what: str | Callable[[], str] = "a condition") -> Any:
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
            raise AssertionError(f"errors while waiting for {what}: client: {self.client_errors}, "
                                 f"double: {self.double_errors}")

    def _state_summary(self) -> str:
        return (f"unknown routes: {self.unknown_routes}, rejected: {self.rejected_requests}, "
                f"client errors: {self.client_errors}")

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

    # ------------------------------------------------------------------ gateway

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
        await ws.send_str(json.dumps({"op": 10, "d": {"heartbeat_interval": int(self.heartbeat_interval * 1000)}}))
        session: GatewaySession | None = None
        async for frame in ws:
            if frame.type != WSMsgType.TEXT:
                continue
            message = json.loads(frame.data)
            op, data = message.get("op"), message.get("d")
            try:
                if op == 1:
                    self.heartbeats.append(time.monotonic())
                    await ws.send_str(json.dumps({"op": 11}))
                elif op == 2:
                    session = await self._identify(ws, data)
                elif op == 6:
                    session = await self._resume(ws, data)
                elif op == 8:
                    await self._send_member_chunks(session, data)
                elif op not in (3, 4):  # presence and voice state updates need no answer
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
        flags = ((1 << 13) * bool(self.privileged_intents & GUILD_PRESENCES)
                 | (1 << 15) * bool(self.privileged_intents & GUILD_MEMBERS)
                 | (1 << 19) * bool(self.privileged_intents & MESSAGE_CONTENT))
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
            await ws.send_str(json.dumps({"op": 9, "d": False}))
            return None
        session.ws = ws
        for event in session.events:
            if event["s"] > (data.get("seq") or 0):
                await ws.send_str(json.dumps(event))
        await self._send_event(session, "RESUMED", {})
        self._notify()
        return session

    async def _send_member_chunks(self, session: GatewaySession | None, data: dict) -> None:
        guild = self._guild(int(data["guild_id"]))
        if session is None or guild is None:
            return
        chunk = {"guild_id": str(guild.id), "members": [m.to_json() for m in guild.members.values()],
                 "chunk_index": 0, "chunk_count": 1, "nonce": data.get("nonce")}
        await self._send_event(session, "GUILD_MEMBERS_CHUNK", chunk)

    async def _send_event(self, session: GatewaySession, name: str, data: dict) -> None:
        session.sequence += 1
        event = {"op": 0, "t": name, "s": session.sequence, "d": data}
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
            await ws.send_str(json.dumps({"op": 7, "d": None}))

    async def ping_client(self, timeout: float = 10.0) -> float:
        """Request a heartbeat (op 1) and return the seconds until it arrives: the client's event-loop lag."""
        count, start = len(self.heartbeats), time.monotonic()
        for ws in self._sockets():
            await ws.send_str(json.dumps({"op": 1, "d": None}))
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

    # ------------------------------------------------------------------ messages from users

    async def send_message(self, channel: Channel, author: User, content: str, *, mentions: Iterable[User] = (),
                           attachments: Iterable[tuple] = (), reply_to: Message | None = None,
                           dispatch: bool = True) -> Message:
        """A user posts a message (MESSAGE_CREATE); ``dispatch=False`` only adds it to the history."""
        if len(content) > USER_CONTENT_LIMIT:
            raise CommandRefused(f"Discord does not let users send {len(content)} characters (at most {USER_CONTENT_LIMIT})")
        if channel.guild is not None:
            channel.guild.member(author)
        found = [self.users[int(u)] for u, _, _ in MENTION.findall(content) if u and int(u) in self.users]
        message = Message(self.ids(), channel, author, content, type=19 if reply_to else 0, reference=reply_to,
                          mentions=list(dict.fromkeys([*found, *mentions])),
                          attachments=[self.attachment(channel, *a) for a in attachments])
        self._store(message)
        if dispatch:
            await self._dispatch_message("MESSAGE_CREATE", message)
        return message

    async def edit_message(self, message: Message, content: str) -> Message:
        """A user edits their message (MESSAGE_UPDATE)."""
        message.content, message.edited = content, datetime.now(timezone.utc).isoformat()
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
        await self.dispatch("MESSAGE_DELETE", data, intent=intent, required=required)
        self._notify()

    def _store(self, message: Message) -> None:
        self.messages[message.id] = message
        message.channel.messages.append(message)
        self._notify()

    # ------------------------------------------------------------------ interactions from users

    def command(self, name: str, guild: Guild | None, type: int = 1) -> dict:
        """The synced command a user in ``guild`` sees under this name (guild commands first)."""
        scopes = ([guild.id] if guild else []) + [None]
        for scope in scopes:
            for command in self.synced_commands.get(scope, []):
                if command["name"] == name and command.get("type", 1) == type:
                    return command
        raise CommandRefused(f"no {COMMAND_TYPES[type]} command {name!r} was synced for "
                             f"{guild.name if guild else 'DMs'}; synced: {self._synced_names()}")

    def _synced_names(self) -> dict:
        return {scope: [c["name"] for c in commands] for scope, commands in self.synced_commands.items()}

    def _check_allowed(self, command: dict, channel: Channel, user: User, permissions: int) -> None:
        if channel.guild is None:
            contexts = command.get("contexts")
            if command.get("dm_permission") is False or (contexts is not None and 1 not in contexts):
                raise CommandRefused(f"{command['name']!r} is not available in DMs")
            return
        required = command.get("default_member_permissions")
        if required is None or permissions & ADMINISTRATOR:
            return
        if int(required) == 0 or int(required) & ~permissions:
            raise CommandRefused(f"{user.name} lacks the permissions {command['name']!r} needs ({required})")

    async def _interact(self, channel: Channel, user: User, type: int, data: dict, *,
                        permissions: int | discord.Permissions | None = None, message: Message | None = None,
                        ) -> InteractionRecord:
        guild = channel.guild
        payload = {
            "id": str(self.ids()), "application_id": str(self.application_id), "type": type,
            "token": secrets.token_urlsafe(32), "version": 1, "data": data,
            "channel_id": str(channel.id), "channel": channel.to_json(),
            "app_permissions": str(self.bot_permissions), "locale": "en-US",
            "entitlements": [], "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "authorizing_integration_owners": {"0": str(guild.id) if guild else "0"},
            "context": 0 if guild else 1,
        }
        if guild is not None:
            member = guild.member(user).to_json(with_permissions=True)
            if permissions is not None:
                member["permissions"] = str(_permission_value(permissions))
            payload.update(guild_id=str(guild.id), guild_locale="en-US", member=member,
                           guild={"id": str(guild.id), "locale": "en-US", "features": []})
        else:
            payload["user"] = user.to_json()
        if message is not None:
            payload["message"] = message.to_json()
        record = InteractionRecord(self, payload, channel, user, source=message)
        self.interactions[record.id] = record
        self.by_token[record.token] = record
        await self.dispatch("INTERACTION_CREATE", payload)
        return record

    def _member_permissions(self, channel: Channel, user: User, permissions) -> int:
        if permissions is not None:
            return _permission_value(permissions)
        return channel.guild.member(user).permissions if channel.guild else discord.Permissions.all().value

    async def slash_command(self, channel: Channel, user: User, name: str, options: dict | None = None, *,
                            permissions: int | discord.Permissions | None = None,
                            enforce_permissions: bool = True) -> InteractionRecord:
        """A user runs ``/name`` (sub-commands separated by spaces) with options typed by the synced schema."""
        data = self._command_data(channel, user, name, options or {}, permissions, enforce_permissions)
        return await self._interact(channel, user, 2, data, permissions=permissions)

    async def autocomplete(self, channel: Channel, user: User, name: str, options: dict, focused: str, *,
                           timeout: float = 10.0) -> list[dict]:
        """The choices the bot offers while ``focused`` is being typed (its value may be partial)."""
        data = self._command_data(channel, user, name, options, None, False, focused=focused)
        record = await self._interact(channel, user, 4, data)
        await record.wait_response(timeout)
        return record.choices

    def _command_data(self, channel, user, name, options, permissions, enforce, focused=None) -> dict:
        root, *path = name.split()
        command = self.command(root, channel.guild)
        if enforce:
            self._check_allowed(command, channel, user, self._member_permissions(channel, user, permissions))
        resolved: dict[str, dict] = {}
        schema, nested = command.get("options", []), []
        top = nested
        for part in path:
            option = next((o for o in schema if o["name"] == part and o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP)),
                          None)
            if option is None:
                raise CommandRefused(f"/{root} has no sub-command {part!r}")
            inner: list = []
            nested.append({"name": part, "type": option["type"], "options": inner})
            schema, nested = option.get("options", []), inner
        if any(o["type"] in (SUB_COMMAND, SUB_COMMAND_GROUP) for o in schema):
            raise CommandRefused(f"/{name} needs a sub-command: {[o['name'] for o in schema]}")
        nested.extend(self._options(name, schema, options, channel, resolved, focused))
        data = {"id": command["id"], "name": root, "type": 1, "options": top}
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        if resolved:
            data["resolved"] = resolved
        return data

    def _options(self, name, schema, values, channel, resolved, focused) -> list[dict]:
        by_name = {o["name"]: o for o in schema}
        unknown = set(values) - set(by_name)
        if unknown:
            raise CommandRefused(f"/{name} has no option {sorted(unknown)}; it has {sorted(by_name)}")
        missing = [o["name"] for o in schema if o.get("required") and o["name"] not in values and o["name"] != focused]
        if missing:
            raise CommandRefused(f"/{name} needs the options {missing}")
        result = []
        for key, value in values.items():
            option = by_name[key]
            entry = {"name": key, "type": option["type"],
                     "value": value if key == focused else self._option_value(name, option, value, channel, resolved)}
            if key == focused:
                entry["focused"] = True
            result.append(entry)
        return result

    def _option_value(self, name, option, value, channel, resolved) -> Any:
        kind, label = option["type"], f"/{name} {option['name']}"
        if kind in (STRING, INTEGER, NUMBER):
            expected = {STRING: str, INTEGER: int, NUMBER: (int, float)}[kind]
            if not isinstance(value, expected) or isinstance(value, bool):
                raise CommandRefused(f"{label} takes a {expected}, not {value!r}")
            choices = option.get("choices")
            if choices and value not in [c["value"] for c in choices]:
                raise CommandRefused(f"{label} must be one of {[c['value'] for c in choices]}")
            size = len(value) if kind == STRING else value
            low = option.get("min_length" if kind == STRING else "min_value")
            high = option.get("max_length" if kind == STRING else "max_value")
            if (low is not None and size < low) or (high is not None and size > high):
                raise CommandRefused(f"{label}={value!r} is outside {low}..{high}")
            return value
        if kind == BOOLEAN:
            return bool(value)
        if kind == ATTACHMENT:
            attachment = value if isinstance(value, Attachment) else self.attachment(channel, *value)
            if len(attachment.data) > ATTACHMENT_SIZE_LIMIT:
                raise CommandRefused(f"{label}: {attachment.filename} is over Discord's {ATTACHMENT_SIZE_LIMIT} bytes")
            resolved.setdefault("attachments", {})[str(attachment.id)] = attachment.to_json()
            return str(attachment.id)
        if isinstance(value, User) and kind in (USER, MENTIONABLE):
            resolved.setdefault("users", {})[str(value.id)] = value.to_json()
            if channel.guild is not None:
                member = channel.guild.member(value).to_json(with_user=False, with_permissions=True)
                resolved.setdefault("members", {})[str(value.id)] = member
            return str(value.id)
        if isinstance(value, Role) and kind in (ROLE, MENTIONABLE):
            resolved.setdefault("roles", {})[str(value.id)] = value.to_json()
            return str(value.id)
        if isinstance(value, Channel) and kind == CHANNEL:
            if option.get("channel_types") and value.type not in option["channel_types"]:
                raise CommandRefused(f"{label} takes channels of types {option['channel_types']}, not {value.type}")
            if value.guild is not channel.guild:
                raise CommandRefused(f"{label}: #{value.name} is not in this server")
            resolved.setdefault("channels", {})[str(value.id)] = value.to_json()
            return str(value.id)
        raise CommandRefused(f"{label} cannot take {value!r}")

    async def message_command(self, channel: Channel, user: User, name: str, target: Message, *,
                              permissions: int | discord.Permissions | None = None) -> InteractionRecord:
        """A user picks ``name`` in a message's Apps context menu."""
        resolved = {"messages": {str(target.id): target.to_json()}}
        return await self._context_menu(channel, user, name, 3, target.id, resolved, permissions)

    async def user_command(self, channel: Channel, user: User, name: str, target: User, *,
                           permissions: int | discord.Permissions | None = None) -> InteractionRecord:
        resolved = {"users": {str(target.id): target.to_json()}}
        if channel.guild is not None:
            member = channel.guild.member(target).to_json(with_user=False, with_permissions=True)
            resolved["members"] = {str(target.id): member}
        return await self._context_menu(channel, user, name, 2, target.id, resolved, permissions)

    async def _context_menu(self, channel, user, name, type, target_id, resolved, permissions) -> InteractionRecord:
        command = self.command(name, channel.guild, type)
        self._check_allowed(command, channel, user, self._member_permissions(channel, user, permissions))
        data = {"id": command["id"], "name": name, "type": type, "target_id": str(target_id), "resolved": resolved}
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        return await self._interact(channel, user, 2, data, permissions=permissions)

    async def click_button(self, message: Message, custom_id: str, user: User) -> InteractionRecord:
        """A user clicks the button ``custom_id`` on a message (it must be there and enabled)."""
        self._component(message, custom_id, 2)
        return await self._interact(message.channel, user, 3, {"custom_id": custom_id, "component_type": 2},
                                    message=message)

    async def select(self, message: Message, custom_id: str, values: list[str], user: User) -> InteractionRecord:
        """A user picks ``values`` in the string select ``custom_id`` on a message."""
        self._component(message, custom_id, 3)
        data = {"custom_id": custom_id, "component_type": 3, "values": values}
        return await self._interact(message.channel, user, 3, data, message=message)

    def _component(self, message: Message, custom_id: str, type: int) -> dict:
        def walk(components):
            for component in components:
                yield component
                yield from walk(component.get("components", []))
                if "component" in component:
                    yield from walk([component["component"]])
        found = next((c for c in walk(message.components) if c.get("custom_id") == custom_id), None)
        if found is None or found["type"] != type or found.get("disabled"):
            raise CommandRefused(f"message {message.id} has no enabled component {custom_id!r} of type {type}: "
                                 f"{message.components}")
        return found

    async def submit_modal(self, record: InteractionRecord, values: dict[str, str | list[str]], user: User | None = None,
                           ) -> InteractionRecord:
        """A user fills in and submits the modal that ``record`` was answered with."""
        modal = record.modal
        if modal is None:
            raise CommandRefused(f"{record!r} was not answered with a modal")

        def filled(component: dict) -> dict:
            if component["type"] == 1:
                return {"type": 1, "components": [filled(c) for c in component["components"]]}
            if component["type"] == 18:  # a label around one input
                return {"type": 18, "component": filled(component["component"])}
            if component["type"] == 4:  # text input
                return {"type": 4, "custom_id": component["custom_id"], "value": values.get(component["custom_id"], "")}
            return {"type": component["type"], "custom_id": component["custom_id"],  # a select: a list of values
                    "values": values.get(component["custom_id"], [])}
        data = {"custom_id": modal["custom_id"], "components": [filled(c) for c in modal["components"]]}
        return await self._interact(record.channel, user or record.user, 5, data, message=record.source)

    # ------------------------------------------------------------------ REST

    _UNAUTHENTICATED = re.compile(r"/(interactions|webhooks)/")

    async def _rest(self, request: web.Request) -> web.Response:
        path = request.path.removeprefix("/api/v10")
        record = RequestRecord(request.method, path, dict(request.query), None, [])
        self.requests.append(record)
        try:
            body, files = await self._read_body(request)
            record.body, record.files = body, [(f.filename, f.data) for f in files]
            if not self._UNAUTHENTICATED.match(path) and request.headers.get("Authorization") != f"Bot {self.token}":
                raise _Reject(401, 0, "401: Unauthorized")
            found = next(((handler, match) for method, pattern, handler in _ROUTES
                          if method == request.method and (match := pattern.fullmatch(path))), None)
            if found is None or not request.path.startswith("/api/v10/"):
                self.unknown_routes.append(f"{request.method} {path}")
                raise _Reject(404, 0, "404: Not Found")
            handler, match = found
            retry_after = self._edit_retry_after(request.method, match.groupdict())
            if retry_after:
                self.rate_limited.append(f"{request.method} {path}")
                body = json.dumps({"message": "You are being rate limited.", "retry_after": retry_after,
                                   "global": False}).encode()
                headers = {"Via": "1.1 google", "X-RateLimit-Limit": str(self.edit_rate_limit[0]),
                           "X-RateLimit-Remaining": "0", "X-RateLimit-Reset-After": f"{retry_after:.3f}",
                           "X-RateLimit-Reset": f"{time.time() + retry_after:.3f}", "X-RateLimit-Bucket": "edits",
                           "X-RateLimit-Scope": "user"}
                record.status = 429
                return web.Response(status=429, body=body, content_type="application/json", headers=headers)
            status, result = await handler(self, request, body, files, **match.groupdict())
        except _Reject as rejection:
            if rejection.status not in (401, 404) or rejection.code:  # unknown routes are recorded above
                self.rejected_requests.append(Rejection(request.method, path, rejection.status, rejection.code,
                                                        rejection.message, rejection.errors))
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

    def _edit_retry_after(self, method: str, params: dict) -> float:
        """Seconds to wait when this edit goes over ``edit_rate_limit``; 0 when it may go through."""
        if self.edit_rate_limit is None or method != "PATCH" or "message" not in params:
            return 0.0
        count, window = self.edit_rate_limit
        key = params.get("channel") or params.get("token")
        now = asyncio.get_running_loop().time()
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
        attachment = Attachment(self.ids(), listed.get("filename", filename), data,
                                content_type or "application/octet-stream", "", listed.get("description"))
        attachment.url = f"{self.base_url}/attachments/0/{attachment.id}/{quote(attachment.filename)}"
        self.attachments[attachment.id] = attachment
        return attachment

    async def _download(self, request: web.Request) -> web.Response:
        attachment = self.attachments.get(int(request.match_info["id"]))
        if attachment is None:
            self.unknown_routes.append(f"GET {request.path}")
            return web.Response(status=404, body=b'{"message": "404: Not Found", "code": 0}',
                                content_type="application/json")
        return web.Response(body=attachment.data, headers={"Content-Type": attachment.content_type})

    # Route handlers take (request, body, uploaded files, **path parameters) and return (status, JSON).

    @route("GET", r"/users/@me")
    async def _get_me(self, request, body, files):
        return 200, {**self.bot_user.to_json(), "verified": True, "mfa_enabled": False, "locale": "en-US"}

    @route("GET", r"/oauth2/applications/@me")
    @route("GET", r"/applications/@me")
    async def _get_application(self, request, body, files):
        return 200, self._application()


    def _application(self) -> dict:
        return {"id": str(self.application_id), "name": self.bot_user.name, "description": "", "icon": None,
                "bot_public": True, "bot_require_code_grant": False, "owner": self.owner.to_json(),
                "team": None, "verify_key": "0" * 64, "flags": 0, "summary": "", "rpc_origins": [],
                "bot": self.bot_user.to_json(), "install_params": None, "tags": []}

    @route("GET", r"/gateway")
    async def _get_gateway(self, request, body, files):
        return 200, {"url": self.gateway_url}

    @route("GET", r"/gateway/bot")
    async def _get_gateway_bot(self, request, body, files):
        limit = {"total": 1000, "remaining": 1000, "reset_after": 0, "max_concurrency": 1}
        return 200, {"url": self.gateway_url, "shards": 1, "session_start_limit": limit}

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
        previous = {(c["name"], c.get("type", 1)): c["id"] for c in self.synced_commands.get(scope, [])}
        keys = [(c.get("name"), c.get("type", 1)) for c in body]
        if len(keys) != len(set(keys)):
            raise _Reject(400, 50035, "Invalid Form Body", {"_errors": f"duplicate command names: {keys}"})
        self.synced_commands[scope] = [self._command(c, scope, previous) for c in body]
        return 200, self.synced_commands[scope]

    @route("POST", r"/applications/(?P<app>\d+)(/guilds/(?P<guild>\d+))?/commands")
    async def _upsert_command(self, request, body, files, app, guild):  # create or replace one command
        scope = self._command_scope(app, guild)
        commands = self.synced_commands.setdefault(scope, [])
        previous = {(c["name"], c.get("type", 1)): c["id"] for c in commands}
        command = self._command(body, scope, previous)
        commands[:] = [c for c in commands if c["id"] != command["id"]] + [command]
        return 201, command

    @route("DELETE", r"/applications/(?P<app>\d+)(/guilds/(?P<guild>\d+))?/commands/(?P<command>\d+)")
    async def _delete_command(self, request, body, files, app, guild, command):
        scope = self._command_scope(app, guild)
        self.synced_commands[scope] = [c for c in self.synced_commands.get(scope, []) if c["id"] != command]
        return 204, None

    def _command(self, body: dict, scope: int | None, previous: dict) -> dict:
        errors = command_schema_errors(body)
        if errors:
            raise _Reject(400, 50035, "Invalid Form Body", errors)
        command_id = previous.get((body["name"], body.get("type", 1))) or str(self.ids())
        command = {"description": "", "options": [], "default_member_permissions": None, "nsfw": False,
                   **body, "id": command_id, "application_id": str(self.application_id), "version": "1"}
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
        allowed = {2: {4, 5, 9}, 3: {4, 5, 6, 7, 9}, 4: {8}, 5: {4, 5, 6, 7}}[record.type]
        if kind not in allowed or (kind in (6, 7) and record.source is None):
            raise _Reject(400, 50035, f"Invalid Form Body: callback type {kind} for interaction type {record.type}"
                                      f"{'' if record.source else ' without a message'}")
        if kind in (4, 7):
            self._validate(data, files, creating=kind == 4)
        record.callbacks.append(body)
        record._mark(done=kind != 5)
        message = None
        if kind in (4, 5):
            flags = ((data.get("flags") or 0) & EPHEMERAL) | (LOADING if kind == 5 else 0)
            message = self._bot_message(record.channel, data if kind == 4 else {}, files, flags=flags,
                                        type=MESSAGE_TYPE_FOR_COMMAND.get(record.payload["data"].get("type"), 0),
                                        interaction=record)
            record.original = message
            await self._dispatch_message("MESSAGE_CREATE", message)
        elif kind in (6, 7):
            message = record.original = record.source
            if kind == 7:
                await self._apply_edit(message, data, files)
        result = {"interaction": {"id": str(record.id), "type": record.type,
                                  "response_message_loading": kind == 5,
                                  "response_message_ephemeral": bool(message and message.ephemeral)},
                  "resource": {"type": kind}}
        if message is not None and kind != 6:
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
        record = self._interaction_by_token(app, token)
        self._validate(body, files, creating=True)
        original = record.original
        if record.response_type == 5 and original is not None and original.loading:
            # The first followup after a defer replaces the "thinking" message, keeping its ephemerality.
            if (body.get("flags") or 0) & EPHEMERAL and not original.ephemeral:
                self.ignored_requests.append(
                    f"{record!r}: the first followup after a public defer asked to be ephemeral, but Discord "
                    f"shows it to everyone (pass ephemeral=True to defer())")
            await self._apply_edit(original, body, files)
            message = original
        else:
            message = self._bot_message(record.channel, body, files, flags=(body.get("flags") or 0) & EPHEMERAL,
                                        type=MESSAGE_TYPE_FOR_COMMAND.get(record.payload["data"].get("type"), 0),
                                        interaction=record)
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

    @route("GET", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<message>@original|\d+)")
    async def _get_webhook_message(self, request, body, files, app, token, message):
        record = self._interaction_by_token(app, token)
        return 200, self._webhook_message(record, message).to_json()

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

    @route("DELETE", r"/webhooks/(?P<app>\d+)/(?P<token>[^/]+)/messages/(?P<message>@original|\d+)")
    async def _delete_webhook_message(self, request, body, files, app, token, message):
        record = self._interaction_by_token(app, token)
        await self._remove(self._webhook_message(record, message))
        return 204, None

    # ---- channels and messages

    def _channel(self, channel_id: str) -> Channel:
        channel = self.channels.get(int(channel_id))
        if channel is None:
            raise _Reject(404, 10003, "Unknown Channel")
        return channel

    def _message(self, channel: Channel, message_id: str) -> Message:
        message = self.messages.get(int(message_id))
        if message is None or message.deleted or message.channel is not channel or message.ephemeral:
            raise _Reject(404, 10008, "Unknown Message")
        return message

    def _guild(self, guild_id: int) -> Guild | None:
        return next((g for g in self.guilds if g.id == guild_id), None)

    @route("GET", r"/channels/(?P<channel>\d+)")
    async def _get_channel(self, request, body, files, channel):
        return 200, self._channel(channel).to_json()

    @route("GET", r"/channels/(?P<channel>\d+)/messages")
    async def _history(self, request, body, files, channel):  # history, newest first like Discord
        history = self._channel(channel).history()
        query = request.query
        limit = max(1, min(100, int(query.get("limit", 50))))
        if "after" in query:
            chosen = [m for m in history if m.id > int(query["after"])][:limit]
        elif "around" in query:
            index = next((i for i, m in enumerate(history) if m.id >= int(query["around"])), len(history))
            chosen = history[max(0, index - limit // 2): index + (limit + 1) // 2]
        else:
            before = int(query.get("before", 0)) or None
            chosen = [m for m in history if before is None or m.id < before][-limit:]
        return 200, [m.to_json() for m in reversed(chosen)]

    @route("POST", r"/channels/(?P<channel>\d+)/messages")
    async def _create_message(self, request, body, files, channel):  # channel.send, message.reply
        target = self._channel(channel)
        self._validate(body, files, creating=True)
        reference = body.get("message_reference")
        replied = self._message(target, reference["message_id"]) if reference else None
        message = self._bot_message(target, body, files, type=19 if replied else 0, reference=replied)
        await self._dispatch_message("MESSAGE_CREATE", message)
        return 200, message.to_json()

    @route("GET", r"/channels/(?P<channel>\d+)/messages/(?P<message>\d+)")
    async def _get_message(self, request, body, files, channel, message):
        return 200, self._message(self._channel(channel), message).to_json()

    @route("PATCH", r"/channels/(?P<channel>\d+)/messages/(?P<message>\d+)")
    async def _edit_message_route(self, request, body, files, channel, message):
        target = self._message(self._channel(channel), message)
        if target.author is not self.bot_user:
            raise _Reject(403, 50005, "Cannot edit a message authored by another user")
        self._validate(body, files, creating=False)
        await self._apply_edit(target, body, files)
        return 200, target.to_json()

    @route("DELETE", r"/channels/(?P<channel>\d+)/messages/(?P<message>\d+)")
    async def _delete_message_route(self, request, body, files, channel, message):
        await self._remove(self._message(self._channel(channel), message))
        return 204, None

    @route("POST", r"/channels/(?P<channel>\d+)/typing")
    async def _typing(self, request, body, files, channel):
        self._channel(channel)
        return 204, None

    @route("PUT", r"/channels/(?P<channel>\d+)/messages/(?P<message>\d+)/reactions/(?P<emoji>[^/]+)/@me")
    async def _add_reaction(self, request, body, files, channel, message, emoji):
        target = self._message(self._channel(channel), message)
        target.reactions.append(emoji)
        return 204, None

    @route("DELETE", r"/channels/(?P<channel>\d+)/messages/(?P<message>\d+)/reactions/(?P<emoji>[^/]+)/@me")
    async def _remove_reaction(self, request, body, files, channel, message, emoji):
        target = self._message(self._channel(channel), message)
        if emoji in target.reactions:
            target.reactions.remove(emoji)
        return 204, None

    @route("DELETE", r"/channels/(?P<channel>\d+)/messages/(?P<message>\d+)/reactions")
    async def _clear_reactions(self, request, body, files, channel, message):
        self._message(self._channel(channel), message).reactions.clear()
        return 204, None

    @route("POST", r"/users/@me/channels")
    async def _open_dm(self, request, body, files):
        user = self.users.get(int(body["recipient_id"]))
        if user is None:
            raise _Reject(400, 50035, "Invalid Form Body")
        return 200, self.dm_channel(user).to_json()

    @route("GET", r"/users/(?P<user>\d+)")
    async def _get_user(self, request, body, files, user):
        found = self.users.get(int(user))
        if found is None:
            raise _Reject(404, 10013, "Unknown User")
        return 200, found.to_json()

    def _known_guild(self, guild_id: str) -> Guild:
        guild = self._guild(int(guild_id))
        if guild is None:
            raise _Reject(404, 10004, "Unknown Guild")
        return guild

    @route("GET", r"/guilds/(?P<guild>\d+)")
    async def _get_guild(self, request, body, files, guild):
        found = self._known_guild(guild)
        return 200, {**found.to_json(), "approximate_member_count": len(found.members)}

    @route("GET", r"/guilds/(?P<guild>\d+)/channels")
    async def _guild_channels(self, request, body, files, guild):
        return 200, [c.to_json() for c in self._known_guild(guild).channels]

    @route("GET", r"/guilds/(?P<guild>\d+)/roles")
    async def _guild_roles(self, request, body, files, guild):
        return 200, [r.to_json() for r in self._known_guild(guild).roles]

    @route("GET", r"/guilds/(?P<guild>\d+)/members")
    async def _guild_members(self, request, body, files, guild):
        members = sorted(self._known_guild(guild).members.values(), key=lambda m: m.user.id)
        after, limit = int(request.query.get("after", 0)), int(request.query.get("limit", 1))
        return 200, [m.to_json() for m in members if m.user.id > after][:limit]

    @route("GET", r"/guilds/(?P<guild>\d+)/members/(?P<user>\d+)")
    async def _guild_member(self, request, body, files, guild, user):
        member = self._known_guild(guild).members.get(int(user))
        if member is None:
            raise _Reject(404, 10007, "Unknown Member")
        return 200, member.to_json()

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
            total += len((embed.get("footer") or {}).get("text") or "") + len((embed.get("author") or {}).get("name") or "")
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
        if creating and not (content or embeds or files or body.get("components") or body.get("sticker_ids")
                             or body.get("poll")):
            raise _Reject(400, 50006, "Cannot send an empty message")

    def _bot_message(self, channel: Channel, body: dict, files: list[Attachment], *, flags: int = 0, type: int = 0,
                     interaction: InteractionRecord | None = None, reference: Message | None = None) -> Message:
        message = Message(self.ids(), channel, self.bot_user, flags=flags, type=type, interaction=interaction,
                          webhook_id=self.application_id if interaction else None, reference=reference)
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
            message.edited = datetime.now(timezone.utc).isoformat()
        await self._dispatch_message("MESSAGE_UPDATE", message)

    async def _remove(self, message: Message) -> None:
        if message.ephemeral:
            message.deleted = True  # nobody else saw it: no gateway event
        else:
            await self.delete_message(message, required=False)


# ---------------------------------------------------------------------------------------- running a client


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
async def run_client(client: discord.Client, double: DiscordDouble, *, ready_timeout: float = 15.0,
                     token: str | None = None) -> AsyncIterator[discord.Client]:
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
