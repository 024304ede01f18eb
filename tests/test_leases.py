"""Leases, fences and takeovers on a manual clock (``anachron.clock.ManualClock``): the lease lapses when the
test says the time has passed, not after real seconds — these run in milliseconds."""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter

import pytest

import anachron as ac
from anachron.clock import ManualClock
from anachron.lifecycle import takeover_grace
from helpers import wait_for, wait_until

LEASE = 30.0
KEYS = ["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"]
GATE = threading.Event()
EXECUTED: list[tuple[str, int]] = []


@ac.workflow(partitions=ac.DailyPartitions("2024-01-01", "2024-02-01"))
def gated():
    ctx = ac.context()
    GATE.wait(30)
    EXECUTED.append((ctx.partition_key, ctx.attempt))


@pytest.fixture(autouse=True)
def _reset():
    GATE.clear()
    EXECUTED.clear()
    yield
    GATE.set()


def freeze(repo) -> threading.Event:
    """Stop a repository's coordinator between two ticks, as a long GC pause or SIGSTOP would; set the event
    returned to let it go on."""
    thaw = threading.Event()
    coordinator = repo._coordinator
    tick = coordinator.tick

    def frozen(now):
        thaw.wait(60)
        return tick(coordinator.engine.now_ts())

    coordinator.tick = frozen
    return thaw


def let_time_pass(clock, seconds, *alive):
    """Move the clock on by ``seconds`` a quarter lease at a time, letting the coordinators that are not
    frozen tick (and renew their lease) in between, as time passing would."""
    while seconds > 0:
        step = min(seconds, LEASE / 4)
        clock.advance(step)
        seconds -= step
        for repo in alive:
            repo._coordinator.wake()
        threading.Event().wait(0.05)


def owner(repo, backfill_id):
    return repo.storage.run(lambda s: s.get_backfill(backfill_id), write=False).owner


def test_a_lease_lapses_when_the_clock_says_so_and_a_late_outcome_wins_the_grace(sqlite_url, make_repo, caplog):
    caplog.set_level(logging.INFO, logger="anachron")
    clock = ManualClock()
    leader = make_repo([gated], storage=sqlite_url, executor=ac.InProcessExecutor(2), clock=clock,
                       lease_seconds=LEASE)
    follower = make_repo([gated], storage=sqlite_url, executor=ac.InProcessExecutor(2), clock=clock,
                         lease_seconds=LEASE)
    result = leader.backfill(gated, partition_keys=KEYS, max_concurrency=2, block=False)
    wait_until(lambda: len(leader.list_runs(backfill_id=result.backfill_id, status="running")) == 2)
    thaw = freeze(leader)
    waited: dict = {}
    waiter = threading.Thread(target=lambda: waited.update(s=follower.wait_backfill(result.backfill_id, 30)))
    waiter.start()
    leader_id = owner(leader, result.backfill_id)
    assert not wait_for(lambda: owner(leader, result.backfill_id) != leader_id, timeout=0.5)  # lease alive

    let_time_pass(clock, LEASE + 1, follower)  # the frozen leader's lease lapses: the follower takes over
    assert wait_for(lambda: owner(leader, result.backfill_id) not in (None, leader_id), timeout=5)
    held = [r for r in follower.list_runs(backfill_id=result.backfill_id) if r.attempt == 2]
    assert len(held) == 2 and {r.status for r in held} == {"queued"}  # again, as attempt 2: held for the grace
    took = [r.getMessage() for r in caplog.records if r.getMessage().startswith("took backfill")]
    assert took == [f"took backfill {result.backfill_id} over from {leader_id} (its lease lapsed): 2 running run(s) "
                    f"queued again as a new attempt after {takeover_grace(LEASE):.1f} s, 2 queued run(s) moved here"]
    assert not wait_for(lambda: any(follower.get_run(r.run_id).status != "queued" for r in held), timeout=0.3)

    GATE.set()  # the runs the frozen leader was running finish: their outcomes wait in its memory
    wait_until(lambda: {key for key, _ in EXECUTED} == set(KEYS))
    thaw.set()  # it wakes up, finds its lease lapsed, records what it holds: attempt 2 had not started
    wait_until(lambda: all(follower.get_run(r.run_id).status == "success" for r in held))
    let_time_pass(clock, takeover_grace(LEASE), follower)
    waiter.join(30)
    assert waited["s"].status == "completed" and waited["s"].completed_partitions == len(KEYS)
    assert Counter(key for key, _ in EXECUTED) == Counter(KEYS)  # every key ran once
    runs = follower.list_runs(backfill_id=result.backfill_id, limit=None)
    assert sorted(r.partition_key for r in runs) == KEYS and all(r.status == "success" for r in runs)
    assert {r.attempt for r in runs} == {1}  # the late outcomes were kept: no second attempt ran


