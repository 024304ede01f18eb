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
        raise ValueError(f"storage: unsupported database URL {mask_url(url)!r}; use sqlite:///path, "
                         "sqlite:// (memory) or "
                         "postgresql+psycopg://user@host/db")
    return url


def mask_url(url: str) -> str:
    """A URL fit to print: the password hidden (``postgresql://me:***@db/prod``)."""
    try:
        from sqlalchemy.engine import make_url

        return str(make_url(url).render_as_string(hide_password=True))
    except Exception:  # noqa: BLE001 - an unparsable URL: hide everything between "://" and "@"
        scheme, sep, rest = url.partition("://")
        return f"{scheme}{sep}***@{rest.rpartition('@')[2]}" if "@" in rest else url


def is_memory_url(url: str) -> bool:
    """Whether a (normalised) URL names an in-memory SQLite database, which one process alone can use."""
    if not url.startswith("sqlite"):
        return False
    database = url.split("://", 1)[1]
    return database in ("", "/", "/:memory:")
