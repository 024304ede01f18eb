"""Graph backfills executed (SPEC §8): a key starts only after the keys it needs upstream in the backfill have
succeeded, keys of different workflows interleave, a failure blocks exactly its dependents (``upstream_failed``),
a rerun runs the failed keys with the keys they blocked, and a coordinator killed mid-graph is taken over with
every key run once and the order intact. Order and executions come from what the runs wrote themselves
(``graph_flows``: one line per execution with its start and end)."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from datetime import datetime, timedelta
from pathlib import Path

import pytest

import anachron as ac
from graph_flows import ALL, GRAPH, daily_summary, raw_events, running_total, weekly_report
from helpers import wait_for

TESTS = Path(__file__).parent
START, END = "2024-03-04", "2024-03-10T23:00"  # one week: 168 hours, 7 days, 1 week


@pytest.fixture
def graph_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPH_DIR", str(tmp_path))
    monkeypatch.delenv("GRAPH_FAIL", raising=False)
    return tmp_path


def executions(folder: Path) -> list[tuple[str, str, float, float, int]]:
    """``(workflow, keys, start, end, attempt)`` per execution, as the runs wrote them."""
    log = folder / "runs.log"
    lines = log.read_text().splitlines() if log.exists() else []
    return [(w, k, float(a), float(b), int(n)) for w, k, a, b, n in (line.split() for line in lines)]


def hours_of(day: str) -> list[str]:
    first = datetime.fromisoformat(day)
    return [(first + timedelta(hours=h)).strftime("%Y-%m-%dT%H:00") for h in range(24)]


def days_of(week: str) -> list[str]:
    first = datetime.fromisoformat(week)
    return [(first + timedelta(days=d)).strftime("%Y-%m-%d") for d in range(7)]


def check_order(folder: Path) -> None:
    """Every downstream execution started after every execution of the keys it needs had ended."""
    ended = {(w, k): end for w, k, _, end, _ in executions(folder)}
    for workflow, key, start, _, _ in executions(folder):
        if workflow == "daily_summary":
            needed = [("raw_events", h) for h in hours_of(key)]
        elif workflow == "weekly_report":
            needed = [("daily_summary", d) for d in days_of(key)]
        elif workflow == "running_total" and key != "2024-03-01":
            needed = [("running_total", (datetime.fromisoformat(key) - timedelta(days=1)).strftime("%Y-%m-%d"))]
        else:
            continue
        for need in needed:
            if need in ended:
                assert start >= ended[need], f"{workflow} {key} started before {need} ended"


def test_a_three_level_graph_runs_in_order_and_interleaves(storage_url, make_repo, graph_dir):
    repo = make_repo(ALL, storage=storage_url, executor=ac.InProcessExecutor(4))
    result = repo.backfill(raw_events, start=START, end=END, include="downstream", max_concurrency=4)
    assert (result.status, result.completed, result.failed) == ("completed", 168 + 7 + 1 + 1, 0)
    ran = executions(graph_dir)
    assert Counter(w for w, *_ in ran) == {"raw_events": 168, "daily_summary": 7, "weekly_report": 1,
                                           "yearly_deck": 1}
    assert len({(w, k) for w, k, *_ in ran}) == len(ran)  # each key once
    check_order(graph_dir)
    # interleaved: the first day's summary ran long before the week's last hour did
    started = {(w, k): s for w, k, s, _, _ in ran}
    assert started["daily_summary", "2024-03-04"] < started["raw_events", "2024-03-10T00:00"]
    status = repo.get_backfill(result.backfill_id)
    assert status.workflows == {
        "raw_events": {"total": 168, "completed": 168, "failed": 0, "upstream_failed": 0, "canceled": 0},
        "daily_summary": {"total": 7, "completed": 7, "failed": 0, "upstream_failed": 0, "canceled": 0},
        "weekly_report": {"total": 1, "completed": 1, "failed": 0, "upstream_failed": 0, "canceled": 0},
        "yearly_deck": {"total": 1, "completed": 1, "failed": 0, "upstream_failed": 0, "canceled": 0}}


def test_a_failure_blocks_exactly_its_dependents_and_the_rerun_runs_them(storage_url, make_repo, graph_dir,
                                                                          monkeypatch):
    monkeypatch.setenv("GRAPH_FAIL", "raw_events/2024-03-05T07:00")
    repo = make_repo(ALL, storage=storage_url, executor=ac.InProcessExecutor(4))
    result = repo.backfill(raw_events, start=START, end=END, include="downstream", max_concurrency=4)
    assert result.status == "failed"
    assert (result.completed, result.failed) == (167 + 6, 1 + 1 + 1 + 1)  # the hour; its day, week and deck
    done = {(w, k) for w, k, *_ in executions(graph_dir)}
    assert ("daily_summary", "2024-03-05") not in done and ("weekly_report", "2024-03-04") not in done
    assert {("daily_summary", d) for d in days_of("2024-03-04")} - done == {("daily_summary", "2024-03-05")}
    runs = repo.list_runs(backfill_id=result.backfill_id, limit=None)
    blocked = {r.workflow: r for r in runs if r.status == "upstream_failed"}
    assert set(blocked) == {"daily_summary", "weekly_report", "yearly_deck"}
    assert blocked["daily_summary"].error == "upstream raw_events 2024-03-05T07:00 failed"
    assert blocked["weekly_report"].error == "upstream daily_summary 2024-03-05 did not run: its own upstream failed"
    assert blocked["daily_summary"].started_at is None  # it never ran
    counts = repo.get_backfill(result.backfill_id).workflows
    assert counts["raw_events"]["failed"] == 1 and counts["daily_summary"]["upstream_failed"] == 1
    assert repo.partition_status(daily_summary, from_key="2024-03-05", limit=1) == {"2024-03-05": "missing"}

    monkeypatch.delenv("GRAPH_FAIL")  # the bad input is fixed: the rerun runs the failed key and what it blocked
    rerun = repo.rerun_backfill(result.backfill_id)
    assert (rerun.status, rerun.completed, rerun.num_runs) == ("completed", 4, 4)
    again = [(w, k) for w, k, *_ in executions(graph_dir)][len(done):]
    assert sorted(again) == [("daily_summary", "2024-03-05"), ("raw_events", "2024-03-05T07:00"),
                             ("weekly_report", "2024-03-04"), ("yearly_deck", "-")]
    check_order(graph_dir)


def test_stop_on_failure_pause_resume_and_cancel_hold_for_a_graph(storage_url, make_repo, graph_dir,
                                                                   monkeypatch):
    monkeypatch.setenv("GRAPH_SLEEP", "0.02")
    repo = make_repo(GRAPH, storage=storage_url, executor=ac.InProcessExecutor(4))
    started = repo.backfill(raw_events, start=START, end=END, include="downstream", max_concurrency=2, block=False)
    assert wait_for(lambda: len(executions(graph_dir)) >= 5, timeout=30)
    repo.pause_backfill(started.backfill_id)
    time.sleep(0.3)
    paused_at = len(executions(graph_dir))
    time.sleep(0.5)
    assert len(executions(graph_dir)) <= paused_at + 2  # runs in flight finish; nothing new starts
    repo.resume_backfill(started.backfill_id)
    assert wait_for(lambda: len(executions(graph_dir)) >= paused_at + 10, timeout=30)
    repo.cancel_backfill(started.backfill_id)
    final = repo.wait_backfill(started.backfill_id, timeout=30)
    assert final.status == "canceled" and final.canceled_partitions > 0
    assert final.completed_partitions + final.failed_partitions + final.canceled_partitions == 168 + 7 + 1
    check_order(graph_dir)
    monkeypatch.setenv("GRAPH_FAIL", "raw_events/2024-03-11T01:00")
    stopped = repo.backfill(raw_events, start="2024-03-11", end="2024-03-17T23:00", include="downstream",
                            max_concurrency=2, failure_policy="stop_on_failure")
    assert stopped.status == "failed" and stopped.failed >= 1 and stopped.completed < 20
    assert stopped.completed + stopped.failed + stopped.canceled == 168 + 7 + 1


def test_depends_on_past_runs_each_key_as_soon_as_the_one_before_succeeded(make_repo, graph_dir):
    repo = make_repo(ALL, storage="sqlite://", executor=ac.InProcessExecutor(4))
    result = repo.backfill(running_total, start="2024-03-01", end="2024-03-30", max_concurrency=4)
    assert result.status == "completed" and result.completed == 30
    ran = executions(graph_dir)
    assert [k for _, k, *_ in ran] == [f"2024-03-{d:02d}" for d in range(1, 31)]
    check_order(graph_dir)
    gaps = [b[2] - a[3] for a, b in zip(ran, ran[1:])]
    assert max(gaps) < 0.2, gaps  # no polling interval between links of the chain


LEADER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import anachron as ac
    import graph_flows as gf

    if __name__ == "__main__":
        repo = ac.CodeRepository(gf.GRAPH, storage={url!r}, executor=ac.LocalExecutor(2), lease_seconds=2)
        if sys.argv[1] == "start":
            result = repo.backfill(gf.raw_events, start={start!r}, end={end!r}, include="downstream",
                                   max_concurrency=4, block=False)
            print(result.backfill_id, flush=True)
            time.sleep(600)
        else:
            status = repo.wait_backfill(sys.argv[2], timeout=180)
            print(status.status, status.completed_partitions, flush=True)
            repo.close()
""")


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_a_coordinator_killed_mid_graph_is_taken_over_with_each_key_once_in_order(backend, tmp_path, request):
    url = f"sqlite:///{tmp_path / 'graph.db'}" if backend == "sqlite" else request.getfixturevalue("pg_url")
    script = tmp_path / "leader.py"
    script.write_text(LEADER.format(tests=str(TESTS), url=url, start="2024-03-04", end="2024-03-05T23:00"))
    env = {"GRAPH_DIR": str(tmp_path), "GRAPH_SLEEP": "0.05", "PATH": "/usr/bin:/bin"}
    first = subprocess.Popen([sys.executable, str(script), "start"], stdout=subprocess.PIPE, text=True, env=env)
    second = None
    try:
        backfill_id = first.stdout.readline().strip()
        assert wait_for(lambda: len(executions(tmp_path)) >= 15, timeout=60)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        second = subprocess.run([sys.executable, str(script), "wait", backfill_id], capture_output=True, text=True,
                                env=env, timeout=180)
        assert second.returncode == 0, second.stderr
        assert second.stdout.split() == ["completed", str(48 + 2 + 1)]
        with ac.CodeRepository([], storage=url, executor=ac.InProcessExecutor(1)) as observer:
            runs = observer.list_runs(backfill_id=backfill_id, limit=None)
        successes = Counter((r.workflow, r.partition_key) for r in runs if r.status == "success")
        assert len(successes) == 48 + 2 + 1 and set(successes.values()) == {1}  # each key succeeded once
        ran = executions(tmp_path)
        assert {(w, k) for w, k, *_ in ran} == {(w, k or "-") for w, k in successes}
        again = Counter((w, k) for w, k, *_ in ran if Counter((x, y) for x, y, *_ in ran)[w, k] > 1)
        # the only code run twice: a run the kill caught between its end and its record (at least once, as
        # documented), run again as its next attempt
        assert all(n == 2 for n in again.values()) and len(again) <= 4, again
        assert all({a for x, y, _, _, a in ran if (x, y) == key} == {1, 2} for key in again)
        check_order(tmp_path)
    finally:
        if first.poll() is None:
            first.kill()


