"""Database URLs: the default, the accepted forms, and which ones are in memory."""

from __future__ import annotations

import os

DEFAULT_URL = "sqlite:///.anachron/anachron.db"


def default_url() -> str:
    return os.environ.get("ANACHRON_DATABASE_URL") or DEFAULT_URL


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as the psycopg 3 driver; refuse other databases."""
    if not isinstance(url, str) or not url:
        raise ValueError("storage: expected a database URL such as sqlite:///path/to/db or postgresql+psycopg://...")
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    scheme = url.split("://", 1)[0] if "://" in url else ""
    if scheme not in ("sqlite", "sqlite+pysqlite", "postgresql+psycopg"):
        raise ValueError(f"storage: unsupported database URL {url!r}; use sqlite:///path, sqlite:// (memory) or "
                         "postgresql+psycopg://user@host/db")
    return url


def is_memory_url(url: str) -> bool:
    """Whether a (normalised) URL names an in-memory SQLite database, which one process alone can use."""
    if not url.startswith("sqlite"):
        return False
    database = url.split("://", 1)[1]
    return database in ("", "/", "/:memory:")
