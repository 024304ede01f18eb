"""Outcomes that survive their leader: a partition's code runs to completion once, even when the leading
process freezes (SIGSTOP, a long GC pause) for longer than its lease, or storage is out of reach for longer
than the lease — while its worker processes finish runs. Executions are counted from marker files the runs
write themselves (``flows_faults.marked``), not from the database."""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from collections import Counter
from pathlib import Path

import pytest

import anachron as ac
import flows_faults as ff
from helpers import wait_for

TESTS = Path(__file__).parent
KEYS = [f"2024-01-{d:02d}" for d in range(1, 11)]
LEASE = 2.0

SCRIPT = textwrap.dedent("""
    import json, sys, time
    sys.path.insert(0, {tests!r})
    import anachron as ac
    import flows_faults as ff

    if __name__ == "__main__":
        repo = ac.CodeRepository([ff.marked], storage={url!r}, executor=ac.LocalExecutor(2), lease_seconds={lease})
        if sys.argv[1] == "start":
            result = repo.backfill(ff.marked, partition_keys={keys!r}, max_concurrency=2, block=False,
                                   params={{"directory": {marks!r}, "seconds": 0.4}})
            print(result.backfill_id, flush=True)
            time.sleep(600)
        else:
            status = repo.wait_backfill(sys.argv[2], timeout=120)
            print(json.dumps({{"status": status.status, "completed": status.completed_partitions}}), flush=True)
            repo.close()
""")


def completions(marks: Path) -> Counter:
    return Counter(p.name.split(".")[0] for p in marks.glob("*.done"))


def executions(marks: Path) -> dict[str, list[tuple[float, float]]]:
    spans: dict[str, list[tuple[float, float]]] = {}
    for p in marks.glob("*.done"):
        key, _, _, rest = p.name.split(".", 3)
        start, end = rest[:-len(".done")].split("-")
        spans.setdefault(key, []).append((float(start), float(end)))
    return spans


class Trial:
    """A leader process leading a backfill of ``KEYS`` through two worker processes, and a second process
    waiting on it (it takes over when the leader's lease lapses)."""

    def __init__(self, url: str, tmp_path: Path):
        self.url, self.marks = url, tmp_path / "marks"
        self.marks.mkdir()
        self.script = tmp_path / "leader.py"
        self.script.write_text(SCRIPT.format(tests=str(TESTS), url=url, lease=LEASE, keys=KEYS,
                                             marks=str(self.marks)))
        self.leader = subprocess.Popen([sys.executable, str(self.script), "start"], stdout=subprocess.PIPE,
                                       text=True)
        self.waiter: subprocess.Popen | None = None
        self.backfill_id = self.leader.stdout.readline().strip()

    def wait(self) -> None:
        self.waiter = subprocess.Popen([sys.executable, str(self.script), "wait", self.backfill_id],
                                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def finish(self) -> None:
        out, err = self.waiter.communicate(timeout=120)
        assert self.waiter.returncode == 0, err
        assert json.loads(out.strip().splitlines()[-1]) == {"status": "completed", "completed": len(KEYS)}
        done = completions(self.marks)
        assert sorted(done) == KEYS, f"partitions never completed: {sorted(set(KEYS) - set(done))}"
        twice = {k: n for k, n in done.items() if n > 1}
        assert not twice, f"partitions completed more than once: {twice}"
        for key, spans in executions(self.marks).items():
            spans.sort()
            for (_, end), (start, _) in zip(spans, spans[1:]):
                assert end <= start, f"{key} ran twice at once: {spans}"
        with ac.CodeRepository([ff.marked], storage=self.url, executor=ac.InProcessExecutor(1)) as observer:
            runs = observer.list_runs(backfill_id=self.backfill_id, limit=None)
            assert Counter(r.partition_key for r in runs if r.status == "success") == Counter(KEYS)
            assert not [r for r in runs if r.status in ("queued", "running")]

    def close(self) -> None:
        for proc in (self.leader, self.waiter):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGCONT)
                proc.kill()
                proc.wait(10)


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path):
    return f"sqlite:///{tmp_path / 'once.db'}" if request.param == "sqlite" else request.getfixturevalue("pg_url")


def test_a_leader_frozen_for_longer_than_its_lease_completes_nothing_twice(url, tmp_path):
    trial = Trial(url, tmp_path)
    try:
        assert wait_for(lambda: len(completions(trial.marks)) >= 2, timeout=30), "the leader's runs never ran"
        trial.leader.send_signal(signal.SIGSTOP)  # its workers finish what they run; the leader records nothing
        trial.wait()
        time.sleep(2.5 * LEASE)
        trial.leader.send_signal(signal.SIGCONT)  # it wakes up after losing its lease
        trial.finish()
    finally:
        trial.close()


def unreachable(url: str, seconds: float) -> None:
    """Storage refuses every write (SQLite: another connection holds the write lock) or every connection
    (PostgreSQL: connections refused and dropped) for ``seconds``."""
    if url.startswith("sqlite"):
        locker = sqlite3.connect(url.removeprefix("sqlite:///"), isolation_level=None, timeout=30)
        locker.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        locker.execute("COMMIT")
        locker.close()
        return
    from sqlalchemy import create_engine, text

    from conftest import PG_ADMIN_URL

    dbname = url.rsplit("/", 1)[1]
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS false'))
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE datname = :db AND pid <> pg_backend_pid()"), {"db": dbname})
                time.sleep(0.1)
            conn.execute(text(f'ALTER DATABASE "{dbname}" ALLOW_CONNECTIONS true'))
    finally:
        admin.dispose()


def test_storage_out_of_reach_for_longer_than_the_lease_completes_nothing_twice(url, tmp_path):
    trial = Trial(url, tmp_path)
    try:
        assert wait_for(lambda: len(completions(trial.marks)) >= 2, timeout=30), "the leader's runs never ran"
        trial.wait()
        outage = threading.Thread(target=unreachable, args=(url, 2 * LEASE))
        outage.start()
        outage.join()
        trial.finish()
    finally:
        trial.close()
