"""Runs: created (once by key where asked), read, queued and started, finished (each outcome guarded by its
attempt), canceled and taken over — a part of ``Session``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import and_, func, or_, select, update

from ..estimate import HISTORY_RUNS, RunDuration
from ..models import CANCELED, FAILED, QUEUED, RUNNING, SUCCESS, UPSTREAM_FAILED
from ..records import (
    EMPTY_TAGS,
    ActiveRun,
    AdoptedRuns,
    InFlight,
    LogLine,
    NewRun,
    Outcome,
    QueuedRun,
    Recorded,
    RunFilter,
    RunRecord,
    RunRef,
    Unfinished,
)
from ..schedules import SCHEDULE_KEY_PREFIX
from .codec import keys_columns, keys_of, run_record, tags_of
from .errors import StorageRejected
from .schema import (
    backfills,
    run_logs,
    run_partitions,
    runs,
)
from .sql import (
    _ACTIVE,
    _FINISHABLE,
    _NOT_SUCCESS,
    _REQUEUABLE,
    SqlRows,
    _chunks,
    _has_tag,
)


class RunRows(SqlRows):
    # -- creating runs -----------------------------------------------------------------------------
    def insert_runs(self, rows: Sequence[NewRun]) -> None:
        if not rows:
            return
        values, multi = _run_values(rows)
        self._st.insert_runs.execute(self.cursor, values)
        if multi:
            self._st.insert_run_partitions.execute(self.cursor, multi)

    def insert_runs_once(self, rows: Sequence[NewRun]) -> set[str]:
        """Insert runs whose idempotency key may already be taken (schedule ticks); those are left alone.
        Returns the ids of the runs inserted."""
        if not rows:
            return set()
        values, multi = _run_values(rows)
        inserted = {row[0] for row in self._st.insert_runs_once.returning(self.cursor, values)}
        multi = [m for m in multi if m[0] in inserted]
        if multi:
            self._st.insert_run_partitions.execute(self.cursor, multi)
        return inserted

    def insert_run_once(self, row: NewRun) -> RunRecord:
        """Insert a run with an idempotency key, or return the run that already has that key."""
        assert row.idempotency_key is not None
        try:
            with self.savepoint():
                self.insert_runs([row])
        except StorageRejected:  # another submitter took the key first (or the row was refused: raised below)
            found = self.run_by_idempotency_key(row.workflow, row.idempotency_key)
            if found is None:
                raise
            return found
        found = self.run_by_idempotency_key(row.workflow, row.idempotency_key)
        assert found is not None
        return found

    # -- reading runs ------------------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunRecord | None:
        row = self.conn.execute(select(runs).where(runs.c.run_id == run_id)).first()
        return run_record(row) if row is not None else None

    def ids_matching(self, kind: str, fragment: str, limit: int) -> list[str]:
        """Up to ``limit`` run ids (``kind="run"``) or backfill ids that start or end with ``fragment``, in id
        order (a scan of the id column: for short ids typed by people, not for hot paths)."""
        column = runs.c.run_id if kind == "run" else backfills.c.backfill_id
        query = (select(column).where(or_(column.startswith(fragment, autoescape=True),
                                          column.endswith(fragment, autoescape=True)))
                 .order_by(column).limit(limit))
        return [str(row[0]) for row in self.conn.execute(query)]

    def runs_by_id(self, run_ids: Sequence[str]) -> dict[str, RunRecord]:
        found: dict[str, RunRecord] = {}
        for chunk in _chunks(run_ids):
            for row in self.conn.execute(select(runs).where(runs.c.run_id.in_(chunk))):
                record = run_record(row)
                found[record.run_id] = record
        return found

    def run_by_idempotency_key(self, workflow: str, key: str) -> RunRecord | None:
        row = self.conn.execute(select(runs).where(runs.c.workflow == workflow,
                                                   runs.c.idempotency_key == key)).first()
        return run_record(row) if row is not None else None

    def list_runs(self, where: RunFilter) -> list[RunRecord]:
        query = select(runs).where(*_run_conditions(where)).order_by(runs.c.seq.desc())
        if where.limit is not None:
            query = query.limit(where.limit)
        if where.offset:
            query = query.offset(where.offset)
        return [run_record(r) for r in self.conn.execute(query)]

    def count_runs(self, where: RunFilter, cap: int) -> int:
        """How many runs ``where`` selects (its limit and offset ignored), counting at most ``cap`` of them:
        a paged list shows "10,000+" rather than scanning a table of millions."""
        found = select(runs.c.seq).where(*_run_conditions(where)).limit(cap).subquery()
        return int(self.conn.execute(select(func.count()).select_from(found)).scalar_one())

    def recent_run_durations(self, workflow: str, limit: int = HISTORY_RUNS) -> list[RunDuration]:
        """How long the newest ``limit`` successful runs of ``workflow`` took (``ended_at - started_at``) and
        how many keys each covered, newest first: an index walk of (workflow, seq) backwards."""
        query = (select(runs.c.ended_at - runs.c.started_at, runs.c.num_partitions)
                 .where(runs.c.workflow == workflow, runs.c.status == SUCCESS, runs.c.started_at.is_not(None),
                        runs.c.ended_at.is_not(None))
                 .order_by(runs.c.seq.desc()).limit(limit))
        return [RunDuration(float(seconds), int(n)) for seconds, n in self.conn.execute(query)]

    def run_ids_of_backfill(self, backfill_id: str) -> list[str]:
        return [row[0] for row in self._st.run_ids_of_backfill.execute(self.cursor, (backfill_id,)).fetchall()]

    def active_runs(self, *, backfill_ids: Sequence[str] | None = None, owner: str | None = None,
                    run_ids: Sequence[str] | None = None) -> list[RunRef]:
        query = select(runs.c.run_id, runs.c.status, runs.c.owner, runs.c.backfill_id, runs.c.cancel_requested,
                       runs.c.attempt).where(_ACTIVE)
        if backfill_ids is not None:
            query = query.where(runs.c.backfill_id.in_(list(backfill_ids)))
        if owner is not None:
            query = query.where(runs.c.owner == owner)
        if run_ids is not None:
            query = query.where(runs.c.run_id.in_(list(run_ids)))
        return [RunRef(r[0], r[1], r[2], r[3], bool(r[4]), r[5]) for r in self.conn.execute(query.with_for_update())]

    def run_logs(self, run_id: str) -> list[LogLine]:
        return [LogLine(*r) for r in self.conn.execute(
            select(run_logs.c.attempt, run_logs.c.ts, run_logs.c.level, run_logs.c.message)
            .where(run_logs.c.run_id == run_id).order_by(run_logs.c.id))]

    # -- the queue: candidates in, chosen runs started (the choice is the engine's) ----------------
    def lock_queue(self) -> bool:
        """Serialise claimers without waiting: whether this transaction now holds the queue's claim lock
        (``False``: another process is claiming right now; try again in a moment). A PostgreSQL row lock
        taken with ``SKIP LOCKED``; SQLite's write transaction already excludes every other writer."""
        return self._st.lock_queue.execute(self.cursor).fetchone() is not None

    def queued_runs(self, scan: int, with_tags: bool, now: float | None = None) -> list[QueuedRun]:
        """The first ``scan`` queued runs in (priority, age) order whose backfill (if any) is in progress and
        that may start at ``now`` (default: any time): not held back by ``not_before`` (a run taken over, in its
        grace) and not deferred to a later ``scheduled_time``."""
        rows = self._st.queued.execute(self.cursor, (1e18 if now is None else now, scan)).fetchall()
        return [QueuedRun(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], tags_of(r[8]) if with_tags else EMPTY_TAGS,
                          keys_of(r[9], r[10]), r[11]) for r in rows]

    def unfinished_in_plan(self, backfill_id: str, first: int, last: int) -> list[Unfinished]:
        """The runs of a backfill at plan indices ``first..last`` that have not succeeded: one range of the
        (backfill, status, plan index) index per status — a graph backfill's readiness, whatever its size."""
        query = (select(runs.c.plan_index, runs.c.workflow, runs.c.status, runs.c.partition_key)
                 .where(runs.c.backfill_id == backfill_id, runs.c.status.in_(_NOT_SUCCESS),
                        runs.c.plan_index >= first, runs.c.plan_index <= last))
        return [Unfinished(*row) for row in self.conn.execute(query)]

    def running_runs(self, with_tags: bool) -> list[ActiveRun]:
        rows = self._st.running.execute(self.cursor).fetchall()
        return [ActiveRun(r[0], r[1], tags_of(r[2]) if with_tags else EMPTY_TAGS, keys_of(r[3], r[4])) for r in rows]

    def start_runs(self, run_ids: Sequence[str], owner: str, now: float) -> set[str]:
        """Move queued runs ``owner`` owns to running; returns the ids that moved (not one finished meanwhile,
        nor one another process took over since the claim read it)."""
        if not run_ids:
            return set()
        return {row[0] for row in self._st.start_many.returning(self.cursor, run_ids, head=(now, owner))}

    # -- finishing runs ----------------------------------------------------------------------------
    def record_outcomes(self, outcomes: Sequence[Outcome], owner: str, inflight: Mapping[str, InFlight],
                        now: float) -> list[Recorded]:
        """Record what an executor reported for runs ``owner`` runs (``inflight`` says which attempt and
        backfill each is). Recorded: the current attempt of a still-active run still owned by ``owner``, or
        the attempt before a run's current one when that one has not started (``lifecycle``: a late outcome
        of a stalled owner). Returns those recorded, with the backfill each counts for."""
        if not outcomes:
            return []
        unique = {o.run_id: o for o in outcomes}  # one outcome per run (a report repeated by mistake is one)
        outcomes = [o if o.ended_at is not None else o._replace(ended_at=now) for o in unique.values()]
        rows = [(o.run_id, o.status, o.error, o.ended_at, o.started_at, inflight[o.run_id].attempt, owner)
                for o in outcomes]
        # RETURNING says exactly which were recorded: not those finished or taken over meanwhile (nor
        # those a commit whose answer was lost recorded already)
        recorded = {row[0]: row[1] for row in self._st.finish_many.returning(self.cursor, rows)}
        applied = outcomes if len(recorded) == len(outcomes) else [o for o in outcomes if o.run_id in recorded]
        info = {}
        for o in applied:  # the backfill a run counts for is the stored one (a tick run may have joined one)
            known = inflight[o.run_id]
            info[o.run_id] = known if known.backfill_id == recorded[o.run_id] else \
                known._replace(backfill_id=recorded[o.run_id])
        self._after_finish(applied, info, now)
        return [Recorded(o.run_id, o.status, recorded[o.run_id]) for o in applied]

    def finish_runs(self, outcomes: Sequence[Outcome], now: float) -> list[Outcome]:
        """Record decisions about active runs (a cancel, a stop), whoever executes them. A run that has
        already finished, or whose attempt differs from the outcome's, is left alone."""
        if not outcomes:
            return []
        by_id = {o.run_id: o for o in outcomes}
        info: dict[str, InFlight] = {}
        for chunk in _chunks(list(by_id)):
            for run_id, status, attempt, backfill_id, n in self.conn.execute(
                    select(runs.c.run_id, runs.c.status, runs.c.attempt, runs.c.backfill_id, runs.c.num_partitions)
                    .where(runs.c.run_id.in_(chunk)).with_for_update()):
                outcome = by_id[run_id]
                if status in _FINISHABLE and outcome.attempt in (None, attempt):
                    info[run_id] = InFlight(attempt, backfill_id, max(1, n))  # a run without keys: one node
        applied = [by_id[r] for r in info]
        self._st.finish_active.executemany(self.cursor, [
            (o.status, o.error, o.ended_at if o.ended_at is not None else now, o.started_at, o.run_id)
            for o in applied])
        self._after_finish(applied, info, now)
        return applied

    def _after_finish(self, applied: Sequence[Outcome], info: Mapping[str, InFlight], now: float) -> None:
        logs: list[tuple[str, int, float, str, str]] = []
        key_errors: list[tuple[str, str, str]] = []
        counters: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for o in applied:
            run = info[o.run_id]
            if o.logs:
                logs.extend((o.run_id, run.attempt, t, level, message) for t, level, message in o.logs)
            if o.failed_partitions:
                key_errors.extend((error, o.run_id, key) for key, error in o.failed_partitions.items())
            if run.backfill_id:
                c = counters[run.backfill_id]
                if o.status == SUCCESS:
                    c[0] += run.num_partitions - len(o.failed_partitions)
                    c[1] += len(o.failed_partitions)
                elif o.status in (FAILED, UPSTREAM_FAILED):  # a key blocked by its upstream counts as failed
                    c[1] += run.num_partitions
                else:
                    c[2] += run.num_partitions
        if logs:
            self._st.insert_logs.execute(self.cursor, logs)
        self._st.mark_key_failed.executemany(self.cursor, key_errors)
        self._st.count.executemany(self.cursor, [(c, f, x, now, b) for b, (c, f, x) in counters.items()])

    def request_cancel(self, run_ids: Sequence[str]) -> None:
        """Mark running runs for their executing process to stop (it reads ``cancel_requested_runs``)."""
        for chunk in _chunks(run_ids):
            self.conn.execute(update(runs).where(runs.c.run_id.in_(chunk), runs.c.status.in_(_REQUEUABLE))
                              .values(cancel_requested=True))

    def cancel_requested_runs(self, owner: str) -> list[str]:
        return list(self.conn.execute(select(runs.c.run_id).where(
            runs.c.owner == owner, runs.c.status == RUNNING, runs.c.cancel_requested.is_(True))).scalars())

    # -- taking runs over --------------------------------------------------------------------------
    def adopt_runs(self, owner: str, now: float, live: frozenset[str], *, backfill_ids: Sequence[str] = (),
                   run_ids: Sequence[str] = (), grace: float = 0.0) -> AdoptedRuns:
        """Take over the active runs of dead owners (see ``requeue``). A run that was running is queued as a
        new attempt that does not start before ``now + grace``: its old owner may still report its outcome
        (its process stalled, or storage was unreachable), which is then accepted instead."""
        scope = []
        if backfill_ids:
            scope.append(runs.c.backfill_id.in_(list(backfill_ids)))
        if run_ids:
            scope.append(runs.c.run_id.in_(list(run_ids)))
        if not scope:
            return AdoptedRuns((), (), ())
        orphans = and_(or_(*scope), _ACTIVE, or_(runs.c.owner.is_(None), runs.c.owner.not_in(list(live) or [""])))
        return self._take_over(orphans, owner, now, grace)

    def reclaim_runs(self, owner: str, now: float, grace: float = 0.0) -> AdoptedRuns:
        """After ``owner`` lost its lease: its active runs are treated as orphans and taken back."""
        return self._take_over(and_(runs.c.owner == owner, _ACTIVE), owner, now, grace)

    def requeue(self, run_ids: Sequence[str], attempts: Mapping[str, int], owner: str) -> list[str]:
        """Queue running runs again as a new attempt (their execution was lost, not finished)."""
        changed = []
        for run_id in run_ids:
            result = self.conn.execute(update(runs).where(
                runs.c.run_id == run_id, runs.c.attempt == attempts[run_id], runs.c.owner == owner,
                runs.c.status.in_(_REQUEUABLE)).values(status=QUEUED, attempt=runs.c.attempt + 1, started_at=None))
            if result.rowcount:
                changed.append(run_id)
        return changed

    def hand_back(self, owner: str, now: float) -> list[tuple[str, str | None]]:
        """At a clean exit: ``owner``'s active runs go back to the queue with no owner — running ones as a new
        attempt, those with a cancel pending canceled — for a daemon or the next process waiting on them to run
        at once. Returns ``(run id, backfill id)`` of each."""
        where = and_(runs.c.owner == owner, _ACTIVE)
        found = [(r[0], r[1]) for r in self.conn.execute(select(runs.c.run_id, runs.c.backfill_id).where(where))]
        if found:
            self._take_over(where, None, now, 0.0)
        return found

    def _take_over(self, where: Any, owner: str | None, now: float, grace: float) -> AdoptedRuns:
        rows = list(self.conn.execute(select(runs.c.run_id, runs.c.status, runs.c.cancel_requested)
                                      .where(where).with_for_update()))
        canceled = tuple(r[0] for r in rows if r[2])
        self.finish_runs([Outcome(r, CANCELED, "canceled") for r in canceled], now)
        requeued = tuple(r[0] for r in rows if r[1] == RUNNING and not r[2])
        moved = tuple(r[0] for r in rows if r[1] == QUEUED and not r[2])
        for chunk in _chunks(requeued):
            self.conn.execute(update(runs).where(runs.c.run_id.in_(chunk), runs.c.status.in_(_REQUEUABLE)).values(
                status=QUEUED, attempt=runs.c.attempt + 1, owner=owner, started_at=None,
                not_before=now + grace if grace > 0 else None))
        for chunk in _chunks(moved):
            self.conn.execute(update(runs).where(runs.c.run_id.in_(chunk)).values(owner=owner))
        return AdoptedRuns(requeued, moved, canceled)


