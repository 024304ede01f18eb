"""LocalExecutor: real worker processes, reused; canceled runs' processes are killed; workers die with
their parent."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

import anachron as ac
import flows_basic as fb
from anachron.clock import SYSTEM_CLOCK
from helpers import alive, children, wait_for

TESTS = Path(__file__).parent


def run_pid(repo, run_id):
    for line in repo.run_logs(run_id):
        if line["message"].startswith("pid "):
            return int(line["message"].split()[1])
    return None


@pytest.fixture
def repo(sqlite_url, make_repo):
    return make_repo([fb.daily_etl, fb.sleepy, fb.timing_out, fb.flaky, fb.pooled, fb.stuck, fb.marked],
                     storage=sqlite_url,
                     executor=ac.LocalExecutor(max_workers=2), run_queue=ac.RunQueueConfig(pools={"warehouse": 1}))


def test_backfill_in_worker_processes_reuses_them(repo):
    result = repo.backfill(fb.sleepy, partition_keys=[f"2024-01-{d:02d}" for d in range(1, 21)],
                           params={"seconds": 0.01})
    assert result.status == "completed" and result.completed == 20
    pids = {run_pid(repo, run_id) for run_id in result.run_ids}
    assert None not in pids and os.getpid() not in pids
    assert len(pids) <= 2  # two long-lived workers served all twenty runs


def test_failure_and_timeout_in_a_worker(repo):
    failed = repo.run(fb.flaky, partition_key="2024-01-01", params={"fail_keys": ["2024-01-01"]})
    assert failed.status == "failed" and "boom on 2024-01-01" in failed.error
    started = time.monotonic()
    timed = repo.run(fb.timing_out)
    assert timed.status == "failed" and "timed out" in timed.error and time.monotonic() - started < 4


def test_canceling_a_running_run_kills_its_process(repo, tmp_path):
    marker = tmp_path / "started"
    run = repo.run(fb.marked, partition_key="2024-01-01", params={"seconds": 60, "marker": str(marker)}, block=False)
    # wait until a worker is executing it (not just holding it), then find the workers from the process table
    assert wait_for(lambda: marker.exists() and marker.read_text(), timeout=20)
    workers = children(os.getpid())
    assert workers, "no worker process found"
    repo.cancel_run(run.run_id)
    assert repo.wait_run(run.run_id, timeout=5).status == "canceled"
    assert wait_for(lambda: any(not alive(p) for p in workers), timeout=5)
    # the executor replaces the killed worker and keeps serving
    assert repo.run(fb.daily_etl, partition_key="2024-01-02").status == "success"


def test_pools_hold_across_worker_processes(repo):
    result = repo.backfill(fb.pooled, partition_keys=[f"2024-01-{d:02d}" for d in range(1, 7)], max_concurrency=2)
    assert result.completed == 6


def test_workers_die_with_their_parent(tmp_path):
    script = tmp_path / "parent.py"
    script.write_text(textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(TESTS)!r})
        import anachron as ac
        import flows_basic as fb
        if __name__ == "__main__":
            repo = ac.CodeRepository([fb.sleepy], storage={f"sqlite:///{tmp_path / 'db.sqlite'}"!r},
                                     executor=ac.LocalExecutor(2))
            repo.run(fb.sleepy, partition_key="2024-01-01", params={{"seconds": 120}}, block=False)
            time.sleep(120)
    """))
    parent = subprocess.Popen([sys.executable, str(script)])
    try:
        found: list[int] = []
        assert wait_for(lambda: bool(found.extend(children(parent.pid)) or found), timeout=20)
        parent.send_signal(signal.SIGKILL)
        parent.wait(5)
        assert wait_for(lambda: not any(alive(c) for c in found), timeout=5), "workers outlived the parent"
    finally:
        if parent.poll() is None:
            parent.kill()


class _Host:
    """Just what a LocalExecutor asks of its coordinator; outcomes are collected."""

    pools: dict = {}
    storage_url = ""
    log_limit = 1000
    clock = SYSTEM_CLOCK
    worker_id = "test-host"
    lease_seconds = 30.0

    def __init__(self):
        self.outcomes = []

    def resolve(self, ref):
        return {"sleepy": fb.sleepy, "marked": fb.marked}[ref.name]

    def pool_gate(self):
        return None

    def on_results(self, outcomes):
        self.outcomes.extend(outcomes)


def _job(workflow, run_id, **params):
    from datetime import datetime, timezone

    from anachron.loading import ref_of
    from anachron.runtime import RunJob

    return RunJob(run_id, 1, ref_of(workflow), ("2024-01-01",), None, datetime(2024, 1, 1, tzinfo=timezone.utc),
                  None, params, {}, None, {}, 1000)


def test_jobs_submitted_right_after_abandon_still_run(tmp_path):
    """A coordinator whose lease lapsed abandons its jobs and, once its lease is back, re-queues its runs
    and submits them again at once: those new jobs run and report (the abandon does not sweep them away
    later, leaving runs `running` forever)."""
    host = _Host()
    executor = ac.LocalExecutor(max_workers=2)
    executor.start(host)
    try:
        for round_ in range(3):  # the race is between the caller and the dispatcher thread: try it a few times
            marker = tmp_path / f"old-{round_}"
            executor.submit([_job(fb.marked, f"old-{round_}", marker=str(marker), seconds=60.0)])
            assert wait_for(marker.exists, timeout=30)
            executor.abandon()
            executor.submit([_job(fb.sleepy, f"new-{round_}", seconds=0.01)])
            assert wait_for(lambda r=round_: any(o.run_id == f"new-{r}" for o in host.outcomes), timeout=30), \
                host.outcomes
        assert all(o.status == "success" for o in host.outcomes if o.run_id.startswith("new-")), host.outcomes
        assert not any(o.run_id.startswith("old-") for o in host.outcomes)  # abandoned: never reported
    finally:
        executor.shutdown()


def test_outcomes_sent_while_the_coordinator_was_frozen_are_reported_by_abandon(tmp_path):
    """A coordinator frozen (SIGSTOP) past its lease wakes, finds its lease lapsed and abandons its jobs. Runs
    that finished meanwhile have sent their outcomes down the pipe: ``abandon`` hands them over before it stops
    anything, so the coordinator records them instead of running those partitions again."""
    host = _Host()
    executor = ac.LocalExecutor(max_workers=2)
    executor.start(host)
    try:
        marker = tmp_path / "done"
        with executor._state:  # the dispatcher cannot read the pipes: as if this process were frozen
            executor.submit([_job(fb.marked, "finished-1", marker=str(marker), seconds=0.0)])
            assert wait_for(marker.exists, timeout=30)
            time.sleep(0.5)  # the worker, idle again, has sent its outcome
            assert host.outcomes == []
            executor.abandon()
            assert [(o.run_id, o.status) for o in host.outcomes] == [("finished-1", "success")]
        time.sleep(0.5)
        assert len(host.outcomes) == 1  # reported once: nothing more after abandon
    finally:
        executor.shutdown()
