"""/metrics, /healthz and /readyz on one port: a small aiohttp server on the process's own event loop.

/healthz answers 200 while the loop runs. /readyz runs the process's readiness checks (each off the loop
or awaited, each with a time limit) and answers 200 "ready", or 503 with one line per failing check.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from core import ContinuoError

from .metrics import READY, REGISTRY

log = logging.getLogger(__name__)

Check = Callable[[], Awaitable[None]]  # raises, its message saying why, while the part it checks is not ready
CHECK_TIMEOUT_S = 3.0  # a check that takes longer counts as failed: a probe must answer quickly


class NotReady(Exception):
    """A readiness check's reason, shown as it is."""


class HealthServer:
    """Serves the metrics registry and the readiness checks; `port` is the bound one (given 0: a free one)."""

    def __init__(self, host: str, port: int, checks: dict[str, Check]):
        self.host, self.port, self.checks = host, port, checks
        self._runner: web.AppRunner | None = None

    async def start(self) -> None:
        if self._runner is not None:
            return
        app = web.Application()
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/readyz", self._readyz)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        try:
            await site.start()
        except OSError as e:
            await self._runner.cleanup()
            self._runner = None
            raise ContinuoError(
                f"cannot serve metrics on {self.host}:{self.port} ({e.strerror}); pick another "
                "CONTINUO_BOT_METRICS_PORT, or leave it unset to serve none"
            ) from None
        server = getattr(site, "_server", None)
        sockets = getattr(server, "sockets", None) or []
        if sockets:
            self.port = sockets[0].getsockname()[1]
        log.info("metrics and health checks on http://%s:%d/", self.host, self.port)

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def reasons(self) -> list[str]:
        """Why the process is not ready, one line per failing check (empty: ready)."""

        async def run(name: str, check: Check) -> str | None:
            try:
                await asyncio.wait_for(check(), CHECK_TIMEOUT_S)
            except TimeoutError:
                return f"{name}: no answer within {CHECK_TIMEOUT_S:.0f} s"
            except Exception as e:  # noqa: BLE001 - any failure is a reason, shown to whoever probes
                return f"{name}: {e}" if str(e) else f"{name}: {type(e).__name__}"
            return None

        found = await asyncio.gather(*(run(name, check) for name, check in self.checks.items()))
        return [reason for reason in found if reason is not None]

    async def _metrics(self, _request: web.Request) -> web.Response:
        READY.set(0 if await self.reasons() else 1)  # current at every scrape, probed or not
        body = await asyncio.to_thread(generate_latest, REGISTRY)  # reads /proc: not on the loop
        return web.Response(body=body, headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.Response(text="ok\n")

    async def _readyz(self, _request: web.Request) -> web.Response:
        reasons = await self.reasons()
        READY.set(0 if reasons else 1)
        if reasons:
            return web.Response(status=503, text="not ready\n" + "".join(f"{r}\n" for r in reasons))
        return web.Response(text="ready\n")


def storage_check(storage) -> Check:
    """Model storage is readable: its versions can be listed (and a local folder, where it exists, read)."""

    def read() -> None:
        root = getattr(storage, "root", None)
        if isinstance(root, Path) and root.exists() and not os.access(root, os.R_OK | os.X_OK):
            raise NotReady(f"{root} cannot be read")
        storage.versions("0")  # a network filesystem is asked for real

    async def check() -> None:
        await asyncio.to_thread(read)

    return check


def store_check(store) -> Check:
    async def check() -> None:
        await store.ping()

    return check


def ray_check(runner) -> Check:
    """The coordinator reaches its Ray cluster (a local-processes runner needs none)."""

    def reach() -> None:
        import ray

        runner.connect()
        if not ray.is_initialized() or not ray.cluster_resources():
            raise NotReady("the Ray cluster has no resources")

    async def check() -> None:
        if hasattr(runner, "connect"):
            await asyncio.to_thread(reach)

    return check
