"""Every Prometheus metric of the bot's processes and the coordinator: one registry per process, defined here only.

Names follow Prometheus' conventions (base units, `_seconds`, counters exposed as `_total`). Labels are
small closed sets (command names, outcomes, store operations, shard numbers): never a server id or a user
id, whose number grows with the bot's reach. The README's "Operating it" lists them with example alerts.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterator

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

REGISTRY = CollectorRegistry()  # this process's, not prometheus_client's global one: tests read it directly
ProcessCollector(registry=REGISTRY)  # process_resident_memory_bytes, process_cpu_seconds_total, open fds...
PlatformCollector(registry=REGISTRY)  # python_info

LATENCY_BUCKETS = (0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 30.0, 60.0)
TRAINING_BUCKETS = (5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0)
STORE_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0, 30.0)

COMMANDS = Counter(
    "continuo_commands",
    "Commands handled: slash commands, the message menu and mentions, by name and outcome "
    "(ok, user_error, error, restarting: refused or cut short by a stop)",
    ["command", "outcome"],
    registry=REGISTRY,
)
ANSWER_LATENCY = Histogram(
    "continuo_answer_latency_seconds",
    "From a command's arrival to the end of its handling (its answer sent), by command",
    ["command"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
DECODE_BATCH_ROWS = Histogram(
    "continuo_decode_batch_rows",
    "Continuations decoded together in one batch (one forward pass per step for all of them)",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512),
    registry=REGISTRY,
)
MODEL_CACHE_BYTES = Gauge(
    "continuo_model_cache_bytes", "Estimated memory held by the loaded models in the cache", registry=REGISTRY
)
MODEL_CACHE_MODELS = Gauge("continuo_model_cache_models", "Models loaded in the cache", registry=REGISTRY)
MODEL_CACHE_HITS = Counter(
    "continuo_model_cache_hits", "Model requests answered by a model already loaded", registry=REGISTRY
)
MODEL_CACHE_MISSES = Counter(
    "continuo_model_cache_misses", "Model requests that had to load a bundle (or wait for its load)", registry=REGISTRY
)
MODEL_CACHE_EVICTIONS = Counter(
    "continuo_model_cache_evictions",
    "Models dropped from the cache to stay within its size (count and megabytes)",
    registry=REGISTRY,
)
INSTANT_MODEL_BUILDS = Counter(
    "continuo_instant_model_builds",
    "Servers' instant n-gram models counted from their corpus, by outcome (built, empty, failed)",
    ["outcome"],
    registry=REGISTRY,
)
INSTANT_MODEL_BUILD_SECONDS = Histogram(
    "continuo_instant_model_build_seconds",
    "Time to count a server's instant model",
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0),
    registry=REGISTRY,
)
TRAINING_JOBS_QUEUED = Gauge(
    "continuo_training_jobs_queued", "Training jobs waiting for their turn (the queue in the store)", registry=REGISTRY
)
TRAINING_JOBS_RUNNING = Gauge("continuo_training_jobs_running", "Training jobs running now", registry=REGISTRY)
TRAINING_QUEUE_OLDEST_AGE = Gauge(
    "continuo_training_queue_oldest_age_seconds",
    "How long the oldest waiting training job has waited (0: none waits)",
    registry=REGISTRY,
)
TRAINING_JOBS_FINISHED = Counter(
    "continuo_training_jobs_finished",
    "Training jobs ended, by outcome (succeeded, failed, interrupted, handed_back: queued again by a stop)",
    ["outcome"],
    registry=REGISTRY,
)
TRAINING_JOB_SECONDS = Histogram(
    "continuo_training_job_duration_seconds",
    "From a job's start to its end, by outcome",
    ["outcome"],
    buckets=TRAINING_BUCKETS,
    registry=REGISTRY,
)
STORE_WRITE_SECONDS = Histogram(
    "continuo_store_write_seconds",
    "Time of the store's writes, waits for another process's lock included, by operation",
    ["operation"],
    buckets=STORE_BUCKETS,
    registry=REGISTRY,
)
STORE_WRITE_RETRIES = Counter(
    "continuo_store_write_retries",
    "Store calls tried again because the database was locked or the connection was lost, by operation",
    ["operation"],
    registry=REGISTRY,
)
GATEWAY_LATENCY = Gauge(
    "continuo_gateway_latency_seconds",
    "Time between a gateway heartbeat and its acknowledgement, by shard",
    ["shard"],
    registry=REGISTRY,
)
GATEWAY_SHARD_CONNECTED = Gauge(
    "continuo_gateway_shard_connected",
    "1 while the shard's gateway connection is up, else 0",
    ["shard"],
    registry=REGISTRY,
)
EVENT_LOOP_LAG = Histogram(
    "continuo_event_loop_lag_seconds",
    "How late the event loop ran a timer: time it spent on work that should have been off the loop",
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
    registry=REGISTRY,
)
READY = Gauge("continuo_ready", "1 while /readyz answers 200 (each probe updates it)", registry=REGISTRY)

STORE_WRITES = frozenset(
    {
        "update_guild_settings",
        "set_base_corpus",
        "learn_channel",
        "unlearn_channel",
        "record",
        "edit_message",
        "remove_messages",
        "forget_author",
        "forget_channel",
        "clear_corpus",
        "add_job",
        "update_job",
        "interrupt_unfinished_jobs",
        "set_job_progress",
        "add_model_version",
        "switch_model",
        "remove_model_versions",
        "import_guild",
    }
)  # the Store methods that write: their time is store write latency


@contextlib.contextmanager
def timed(histogram: Histogram, *labels: str) -> Iterator[None]:
    """Observe the block's duration (monotonic), whether it ends normally or not."""
    start = time.monotonic()
    try:
        yield
    finally:
        (histogram.labels(*labels) if labels else histogram).observe(time.monotonic() - start)


def sample(name: str, **labels: str) -> float:
    """A sample's current value (0 when it has none yet): for tests and `status` lines."""
    value = REGISTRY.get_sample_value(name, labels)
    return value if value is not None else 0.0


async def watch_event_loop(interval_s: float = 0.5) -> None:
    """Measure how late the loop wakes up from a sleep, forever (run as a task)."""
    loop = asyncio.get_running_loop()
    while True:
        start = loop.time()
        await asyncio.sleep(interval_s)
        EVENT_LOOP_LAG.observe(max(0.0, loop.time() - start - interval_s))


def measure_writes(cls):
    """Class decorator of a Store: its write methods observe continuo_store_write_seconds by operation."""
    import functools

    for name in STORE_WRITES:
        method = getattr(cls, name, None)
        if method is None:
            continue

        def wrap(method, name=name):
            @functools.wraps(method)
            async def measured(self, *args, **kwargs):
                with timed(STORE_WRITE_SECONDS, name):
                    return await method(self, *args, **kwargs)

            return measured

        setattr(cls, name, wrap(method))
    return cls
