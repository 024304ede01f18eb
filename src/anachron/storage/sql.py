"""The base of every part of ``Session``: one transaction's connection, its DB-API cursor for the compiled hot
statements (``statements.py``), the one savepoint helper, and the guards every part shares — the statuses a
move may start from come from the lifecycle's transition table (``anachron.lifecycle``)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, or_
from sqlalchemy.exc import DBAPIError

from ..lifecycle import RUN_TRANSITIONS, sources
from ..models import CANCELED, FAILED, QUEUED, RUN_STATUSES, RUNNING, SUCCESS, UPSTREAM_FAILED
from .codec import dumps
from .errors import SavepointNeeded, StorageRejected, describe_error, is_transient
from .schema import (
    runs,
)
from .statements import Statements

T = TypeVar("T")
CHUNK = 500
_ACTIVE = or_(runs.c.status == QUEUED, runs.c.status == RUNNING)
#: the guards of run moves, from the lifecycle's table: who may finish, who may be queued again
_FINISHABLE = sources(RUN_TRANSITIONS, SUCCESS, FAILED, CANCELED)
_REQUEUABLE = sources(RUN_TRANSITIONS, QUEUED)
#: runs that never ran to an end of their own (canceled, or blocked by an upstream failure): a key's status is
#: its latest run's among the others (``missing`` when none)
_COUNTS_FOR_KEY = runs.c.status.not_in((CANCELED, UPSTREAM_FAILED))
_NOT_SUCCESS = [status for status in RUN_STATUSES if status != SUCCESS]


class _Keep:
    """The default of the optional fields of an update: leave the column as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


class SqlRows:
    """One transaction: how every part of ``Session`` executes. Core statements run on ``conn``; the hot ones,
    compiled once per database, on ``cursor``; ``savepoint`` is the one way to undo part of a transaction."""

    def __init__(self, conn: Connection, statements: Statements):
        self.conn = conn
        self._st = statements
        self._cursor: Any = None

    @property
    def cursor(self) -> Any:
        """The DB-API cursor of this transaction (for the compiled hot statements)."""
        if self._cursor is None:
            self._cursor = self.conn.connection.cursor()
        return self._cursor

    @contextlib.contextmanager
    def savepoint(self, lazy: bool = False) -> Iterator[None]:
        """Writes that are undone together if the database refuses one of them for good
        (``StorageRejected``); the rest of the transaction goes on. Transient errors pass through.
        (A plain SAVEPOINT statement: SQLAlchemy's nested transaction costs ten times more.)

        ``lazy``: set no savepoint (two statements fewer, for writes that are almost never refused); a
        refusal then raises ``SavepointNeeded`` and the transaction must be run again, not lazily."""
        cursor, st = self.cursor, self._st
        if lazy:
            try:
                yield
            except DBAPIError as exc:
                if is_transient(exc):
                    raise
                raise SavepointNeeded(describe_error(exc)) from exc
            return
        st.savepoint.execute(cursor)
        try:
            yield
        except DBAPIError as exc:
            if is_transient(exc):
                raise
            st.rollback_to_savepoint.execute(cursor)
            st.release_savepoint.execute(cursor)
            raise StorageRejected(describe_error(exc)) from exc
        except BaseException:
            st.rollback_to_savepoint.execute(cursor)
            st.release_savepoint.execute(cursor)
            raise
        st.release_savepoint.execute(cursor)


def _has_tag(column: Any, key: str, value: str) -> Any:
    """Whether the JSON object in ``column`` maps ``key`` to ``value`` — the same SQL on both databases.

    Tags are stored as compact JSON written by ``codec.dumps``, where an unescaped quote is always a string
    delimiter: so ``"key":"value"`` right after ``{`` or ``,`` and right before ``,`` or ``}`` is that
    member exactly (a JSON function would not be: SQLite has no JSON type to cast the text to)."""
    member = dumps(key) + ":" + dumps(value)
    return or_(*(column.contains(before + member + after, autoescape=True)
                 for before in ("{", ",") for after in (",", "}")))



def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]

