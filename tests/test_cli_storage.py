"""Storage trouble at the command line: errors in one line without SQL, and waiting that survives hiccups."""

from __future__ import annotations

import json
import sqlite3
import time

import pytest

import anachron as ac
from anachron.cli import run_cli
from anachron.cli.progress import Display, Hiccups, watch
from anachron.cli.runs import _wait
from anachron.storage import StorageRejected, StorageUnavailable, describe_error
from test_cli import FLOWS, api, cli  # noqa: F401 - fixtures


def sql_error(message: str):
    """An SQLAlchemy error as PostgreSQL raises it (the driver's message, then the statement and parameters),
    as storage's boundary hands it on: ``StorageRejected``."""
    from sqlalchemy.exc import ProgrammingError

    raw = ProgrammingError("SELECT secret FROM anachron_runs WHERE run_id = %(run_id)s", {"run_id": "hunter2"},
                           Exception(message))
    return StorageRejected(describe_error(raw))


def status(state: str, done: int = 0) -> ac.BackfillStatus:
    return ac.BackfillStatus("b1", state, 3, done, 0, 0, [], None, {}, total_runs=3)


# -- 7. storage errors in one line --------------------------------------------------------------------
@pytest.mark.parametrize(("error", "line"), [
    (lambda: sql_error('relation "anachron_runs" does not exist\nLINE 1: SELECT secret FROM anachron_runs'),
     'error: storage: relation "anachron_runs" does not exist'),
    (lambda: StorageRejected('value too long for type character varying(16)\nDETAIL: x'),
     "error: storage: value too long for type character varying(16)"),
    (lambda: StorageUnavailable("storage unavailable: database is locked"),
     "error: storage: unavailable: database is locked"),
])
def test_storage_errors_are_one_line_without_sql(monkeypatch, capsys, tmp_path, error, line):
    url = f"sqlite:///{tmp_path / 'db.sqlite'}"
    monkeypatch.setenv("ANACHRON_DATABASE_URL", url)  # (the CLI sets it; monkeypatch puts it back)

    def fail(*args, **kwargs):
        raise error()

    monkeypatch.setattr(ac.CodeRepository, "list_backfills", fail)
    assert run_cli(["backfill", "list", "--db", url]) == 1
    err = capsys.readouterr().err
    assert err == line + "\n"


def test_a_postgresql_error_is_one_line(cli, pg_url):
    from sqlalchemy import create_engine, text

    assert cli("runs", "list", "--db", pg_url).returncode == 0  # creates the schema
    engine = create_engine(pg_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE anachron_runs CASCADE"))
    engine.dispose()
    proc = cli("runs", "list", "--db", pg_url)
    assert proc.returncode == 1
    assert proc.stderr == 'error: storage: relation "anachron_runs" does not exist\n'


# -- 8. waiting survives storage hiccups -------------------------------------------------------------
class FlakyRepository:
    """Just what ``watch`` and the run waiter use; the first ``failures`` reads fail."""

    def __init__(self, failures: list[Exception]):
        self.failures = list(failures)
        self.reads = 0

    def _read(self):
        self.reads += 1
        if self.failures:
            raise self.failures.pop(0)

    def wait_backfill(self, backfill_id, timeout=None):
        self._read()
        if self.reads < 8:
            raise TimeoutError(backfill_id)
        return status("completed", 3)

    def get_backfill(self, backfill_id, include_run_ids=True):
        self._read()
        return status("in_progress", 1)

    def wait_run(self, run_id, timeout=None):
        self._read()
        return "the run"


def busy() -> Exception:
    """SQLite's "database is locked" past a transaction's patience, as storage's boundary hands it on."""
    from sqlalchemy.exc import OperationalError

    orig = sqlite3.OperationalError("database is locked")
    orig.sqlite_errorname = "SQLITE_BUSY"
    raw = OperationalError("UPDATE anachron_backfills SET owner = ?", ("me",), orig)
    return StorageUnavailable(f"storage unavailable: {describe_error(raw)}")


def test_watch_waits_out_storage_hiccups(capsys):
    repo = FlakyRepository([StorageUnavailable("storage unavailable: database is locked"), busy(),
                            StorageUnavailable("storage unavailable: database is locked"), busy()])
    final = watch(repo, "b1", Display("b1", quiet=True), Hiccups(pause=0.01))
    assert final.status == "completed" and repo.reads > 4
    notes = capsys.readouterr().err.splitlines()
    assert notes == ["storage unavailable, retrying: database is locked"]  # at most one per 10 s

    with pytest.raises(ValueError, match="not a hiccup"):
        watch(FlakyRepository([ValueError("not a hiccup")]), "b1", Display("b1", quiet=True), Hiccups(pause=0.01))


def test_the_run_waiter_waits_out_storage_hiccups(capsys, monkeypatch):
    monkeypatch.setattr("anachron.cli.progress.POLL_SECONDS", 0.01)
    repo = FlakyRepository([busy(), busy(), StorageUnavailable("storage unavailable: connection lost")])
    assert _wait(repo, "r1") == "the run"
    assert capsys.readouterr().err.count("storage unavailable, retrying") == 1


def test_status_wait_survives_a_locked_database(cli, api, tmp_path):
    leader = cli.popen("backfill", "create", FLOWS, "etl", "--from", "2024-06-01", "--to", "2024-06-12",
                       "-p", "sleep=0.2", "--max-concurrency", "2")
    backfill_id = leader.stderr.readline().split()[1].rstrip(":")
    watcher = cli.popen("backfill", "status", FLOWS, backfill_id, "--wait", "--output", "json")
    deadline = time.monotonic() + 20
    while api.get_backfill(backfill_id, include_run_ids=False).completed_partitions < 2:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    lock = sqlite3.connect(tmp_path / "anachron.db", isolation_level=None, timeout=20)
    lock.execute("BEGIN EXCLUSIVE")
    time.sleep(3)
    lock.execute("COMMIT")
    lock.close()
    out, err = watcher.communicate(timeout=60)
    assert watcher.returncode == 0, err
    assert json.loads(out)["status"] == "completed"
    leader.communicate(timeout=60)
    assert leader.returncode == 0
    assert api.get_backfill(backfill_id).completed_partitions == 12
