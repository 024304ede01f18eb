"""Storage errors: what the user sees, and which database errors are worth retrying."""

from __future__ import annotations


class StorageError(Exception):
    """A storage problem worth one clear line to the user (no SQL, no traceback)."""


class StorageUnavailable(StorageError):
    """The database kept failing with transient errors (locked, connection lost) for longer than allowed."""


class StorageRejected(StorageError):
    """The database refused a write for good (a constraint, a value it cannot store): retrying cannot help."""


class SavepointNeeded(StorageError):
    """A refusal inside ``Session.savepoint(lazy=True)``, which set no savepoint: the whole transaction is
    lost. Run it again with ``lazy=False`` to undo only the part at fault."""


def is_driver_error(exc: BaseException) -> bool:
    """Whether ``exc`` comes from the database or its driver (SQLAlchemy's ``DBAPIError``, or a driver's own
    error raised beneath it), as opposed to a bug or an error of the caller's."""
    import sys

    sa_exc = sys.modules.get("sqlalchemy.exc")
    if sa_exc is not None and isinstance(exc, sa_exc.DBAPIError):
        return True
    module = type(exc).__module__
    return module.startswith(("sqlite3", "psycopg"))


def is_transient(exc: BaseException) -> bool:
    """Whether a database error may go away by itself (retry) rather than repeat (report)."""
    from sqlalchemy import exc as sa_exc

    if not isinstance(exc, sa_exc.DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    name = getattr(orig, "sqlite_errorname", None)
    if name is not None:  # SQLite: only a busy or locked database clears up by itself
        return bool(name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")))
    state = getattr(orig, "sqlstate", None) or ""
    # PostgreSQL: connection exceptions, transaction rollbacks (serialization, deadlock), resources,
    # operator intervention (admin shutdown, cannot connect now)
    if state.startswith(("08", "40", "53", "57P")):
        return True
    if isinstance(exc, sa_exc.OperationalError) and str(orig).startswith("connection failed"):
        return True  # psycopg could not connect (refused, the database not accepting connections right now)
    return isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)) and not state


def describe_error(exc: BaseException) -> str:
    """A database error in one line, without the SQL statement SQLAlchemy appends."""
    orig = getattr(exc, "orig", None) or exc
    text = str(orig).strip().splitlines()
    return (text[0] if text else type(orig).__name__).strip()
