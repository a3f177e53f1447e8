"""The world the double simulates: users, servers, roles, channels, messages and attachments, as Discord's JSON."""

from __future__ import annotations

import re
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING

import discord
from discord import ChannelType, MessageType

if TYPE_CHECKING:
    from .double import DiscordDouble
    from .interactions import InteractionRecord

DISCORD_EPOCH_MS = discord.utils.DISCORD_EPOCH
EPHEMERAL = discord.MessageFlags.ephemeral.flag
LOADING = discord.MessageFlags.loading.flag  # a deferred response still "thinking"

GUILDS = discord.Intents.guilds.flag
GUILD_MEMBERS = discord.Intents.members.flag
GUILD_PRESENCES = discord.Intents.presences.flag
GUILD_MESSAGES = discord.Intents.guild_messages.flag
DIRECT_MESSAGES = discord.Intents.dm_messages.flag
MESSAGE_CONTENT = discord.Intents.message_content.flag
PRIVILEGED_INTENTS = GUILD_MEMBERS | GUILD_PRESENCES | MESSAGE_CONTENT

TEXT_CHANNEL, DM_CHANNEL = ChannelType.text.value, ChannelType.private.value
PUBLIC_THREAD = ChannelType.public_thread.value
THREAD_ARCHIVE_MINUTES = 1440  # a new thread's auto_archive_duration (Discord's default choice: a day)

ADMINISTRATOR = discord.Permissions(administrator=True).value
DEFAULT_EVERYONE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    add_reactions=True,
    use_application_commands=True,
    use_external_emojis=True,
    create_instant_invite=True,
).value
DEFAULT_BOT_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    attach_files=True,
    read_message_history=True,
    add_reactions=True,
    manage_messages=True,
    mention_everyone=True,  # worst case: its pings would notify
).value

ATTACHMENT_SIZE_LIMIT = 10 * 1024 * 1024  # Discord's default upload limit per message (unboosted server)
CONTENT_LIMIT = 2000  # characters in a message a bot sends
USER_CONTENT_LIMIT = 4000  # characters a user may type (with Nitro; 2000 without)
EMBEDS_LIMIT = 10
EMBED_TOTAL_LIMIT = 6000
EMBED_FIELD_LIMITS = {"title": 256, "description": 4096}
MENTION = re.compile(r"<@!?(\d+)>|<@&(\d+)>|@(everyone|here)")


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
    return datetime.fromtimestamp(ms / 1000, tz=UTC).isoformat()


def permission_value(permissions: int | discord.Permissions) -> int:
    return permissions.value if isinstance(permissions, discord.Permissions) else int(permissions)


@dataclass(eq=False)
class User:
    id: int
    name: str
    bot: bool = False

    @property
    def mention(self) -> str:
        return f"<@{self.id}>"

    def to_json(self) -> dict:
        return {
            "id": str(self.id),
            "username": self.name,
            "global_name": self.name,
            "discriminator": "0",
            "avatar": None,
            "bot": self.bot,
            "public_flags": 0,
            "flags": 0,
        }


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
        return {
            "id": str(self.id),
            "name": self.name,
            "permissions": str(self.permissions),
            "position": self.position,
            "color": 0,
            "colors": {"primary_color": 0},
            "hoist": False,
            "managed": False,
            "mentionable": self.mentionable,
            "flags": 0,
        }


