"""What the tests use to reach a bot process's health and metrics server: a free port, and a GET of one path."""

from __future__ import annotations

import socket

import aiohttp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def scrape(port: int, path: str) -> tuple[int, str]:
    """(status, body) of GET `path`; (0, "") while nothing listens there."""
    try:
        async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{port}{path}") as response:
            return response.status, await response.text()
    except aiohttp.ClientConnectionError:
        return 0, ""
