"""Interactions users start (slash and context-menu commands, autocomplete, buttons) and what the bot answers."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import discord
from discord import AppCommandOptionType as Option
from discord import AppCommandType, ComponentType, InteractionType
from discord import InteractionResponseType as Response

from .world import (
    ADMINISTRATOR,
    ATTACHMENT_SIZE_LIMIT,
    Attachment,
    Channel,
    Guild,
    Message,
    Role,
    User,
    permission_value,
)

if TYPE_CHECKING:
    from .double import DiscordDouble
    from .gateway import GatewaySession

CHAT_INPUT, MESSAGE_COMMAND = AppCommandType.chat_input.value, AppCommandType.message.value
KIND_NAMES = {CHAT_INPUT: "slash", AppCommandType.user.value: "user", MESSAGE_COMMAND: "message"}
APPLICATION_COMMAND, COMPONENT, AUTOCOMPLETE = (
    InteractionType.application_command.value,
    InteractionType.component.value,
    InteractionType.autocomplete.value,
)
BUTTON = ComponentType.button.value
NESTING = (Option.subcommand.value, Option.subcommand_group.value)
GUILD_CONTEXT, BOT_DM = 0, 1  # Discord's interaction context types (discord.py has flags for them, not an enum)


class CommandRefused(Exception):
    """What a real Discord client would not let a user send (unknown command, bad options, no permission)."""


SLASH_NAME = re.compile(r"[-_\w]{1,32}")  # Discord's rule, with \w for its letter and number classes


def command_schema_errors(command: dict) -> dict[str, str]:
    """What Discord's API would refuse in an application command (names, descriptions, option order, counts)."""
    errors: dict[str, str] = {}
    kind, name = command.get("type", CHAT_INPUT), command.get("name", "")
    if kind == CHAT_INPUT:
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
        if option.get("type") in NESTING:
            _check_options(option.get("options") or [], f"{at}options", errors)


class InteractionRecord:
    """One interaction the double dispatched and everything the bot answered to it."""

    def __init__(
        self, double: DiscordDouble, payload: dict, channel: Channel, user: User, source: Message | None = None
    ) -> None:
        self.double, self.payload, self.channel, self.user = double, payload, channel, user
        self.id, self.token, self.type = int(payload["id"]), payload["token"], payload["type"]
        self.name = payload["data"].get("name") or payload["data"].get("custom_id")
        self.source = source  # the message a component sits on
        self.created = asyncio.get_running_loop().time()  # loop time when it was dispatched
        self.answered_at: float | None = None  # loop time of the callback
        self.done_at: float | None = None  # loop time when the answer had content (a deferred one filled in)
        self.callbacks: list[dict] = []  # callback bodies; more than one is refused
        self.original: Message | None = None  # the response message (or the component's message)
        self.followups: list[Message] = []
        self.edits: list[dict] = []  # PATCH bodies of @original
        self.sessions: list[GatewaySession] = []  # the gateway sessions it was sent to (one: its server's shard)

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
    def choices(self) -> list[dict] | None:
        if self.response_type != Response.autocomplete_result.value:
            return None
        return self.response["data"].get("choices", [])

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
        return {
            "id": str(self.id),
            "type": self.type,
            "name": self.name,
            "user": self.user.to_json(),
            "authorizing_integration_owners": self.payload.get("authorizing_integration_owners", {}),
        }

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
        await self.double.wait_for(
            lambda: self.content is not None and check(self.content),
            timeout,
            lambda: f"content {expected!r} in the response to {self!r} (now {self.content!r})",
        )
        return self.content

    async def wait_done(self, timeout: float = 10.0) -> Message:
        """The response message once it is no longer a deferred "thinking" placeholder."""

        def done() -> Message | None:
            original = self.original
            return original if original is not None and not original.loading else None

        return await self.double.wait_for(done, timeout, f"a finished response to {self!r}")


