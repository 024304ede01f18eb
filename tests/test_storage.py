"""The storage contract: ``Session`` called directly, every behaviour on SQLite and on PostgreSQL."""

from __future__ import annotations

import json

import pytest

from anachron.records import InFlight, NewBackfill, NewRun, Outcome, QueuedRun, RunFilter
from anachron.storage import Storage, StorageRejected, StorageUnavailable

NOW = 1_700_000_000.0


@pytest.fixture
def storage(storage_url):
    s = Storage(storage_url)
    yield s
    s.close()


def run(run_id: str, workflow: str = "wf", *, keys=("k",), status: str = "queued", priority: int = 0,
        backfill_id: str | None = None, idem: str | None = None, owner: str | None = "me", tags=None,
        created: float = NOW, params: str = "{}") -> NewRun:
    return NewRun(run_id, workflow, status, tuple(keys), params, json.dumps(tags or {}, separators=(",", ":")),
                  priority, backfill_id, idem, 1, created, None, None, None, created, None, "{}", owner)


def backfill(backfill_id: str, workflows=("wf",), *, idem: str | None = None, status: str = "requested",
             total: int = 10) -> NewBackfill:
    return NewBackfill(backfill_id, status, tuple(workflows), {"plan": {}}, total, total, 4, -10, {"team": "a"},
                       idem, NOW)


def write(storage, fn):
    with storage.write() as s:
        return fn(s)


def read(storage, fn):
    with storage.read() as s:
        return fn(s)


# -- runs -------------------------------------------------------------------------------------------
def test_runs_round_trip_with_their_keys(storage):
    write(storage, lambda s: s.insert_runs([run("one"), run("many", keys=("a", "b", "c")),
                                             run("none", keys=())]))
    got = read(storage, lambda s: s.runs_by_id(["one", "many", "none", "missing"]))
    assert got["one"].keys == ("k",) and got["one"].partition_key == "k"
    assert got["many"].keys == ("a", "b", "c") and got["many"].partition_key is None
    assert got["none"].keys == () and "missing" not in got
    one = read(storage, lambda s: s.get_run("one"))
    assert one.status == "queued" and one.owner == "me" and one.cancel_requested is False and one.attempt == 1
    assert read(storage, lambda s: s.get_run("nope")) is None


def test_list_runs_filters_in_the_database(storage):
    tricky = {"team": 'a "quoted", value %_', "env": "prod", "ü": "ë"}
    write(storage, lambda s: s.insert_runs([
        run("a", tags=tricky), run("b", tags={"team": "a"}), run("c", workflow="other", tags={"team": "a"}),
        run("d", tags={"x": '"team":"a"'}, backfill_id="bf"), run("e", status="failed", tags={"env": "prod"})]))

    def ids(**kw):
        return [r.run_id for r in read(storage, lambda s: s.list_runs(RunFilter(**kw)))]

    assert ids() == ["e", "d", "c", "b", "a"]  # newest first
    assert ids(workflow="wf", limit=2) == ["e", "d"]
    assert ids(statuses=("failed",)) == ["e"]
    assert ids(backfill_id="bf") == ["d"]
    assert ids(tags={"team": "a"}) == ["c", "b"]  # not d, whose *value* contains the text "team":"a"
    assert ids(tags={"team": 'a "quoted", value %_'}) == ["a"]
    assert ids(tags={"env": "prod", "ü": "ë"}) == ["a"]
    assert ids(tags={"env": "prod"}) == ["e", "a"]
    assert ids(tags={"team": "a", "workflow": "x"}) == []


def test_recent_run_durations_are_the_newest_successful_runs_of_the_workflow(storage):
    def done(run_id, took, *, status="success", workflow="wf", keys=("k",), started=NOW):
        return run(run_id, workflow, keys=keys, status=status)._replace(
            started_at=started, ended_at=None if took is None else started + took)

    write(storage, lambda s: s.insert_runs([
        done("old", 1.5), done("batch", 12.0, keys=("a", "b", "c")), done("tick", 0.25, keys=()),
        done("failed", 99.0, status="failed"), done("canceled", 98.0, status="canceled"),
        done("still-running", None, status="running"), done("other-wf", 97.0, workflow="other"),
        done("newest", 3.0, started=NOW + 60)]))
    got = read(storage, lambda s: s.recent_run_durations("wf"))
    assert got == [(3.0, 1), (0.25, 0), (12.0, 3), (1.5, 1)]  # newest first: (seconds, partitions covered)
    assert isinstance(got[0].seconds, float) and got[0].partitions == 1
    assert read(storage, lambda s: s.recent_run_durations("wf", limit=2)) == [(3.0, 1), (0.25, 0)]
    assert read(storage, lambda s: s.recent_run_durations("other")) == [(97.0, 1)]
    assert read(storage, lambda s: s.recent_run_durations("nobody")) == []


