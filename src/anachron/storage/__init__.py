"""Storage: one contract (``Storage``: transactions yielding a ``contract.StoreSession``), one SQL implementation
(``session.Session``).

SQLite (WAL) and PostgreSQL share every statement; ``sqlite://`` is an in-memory store for tests.
SQLAlchemy is imported when a ``Storage`` is opened, not when anachron is imported.

``Storage.run(fn)`` is how the engine talks to storage: ``fn(session)`` runs in one transaction, retried
with backoff when the database reports a transient error (a lock timeout, a dropped connection, a
serialization failure). ``read()`` / ``write()`` give a single transaction without retries.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, TypeVar

from ..clock import SYSTEM_CLOCK
from .errors import (
    SavepointNeeded,
    StorageError,
    StorageRejected,
    StorageUnavailable,
    describe_error,
    is_driver_error,
    is_transient,
)
from .urls import DEFAULT_URL, default_url, is_memory_url, normalize_url

if TYPE_CHECKING:
    from .contract import StoreSession
    from .engine import Database

#: How long ``Storage.run`` keeps retrying a transaction that fails with transient errors.
DEFAULT_PATIENCE = 10.0
_BACKOFF = (0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.0)

T = TypeVar("T")

__all__ = ["DEFAULT_URL", "SavepointNeeded", "Storage", "StorageError", "StorageRejected", "StorageUnavailable",
           "default_url", "describe_error", "is_driver_error", "is_memory_url", "is_transient", "normalize_url"]


class Storage:
    def __init__(self, url: str | None = None, patience: float = DEFAULT_PATIENCE, migrate: bool = True):
        """Open (and migrate) the database; a database that cannot be reached for a moment (restarting, not
        accepting connections) is waited for, up to ``patience`` seconds. ``migrate=False``: the schema is known
        to be current (a worker process, whose coordinator opened it): no look at the migration scripts."""
        from .engine import Database
        from .engine import migrate as bring_up_to_date

        self.url = normalize_url(url or default_url())
        self.db: Database = Database(self.url)
        if not migrate:
            return
        try:
            self._retrying(lambda: bring_up_to_date(self.db.engine), patience)
        except BaseException:
            self.db.dispose()
            raise

    @property
    def is_memory(self) -> bool:
        return self.db.is_memory

    @contextlib.contextmanager
    def write(self, pinned: bool = False) -> Iterator[StoreSession]:
        """One write transaction (no retry): committed when the block ends, rolled back on error.
        ``pinned``: on a connection this thread keeps (for a loop that writes many times a second)."""
        from .session import Session

        with self.db.transaction(write=True, pinned=pinned) as conn:
            yield Session(conn, self.db.statements)

    @contextlib.contextmanager
    def read(self, pinned: bool = False) -> Iterator[StoreSession]:
        from .session import Session

        with self.db.transaction(write=False, pinned=pinned) as conn:
            yield Session(conn, self.db.statements)

    def run(self, fn: Callable[[StoreSession], T], *, write: bool = True, patience: float = DEFAULT_PATIENCE,
            on_retry: Callable[[BaseException, int], None] | None = None, pinned: bool = False) -> T:
        """``fn(session)`` in one transaction, retried with backoff on transient errors for up to
        ``patience`` seconds; then ``StorageUnavailable``. ``fn`` may run several times: it must not
        change anything outside the transaction before it returns."""
        def once() -> T:
            with (self.write(pinned) if write else self.read(pinned)) as session:
                return fn(session)

        return self._retrying(once, patience, on_retry)

    @staticmethod
    def _retrying(fn: Callable[[], T], patience: float,
                  on_retry: Callable[[BaseException, int], None] | None = None) -> T:
        """``fn()``, retried on transient errors. Every driver error leaves as a ``StorageError``:
        ``StorageUnavailable`` once transient ones outlast ``patience``, ``StorageRejected`` at once for a
        deterministic one (a constraint, a value the database cannot store) — never a driver's exception."""
        deadline = SYSTEM_CLOCK.monotonic() + patience
        attempt = 0
        while True:
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - classified below
                if not is_transient(exc):
                    if is_driver_error(exc):
                        raise StorageRejected(describe_error(exc)) from exc
                    raise
                attempt += 1
                delay = _BACKOFF[min(attempt - 1, len(_BACKOFF) - 1)]
                if SYSTEM_CLOCK.monotonic() + delay > deadline:
                    raise StorageUnavailable(f"storage unavailable: {describe_error(exc)}") from exc
                if on_retry is not None:
                    on_retry(exc, attempt)
                time.sleep(delay)

    def close(self) -> None:
        self.db.dispose()