class UserActions:
    """What users do that reaches the bot as INTERACTION_CREATE; a part of DiscordDouble (uses its state)."""

    def command(self, name: str, guild: Guild | None, type: int = CHAT_INPUT) -> dict:
        """The synced command a user in ``guild`` sees under this name (guild commands first)."""
        scopes = ([guild.id] if guild else []) + [None]
        for scope in scopes:
            for command in self.synced_commands.get(scope, []):
                if command["name"] == name and command.get("type", CHAT_INPUT) == type:
                    return command
        raise CommandRefused(
            f"no {KIND_NAMES[type]} command {name!r} was synced for "
            f"{guild.name if guild else 'DMs'}; synced: {self._synced_names()}"
        )

    def _synced_names(self) -> dict:
        return {scope: [c["name"] for c in commands] for scope, commands in self.synced_commands.items()}

    def _check_allowed(self, command: dict, channel: Channel, user: User, permissions: int) -> None:
        if channel.guild is None:
            contexts = command.get("contexts")
            if command.get("dm_permission") is False or (contexts is not None and BOT_DM not in contexts):
                raise CommandRefused(f"{command['name']!r} is not available in DMs")
            return
        required = command.get("default_member_permissions")
        if required is None or permissions & ADMINISTRATOR:
            return
        if int(required) == 0 or int(required) & ~permissions:
            raise CommandRefused(f"{user.name} lacks the permissions {command['name']!r} needs ({required})")

    async def _interact(
        self,
        channel: Channel,
        user: User,
        type: int,
        data: dict,
        *,
        permissions: int | discord.Permissions | None = None,
        message: Message | None = None,
    ) -> InteractionRecord:
        guild = channel.guild
        payload = {
            "id": str(self.ids()),
            "application_id": str(self.application_id),
            "type": type,
            "token": secrets.token_urlsafe(32),
            "version": 1,
            "data": data,
            "channel_id": str(channel.id),
            "channel": channel.to_json(),
            "app_permissions": str(self.bot_permissions & ~((channel.parent or channel).bot_denied)),  # here
            "locale": "en-US",
            "entitlements": [],
            "attachment_size_limit": ATTACHMENT_SIZE_LIMIT,
            "authorizing_integration_owners": {"0": str(guild.id) if guild else "0"},
            "context": GUILD_CONTEXT if guild else BOT_DM,
        }
        if guild is not None:
            member = guild.member(user).to_json(with_permissions=True)
            if permissions is not None:
                member["permissions"] = str(permission_value(permissions))
            payload.update(
                guild_id=str(guild.id),
                guild_locale="en-US",
                member=member,
                guild={"id": str(guild.id), "locale": "en-US", "features": []},
            )
        else:
            payload["user"] = user.to_json()
        if message is not None:
            payload["message"] = message.to_json()
        record = InteractionRecord(self, payload, channel, user, source=message)
        self.interactions[record.id] = record
        self.by_token[record.token] = record
        record.sessions = await self.dispatch("INTERACTION_CREATE", payload, guild_id=guild.id if guild else None)
        return record

    def _member_permissions(self, channel: Channel, user: User, permissions) -> int:
        if permissions is not None:
            return permission_value(permissions)
        return channel.guild.member(user).permissions if channel.guild else discord.Permissions.all().value

    async def slash_command(
        self,
        channel: Channel,
        user: User,
        name: str,
        options: dict | None = None,
        *,
        permissions: int | discord.Permissions | None = None,
        enforce_permissions: bool = True,
    ) -> InteractionRecord:
        """A user runs ``/name`` (sub-commands separated by spaces) with options typed by the synced schema."""
        data = self._command_data(channel, user, name, options or {}, permissions, enforce_permissions)
        return await self._interact(channel, user, APPLICATION_COMMAND, data, permissions=permissions)

    async def autocomplete(
        self, channel: Channel, user: User, name: str, options: dict, focused: str, *, timeout: float = 10.0
    ) -> list[dict]:
        """The choices the bot offers while ``focused`` is being typed (its value may be partial)."""
        data = self._command_data(channel, user, name, options, None, False, focused=focused)
        record = await self._interact(channel, user, AUTOCOMPLETE, data)
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
            option = next((o for o in schema if o["name"] == part and o["type"] in NESTING), None)
            if option is None:
                raise CommandRefused(f"/{root} has no sub-command {part!r}")
            inner: list = []
            nested.append({"name": part, "type": option["type"], "options": inner})
            schema, nested = option.get("options", []), inner
        if any(o["type"] in NESTING for o in schema):
            raise CommandRefused(f"/{name} needs a sub-command: {[o['name'] for o in schema]}")
        nested.extend(self._options(name, schema, options, channel, resolved, focused))
        data = {"id": command["id"], "name": root, "type": CHAT_INPUT, "options": top}
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
            entry = {
                "name": key,
                "type": option["type"],
                "value": value if key == focused else self._option_value(name, option, value, channel, resolved),
            }
            if key == focused:
                entry["focused"] = True
            result.append(entry)
        return result

    def _option_value(self, name, option, value, channel, resolved) -> Any:
        kind, label = Option(option["type"]), f"/{name} {option['name']}"
        if kind in (Option.string, Option.integer, Option.number):
            expected = {Option.string: str, Option.integer: int, Option.number: (int, float)}[kind]
            if not isinstance(value, expected) or isinstance(value, bool):
                raise CommandRefused(f"{label} takes a {expected}, not {value!r}")
            choices = option.get("choices")
            if choices and value not in [c["value"] for c in choices]:
                raise CommandRefused(f"{label} must be one of {[c['value'] for c in choices]}")
            size = len(value) if kind == Option.string else value
            low = option.get("min_length" if kind == Option.string else "min_value")
            high = option.get("max_length" if kind == Option.string else "max_value")
            if (low is not None and size < low) or (high is not None and size > high):
                raise CommandRefused(f"{label}={value!r} is outside {low}..{high}")
            return value
        if kind == Option.boolean:
            return bool(value)
        if kind == Option.attachment:
            attachment = value if isinstance(value, Attachment) else self.attachment(channel, *value)
            if len(attachment.data) > ATTACHMENT_SIZE_LIMIT:
                raise CommandRefused(f"{label}: {attachment.filename} is over Discord's {ATTACHMENT_SIZE_LIMIT} bytes")
            resolved.setdefault("attachments", {})[str(attachment.id)] = attachment.to_json()
            return str(attachment.id)
        if isinstance(value, User) and kind in (Option.user, Option.mentionable):
            resolved.setdefault("users", {})[str(value.id)] = value.to_json()
            if channel.guild is not None:
                member = channel.guild.member(value).to_json(with_user=False, with_permissions=True)
                resolved.setdefault("members", {})[str(value.id)] = member
            return str(value.id)
        if isinstance(value, Role) and kind in (Option.role, Option.mentionable):
            resolved.setdefault("roles", {})[str(value.id)] = value.to_json()
            return str(value.id)
        if isinstance(value, Channel) and kind == Option.channel:
            if option.get("channel_types") and value.type not in option["channel_types"]:
                raise CommandRefused(f"{label} takes channels of types {option['channel_types']}, not {value.type}")
            if value.guild is not channel.guild:
                raise CommandRefused(f"{label}: #{value.name} is not in this server")
            resolved.setdefault("channels", {})[str(value.id)] = value.to_json()
            return str(value.id)
        raise CommandRefused(f"{label} cannot take {value!r}")

    async def message_command(
        self,
        channel: Channel,
        user: User,
        name: str,
        target: Message,
        *,
        permissions: int | discord.Permissions | None = None,
    ) -> InteractionRecord:
        """A user picks ``name`` in a message's Apps context menu."""
        resolved = {"messages": {str(target.id): target.to_json()}}
        return await self._context_menu(channel, user, name, MESSAGE_COMMAND, target.id, resolved, permissions)

    async def _context_menu(self, channel, user, name, type, target_id, resolved, permissions) -> InteractionRecord:
        command = self.command(name, channel.guild, type)
        self._check_allowed(command, channel, user, self._member_permissions(channel, user, permissions))
        data = {"id": command["id"], "name": name, "type": type, "target_id": str(target_id), "resolved": resolved}
        if command.get("guild_id"):
            data["guild_id"] = command["guild_id"]
        return await self._interact(channel, user, APPLICATION_COMMAND, data, permissions=permissions)

    async def click_button(self, message: Message, custom_id: str, user: User) -> InteractionRecord:
        """A user clicks the button ``custom_id`` on a message (it must be there and enabled)."""
        self._component(message, custom_id, BUTTON)
        data = {"custom_id": custom_id, "component_type": BUTTON}
        return await self._interact(message.channel, user, COMPONENT, data, message=message)

    def _component(self, message: Message, custom_id: str, type: int) -> dict:
        def walk(components):
            for component in components:
                yield component
                yield from walk(component.get("components", []))

        found = next((c for c in walk(message.components) if c.get("custom_id") == custom_id), None)
        if found is None or found["type"] != type or found.get("disabled"):
            raise CommandRefused(
                f"message {message.id} has no enabled component {custom_id!r} of type {type}: {message.components}"
            )
        return found
