"""Every SQL statement anachron issues, bound to one transaction. One code path for both databases.

A ``Session`` takes and returns records (``anachron.records``); it holds no policy. What to start, cancel
or finish is decided by the engine (``anachron.lifecycle``, ``engine.queue``) and written here.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any, TypeVar

from sqlalchemy import Connection, Integer, and_, case, delete, func, insert, literal_column, or_, select, update
from sqlalchemy.exc import DBAPIError, IntegrityError

from ..estimate import HISTORY_RUNS, RunDuration
from ..lifecycle import BACKFILL_TRANSITIONS, RUN_TRANSITIONS, sources
from ..models import CANCELED, FAILED, QUEUED, RUN_STATUSES, RUNNING, SUCCESS, UPSTREAM_FAILED
from ..records import (
    EMPTY_TAGS,
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
    Unfinished,
    utc,
)
from ..schedules import SCHEDULE_KEY_PREFIX, tick_key
from .codec import backfill_record, dumps, keys_columns, keys_of, run_record, tags_of
from .errors import SavepointNeeded, StorageRejected, describe_error, is_transient
from .schedule_rows import ScheduleRows
from .schema import (
    backfill_workflows,
    backfills,
    dynamic_partitions,
    leaders,
    pool_slots,
    queue_lock,
    run_logs,
    run_partitions,
    runs,
    workers,
)
from .statements import Statements

T = TypeVar("T")
CHUNK = 500
_ACTIVE = or_(runs.c.status == QUEUED, runs.c.status == RUNNING)
#: the guards of run moves, from the lifecycle's table: who may finish, who may be queued again
_FINISHABLE = sources(RUN_TRANSITIONS, SUCCESS, FAILED, CANCELED)
_REQUEUABLE = sources(RUN_TRANSITIONS, QUEUED)
#: runs that never ran to an end of their own (canceled, or blocked by an upstream failure): a key's status is
#: its latest run's among the others (``missing`` when none)
_COUNTS_FOR_KEY = runs.c.status.not_in((CANCELED, UPSTREAM_FAILED))
_NOT_SUCCESS = [status for status in RUN_STATUSES if status != SUCCESS]


class _Keep:
    """The default of ``update_backfill``'s fields: leave the column as it is."""

    def __repr__(self) -> str:
        return "KEEP"


KEEP: Any = _Keep()


