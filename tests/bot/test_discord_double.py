"""The Discord double against a small real discord.py bot: login, sync, every interaction kind, messages, files."""

from __future__ import annotations

import asyncio
import io
import time

import discord
import pytest
from discord import app_commands
from discord.ext import commands
from discord_double import CommandRefused, DiscordDouble, User, command_schema_errors, run_client, would_ping
from discord_double.control import RemoteDouble, add_control_routes


class ConfirmView(discord.ui.View):
    @discord.ui.button(label="Confirm", custom_id="confirm", style=discord.ButtonStyle.danger)
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.edit_message(content="confirmed", view=None)

    @discord.ui.button(label="Later", custom_id="later")
    async def later(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await interaction.response.defer()  # a deferred update: @original is now the message the button sits on
        await interaction.edit_original_response(content="later, then")


class EchoBot(commands.Bot):
    """A tiny bot written for these tests (not Continuo's bot) that exercises each route the double serves."""

    def __init__(self, message_content: bool = True) -> None:
        intents = discord.Intents.default()
        intents.message_content = message_content
        super().__init__(
            command_prefix="!",
            intents=intents,
            guild_ready_timeout=0.1,
            allowed_mentions=discord.AllowedMentions.none(),
        )
        self.seen: list[discord.Message] = []
        self.edited: list[tuple[int, str]] = []
        self.deleted: list[int] = []
        self.own: list[discord.Message] = []  # its own messages, which Discord sends back too

    async def setup_hook(self) -> None:
        tree = self.tree

        @tree.command(description="Repeat some text")
        @app_commands.describe(text="what to repeat", times="how many times")
        async def echo(interaction: discord.Interaction, text: str, times: app_commands.Range[int, 1, 3] = 1):
            await interaction.response.send_message(" ".join([text] * times))

        @tree.command(description="Answer late, in pieces")
        async def slow(interaction: discord.Interaction, text: str):
            await interaction.response.defer(ephemeral=True, thinking=True)
            await interaction.followup.send(text)  # fills the "thinking" message
            await interaction.followup.send(f"{text} again", ephemeral=False, wait=True)
            await interaction.edit_original_response(content=f"{text}!")

        @tree.command(description="Shout a text file back")
        async def upload(interaction: discord.Interaction, file: discord.Attachment):
            text = (await file.read()).decode()
            loud = discord.File(io.BytesIO(text.upper().encode()), "loud.txt")
            await interaction.response.send_message("shouted", file=loud)
            await interaction.channel.send("a copy", file=discord.File(io.BytesIO(text.encode()), "copy.txt"))

        corpus = app_commands.Group(name="corpus", description="This server's corpus")

        @corpus.command(description="Add a file")
        async def add(interaction: discord.Interaction, file: discord.Attachment, note: str = ""):
            await interaction.response.send_message(
                f"added {file.filename} ({file.size} bytes) {note}".strip(), ephemeral=True
            )

        @corpus.command(description="Show the history of this channel")
        async def history(interaction: discord.Interaction, limit: int = 10, oldest_first: bool = False):
            lines = [m.content async for m in interaction.channel.history(limit=limit, oldest_first=oldest_first)]
            await interaction.response.send_message("|".join(lines), ephemeral=True)

        tree.add_command(corpus)

        @tree.command(description="Ask for confirmation")
        async def confirm(interaction: discord.Interaction):
            await interaction.response.send_message("sure?", view=ConfirmView())

        @tree.command(description="Managers only")
        @app_commands.default_permissions(manage_guild=True)
        async def admin(interaction: discord.Interaction):
            if not interaction.permissions.manage_guild:
                await interaction.response.send_message("You need Manage Server.", ephemeral=True)
                return
            await interaction.response.send_message("done")

        @tree.command(description="Pick a base corpus")
        async def pick(interaction: discord.Interaction, base: str):
            await interaction.response.send_message(f"picked {base}")

        @pick.autocomplete("base")
        async def pick_base(interaction: discord.Interaction, current: str):
            return [app_commands.Choice(name=n, value=n) for n in ("verse", "chat", "vast") if n.startswith(current)]

        @tree.command(description="Say where a channel is")
        async def where(interaction: discord.Interaction, channel: discord.TextChannel):
            await interaction.response.send_message(f"{channel.name} is in {channel.guild.name}")

        @tree.command(description="Mention everyone, allowed")
        async def loud(interaction: discord.Interaction):
            await interaction.response.send_message("@everyone look", allowed_mentions=discord.AllowedMentions.all())

        @tree.command(description="Mention everyone, not allowed")
        async def quiet(interaction: discord.Interaction):
            await interaction.response.send_message("@everyone look")

        @tree.command(description="Too long an answer")
        async def long(interaction: discord.Interaction):
            await interaction.response.send_message("x" * 2001)

        @tree.command(description="Answer after a nap")
        async def sleepy(interaction: discord.Interaction, seconds: float):
            await asyncio.sleep(seconds)
            await interaction.response.send_message("awake")

        @tree.context_menu(name="Shout")
        async def shout(interaction: discord.Interaction, message: discord.Message):
            await interaction.response.send_message(message.content.upper())

        await tree.sync()

    async def on_message(self, message: discord.Message) -> None:
        if message.author == self.user:
            self.own.append(message)
            return
        self.seen.append(message)
        if self.user in message.mentions:
            await message.reply(f"you said: {message.content}")

    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        self.edited.append((payload.message_id, payload.data["content"]))

    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self.deleted.append(payload.message_id)


@pytest.fixture
async def world(discord_double):
    guild = discord_double.add_guild("Alpha")
    return guild, guild.channel("general"), discord_double.user("ann")


async def test_login_sync_and_slash_command(discord_double, start_client, world):
    guild, general, ann = world
    bot = await start_client(EchoBot())
    assert bot.user.id == discord_double.bot_user.id
    assert discord_double.intents & discord.Intents.message_content.flag
    names = {c["name"] for c in discord_double.synced_commands[None]}
    assert {"echo", "corpus", "Shout"} <= names
    assert bot.get_guild(guild.id).name == "Alpha"

    record = await discord_double.slash_command(general, ann, "echo", {"text": "hi", "times": 2})
    response = await record.wait_response()
    assert response["type"] == 4
    assert record.content == "hi hi"
    assert not record.ephemeral
    assert record.original in discord_double.sent_messages
    assert record.original.allowed_mentions == {"parse": []}
    assert general.history()[-1] is record.original
    assert 0 <= record.latency == record.done_latency < 3
    await discord_double.wait_for(lambda: bot.own)  # the bot gets its own message back, like on Discord
    assert bot.own[0].id == record.original.id


async def test_options_are_checked_against_the_synced_schema(discord_double, start_client, world):
    guild, general, ann = world
    await start_client(EchoBot())
    with pytest.raises(CommandRefused, match="outside"):
        await discord_double.slash_command(general, ann, "echo", {"text": "hi", "times": 9})
    with pytest.raises(CommandRefused, match="needs the options"):
        await discord_double.slash_command(general, ann, "echo", {})
    with pytest.raises(CommandRefused, match="takes a"):
        await discord_double.slash_command(general, ann, "echo", {"text": 3})
    with pytest.raises(CommandRefused, match="no slash command"):
        await discord_double.slash_command(general, ann, "nope")
    with pytest.raises(CommandRefused, match="needs a sub-command"):
        await discord_double.slash_command(general, ann, "corpus")


async def test_defer_then_followups_and_edit(discord_double, start_client, world):
    guild, general, ann = world
    await start_client(EchoBot())
    record = await discord_double.slash_command(general, ann, "slow", {"text": "later"})
    assert (await record.wait_response())["type"] == 5
    first, second = await record.wait_followups(2)
    await record.wait_edits(1)
    assert first is record.original and record.ephemeral  # the defer's ephemerality is kept
    assert record.content == "later!" and not record.original.loading
    assert record.latency <= record.done_latency
    assert second.content == "later again" and not second.ephemeral
    assert general.history() == [second]  # ephemeral messages are not in the channel


async def test_attachment_option_is_downloaded_and_files_are_uploaded(discord_double, start_client, world):
    guild, general, ann = world
    await start_client(EchoBot())
    record = await discord_double.slash_command(general, ann, "upload", {"file": ("words.txt", b"some words")})
    await record.wait_response()
    copy = await discord_double.wait_for(lambda: [m for m in general.history() if m.content == "a copy"])
    assert [(a.filename, a.data) for a in record.original.attachments] == [("loud.txt", b"SOME WORDS")]
    assert [(a.filename, a.data) for a in copy[0].attachments] == [("copy.txt", b"some words")]
    assert copy[0] in discord_double.sent_messages


async def test_subcommand_with_attachment(discord_double, start_client, world):
    guild, general, ann = world
    await start_client(EchoBot())
    record = await discord_double.slash_command(general, ann, "corpus add", {"file": ("a.txt", b"12345"), "note": "ok"})
    await record.wait_response()
    assert record.content == "added a.txt (5 bytes) ok"
    assert record.ephemeral and record.original.flags & 64


async def test_channel_history_pages_both_ways(discord_double, start_client, world):
    guild, general, ann = world
    ideas = guild.add_channel("ideas")
    for n in range(5):
        await discord_double.send_message(ideas, ann, f"m{n}", dispatch=False)
    bot = await start_client(EchoBot())
    newest = await discord_double.slash_command(ideas, ann, "corpus history", {"limit": 3})
    oldest = await discord_double.slash_command(ideas, ann, "corpus history", {"limit": 3, "oldest_first": True})
    await newest.wait_response(), await oldest.wait_response()
    assert newest.content == "m4|m3|m2"
    assert oldest.content == "m0|m1|m2"
    assert bot.seen == []  # history-only messages were never dispatched


async def test_message_context_menu(discord_double, start_client, world):
    guild, general, ann = world
    await start_client(EchoBot())
    message = await discord_double.send_message(general, ann, "quiet words")
    shout = await discord_double.message_command(general, ann, "Shout", message)
    await shout.wait_response()
    assert shout.content == "QUIET WORDS" and shout.original.type == discord.MessageType.context_menu_command.value


async def test_messages_are_created_edited_deleted_and_replied_to(discord_double, start_client, world):
    guild, general, ann = world
    bot = await start_client(EchoBot())
    message = await discord_double.send_message(general, ann, "first words")
    await discord_double.wait_for(lambda: bot.seen)
    assert bot.seen[0].content == "first words" and bot.seen[0].author.id == ann.id
    await discord_double.edit_message(message, "second words")
    await discord_double.delete_message(message)
    await discord_double.wait_for(lambda: bot.deleted)
    assert bot.edited == [(message.id, "second words")] and bot.deleted == [message.id]

    with pytest.raises(CommandRefused, match="does not let users send"):
        await discord_double.send_message(general, ann, "x" * 4001)
    await discord_double.send_message(general, ann, f"{discord_double.bot_user.mention} hello")
    reply = await discord_double.wait_for(lambda: [m for m in discord_double.sent_messages if m.reference])
    assert reply[0].content.startswith("you said:") and reply[0].type == 19
    assert discord_double.pings == []  # AllowedMentions.none(): not even the replied-to user


async def test_content_is_blank_without_the_message_content_intent(discord_double, start_client, world):
    guild, general, ann = world
    bot = await start_client(EchoBot(message_content=False))
    await discord_double.send_message(general, ann, "secret words")
    await discord_double.send_message(general, ann, f"{discord_double.bot_user.mention} hello")
    await discord_double.wait_for(lambda: len(bot.seen) == 2)
    assert bot.seen[0].content == ""
    assert bot.seen[1].content.endswith("hello")


async def test_buttons_update_their_message(discord_double, start_client, world):
    guild, general, ann = world
    await start_client(EchoBot())
    record = await discord_double.slash_command(general, ann, "confirm")
    await record.wait_response()
    question = record.original
    later = await discord_double.click_button(question, "later", ann)
    assert (await later.wait_response())["type"] == discord.InteractionResponseType.deferred_message_update.value
    await later.wait_edits(1)
    assert question.content == "later, then"
    click = await discord_double.click_button(question, "confirm", ann)
    assert (await click.wait_response())["type"] == discord.InteractionResponseType.message_update.value
    assert question.content == "confirmed" and question.components == []
    with pytest.raises(CommandRefused, match="no enabled component"):
        await discord_double.click_button(question, "confirm", ann)


async def test_autocomplete(discord_double, start_client, world):
    guild, general, ann = world
    await start_client(EchoBot())
    choices = await discord_double.autocomplete(general, ann, "pick", {"base": "v"}, focused="base")
    assert [c["value"] for c in choices] == ["verse", "vast"]


async def test_default_permissions_and_the_bots_own_check(discord_double, start_client, world):
    guild, general, ann = world
    await start_client(EchoBot())
    with pytest.raises(CommandRefused, match="lacks the permissions"):
        await discord_double.slash_command(general, ann, "admin")
    refused = await discord_double.slash_command(general, ann, "admin", enforce_permissions=False)
    manage = discord.Permissions(manage_guild=True)
    allowed = await discord_double.slash_command(general, ann, "admin", permissions=manage)
    manager = discord_double.user("mo")
    guild.add_member(manager, [guild.add_role("managers", discord.Permissions(manage_guild=True))])
    by_role = await discord_double.slash_command(general, manager, "admin")
    for record in (refused, allowed, by_role):
        await record.wait_response()
    assert refused.content == "You need Manage Server." and refused.ephemeral
    assert allowed.content == by_role.content == "done"


async def test_pings_are_recorded_only_when_allowed(discord_double, start_client, world):
    guild, general, ann = world
    await start_client(EchoBot())
    quiet = await discord_double.slash_command(general, ann, "quiet")
    await quiet.wait_response()
    assert discord_double.pings == []
    loud = await discord_double.slash_command(general, ann, "loud")
    await loud.wait_response()
    assert discord_double.pings == [(loud.original, "@everyone")]


async def test_discord_limits_and_late_answers_are_refused(discord_double, start_client, world):
    guild, general, ann = world
    await start_client(EchoBot())
    long = await discord_double.slash_command(general, ann, "long")
    await discord_double.wait_for(lambda: discord_double.client_errors)
    assert discord_double.rejected_requests[0].code == 50035
    discord_double.rejected_requests.clear(), discord_double.client_errors.clear()

    discord_double.interaction_timeout = 0.1
    late = await discord_double.slash_command(general, ann, "sleepy", {"seconds": 0.3})
    await discord_double.wait_for(lambda: discord_double.client_errors)
    assert discord_double.rejected_requests[0].code == 10062 and late.response is None
    assert discord_double.unanswered == [long, late]  # refused answers are no answers
    discord_double.rejected_requests.clear(), discord_double.client_errors.clear(), discord_double.interactions.clear()


async def test_unknown_routes_get_a_json_404_and_are_recorded(discord_double, start_client, world):
    guild, general, ann = world
    bot = await start_client(EchoBot())
    with pytest.raises(discord.NotFound):
        await bot.http.request(discord.http.Route("GET", "/guilds/{guild_id}/bans", guild_id=guild.id))
    assert discord_double.unknown_routes == [f"GET /guilds/{guild.id}/bans"]
    discord_double.unknown_routes.clear()


async def test_direct_messages(discord_double, start_client, world):
    guild, general, ann = world
    bot = await start_client(EchoBot())
    dm = discord_double.dm_channel(ann)
    await discord_double.send_message(dm, ann, "hi bot")
    await discord_double.wait_for(lambda: bot.seen)
    assert bot.seen[0].content == "hi bot" and bot.seen[0].guild is None
    record = await discord_double.slash_command(dm, ann, "echo", {"text": "in private"})
    assert await record.wait_content("in private") and record.original in dm.history()


async def test_heartbeats_resume_and_loop_lag(discord_double, start_client, world):
    guild, general, ann = world
    discord_double.heartbeat_interval = 0.05
    await start_client(EchoBot())
    await discord_double.wait_for(lambda: len(discord_double.heartbeats) >= 3)
    assert await discord_double.ping_client() < 1.0
    start = time.monotonic()
    time.sleep(0.3)  # blocks the event loop the client shares with the test
    await discord_double.wait_for(lambda: discord_double.heartbeats[-1] > start + 0.3)
    assert discord_double.max_heartbeat_gap(since=start) >= 0.3

    await discord_double.reconnect_client()
    await discord_double.wait_for(
        lambda: any(e["t"] == "RESUMED" for s in discord_double.sessions.values() for e in s.events)
    )
    await discord_double.wait_for(lambda: discord_double.connected)
    record = await discord_double.slash_command(general, ann, "echo", {"text": "still here"})
    await record.wait_response()
    assert len(discord_double.identifies) == 1 and record.content == "still here"


async def test_a_rejected_token_and_a_disallowed_intent_end_the_login(discord_double):
    with pytest.raises(discord.LoginFailure):
        async with EchoBot() as bot:
            await bot.start("wrong-token")
    discord_double.privileged_intents = 0
    with pytest.raises(discord.PrivilegedIntentsRequired):
        async with EchoBot() as bot:
            await bot.start(discord_double.token)


async def test_channel_options_are_resolved_and_checked(discord_double, start_client, world):
    guild, general, ann = world
    ideas = guild.add_channel("ideas")
    other = discord_double.add_guild("Beta")
    await start_client(EchoBot())
    record = await discord_double.slash_command(general, ann, "where", {"channel": ideas})
    assert await record.wait_content("ideas is in") == "ideas is in Alpha"
    with pytest.raises(CommandRefused, match="not in this server"):
        await discord_double.slash_command(general, ann, "where", {"channel": other.channel("general")})


async def test_history_pages_through_long_channels(discord_double, start_client, world):
    guild, general, ann = world
    for n in range(250):
        await discord_double.send_message(general, ann, f"m{n}", dispatch=False)
    bot = await start_client(EchoBot())
    channel = bot.get_channel(general.id)
    newest_first = [m.content async for m in channel.history(limit=None)]
    oldest_first = [m.content async for m in channel.history(limit=None, oldest_first=True)]
    assert newest_first == [f"m{n}" for n in reversed(range(250))]
    assert oldest_first == [f"m{n}" for n in range(250)]


async def test_guilds_joined_and_left_while_connected(discord_double, start_client, world):
    guild, general, ann = world
    bot = await start_client(EchoBot())
    beta = discord_double.add_guild("Beta")
    await discord_double.announce_guild(beta)
    await discord_double.wait_for(lambda: bot.get_guild(beta.id))
    await discord_double.remove_guild(guild)
    await discord_double.wait_for(lambda: bot.get_guild(guild.id) is None)
    assert [g.name for g in bot.guilds] == ["Beta"]


async def test_a_failure_inside_the_double_is_a_400_not_a_retried_5xx(discord_double, start_client, world):
    guild, general, ann = world
    bot = await start_client(EchoBot())
    route = discord.http.Route("POST", "/channels/{channel_id}/messages", channel_id=general.id)
    with pytest.raises(discord.HTTPException) as failure:  # a reference without the message it refers to
        await bot.http.request(route, json={"content": "x", "message_reference": {"channel_id": str(general.id)}})
    assert failure.value.status == 400
    assert discord_double.double_errors and "KeyError" in discord_double.double_errors[0]
    discord_double.double_errors.clear()


def test_command_schema_errors_follow_discords_rules():
    good = {
        "name": "continue",
        "description": "Continue a seed",
        "options": [
            {"type": 3, "name": "seed", "description": "the start", "required": True},
            {"type": 4, "name": "words", "description": "how many"},
        ],
    }
    assert command_schema_errors(good) == {}
    assert command_schema_errors({"type": 3, "name": "Continue this message", "description": ""}) == {}
    bad = {
        "name": "Continue",
        "description": "",
        "options": [
            {"type": 4, "name": "words", "description": "how many"},
            {"type": 3, "name": "seed", "description": "the start", "required": True},
        ],
    }
    assert set(command_schema_errors(bad)) == {"name", "description", "options.1.required"}


async def test_an_ephemeral_followup_after_a_public_defer_is_public_and_flagged(discord_double, start_client, world):
    guild, general, ann = world

    class PublicDeferBot(EchoBot):
        async def setup_hook(self) -> None:
            @self.tree.command(description="Defer publicly, then try to answer privately")
            async def oops(interaction: discord.Interaction):
                await interaction.response.defer(thinking=True)
                await interaction.followup.send("private?", ephemeral=True)

            await self.tree.sync()

    await start_client(PublicDeferBot())
    record = await discord_double.slash_command(general, ann, "oops")
    message = await record.wait_done()
    assert message.content == "private?" and not message.ephemeral
    assert "pass ephemeral=True to defer()" in discord_double.ignored_requests[0]
    discord_double.ignored_requests.clear()


async def test_start_client_fails_fast_and_clearly_when_login_fails(discord_double):
    with pytest.raises(RuntimeError, match="LoginFailure"):
        async with run_client(EchoBot(), discord_double, token="another-token"):
            pass


async def test_edits_over_the_optional_rate_limit_get_429_and_are_retried(discord_double, start_client, world):
    guild, general, ann = world
    discord_double.edit_rate_limit = (2, 0.3)
    bot = await start_client(EchoBot())
    message = await bot.get_channel(general.id).send("0")
    for n in range(1, 4):
        await message.edit(content=str(n))  # discord.py sleeps on the 429 and tries again
    sent = discord_double.messages[message.id]
    assert sent.content == "3" and [e["content"] for e in sent.edits] == ["1", "2", "3"]
    assert discord_double.rate_limited == [f"PATCH /channels/{general.id}/messages/{message.id}"]


def test_would_ping_follows_allowed_mentions():
    text = "@everyone @here <@1> <@!2> <@&3> plain @ann"
    assert would_ping(text, None) == ["@everyone", "user:1", "user:2", "role:3"]
    assert would_ping(text, {"parse": []}) == []
    assert would_ping(text, {"parse": ["users"]}) == ["user:1", "user:2"]
    assert would_ping(text, {"parse": [], "users": ["2"], "roles": ["3"]}) == ["user:2", "role:3"]
    asker = User(9, "asker")
    assert would_ping("", None, replied_to=asker) == ["reply:9"]  # Discord's default pings the replied-to author
    assert would_ping("", {"parse": []}, replied_to=asker) == []
    assert would_ping("", {"parse": [], "replied_user": True}, replied_to=asker) == ["reply:9"]


async def test_a_restarted_client_finds_everything_again(discord_double, world):
    guild, general, ann = world
    async with run_client(EchoBot(), discord_double):
        await discord_double.send_message(general, ann, "before the restart")
    assert not discord_double.connected
    async with run_client(EchoBot(), discord_double) as bot:
        record = await discord_double.slash_command(general, ann, "corpus history", {"limit": 1})
        assert await record.wait_content("before the restart")
        assert len(discord_double.identifies) == 2 and bot.get_guild(guild.id) is not None
    discord_double.assert_clean()


async def test_injected_429s_route_and_global_are_waited_out_and_nothing_is_lost(discord_double, start_client, world):
    guild, general, ann = world
    bot = await start_client(EchoBot())
    channel = bot.get_channel(general.id)
    discord_double.rate_limit(1, retry_after=0.2)  # the next send or edit, on its own route
    first = await channel.send("one")
    discord_double.rate_limit(1, retry_after=0.2)
    await first.edit(content="one, edited")
    assert [m.content for m in general.history()] == ["one, edited"]
    assert discord_double.rate_limited == [
        f"POST /channels/{general.id}/messages",
        f"PATCH /channels/{general.id}/messages/{first.id}",
    ]

    discord_double.rate_limited.clear()
    discord_double.rate_limit(1, retry_after=0.5, scope="global")
    await asyncio.gather(*(channel.send(str(n)) for n in range(3)))  # the others meet the global window or wait
    assert sorted(m.content for m in general.history()[1:]) == ["0", "1", "2"]
    assert discord_double.rate_limited[0].endswith("(global)")


async def test_threads_reach_the_client_with_their_messages_history_and_commands(discord_double, start_client, world):
    guild, general, ann = world
    ideas = guild.add_channel("ideas")
    earlier = guild.add_thread(ideas, "earlier", ann)  # before the client connects: in GUILD_CREATE's threads
    await discord_double.send_message(earlier, ann, "e0", dispatch=False)
    bot = await start_client(EchoBot())
    cached = bot.get_channel(earlier.id)
    assert isinstance(cached, discord.Thread) and cached.parent_id == ideas.id and cached.owner_id == ann.id

    plans = await discord_double.add_thread(ideas, "plans", ann)  # THREAD_CREATE while connected
    thread = await discord_double.wait_for(lambda: bot.get_guild(guild.id).get_thread(plans.id))
    assert thread.name == "plans" and thread.parent is bot.get_channel(ideas.id)
    for n in range(3):
        await discord_double.send_message(plans, ann, f"p{n}")
    await discord_double.wait_for(lambda: len(bot.seen) == 3, what="three messages in the thread")
    channel = bot.seen[0].channel
    assert isinstance(channel, discord.Thread) and channel.id == plans.id and channel.parent_id == ideas.id
    assert [m.content for m in bot.seen] == ["p0", "p1", "p2"] and bot.seen[0].guild.id == guild.id

    record = await discord_double.slash_command(plans, ann, "corpus history", {"limit": 2})  # a command in a thread
    assert await record.wait_content("p2|p1")
    assert [m.content async for m in cached.history(oldest_first=True)] == ["e0"]
    assert [m.content for m in ideas.history()] == [] and len(guild.messages()) == 4  # threads keep their own
    with pytest.raises(CommandRefused, match="takes channels of types"):  # a thread is no text channel option
        await discord_double.slash_command(general, ann, "where", {"channel": plans})
    with pytest.raises(ValueError, match="text channel"):
        guild.add_thread(plans, "nested", ann)


async def test_threads_through_the_control_routes():
    double = DiscordDouble(heartbeat_interval=0.2)
    await double.start(extra_routes=lambda app: add_control_routes(app, double))
    remote = RemoteDouble(double.base_url)
    try:
        guild = double.add_guild("Alpha")
        ann = await remote.user("ann", guilds=[str(guild.id)])
        general = str(guild.channel("general").id)
        with double.patch_discord():
            async with run_client(EchoBot(), double) as bot:
                thread = await remote.add_thread(general, "plans", ann["id"])
                assert thread["parent"] == general
                assert (await remote.state())["guilds"][0]["threads"] == {"plans": thread["id"]}
                await remote.send_message(thread["id"], ann["id"], "in the thread")
                await double.wait_for(lambda: bot.seen, what="the message in the thread")
                assert isinstance(bot.seen[0].channel, discord.Thread)
                assert bot.seen[0].channel.parent_id == int(general) and bot.seen[0].content == "in the thread"
                with pytest.raises(CommandRefused, match="text channel"):
                    await remote.add_thread(thread["id"], "nested")
        double.assert_clean()
    finally:
        await remote.close()
        await double.stop()


async def test_channel_webhooks_are_created_listed_and_executed_as_discord_does(discord_double, start_client, world):
    guild, general, ann = world
    bot = await start_client(EchoBot())
    channel = bot.get_channel(general.id)
    with pytest.raises(discord.Forbidden):  # Manage Webhooks is not among the bot's permissions by default
        await channel.create_webhook(name="voices")
    discord_double.bot_permissions |= discord.Permissions(manage_webhooks=True).value
    with pytest.raises(discord.HTTPException, match="clyde"):
        await channel.create_webhook(name="Clyde's voice")
    hook = await channel.create_webhook(name="voices")
    assert [h.id for h in await channel.webhooks()] == [hook.id]
    sent = await hook.send(
        f"hello {ann.mention} @everyone",
        username="ann (imitation)",
        avatar_url="https://cdn.example/a.png",
        allowed_mentions=discord.AllowedMentions.none(),
        wait=True,
    )
    (posted,) = discord_double.webhooks[hook.id].executed
    assert sent.id == posted.id and sent.webhook_id == hook.id and sent.author.name == "ann (imitation)"
    assert posted.avatar_url == "https://cdn.example/a.png" and posted.pings == []
    with pytest.raises(discord.HTTPException):
        await hook.send("x", username="clyde", wait=True)
    general.deny_bot(manage_webhooks=True)  # an overwrite in the channel takes it away again
    with pytest.raises(discord.Forbidden):
        await channel.webhooks()
    codes = [r.code for r in discord_double.rejected_requests]
    assert codes == [50013, 50035, 50035, 50013], codes
    discord_double.rejected_requests.clear(), discord_double.client_errors.clear()
