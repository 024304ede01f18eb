"""Storage: one contract (``Storage``: transactions yielding a ``Session``), one SQL implementation.

SQLite (WAL) and PostgreSQL share every statement; ``sqlite://`` is an in-memory store for tests.
SQLAlchemy is imported when a ``Storage`` is opened, not when anachron is imported.
"""

from __future__ import annotations

import contextlib
import os
from typing import TYPE_CHECKING, Iterator

if TYPE_CHECKING:
    from .session import Session

DEFAULT_URL = "sqlite:///.anachron/anachron.db"

__all__ = ["Storage", "DEFAULT_URL", "default_url", "is_memory_url", "normalize_url"]


def default_url() -> str:
    return os.environ.get("ANACHRON_DATABASE_URL") or DEFAULT_URL


def normalize_url(url: str) -> str:
    """Accept ``postgresql://`` and ``postgres://`` as the psycopg 3 driver."""
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


class Storage:
    def __init__(self, url: str | None = None):
        from .engine import Database
        from .session import Session

        self.url = normalize_url(url or default_url())
        self.db = Database(self.url)
        self._session = Session

    @property
    def is_memory(self) -> bool:
        return self.db.is_memory

    @contextlib.contextmanager
    def write(self) -> Iterator["Session"]:
        with self.db.write() as conn:
            yield self._session(conn)

    @contextlib.contextmanager
    def read(self) -> Iterator["Session"]:
        with self.db.read() as conn:
            yield self._session(conn)

    def close(self) -> None:
        self.db.dispose()
