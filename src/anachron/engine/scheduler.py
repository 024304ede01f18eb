"""Live schedules: which ticks are due, and their runs, in one transaction per evaluation.

The decision for each schedule is ``schedules.plan_ticks`` (pure: the schedule, its cursor, ``now``) and
``schedules.overlap_allows``; this module reads the shared state, asks, and writes the answer: the runs of
the ticks that fire (keyed ``schedule:<id>:<tick>``, inserted once, so two daemons or a restart never run
a tick twice) and the cursors moved forward. Memory (when each schedule is next due) changes only after
the transaction commits, so a retried transaction decides again from storage.

A tick's run: logical time = the tick; tags = the workflow's + ``anachron/schedule``; params = the
workflow's defaults. A workflow with time partitions (one dimension) runs the last partition that ended
by the tick, as a partitioned schedule does in Dagster.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ..clock import logical_time
from ..definitions import Workflow, priority_of
from ..models import OVERLAP_TAG, REGULAR_PRIORITY, SCHEDULE_TAG, ScheduleStatus
from ..params import encode_params
from ..partitions import TimeWindowPartitions
from ..records import NewRun, ScheduleState
from ..schedules import Schedule, overlap_allows, plan_ticks, run_key
from ..storage.codec import dumps
from .context import EngineContext
from .jobs import new_run, tick_partition

if TYPE_CHECKING:
    from ..storage.contract import StoreSession as Session

log = logging.getLogger("anachron.daemon")
UTC = timezone.utc


@dataclass(frozen=True)
class Fired:
    workflow: str
    schedule_id: str
    tick: datetime
    run_id: str | None  # None: another process (a daemon, a backfill) had already created the tick's run


@dataclass(frozen=True)
class Skipped:
    workflow: str
    schedule_id: str
    first: datetime
    last: datetime
    why: str


@dataclass
class Evaluation:
    """What one evaluation did, and when the next one is due (``None``: no schedule has a next tick)."""

    fired: list[Fired] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    due_again: datetime | None = None


class _Entry:
    """One schedule of one workflow, with what its runs share (computed once)."""

    __slots__ = ("workflow", "schedule", "key", "params", "tags", "priority", "time_partitions")

    def __init__(self, workflow: Workflow, schedule: Schedule):
        self.workflow = workflow
        self.schedule = schedule
        self.key = (workflow.name, schedule.id)
        try:
            workflow.validate_params({}, complete=True)
        except ValueError as exc:
            raise ValueError(f"schedule {schedule.id!r} of workflow {workflow.name!r} cannot run: its runs get "
                             f"the workflow's default parameters, and {exc}") from None
        if workflow.partitions is not None and not isinstance(workflow.partitions, TimeWindowPartitions):
            raise ValueError(f"schedule {schedule.id!r} of workflow {workflow.name!r} cannot run: a tick runs the time "
                             f"partition that ended by it, and the workflow is partitioned by "
                             f"{workflow.partitions!r} (not time windows); backfill its partitions instead")
        self.params = encode_params({})
        tags = {**workflow.tags, SCHEDULE_TAG: schedule.id}
        if schedule.overlap in ("buffer", "skip"):  # one run of the schedule executes at a time
            tags[OVERLAP_TAG] = f"{workflow.name}/{schedule.id}"
        self.tags = dumps(tags)
        self.priority = priority_of(tags, REGULAR_PRIORITY)
        self.time_partitions = isinstance(workflow.partitions, TimeWindowPartitions)


class ScheduleEvaluator:
    def __init__(self, engine: EngineContext):
        self.engine = engine
        self.entries = [_Entry(wf, s) for wf in engine.registry.values() for s in wf.schedules]
        self._due: dict[tuple[str, str], datetime | None] = {}  # when each schedule is next due (memory)

    def __len__(self) -> int:
        return len(self.entries)

    def evaluate(self, now: datetime) -> Evaluation:
        """Evaluate every schedule due at ``now`` (all of them the first time): one transaction."""
        if not self.entries:
            return Evaluation()
        due_entries = [e for e in self.entries if e.key not in self._due or _at_or_before(self._due[e.key], now)]
        if not due_entries:
            return Evaluation(due_again=_earliest(self._due.values()))
        result, due = self.engine.storage.run(lambda s: self._evaluate(s, due_entries, now))
        self._due.update(due)
        result.due_again = _earliest(self._due.values())
        return result

    def forget(self) -> None:
        """Evaluate every schedule again next time (its state may have changed in another process)."""
        self._due.clear()

    def _evaluate(self, s: Session, entries: list[_Entry], now: datetime
                  ) -> tuple[Evaluation, dict[tuple[str, str], datetime | None]]:
        result = Evaluation()
        due: dict[tuple[str, str], datetime | None] = {}
        ts = now.timestamp()
        states = s.schedule_states()
        new = [e.key for e in entries if e.key not in states]
        if new:  # first seen now: they start from now (nothing before a schedule existed is due)
            s.init_schedules(new, ts, ts)
            states.update({k: ScheduleState(k[0], k[1], False, ts, ts) for k in new})
        active: set[tuple[str, str]] | None = None
        rows: list[NewRun] = []
        planned: list[tuple[_Entry, datetime]] = []
        cursors: list[tuple[str, str, float]] = []
        for entry in entries:
            state = states[entry.key]
            cursor = datetime.fromtimestamp(state.cursor, UTC) if state.cursor is not None else None
            plan = plan_ticks(entry.schedule, cursor, now)
            due[entry.key] = plan.due_again
            if plan.cursor != cursor:
                cursors.append((entry.workflow.name, entry.schedule.id, plan.cursor.timestamp()))
            if plan.skipped is not None:
                result.skipped.append(Skipped(*entry.key, *plan.skipped,
                                              f"missed while no daemon ran (recover_missed="
                                              f"{entry.schedule.recover_missed})"))
            if not plan.fire:
                continue
            if state.paused:
                result.skipped.append(Skipped(*entry.key, plan.fire[0], plan.fire[-1], "the schedule is paused"))
                continue
            if entry.schedule.overlap == "skip":
                if active is None:
                    active = s.active_schedule_runs()
                if not overlap_allows("skip", entry.key in active):
                    result.skipped.append(Skipped(*entry.key, plan.fire[0], plan.fire[-1],
                                                  "the previous run is still active (overlap=skip)"))
                    continue
            for tick in plan.fire:
                row = self._row(entry, tick, ts)
                if row is None:
                    result.skipped.append(Skipped(*entry.key, tick, tick, "no partition of the workflow had ended "
                                                                          "by the tick"))
                    continue
                rows.append(row)
                planned.append((entry, tick))
        inserted = s.insert_runs_once(rows)
        s.advance_schedules(cursors, ts)
        for (entry, tick), row in zip(planned, rows):
            result.fired.append(Fired(*entry.key, tick, row.run_id if row.run_id in inserted else None))
        return result, due

    def _row(self, entry: _Entry, tick: datetime, now: float) -> NewRun | None:
        """The run of a tick; ``None`` for a partitioned workflow by whose tick no partition has ended yet."""
        keys, window = tick_partition(entry.workflow, tick) if entry.time_partitions else ((), None)
        if entry.time_partitions and not keys:
            return None
        logical = logical_time(submitted=tick, tick=tick, window=window)
        return new_run(workflow=entry.workflow.name, keys=keys, params=entry.params, tags=entry.tags,
                       priority=entry.priority, idempotency_key=run_key(entry.schedule.id, tick),
                       logical_time=logical.timestamp(),
                       window=(window[0].timestamp(), window[1].timestamp()) if window else None,
                       scheduled_time=tick.timestamp(), created_at=now, owner=self.engine.worker_id)


def _at_or_before(due: datetime | None, now: datetime) -> bool:
    return due is not None and due <= now


def _earliest(values: Iterable[datetime | None]) -> datetime | None:
    found = [v for v in values if v is not None]
    return min(found) if found else None


# -- what users see and change ------------------------------------------------------------------------
def schedule_statuses(engine: EngineContext, workflow: str | None = None) -> list[ScheduleStatus]:
    """Every schedule of the repository's workflows (or of one), with its shared state."""
    chosen = [engine.registry.lookup(workflow)] if workflow is not None else list(engine.registry.values())
    keys = [(wf.name, sched.id) for wf in chosen for sched in wf.schedules]
    states, last = engine.storage.run(lambda s: (s.schedule_states(), s.last_ticks(keys)), write=False)
    now = engine.now()
    return [_status(wf, sched, states.get((wf.name, sched.id)), now, last.get((wf.name, sched.id)))
            for wf in chosen for sched in wf.schedules]


