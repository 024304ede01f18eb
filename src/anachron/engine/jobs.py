"""Run rows into executor jobs, and the time span a run covers."""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from ..clock import SYSTEM_CLOCK
from ..definitions import Workflow
from ..loading import ref_of
from ..models import FAILED, QUEUED
from ..params import decode_params
from ..partitions import MultiPartitions, PartitionsDefinition, TimeWindowPartitions
from ..records import NewRun, RunRecord
from ..runtime import RunJob

_RUN_ID_PREFIX = os.urandom(8).hex()
_RUN_ID_COUNTER = itertools.count(int.from_bytes(os.urandom(4), "big"))


def new_run_id() -> str:
    """A new run id: 32 hex digits, 64 random bits of this process then a counter (unique without a
    system call per id; ``next`` on a counter is atomic under the GIL)."""
    return f"{_RUN_ID_PREFIX}{next(_RUN_ID_COUNTER):016x}"


def partition_window(workflow: Workflow, keys: Sequence[str]) -> tuple[datetime, datetime] | None:
    """The time span a run's keys cover (first and last key, either order), or ``None``."""
    pdef = workflow.partitions
    if pdef is None or not keys or not pdef.is_time_based:
        return None
    first = pdef.time_window(keys[0])
    last = first if len(keys) == 1 else pdef.time_window(keys[-1])
    return (min(first.start, last.start), max(first.end, last.end))


def new_run(*, workflow: str, params: str, tags: str, priority: int, logical_time: float, created_at: float,
            owner: str | None, keys: Sequence[str] = (), window: tuple[float, float] | None = None,
            scheduled_time: float | None = None, backfill_id: str | None = None, idempotency_key: str | None = None,
            plan_index: int | None = None, run_name: str | None = None, environ: str = "{}",
            error: str | None = None) -> NewRun:
    """A run to insert (a new id, attempt 1): queued, or failed at once with ``error`` (a malformed logical
    time). The one way every run is built — a manual run, a schedule's tick, a backfill's window."""
    return NewRun(new_run_id(), workflow, FAILED if error else QUEUED, tuple(keys), params, tags, priority,
                  backfill_id, idempotency_key, 1, logical_time, window[0] if window else None,
                  window[1] if window else None, scheduled_time, created_at, run_name, environ, owner, error,
                  created_at if error else None, plan_index=plan_index)


def tick_partition(workflow: Workflow, tick: datetime) -> tuple[tuple[str, ...], tuple[datetime, datetime] | None]:
    """The partition a schedule tick of ``workflow`` runs, live or replayed by a backfill: the last time window
    that ended by the tick (as a partitioned schedule does in Dagster), and its window. None (``()``) for a
    workflow without time partitions, or when no window has ended by the tick yet."""
    pdef = workflow.partitions
    if not isinstance(pdef, TimeWindowPartitions):
        return (), None
    ended = pdef.get_partition_keys(current_time=tick)
    if not len(ended):
        return (), None
    keys = (ended[len(ended) - 1],)
    return keys, partition_window(workflow, keys)


def partition_timezone(pdef: PartitionsDefinition) -> ZoneInfo:
    """The timezone of a time-based partitions definition (its time dimension's, for multi)."""
    if isinstance(pdef, MultiPartitions) and pdef.time_dimension_name is not None:
        pdef = pdef.dimensions[pdef.time_dimension_name]
    if not isinstance(pdef, TimeWindowPartitions):
        raise TypeError(f"{pdef!r} is not time-based")
    return ZoneInfo(pdef.timezone)


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def job_from_record(workflow: Workflow, run: RunRecord, log_limit: int) -> RunJob:
    window = None
    if run.window_start is not None and run.window_end is not None and workflow.partitions is not None:
        tz = partition_timezone(workflow.partitions)
        window = (_utc(run.window_start).astimezone(tz), _utc(run.window_end).astimezone(tz))
    logical = _utc(run.logical_time) if run.logical_time is not None else SYSTEM_CLOCK.now()
    scheduled = _utc(run.scheduled_time) if run.scheduled_time is not None else None
    return RunJob(run.run_id, run.attempt, ref_of(workflow), run.keys, window, logical, scheduled,
                  decode_params(run.params), dict(run.tags), run.backfill_id, dict(run.environ), log_limit)