def test_an_idempotency_key_gives_one_run(storage):
    first = write(storage, lambda s: s.insert_run_once(run("first", idem="job-1")))
    again = write(storage, lambda s: s.insert_run_once(run("second", idem="job-1")))
    assert first.run_id == again.run_id == "first"
    other_workflow = write(storage, lambda s: s.insert_run_once(run("third", workflow="other", idem="job-1")))
    assert other_workflow.run_id == "third"


def test_a_refused_write_inside_a_savepoint_leaves_the_rest(storage):
    def tx(s):
        s.insert_runs([run("kept")])
        with pytest.raises(StorageRejected):
            with s.savepoint():
                s.insert_runs([run("dup-1", idem="same"), run("dup-2", idem="same")])
        s.insert_runs([run("after")])

    write(storage, tx)
    assert set(read(storage, lambda s: s.runs_by_id(["kept", "after", "dup-1", "dup-2"]))) == {"kept", "after"}


# -- the queue ----------------------------------------------------------------------------------------
def test_queue_candidates_in_priority_then_age_order(storage):
    write(storage, lambda s: (s.insert_backfill(backfill("live", status="in_progress")),
                              s.insert_backfill(backfill("held", status="paused"))))
    write(storage, lambda s: s.insert_runs([
        run("low", priority=-10), run("high", priority=5, tags={"t": "1"}), run("mid-old", keys=("x", "y")),
        run("mid-new"), run("paused-one", backfill_id="held"), run("live-one", backfill_id="live"),
        run("running", status="running")]))
    queued = read(storage, lambda s: s.queued_runs(10, with_tags=True, now=NOW))
    assert [q.run_id for q in queued] == ["high", "mid-old", "mid-new", "live-one", "low"]
    assert isinstance(queued[0], QueuedRun) and queued[0].tags == {"t": "1"} and queued[1].keys == ("x", "y")
    assert queued[3].backfill_max_concurrency == 4
    assert read(storage, lambda s: s.queued_runs(10, with_tags=False, now=NOW))[0].tags == {}
    first_two = read(storage, lambda s: s.queued_runs(2, with_tags=False, now=NOW))
    assert [q.run_id for q in first_two] == ["high", "mid-old"]
    (active,) = read(storage, lambda s: s.running_runs(with_tags=False))
    assert active.workflow == "wf" and active.keys == ("k",)


def test_start_only_moves_queued_runs(storage):
    write(storage, lambda s: s.insert_runs([run("q"), run("r", status="running"), run("f", status="failed")]))
    assert write(storage, lambda s: (s.lock_queue(), s.start_runs(["q", "r", "f"], "me", NOW))[1]) == {"q"}
    q = read(storage, lambda s: s.get_run("q"))
    assert q.status == "running" and q.started_at == NOW


# -- finishing runs -----------------------------------------------------------------------------------
def test_outcomes_are_recorded_only_for_the_current_attempt_of_the_owner(storage):
    write(storage, lambda s: s.insert_backfill(backfill("bf")))
    write(storage, lambda s: s.insert_runs([
        run("ok", backfill_id="bf", status="running"), run("batch", keys=("a", "b", "c"), backfill_id="bf",
                                                           status="running"),
        run("stale", backfill_id="bf", status="running"), run("theirs", backfill_id="bf", status="running",
                                                             owner="other")]))
    inflight = {"ok": InFlight(1, "bf", 1), "batch": InFlight(1, "bf", 3), "stale": InFlight(2, "bf", 1),
                "theirs": InFlight(1, "bf", 1)}
    outcomes = [Outcome("ok", "success", None, 1, NOW, NOW + 1, ((NOW, "INFO", "hello"),)),
                Outcome("batch", "success", None, 1, NOW, NOW + 2, (), {"b": "bad b"}),
                Outcome("stale", "failed", "old attempt", 2, NOW, NOW + 1),
                Outcome("theirs", "success", None, 1, NOW, NOW + 1)]
    applied = write(storage, lambda s: s.record_outcomes(outcomes, "me", inflight, NOW + 5))
    assert sorted(o.run_id for o in applied) == ["batch", "ok"]
    assert read(storage, lambda s: s.get_run("stale")).status == "running"
    assert read(storage, lambda s: s.get_run("theirs")).status == "running"
    bf = read(storage, lambda s: s.get_backfill("bf"))
    assert (bf.completed, bf.failed, bf.canceled) == (3, 1, 0)  # ok + a, c succeeded; b marked failed
    assert [(line.level, line.message) for line in read(storage, lambda s: s.run_logs("ok"))] == [("INFO", "hello")]
    assert read(storage, lambda s: s.partition_statuses("wf", ["a", "b", "c"])) == {
        "a": "success", "b": "failed", "c": "success"}
    # a second report of the same outcome changes nothing
    assert write(storage, lambda s: s.record_outcomes(outcomes[:1], "me", inflight, NOW + 6)) == []
    assert read(storage, lambda s: s.get_backfill("bf")).completed == 3


