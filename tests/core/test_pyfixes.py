"""core's work-arounds for bugs in the Python it runs on: threads parsing at once never fail."""

from __future__ import annotations

import ast
import threading
import time

import core  # noqa: F401  (importing core applies the work-arounds)
from core.pyfixes import AST_PARSING_IS_THREAD_SAFE

SOURCE = "x = [" + ", ".join(f"({i}, [{i}, {{'a': {i}}}])" for i in range(2000)) + "]\n"


class YieldsWhenCollected:
    def __del__(self):
        time.sleep(0)  # the garbage collector runs this in the middle of whatever allocated: let another thread in


def test_threads_that_parse_while_finalizers_run_never_fail():
    # On CPython 3.11.0-3.11.7 this fails within about half a second without core's lock.
    stop, failures = threading.Event(), []

    def parse_until_stopped():
        while not stop.is_set():
            try:
                ast.parse(SOURCE)
            except SystemError as e:
                failures.append(e)
                stop.set()

    def make_garbage_until_stopped():
        while not stop.is_set():
            cycle = YieldsWhenCollected()
            cycle.me = cycle
            time.sleep(0)

    threads = [threading.Thread(target=parse_until_stopped) for _ in range(2)]
    threads.append(threading.Thread(target=make_garbage_until_stopped))
    for thread in threads:
        thread.start()
    stop.wait(2)
    stop.set()
    for thread in threads:
        thread.join()
    assert failures == []
    assert AST_PARSING_IS_THREAD_SAFE or ast.parse.serialized
