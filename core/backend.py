"""Loads TensorFlow and Keras once, keeping TensorFlow's C++ start-up logging off the user's terminal."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import tempfile
import time
from functools import cache

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")


_M_ARENA_MAX = -8  # glibc mallopt() parameter
_MAX_REPLICAS = 8  # training replicas, one per CPU core, up to this many
_replicas = 1  # set by use_a_replica_per_core() before TensorFlow starts
_training_process = False  # set by it too: each op then runs on one thread


def use_a_replica_per_core(cores: int | None = None) -> None:
    """In a process about to train, before TensorFlow starts: run each op on one thread and let
    training split every batch into one replica per core, computed side by side.

    An LSTM runs step by step as small operations that two threads each share poorly; a replica
    per core keeps every core busy instead (bench/core_bench.py measures the examples per second).
    Has no effect once TensorFlow has started, so processes that only generate are left alone.
    `cores`: the cores this process may use (a Ray task's share of its machine); default: all it can run on.
    """
    global _replicas, _training_process
    if load_keras.cache_info().currsize == 0:
        if cores is None:
            cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
        _replicas, _training_process = max(1, min(cores, _MAX_REPLICAS)), True


@cache
def cpu_features() -> dict:
    """The CPU's model name and the vector features that decide training speed (Linux; unknown elsewhere)."""
    model, flags = "unknown", set()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == "model name":
                    model = value.strip()
                elif key.strip() == "flags":
                    flags = set(value.split())
                    break
    except OSError:
        pass
    return {
        "model": model,
        "avx2": "avx2" in flags,
        "avx512": "avx512f" in flags,
        "bfloat16": bool(flags & {"avx512_bf16", "amx_bf16"}),
    }


@cache
def bfloat16_is_faster(rows: int, units: int) -> bool:
    """Whether this CPU computes an LSTM step's product, (rows x units) by (units x 4 units), faster in
    bfloat16 than in float32: a few milliseconds of timing decide, not the CPU's flags alone, since CPUs with
    the same AVX512_BF16 flag differ on this (README, Benchmarks: Core)."""
    if not cpu_features()["bfloat16"]:
        return False
    load_keras()
    import tensorflow as tf

    product = tf.function(lambda a, b: tf.matmul(a, b))
    seconds = {}
    for dtype in (tf.float32, tf.bfloat16):
        a = tf.cast(tf.random.normal((rows, units)), dtype)
        b = tf.cast(tf.random.normal((units, 4 * units)), dtype)
        product(a, b)  # traced and warmed outside the timing
        runs = []
        for _ in range(5):
            start = time.perf_counter()
            for _ in range(10):
                product(a, b)
            runs.append(time.perf_counter() - start)
        seconds[dtype] = min(runs)
    return seconds[tf.bfloat16] < seconds[tf.float32]


def training_replicas() -> int:
    """Into how many replicas training splits each batch (1 unless use_a_replica_per_core() came first)."""
    return _replicas


def _limit_malloc_arenas(arenas: int = 2) -> None:
    """Cap glibc's per-thread malloc arenas before TensorFlow starts its thread pools: with the default
    (8 per core) a long training run's resident memory creeps up by fragmentation; with 2 it stays flat."""
    libc_name = ctypes.util.find_library("c")
    if libc_name and sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(libc_name).mallopt(_M_ARENA_MAX, arenas)
        except (OSError, AttributeError):
            pass  # not glibc


@cache
def load_keras():
    """Import TensorFlow and Keras with file descriptor 2 redirected, so absl's lines cannot reach
    the screen (they ignore TF_CPP_MIN_LOG_LEVEL and would garble a full-screen terminal app)."""
    _limit_malloc_arenas()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as sink:
        os.dup2(sink.fileno(), 2)
        try:
            import keras
            import tensorflow as tf

            if _training_process:  # TensorFlow would otherwise size its pools to the whole machine
                tf.config.threading.set_intra_op_parallelism_threads(1)
                tf.config.threading.set_inter_op_parallelism_threads(_replicas)
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