def test_graph_counts_through_the_command_line(tmp_path):
    env = {"ANACHRON_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(TESTS), "GRAPH_DIR": str(tmp_path)}
    flows = str(TESTS / "graph_flows.py")
    created = subprocess.run([sys.executable, "-m", "anachron.cli", "backfill", "create", flows, "raw_events",
                              "--start", "2024-03-04", "--end", "2024-03-04T23:00", "--include", "downstream",
                              "--output", "json"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=120)
    assert created.returncode == 0, created.stderr
    backfill_id = json.loads(created.stdout)["backfill_id"]
    shown = subprocess.run([sys.executable, "-m", "anachron.cli", "backfill", "status", flows, backfill_id,
                            "--output", "json"], capture_output=True, text=True, env=env, cwd=tmp_path, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["workflows"]["daily_summary"]["completed"] == 1
    check_order(tmp_path)
    assert weekly_report.name in json.loads(shown.stdout)["workflows"]


FAIL_FIRST = {"left": 1}


@ac.workflow(partitions=ac.DailyPartitions("2026-03-01"), schedule=ac.Schedule("0 0 * * *", overlap="allow"),
             depends_on_past=True)
def ledger():
    if ac.context().partition_key == "2026-03-02" and FAIL_FIRST["left"]:
        FAIL_FIRST["left"] -= 1
        raise RuntimeError("the ledger of March 2nd does not balance")


def test_depends_on_past_holds_a_live_tick_until_the_key_before_succeeded(sqlite_url, make_repo):
    from conftest import FakeClock
    from helpers import wait_until

    FAIL_FIRST["left"] = 1
    clock = FakeClock(datetime.fromisoformat("2026-03-02T23:59:00+00:00"))
    repo = make_repo([ledger], storage=sqlite_url, executor=ac.InProcessExecutor(2), clock=clock)
    daemon = repo.daemon()
    daemon.step()
    clock.advance(120)  # 2026-03-03 00:01: the tick runs March 2nd (March 1st never ran: nothing to wait for)
    daemon.step()
    wait_until(lambda: repo.partition_status(ledger, from_key="2026-03-02", limit=1)["2026-03-02"] == "failed")
    clock.advance(24 * 3600)  # the next tick: March 3rd waits, the key before it failed
    daemon.step()
    wait_until(lambda: len(repo.list_runs(workflow="ledger")) == 2)
    held = next(r for r in repo.list_runs(workflow="ledger") if r.partition_key == "2026-03-03")
    assert not wait_for(lambda: repo.get_run(held.run_id).status != "queued", timeout=1.0)
    assert repo.run(ledger, partition_key="2026-03-02").status == "success"  # fixed and run again by hand
    wait_until(lambda: repo.get_run(held.run_id).status == "success")
