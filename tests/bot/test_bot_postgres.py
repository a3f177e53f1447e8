"""The bot end to end on PostgreSQL: the corpus module's tests and the server-settings ones once more with the
store on a real server, and a training published as a version, rolled back by an admin and kept across a restart."""

from __future__ import annotations

import pytest
from continuo_world import answer
from continuo_world import bot_settings as sqlite_bot_settings  # noqa: F401 - the SQLite settings, renamed
from test_bot_continue import (  # noqa: F401 - server settings kept in the store, collected here on PostgreSQL
    test_mentioning_the_bot_continues_the_text_and_can_be_switched_off,
    test_server_settings_set_continue_defaults,
)
from test_bot_corpus import *  # noqa: F401,F403 - the same end-to-end tests, collected here on PostgreSQL
from test_bot_training import TRAINING_TIMEOUT, upload_chat


@pytest.fixture(autouse=True)
def database_first(postgres_url):
    """The database is made before the Discord double and its clients, so it is dropped after they closed."""
    return postgres_url


@pytest.fixture
def bot_settings(sqlite_bot_settings, postgres_url):  # noqa: F811 - replaces the SQLite settings in this module
    return sqlite_bot_settings.model_copy(update={"database_url": postgres_url})


@pytest.mark.slow
async def test_a_training_on_postgresql_is_a_version_an_admin_can_roll_back(
    world, make_bot, postgres_url, tiny_model_path
):
    bot = await make_bot()
    assert bot.store.dialect == "postgresql"
    double, alpha, general = world.double, world.alpha, world.general
    await upload_chat(world, alpha)
    record = await double.slash_command(general, world.ann, "train", {"epochs": 1})
    await double.wait_for(
        lambda: "new model is in use" in (record.content or "") or "failed" in (record.content or ""),
        TRAINING_TIMEOUT,
        "the training to finish",
    )
    assert "new model is in use" in record.content, record.content
    trained = (await bot.store.current_model(alpha.id)).version
    assert [v.version for v in await bot.store.model_versions(alpha.id)] == [trained]

    await bot.versions.publish(alpha.id, tiny_model_path)  # a newer version, as another process would publish
    assert "verse" in (await bot.models.model_for(alpha.id)).card.corpus

    refused = await answer(await double.slash_command(general, world.bob, "model rollback"))
    assert refused.ephemeral and (await bot.store.current_model(alpha.id)).version != trained
    back = await answer(await double.slash_command(general, world.ann, "model rollback"))
    assert "is back to its model trained" in back.content, back.content
    assert (await bot.store.current_model(alpha.id)).version == trained
    info = await answer(await double.slash_command(general, world.bob, "model info"))
    assert "its own, trained on its corpus" in info.content and "this server's text" in info.content
    continued = await answer(await double.slash_command(general, world.bob, "continue", {"seed": "good morning"}))
    assert continued.content.startswith("**good morning**"), continued.content
    assert (await bot.store.current_model(world.beta.id)) is None  # Beta never got a version

    restarted = await make_bot()  # another process on the same database finds the same model
    assert (await restarted.models.model_for(alpha.id)).card.corpus == "this server's text"
    assert len(await restarted.store.corpus_texts(alpha.id)) == 1
