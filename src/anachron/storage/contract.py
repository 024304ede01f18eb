"""The storage contract: what the engine asks of storage, one protocol per concept (after APScheduler 4's
``DataStore``). ``Session`` (``session.py``, SQL on SQLite and PostgreSQL) implements it; the engine is typed
against ``StoreSession``, and the contract suite (``tests/test_storage.py`` and its neighbours) runs every method
on both databases.

Rules every implementation keeps:
- A session is one transaction (``Storage.run``); nothing is visible to others before it commits, and a method
  that fails leaves it to be rolled back whole (``savepoint`` undoes a part).
- Every status change is guarded: a row moves only from a status the lifecycle's transition table lets move to
  the new one (``anachron.lifecycle``), so an illegal move changes nothing and says so (``False``, or the rows
  that did move).
- Records in, records out (``anachron.records``): never rows or dicts. Times are Unix seconds.
- Driver errors leave ``Storage.run`` as ``StorageError``: ``StorageUnavailable`` (transient, after retries) or
  ``StorageRejected`` (deterministic).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import Protocol

from ..estimate import RunDuration
from ..records import (
    ActiveRun,
    AdoptedRuns,
    BackfillRecord,
    GridCount,
    GridRun,
    InFlight,
    LogLine,
    NewBackfill,
    NewRun,
    Outcome,
    QueuedRun,
    Recorded,
    RunCounts,
    RunFilter,
    RunRecord,
    RunRef,
    ScheduleState,
    Unfinished,
)


class RunStore(Protocol):
    """Runs: creating them (once by key where asked), reading them, finishing them (an outcome only from the
    attempt that ran), canceling and taking them over."""

    def insert_runs(self, rows: Sequence[NewRun]) -> None:
        ...

    def insert_runs_once(self, rows: Sequence[NewRun]) -> set[str]:
        """Insert runs whose idempotency key may already be taken (schedule ticks); those are left alone. Returns
        the ids of the runs inserted."""
        ...

    def insert_run_once(self, row: NewRun) -> RunRecord:
        """Insert a run with an idempotency key, or return the run that already has that key."""
        ...

    def get_run(self, run_id: str) -> RunRecord | None:
        ...

    def ids_matching(self, kind: str, fragment: str, limit: int) -> list[str]:
        """Up to ``limit`` run ids (``kind="run"``) or backfill ids that start or end with ``fragment``, in id
        order (a scan of the id column: for short ids typed by people, not for hot paths)."""
        ...

    def runs_by_id(self, run_ids: Sequence[str]) -> dict[str, RunRecord]:
        ...

    def run_by_idempotency_key(self, workflow: str, key: str) -> RunRecord | None:
        ...

    def list_runs(self, where: RunFilter) -> list[RunRecord]:
        ...

    def count_runs(self, where: RunFilter, cap: int) -> int:
        """How many runs ``where`` selects (its limit and offset ignored), counting at most ``cap`` of them: a
        paged list shows "10,000+" rather than scanning a table of millions."""
        ...

    def recent_run_durations(self, workflow: str, limit: int = ...) -> list[RunDuration]:
        """How long the newest ``limit`` successful runs of ``workflow`` took (``ended_at - started_at``) and how
        many keys each covered, newest first: an index walk of (workflow, seq) backwards."""
        ...

    def run_ids_of_backfill(self, backfill_id: str) -> list[str]:
        ...

    def active_runs(self, *, backfill_ids: Sequence[str] | None = None, owner: str | None = None,
                    run_ids: Sequence[str] | None = None) -> list[RunRef]:
        ...

    def run_logs(self, run_id: str) -> list[LogLine]:
        ...

    def lock_queue(self) -> bool:
        """Serialise claimers without waiting: whether this transaction now holds the queue's claim lock
        (``False``: another process is claiming right now; try again in a moment). A PostgreSQL row lock
        taken with ``SKIP LOCKED``; SQLite's write transaction already excludes every other writer."""
        ...

    def queued_runs(self, scan: int, with_tags: bool, now: float | None = None) -> list[QueuedRun]:
        """The first ``scan`` queued runs in (priority, age) order whose backfill (if any) is in progress and that
        may start at ``now`` (default: any time): not held back by ``not_before`` (a run taken over, in
        its grace) and not deferred to a later ``scheduled_time``."""
        ...

    def unfinished_in_plan(self, backfill_id: str, first: int, last: int) -> list[Unfinished]:
        """The runs of a backfill at plan indices ``first..last`` that have not succeeded: one range of the
        (backfill, status, plan index) index per status — a graph backfill's readiness, whatever its
        size."""
        ...

    def running_runs(self, with_tags: bool) -> list[ActiveRun]:
        ...

    def start_runs(self, run_ids: Sequence[str], owner: str, now: float) -> set[str]:
        """Move queued runs ``owner`` owns to running; returns the ids that moved (not one finished meanwhile,
        nor one another process took over since the claim read it: its claimer froze between the two)."""
        ...

    def record_outcomes(self, outcomes: Sequence[Outcome], owner: str, inflight: Mapping[str, InFlight],
                        now: float) -> list[Recorded]:
        """Record what an executor reported for runs ``owner`` runs (``inflight`` says which attempt and backfill
        each is). Recorded: the current attempt of a still-active run still owned by ``owner``, or the
        attempt before a run's current one when that one has not started (``lifecycle``: a late outcome
        of a stalled owner). Returns those recorded, with the backfill each counts for."""
        ...

    def finish_runs(self, outcomes: Sequence[Outcome], now: float) -> list[Outcome]:
        """Record decisions about active runs (a cancel, a stop), whoever executes them. A run that has already
        finished, or whose attempt differs from the outcome's, is left alone."""
        ...

    def request_cancel(self, run_ids: Sequence[str]) -> None:
        """Mark running runs for their executing process to stop (it reads ``cancel_requested_runs``)."""
        ...

    def cancel_requested_runs(self, owner: str) -> list[str]:
        ...

    def adopt_runs(self, owner: str, now: float, live: frozenset[str], *, backfill_ids: Sequence[str] = (),
                   run_ids: Sequence[str] = (), grace: float = 0.0) -> AdoptedRuns:
        """Take over the active runs of dead owners (see ``requeue``). A run that was running is queued as a new
        attempt that does not start before ``now + grace``: its old owner may still report its outcome
        (its process stalled, or storage was unreachable), which is then accepted instead."""
        ...

    def reclaim_runs(self, owner: str, now: float, grace: float = 0.0) -> AdoptedRuns:
        """After ``owner`` lost its lease: its active runs are treated as orphans and taken back."""
        ...

    def requeue(self, run_ids: Sequence[str], attempts: Mapping[str, int], owner: str) -> list[str]:
        """Queue running runs again as a new attempt (their execution was lost, not finished)."""
        ...

    def hand_back(self, owner: str, now: float) -> list[tuple[str, str | None]]:
        """At a clean exit: ``owner``'s active runs go back to the queue with no owner — running ones as a new
        attempt, those with a cancel pending canceled — for a daemon or the next process waiting on them
        to run at once. Returns ``(run id, backfill id)`` of each."""
        ...

