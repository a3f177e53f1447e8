"""Loads TensorFlow and Keras once, keeping TensorFlow's C++ start-up logging off the user's terminal."""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import tempfile
from functools import lru_cache

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


_M_ARENA_MAX = -8  # glibc mallopt() parameter


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's per-thread malloc arenas before TensorFlow starts its thread pools: with the default
    (8 per core) a long training run's resident memory creeps up by fragmentation; with 2 it stays flat."""
    libc_name = ctypes.util.find_library("c")
    if libc_name and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(libc_name).mallopt(_M_ARENA_MAX, arenas)
        except (OSError, AttributeError):
            pass  # not glibc


@lru_cache(maxsize=None)
def load_keras():
    """Import TensorFlow and Keras with file descriptor 2 redirected, so absl's lines cannot reach
    the screen (they ignore TF_CPP_MIN_LOG_LEVEL and would garble a full-screen terminal app)."""
    _limit_malloc_arenas()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import tensorflow as tf
            import keras

            tf.constant(0)  # initialises the devices, which logs too
            tf.get_logger().setLevel("ERROR")  # one compiled function per batch size is by design, not "retracing"
        except BaseException:
            os.dup2(saved, 2)
            sink.seek(0)
            sys.stderr.write(sink.read().decode("utf-8", "replace"))  # show what went wrong
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)
    return keras