def _run_conditions(where: RunFilter) -> list[Any]:
    """The SQL conditions of a ``RunFilter`` (every filter applied by the database)."""
    conditions: list[Any] = []
    if where.workflow is not None:
        conditions.append(runs.c.workflow == where.workflow)
    if where.statuses:
        conditions.append(runs.c.status.in_(list(where.statuses)))
    if where.backfill_id is not None:
        conditions.append(runs.c.backfill_id == where.backfill_id)
    for key, value in where.tags.items():  # tags are a JSON object: filtered by the database
        conditions.append(_has_tag(runs.c.tags, key, value))
    if where.partition_key is not None:  # a one-key run of it, or a run of several keys that holds it
        holders = select(run_partitions.c.run_id).where(run_partitions.c.partition_key == where.partition_key)
        if where.workflow is not None:
            holders = holders.where(run_partitions.c.workflow == where.workflow)
        conditions.append(or_(runs.c.partition_key == where.partition_key, runs.c.run_id.in_(holders)))
    if where.trigger is not None:
        tick = runs.c.idempotency_key.startswith(SCHEDULE_KEY_PREFIX, autoescape=True)
        conditions.append({"backfill": runs.c.backfill_id.is_not(None),
                           "scheduled": and_(runs.c.backfill_id.is_(None), tick),
                           "manual": and_(runs.c.backfill_id.is_(None),
                                          or_(runs.c.idempotency_key.is_(None), ~tick))}[where.trigger])
    if where.created_after is not None:
        conditions.append(runs.c.created_at >= where.created_after)
    if where.created_before is not None:
        conditions.append(runs.c.created_at < where.created_before)
    return conditions



def _run_values(rows: Sequence[NewRun]) -> tuple[list[tuple[Any, ...]], list[tuple[str, str, str]]]:
    """Run rows in ``RUN_INSERT_COLUMNS`` order, and the (run, workflow, key) rows of multi-key runs."""
    values: list[tuple[Any, ...]] = []
    multi: list[tuple[str, str, str]] = []
    for r in rows:
        key, keys_json, n = keys_columns(r.keys)
        values.append((r.run_id, r.workflow, r.status, key, keys_json, n, r.params, r.tags, r.priority,
                       r.backfill_id, r.idempotency_key, r.attempt, r.logical_time, r.window_start, r.window_end,
                       r.scheduled_time, r.created_at, r.run_name, r.environ, r.owner, False, r.error,
                       r.ended_at, r.started_at, r.plan_index))
        if n > 1:
            multi.extend((r.run_id, r.workflow, k) for k in r.keys)
    return values, multi
