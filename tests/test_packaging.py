"""A built wheel works outside the checkout: the bundled corpora ship as package data, and `continuo` trains on one."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SOURCES = ("core", "tui", "bot", "corpora", "pyproject.toml", "README.md")  # what the wheel is built from
TIMEOUT = 600  # seconds per command; building and a one-epoch training take well under a minute alone


def run(*args: str | Path, cwd: Path, env: dict | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=TIMEOUT)
    assert done.returncode == 0, f"{args} exited {done.returncode}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    """The project's wheel, built from a copy of its sources (a build writes build/ and egg-info where it runs)."""
    source = tmp_path_factory.mktemp("source")
    for name in SOURCES:
        if (REPO / name).is_dir():
            shutil.copytree(REPO / name, source / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(REPO / name, source / name)
    out = tmp_path_factory.mktemp("dist")
    # no build isolation: the test extra installs the build backend, so nothing is downloaded here
    run(sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", out, source, cwd=source)
    return next(out.glob("continuo-*.whl"))


@pytest.fixture(scope="module")
def installed(wheel, tmp_path_factory) -> Path:
    """A fresh virtual environment with only the wheel installed; it sees this environment's dependencies."""
    env_dir = tmp_path_factory.mktemp("venv")
    venv.create(env_dir, with_pip=False)
    python = env_dir / "bin" / "python"
    purelib = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=env_dir).strip())
    # after the new environment's own site-packages on sys.path, so its `continuo` wins over an editable one here
    (purelib / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel, cwd=env_dir)
    return env_dir


@pytest.mark.slow
def test_the_wheel_ships_the_corpora_and_trains_from_another_folder(installed, tmp_path):
    env = {**os.environ, "CONTINUO_HOME": str(tmp_path / "home"), "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("PYTHONPATH", None)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    python, continuo = installed / "bin" / "python", installed / "bin" / "continuo"

    where = run(
        python, "-c", "import core, corpora; print(core.__file__); print(corpora.__file__)", cwd=elsewhere, env=env
    )
    assert all(Path(line).is_relative_to(installed) for line in where.split()), (
        where
    )  # the wheel's copy, not the checkout

    listing = run(continuo, "corpora", cwd=elsewhere, env=env)
    assert "verse" in listing and "chat" in listing
    assert "**" not in listing and "`" not in listing  # plain text, not the cards' markdown

    run(
        continuo,
        "train",
        "verse",
        "--units",
        "8",
        "--embedding-dim",
        "8",
        "--window",
        "4",
        "--epochs",
        "1",
        "--quiet",
        cwd=elsewhere,
        env=env,
    )
    assert (tmp_path / "home" / "models" / "verse" / "card.json").is_file()
    assert not list(elsewhere.iterdir())  # nothing written where it ran