class Session(ScheduleRows):
    def __init__(self, conn: Connection, statements: Statements):
        self.conn = conn
        self._st = statements
        self._cursor: Any = None

    @property
    def cursor(self) -> Any:
        """The DB-API cursor of this transaction (for the compiled hot statements)."""
        if self._cursor is None:
            self._cursor = self.conn.connection.cursor()
        return self._cursor

    @contextlib.contextmanager
    def savepoint(self, lazy: bool = False) -> Iterator[None]:
        """Writes that are undone together if the database refuses one of them for good
        (``StorageRejected``); the rest of the transaction goes on. Transient errors pass through.
        (A plain SAVEPOINT statement: SQLAlchemy's nested transaction costs ten times more.)

        ``lazy``: set no savepoint (two statements fewer, for writes that are almost never refused); a
        refusal then raises ``SavepointNeeded`` and the transaction must be run again, not lazily."""
        cursor, st = self.cursor, self._st
        if lazy:
            try:
                yield
            except DBAPIError as exc:
                if is_transient(exc):
                    raise
                raise SavepointNeeded(describe_error(exc)) from exc
            return
        st.savepoint.execute(cursor)
        try:
            yield
        except DBAPIError as exc:
            if is_transient(exc):
                raise
            st.rollback_to_savepoint.execute(cursor)
            st.release_savepoint.execute(cursor)
            raise StorageRejected(describe_error(exc)) from exc
        except BaseException:
            st.rollback_to_savepoint.execute(cursor)
            st.release_savepoint.execute(cursor)
            raise
        st.release_savepoint.execute(cursor)

    # -- workers: one lease per process ------------------------------------------------------------
    def register_worker(self, worker_id: str, hostname: str, pid: int, now: float, expires_at: float) -> None:
        self.conn.execute(delete(workers).where(workers.c.worker_id == worker_id))
        self.conn.execute(insert(workers).values(worker_id=worker_id, hostname=hostname, pid=pid, started_at=now,
                                                 expires_at=expires_at))

    def renew_lease(self, worker_id: str, now: float, expires_at: float) -> bool:
        """Extend a lease that has not lapsed; ``False`` when it lapsed (others may have taken over)."""
        return bool(self._st.renew_lease.execute(self.cursor, (expires_at, worker_id, now)).rowcount == 1)

    def remove_worker(self, worker_id: str) -> None:
        self.conn.execute(delete(workers).where(workers.c.worker_id == worker_id))

    def live_worker_ids(self, now: float) -> frozenset[str]:
        return frozenset(self.conn.execute(select(workers.c.worker_id).where(workers.c.expires_at >= now)).scalars())

    def expire_dead_workers(self, before: float) -> list[str]:
        dead = list(self.conn.execute(select(workers.c.worker_id).where(workers.c.expires_at < before)).scalars())
        if dead:
            self.conn.execute(delete(workers).where(workers.c.worker_id.in_(dead)))
        return dead

    # -- leaders: one process per shared duty, for as long as its worker lease lives -----------------
    def lead(self, name: str, worker_id: str, now: float) -> bool:
        """Take or keep the duty ``name`` for ``worker_id``: granted when nobody holds it, when this worker
        already does, or when its holder's lease has lapsed (the holder died or froze). Whether granted."""
        alive = select(workers.c.worker_id).where(workers.c.expires_at >= now)
        taken = self.conn.execute(update(leaders).where(
            leaders.c.name == name,
            or_(leaders.c.holder == worker_id, leaders.c.holder.not_in(alive.scalar_subquery()))).values(
            holder=worker_id, since=case((leaders.c.holder == worker_id, leaders.c.since), else_=now)))
        if taken.rowcount:
            return True
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(leaders).values(name=name, holder=worker_id, since=now))
        except IntegrityError:  # another process inserted it first: it leads
            return False
        return True

    def leader_of(self, name: str) -> tuple[str, float] | None:
        """The worker holding the duty ``name`` and since when (its lease may have lapsed)."""
        row = self.conn.execute(select(leaders.c.holder, leaders.c.since).where(leaders.c.name == name)).first()
        return (row[0], row[1]) if row is not None else None

    def resign(self, name: str, worker_id: str) -> None:
        """Give the duty up (at a clean exit), so another process takes it at once."""
        self.conn.execute(delete(leaders).where(leaders.c.name == name, leaders.c.holder == worker_id))

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
            with self.conn.begin_nested():
                self.insert_runs([row])
        except IntegrityError:  # another submitter took the key first
            pass
        found = self.run_by_idempotency_key(row.workflow, row.idempotency_key)
        if found is None:  # the integrity error was about something else
            raise RuntimeError(f"run with idempotency key {row.idempotency_key!r} could not be stored")
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

    def start_runs(self, run_ids: Sequence[str], now: float) -> set[str]:
        """Move queued runs to running; returns the ids that moved (not one finished meanwhile)."""
        if not run_ids:
            return set()
        return {row[0] for row in self._st.start_many.returning(self.cursor, run_ids, head=(now,))}

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
            logs.extend((o.run_id, run.attempt, t, level, message) for t, level, message in o.logs)
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

    # -- partitions --------------------------------------------------------------------------------
    def partition_statuses(self, workflow: str, keys: Sequence[str] | None = None) -> dict[str, str]:
        """key → status of the latest run that covered it (one row per key that has runs). ``keys`` limits
        it to those keys. Canceled runs do not count; a key a run marked failed is ``failed``."""
        latest: dict[str, tuple[int, str]] = {}

        def consider(key: str, status: str, seq: int, error: str | None = None) -> None:
            if key not in latest or latest[key][0] < seq:
                latest[key] = (seq, FAILED if error is not None and status == SUCCESS else status)

        if keys is None:  # every key: the database keeps only each key's latest run
            one_q = (select(func.max(runs.c.seq).label("seq"))
                     .where(runs.c.workflow == workflow, _COUNTS_FOR_KEY, runs.c.partition_key.is_not(None))
                     .group_by(runs.c.partition_key).subquery())
            many_q = (select(run_partitions.c.partition_key, func.max(runs.c.seq).label("seq"))
                      .select_from(run_partitions.join(runs, runs.c.run_id == run_partitions.c.run_id))
                      .where(run_partitions.c.workflow == workflow, _COUNTS_FOR_KEY)
                      .group_by(run_partitions.c.partition_key).subquery())
            for key, status, seq in self.conn.execute(
                    select(runs.c.partition_key, runs.c.status, runs.c.seq).join(one_q, runs.c.seq == one_q.c.seq)):
                consider(key, status, seq)
            for key, status, seq, error in self.conn.execute(
                    select(run_partitions.c.partition_key, runs.c.status, runs.c.seq, run_partitions.c.error)
                    .select_from(run_partitions.join(runs, runs.c.run_id == run_partitions.c.run_id)
                                 .join(many_q, and_(many_q.c.partition_key == run_partitions.c.partition_key,
                                                    many_q.c.seq == runs.c.seq)))
                    .where(run_partitions.c.workflow == workflow)):
                consider(key, status, seq, error)
            return {key: status for key, (_, status) in latest.items()}
        # Some keys (a page): every run of those keys, the latest kept here (a key has few runs). A page in
        # ascending text order (ISO dates, "date|region" keys: the usual case) is read as one key range of
        # the (workflow, partition_key) indexes, the keys between that are not asked for dropped here; any
        # other page is looked up key by key, in chunks. Both keep their plan without table statistics (an
        # aggregate join did not: 5 s instead of 0.2 s for 10,000 keys on PostgreSQL never analyzed).
        if not keys:
            return {}
        wanted = set(keys)
        if all(a < b for a, b in zip(keys, keys[1:])):
            conditions = [([runs.c.partition_key.between(keys[0], keys[-1])],
                           [run_partitions.c.partition_key.between(keys[0], keys[-1])])]
        else:  # no "IS NOT NULL" beside an IN list: SQLite would scan the key range instead of looking keys up
            conditions = [([runs.c.partition_key.in_(chunk)], [run_partitions.c.partition_key.in_(chunk)])
                          for chunk in _chunks(keys)]
        for one_where, many_where in conditions:
            for key, status, seq in self.conn.execute(
                    select(runs.c.partition_key, runs.c.status, runs.c.seq)
                    .where(runs.c.workflow == workflow, *one_where, _COUNTS_FOR_KEY)):
                if key in wanted:
                    consider(key, status, seq)
            for key, status, seq, error in self.conn.execute(
                    select(run_partitions.c.partition_key, runs.c.status, runs.c.seq, run_partitions.c.error)
                    .select_from(run_partitions.join(runs, runs.c.run_id == run_partitions.c.run_id))
                    .where(run_partitions.c.workflow == workflow, *many_where, _COUNTS_FOR_KEY)):
                if key in wanted:
                    consider(key, status, seq, error)
        return {key: status for key, (_, status) in latest.items()}

    def succeeded_keys_of_backfill(self, backfill_id: str) -> set[tuple[str, str]]:
        """(workflow, key) of every key a run of the backfill completed (schedule ticks as their key; a run
        without keys or tick as ``""``, the node an unpartitioned workflow is in a graph)."""
        done: set[tuple[str, str]] = set()
        for workflow, key, keys_json, scheduled in self.conn.execute(
                select(runs.c.workflow, runs.c.partition_key, runs.c.partition_keys, runs.c.scheduled_time)
                .where(runs.c.backfill_id == backfill_id, runs.c.status == SUCCESS)):
            keys = keys_of(key, keys_json)
            if not keys:  # a tick's run: its tick; an unpartitioned workflow's run in a graph: "" (its node)
                keys = (tick_key(utc(scheduled)),) if scheduled is not None else ("",)  # type: ignore[arg-type]
            done.update((workflow, k) for k in keys)
        for workflow, key in self.conn.execute(
                select(run_partitions.c.workflow, run_partitions.c.partition_key)
                .select_from(run_partitions.join(runs, runs.c.run_id == run_partitions.c.run_id))
                .where(runs.c.backfill_id == backfill_id, run_partitions.c.error.is_not(None))):
            done.discard((workflow, key))
        return done

    def backfill_grid_counts(self, backfill_id: str, cell_size: int, created: int) -> list[GridCount]:
        """Per cell of ``cell_size`` consecutive plan indices and per status, how many of the backfill's
        first ``created`` runs did **not** succeed — nothing else is counted: in a big backfill nearly every
        run succeeded, and the rest of a cell is its successes (``anachron.grid``). The statuses are named
        (an ``IN`` list, not ``<> 'success'``) so the read is a few ranges of the (backfill, status,
        plan_index) index and costs as much as the runs counted. Runs at ``created`` and beyond (created
        after the caller read the cursor) are left out, so the counts agree with that cursor."""
        if cell_size < 1:
            raise ValueError(f"cell_size: must be >= 1, got {cell_size!r}")
        # the size as an SQL literal: the same expression in SELECT and GROUP BY (PostgreSQL compares them)
        cell = (runs.c.plan_index // literal_column(str(int(cell_size)), Integer)).label("cell")
        query = (select(cell, runs.c.status, func.count())
                 .where(runs.c.backfill_id == backfill_id, runs.c.status.in_(_NOT_SUCCESS),
                        runs.c.plan_index < created)
                 .group_by(cell, runs.c.status))
        return [GridCount(int(c), status, int(n)) for c, status, n in self.conn.execute(query)]

    def backfill_grid_runs(self, backfill_id: str, created: int, limit: int, first: int = 0) -> list[GridRun]:
        """The backfill's runs from plan index ``first`` up to ``created`` (at most ``limit``) in plan order,
        one grid cell each. Only a one-key run's key is read (a run of many keys may list a million: its
        first and last come from the plan)."""
        query = (select(runs.c.plan_index, runs.c.run_id, runs.c.status, runs.c.partition_key,
                        runs.c.scheduled_time)
                 .where(runs.c.backfill_id == backfill_id, runs.c.plan_index >= first, runs.c.plan_index < created)
                 .order_by(runs.c.plan_index).limit(limit))
        return [GridRun(*row) for row in self.conn.execute(query)]

    # -- backfills ---------------------------------------------------------------------------------
    def insert_backfill(self, row: NewBackfill) -> BackfillRecord:
        """Insert a backfill; with an idempotency key already taken, return the backfill that has it."""
        values = dict(backfill_id=row.backfill_id, status=row.status, workflows=dumps(list(row.workflows)),
                      request=dumps(row.request), total_partitions=row.total_partitions, total_runs=row.total_runs,
                      cursor=0, completed=0, failed=0, canceled=0, max_concurrency=row.max_concurrency,
                      priority=row.priority, tags=dumps(dict(row.tags)), idempotency_key=row.idempotency_key,
                      owner=None, cancel_requested=False, error=None, created_at=row.created_at,
                      updated_at=row.created_at, ended_at=row.ended_at)
        try:
            with self.conn.begin_nested():
                self.conn.execute(insert(backfills).values(**values))
                self.conn.execute(insert(backfill_workflows), [{"backfill_id": row.backfill_id, "workflow": w}
                                                               for w in dict.fromkeys(row.workflows)])
        except IntegrityError:
            if row.idempotency_key is None:
                raise
            existing = self.backfill_by_idempotency_key(row.idempotency_key)
            if existing is None:
                raise
            return existing
        created = self.get_backfill(row.backfill_id)
        assert created is not None
        return created

    def get_backfill(self, backfill_id: str, *, for_update: bool = False) -> BackfillRecord | None:
        query = select(backfills).where(backfills.c.backfill_id == backfill_id)
        row = self.conn.execute(query.with_for_update() if for_update else query).first()
        return backfill_record(row) if row is not None else None

    def backfill_by_idempotency_key(self, key: str) -> BackfillRecord | None:
        row = self.conn.execute(select(backfills).where(backfills.c.idempotency_key == key)).first()
        return backfill_record(row) if row is not None else None

    def list_backfills(self, statuses: Sequence[str] = (), workflow: str | None = None,
                       limit: int | None = None, offset: int = 0,
                       tags: Mapping[str, str] | None = None) -> list[BackfillRecord]:
        query = (select(backfills).where(*_backfill_conditions(statuses, workflow, tags))
                 .order_by(backfills.c.created_at.desc(), backfills.c.backfill_id))
        if limit is not None:
            query = query.limit(limit)
        if offset:
            query = query.offset(offset)
        return [backfill_record(r) for r in self.conn.execute(query)]

    def count_backfills(self, statuses: Sequence[str] = (), workflow: str | None = None,
                        tags: Mapping[str, str] | None = None, cap: int = 10_000) -> int:
        """How many backfills ``list_backfills`` would list without a limit, counting at most ``cap``."""
        found = (select(backfills.c.backfill_id).where(*_backfill_conditions(statuses, workflow, tags))
                 .limit(cap).subquery())
        return int(self.conn.execute(select(func.count()).select_from(found)).scalar_one())

    def workflow_counts(self, backfill_id: str) -> dict[str, dict[str, int]]:
        """Per workflow of a backfill: how many partitions its runs cover, by status (one grouped read of the
        backfill's runs: asked for backfills of several workflows)."""
        found: dict[str, dict[str, int]] = defaultdict(dict)
        for workflow, status, n in self.conn.execute(
                select(runs.c.workflow, runs.c.status,  # a run without keys is one node: one partition
                       func.sum(case((runs.c.num_partitions == 0, 1), else_=runs.c.num_partitions)))
                .where(runs.c.backfill_id == backfill_id).group_by(runs.c.workflow, runs.c.status)):
            found[workflow][status] = int(n or 0)
        return dict(found)

    def run_counts(self, backfill_ids: Sequence[str]) -> dict[str, RunCounts]:
        """Queued and running runs of each backfill."""
        counts: dict[str, dict[str, int]] = defaultdict(dict)
        for chunk in _chunks(backfill_ids):
            for backfill_id, status, n in self.conn.execute(
                    select(runs.c.backfill_id, runs.c.status, func.count())
                    .where(runs.c.backfill_id.in_(chunk), _ACTIVE).group_by(runs.c.backfill_id, runs.c.status)):
                counts[backfill_id][status] = n
        return {b: RunCounts(c.get(QUEUED, 0), c.get(RUNNING, 0)) for b, c in counts.items()}

    def move_backfill(self, backfill_id: str, status: str, now: float, *, owner: str | None = KEEP,
                      expect_owner: str | None = KEEP, cancel_requested: bool = KEEP, canceled: int = KEEP,
                      error: str | None = KEEP, ended_at: float | None = KEEP) -> bool:
        """Move a backfill to ``status`` (with the other fields given) if the lifecycle allows it from its
        current status (``lifecycle.BACKFILL_TRANSITIONS``; staying in it is allowed) and, with
        ``expect_owner``, only while that process leads it. Whether it moved."""
        allowed = (*sources(BACKFILL_TRANSITIONS, status), status)
        query = update(backfills).where(backfills.c.backfill_id == backfill_id, backfills.c.status.in_(allowed))
        if expect_owner is not KEEP:
            query = query.where(backfills.c.owner == expect_owner)
        values: dict[str, Any] = {"status": status, "updated_at": now}
        for name, value in (("owner", owner), ("cancel_requested", cancel_requested), ("canceled", canceled),
                            ("error", error), ("ended_at", ended_at)):
            if value is not KEEP:
                values[name] = value
        return self.conn.execute(query.values(**values)).rowcount == 1

    def end_backfill(self, backfill_id: str, owner: str, status: str, canceled: int, error: str | None,
                     now: float) -> bool:
        """End a backfill ``owner`` leads: its final status and counts, and no leader any more."""
        return self.move_backfill(backfill_id, status, now, owner=None, expect_owner=owner, canceled=canceled,
                                  error=error, ended_at=now)

    def cancel_runs_of_backfill(self, backfill_id: str, why: str, now: float, queued_only: bool = False) -> list[str]:
        """Cancel a backfill's active runs (or only its queued ones), whoever runs them; their ids."""
        active = self.active_runs(backfill_ids=[backfill_id])
        chosen = [r.run_id for r in active if not queued_only or r.status == QUEUED]
        return [o.run_id for o in self.finish_runs([Outcome(r, CANCELED, why) for r in chosen], now)]

    def acquire_backfill(self, backfill_id: str, owner: str, live: frozenset[str], now: float) -> bool:
        """Take the backfill's lease when it has no live owner (or already is ours)."""
        return self.conn.execute(update(backfills).where(
            backfills.c.backfill_id == backfill_id,
            or_(backfills.c.owner.is_(None), backfills.c.owner == owner,
                backfills.c.owner.not_in(list(live) or [""]))).values(owner=owner, updated_at=now)).rowcount == 1

    def release_backfills(self, owner: str) -> None:
        self.conn.execute(update(backfills).where(backfills.c.owner == owner).values(owner=None))

    def backfills_owned_by(self, owner: str) -> list[BackfillRecord]:
        return [backfill_record(r) for r in self.conn.execute(select(backfills).where(backfills.c.owner == owner))]

    def active_counts(self, owner: str) -> dict[str, int]:
        """Queued + running runs of each backfill ``owner`` leads (whoever executes them: a tick run the
        daemon created may have joined one)."""
        led = select(backfills.c.backfill_id).where(backfills.c.owner == owner)
        return {b: n for b, n in self.conn.execute(
            select(runs.c.backfill_id, func.count()).where(runs.c.backfill_id.in_(led), _ACTIVE)
            .group_by(runs.c.backfill_id))}

    def count_outcomes(self, backfill_id: str, completed: int, failed: int, canceled: int, now: float) -> None:
        """Add to a backfill's counters (runs it took over that had already finished)."""
        self._st.count.execute(self.cursor, (completed, failed, canceled, now, backfill_id))

    def advance_cursor(self, backfill_id: str, owner: str, old: int, new: int, now: float) -> bool:
        """Move a backfill's cursor, only if ``owner`` still leads it, nobody moved it meanwhile and it is
        still in progress (not paused or canceled since it was read)."""
        return bool(self._st.advance_cursor.execute(self.cursor, (new, now, backfill_id, owner, old)).rowcount == 1)

    # -- dynamic partitions ------------------------------------------------------------------------
    def dynamic_keys(self, names: Iterable[str] | None = None) -> dict[str, list[str]]:
        query = select(dynamic_partitions.c.name, dynamic_partitions.c.partition_key).order_by(dynamic_partitions.c.seq)
        if names is not None:
            query = query.where(dynamic_partitions.c.name.in_(list(names)))
        result: dict[str, list[str]] = defaultdict(list)
        for name, key in self.conn.execute(query):
            result[name].append(key)
        return dict(result)

    def add_dynamic_keys(self, name: str, keys: Sequence[str]) -> int:
        existing = set(self.dynamic_keys([name]).get(name, []))
        new = [k for k in dict.fromkeys(keys) if k not in existing]
        if new:
            self.conn.execute(insert(dynamic_partitions), [{"name": name, "partition_key": k} for k in new])
        return len(new)

    def delete_dynamic_key(self, name: str, key: str) -> bool:
        return self.conn.execute(delete(dynamic_partitions).where(
            dynamic_partitions.c.name == name, dynamic_partitions.c.partition_key == key)).rowcount == 1

    # -- pools -------------------------------------------------------------------------------------
    def try_acquire_slot(self, pool: str, size: int, run_id: str, now: float) -> int | None:
        self.conn.execute(update(queue_lock).where(queue_lock.c.id == 1).values(version=queue_lock.c.version + 1))
        have = set(self.conn.execute(select(pool_slots.c.slot).where(pool_slots.c.pool == pool)).scalars())
        missing = [s for s in range(size) if s not in have]
        if missing:
            self.conn.execute(insert(pool_slots), [{"pool": pool, "slot": s} for s in missing])
        free = self.conn.execute(select(pool_slots.c.slot).where(
            pool_slots.c.pool == pool, pool_slots.c.slot < size, pool_slots.c.holder_run.is_(None))
            .order_by(pool_slots.c.slot).limit(1)).scalar()
        if free is None:
            return None
        taken = self.conn.execute(update(pool_slots).where(
            pool_slots.c.pool == pool, pool_slots.c.slot == free, pool_slots.c.holder_run.is_(None))
            .values(holder_run=run_id, acquired_at=now)).rowcount
        return int(free) if taken == 1 else None

    def release_orphan_slots(self) -> None:
        """Free slots whose holder is no longer running (killed, canceled, requeued before its release)."""
        self.conn.execute(update(pool_slots).where(
            pool_slots.c.holder_run.is_not(None),
            pool_slots.c.holder_run.not_in(select(runs.c.run_id).where(runs.c.status == RUNNING)))
            .values(holder_run=None, acquired_at=None))

    def release_slot(self, pool: str, slot: int, run_id: str) -> None:
        self.conn.execute(update(pool_slots).where(pool_slots.c.pool == pool, pool_slots.c.slot == slot,
                                                   pool_slots.c.holder_run == run_id)
                          .values(holder_run=None, acquired_at=None))

    # -- administration ----------------------------------------------------------------------------
    def prune_runs(self, before: float, limit: int) -> list[str]:
        """Delete up to ``limit`` runs that ``count_prunable`` counts, oldest first, with their keys and logs;
        returns their ids."""
        ids = list(self.conn.execute(select(runs.c.run_id).where(self._prunable(before))
                                     .order_by(runs.c.seq).limit(limit)).scalars())
        for chunk in _chunks(ids):
            self.conn.execute(delete(run_logs).where(run_logs.c.run_id.in_(chunk)))
            self.conn.execute(delete(run_partitions).where(run_partitions.c.run_id.in_(chunk)))
            self.conn.execute(delete(runs).where(runs.c.run_id.in_(chunk)))
        return ids

    def count_prunable(self, before: float) -> int:
        """How many finished runs ended (or were created, if they have no end) before ``before`` and are the
        latest run of none of their keys: the runs ``prune_runs`` deletes."""
        return int(self.conn.execute(select(func.count()).select_from(runs).where(self._prunable(before)))
                   .scalar_one())

    @staticmethod
    def _prunable(before: float) -> Any:
        """The condition on ``runs`` of ``prune_runs`` and ``count_prunable``. A run is superseded for a key
        when a newer finished run that was not canceled covers the key (an active one might still be
        canceled); a canceled run never is the latest, and a run without keys has none to keep."""
        newer, newer_many, newer_keys, own_keys = (runs.alias("newer"), runs.alias("newer_many"),
                                                   run_partitions.alias("newer_keys"), run_partitions.alias("own_keys"))

        def superseded(workflow: Any, key: Any) -> Any:
            one = select(newer.c.seq).where(newer.c.workflow == workflow, newer.c.partition_key == key,
                                            newer.c.seq > runs.c.seq, newer.c.status.in_((SUCCESS, FAILED)))
            many = (select(newer_many.c.seq)
                    .select_from(newer_keys.join(newer_many, newer_many.c.run_id == newer_keys.c.run_id))
                    .where(newer_keys.c.workflow == workflow, newer_keys.c.partition_key == key,
                           newer_many.c.seq > runs.c.seq, newer_many.c.status.in_((SUCCESS, FAILED))))
            # the outer runs row, also from inside own_keys' subquery (auto-correlation looks one level up)
            return or_(one.correlate_except(newer).exists(), many.correlate_except(newer_keys, newer_many).exists())

        kept_key = select(own_keys.c.run_id).where(own_keys.c.run_id == runs.c.run_id,
                                                   ~superseded(own_keys.c.workflow, own_keys.c.partition_key))
        return and_(runs.c.status.in_((SUCCESS, FAILED, CANCELED, UPSTREAM_FAILED)),
                    func.coalesce(runs.c.ended_at, runs.c.created_at) < before,
                    or_(runs.c.status.in_((CANCELED, UPSTREAM_FAILED)),
                        and_(or_(runs.c.partition_key.is_(None), superseded(runs.c.workflow, runs.c.partition_key)),
                             ~kept_key.exists())))

    def schema_revision(self) -> str | None:
        from sqlalchemy import text

        value = self.conn.execute(text("SELECT version_num FROM alembic_version")).scalar()
        return None if value is None else str(value)


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


def _backfill_conditions(statuses: Sequence[str], workflow: str | None,
                         tags: Mapping[str, str] | None) -> list[Any]:
    conditions: list[Any] = []
    if statuses:
        conditions.append(backfills.c.status.in_(list(statuses)))
    if workflow is not None:
        conditions.append(backfills.c.backfill_id.in_(
            select(backfill_workflows.c.backfill_id).where(backfill_workflows.c.workflow == workflow)))
    for key, value in (tags or {}).items():
        conditions.append(_has_tag(backfills.c.tags, key, value))
    return conditions


def _has_tag(column: Any, key: str, value: str) -> Any:
    """Whether the JSON object in ``column`` maps ``key`` to ``value`` — the same SQL on both databases.

    Tags are stored as compact JSON written by ``codec.dumps``, where an unescaped quote is always a string
    delimiter: so ``"key":"value"`` right after ``{`` or ``,`` and right before ``,`` or ``}`` is that
    member exactly (a JSON function would not be: SQLite has no JSON type to cast the text to)."""
    member = dumps(key) + ":" + dumps(value)
    return or_(*(column.contains(before + member + after, autoescape=True)
                 for before in ("{", ",") for after in (",", "}")))


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


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for i in range(0, len(items), CHUNK):
        yield items[i:i + CHUNK]
