"""Backfills: their rows, counters, cursor and lease, each status change guarded by the lifecycle; and what a
backfill's runs add up to (per workflow, per cell of its grid, the keys it completed) — a part of ``Session``."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Integer, case, func, insert, literal_column, or_, select, update

from ..lifecycle import BACKFILL_TRANSITIONS, sources
from ..models import CANCELED, QUEUED, RUNNING, SUCCESS
from ..records import (
    BackfillRecord,
    GridCount,
    GridRun,
    NewBackfill,
    Outcome,
    RunCounts,
    utc,
)
from ..schedules import tick_key
from .codec import backfill_record, dumps, keys_of
from .errors import StorageRejected
from .run_rows import RunRows
from .schema import (
    backfill_workflows,
    backfills,
    run_partitions,
    runs,
)
from .sql import (
    _ACTIVE,
    _NOT_SUCCESS,
    KEEP,
    _chunks,
    _has_tag,
)


class BackfillRows(RunRows):
    """(It cancels a backfill's runs: the run statements are its base.)"""

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
            with self.savepoint():
                self.conn.execute(insert(backfills).values(**values))
                self.conn.execute(insert(backfill_workflows), [{"backfill_id": row.backfill_id, "workflow": w}
                                                               for w in dict.fromkeys(row.workflows)])
        except StorageRejected:  # its idempotency key is taken (another submitter was first), or a value refused
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
