"""Storage: one contract (``Storage``: transactions yielding a ``Session``), one SQL implementation.

SQLite (WAL) and PostgreSQL share every statement; ``sqlite://`` is an in-memory store for tests.
"""

from __future__ import annotations

import contextlib
from typing import Iterator

from .engine import DEFAULT_URL, Database, default_url, normalize_url
from .session import Session

__all__ = ["Storage", "Session", "DEFAULT_URL", "default_url", "normalize_url"]


class Storage:
    def __init__(self, url: str | None = None):
        self.url = normalize_url(url or default_url())
        self.db = Database(self.url)

    @property
    def is_memory(self) -> bool:
        return self.db.is_memory

    @contextlib.contextmanager
    def write(self) -> Iterator[Session]:
        with self.db.write() as conn:
            yield Session(conn)

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        with self.db.read() as conn:
            yield Session(conn)

    def close(self) -> None:
        self.db.dispose()
