"""Shared fixtures: real SQLite files and real PostgreSQL databases (one per test, from a template)."""

from __future__ import annotations

import os
import uuid

import pytest

PG_ADMIN_URL = os.environ.get("ANACHRON_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_admin():
    from sqlalchemy import create_engine

    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")


def _pg_url(dbname: str) -> str:
    base = PG_ADMIN_URL.rsplit("/", 1)[0]
    return f"{base}/{dbname}"


@pytest.fixture(scope="session")
def pg_template():
    """A migrated template database; each test clones it (CREATE DATABASE ... TEMPLATE)."""
    from sqlalchemy import text

    try:
        admin = _pg_admin()
        with admin.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001
        if os.environ.get("CI"):
            pytest.fail(f"PostgreSQL is required in CI and is not reachable at {PG_ADMIN_URL}: {exc}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN_URL}")
    name = f"anachron_tmpl_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    from anachron.storage import Storage

    storage = Storage(_pg_url(name))  # runs the migrations
    storage.close()
    yield name
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def pg_url(pg_template):
    from sqlalchemy import text

    admin = _pg_admin()
    name = f"anachron_t_{uuid.uuid4().hex[:12]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    yield _pg_url(name)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path / 'anachron.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def storage_url(request, tmp_path):
    """The contract suite: every test using this runs on SQLite and on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'anachron.db'}"
    return request.getfixturevalue("pg_url")


class FakeClock:
    """A controllable clock for repositories: ``clock.advance(seconds)``."""

    def __init__(self, start):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, seconds: float) -> None:
        from datetime import timedelta

        self.now = self.now + timedelta(seconds=seconds)


@pytest.fixture
def fake_clock():
    from datetime import datetime, timezone

    return FakeClock(datetime(2026, 1, 1, tzinfo=timezone.utc))


@pytest.fixture
def noon_clock(fake_clock):
    """The fake clock at 2026-01-01T12:00Z: the half day before it is past, what follows is future."""
    fake_clock.advance(12 * 3600)
    return fake_clock


@pytest.fixture
def make_repo(request):
    """Build repositories that are closed after the test."""
    repos = []

    def make(*args, **kwargs):
        import anachron as ac

        repo = ac.CodeRepository(*args, **kwargs)
        repos.append(repo)
        return repo

    yield make
    for repo in repos:
        repo.close()
