"""The machine checks CI used to run beside the suite, as tests: lint, format and types (settings in pyproject.toml)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent


def _check(*args: str) -> None:
    done = subprocess.run([sys.executable, "-m", *args], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{' '.join(args)} found problems:\n{done.stdout}{done.stderr}"


def test_ruff_finds_nothing_to_fix():
    _check("ruff", "check", ".")


def test_the_tree_is_formatted():
    _check("ruff", "format", "--check", ".")


@pytest.mark.slow
def test_the_types_check():
    _check("mypy")