class BackfillStore(Protocol):
    """Backfills: their rows, counters, cursor and lease; every status change guarded by the lifecycle."""

    def insert_backfill(self, row: NewBackfill) -> BackfillRecord:
        """Insert a backfill; with an idempotency key already taken, return the backfill that has it."""
        ...

    def get_backfill(self, backfill_id: str, *, for_update: bool = False) -> BackfillRecord | None:
        ...

    def backfill_by_idempotency_key(self, key: str) -> BackfillRecord | None:
        ...

    def list_backfills(self, statuses: Sequence[str] = (), workflow: str | None = None,
                       limit: int | None = None, offset: int = 0,
                       tags: Mapping[str, str] | None = None) -> list[BackfillRecord]:
        ...

    def count_backfills(self, statuses: Sequence[str] = (), workflow: str | None = None,
                        tags: Mapping[str, str] | None = None, cap: int = 10_000) -> int:
        """How many backfills ``list_backfills`` would list without a limit, counting at most ``cap``."""
        ...

    def workflow_counts(self, backfill_id: str) -> dict[str, dict[str, int]]:
        """Per workflow of a backfill: how many partitions its runs cover, by status (one grouped read of the
        backfill's runs: asked for backfills of several workflows)."""
        ...

    def run_counts(self, backfill_ids: Sequence[str]) -> dict[str, RunCounts]:
        """Queued and running runs of each backfill."""
        ...

    def move_backfill(self, backfill_id: str, status: str, now: float, *, owner: str | None = ...,
                      expect_owner: str | None = ..., cancel_requested: bool = ..., canceled: int = ...,
                      error: str | None = ..., ended_at: float | None = ...) -> bool:
        """Move a backfill to ``status`` (with the other fields given) if the lifecycle allows it from its current
        status (``lifecycle.BACKFILL_TRANSITIONS``; staying in it is allowed) and, with
        ``expect_owner``, only while that process leads it. Whether it moved."""
        ...

    def end_backfill(self, backfill_id: str, owner: str, status: str, canceled: int, error: str | None,
                     now: float) -> bool:
        """End a backfill ``owner`` leads: its final status and counts, and no leader any more."""
        ...

    def cancel_runs_of_backfill(self, backfill_id: str, why: str, now: float, queued_only: bool = False) -> list[str]:
        """Cancel a backfill's active runs (or only its queued ones), whoever runs them; their ids."""
        ...

    def acquire_backfill(self, backfill_id: str, owner: str, live: frozenset[str], now: float) -> bool:
        """Take the backfill's lease when it has no live owner (or already is ours)."""
        ...

    def release_backfills(self, owner: str) -> None:
        ...

    def backfills_owned_by(self, owner: str) -> list[BackfillRecord]:
        ...

    def active_counts(self, owner: str) -> dict[str, int]:
        """Queued + running runs of each backfill ``owner`` leads (whoever executes them: a tick run the daemon
        created may have joined one)."""
        ...

    def count_outcomes(self, backfill_id: str, completed: int, failed: int, canceled: int, now: float) -> None:
        """Add to a backfill's counters (runs it took over that had already finished)."""
        ...

    def advance_cursor(self, backfill_id: str, owner: str, old: int, new: int, now: float) -> bool:
        """Move a backfill's cursor, only if ``owner`` still leads it, nobody moved it meanwhile and it is still in
        progress (not paused or canceled since it was read)."""
        ...

    def succeeded_keys_of_backfill(self, backfill_id: str) -> set[tuple[str, str]]:
        """(workflow, key) of every key a run of the backfill completed (schedule ticks as their key; a run without
        keys or tick as ``""``, the node an unpartitioned workflow is in a graph)."""
        ...

    def backfill_grid_counts(self, backfill_id: str, cell_size: int, created: int) -> list[GridCount]:
        """Per cell of ``cell_size`` consecutive plan indices and per status, how many of the backfill's first
        ``created`` runs did **not** succeed — nothing else is counted: in a big backfill nearly every
        run succeeded, and the rest of a cell is its successes (``anachron.grid``). The statuses are
        named (an ``IN`` list, not ``<> 'success'``) so the read is a few ranges of the (backfill,
        status, plan_index) index and costs as much as the runs counted. Runs at ``created`` and beyond
        (created after the caller read the cursor) are left out, so the counts agree with that cursor."""
        ...

    def backfill_grid_runs(self, backfill_id: str, created: int, limit: int, first: int = 0) -> list[GridRun]:
        """The backfill's runs from plan index ``first`` up to ``created`` (at most ``limit``) in plan order, one
        grid cell each. Only a one-key run's key is read (a run of many keys may list a million: its
        first and last come from the plan)."""
        ...

