"""Smoke test: the real `python -m tui MODEL` in a real terminal (tmux) shows ghost text as you type, and chats."""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from tui.config import TuiConfig
from tui.text import shown

REPO = Path(__file__).resolve().parents[2]
TMUX = shutil.which("tmux")


class Terminal:
    """A detached tmux session on its own server socket, so it never touches the user's tmux."""

    def __init__(self, socket: Path, command: str, env: dict[str, str], size=(110, 32)):
        self.base = [TMUX, "-S", str(socket)]
        exports = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
        subprocess.run(
            [
                *self.base,
                "new-session",
                "-d",
                "-s",
                "tui",
                "-x",
                str(size[0]),
                "-y",
                str(size[1]),
                "-c",
                str(REPO),
                f"env {exports} {command}; sleep 60",
            ],
            check=True,
        )

    def screen(self) -> str:
        return subprocess.run(
            [*self.base, "capture-pane", "-p", "-t", "tui"], check=True, capture_output=True, text=True
        ).stdout

    def type(self, text: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "tui", "-l", text], check=True)

    def press(self, key: str) -> None:
        subprocess.run([*self.base, "send-keys", "-t", "tui", key], check=True)

    def wait_for(self, condition, timeout: float, what: str) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            screen = self.screen()
            if condition(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; the screen shows:\n{self.screen()}")

    def close(self) -> None:
        subprocess.run([*self.base, "kill-server"], capture_output=True)


@pytest.mark.slow
@pytest.mark.skipif(TMUX is None, reason="tmux is not installed (apt-get install tmux) so no real terminal to drive")
def test_typing_a_seed_shows_the_models_suggestion_on_screen(tiny_model_path, tiny_model, continuo_home, tmp_path):
    env = {"CONTINUO_HOME": str(continuo_home), "TERM": "xterm-256color", "PYTHONPATH": str(REPO)}
    terminal = Terminal(tmp_path / "tmux.sock", f"{shlex.quote(sys.executable)} -m tui {tiny_model_path}", env)
    try:
        terminal.wait_for(lambda s: "Model: tiny-verse" in s, timeout=90, what="the app to load the model")
        seed = "The harbour "
        config = TuiConfig()
        ghost = tiny_model.complete(seed, replace(config.generation, seed=config.ghost_seed))
        expected = seed + shown(ghost)[:20].rstrip()
        terminal.type(seed)
        screen = terminal.wait_for(lambda s: expected in s, timeout=30, what=f"the ghost text {expected!r}")
        assert "Next word" in screen and "f1 Help" in screen
        terminal.press("Tab")  # accepts it: the text becomes seed + ghost, and a new ghost follows
        text = seed + ghost
        after = (
            text.split("\n")[-1]
            + shown(tiny_model.complete(text, replace(config.generation, seed=config.ghost_seed)))[:10]
        )
        terminal.wait_for(
            lambda s: after.rstrip() in s and text.split("\n")[0] in s,
            timeout=30,
            what=f"the accepted text and a new ghost {after!r}",
        )
        # the Chat screen: a turn written, the model's turn under its name
        terminal.press("F5")
        terminal.wait_for(lambda s: "Conversation" in s, timeout=30, what="the Chat screen")
        turn = "Where did the boats go?"
        terminal.type(turn)
        terminal.press("Enter")

        def answered(screen: str) -> bool:
            lines = screen.splitlines()
            mine = next((i for i, line in enumerate(lines) if turn in line), None)
            return mine is not None and any("tiny-verse" in line for line in lines[mine + 1 :])

        terminal.wait_for(answered, timeout=30, what="the model's turn after the one written")
        terminal.press("C-q")
        terminal.wait_for(lambda s: "Conversation" not in s, timeout=30, what="the app to quit")
        log = continuo_home / "logs" / "tui.log"
        assert not log.exists() or "Traceback" not in log.read_text()
    finally:
        terminal.close()