def test_decisions_finish_active_runs_whoever_runs_them(storage):
    write(storage, lambda s: s.insert_runs([run("q"), run("r", status="running", owner="other"),
                                             run("done", status="success")]))
    applied = write(storage, lambda s: s.finish_runs(
        [Outcome(r, "canceled", "canceled") for r in ("q", "r", "done")], NOW))
    assert sorted(o.run_id for o in applied) == ["q", "r"]
    assert read(storage, lambda s: s.get_run("done")).status == "success"


def test_cancel_requests_reach_the_owner(storage):
    write(storage, lambda s: s.insert_runs([run("r", status="running"), run("q")]))
    write(storage, lambda s: s.request_cancel(["r", "q"]))
    assert read(storage, lambda s: s.cancel_requested_runs("me")) == ["r"]


# -- leases and takeover ------------------------------------------------------------------------------
def test_a_lapsed_lease_cannot_be_renewed(storage):
    write(storage, lambda s: s.register_worker("w1", "host", 1, NOW, NOW + 30))
    assert write(storage, lambda s: s.renew_lease("w1", NOW + 10, NOW + 40)) is True
    assert write(storage, lambda s: s.renew_lease("w1", NOW + 41, NOW + 71)) is False  # lapsed at NOW + 40
    assert read(storage, lambda s: s.live_worker_ids(NOW + 41)) == frozenset()
    write(storage, lambda s: s.register_worker("w1", "host", 1, NOW + 41, NOW + 71))  # starts over
    assert read(storage, lambda s: s.live_worker_ids(NOW + 41)) == {"w1"}
    assert write(storage, lambda s: s.expire_dead_workers(NOW + 100)) == ["w1"]


def test_adopting_a_dead_owners_runs(storage):
    write(storage, lambda s: s.insert_backfill(backfill("bf")))
    write(storage, lambda s: s.insert_runs([run("was-running", status="running", owner="dead", backfill_id="bf"),
                                             run("was-queued", owner="dead", backfill_id="bf"),
                                             run("alive", status="running", owner="live", backfill_id="bf"),
                                             run("doomed", status="running", owner="dead", backfill_id="bf")]))
    write(storage, lambda s: s.request_cancel(["doomed"]))
    adopted = write(storage, lambda s: s.adopt_runs("me", NOW, frozenset({"live", "me"}), backfill_ids=["bf"]))
    assert adopted.requeued == ("was-running",) and adopted.moved == ("was-queued",)
    assert adopted.canceled == ("doomed",)
    again = read(storage, lambda s: s.get_run("was-running"))
    assert (again.status, again.attempt, again.owner, again.started_at) == ("queued", 2, "me", None)
    assert read(storage, lambda s: s.get_run("alive")).owner == "live"


def test_requeue_and_reclaim_make_a_new_attempt(storage):
    write(storage, lambda s: s.insert_runs([run("a", status="running"), run("b", status="running"),
                                             run("c", status="running", owner="other")]))
    assert write(storage, lambda s: s.requeue(["a", "c"], {"a": 1, "c": 1}, "me")) == ["a"]
    reclaimed = write(storage, lambda s: s.reclaim_runs("me", NOW))
    assert reclaimed.requeued == ("b",) and reclaimed.moved == ("a",)
    assert read(storage, lambda s: s.get_run("b")).attempt == 2