def test_a_backfill_taken_over_in_the_tick_that_records_one_of_its_runs_counts_that_run_once(sqlite_url, make_repo):
    """A process runs one run of a backfill whose leader froze (it adopted the run to wait for it), and is then
    asked to lead the backfill: the tick that records that run's outcome is the tick that takes the backfill
    over. The runs still active are counted once: before, the takeover counted the active runs after this
    tick's outcome was recorded and the tick subtracted the outcome again, so the backfill looked idle, ended
    ``canceled`` with a run still queued, and that run never started (the fault soak's backfill that ended
    canceled)."""
    clock = ManualClock()
    dead = make_repo([gated], storage=sqlite_url, executor=ac.InProcessExecutor(2), clock=clock,
                     lease_seconds=LEASE)
    heir = make_repo([gated], storage=sqlite_url, executor=ac.InProcessExecutor(2), clock=clock,
                     lease_seconds=LEASE)
    backfill_id = dead.backfill(gated, partition_keys=KEYS[:2], max_concurrency=2, block=False).backfill_id
    wait_until(lambda: len(dead.list_runs(backfill_id=backfill_id, status="running")) == 2)
    first = sorted(dead.list_runs(backfill_id=backfill_id), key=lambda r: r.partition_key)[0]
    thaw_dead = freeze(dead)
    try:
        threading.Thread(target=lambda: heir.wait_run(first.run_id, 30), daemon=True).start()
        let_time_pass(clock, LEASE + 1, heir)  # the leader's lease lapses: the heir adopts the run it waits for
        wait_until(lambda: heir.get_run(first.run_id).attempt == 2)
        let_time_pass(clock, takeover_grace(LEASE), heir)
        wait_until(lambda: heir.get_run(first.run_id).status == "running")  # its attempt 2, here

        thaw_heir = freeze(heir)
        GATE.set()  # the run finishes: its outcome waits for the heir's next tick ...
        coordinator = heir._coordinator
        wait_until(lambda: len(coordinator._results) == 1)
        waited: dict = {}
        waiter = threading.Thread(target=lambda: waited.update(s=heir.wait_backfill(backfill_id, 30)))
        waiter.start()  # ... and so does the request to lead the backfill
        wait_until(lambda: backfill_id in coordinator._adopt_backfills)
        thaw_heir.set()
        wait_until(lambda: backfill_id not in coordinator._adopt_backfills)  # the tick that took it over ran
        status = heir.get_backfill(backfill_id)
        assert (status.status, status.completed_partitions) == ("in_progress", 1), status  # one run still to do
        assert owner(heir, backfill_id) == coordinator.worker_id
        let_time_pass(clock, takeover_grace(LEASE), heir)
        waiter.join(30)
    finally:
        thaw_dead.set()
    assert waited["s"].status == "completed" and waited["s"].completed_partitions == 2
    assert {r.status for r in heir.list_runs(backfill_id=backfill_id)} == {"success"}


class PauseAfterRead:
    """A storage session after whose first read of a backfill a pause from another process commits — or tries
    to: it waits while the row is locked. On PostgreSQL (READ COMMITTED) a plain read holds nothing up."""

    def __init__(self, session, pause):
        self._s, self._pause, self.pausing = session, pause, None

    def __getattr__(self, name):
        return getattr(self._s, name)

    def get_backfill(self, backfill_id, **kwargs):
        record = self._s.get_backfill(backfill_id, **kwargs)
        if self.pausing is None:
            self.pausing = threading.Thread(target=self._pause)
            self.pausing.start()
            self.pausing.join(1.0)  # committed by now, unless it waits for a lock this transaction holds
        return record


def test_a_pause_committed_during_a_takeover_is_kept(storage_url, make_repo):
    """A process takes a requested backfill over (it reads the row, then takes the lease and marks it in
    progress) while a user pauses it: the pause stays. Before the takeover read the row again once it held it,
    the pause committed between its read and its move, and the move — from the status it had read — put the
    backfill back in progress: it ran to the end, and the API then found no paused backfill to unpause (a
    PostgreSQL-only flaky test, 1 in about 6)."""
    from anachron.engine.takeover import take_over

    creator = make_repo([gated], storage=storage_url, executor=ac.InProcessExecutor(1))
    user = make_repo([gated], storage=storage_url, executor=ac.InProcessExecutor(1))
    backfill_id = creator.backfill(gated, partition_keys=KEYS, block=False, coordinate=False).backfill_id
    assert creator.get_backfill(backfill_id).status == "requested"
    sessions = []

    def lead(s):
        sessions.append(PauseAfterRead(s, lambda: user.pause_backfill(backfill_id)))
        return take_over(sessions[0], owner="me", registry=creator.workflow_registry, backfills=[backfill_id],
                         runs=(), leading=(), live=frozenset({"me"}), now=time.time(), grace=1.0)

    taken = creator.storage.run(lead)
    sessions[0].pausing.join(30)
    assert creator.get_backfill(backfill_id).status == "paused"
    assert taken.led[backfill_id].record.status in ("requested", "paused")  # never moved on from what it read
    assert owner(creator, backfill_id) == "me"


def test_a_manual_clock_needs_an_executor_in_this_process(sqlite_url):
    with pytest.raises(ValueError, match="clock: .*InProcessExecutor"):
        ac.CodeRepository([gated], storage=sqlite_url, executor=ac.LocalExecutor(1), clock=ManualClock())
