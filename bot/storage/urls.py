"""Database URLs: which store a URL names, and how to show one without its password."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from core import ContinuoError

SCHEMES = "sqlite:///PATH or postgresql://USER:PASSWORD@HOST:PORT/DATABASE"


def redact(url: str) -> str:
    """The URL with its password replaced by ***, fit for logs and error messages."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


def dialect(url: str) -> str:
    scheme = url.split(":", 1)[0].lower() if ":" in url else ""
    if scheme == "sqlite" and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return "sqlite"
    if scheme in ("postgresql", "postgres"):
        return "postgresql"
    raise ContinuoError(f"unknown database URL {redact(url)!r}: use {SCHEMES}")


def sqlite_path(url: str) -> Path:
    """sqlite:///relative/file or sqlite:////absolute/file, as SQLAlchemy writes them."""
    return Path(url[len("sqlite:///") :]).expanduser()


def sqlite_url(path: str | Path) -> str:
    return f"sqlite:///{path}"