def set_paused(engine: EngineContext, workflow: str, schedule_id: str, paused: bool) -> ScheduleStatus:
    """Pause or resume one schedule (visible to every process at its next evaluation)."""
    wf = engine.registry.lookup(workflow)
    sched = wf.get_schedule(schedule_id)
    now = engine.now_ts()

    def change(s: Session) -> ScheduleState | None:
        s.set_schedule_paused(wf.name, sched.id, paused, now)
        return s.schedule_states().get((wf.name, sched.id))

    state = engine.storage.run(change)
    log.info("schedule %s/%s %s", wf.name, sched.id, "paused" if paused else "resumed")
    last = engine.storage.run(lambda s: s.last_ticks([(wf.name, sched.id)]), write=False)
    return _status(wf, sched, state, engine.now(), last.get((wf.name, sched.id)))


def _status(wf: Workflow, sched: Schedule, state: ScheduleState | None, now: datetime,
            last_tick: float | None) -> ScheduleStatus:
    """``last_tick``: the latest tick that ran (``None`` until one has: a daemon's first look at a schedule is
    no tick). ``next_tick``: the first tick after the cursor — the last tick evaluated, or when a daemon first
    saw the schedule — (in the past when no daemon ran for a while), or after ``now`` for a schedule no daemon
    has evaluated yet."""
    cursor = datetime.fromtimestamp(state.cursor, UTC) if state is not None and state.cursor is not None else None
    return ScheduleStatus(wf.name, sched.id, sched.cron, sched.timezone, sched.recover_missed, sched.overlap,
                          bool(state and state.paused),
                          datetime.fromtimestamp(last_tick, UTC) if last_tick is not None else None,
                          sched.next_tick(cursor or now))
