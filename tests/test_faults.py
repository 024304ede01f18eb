"""The engine under faults: storage failing for a while, a leader that stalls instead of dying,
definitions edited between planning and running, and errors while a backfill creates its runs."""

from __future__ import annotations

import json
import logging
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter, defaultdict
from pathlib import Path

import pytest

import anachron as ac
import flows_faults as ff
from helpers import wait_for

TESTS = Path(__file__).parent
KEYS = [f"2024-01-{d:02d}" for d in range(1, 21)]


def one_success_per_key(repo, backfill_id, keys):
    runs = repo.list_runs(backfill_id=backfill_id, limit=None)
    assert not [r for r in runs if r.status in ("queued", "running")], "a run was left active"
    succeeded = Counter(r.partition_key for r in runs if r.status == "success")
    assert sorted(succeeded) == sorted(keys) and set(succeeded.values()) == {1}


# -- storage failing for a few seconds ----------------------------------------------------------------
def test_a_write_rejected_for_a_few_seconds_loses_no_outcome(tmp_path, make_repo, caplog):
    path = tmp_path / "faults.db"
    repo = make_repo([ff.quick], storage=f"sqlite:///{path}", executor=ac.InProcessExecutor(4))
    _ = repo.storage  # migrated before the trigger goes in
    saboteur = sqlite3.connect(path, isolation_level=None, timeout=30)
    saboteur.execute("CREATE TRIGGER reject_success BEFORE UPDATE OF status ON anachron_runs "
                     "WHEN NEW.status = 'success' BEGIN SELECT RAISE(ABORT, 'injected: writes refused'); END")
    caplog.set_level(logging.WARNING, logger="anachron")
    result = repo.backfill(ff.quick, partition_keys=KEYS, params={"seconds": 0.05}, max_concurrency=4, block=False)
    time.sleep(2.5)  # every "success" write fails meanwhile; the runs' outcomes wait in memory
    assert repo.get_backfill(result.backfill_id).completed_partitions == 0
    saboteur.execute("DROP TRIGGER reject_success")
    final = repo.wait_backfill(result.backfill_id, timeout=30)
    assert final.status == "completed" and final.completed_partitions == len(KEYS)
    one_success_per_key(repo, result.backfill_id, KEYS)
    failures = [r for r in caplog.records if "tick failed" in r.getMessage()]
    assert 1 <= len(failures) <= 12, len(failures)  # reported, not flooded (one line per ~2 s of retries)
    assert any("works again" in r.getMessage() for r in caplog.records)


