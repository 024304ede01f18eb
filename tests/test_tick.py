"""A coordinator tick as a pure decision (``engine.tick.decide``): tables of snapshots in, decisions out.
No database, no processes, no clock."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timezone

import pytest

import anachron as ac
from anachron.definitions import WorkflowRegistry
from anachron.engine.led import QUEUED_AHEAD, LedBackfill, StoredRequest
from anachron.engine.queue import QueueLimits
from anachron.engine.tick import Led, Queue, Snapshot, decide
from anachron.params import encode_params
from anachron.planning import build_plan, freeze_plan, selection_spec
from anachron.records import ActiveRun, BackfillRecord, QueuedRun, Recorded
from anachron.runtime import RunJob

NOW = 1_767_225_600.0
ME = "me"
KEYS = [f"2024-01-{d:02d}" for d in range(1, 31)]


@ac.workflow(partitions=ac.DailyPartitions("2024-01-01", "2024-02-01"))
def daily():
    pass


class Broken(ac.DailyPartitions):
    def window_bounds(self, keys):
        raise ValueError("the calendar service is down")


@ac.workflow(partitions=Broken("2024-01-01", "2024-02-01"))
def broken():
    pass


REGISTRY = WorkflowRegistry([daily, broken])


def led_backfill(backfill_id="bf", workflow=daily, keys=KEYS, *, status="in_progress", cursor=0, active=0,
                 completed=0, failed=0, max_concurrency=4, policy="continue", cancel_requested=False) -> Led:
    now = datetime.fromtimestamp(NOW, timezone.utc)
    spec = freeze_plan([workflow], selection_spec(partition_keys=keys), None, "oldest_first", "all", now, {}, {})
    plan = build_plan(spec, REGISTRY, {})
    stored = StoredRequest(spec, policy, encode_params({}), {}, {workflow.name: encode_params({})}, {}, -10,
                           max_concurrency)
    record = BackfillRecord(backfill_id, status, (workflow.name,), stored.to_json(), len(keys), len(keys), cursor,
                            completed, failed, 0, max_concurrency, -10, {}, None, ME, cancel_requested, None, NOW,
                            NOW, None)
    return Led(LedBackfill(record, stored, plan, cursor, active), record, cursor, active)


def snapshot(*led: Led, capacity=8, queue: Queue | None = Queue((), ()), **extra) -> Snapshot:
    return Snapshot(ME, REGISTRY, 1000, capacity, capacity, tuple(led), queue=queue, **extra)


def queued(run_id, backfill="other", priority=-10, seq=1, key="2024-01-01", owner=ME, workflow="daily"):
    return QueuedRun(run_id, workflow, priority, NOW - 1, seq, owner, backfill, 4, {}, (key,))


LIMITS = QueueLimits()


def test_a_new_backfill_creates_its_first_window_and_starts_what_may_run():
    d = decide(snapshot(led_backfill()), [], LIMITS, NOW)
    (window,) = d.windows
    assert window.backfill_id == "bf" and window.cursor == 0
    assert len(window.rows) == 4 + QUEUED_AHEAD  # max_concurrency (below the executor's 8) + queued ahead
    assert [r.keys for r in window.rows[:3]] == [("2024-01-01",), ("2024-01-02",), ("2024-01-03",)]
    assert [r.plan_index for r in window.rows[:3]] == [0, 1, 2]
    assert [r.status for r in window.rows].count("running") == 4  # its max_concurrency, created running
    assert all(r.started_at == NOW for r in window.rows if r.status == "running")
    assert set(d.jobs) == {r.run_id for r in window.rows if r.status == "running"}
    assert d.start == () and d.ends == () and d.stop == ()


def test_the_window_is_refilled_in_batches_not_run_by_run():
    busy = led_backfill(cursor=10, active=19)  # one run finished: room for one, which waits for a batch
    assert decide(snapshot(busy), [], LIMITS, NOW).windows == ()
    finished = [Recorded(f"r{i}", "success", "bf") for i in range(QUEUED_AHEAD)]
    (window,) = decide(snapshot(busy), finished, LIMITS, NOW).windows
    assert window.cursor == 10 and len(window.rows) == QUEUED_AHEAD + 1


def test_no_claim_when_another_process_holds_the_claim_lock():
    d = decide(snapshot(led_backfill(), queue=None, claim_skipped=True), [], LIMITS, NOW)
    assert all(r.status == "queued" for r in d.windows[0].rows) and d.jobs == {}


@pytest.mark.parametrize("change", [dict(status="paused"), dict(status="requested", cursor=30, active=3)])
def test_a_paused_or_busy_backfill_changes_nothing(change):
    assert not decide(snapshot(led_backfill(**change)), [], LIMITS, NOW).writes


def test_a_canceled_backfill_stops_its_runs_and_ends():
    d = decide(snapshot(led_backfill(status="canceled", cursor=10, active=4, completed=6)), [], LIMITS, NOW)
    assert d.stop == (("bf", "backfill canceled"),) and d.windows == ()
    (end,) = d.ends
    assert (end.ending.status, end.ending.canceled) == ("canceled", 24)
    assert decide(snapshot(led_backfill(cancel_requested=True)), [], LIMITS, NOW).ends[0].ending.status == "canceled"


def test_stop_on_failure_drops_what_is_queued_and_ends_when_nothing_runs():
    failing = led_backfill(policy="stop_on_failure", cursor=20, active=3, completed=16, failed=1)
    d = decide(snapshot(failing), [], LIMITS, NOW)
    assert d.drop_queued == (("bf", "stopped after a failure"),) and d.windows == () and d.ends == ()
    last = [Recorded(f"r{i}", "success", "bf") for i in range(3)]
    (end,) = decide(snapshot(failing), last, LIMITS, NOW).ends
    assert end.ending.status == "failed" and end.ending.canceled == 13


def test_the_last_outcome_ends_the_backfill():
    done = led_backfill(cursor=30, active=1, completed=30)
    (end,) = decide(snapshot(done), [Recorded("last", "success", "bf")], LIMITS, NOW).ends
    assert (end.backfill_id, end.ending.status, end.ending.error) == ("bf", "completed", None)
    with_failures = led_backfill(cursor=30, active=0, completed=28, failed=2)
    (end,) = decide(snapshot(with_failures), [], LIMITS, NOW).ends
    assert end.ending.status == "failed" and end.ending.error == "2 partition(s) failed"


def test_runs_that_cannot_be_created_fail_their_backfill_once():
    d = decide(snapshot(led_backfill("bad", broken), led_backfill("good")), [], LIMITS, NOW)
    assert d.stop == (("bad", "backfill failed"),)
    (end,) = d.ends
    assert end.backfill_id == "bad" and "could not create runs 1..20 of 30" in end.ending.error
    assert "calendar service is down" in end.ending.error
    assert [w.backfill_id for w in d.windows] == ["good"]  # the other backfill is not affected


def test_a_window_the_database_refused_fails_its_backfill_on_the_next_tick():
    d = decide(snapshot(led_backfill(cursor=20, active=2), refused={"bf": "runs refused: no such key"}), [],
               LIMITS, NOW)
    assert d.windows == () and d.stop == (("bf", "backfill failed"),)
    assert d.ends[0].ending.status == "failed" and d.ends[0].ending.error == "runs refused: no such key"


def test_new_runs_wait_behind_queued_ones_of_higher_priority():
    regular = [queued(f"regular-{i}", backfill=None, priority=0, seq=i, key=f"2024-01-{10 + i:02d}")
               for i in range(3)]
    d = decide(snapshot(led_backfill(), capacity=4, queue=Queue(regular, ())), [], LIMITS, NOW)
    assert d.start == ("regular-0", "regular-1", "regular-2")
    assert [r.status for r in d.windows[0].rows].count("running") == 1  # the fourth slot
    assert set(d.jobs) == {r.run_id for r in d.windows[0].rows if r.status == "running"}  # queued: read later


def test_every_limit_holds_across_queued_new_and_running_runs():
    running = [ActiveRun("daily", "bf", keys=("2024-01-01",)), ActiveRun("daily", "bf", keys=("2024-01-02",))]
    led = led_backfill(cursor=2, active=2)
    d = decide(snapshot(led, queue=Queue((), running)), [], QueueLimits(max_concurrent_runs=3), NOW)
    assert [r.status for r in d.windows[0].rows].count("running") == 1
    job = RunJob("known", 1, daily, ("2024-01-05",), None, datetime.now(timezone.utc), None, {}, {}, "bf", {}, 1000)
    led.memory.jobs["known"] = job
    d = decide(snapshot(replace(led, active=20), queue=Queue([queued("known", "bf", key="2024-01-05")], running)), [],
               LIMITS, NOW)
    assert d.start == ("known",) and d.jobs == {"known": job}


def test_runs_of_a_stopped_backfill_are_not_started():
    failing = led_backfill(policy="stop_on_failure", cursor=20, active=5, failed=1)
    d = decide(snapshot(failing, queue=Queue([queued("q", "bf")], ())), [], LIMITS, NOW)
    assert d.start == () and d.drop_queued == (("bf", "stopped after a failure"),)


def test_another_process_asked_to_cancel_runs_here():
    d = decide(snapshot(cancel_asked=("r1", "r2")), [], LIMITS, NOW)
    assert d.cancel_asked == ("r1", "r2") and d.writes
