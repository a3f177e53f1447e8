"""100 servers with their own models, 1,000 /continue by a Zipf popularity through the Discord double, a cache in MB."""

from __future__ import annotations

import pytest

from bench.many_servers import LoadCounter, build_models, traffic, zipf_choices
from bot.bot import ContinuoBot

SERVERS, REQUESTS = 100, 1000
CACHE_MB = 2.0  # room for a couple of dozen of these small models: the long tail must be evicted and loaded again


@pytest.mark.slow
async def test_a_hundred_servers_each_answered_by_its_own_model_within_a_cache_bounded_in_megabytes(
    discord_double, start_client, bot_settings
):
    double = discord_double
    guilds = [double.add_guild(f"Server {i}") for i in range(SERVERS)]
    users = [double.user(f"user{i}") for i in range(20)]
    for guild in guilds:
        for user in users[:2]:
            guild.add_member(user)
    settings = bot_settings.model_copy(update={"model_cache_mb": CACHE_MB, "cooldown_uses": 100_000})
    build_models(settings.guilds_dir, [g.id for g in guilds])  # each its own n-gram model of its own words
    bot = await start_client(ContinuoBot(settings, guild_ready_timeout=0.1), ready_timeout=60)
    loads = LoadCounter(bot.models.cache)
    picks = zipf_choices(SERVERS, REQUESTS)

    result = await traffic(double, bot, [g.channel("general") for g in guilds], users, picks)

    assert result["answered"] == REQUESTS and result["failed"] == 0
    assert result["wrong_or_error"] == 0, result["wrong_examples"]  # every answer in its own server's words
    assert result["cache_peak_mb"] <= CACHE_MB and bot.models.cached_bytes <= CACHE_MB * 1e6
    assert len(bot.models.cache) < result["servers_asked"]  # the cache holds a share of the servers...
    assert len(loads.seconds) > result["servers_asked"]  # ...so the tail was evicted and loaded again