@dataclass(eq=False)
class Member:
    user: User
    guild: Guild
    roles: list[Role] = field(default_factory=list)
    joined: str = field(default_factory=lambda: datetime.now(UTC).isoformat())

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
        data = {
            "roles": [str(r.id) for r in self.roles],
            "joined_at": self.joined,
            "nick": None,
            "avatar": None,
            "flags": 0,
            "deaf": False,
            "mute": False,
            "pending": False,
            "premium_since": None,
        }
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
    type: int = TEXT_CHANNEL  # or DM_CHANNEL, PUBLIC_THREAD
    position: int = 0
    recipient: User | None = None  # for DMs
    parent: Channel | None = None  # for threads: the text channel they hang under
    owner: User | None = None  # for threads: who started it
    messages: list[Message] = field(default_factory=list)  # history, oldest first, deleted ones included
    bot_denied: int = 0  # permissions the bot's role loses here (a channel overwrite): see deny_bot

    @property
    def mention(self) -> str:
        return f"<#{self.id}>"

    def __repr__(self) -> str:
        return f"<Channel #{self.name} {self.id}>"

    def deny_bot(self, **permissions: bool) -> None:
        """An overwrite that takes permissions from the bot here, e.g. ``deny_bot(read_message_history=True)``."""
        self.bot_denied |= discord.Permissions(**permissions).value

    def history(self) -> list[Message]:
        """Visible messages, oldest first."""
        return [m for m in self.messages if not m.deleted and not m.ephemeral]

    def to_json(self) -> dict:
        if self.guild is None:
            return {
                "id": str(self.id),
                "type": DM_CHANNEL,
                "recipients": [self.recipient.to_json()],
                "last_message_id": None,
            }
        if self.parent is not None:
            return self._thread_json()
        return {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "position": self.position,
            "guild_id": str(self.guild.id),
            "permission_overwrites": [],
            "nsfw": False,
            "topic": None,
            "parent_id": None,
            "rate_limit_per_user": 0,
            "last_message_id": None,
            "flags": 0,
            "permissions": str(discord.Permissions.all().value),
        }

    def _thread_json(self) -> dict:
        """A public thread as THREAD_CREATE and GUILD_CREATE's ``threads`` carry it (discord.Thread needs each key)."""
        history = self.history()
        return {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "guild_id": str(self.guild.id),
            "parent_id": str(self.parent.id),
            "owner_id": str(self.owner.id),
            "message_count": len(history),
            "total_message_sent": len(history),
            "member_count": 1,  # its owner
            "rate_limit_per_user": 0,
            "last_message_id": str(history[-1].id) if history else None,
            "flags": 0,
            "thread_metadata": {
                "archived": False,
                "auto_archive_duration": THREAD_ARCHIVE_MINUTES,
                "archive_timestamp": snowflake_time(self.id),
                "locked": False,
                "create_timestamp": snowflake_time(self.id),
            },
            "permissions": str(discord.Permissions.all().value),
        }