def test_a_claim_starts_only_the_runs_its_claimer_still_owns(storage, storage_url):
    """A claimer frozen between reading the queue and starting what it chose (SIGSTOP, a long GC pause) may wake
    after another process took those runs over (its lease had lapsed): it starts none of them, and they wait for
    their new owner, who starts them. Before the start was guarded by the owner, the woken claimer started them
    as running under the new owner, who never ran them: the PostgreSQL freeze trials' stall (1 in about 70)."""
    write(storage, lambda s: s.insert_backfill(backfill("bf", status="in_progress")))
    write(storage, lambda s: s.insert_runs([run(r, owner="stalled", backfill_id="bf") for r in ("q1", "q2")]))
    successor = Storage(storage_url)

    def take_over() -> None:
        successor.run(lambda s: s.adopt_runs("me", NOW, frozenset({"me"}), backfill_ids=["bf"]))

    def mine(s) -> list[str]:
        return sorted(q.run_id for q in s.queued_runs(10, with_tags=False, now=NOW) if q.owner == "stalled")

    def stalled_claim(s) -> tuple[list[str], set[str]]:
        s.lock_queue()
        chosen = mine(s)
        take_over()  # PostgreSQL: the takeover is not held up by the claim's open transaction
        return chosen, s.start_runs(chosen, "stalled", NOW)

    try:
        if storage_url.startswith("postgresql"):
            chosen, started = write(storage, stalled_claim)
        else:  # one writer at a time: the takeover comes between the claim's read and its write
            chosen = read(storage, mine)
            take_over()
            started = write(storage, lambda s: s.start_runs(chosen, "stalled", NOW))
    finally:
        successor.close()
    assert chosen == ["q1", "q2"] and started == set()
    waiting = read(storage, lambda s: s.get_run("q1"))
    assert (waiting.status, waiting.owner, waiting.attempt) == ("queued", "me", 1)
    assert write(storage, lambda s: s.start_runs(["q1", "q2"], "me", NOW)) == {"q1", "q2"}


def test_a_late_outcome_wins_until_the_next_attempt_starts(storage):
    """A run taken over from a stalled owner is queued again as attempt 2, held for a grace period; the
    outcome of attempt 1 (the stalled owner wakes, or its worker records it) is accepted until attempt 2
    starts — then it is the run's outcome and attempt 2 never starts."""
    write(storage, lambda s: s.insert_backfill(backfill("bf", status="in_progress")))
    write(storage, lambda s: s.insert_runs([run(r, status="running", owner="stalled", backfill_id="bf")
                                             for r in ("late", "too-late")]))
    write(storage, lambda s: s.adopt_runs("me", NOW, frozenset({"me"}), backfill_ids=["bf"], grace=3.0))
    held = read(storage, lambda s: s.get_run("late"))
    assert (held.status, held.attempt, held.owner) == ("queued", 2, "me")
    assert read(storage, lambda s: s.queued_runs(10, with_tags=False, now=NOW + 2.9)) == []  # in its grace
    waiting = read(storage, lambda s: s.queued_runs(10, with_tags=False, now=NOW + 3.0))
    assert {q.run_id for q in waiting} == {"late", "too-late"}
    assert write(storage, lambda s: s.start_runs(["too-late"], "me", NOW + 3)) == {"too-late"}
    stale = {r: InFlight(1, "bf", 1) for r in ("late", "too-late")}
    recorded = write(storage, lambda s: s.record_outcomes(
        [Outcome("late", "success", attempt=1, ended_at=NOW + 1), Outcome("too-late", "success", attempt=1)],
        "stalled", stale, NOW + 4))
    assert [o.run_id for o in recorded] == ["late"]  # attempt 2 of "too-late" had started: refused
    late = read(storage, lambda s: s.get_run("late"))
    assert (late.status, late.attempt, late.ended_at) == ("success", 1, NOW + 1)
    assert read(storage, lambda s: s.get_backfill("bf")).completed == 1
    assert write(storage, lambda s: s.start_runs(["late"], "me", NOW + 5)) == set()  # never started again
    assert read(storage, lambda s: s.get_run("too-late")).status == "running"


def test_the_status_columns_refuse_what_the_lifecycle_does_not_know(storage):
    with pytest.raises(Exception, match="(?i)check|constraint"):
        write(storage, lambda s: s.insert_runs([run("odd", status="exploded")]))
    with pytest.raises(Exception, match="(?i)check|constraint"):
        write(storage, lambda s: s.insert_backfill(backfill("odd", status="exploded")))


# -- backfills ----------------------------------------------------------------------------------------
def test_backfills_round_trip_and_idempotency(storage):
    created = write(storage, lambda s: s.insert_backfill(backfill("b1", ("wf", "other"), idem="q1")))
    assert created.backfill_id == "b1" and created.workflows == ("wf", "other") and created.tags == {"team": "a"}
    again = write(storage, lambda s: s.insert_backfill(backfill("b2", idem="q1")))
    assert again.backfill_id == "b1"
    assert read(storage, lambda s: s.get_backfill("b2")) is None


