"""A throw-away PostgreSQL server for the tests: initdb into a temporary folder, serve on a unix socket there only.

Used by the `postgres_url` fixture and the cluster benchmark; by hand: `python tests/postgres_server.py start`, then
`stop URL`.
Debian's initdb refuses to run as root, so as root the server runs as the `postgres` user.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

URL_ENV = "CONTINUO_TEST_POSTGRES_URL"  # where set, the tests use that server instead of starting one


class Unavailable(Exception):
    """No PostgreSQL server binaries, or no way to run them here."""


def bin_dir() -> Path:
    found = shutil.which("pg_ctl")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"), key=lambda p: int(p.split("/")[4]))
    if not versions:
        raise Unavailable("PostgreSQL's server binaries (initdb, pg_ctl) are not installed: apt-get install postgresql")
    return Path(versions[-1]).parent


def _as_server_user() -> list[str]:
    if os.geteuid() != 0:
        return []
    try:
        pwd.getpwnam("postgres")
    except KeyError:
        raise Unavailable("running as root and there is no `postgres` user to run the server as") from None
    return ["runuser", "-u", "postgres", "--"]


def start() -> str:
    """Start a server whose data and socket live in a new temporary folder; returns its URL (database `postgres`).

    The folder is made in the system's temporary folder, which the `postgres` user can reach (pytest's are
    private to root).
    """
    tools, run_as = bin_dir(), _as_server_user()
    folder = Path(tempfile.mkdtemp(prefix="continuo-pg-"))
    if run_as:
        shutil.chown(folder, "postgres", "postgres")
    data = folder / "data"

    def run(*cmd: str) -> None:
        done = subprocess.run([*run_as, *cmd], capture_output=True, text=True, timeout=120)
        if done.returncode != 0:
            raise Unavailable(f"{Path(cmd[0]).name} failed: {(done.stderr or done.stdout).strip()[-500:]}")

    try:
        run(str(tools / "initdb"), "-A", "trust", "-U", "postgres", "-D", str(data), "-E", "UTF8", "--no-sync")
        url = f"postgresql://postgres@/postgres?host={folder}"
        resume(url)
    except BaseException:
        stop(folder)
        raise
    return url


def resume(url: str) -> None:
    """Start (again) the server of a folder that start() made, as it was."""
    folder = folder_of(url)
    # tests only: no durability, a socket in the folder and no TCP at all
    done = subprocess.run(
        [
            *_as_server_user(),
            str(bin_dir() / "pg_ctl"),
            "-D",
            str(folder / "data"),
            "-l",
            str(folder / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            f"-k {folder} -c listen_addresses='' -c fsync=off -c synchronous_commit=off -c full_page_writes=off",
            "start",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    if done.returncode != 0:
        raise Unavailable(f"pg_ctl start failed: {(done.stderr or done.stdout).strip()[-500:]}")


def pause(url: str) -> None:
    """Stop the server of a URL that start() returned, cutting every connection, keeping its data.

    Fast mode, not immediate: with synchronous_commit off, an immediate stop would lose the last commits.
    """
    subprocess.run(
        [*_as_server_user(), str(bin_dir() / "pg_ctl"), "-D", str(folder_of(url) / "data"), "-m", "fast", "-w", "stop"],
        capture_output=True,
        timeout=60,
    )


def folder_of(url: str) -> Path:
    return Path(url.rsplit("host=", 1)[1])


def stop(where: str | Path) -> None:
    """Stop the server of a URL that start() returned (or of its folder) and remove its folder."""
    folder = folder_of(where) if str(where).startswith("postgresql://") else Path(where)
    if (folder / "data" / "postmaster.pid").exists():
        subprocess.run(
            [
                *_as_server_user(),
                str(bin_dir() / "pg_ctl"),
                "-D",
                str(folder / "data"),
                "-m",
                "immediate",
                "-w",
                "stop",
            ],
            capture_output=True,
            timeout=60,
        )
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    try:
        print(start() if sys.argv[1] == "start" else stop(sys.argv[2]) or "")
    except Unavailable as e:
        print(f"postgres_server: {e}", file=sys.stderr)
        sys.exit(1)