class LeaseStore(Protocol):
    """Leases: one per process (renewed while it lives), and shared duties held under them."""

    def register_worker(self, worker_id: str, hostname: str, pid: int, now: float, expires_at: float) -> None:
        ...

    def renew_lease(self, worker_id: str, now: float, expires_at: float) -> bool:
        """Extend a lease that has not lapsed; ``False`` when it lapsed (others may have taken over)."""
        ...

    def remove_worker(self, worker_id: str) -> None:
        ...

    def live_worker_ids(self, now: float) -> frozenset[str]:
        ...

    def expire_dead_workers(self, before: float) -> list[str]:
        ...

    def lead(self, name: str, worker_id: str, now: float) -> bool:
        """Take or keep the duty ``name`` for ``worker_id``: granted when nobody holds it, when this worker already
        does, or when its holder's lease has lapsed (the holder died or froze). Whether granted."""
        ...

    def leader_of(self, name: str) -> tuple[str, float] | None:
        """The worker holding the duty ``name`` and since when (its lease may have lapsed)."""
        ...

    def resign(self, name: str, worker_id: str) -> None:
        """Give the duty up (at a clean exit), so another process takes it at once."""
        ...

class ScheduleStore(Protocol):
    """Schedules' shared state, and what the daemon looks out for."""

    def schedule_states(self) -> dict[tuple[str, str], ScheduleState]:
        ...

    def init_schedules(self, keys: Sequence[tuple[str, str]], cursor: float | None, now: float) -> None:
        """Rows for schedules that have none yet (not paused, at ``cursor``); existing rows are kept."""
        ...

    def set_schedule_paused(self, workflow: str, schedule_id: str, paused: bool, now: float) -> bool:
        """Pause or resume a schedule; whether that changed anything."""
        ...

    def lock_schedule(self, workflow: str, schedule_id: str, now: float) -> None:
        """Hold the schedule's row lock until the transaction ends (its row created first if need be, as a pause
        would): what is decided about the schedule's backfills is decided by one process at a time."""
        ...

    def advance_schedules(self, cursors: Sequence[tuple[str, str, float]], now: float) -> None:
        """Move each ``(workflow, schedule id)`` cursor forward to the given tick (never back)."""
        ...

    def active_schedule_runs(self) -> set[tuple[str, str]]:
        """``(workflow, schedule id)`` of every schedule with a queued or running tick run."""
        ...

    def last_ticks(self, schedules_: Sequence[tuple[str, str]]) -> dict[tuple[str, str], float]:
        """``(workflow, schedule id)`` → the latest tick that has a run (live, or a backfill's sharing its key),
        read off the tick runs' keys (``schedule:<id>:<tick>``, in time order) by the (workflow, key)
        index. Schedules none of whose ticks has run are left out."""
        ...

    def taken_tick_keys(self, workflow: str, first: str, last: str) -> set[str]:
        """The idempotency keys from ``first`` to ``last`` (tick run keys of one schedule) that runs have."""
        ...

    def tick_statuses(self, workflow: str, first: str, last: str) -> dict[str, str]:
        """Tick (``schedules.tick_key``) → the status of the latest run of that tick, live or backfilled, for the
        ticks from ``first`` to ``last``; canceled runs do not count (as for partitions)."""
        ...

    def unled_backfills(self, now: float) -> list[str]:
        """Backfills waiting for a leader: requested, or in progress under a process whose lease ran out."""
        ...

    def orphan_runs(self, now: float) -> list[str]:
        """Active runs outside any backfill whose process is gone (a backfill's are adopted with it)."""
        ...

    def attach_runs(self, backfill_id: str, workflow: str, keys: Sequence[str],
                    plan_indexes: Mapping[str, int] | None = None) -> list[tuple[str, str]]:
        """Make the runs with these idempotency keys (tick runs that another process created first) part of a
        backfill, unless they already belong to one; returns ``(run id, status)`` of those attached.
        ``plan_indexes``: idempotency key → the run's position in the backfill's plan."""
        ...

