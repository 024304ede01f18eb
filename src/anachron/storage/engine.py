"""Connecting to storage: one SQLAlchemy engine, SQLite (WAL) or PostgreSQL, migrated on open."""

from __future__ import annotations

import contextlib
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, ProgrammingError
from sqlalchemy.pool import StaticPool

from .statements import Statements
from .urls import is_memory_url, normalize_url

IDLE_IN_TRANSACTION_MS = 10_000
_MIGRATIONS = Path(__file__).parent / "migrations"
_HEAD: list[str] = []  # Alembic's head revision, read once per process


def open_engine(url: str) -> Engine:
    url = normalize_url(url)
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ValueError(f"storage: {url!r} is not a database URL") from None
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        memory = is_memory_url(url)
        if memory:
            engine = create_engine(url, poolclass=StaticPool, connect_args={"check_same_thread": False})
        else:
            Path(parsed.database or "").expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})
        _configure_sqlite(engine, memory)
        return engine
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise ValueError("storage: use postgresql+psycopg:// (psycopg 3) for PostgreSQL")
        # positional parameters ("format"), like SQLite's: hot statements compile once to one SQL text
        # A process frozen (SIGSTOP, a paused VM) inside a transaction would hold its row locks until it
        # woke up, stalling every other process; transactions here are milliseconds long, so the server
        # ends one left idle for IDLE_IN_TRANSACTION_MS and the frozen process retries when it wakes.
        options = f"-c idle_in_transaction_session_timeout={IDLE_IN_TRANSACTION_MS}"
        given = parsed.query.get("options")
        if given:  # the URL's own ?options=... are kept
            options = f"{given if isinstance(given, str) else ' '.join(given)} {options}"
        return create_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True, paramstyle="format",
                             connect_args={"options": options})
    raise ValueError(f"storage: unsupported database {backend!r}; use sqlite:// or postgresql+psycopg://")


def _configure_sqlite(engine: Engine, memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see on_begin)
        cursor = dbapi_conn.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        # A write transaction takes the write lock up front, so two writers never deadlock on upgrade.
        write = conn.get_execution_options().get("anachron_write")
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")  # type: ignore[union-attr]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        try:
            value = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, ProgrammingError):
            return None
    return None if value is None else str(value)


def _config() -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(_MIGRATIONS))
    return config


def head_revision() -> str:
    """The newest revision of the migration scripts (read once per process): off the scripts' ``revision`` and
    ``down_revision`` lines when they form one line of history, as anachron's do, so that opening a database
    whose schema is current does not import Alembic (a tenth of a second of every command's start); anything
    else (a branch, a merge, a line not read) is Alembic's to say."""
    if not _HEAD:
        _HEAD.append(linear_head(_MIGRATIONS / "versions") or _alembic_head())
    return _HEAD[0]


_REVISION_LINE = re.compile(r"""^(revision|down_revision)\s*(?::[^=]*)?=\s*(None|"[^"]*"|'[^']*')\s*$""", re.M)


def linear_head(versions: Path) -> str | None:
    """The last revision of the scripts in ``versions`` when each names its revision and the one before it
    (``None`` for the first) as plain strings, one line of history; ``None`` when they do not."""
    before: dict[str, str | None] = {}
    for script in versions.glob("*.py"):
        found: dict[str, str] = {m[1]: m[2] for m in _REVISION_LINE.finditer(script.read_text(encoding="utf-8"))}
        if not found and script.name == "__init__.py":
            continue
        if set(found) != {"revision", "down_revision"} or found["revision"] == "None":
            return None
        revision, down = found["revision"][1:-1], found["down_revision"]
        if revision in before:
            return None
        before[revision] = None if down == "None" else down[1:-1]
    heads = set(before) - set(before.values())
    if len(heads) != 1 or list(before.values()).count(None) != 1:
        return None
    head = next(iter(heads))
    at: str | None = head
    seen = 0
    while at is not None and at in before and seen <= len(before):  # one line from the head to the first
        at, seen = before[at], seen + 1
    return head if at is None and seen == len(before) else None


def _alembic_head() -> str:
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(_config()).get_current_head()
    if head is None:
        raise RuntimeError(f"no migration scripts in {_MIGRATIONS}")
    return head


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; cheap when it already is."""
    if current_revision(engine) == head_revision():
        return
    from alembic import command

    with engine.connect().execution_options(anachron_write=True) as conn:
        with conn.begin():
            if conn.dialect.name == "postgresql":  # two processes opening a fresh database at once
                conn.execute(text("SELECT pg_advisory_xact_lock(7262840011)"))
            config = _config()
            config.attributes["connection"] = conn
            command.upgrade(config, "head")


class Database:
    """An engine plus the transaction discipline anachron uses on it.

    SQLite has one writer at a time per database: this process's writers queue on a lock rather than
    spin on SQLite's busy handler (an in-memory database also serialises its readers: they share one
    connection). PostgreSQL takes no process-wide lock: row locks order concurrent writers.
    """

    def __init__(self, url: str):
        self.url = normalize_url(url)
        self.engine = open_engine(self.url)
        self.dialect = self.engine.dialect.name
        self.is_memory = is_memory_url(self.url)
        sqlite = self.dialect == "sqlite"
        self._write_lock: threading.RLock | None = threading.RLock() if sqlite else None
        self._read_lock = self._write_lock if self.is_memory else None
        self.statements = Statements(self.engine.dialect)
        self._pins = threading.local()  # per thread: its pinned connections (see ``transaction``)
        self._pinned: list[Connection] = []
        self._lock = threading.Lock()
        self._dbapi_error: type[Exception] = self.engine.dialect.dbapi.Error  # type: ignore[union-attr]

    @contextlib.contextmanager
    def transaction(self, write: bool, pinned: bool = False) -> Iterator[Connection]:
        """One transaction. ``pinned``: on a connection this thread keeps between transactions (a loop
        that runs hundreds a second saves the pool's checkout and return each time); it is dropped after
        an error, and a fresh one is opened next time."""
        lock = (self._write_lock if write else self._read_lock) or contextlib.nullcontext()
        with lock:
            if not pinned:
                with self._connect(write) as conn:
                    with self._begin(conn):
                        yield conn
                return
            pin: Connection | None = getattr(self._pins, "write" if write else "read", None)
            if pin is None:
                pin = self._connect(write)
                setattr(self._pins, "write" if write else "read", pin)
                with self._lock:
                    self._pinned.append(pin)
            try:
                with self._begin(pin):
                    yield pin
            except BaseException:
                setattr(self._pins, "write" if write else "read", None)
                with self._lock:
                    if pin in self._pinned:
                        self._pinned.remove(pin)
                pin.close()
                raise

    def _connect(self, write: bool) -> Connection:
        conn = self.engine.connect()
        return conn.execution_options(anachron_write=True) if write else conn

    def _begin(self, conn: Connection) -> Any:
        try:
            return conn.begin()
        except self._dbapi_error as exc:  # raised by our BEGIN in the "begin" event: not wrapped
            lost = self.engine.dialect.is_disconnect(exc, None, None)  # type: ignore[arg-type]
            raise DBAPIError.instance("BEGIN", None, exc, self._dbapi_error, dialect=self.engine.dialect,
                                      connection_invalidated=lost) from exc

    def dispose(self) -> None:
        with self._lock:
            pinned, self._pinned = self._pinned, []
        for conn in pinned:
            try:
                conn.close()
            except Exception:  # noqa: BLE001 - closing at shutdown: the connection may be gone already
                pass
        self.engine.dispose()
