"""The daemon with a controllable clock: live ticks, missed-tick recovery, overlap, pause and resume from
another repository, two daemons on one database, backfills and runs nobody leads. SQLite and PostgreSQL."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone

import pytest

import anachron as ac
import flows_daemon as fd
from conftest import FakeClock
from helpers import wait_until

UTC = timezone.utc
START = datetime(2026, 3, 2, 9, 2, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def _gate():
    fd.GATE.clear()
    yield
    fd.GATE.set()


@pytest.fixture
def clock():
    return FakeClock(START)


def tick(hour: int, minute: int) -> datetime:
    return datetime(2026, 3, 2, hour, minute, tzinfo=UTC)


def runs_of(repo, workflow, schedule_id=None, status=None):
    found = repo.list_runs(workflow=workflow, limit=None, status=status)
    if schedule_id is not None:
        found = [r for r in found if r.tags.get("anachron/schedule") == schedule_id]
    return sorted(found, key=lambda r: r.scheduled_time)


def settle(repo, workflow):
    wait_until(lambda: not repo.list_runs(workflow=workflow, status=["queued", "running"]), timeout=15)


def test_a_due_tick_runs_once_at_its_logical_time(storage_url, make_repo, clock, caplog):
    repo = make_repo([fd.every_five], storage=storage_url, executor=ac.InProcessExecutor(2), clock=clock)
    daemon = repo.daemon()
    caplog.set_level(logging.INFO, logger="anachron.daemon")
    assert daemon.step() <= 3 * 60  # first seen at 09:02: the next tick, 09:05, is due in 3 minutes
    assert repo.list_runs(workflow="every_five") == []
    clock.advance(3 * 60 + 0.4)
    daemon.step()
    settle(repo, "every_five")
    daemon.step()  # the same tick again: nothing new
    (run,) = repo.list_runs(workflow="every_five")
    assert run.status == "success" and run.scheduled_time == run.logical_time == tick(9, 5)
    assert run.idempotency_key == "schedule:schedule:2026-03-02T09:05:00+00:00"
    assert run.tags["anachron/schedule"] == "schedule"
    assert any("tick fired: every_five/schedule at 2026-03-02T09:05:00+00:00" in r.getMessage()
               for r in caplog.records)
    (status,) = repo.list_schedules()
    assert status.last_tick == tick(9, 5) and status.next_tick == tick(9, 10) and not status.paused


@pytest.mark.parametrize(("schedule_id", "expected"), [
    ("all", [tick(9, m) for m in (5, 10, 15, 20, 25, 30)]),
    ("last", [tick(9, 30)]),
    ("none", []),  # the latest tick is 3 minutes late by then: missed too
])
def test_ticks_missed_while_no_daemon_ran(sqlite_url, make_repo, clock, schedule_id, expected):
    first = make_repo([fd.recovering], storage=sqlite_url, executor=ac.InProcessExecutor(2), clock=clock)
    first.daemon().step()  # the schedules are seen at 09:02
    first.close()
    clock.advance(31 * 60)  # 09:33: six ticks passed with no daemon
    later = make_repo([fd.recovering], storage=sqlite_url, executor=ac.InProcessExecutor(4), clock=clock)
    later.daemon().step()
    settle(later, "recovering")
    assert [r.scheduled_time for r in runs_of(later, "recovering", schedule_id)] == expected
    (state,) = later.list_schedules("recovering")[["all", "last", "none"].index(schedule_id):][:1]
    assert state.next_tick == tick(9, 35)  # every policy moves on: nothing is evaluated twice
    assert state.last_tick == (expected[-1] if expected else None)  # the latest tick that ran


def test_none_still_runs_a_tick_that_is_on_time(sqlite_url, make_repo, clock):
    repo = make_repo([fd.recovering], storage=sqlite_url, executor=ac.InProcessExecutor(2), clock=clock)
    daemon = repo.daemon()
    daemon.step()
    clock.advance(28 * 60 + 5)  # 09:30:05: ticks 09:05 .. 09:25 missed, 09:30 on time
    daemon.step()
    settle(repo, "recovering")
    assert [r.scheduled_time for r in runs_of(repo, "recovering", "none")] == [tick(9, 30)]


def test_overlap_skip_buffer_allow(sqlite_url, make_repo, clock, caplog):
    repo = make_repo([fd.slow], storage=sqlite_url, executor=ac.InProcessExecutor(8), clock=clock)
    caplog.set_level(logging.INFO, logger="anachron.daemon")
    daemon = repo.daemon()
    daemon.step()
    clock.advance(3 * 60 + 1)  # 09:05: each schedule fires; the runs block on the gate
    daemon.step()
    wait_until(lambda: len(repo.list_runs(workflow="slow", status="running")) == 3)
    clock.advance(5 * 60)  # 09:10: every first run still running
    daemon.step()
    wait_until(lambda: len(runs_of(repo, "slow", "allow", "running")) == 2)
    assert [r.scheduled_time for r in runs_of(repo, "slow", "skip")] == [tick(9, 5)]
    assert any("slow/skip at 2026-03-02T09:10:00+00:00: the previous run is still active" in r.getMessage()
               for r in caplog.records)
    buffered = runs_of(repo, "slow", "buffer")
    assert [(r.scheduled_time, r.status) for r in buffered] == [(tick(9, 5), "running"), (tick(9, 10), "queued")]
    fd.GATE.set()
    settle(repo, "slow")
    buffered = runs_of(repo, "slow", "buffer")
    assert buffered[1].started_at >= buffered[0].ended_at  # it waited for the first, then ran
    assert all(r.status == "success" for r in repo.list_runs(workflow="slow", limit=None))


def test_overlap_skip_runs_recovered_ticks_one_at_a_time(storage_url, make_repo, clock, caplog):
    """A daemon back after downtime: with overlap="skip" the missed ticks do not all start at once; they run one
    after the other, and a live tick due while they do is skipped."""
    first = make_repo([fd.slow], storage=storage_url, executor=ac.InProcessExecutor(8), clock=clock)
    first.daemon().step()  # the schedules are seen at 09:02
    first.close()
    clock.advance(23 * 60 + 1)  # 09:25:01: five ticks (09:05 .. 09:25) passed with no daemon
    repo = make_repo([fd.slow], storage=storage_url, executor=ac.InProcessExecutor(16), clock=clock)
    caplog.set_level(logging.INFO, logger="anachron.daemon")
    daemon = repo.daemon()
    daemon.step()
    wait_until(lambda: len(runs_of(repo, "slow", "allow", "running")) == 5)  # allow: all at once
    for schedule_id in ("skip", "buffer"):
        assert [r.status for r in runs_of(repo, "slow", schedule_id)] == ["running"] + ["queued"] * 4
    assert runs_of(repo, "slow", "skip", "running")[0].scheduled_time == tick(9, 5)  # oldest first
    clock.advance(5 * 60)  # 09:30:01, the recovered ticks still active: skip passes over the live tick
    daemon.step()
    assert len(runs_of(repo, "slow", "skip")) == 5 and len(runs_of(repo, "slow", "buffer")) == 6
    assert any("slow/skip at 2026-03-02T09:30:00+00:00: the previous run is still active" in r.getMessage()
               for r in caplog.records)
    fd.GATE.set()
    settle(repo, "slow")
    skipped = runs_of(repo, "slow", "skip")
    assert all(r.status == "success" for r in skipped)
    for before, after in zip(skipped, skipped[1:]):
        assert after.started_at >= before.ended_at  # never two at once


def test_pause_and_resume_from_another_process(storage_url, make_repo, clock, caplog):
    repo = make_repo([fd.every_five], storage=storage_url, executor=ac.InProcessExecutor(2), clock=clock)
    other = make_repo([fd.every_five], storage=storage_url, executor=ac.InProcessExecutor(1), clock=clock)
    caplog.set_level(logging.INFO, logger="anachron.daemon")
    daemon = repo.daemon()
    daemon.step()
    assert other.pause_schedule("every_five").paused
    assert repo.list_schedules()[0].paused  # every process sees it
    clock.advance(3 * 60 + 1)  # 09:05
    daemon.step()
    assert repo.list_runs(workflow="every_five") == []
    assert any("every_five/schedule at 2026-03-02T09:05:00+00:00: the schedule is paused" in r.getMessage()
               for r in caplog.records)
    assert not other.resume_schedule("every_five").paused
    clock.advance(5 * 60)  # 09:10
    daemon.step()
    settle(repo, "every_five")
    assert [r.scheduled_time for r in repo.list_runs(workflow="every_five")] == [tick(9, 10)]  # 09:05 not recovered


def test_two_daemons_run_each_tick_once(storage_url, make_repo, clock):
    first = make_repo([fd.every_five], storage=storage_url, executor=ac.InProcessExecutor(2), clock=clock)
    second = make_repo([fd.every_five], storage=storage_url, executor=ac.InProcessExecutor(2), clock=clock)
    a, b = first.daemon(), second.daemon()
    a.step()
    b.step()
    for _ in range(3):
        clock.advance(5 * 60)
        b.step()
        a.step()
        settle(first, "every_five")  # (overlap="skip": a tick would be passed over while the last one runs)
    ticks = [r.scheduled_time for r in first.list_runs(workflow="every_five", limit=None)]
    assert sorted(ticks) == [tick(9, 5), tick(9, 10), tick(9, 15)]


def test_a_time_partitioned_schedule_runs_the_partition_that_just_ended(sqlite_url, make_repo):
    clock = FakeClock(datetime(2026, 3, 1, 23, 59, tzinfo=UTC))
    repo = make_repo([fd.nightly_partition], storage=sqlite_url, executor=ac.InProcessExecutor(1), clock=clock)
    daemon = repo.daemon()
    daemon.step()
    clock.advance(90)
    daemon.step()
    settle(repo, "nightly_partition")
    (run,) = repo.list_runs(workflow="nightly_partition")
    assert run.partition_key == "2026-03-01" and run.scheduled_time == datetime(2026, 3, 2, tzinfo=UTC)
    assert run.status == "success"


def test_a_backfill_created_without_a_leader_is_led_by_the_daemon(storage_url, make_repo, clock):
    import flows_basic as fb

    creator = make_repo([fb.daily_etl], storage=storage_url, executor=ac.InProcessExecutor(1))
    result = creator.backfill("daily_etl", start="2024-01-01", end="2024-01-05", block=False, coordinate=False)
    creator.close()
    assert result.status == "requested"
    repo = make_repo([fb.daily_etl], storage=storage_url, executor=ac.InProcessExecutor(4))
    repo.daemon().step()
    final = repo.wait_backfill(result.backfill_id, timeout=20)  # a waiter that never leads: the daemon does
    assert final.status == "completed" and final.completed_partitions == 5


def test_a_run_whose_process_stopped_is_adopted(storage_url, make_repo, clock):
    fd.GATE.clear()
    stopped = make_repo([fd.slow], storage=storage_url, executor=ac.InProcessExecutor(1))
    run = stopped.run("slow", block=False)
    wait_until(lambda: stopped.get_run(run.run_id).status == "running", timeout=15)
    stopped.close()  # its process stops with the run unfinished: handed back, queued, no owner
    repo = make_repo([fd.slow], storage=storage_url, executor=ac.InProcessExecutor(2))
    handed = repo.get_run(run.run_id)
    assert handed.status == "queued" and handed.attempt == 2
    fd.GATE.set()
    repo.daemon().step()
    wait_until(lambda: repo.get_run(run.run_id).status == "success", timeout=15)


def test_a_schedule_that_cannot_run_unattended_is_refused(sqlite_url, make_repo):
    @ac.workflow(schedule=ac.Schedule("0 * * * *"))
    def needs_a_day(day: str):
        pass

    repo = make_repo([needs_a_day], storage=sqlite_url, executor=ac.InProcessExecutor(1))
    with pytest.raises(ValueError, match="needs_a_day.*default parameters.*day"):
        repo.daemon()


def test_schedule_status_for_an_unknown_schedule_names_it(sqlite_url, make_repo):
    repo = make_repo([fd.every_five], storage=sqlite_url, executor=ac.InProcessExecutor(1))
    with pytest.raises(ValueError, match="nightly"):
        repo.pause_schedule("every_five", "nightly")
    assert (timedelta(0) < (repo.list_schedules()[0].next_tick - datetime.now(UTC)) <= timedelta(minutes=5))


# -- schedule backfills and the live ticks ---------------------------------------------------------------
def test_a_schedule_backfill_and_the_daemon_run_each_tick_once(storage_url, make_repo, clock, caplog):
    caplog.set_level(logging.INFO, logger="anachron")
    repo = make_repo([fd.every_five], storage=storage_url, executor=ac.InProcessExecutor(4), clock=clock)
    daemon = repo.daemon()
    daemon.step()  # seen at 09:02
    clock.advance(31 * 60)  # 09:33: no daemon ran meanwhile; six ticks are due (recover_missed="all")
    planned = repo.backfill_schedule("every_five", start="2026-03-02T09:03:00+00:00",
                                     end="2026-03-02T09:31:00+00:00", block=False, coordinate=False)
    assert planned.num_partitions == 6
    daemon.step()  # fires the six ticks, then leads the backfill, whose runs are those same ticks
    final = repo.wait_backfill(planned.backfill_id, timeout=20)
    assert final.status == "completed" and final.completed_partitions == 6
    runs = repo.list_runs(workflow="every_five", limit=None)
    assert sorted(r.scheduled_time for r in runs) == [tick(9, m) for m in (5, 10, 15, 20, 25, 30)]
    assert {r.backfill_id for r in runs} == {planned.backfill_id} and all(r.status == "success" for r in runs)


def test_the_daemon_does_not_rerun_ticks_a_backfill_ran(sqlite_url, make_repo, clock, caplog):
    caplog.set_level(logging.INFO, logger="anachron.daemon")
    repo = make_repo([fd.every_five], storage=sqlite_url, executor=ac.InProcessExecutor(4), clock=clock)
    daemon = repo.daemon()
    daemon.step()
    clock.advance(31 * 60)
    result = repo.backfill_schedule("every_five", start="2026-03-02T09:03:00+00:00")  # runs 09:05 .. 09:30
    assert result.status == "completed" and result.completed == 6
    daemon.step()  # the same six ticks are due: each already has its run
    settle(repo, "every_five")
    assert len(repo.list_runs(workflow="every_five", limit=None)) == 6
    assert sum("tick already run" in r.getMessage() for r in caplog.records) == 6


def test_replaying_ticks_that_ran_runs_them_again_even_while_paused(sqlite_url, make_repo, clock):
    repo = make_repo([fd.every_five], storage=sqlite_url, executor=ac.InProcessExecutor(4), clock=clock)
    daemon = repo.daemon()
    daemon.step()
    clock.advance(3 * 60 + 1)
    daemon.step()  # 09:05 runs live
    settle(repo, "every_five")
    repo.pause_schedule("every_five")
    clock.advance(10 * 60)  # 09:15
    result = repo.backfill_schedule("every_five", start="2026-03-02T09:03:00+00:00")
    assert result.status == "completed" and result.completed == 3  # 09:05 (again), 09:10, 09:15
    runs = [r for r in repo.list_runs(workflow="every_five", limit=None) if r.backfill_id == result.backfill_id]
    assert sorted((r.scheduled_time, r.logical_time) for r in runs) == [(tick(9, m), tick(9, m)) for m in (5, 10, 15)]
    replayed = next(r for r in runs if r.scheduled_time == tick(9, 5))
    assert replayed.idempotency_key.startswith("backfill:")  # a replay of a tick that ran: a run of its own
    fresh = next(r for r in runs if r.scheduled_time == tick(9, 10))
    assert fresh.idempotency_key == "schedule:schedule:2026-03-02T09:10:00+00:00"  # shared with the live tick
    daemon.step()  # paused: nothing live
    assert len(repo.list_runs(workflow="every_five", limit=None)) == 4