def test_list_backfills_filters_in_the_database(storage):
    write(storage, lambda s: [s.insert_backfill(backfill(b, w, status=st)) for b, w, st in (
        ("b1", ("wf",), "completed"), ("b2", ("other", "wf"), "failed"), ("b3", ("other",), "completed"))])
    assert {b.backfill_id for b in read(storage, lambda s: s.list_backfills(workflow="wf"))} == {"b1", "b2"}
    assert [b.backfill_id for b in read(storage, lambda s: s.list_backfills(["failed"]))] == ["b2"]
    assert [b.backfill_id for b in read(storage, lambda s: s.list_backfills(["completed"], "other"))] == ["b3"]
    assert len(read(storage, lambda s: s.list_backfills(limit=2))) == 2


def test_leading_a_backfill(storage):
    write(storage, lambda s: s.insert_backfill(backfill("bf", status="in_progress")))
    assert write(storage, lambda s: s.acquire_backfill("bf", "me", frozenset({"me"}), NOW)) is True
    assert write(storage, lambda s: s.acquire_backfill("bf", "you", frozenset({"me", "you"}), NOW)) is False
    assert write(storage, lambda s: s.acquire_backfill("bf", "you", frozenset({"you"}), NOW)) is True  # me died
    assert write(storage, lambda s: s.advance_cursor("bf", "me", 0, 5, NOW)) is False  # not the owner
    assert write(storage, lambda s: s.advance_cursor("bf", "you", 0, 5, NOW)) is True
    assert write(storage, lambda s: s.advance_cursor("bf", "you", 0, 9, NOW)) is False  # moved meanwhile
    assert write(storage, lambda s: s.move_backfill("bf", "paused", NOW))
    assert write(storage, lambda s: s.advance_cursor("bf", "you", 5, 9, NOW)) is False  # paused
    assert not write(storage, lambda s: s.move_backfill("bf", "completed", NOW))  # the lifecycle's guard: paused
    assert write(storage, lambda s: s.move_backfill("bf", "paused", NOW))  # staying is allowed
    assert not write(storage, lambda s: s.move_backfill("bf", "in_progress", NOW, expect_owner="me"))  # not mine
    assert write(storage, lambda s: s.move_backfill("bf", "canceled", NOW, expect_owner="you", ended_at=NOW))
    assert not write(storage, lambda s: s.move_backfill("bf", "in_progress", NOW))  # ended: nothing moves
    write(storage, lambda s: s.insert_runs([run("r1", backfill_id="bf", owner="you"),
                                             run("r2", backfill_id="bf", owner="you", status="running")]))
    assert read(storage, lambda s: s.active_counts("you")) == {"bf": 2}
    counts = read(storage, lambda s: s.run_counts(["bf"]))["bf"]
    assert (counts.queued, counts.running) == (1, 1)
    assert [b.backfill_id for b in read(storage, lambda s: s.backfills_owned_by("you"))] == ["bf"]
    write(storage, lambda s: s.release_backfills("you"))
    assert read(storage, lambda s: s.get_backfill("bf")).owner is None


# -- partitions ---------------------------------------------------------------------------------------
def test_partition_status_is_the_latest_run_not_canceled(storage):
    write(storage, lambda s: s.insert_runs([
        run("1", keys=("a",), status="failed"), run("2", keys=("a",), status="success"),
        run("3", keys=("b",), status="success"), run("4", keys=("b",), status="canceled"),
        run("5", keys=("c", "d"), status="running"), run("6", keys=("d",), status="queued"),
        run("7", workflow="other", keys=("a",), status="failed")]))
    assert read(storage, lambda s: s.partition_statuses("wf")) == {
        "a": "success", "b": "success", "c": "running", "d": "queued"}
    assert read(storage, lambda s: s.partition_statuses("wf", ["b", "c", "zzz"])) == {"b": "success", "c": "running"}
    assert read(storage, lambda s: s.partition_statuses("other")) == {"a": "failed"}
    # a page in text order is read as a key range: keys between that were not asked for are left out
    assert read(storage, lambda s: s.partition_statuses("wf", ["a", "d"])) == {"a": "success", "d": "queued"}
    assert read(storage, lambda s: s.partition_statuses("wf", ["d", "a", "c"])) == {  # any order: key by key
        "a": "success", "c": "running", "d": "queued"}
    assert read(storage, lambda s: s.partition_statuses("wf", [])) == {}
    assert read(storage, lambda s: s.partition_statuses("other", ["a", "b"])) == {"a": "failed"}


