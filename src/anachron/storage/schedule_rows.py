"""The statements of schedules and of the daemon's look-outs: a part of ``Session``.

Schedule state (paused, cursor) is one row per ``(workflow, schedule id)``, shared by every process.
Cursors only move forward (``max``), so two daemons evaluating the same schedule at once cannot move one
back; the runs of ticks are inserted with ``ON CONFLICT DO NOTHING`` on their idempotency key
(``schedule:<id>:<tick>``), so a tick that two daemons (or a daemon and a backfill) reach together runs once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import Any

from sqlalchemy import and_, case, or_, select, update

from ..models import CANCELED, IN_PROGRESS, QUEUED, REQUESTED, RUNNING, UPSTREAM_FAILED
from ..records import ScheduleState
from ..schedules import SCHEDULE_KEY_PREFIX, run_key_prefix, schedule_of_key, tick_key
from .schema import backfills, runs, schedules, workers
from .sql import SqlRows


class ScheduleRows(SqlRows):
    """Schedule state and the daemon's look-outs (see the module note)."""

    # -- schedule state ------------------------------------------------------------------------------
    def schedule_states(self) -> dict[tuple[str, str], ScheduleState]:
        return {(r[0], r[1]): ScheduleState(r[0], r[1], bool(r[2]), r[3], r[4]) for r in self.conn.execute(
            select(schedules.c.workflow, schedules.c.schedule_id, schedules.c.paused, schedules.c.cursor,
                   schedules.c.updated_at))}

    def init_schedules(self, keys: Sequence[tuple[str, str]], cursor: float | None, now: float) -> None:
        """Rows for schedules that have none yet (not paused, at ``cursor``); existing rows are kept."""
        if keys:
            self._st.insert_schedules_once.execute(self.cursor, [(w, s, False, cursor, now) for w, s in keys])

    def set_schedule_paused(self, workflow: str, schedule_id: str, paused: bool, now: float) -> bool:
        """Pause or resume a schedule; whether that changed anything."""
        self.init_schedules([(workflow, schedule_id)], None, now)
        return bool(self.conn.execute(update(schedules).where(
            schedules.c.workflow == workflow, schedules.c.schedule_id == schedule_id,
            schedules.c.paused.is_not(paused)).values(paused=paused, updated_at=now)).rowcount)

    def lock_schedule(self, workflow: str, schedule_id: str, now: float) -> None:
        """Hold the schedule's row lock until the transaction ends (its row created first if need be, as a
        pause would): what is decided about the schedule's backfills is decided by one process at a time."""
        self.init_schedules([(workflow, schedule_id)], None, now)
        self.conn.execute(select(schedules.c.workflow).where(
            schedules.c.workflow == workflow, schedules.c.schedule_id == schedule_id).with_for_update())

    def advance_schedules(self, cursors: Sequence[tuple[str, str, float]], now: float) -> None:
        """Move each ``(workflow, schedule id)`` cursor forward to the given tick (never back)."""
        self._st.advance_schedule.executemany(self.cursor, [(c, now, w, s, c) for w, s, c in cursors])

    def active_schedule_runs(self) -> set[tuple[str, str]]:
        """``(workflow, schedule id)`` of every schedule with a queued or running tick run."""
        found: set[tuple[str, str]] = set()
        for workflow, key in self.conn.execute(
                select(runs.c.workflow, runs.c.idempotency_key).where(
                    or_(runs.c.status == QUEUED, runs.c.status == RUNNING),
                    runs.c.idempotency_key.startswith(SCHEDULE_KEY_PREFIX, autoescape=True))):
            schedule_id = schedule_of_key(key)
            if schedule_id is not None:
                found.add((workflow, schedule_id))
        return found

    def last_ticks(self, schedules_: Sequence[tuple[str, str]]) -> dict[tuple[str, str], float]:
        """``(workflow, schedule id)`` → the latest tick that has a run (live, or a backfill's sharing its key),
        read off the tick runs' keys (``schedule:<id>:<tick>``, in time order) by the (workflow, key) index.
        Schedules none of whose ticks has run are left out."""
        found: dict[tuple[str, str], float] = {}
        for workflow, schedule_id in schedules_:
            prefix = run_key_prefix(schedule_id)
            for (key,) in self.conn.execute(select(runs.c.idempotency_key).where(
                    # bounds that share the prefix: a database's collation may order punctuation its own way
                    runs.c.workflow == workflow, runs.c.idempotency_key >= prefix + "0",
                    runs.c.idempotency_key <= prefix + "99999").order_by(runs.c.idempotency_key.desc()).limit(20)):
                if schedule_of_key(key) == schedule_id:  # not the key of a schedule whose id extends this one
                    found[(workflow, schedule_id)] = datetime.fromisoformat(key[len(prefix):]).timestamp()
                    break
        return found

    def taken_tick_keys(self, workflow: str, first: str, last: str) -> set[str]:
        """The idempotency keys from ``first`` to ``last`` (tick run keys of one schedule) that runs have."""
        return set(self.conn.execute(select(runs.c.idempotency_key).where(
            runs.c.workflow == workflow, runs.c.idempotency_key >= first, runs.c.idempotency_key <= last)).scalars())

    def tick_statuses(self, workflow: str, first: str, last: str) -> dict[str, str]:
        """Tick (``schedules.tick_key``) → the status of the latest run of that tick, live or backfilled,
        for the ticks from ``first`` to ``last``; canceled runs do not count (as for partitions)."""
        lo, hi = datetime.fromisoformat(first).timestamp(), datetime.fromisoformat(last).timestamp()
        latest: dict[float, tuple[int, str]] = {}
        for scheduled, status, seq in self.conn.execute(
                select(runs.c.scheduled_time, runs.c.status, runs.c.seq).where(
                    runs.c.workflow == workflow, runs.c.scheduled_time >= lo, runs.c.scheduled_time <= hi,
                    runs.c.status.not_in((CANCELED, UPSTREAM_FAILED)))):
            if scheduled not in latest or latest[scheduled][0] < seq:
                latest[scheduled] = (seq, status)
        return {tick_key(datetime.fromtimestamp(t, timezone.utc)): status for t, (_, status) in latest.items()}

    # -- what nobody alive is looking after ----------------------------------------------------------
    def unled_backfills(self, now: float) -> list[str]:
        """Backfills waiting for a leader: requested, or in progress under a process whose lease ran out."""
        live = select(workers.c.worker_id).where(workers.c.expires_at >= now)
        return list(self.conn.execute(select(backfills.c.backfill_id).where(
            backfills.c.status.in_([REQUESTED, IN_PROGRESS]),
            or_(backfills.c.owner.is_(None), backfills.c.owner.not_in(live)))
            .order_by(backfills.c.created_at)).scalars())

    def orphan_runs(self, now: float) -> list[str]:
        """Active runs outside any backfill whose process is gone (a backfill's are adopted with it)."""
        live = select(workers.c.worker_id).where(workers.c.expires_at >= now)
        return list(self.conn.execute(select(runs.c.run_id).where(
            or_(runs.c.status == QUEUED, runs.c.status == RUNNING), runs.c.backfill_id.is_(None),
            or_(runs.c.owner.is_(None), runs.c.owner.not_in(live)))).scalars())

    def attach_runs(self, backfill_id: str, workflow: str, keys: Sequence[str],
                    plan_indexes: Mapping[str, int] | None = None) -> list[tuple[str, str]]:
        """Make the runs with these idempotency keys (tick runs that another process created first) part of
        a backfill, unless they already belong to one; returns ``(run id, status)`` of those attached.
        ``plan_indexes``: idempotency key → the run's position in the backfill's plan."""
        if not keys:
            return []
        where = and_(runs.c.workflow == workflow, runs.c.idempotency_key.in_(list(keys)),
                     runs.c.backfill_id.is_(None))
        found = [(r[0], r[1]) for r in self.conn.execute(
            select(runs.c.run_id, runs.c.status).where(where).with_for_update())]
        if found:
            values: dict[str, Any] = {"backfill_id": backfill_id}
            if plan_indexes:
                values["plan_index"] = case(dict(plan_indexes), value=runs.c.idempotency_key, else_=None)
            self.conn.execute(update(runs).where(runs.c.run_id.in_([r[0] for r in found])).values(**values))
        return found
