"""Every SQL statement anachron issues, bound to one transaction. One code path for both databases."""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Iterable, Mapping, Sequence

from sqlalchemy import and_, bindparam, func, or_, select, update, delete, insert

from ..engine.queue import ActiveRun, QueuedRun, QueueLimits, select_runs
from ..models import (CANCELED, FAILED, IN_PROGRESS, QUEUED, RUNNING, SUCCESS, BackfillStatus, Run)
from ..schedules import tick_key
from .codec import dt, dumps, loads, row_to_backfill, row_to_run, run_keys
from .schema import backfills, dynamic_partitions, pool_slots, queue_lock, run_logs, run_partitions, runs, workers

# A claim looks at the first queued runs in (priority, age) order: at least this many, and 8 per free
# slot. Aging reorders within that scan; a run beyond it waits until the runs ahead of it have started.
QUEUE_SCAN_MIN = 256

# Hot-path statements, built once (the coordinator runs them every tick).
_LOCK_QUEUE = update(queue_lock).where(queue_lock.c.id == 1).values(version=queue_lock.c.version + 1)
_QUEUED = (select(runs.c.run_id, runs.c.workflow, runs.c.priority, runs.c.created_at, runs.c.seq, runs.c.owner,
                  runs.c.backfill_id, runs.c.tags, runs.c.partition_key, runs.c.partition_keys,
                  backfills.c.max_concurrency)
           .select_from(runs.outerjoin(backfills, runs.c.backfill_id == backfills.c.backfill_id))
           .where(runs.c.status == QUEUED, or_(runs.c.backfill_id.is_(None), backfills.c.status == IN_PROGRESS))
           .order_by(runs.c.priority.desc(), runs.c.seq).limit(bindparam("scan")))
_ROWS_BY_ID = select(runs).where(runs.c.run_id.in_(bindparam("ids", expanding=True)))
_RUNNING = select(runs.c.workflow, runs.c.backfill_id, runs.c.tags, runs.c.partition_key,
                  runs.c.partition_keys).where(runs.c.status == RUNNING)
_START = (update(runs).where(runs.c.run_id.in_(bindparam("ids", expanding=True)), runs.c.status == QUEUED)
          .values(status=RUNNING, started_at=bindparam("now")))
_FINISH_STATE = select(runs.c.run_id, runs.c.status, runs.c.attempt, runs.c.backfill_id,
                       runs.c.num_partitions).where(runs.c.run_id.in_(bindparam("ids", expanding=True)))
_FINISH = (update(runs).where(runs.c.run_id == bindparam("rid"))
           .values(status=bindparam("st"), error=bindparam("err"), ended_at=bindparam("end"),
                   started_at=func.coalesce(bindparam("begin"), runs.c.started_at)))
# Slots whose holder is no longer running (killed, canceled, requeued): the task that held them never
# reached its own release. Swept every poll interval rather than on each finish.
_RELEASE_ORPHAN_SLOTS = (update(pool_slots).where(
    pool_slots.c.holder_run.is_not(None),
    pool_slots.c.holder_run.not_in(select(runs.c.run_id).where(runs.c.status == RUNNING)))
    .values(holder_run=None, acquired_at=None))
_COUNT = (update(backfills).where(backfills.c.backfill_id == bindparam("bid"))
          .values(completed=backfills.c.completed + bindparam("c"), failed=backfills.c.failed + bindparam("f"),
                  canceled=backfills.c.canceled + bindparam("x"), updated_at=bindparam("now")))
_ACTIVE = or_(runs.c.status == QUEUED, runs.c.status == RUNNING)  # not IN: no per-call re-rendering
_ACTIVE_COUNTS = (select(runs.c.backfill_id, func.count())
                  .where(runs.c.owner == bindparam("r_owner"), _ACTIVE, runs.c.backfill_id.is_not(None))
                  .group_by(runs.c.backfill_id))
_ADVANCE_CURSOR = (update(backfills).where(backfills.c.backfill_id == bindparam("bid"),
                                           backfills.c.owner == bindparam("b_owner"),
                                           backfills.c.cursor == bindparam("old"),
                                           backfills.c.status == IN_PROGRESS)
                   .values(cursor=bindparam("new"), updated_at=bindparam("now")))
