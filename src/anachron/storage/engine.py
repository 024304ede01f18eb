"""Connecting to storage: one SQLAlchemy engine, SQLite (WAL) or PostgreSQL, migrated on open."""

from __future__ import annotations

import contextlib
import threading
from pathlib import Path
from typing import Iterator

from sqlalchemy import create_engine, event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError, ProgrammingError
from sqlalchemy.pool import StaticPool

from . import is_memory_url, normalize_url

HEAD_REVISION = "0001"
_MIGRATIONS = Path(__file__).parent / "migrations"


def open_engine(url: str) -> tuple[Engine, bool]:
    """Create the engine; returns it and whether all transactions must be serialised in-process."""
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
            Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 60})
        _configure_sqlite(engine, memory)
        return engine, memory
    if backend == "postgresql":
        if parsed.get_driver_name() != "psycopg":
            raise ValueError("storage: use postgresql+psycopg:// (psycopg 3) for PostgreSQL")
        return create_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True), False
    raise ValueError(f"storage: unsupported database {backend!r}; use sqlite:// or postgresql+psycopg://")


def _configure_sqlite(engine: Engine, memory: bool) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_conn, _record):
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see on_begin)
        cursor = dbapi_conn.cursor()
        if not memory:
            cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        # A write transaction takes the write lock up front, so two writers never deadlock on upgrade.
        write = conn.get_execution_options().get("anachron_write")
        conn.connection.dbapi_connection.execute("BEGIN IMMEDIATE" if write else "BEGIN")


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest revision; cheap when it already is."""
    with engine.connect() as conn:
        try:
            current = conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        except (OperationalError, ProgrammingError):
            current = None
        if current == HEAD_REVISION:
            return
    from alembic import command
    from alembic.config import Config

    with engine.connect().execution_options(anachron_write=True) as conn:
        with conn.begin():
            if conn.dialect.name == "postgresql":  # two processes opening a fresh database at once
                conn.execute(text("SELECT pg_advisory_xact_lock(7262840011)"))
            config = Config()
            config.set_main_option("script_location", str(_MIGRATIONS))
            config.attributes["connection"] = conn
            command.upgrade(config, "head")


class Database:
    """An engine plus the transaction discipline anachron uses on it."""

    def __init__(self, url: str):
        self.url = normalize_url(url)
        self.engine, serialize_all = open_engine(self.url)
        self.dialect = self.engine.dialect.name
        self._write_lock = threading.RLock()
        self._read_lock = self._write_lock if serialize_all else None
        self.is_memory = serialize_all
        migrate(self.engine)

    @contextlib.contextmanager
    def write(self) -> Iterator:
        """A write transaction. In-process writers queue on a lock instead of spinning on SQLite busy."""
        with self._write_lock:
            with self.engine.connect().execution_options(anachron_write=True) as conn:
                with conn.begin():
                    yield conn

    @contextlib.contextmanager
    def read(self) -> Iterator:
        lock = self._read_lock or contextlib.nullcontext()
        with lock:
            with self.engine.connect() as conn:
                with conn.begin():
                    yield conn

    def dispose(self) -> None:
        self.engine.dispose()
