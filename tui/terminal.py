"""Keeps native libraries' stderr (TensorFlow's C++ logs, training processes) off the screen Textual draws on."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def native_stderr_to(log: Path) -> Iterator[None]:
    """Point file descriptor 2 at `log` while Textual draws on a duplicate of the terminal.

    TensorFlow writes its C++ logs straight to descriptor 2, where no Python setting reaches, and
    training processes inherit it: on a terminal app's screen those lines would tear the drawing.
    """
    if not sys.__stderr__ or not sys.__stderr__.isatty():
        yield  # not a terminal (tests, pipes): nothing to protect
        return
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.__stderr__.flush()
    terminal_fd = os.dup(2)
    original = sys.__stderr__
    with open(log, "ab") as sink:
        os.dup2(sink.fileno(), 2)
    terminal = os.fdopen(terminal_fd, "w", buffering=1, encoding=original.encoding, errors=original.errors)
    sys.__stderr__ = sys.stderr = terminal  # type: ignore[misc]  # Textual's driver writes to sys.__stderr__
    try:
        yield
    finally:
        terminal.flush()
        os.dup2(terminal_fd, 2)
        sys.__stderr__ = sys.stderr = original  # type: ignore[misc]  # the real one back
        terminal.close()
