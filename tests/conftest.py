"""Shared fixtures: an isolated data folder for every test and one tiny real model per session."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

from testdata import TINY_MODEL, TINY_TRAIN, VERSE


@pytest.fixture(autouse=True)
def continuo_home(tmp_path, monkeypatch):
    """Every test gets its own empty data folder (CONTINUO_HOME)."""
    from core.settings import get_settings

    home = tmp_path / "continuo-home"
    monkeypatch.setenv("CONTINUO_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def tiny_model_path(tmp_path_factory) -> Path:
    """A real BiLSTM bundle trained for one epoch on the bundled verse corpus."""
    from core import ModelConfig, TrainConfig, read_text, train

    out = tmp_path_factory.mktemp("models") / "tiny-verse"
    train(read_text(VERSE), out, ModelConfig(**TINY_MODEL), TrainConfig(**TINY_TRAIN), corpus_name="verse")
    return out


@pytest.fixture(scope="session")
def tiny_model(tiny_model_path):
    """The tiny bundle loaded once, shared by tests that only read from it."""
    from core import load

    return load(tiny_model_path)


def _no_postgres(why: str):
    """Outside CI a missing PostgreSQL skips its tests with the reason; in CI it fails them."""
    if os.environ.get("CI"):
        pytest.fail(f"the PostgreSQL tests must run in CI, but {why}")
    pytest.skip(f"no PostgreSQL server for this test: {why}")


@pytest.fixture(scope="session")
def postgres_server():
    """URL of a real PostgreSQL server: CONTINUO_TEST_POSTGRES_URL where set, else one started here for the session."""
    import postgres_server as pg

    try:
        import psycopg  # noqa: F401
    except ImportError:
        _no_postgres('psycopg is not installed: pip install -e ".[test]"')
    if os.environ.get(pg.URL_ENV):
        yield os.environ[pg.URL_ENV]
        return
    try:
        url = pg.start()
    except pg.Unavailable as e:
        _no_postgres(str(e))
    yield url
    pg.stop(url)


@pytest.fixture
def postgres_url(postgres_server):
    """A new, empty database on that server for this test alone (dropped afterwards)."""
    import uuid
    from urllib.parse import urlsplit, urlunsplit

    import psycopg

    name = f"continuo_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield urlunsplit(urlsplit(postgres_server)._replace(path=f"/{name}"))
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
