"""`continuo bot` / `python -m bot`: registered as a sub-command; a missing or rejected token is one clear line."""

from __future__ import annotations

import argparse
import asyncio

from bot.__main__ import main
from bot.cli import register


def test_register_adds_the_bot_sub_command():
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    args = parser.parse_args(["bot", "--sync-guild", "42", "--no-sync"])
    assert args.sync_guild == 42 and args.no_sync and callable(args.run)


def test_a_missing_token_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.delenv("DISCORD_TOKEN", raising=False)
    monkeypatch.chdir(tmp_path)  # no .env here
    assert main([]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m bot: error: DISCORD_TOKEN is not set") and "\n" not in err


async def test_a_rejected_token_is_one_line(world, monkeypatch, tmp_path, tiny_model_path, capsys):
    monkeypatch.setenv("DISCORD_TOKEN", "not-the-token")
    monkeypatch.chdir(tmp_path)
    # the bot runs its own event loop in a thread, as from a terminal; the double answers from this one
    code = await asyncio.to_thread(main, ["--model", str(tiny_model_path), "--data", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("python -m bot: error: DISCORD_TOKEN was rejected by Discord:")
    assert "\n" not in err and "Traceback" not in err


def test_a_bad_setting_in_the_environment_is_one_line(monkeypatch, tmp_path, capsys):
    monkeypatch.setenv("DISCORD_TOKEN", "x")
    monkeypatch.setenv("CONTINUO_BOT_METRICS_PORT", "not-a-port")
    monkeypatch.chdir(tmp_path)
    assert main(["--data", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("python -m bot: error: CONTINUO_BOT_METRICS_PORT: ") and "\n" not in err
