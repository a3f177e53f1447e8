"""Work-arounds for bugs in the CPython releases Continuo runs on, each applied only where the bug is."""

from __future__ import annotations

import ast
import functools
import sys
import threading
from typing import Any

# CPython 3.11.0-3.11.7 count the depth of the AST being built in one counter per interpreter
# (https://github.com/python/cpython/issues/106905, fixed in 3.11.8). A thread that gives up the
# interpreter in the middle of a parse, for a finalizer the garbage collector runs, lets another
# thread parse and move that counter, and the first one then fails with "SystemError: AST
# constructor recursion depth mismatch". Continuo parses on several threads: numpy reads each
# array header of a bundle with `ast.literal_eval` on an inference thread while TensorFlow's
# autograph parses the functions it traces on another, and two bots in one process (shards)
# load their bundles side by side.
AST_PARSING_IS_THREAD_SAFE = sys.implementation.name != "cpython" or sys.version_info >= (3, 11, 8)


def serialize_ast_parsing() -> None:
    """Let one thread at a time parse, where `AST_PARSING_IS_THREAD_SAFE` is false.

    Every such parse goes through the `ast.parse` attribute (`literal_eval`, gast, inspect, traceback
    and pytest look it up at each call), so one lock there closes the race. It is re-entrant because
    a finalizer run in the middle of a parse may parse too.
    """
    if AST_PARSING_IS_THREAD_SAFE or getattr(ast.parse, "serialized", False):
        return
    parse, lock = ast.parse, threading.RLock()

    @functools.wraps(parse)
    def serialized_parse(*args: Any, **kwargs: Any) -> Any:
        with lock:
            return parse(*args, **kwargs)

    serialized_parse.serialized = True  # type: ignore[attr-defined]
    ast.parse = serialized_parse