def test_dynamic_keys_and_pool_slots(storage):
    assert write(storage, lambda s: s.add_dynamic_keys("customers", ["acme", "globex", "acme"])) == 2
    assert write(storage, lambda s: s.add_dynamic_keys("customers", ["acme", "initech"])) == 1
    assert read(storage, lambda s: s.dynamic_keys()) == {"customers": ["acme", "globex", "initech"]}
    assert write(storage, lambda s: s.delete_dynamic_key("customers", "globex")) is True
    first = write(storage, lambda s: s.try_acquire_slot("warehouse", 1, "r1", NOW))
    assert first == 0 and write(storage, lambda s: s.try_acquire_slot("warehouse", 1, "r2", NOW)) is None
    write(storage, lambda s: s.release_orphan_slots())  # r1 is not a running run: its slot is freed
    assert write(storage, lambda s: s.try_acquire_slot("warehouse", 1, "r2", NOW)) == 0


# -- retries ------------------------------------------------------------------------------------------
def _locked():
    import sqlite3

    from sqlalchemy.exc import OperationalError

    error = sqlite3.OperationalError("database is locked")
    error.sqlite_errorname = "SQLITE_BUSY"
    return OperationalError("UPDATE ...", {}, error)


def test_transient_errors_are_retried_then_reported(storage):
    calls = []

    def flaky(s):
        calls.append(1)
        if len(calls) < 3:
            raise _locked()
        return s.live_worker_ids(NOW)

    assert storage.run(flaky) == frozenset() and len(calls) == 3
    with pytest.raises(StorageUnavailable, match="database is locked"):
        storage.run(lambda s: (_ for _ in ()).throw(_locked()), patience=0.2)
    with pytest.raises(ZeroDivisionError):  # not a storage hiccup: reported at once
        storage.run(lambda s: 1 / 0)


# -- leaders and the claim lock -------------------------------------------------------------------------
def test_one_leader_per_duty_until_its_lease_lapses(storage):
    for worker, expires in (("a", NOW + 10), ("b", NOW + 100)):
        write(storage, lambda s, w=worker, e=expires: s.register_worker(w, "host", 1, NOW, e))
    assert write(storage, lambda s: s.lead("schedules:x", "a", NOW)) is True
    assert write(storage, lambda s: s.lead("schedules:x", "b", NOW + 1)) is False  # a's lease lives
    assert write(storage, lambda s: s.lead("schedules:y", "b", NOW + 1)) is True  # another duty
    assert write(storage, lambda s: s.lead("schedules:x", "a", NOW + 5)) is True  # kept, since unchanged
    assert read(storage, lambda s: s.leader_of("schedules:x")) == ("a", NOW)
    assert write(storage, lambda s: s.lead("schedules:x", "b", NOW + 11)) is True  # a's lease lapsed
    assert read(storage, lambda s: s.leader_of("schedules:x")) == ("b", NOW + 11)
    assert write(storage, lambda s: s.lead("schedules:x", "a", NOW + 11)) is False  # b's lease lives
    write(storage, lambda s: s.resign("schedules:x", "a"))  # not the holder: nothing happens
    assert read(storage, lambda s: s.leader_of("schedules:x")) == ("b", NOW + 11)
    write(storage, lambda s: s.resign("schedules:x", "b"))
    assert read(storage, lambda s: s.leader_of("schedules:x")) is None
    assert write(storage, lambda s: s.lead("schedules:x", "a", NOW + 12)) is True  # nobody holds it: granted


def test_the_claim_lock_never_waits(storage):
    """PostgreSQL: a claimer finds the lock held (SKIP LOCKED) instead of queueing behind the holder.
    SQLite: the write transaction is the lock (a second writer cannot even begin), so it is always held."""
    import threading

    holding, release = threading.Event(), threading.Event()

    def hold(s):
        assert s.lock_queue() is True
        holding.set()
        release.wait(10)

    holder = threading.Thread(target=write, args=(storage, hold))
    holder.start()
    try:
        assert holding.wait(10)
        if storage.url.startswith("postgresql"):
            import time

            started = time.monotonic()
            assert write(storage, lambda s: s.lock_queue()) is False
            assert time.monotonic() - started < 1
    finally:
        release.set()
        holder.join()
    assert write(storage, lambda s: s.lock_queue()) is True
