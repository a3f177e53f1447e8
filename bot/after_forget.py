"""What follows a removal of text: the server is answered by a model that never saw it, and retrains without it."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from core import ContinuoError, CorpusTooSmall

if TYPE_CHECKING:
    import discord

    from .bot import ContinuoBot

log = logging.getLogger(__name__)


async def after_removal(bot: ContinuoBot, interaction: discord.Interaction, them: str, removed: int) -> str:
    """Serve the server from a model that never saw the removed text, queue a retraining without it; say so.
    Where nothing was removed, nothing changes: the store records no removal, so the model in use stays."""
    assert interaction.guild is not None  # the commands that remove text are guild_only
    if not removed:
        return "Nothing was removed, so the model answering this server is unchanged."
    server_id, models = interaction.guild.id, bot.models
    await models.forgot(server_id)  # from now on: the instant model counted without it, or the default one
    try:
        instant = await models.rebuild_instant(server_id)
    except Exception:  # noqa: BLE001 - the default model, which holds no server's text, answers meanwhile
        log.exception("guild %s: the instant model could not be counted again", server_id)
        instant = None
    serving = (
        "its instant model, counted again without " + them
        if instant is not None
        else "the bundled default model, which holds no server's text"
    )
    retraining = await retrain_without(bot, server_id, interaction.guild.name, interaction.channel_id, them)
    return f"This server now answers from {serving}; {retraining}"


async def retrain_without(bot: ContinuoBot, server_id: int, server_name: str, channel_id: int | None, it: str) -> str:
    """Make sure a training reads the corpus after the removal; a sentence saying which."""
    training = bot.training
    ticket = training.ticket(server_id)
    if ticket is not None and training.place(ticket) > 0:
        return f"the retraining already queued (place {training.place(ticket)}) reads the corpus without {it}."
    if ticket is not None:  # it read the corpus before: its model is not served, and it trains again
        training.restart(server_id)  # this machine's job stops now; a cluster's finds out when it ends
        return f"the training that was running had read {it}, so it starts again without {it}."
    try:
        ticket = await training.submit(server_id, server_name, 0, channel_id)
    except CorpusTooSmall:
        return "the corpus is now too small to train a model on; add text and run /train."
    except ContinuoError as e:
        return f"a retraining was not queued ({e})."
    place = training.place(ticket)
    return (
        f"a retraining without {it} has started."
        if place == 0
        else f"a retraining without {it} is queued (place {place})."
    )