class PartitionStore(Protocol):
    """Each key's status, and the keys of dynamic partitions."""

    def partition_statuses(self, workflow: str, keys: Sequence[str] | None = None) -> dict[str, str]:
        """key → status of the latest run that covered it (one row per key that has runs). ``keys`` limits it to
        those keys. Canceled runs do not count; a key a run marked failed is ``failed``."""
        ...

    def dynamic_keys(self, names: Iterable[str] | None = None) -> dict[str, list[str]]:
        ...

    def add_dynamic_keys(self, name: str, keys: Sequence[str]) -> int:
        ...

    def delete_dynamic_key(self, name: str, key: str) -> bool:
        ...

class UpkeepStore(Protocol):
    """Task pools (slots shared by every process) and administration."""

    def try_acquire_slot(self, pool: str, size: int, run_id: str, now: float) -> int | None:
        ...

    def release_orphan_slots(self) -> None:
        """Free slots whose holder is no longer running (killed, canceled, requeued before its release)."""
        ...

    def release_slot(self, pool: str, slot: int, run_id: str) -> None:
        ...

    def prune_runs(self, before: float, limit: int) -> list[str]:
        """Delete up to ``limit`` runs that ``count_prunable`` counts, oldest first, with their keys and logs;
        returns their ids."""
        ...

    def count_prunable(self, before: float) -> int:
        """How many finished runs ended (or were created, if they have no end) before ``before`` and are the latest
        run of none of their keys: the runs ``prune_runs`` deletes."""
        ...

    def schema_revision(self) -> str | None:
        ...


class StoreSession(RunStore, BackfillStore, LeaseStore, ScheduleStore, PartitionStore, UpkeepStore, Protocol):
    """One transaction of the storage contract."""

    def savepoint(self, lazy: bool = False) -> AbstractContextManager[None]:
        """Writes undone together if the database refuses one of them for good (``StorageRejected``); the rest
        of the transaction goes on."""
        ...
