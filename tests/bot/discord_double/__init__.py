"""A local Discord double: REST and gateway on 127.0.0.1 that the real, unpatched discord.py client talks to.

Only two URL constants of discord.py are changed (``discord.http.Route.BASE`` and
``discord.gateway.DiscordWebSocket.DEFAULT_GATEWAY``), by ``double.patch_discord()`` or the
``discord_double`` fixture. Modules: ``world`` (users, servers, channels, messages as Discord's JSON),
``gateway`` (HELLO, IDENTIFY, RESUME, dispatches), ``rest`` (the routes the bot calls),
``interactions`` (what users start and the record of the bot's answers), ``double`` (all of it on one
server, and the waits), ``client`` (running a discord.py client against it).

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
    thread = alpha.add_thread(ideas, "plans", ann)   # a public thread (in GUILD_CREATE's threads), before connecting
    channel.history(), guild.messages()              # visible messages, oldest first (threads included)

Events to the connected client (each returns what it created)::

    rec = await double.slash_command(channel, ann, "continue", {"seed": "Once", "words": 5})
    rec = await double.slash_command(channel, ann, "corpus add", {"file": ("a.txt", b"text")})
    rec = await double.message_command(channel, ann, "Continue this message", message)
    rec = await double.click_button(message, "confirm", ann)          # custom_id of a button on it
    choices = await double.autocomplete(channel, ann, "corpus use", {"base": "ve"}, focused="base")
    msg = await double.send_message(channel, ann, f"{double.bot_user.mention} hi")  # MESSAGE_CREATE
    await double.edit_message(msg, "new text"); await double.delete_message(msg)
    msg = await double.send_message(channel, ann, "old", dispatch=False)  # history only (backfill)
    msg = await double.send_message(channel, ann, "and then?", reply_to=bots_message)  # a reply (type 19): it
                                # carries the replied message as Discord does, one link only; older links are
                                # fetched (GET /channels/C/messages/M, 404 code 10008 once deleted)
    thread = await double.add_thread(ideas, "plans", ann)   # THREAD_CREATE; then send_message(thread, ...)
                                # posts in it (MESSAGE_CREATE with the thread's channel_id; its history is served)

Slash options are typed from the synced command (so a test cannot send what Discord would not):
str/int/float/bool values; a ``User``, ``Channel`` or ``Role`` for those types; an attachment is
``(filename, bytes)`` or ``(filename, bytes, content_type)`` and is served back by the double at
its ``url``. Sub-commands and groups are spaces in the name (``"corpus add"``). Unknown commands,
unknown or missing required options, values outside min/max/choices, and commands whose
``default_member_permissions`` the user lacks raise ``CommandRefused`` (Discord's client would not
send them); pass ``permissions=`` to override the member's computed permissions, and
``enforce_permissions=False`` to reach the bot's own permission checks.

Interaction records (``InteractionRecord``)::

    body = await rec.wait_response(timeout)     # the callback body {"type": 4/5/6/7/8, "data": {...}}
    msgs = await rec.wait_followups(n, timeout) # the n first followup Messages
    edits = await rec.wait_edits(n, timeout)    # PATCH bodies of @original
    await rec.wait_done(timeout)                # answered with content (deferred ones edited/followed up)
    await rec.wait_content("perplexity")        # the response's content once it contains that (or a predicate)
    rec.original (Message), rec.content, rec.ephemeral, rec.response_type, rec.followups, rec.edits,
    rec.choices, rec.latency (dispatch to callback, s), rec.done_latency (to an answer with content)

``Message`` has content, embeds, components, attachments (``Attachment.data`` holds the bytes),
flags, ephemeral, allowed_mentions, pings (what it would notify), edits (bodies), deleted, author.

Bookkeeping a test asserts on::

    double.sent_messages        # every Message the bot created, on any route, in order
    double.typing               # (channel, monotonic time) of every typing indicator the bot started
    channel.deny_bot(read_message_history=True)  # a channel overwrite: the routes that need it answer 403 (50013)
    double.pings                # (message, "@everyone" | "user:ID" | "role:ID" | "reply:ID") it would notify
    double.unknown_routes       # requests to routes the double does not know (answered with a JSON 404)
    double.rejected_requests    # requests Discord would refuse (limits, empty message, late answers...)
    double.ignored_requests     # what Discord would silently do otherwise (an ephemeral followup after a public defer)
    double.rate_limit(3, retry_after=0.3, scope="route" | "global", methods=("POST", "PATCH"), path=regex)
                                # the next 3 matching sends or edits get 429 (a global one also refuses every
                                # authenticated request for retry_after); DiscordDouble(edit_rate_limit=(5, 5.0))
                                # limits edits per message instead
    double.rate_limited         # requests answered with 429 (discord.py waits and retries them)
    double.unanswered           # interactions without an accepted callback ("The application did not respond")
    double.synced_commands      # {None: [global commands], guild_id: [guild commands]}
    double.identifies           # IDENTIFY payloads; double.intents is the last one's intents
    double.heartbeats           # monotonic times of heartbeats received
    double.max_heartbeat_gap(since)  # longest gap between heartbeats since then, including up to now
    await double.ping_client()  # round trip of a server-requested heartbeat (event-loop lag)
    await double.reconnect_client()  # op 7: the client resumes and gets the events it missed
    await double.wait_for(predicate, timeout, what)  # generic wait, fails fast if the client died or
                                # logged an error; polls every 50 ms, so it sees the client's own state
    double.assert_clean()       # none of the above lists, client errors or errors of the double itself

Sharding: ``DiscordDouble(recommended_shards=2, max_concurrency=1, identify_window=5.0)`` (the
"shards" and ``session_start_limit`` of GET /gateway/bot; at most one IDENTIFY per ``identify_window``
seconds in each bucket ``shard_id % max_concurrency``, else op 9, recorded in ``invalid_sessions``;
0, the default, sets no limit). IDENTIFY's ``shard: [id, count]`` is honoured: READY, GUILD_CREATE and
every event of a server go only to sessions of its shard ``(guild_id >> 22) % count`` (events without a
server to shard 0), ``rec.sessions`` says which session an interaction went to, ``session.shard`` its
shard, ``command_syncs`` the scope of every command sync. Faults: ``await double.drop_connections()``
(connections lost without a close frame: clients RESUME, missed events are replayed),
``await double.invalidate_sessions()`` (op 9 d=false: clients IDENTIFY again, events in between are lost).

Standalone (bots run as processes): ``python -m discord_double --port 8123 --guilds 2 [--identify-window
5 --max-concurrency 1 --recommended-shards 2 --token T]`` with tests/bot on PYTHONPATH (from the
repository root: ``PYTHONPATH=tests/bot``). It prints one JSON line once it listens (port, token,
guilds with their channel ids) and serves until SIGTERM. A bot process reaches it with
``python -m discord_double.run_bot --double http://127.0.0.1:8123 -- --shard-count 2 --shard-ids 0
--data DIR`` (the options of ``continuo bot``; DISCORD_TOKEN set to the double's token), which only
points discord.py's two URL constants at it. A test drives it over HTTP with ``control.RemoteDouble``
(``await start_standalone(...)`` starts it and returns the process, a client and its first state):
``add_guild``, ``user``, ``slash_command`` (ids as strings, plain option values), ``interaction``,
``wait_done``, ``send_message``, ``add_thread``, ``fault("drop" | "invalidate" | "reconnect")``, ``state()`` (sessions
with their shards, identifies, invalid_sessions, command_syncs, unknown_routes, rejected_requests,
unanswered).

Fidelity: MESSAGE_CREATE content is blanked without the message-content intent (except mentions of
the bot, DMs and the bot's own messages), guild message events need the GUILD_MESSAGES intent, the
bot receives its own non-ephemeral messages, privileged intents not enabled are refused with close
code 4014, a wrong token gets 401 / close 4004, callbacks later than ``interaction_timeout`` (3 s)
get "Unknown interaction", a second callback gets "already acknowledged", messages over Discord's
limits (2000 characters, 10 embeds, 6000 embed characters, 25 MiB of files) get 400 like Discord,
and the first followup after a defer fills the deferred message and keeps the defer's ephemerality, as
on Discord (so ``defer(ephemeral=True)`` decides whether an error sent as that followup is private).
Webhooks (members' voices): ``POST``/``GET /channels/{id}/webhooks`` need Manage Webhooks in the channel
(``channel.deny_bot(manage_webhooks=True)`` takes it away; the double's ``bot_permissions`` must hold it, which
the default does not), names are 1-80 characters without "clyde"; executing one (``POST /webhooks/{id}/{token}``,
``thread_id`` for a thread) posts a message whose author is the webhook under the ``username`` sent, with
``avatar_url`` and ``allowed_mentions`` recorded; ``double.webhooks`` holds them, each with what it ``executed``.
An interaction's ``app_permissions`` are the bot's in that channel.
Only what the bot uses is served (no reactions, modals, selects, member or role routes): anything
else is an unknown route, which fails the test.
"""

from .client import run_client
from .double import DiscordDouble
from .gateway import GatewaySession
from .interactions import CommandRefused, InteractionRecord, command_schema_errors
from .rest import Rejection, RequestRecord
from .world import (
    DIRECT_MESSAGES,
    GUILD_MESSAGES,
    GUILDS,
    MESSAGE_CONTENT,
    Attachment,
    Channel,
    Guild,
    Member,
    Message,
    Role,
    User,
    Webhook,
    would_ping,
)

__all__ = [
    "DIRECT_MESSAGES",
    "GUILD_MESSAGES",
    "GUILDS",
    "MESSAGE_CONTENT",
    "Attachment",
    "Channel",
    "CommandRefused",
    "DiscordDouble",
    "GatewaySession",
    "Guild",
    "InteractionRecord",
    "Member",
    "Message",
    "Rejection",
    "RequestRecord",
    "Role",
    "User",
    "Webhook",
    "command_schema_errors",
    "run_client",
    "would_ping",
]
