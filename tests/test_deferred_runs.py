"""Runs as Prefect's migrants submit them (issue 13, items 5, 9, 10), on SQLite and PostgreSQL.

- A future ``scheduled_time`` defers a run (``--start-at``): queued until then, at that logical time; the
  process that submitted it, a daemon, or any process waiting on it starts it then.
- A process that exits with runs it submitted with ``block=False`` unfinished hands them back: queued, no
  owner, one line on stderr naming them; the next waiter runs them at once.
- A partitioned workflow is refused a run without a partition key, naming it.

Executions are counted by marker files the runs write; "now" is a controllable clock where it matters.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import anachron as ac
import flows_migrants as fm
from anachron.api import create_app
from helpers import wait_for

UTC = timezone.utc
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)
TESTS = Path(__file__).parent


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@pytest.fixture
def clock(noon_clock):
    return noon_clock


@pytest.fixture
def repo(storage_url, make_repo, clock):
    return make_repo([fm.marked, fm.daily_summary], storage=storage_url, executor=ac.InProcessExecutor(2),
                     clock=clock)


def test_a_future_scheduled_time_defers_the_run(repo, clock, tmp_path):
    later = NOW + timedelta(minutes=5)
    run = repo.run(fm.marked, params={"out": str(tmp_path)}, scheduled_time=later, block=False)
    assert run.status == "queued" and run.logical_time == later and run.scheduled_time == later
    time.sleep(1.5)  # the coordinator looks (and would start it) at least every second
    assert repo.get_run(run.run_id).status == "queued" and fm.markers(str(tmp_path), "started") == []
    clock.advance(301)
    done = repo.wait_run(run.run_id, timeout=30)
    assert done.status == "success" and done.logical_time == later
    (marker,) = fm.markers(str(tmp_path), "done")
    assert (tmp_path / marker).read_text() == later.isoformat()  # the run's clock is the scheduled time
    # a scheduled time in the past is no deferral: it runs at once, at that logical time
    past = repo.run(fm.marked, params={"out": str(tmp_path)}, scheduled_time="2025-06-01T00:00:00+00:00")
    assert past.status == "success" and past.logical_time == datetime(2025, 6, 1, tzinfo=UTC)


def test_a_waiter_or_a_daemon_starts_a_deferred_run(storage_url, make_repo, clock, tmp_path):
    """Submitted without coordinating (what ``anachron run --no-wait`` does), the run is started by another
    process when its time comes: here a daemon's repository on the same database. Exactly once."""
    submitter = make_repo([fm.marked], storage=storage_url, executor=ac.InProcessExecutor(1), clock=clock)
    later = NOW + timedelta(minutes=1)
    run = submitter.run(fm.marked, params={"out": str(tmp_path)}, scheduled_time=later, block=False,
                        coordinate=False)
    daemon_repo = make_repo([fm.marked], storage=storage_url, executor=ac.InProcessExecutor(1), clock=clock)
    daemon = daemon_repo.daemon(scan_seconds=0.05)
    daemon.step()  # takes the run over (its submitter does not coordinate it)
    time.sleep(1.2)
    assert daemon_repo.get_run(run.run_id).status == "queued"  # not before its time
    clock.advance(61)
    assert wait_for(lambda: daemon_repo.get_run(run.run_id).status == "success", timeout=20)
    assert len(fm.markers(str(tmp_path), "done")) == 1


def test_runs_take_a_scheduled_time_over_http(repo, clock):
    with TestClient(create_app(repo, daemon=False), base_url="http://localhost") as client:
        later = (NOW + timedelta(hours=1)).isoformat()
        created = client.post("/api/v1/runs", json={"workflow": "marked", "params": {"out": "/nonexistent"},
                                                    "scheduled_time": later})
        assert created.status_code == 201, created.text
        body = created.json()
        assert body["status"] == "queued" and at(body["logical_time"]) == at(body["scheduled_time"]) == at(later)
        refused = client.post("/api/v1/runs", json={"workflow": "marked", "params": {"out": "x"},
                                                    "scheduled_time": "next tuesday"})
        assert refused.status_code == 422 and refused.json()["error"]["message"].startswith("scheduled_time:")
        no_key = client.post("/api/v1/runs", json={"workflow": "daily_summary"})
        assert no_key.status_code == 400
        assert no_key.json()["error"]["message"].startswith("partition_key: workflow 'daily_summary' is partitioned")


def test_a_partitioned_workflow_needs_a_partition_key(repo):
    for attempt in (lambda: repo.run(fm.daily_summary), lambda: ac.create_context().run(fm.daily_summary)):
        with pytest.raises(ValueError, match=r"^partition_key: workflow 'daily_summary' is partitioned "
                                             r"\(DailyPartitions\('2025-12-01'\)\); a run needs a partition key"):
            attempt()
    assert repo.list_runs() == []  # nothing was stored
    assert repo.run(fm.daily_summary, partition_key="2025-12-05").status == "success"
    with pytest.raises(ValueError, match="partition_key: workflow 'marked' has no partitions"):
        repo.run(fm.marked, partition_key="2025-12-05", params={"out": "x"})


SCRIPT = """
import sys
sys.path.insert(0, {tests!r})
import anachron as ac
import flows_migrants as fm

if __name__ == "__main__":
    repo = ac.CodeRepository([fm.marked], storage={url!r}, executor=ac.LocalExecutor(1))
    run = repo.run(fm.marked, params={{"out": {out!r}, "hold": {hold!r}}}, block=False)
    queued = repo.run(fm.marked, params={{"out": {out!r}}}, scheduled_time="2099-01-01T00:00:00+00:00",
                      block=False)
    print(run.run_id, queued.run_id, flush=True)
    import time, pathlib
    deadline = time.time() + 30
    while not list(pathlib.Path({out!r}).glob("started-*")) and time.time() < deadline:
        time.sleep(0.05)
    # a normal exit, without waiting for them
"""


def test_an_exiting_process_hands_its_unfinished_runs_back(storage_url, make_repo, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    script = tmp_path / "submit.py"
    hold = tmp_path / "release"
    script.write_text(textwrap.dedent(SCRIPT.format(tests=str(TESTS), url=storage_url, out=str(out), hold=str(hold))))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    running_id, deferred_id = proc.stdout.split()
    lines = [line for line in proc.stderr.splitlines() if "handed back" in line]
    assert len(lines) == 1 and running_id in lines[0] and deferred_id in lines[0], proc.stderr
    assert len(fm.markers(str(out), "started")) == 1 and fm.markers(str(out), "done") == []  # it was stopped

    repo = make_repo([fm.marked], storage=storage_url, executor=ac.InProcessExecutor(1))
    handed = repo.get_run(running_id)
    assert handed.status == "queued" and handed.attempt == 2 and handed.started_at is None
    assert repo.get_run(deferred_id).status == "queued"
    hold.write_text("go")
    started = time.monotonic()
    assert repo.wait_run(running_id, timeout=60).status == "success"  # the next waiter runs it at once
    assert time.monotonic() - started < 15  # no lease (30 s) to wait out
    assert len(fm.markers(str(out), "done")) == 1 and len(fm.markers(str(out), "started")) == 2
    assert repo.get_run(deferred_id).status == "queued"  # still waiting for 2099