class Guild:
    """A server: roles (with @everyone, whose id is the guild's), text channels, their threads and members."""

    def __repr__(self) -> str:
        return f"<Guild {self.name} {self.id}>"

    def __init__(self, double: DiscordDouble, id: int, name: str, owner: User) -> None:
        self.double, self.id, self.name, self.owner_id = double, id, name, owner.id
        self.everyone = Role(id, "@everyone", DEFAULT_EVERYONE_PERMISSIONS)  # its id is the guild's, as on Discord
        self.roles: list[Role] = [self.everyone]
        self.channels: list[Channel] = []
        self.threads: list[Channel] = []  # public threads under its text channels (none archived)
        self.members: dict[int, Member] = {}

    def add_channel(self, name: str) -> Channel:
        channel = Channel(self.double.ids(), name, self, position=len(self.channels))
        self.channels.append(channel)
        self.double.channels[channel.id] = channel
        return channel

    def add_thread(self, parent: Channel, name: str, owner: User) -> Channel:
        """A public thread under ``parent`` started by ``owner``; ``double.add_thread`` also tells the client."""
        if parent.guild is not self or parent.parent is not None:
            raise ValueError(f"a thread hangs under a text channel of {self.name}, not under {parent!r}")
        self.member(owner)
        thread = Channel(self.double.ids(), name, self, type=PUBLIC_THREAD, parent=parent, owner=owner)
        self.threads.append(thread)
        self.double.channels[thread.id] = thread
        return thread

    def channel(self, name: str) -> Channel:
        found = next((c for c in self.channels if c.name == name), None)
        if found is None:
            raise LookupError(f"{self.name} has no channel {name!r}: {[c.name for c in self.channels]}")
        return found

    def messages(self) -> list[Message]:
        """Visible messages of every channel and thread of this guild, oldest first."""
        return sorted((m for c in [*self.channels, *self.threads] for m in c.history()), key=lambda m: m.id)

    def add_role(self, name: str, permissions: int | discord.Permissions = 0, mentionable: bool = False) -> Role:
        role = Role(self.double.ids(), name, permission_value(permissions), len(self.roles), mentionable)
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
            "id": str(self.id),
            "name": self.name,
            "owner_id": str(self.owner_id),
            "icon": None,
            "splash": None,
            "description": None,
            "features": [],
            "verification_level": 0,
            "default_message_notifications": 0,
            "explicit_content_filter": 0,
            "mfa_level": 0,
            "nsfw_level": 0,
            "premium_tier": 0,
            "preferred_locale": "en-US",
            "system_channel_id": None,
            "afk_timeout": 300,
            "emojis": [],
            "stickers": [],
            "large": False,
            "unavailable": False,
            "joined_at": snowflake_time(self.id),
            "roles": [r.to_json() for r in self.roles],
            "channels": [c.to_json() for c in self.channels],
            "member_count": len(self.members),  # equal to the list: the client never asks for chunks
            "members": [m.to_json() for m in self.members.values()],
            "threads": [t.to_json() for t in self.threads],
            "presences": [],
            "voice_states": [],
            "stage_instances": [],
            "guild_scheduled_events": [],
            "soundboard_sounds": [],
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
        return {
            "id": str(self.id),
            "filename": self.filename,
            "size": len(self.data),
            "url": self.url,
            "proxy_url": self.url,
            "content_type": self.content_type,
            "description": self.description,
        }


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
    type: int = MessageType.default.value
    allowed_mentions: dict | None = None  # as the last body that set it sent it
    mentions: list[User] = field(default_factory=list)  # for messages that tests send
    reference: Message | None = None
    interaction: InteractionRecord | None = None  # set on interaction responses and followups
    webhook_id: int | None = None
    avatar_url: str | None = None  # a webhook message's avatar override
    pings: list[str] = field(default_factory=list)  # every notification its bodies would have caused
    edits: list[dict] = field(default_factory=list)  # bodies of edits, in order
    edited: str | None = None
    deleted: bool = False

    def __repr__(self) -> str:
        state = "".join(
            f" {s}"
            for s, on in (("ephemeral", self.ephemeral), ("loading", self.loading), ("deleted", self.deleted))
            if on
        )
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

    def to_json(self, *, blank: bool = False, linked: bool = True) -> dict:
        """The message object; ``blank`` drops what the message-content intent guards.

        A reply carries the message it answers (``referenced_message``) but, as on Discord, that one carries
        only its own ``message_reference``: ``linked=False``. Older links are fetched one by one.
        """
        guild = self.guild
        data = {
            "id": str(self.id),
            "channel_id": str(self.channel.id),
            "author": self.author.to_json(),
            "content": "" if blank else self.content,
            "timestamp": snowflake_time(self.id),
            "edited_timestamp": self.edited,
            "tts": False,
            "pinned": False,
            "type": self.type,
            "flags": self.flags,
            "mention_everyone": "@everyone" in self.pings,
            "mentions": [u.to_json() for u in self.mentions],
            "mention_roles": [],
            "embeds": [] if blank else self.embeds,
            "components": [] if blank else self.components,
            "attachments": [] if blank else [a.to_json() for a in self.attachments],
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
            data["message_reference"] = {
                "type": 0,
                "message_id": str(self.reference.id),
                "channel_id": str(self.channel.id),
                **({"guild_id": str(guild.id)} if guild else {}),
            }
            if linked:
                replied = self.reference
                data["referenced_message"] = None if replied.deleted else replied.to_json(blank=blank, linked=False)
        return data


@dataclass(eq=False)
class Webhook:
    """A channel's incoming webhook, made by the bot (POST /channels/{id}/webhooks) and executed with its token."""

    id: int
    token: str
    channel: Channel
    name: str
    user: User  # who made it
    executed: list[Message] = field(default_factory=list)  # what was posted through it, in order

    def __repr__(self) -> str:
        return f"<Webhook {self.name!r} {self.id} in #{self.channel.name}>"

    def to_json(self) -> dict:
        return {
            "id": str(self.id),
            "type": 1,  # incoming
            "token": self.token,
            "channel_id": str(self.channel.id),
            "guild_id": str(self.channel.guild.id) if self.channel.guild else None,
            "name": self.name,
            "avatar": None,
            "user": self.user.to_json(),
            "application_id": None,
        }


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