def test_postgresql_connections_killed_during_a_backfill(pg_url, make_repo):
    from sqlalchemy import create_engine, text

    from conftest import PG_ADMIN_URL

    repo = make_repo([ff.quick], storage=pg_url, executor=ac.InProcessExecutor(4))
    dbname = pg_url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    result = repo.backfill(ff.quick, partition_keys=KEYS, params={"seconds": 0.1}, max_concurrency=2, block=False)
    killed = 0
    try:
        for _ in range(6):  # every half second, drop every connection anachron has
            time.sleep(0.5)
            with admin.connect() as conn:
                killed += conn.execute(text("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                                            "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": dbname}).scalar()
    finally:
        admin.dispose()
    assert killed > 0
    final = repo.wait_backfill(result.backfill_id, timeout=60)
    assert final.status == "completed" and final.completed_partitions == len(KEYS)
    one_success_per_key(repo, result.backfill_id, KEYS)


def test_a_process_frozen_inside_a_postgresql_transaction_does_not_block_the_others(pg_url, make_repo):
    """A process stopped (SIGSTOP) between two statements of a transaction keeps its row locks; the server
    ends such a transaction after IDLE_IN_TRANSACTION_MS, so the others go on."""
    from anachron.storage.engine import IDLE_IN_TRANSACTION_MS, open_engine

    repo = make_repo([ff.quick], storage=pg_url, executor=ac.InProcessExecutor(2))
    repo.run(ff.quick, partition_key=KEYS[0], params={"seconds": 0.0})  # storage open and migrated
    frozen = open_engine(pg_url).raw_connection()
    try:
        frozen.cursor().execute("SELECT * FROM anachron_queue_lock FOR UPDATE")  # what a claim holds; frozen
        started = time.monotonic()
        run = repo.run(ff.quick, partition_key=KEYS[1], params={"seconds": 0.0}, block=False)
        assert repo.wait_run(run.run_id, timeout=60).status == "success"
        assert time.monotonic() - started < IDLE_IN_TRANSACTION_MS / 1000 + 15
        with pytest.raises(Exception, match="idle-in-transaction|terminat|closed"):
            frozen.cursor().execute("SELECT 1")  # the server ended the frozen transaction
    finally:
        frozen.invalidate()


# -- a leader that stalls (SIGSTOP) rather than dies --------------------------------------------------
STALL = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {tests!r})
    import anachron as ac
    import flows_faults as ff

    if __name__ == "__main__":
        repo = ac.CodeRepository([ff.heartbeat], storage={url!r}, executor=ac.LocalExecutor(2), lease_seconds=2)
        if sys.argv[1] == "start":
            result = repo.backfill(ff.heartbeat, partition_keys={keys!r}, max_concurrency=2, block=False,
                                   params={{"directory": {beats!r}, "seconds": 3}})
            print(result.backfill_id, flush=True)
            time.sleep(600)
        else:
            status = repo.wait_backfill(sys.argv[2], timeout=120)
            print(json.dumps({{"status": status.status, "completed": status.completed_partitions}}), flush=True)
            repo.close()
""")


def intervals(directory: Path) -> dict[str, dict[int, tuple[float, float]]]:
    """key → pid → (first, last) heartbeat."""
    found: dict[str, dict[int, tuple[float, float]]] = defaultdict(dict)
    for path in directory.iterdir():
        for line in path.read_text().split("\n"):
            parts = line.split()
            if len(parts) != 2:
                continue
            pid, t = int(parts[0]), float(parts[1])
            first, last = found[path.name].get(pid, (t, t))
            found[path.name][pid] = (min(first, t), max(last, t))
    return found


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_stalled_leader_never_runs_a_partition_alongside_its_successor(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'stall.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    beats = tmp_path / "beats"
    beats.mkdir()
    keys = KEYS[:4]
    script = tmp_path / "leader.py"
    script.write_text(STALL.format(tests=str(TESTS), url=url, keys=keys, beats=str(beats)))
    first = subprocess.Popen([sys.executable, str(script), "start"], stdout=subprocess.PIPE, text=True)
    second = None
    try:
        backfill_id = first.stdout.readline().strip()
        assert wait_for(lambda: len(list(beats.iterdir())) >= 2, timeout=30), "the first leader's runs never ran"
        first_pids = {pid for per_pid in intervals(beats).values() for pid in per_pid}
        first.send_signal(signal.SIGSTOP)  # frozen, not dead: its worker processes go on, unless fenced
        second = subprocess.Popen([sys.executable, str(script), "wait", backfill_id], stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True)
        assert wait_for(lambda: any(pid not in first_pids for per_pid in intervals(beats).values() for pid in per_pid),
                        timeout=30), "the second process never took over"
        first.send_signal(signal.SIGCONT)  # the first leader wakes up after losing its lease
        out, err = second.communicate(timeout=90)
        assert second.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {"status": "completed", "completed": len(keys)}
        for key, per_pid in intervals(beats).items():
            spans = sorted(per_pid.values())
            for (_, end), (start, _) in zip(spans, spans[1:]):
                assert end < start, f"{key} ran in two processes at once: {per_pid}"
        with ac.CodeRepository([ff.heartbeat], storage=url, executor=ac.InProcessExecutor(1)) as observer:
            one_success_per_key(observer, backfill_id, keys)
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait(10)


# -- definitions edited between planning and running ----------------------------------------------------
def edited(start: str, name: str = "etl", keys=None):
    partitions = ac.StaticPartitions(keys) if keys is not None else ac.DailyPartitions(start, "2024-02-01")
    return ac.workflow(name=name, partitions=partitions)(lambda: None)


def test_a_backfill_fails_when_its_planned_keys_can_no_longer_be_produced(storage_url, make_repo):
    planner = make_repo([edited("2024-01-01")], storage=storage_url, executor=ac.InProcessExecutor(2))
    planned = planner.backfill("etl", block=False, coordinate=False)  # --all, --no-wait
    assert planned.num_partitions == 31
    leader = make_repo([edited("2023-12-25")], storage=storage_url, executor=ac.InProcessExecutor(2))
    final = leader.wait_backfill(planned.backfill_id, timeout=20)
    assert final.status == "failed" and final.completed_partitions == 0
    assert "changed since the backfill was planned" in final.error
    assert "31 keys 2024-01-01 … 2024-01-31" in final.error and "2023-12-25" in final.error
    assert leader.list_runs(backfill_id=planned.backfill_id) == []


def test_a_compatible_edit_still_runs_exactly_the_planned_keys(storage_url, make_repo):
    planner = make_repo([edited("2024-01-01")], storage=storage_url, executor=ac.InProcessExecutor(2))
    planned = planner.backfill("etl", partition_keys=KEYS[:5], block=False, coordinate=False)
    later = ac.workflow(name="etl", partitions=ac.DailyPartitions("2023-01-01", "2025-01-01"))(lambda: None)
    leader = make_repo([later], storage=storage_url, executor=ac.InProcessExecutor(2))
    assert leader.wait_backfill(planned.backfill_id, timeout=20).status == "completed"
    assert sorted(r.partition_key for r in leader.list_runs(backfill_id=planned.backfill_id)) == KEYS[:5]


def test_a_renamed_key_in_the_middle_is_caught(sqlite_url, make_repo):
    planner = make_repo([edited("", keys=["a", "b", "c"])], storage=sqlite_url, executor=ac.InProcessExecutor(2))
    planned = planner.backfill("etl", block=False, coordinate=False)
    leader = make_repo([edited("", keys=["a", "x", "c"])], storage=sqlite_url, executor=ac.InProcessExecutor(2))
    final = leader.wait_backfill(planned.backfill_id, timeout=20)
    assert final.status == "failed" and "not all of them the planned ones" in final.error


# -- errors while a backfill creates its runs -----------------------------------------------------------
def test_an_error_creating_runs_ends_the_backfill_once(storage_url, make_repo, caplog):
    repo = make_repo([ff.broken_windows], storage=storage_url, executor=ac.InProcessExecutor(2))
    caplog.set_level(logging.DEBUG, logger="anachron")
    result = repo.backfill(ff.broken_windows, partition_keys=KEYS[:6], max_concurrency=1, block=False)
    final = repo.wait_backfill(result.backfill_id, timeout=20)
    assert final.status == "failed"
    assert "could not create runs" in final.error and "calendar service is down" in final.error
    assert len(caplog.records) < 10  # one failure, not a retry loop
    assert all(r.status in ("success", "canceled") for r in repo.list_runs(backfill_id=result.backfill_id))


def refuse_partition_key(url: str, key: str) -> None:
    """Make the database itself refuse every run row for ``key`` (a test-only constraint)."""
    from sqlalchemy import create_engine, text

    engine = create_engine(url)
    with engine.begin() as conn:
        if url.startswith("sqlite"):
            conn.execute(text("CREATE TRIGGER refuse_key BEFORE INSERT ON anachron_runs "
                              f"WHEN NEW.partition_key = '{key}' BEGIN SELECT RAISE(ABORT, 'injected: no {key}'); END"))
        else:
            conn.execute(text(f"ALTER TABLE anachron_runs ADD CONSTRAINT refuse_key CHECK (partition_key <> '{key}')"))
    engine.dispose()


def test_runs_the_database_refuses_fail_only_their_backfill(storage_url, make_repo, caplog):
    repo = make_repo([ff.quick], storage=storage_url, executor=ac.InProcessExecutor(4))
    _ = repo.storage  # migrated before the constraint goes in
    refuse_partition_key(storage_url, KEYS[12])
    caplog.set_level(logging.WARNING, logger="anachron")
    good = repo.backfill(ff.quick, partition_keys=KEYS[:10], params={"seconds": 0.02}, max_concurrency=2,
                         block=False)
    bad = repo.backfill(ff.quick, partition_keys=KEYS[10:], max_concurrency=2, block=False)
    failed = repo.wait_backfill(bad.backfill_id, timeout=30)
    assert failed.status == "failed" and "could not create runs" in failed.error, failed.error
    assert "refuse" in failed.error or "injected" in failed.error, failed.error
    assert all(r.status in ("success", "canceled") for r in repo.list_runs(backfill_id=bad.backfill_id))
    finished = repo.wait_backfill(good.backfill_id, timeout=30)  # the tick it shared lost nothing
    assert finished.status == "completed" and finished.completed_partitions == 10
    one_success_per_key(repo, good.backfill_id, KEYS[:10])
    assert not [r for r in caplog.records if "tick failed" in r.getMessage()]  # handled, not retried


def test_idempotency_keys_of_batches_are_unambiguous(storage_url, make_repo):
    wf = ac.workflow(name="letters", partitions=ac.StaticPartitions(["a", "b", "a,b"]))(lambda: None)
    repo = make_repo([wf], storage=storage_url, executor=ac.InProcessExecutor(2))
    result = repo.backfill("letters", strategy=ac.BackfillStrategy.batched(2))
    assert result.status == "completed" and result.completed == 3 and result.num_runs == 2
    keys = {r.idempotency_key for r in repo.list_runs(backfill_id=result.backfill_id)}
    assert keys == {f"backfill:{result.backfill_id}:a,b", f"backfill:{result.backfill_id}:a%2Cb"}


def test_keys_a_database_cannot_store_are_refused_when_added(storage_url, make_repo):
    repo = make_repo([], storage=storage_url, executor=ac.InProcessExecutor(1))
    with pytest.raises(ValueError, match="control character|NUL"):
        repo.add_dynamic_partitions("customers", ["acme\x00corp"])
    with pytest.raises(ValueError, match="1,?000 bytes"):
        repo.add_dynamic_partitions("customers", ["x" * 4096])
    assert repo.get_dynamic_partitions("customers") == []
    with pytest.raises(ValueError, match="control character|NUL"):
        ac.StaticPartitions(["fine", "not\x00fine"])


def test_the_commit_of_a_tick_is_all_or_nothing(sqlite_url, make_repo, monkeypatch):
    """A tick whose transaction fails after part of its work leaves memory as storage says it is."""
    from anachron.storage.session import Session

    repo = make_repo([ff.quick], storage=sqlite_url, executor=ac.InProcessExecutor(2))
    real = Session.start_runs
    failures = {"left": 3}

    def flaky_start(self, run_ids, owner, now):
        if failures["left"] > 0:
            failures["left"] -= 1
            raise RuntimeError("injected: the claim failed after runs were created")
        return real(self, run_ids, owner, now)

    monkeypatch.setattr(Session, "start_runs", flaky_start)
    result = repo.backfill(ff.quick, partition_keys=KEYS, max_concurrency=3)
    assert result.status == "completed" and result.completed == len(KEYS)
    one_success_per_key(repo, result.backfill_id, KEYS)


def test_a_waiter_keeps_waiting_through_a_locked_database(tmp_path, make_repo):
    path = tmp_path / "locked.db"
    repo = make_repo([ff.quick], storage=f"sqlite:///{path}", executor=ac.InProcessExecutor(2))
    result = repo.backfill(ff.quick, partition_keys=KEYS[:8], params={"seconds": 0.2}, max_concurrency=2,
                           block=False)
    locker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    locker.execute("BEGIN EXCLUSIVE")  # nobody else may read or write for a while
    threading.Timer(1.5, lambda: locker.execute("COMMIT")).start()
    final = repo.wait_backfill(result.backfill_id, timeout=60)
    assert final.status == "completed"
    locker.close()