_INSERT_RUNS = insert(runs)
_INSERT_RUN_PARTITIONS = insert(run_partitions)
_INSERT_LOGS = insert(run_logs)


class Session:
    def __init__(self, conn):
        self.conn = conn

    # -- workers (one lease per process) -------------------------------------------------------
    def register_worker(self, worker_id: str, hostname: str, pid: int, now: float, expires_at: float) -> None:
        self.conn.execute(insert(workers).values(worker_id=worker_id, hostname=hostname, pid=pid,
                                                 started_at=now, expires_at=expires_at))

    def renew_worker(self, worker_id: str, expires_at: float) -> bool:
        result = self.conn.execute(update(workers).where(workers.c.worker_id == worker_id)
                                   .values(expires_at=expires_at))
        return result.rowcount == 1

    def remove_worker(self, worker_id: str) -> None:
        self.conn.execute(delete(workers).where(workers.c.worker_id == worker_id))

    def live_worker_ids(self, now: float) -> set[str]:
        return set(self.conn.execute(select(workers.c.worker_id).where(workers.c.expires_at >= now)).scalars())

    def expire_dead_workers(self, now: float) -> list[str]:
        dead = list(self.conn.execute(select(workers.c.worker_id).where(workers.c.expires_at < now)).scalars())
        if dead:
            self.conn.execute(delete(workers).where(workers.c.worker_id.in_(dead)))
        return dead

    # -- runs -----------------------------------------------------------------------------------
    def insert_runs(self, rows: list[dict[str, Any]]) -> None:
        """Insert new runs; ``row["keys"]`` lists the partition keys each run covers."""
        if not rows:
            return
        multi: list[dict[str, Any]] = []
        values = []
        for row in rows:
            keys = row.pop("keys")
            row["num_partitions"] = len(keys)
            row["partition_key"] = keys[0] if len(keys) == 1 else None
            row["partition_keys"] = dumps(list(keys)) if len(keys) > 1 else None
            if len(keys) > 1:
                multi.extend({"run_id": row["run_id"], "workflow": row["workflow"], "partition_key": k} for k in keys)
            values.append(row)
        self.conn.execute(_INSERT_RUNS, values)
        if multi:
            self.conn.execute(_INSERT_RUN_PARTITIONS, multi)

    def run_by_idempotency_key(self, workflow: str, key: str) -> Run | None:
        row = self.conn.execute(select(runs).where(runs.c.workflow == workflow, runs.c.idempotency_key == key)).first()
        return row_to_run(row) if row else None

    def get_run(self, run_id: str) -> Run | None:
        row = self.conn.execute(select(runs).where(runs.c.run_id == run_id)).first()
        return row_to_run(row) if row else None

    def run_owner(self, run_id: str) -> str | None:
        return self.conn.execute(select(runs.c.owner).where(runs.c.run_id == run_id)).scalar()

    def list_runs(self, workflow: str | None = None, status: str | Sequence[str] | None = None,
                  backfill_id: str | None = None, tags: Mapping[str, str] | None = None,
                  limit: int | None = 100) -> list[Run]:
        query = select(runs).order_by(runs.c.seq.desc())
        if workflow is not None:
            query = query.where(runs.c.workflow == workflow)
        if status is not None:
            query = query.where(runs.c.status.in_([status] if isinstance(status, str) else list(status)))
        if backfill_id is not None:
            query = query.where(runs.c.backfill_id == backfill_id)
        if not tags:
            return [row_to_run(r) for r in self.conn.execute(query.limit(limit))]
        result: list[Run] = []
        for row in self.conn.execute(query):  # tags are JSON: filter here, stop at the limit
            run_tags = loads(row.tags, {})
            if all(run_tags.get(k) == v for k, v in tags.items()):
                result.append(row_to_run(row))
                if limit is not None and len(result) >= limit:
                    break
        return result

    def run_ids_of_backfill(self, backfill_id: str) -> list[str]:
        return list(self.conn.execute(select(runs.c.run_id).where(runs.c.backfill_id == backfill_id)
                                      .order_by(runs.c.seq)).scalars())

    def active_runs_of(self, owner: str | None = None, backfill_ids: Sequence[str] | None = None) -> list:
        query = select(runs.c.run_id, runs.c.status, runs.c.owner, runs.c.backfill_id,
                       runs.c.cancel_requested).where(runs.c.status.in_((QUEUED, RUNNING)))
        if owner is not None:
            query = query.where(runs.c.owner == owner)
        if backfill_ids is not None:
            query = query.where(runs.c.backfill_id.in_(list(backfill_ids)))
        return list(self.conn.execute(query))

    def claim_runs(self, owner: str, now: float, limits: QueueLimits, capacity: int,
                   claimable: set[str]) -> list:
        """Move the runs this owner should start now from queued to running; returns their rows."""
        if capacity <= 0:
            return []
        self.conn.execute(_LOCK_QUEUE)  # serialise claimers (PostgreSQL row lock; SQLite holds its write lock)
        candidates = self.conn.execute(_QUEUED, {"scan": max(QUEUE_SCAN_MIN, 8 * capacity)}).all()
        if not any(c.owner == owner and c.workflow in claimable for c in candidates):
            return []
        need_tags = bool(limits.tag_limits)
        queued = [QueuedRun(c.run_id, c.workflow, c.priority, c.created_at, c.seq, c.owner, c.backfill_id,
                            c.max_concurrency, loads(c.tags, {}) if need_tags else {}, tuple(run_keys(c)))
                  for c in candidates]
        running = [ActiveRun(r.workflow, r.backfill_id, loads(r.tags, {}) if need_tags else {}, tuple(run_keys(r)))
                   for r in self.conn.execute(_RUNNING)]
        chosen = select_runs(queued, running, limits, now, owner, capacity, claimable)
        if not chosen:
            return []
        ids = [c.run_id for c in chosen]
        self.conn.execute(_START, {"ids": ids, "now": now})
        rows = {r.run_id: r for r in self.conn.execute(_ROWS_BY_ID, {"ids": ids})}
        return [rows[i] for i in ids]

    def finish_runs(self, outcomes: Sequence[Mapping[str, Any]], now: float) -> list[str]:
        """Record ended runs (from an executor or a cancel). Returns the run ids that changed.

        Each outcome: run_id, status, and optionally attempt, error, ended_at, logs, failed_partitions.
        A stale outcome (an older attempt, or a run already finished) is ignored.
        """
        if not outcomes:
            return []
        by_id = {o["run_id"]: o for o in outcomes}
        current = {}
        for chunk in _chunks(list(by_id), 500):
            for row in self.conn.execute(_FINISH_STATE, {"ids": chunk}):
                current[row.run_id] = row
        changed, updates, logs, key_errors = [], [], [], []
        counters: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
        for run_id, outcome in by_id.items():
            row = current.get(run_id)
            if row is None or row.status not in (QUEUED, RUNNING):
                continue
            if outcome.get("attempt") is not None and outcome["attempt"] != row.attempt:
                continue
            status = outcome["status"]
            failed_keys = outcome.get("failed_partitions") or {}
            updates.append({"rid": run_id, "st": status, "err": outcome.get("error"),
                            "end": outcome.get("ended_at", now), "begin": outcome.get("started_at")})
            changed.append(run_id)
            for t, level, message in outcome.get("logs") or ():
                logs.append({"run_id": run_id, "attempt": row.attempt, "ts": t, "level": level, "message": message})
            for key, error in failed_keys.items():
                key_errors.append({"rid": run_id, "k": key, "err": error})
            if row.backfill_id:
                c = counters[row.backfill_id]
                if status == SUCCESS:
                    c[0] += row.num_partitions - len(failed_keys)
                    c[1] += len(failed_keys)
                elif status == FAILED:
                    c[1] += row.num_partitions
                else:
                    c[2] += row.num_partitions
        if updates:
            self.conn.execute(_FINISH, updates)
        if logs:
            self.conn.execute(_INSERT_LOGS, logs)
        if key_errors:
            self.conn.execute(update(run_partitions).where(run_partitions.c.run_id == bindparam("rid"),
                                                           run_partitions.c.partition_key == bindparam("k"))
                              .values(error=bindparam("err")), key_errors)
        if counters:
            self.conn.execute(_COUNT, [{"bid": b, "c": c[0], "f": c[1], "x": c[2], "now": now}
                                       for b, c in counters.items()])
        return changed

    def request_cancel(self, run_ids: Sequence[str]) -> None:
        for chunk in _chunks(list(run_ids), 500):
            self.conn.execute(update(runs).where(runs.c.run_id.in_(chunk), runs.c.status == RUNNING)
                              .values(cancel_requested=True))

    def cancel_requested_runs(self, owner: str) -> list[str]:
        return list(self.conn.execute(select(runs.c.run_id).where(
            runs.c.owner == owner, runs.c.status == RUNNING, runs.c.cancel_requested.is_(True))).scalars())

    def adopt_runs(self, owner: str, now: float, live: set[str], backfill_ids: Sequence[str] = (),
                   run_ids: Sequence[str] = ()) -> int:
        """Take over the active runs of dead owners: queued ones move to ``owner``; running ones are
        queued again as a new attempt (their process is gone)."""
        scope = []
        if backfill_ids:
            scope.append(runs.c.backfill_id.in_(list(backfill_ids)))
        if run_ids:
            scope.append(runs.c.run_id.in_(list(run_ids)))
        if not scope:
            return 0
        orphan = and_(or_(*scope), runs.c.status.in_((QUEUED, RUNNING)),
                      or_(runs.c.owner.is_(None), runs.c.owner.not_in(list(live) or [""])))
        rows = list(self.conn.execute(select(runs.c.run_id, runs.c.status, runs.c.cancel_requested).where(orphan)))
        if not rows:
            return 0
        canceled = [r.run_id for r in rows if r.cancel_requested]
        if canceled:
            self.finish_runs([{"run_id": r, "status": CANCELED, "error": "canceled"} for r in canceled], now)
        running = [r.run_id for r in rows if r.status == RUNNING and not r.cancel_requested]
        queued = [r.run_id for r in rows if r.status == QUEUED]
        for chunk in _chunks(running, 500):
            self.conn.execute(update(runs).where(runs.c.run_id.in_(chunk)).values(
                status=QUEUED, attempt=runs.c.attempt + 1, owner=owner, started_at=None))
        for chunk in _chunks(queued, 500):
            self.conn.execute(update(runs).where(runs.c.run_id.in_(chunk)).values(owner=owner))
        return len(rows)

    def run_logs(self, run_id: str) -> list:
        return list(self.conn.execute(select(run_logs.c.attempt, run_logs.c.ts, run_logs.c.level, run_logs.c.message)
                                      .where(run_logs.c.run_id == run_id).order_by(run_logs.c.id)))

    def partition_status(self, workflow: str) -> dict[str, str]:
        """key → status of the latest run that covered it (``failed`` where a run marked the key failed).

        Canceled runs do not count: a key whose only runs were canceled is still missing."""
        latest: dict[str, tuple[int, str]] = {}
        for key, status, seq in self.conn.execute(
                select(runs.c.partition_key, runs.c.status, runs.c.seq)
                .where(runs.c.workflow == workflow, runs.c.partition_key.is_not(None), runs.c.status != CANCELED)):
            latest[key] = (seq, status)
        for key, status, seq, error in self.conn.execute(
                select(run_partitions.c.partition_key, runs.c.status, runs.c.seq, run_partitions.c.error)
                .select_from(run_partitions.join(runs, runs.c.run_id == run_partitions.c.run_id))
                .where(run_partitions.c.workflow == workflow, runs.c.status != CANCELED)):
            if key not in latest or latest[key][0] < seq:
                latest[key] = (seq, FAILED if error is not None and status == SUCCESS else status)
        return {key: status for key, (_, status) in latest.items()}

    # -- backfills ------------------------------------------------------------------------------
    def insert_backfill(self, row: dict[str, Any]) -> None:
        self.conn.execute(insert(backfills).values(**row))

    def backfill_row(self, backfill_id: str):
        return self.conn.execute(select(backfills).where(backfills.c.backfill_id == backfill_id)).first()

    def backfill_by_idempotency_key(self, key: str):
        return self.conn.execute(select(backfills).where(backfills.c.idempotency_key == key)).first()

    def backfill_status(self, backfill_id: str, include_run_ids: bool = True) -> BackfillStatus | None:
        row = self.backfill_row(backfill_id)
        if row is None:
            return None
        active = dict(self.conn.execute(select(runs.c.status, func.count()).where(
            runs.c.backfill_id == backfill_id, runs.c.status.in_((QUEUED, RUNNING))).group_by(runs.c.status)).all())
        run_ids = self.run_ids_of_backfill(backfill_id) if include_run_ids else []
        return row_to_backfill(row, run_ids, active.get(QUEUED, 0), active.get(RUNNING, 0))

    def list_backfills(self, status: str | Sequence[str] | None = None, workflow: str | None = None) -> list:
        query = select(backfills).order_by(backfills.c.created_at.desc())
        if status is not None:
            query = query.where(backfills.c.status.in_([status] if isinstance(status, str) else list(status)))
        rows = list(self.conn.execute(query))
        if workflow is not None:
            rows = [r for r in rows if workflow in loads(r.workflows, [])]
        return rows

    def update_backfill(self, backfill_id: str, **values: Any) -> None:
        self.conn.execute(update(backfills).where(backfills.c.backfill_id == backfill_id).values(**values))

    def acquire_backfill(self, backfill_id: str, owner: str, live: set[str], now: float) -> bool:
        """Take the backfill's lease when it has no live owner (or already is ours)."""
        result = self.conn.execute(update(backfills).where(
            backfills.c.backfill_id == backfill_id,
            or_(backfills.c.owner.is_(None), backfills.c.owner == owner,
                backfills.c.owner.not_in(list(live) or [""]))).values(owner=owner, updated_at=now))
        return result.rowcount == 1

    def release_backfills(self, owner: str) -> None:
        self.conn.execute(update(backfills).where(backfills.c.owner == owner).values(owner=None))

    def backfills_owned_by(self, owner: str) -> list:
        return list(self.conn.execute(select(backfills).where(backfills.c.owner == owner)))

    def active_counts(self, owner: str) -> dict[str, int]:
        """Queued + running runs per backfill, of the runs ``owner`` executes."""
        return dict(self.conn.execute(_ACTIVE_COUNTS, {"r_owner": owner}).all())

    def advance_cursor(self, backfill_id: str, owner: str, old: int, new: int, now: float) -> bool:
        """Move a backfill's cursor, only if ``owner`` still leads it, nobody moved it meanwhile and it is
        still in progress (not paused or canceled since we last looked)."""
        return self.conn.execute(_ADVANCE_CURSOR, {"bid": backfill_id, "b_owner": owner, "old": old, "new": new,
                                                   "now": now}).rowcount == 1

    def succeeded_keys_of_backfill(self, backfill_id: str) -> set[tuple[str, str]]:
        done: set[tuple[str, str]] = set()
        for row in self.conn.execute(select(runs.c.run_id, runs.c.workflow, runs.c.partition_key,
                                            runs.c.partition_keys, runs.c.scheduled_time)
                                     .where(runs.c.backfill_id == backfill_id, runs.c.status == SUCCESS)):
            keys = run_keys(row)
            if not keys and row.scheduled_time is not None:
                keys = [tick_key(dt(row.scheduled_time))]
            done.update((row.workflow, k) for k in keys)
        for workflow, key in self.conn.execute(
                select(run_partitions.c.workflow, run_partitions.c.partition_key)
                .select_from(run_partitions.join(runs, runs.c.run_id == run_partitions.c.run_id))
                .where(runs.c.backfill_id == backfill_id, run_partitions.c.error.is_not(None))):
            done.discard((workflow, key))
        return done

    # -- dynamic partitions ---------------------------------------------------------------------
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

    # -- pools ----------------------------------------------------------------------------------
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
        return free if taken == 1 else None

    def release_orphan_slots(self) -> None:
        self.conn.execute(_RELEASE_ORPHAN_SLOTS)

    def release_slot(self, pool: str, slot: int, run_id: str) -> None:
        self.conn.execute(update(pool_slots).where(pool_slots.c.pool == pool, pool_slots.c.slot == slot,
                                                   pool_slots.c.holder_run == run_id)
                          .values(holder_run=None, acquired_at=None))


def _chunks(items: list, size: int):
    for i in range(0, len(items), size):
        yield items[i:i + size]
