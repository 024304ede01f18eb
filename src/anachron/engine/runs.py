"""Turning planned runs into run rows, and run rows into executor jobs."""

from __future__ import annotations

import uuid
from datetime import datetime, timezone

from zoneinfo import ZoneInfo

from ..models import BACKFILL_TAG, QUEUED
from ..partitions import MultiPartitions
from ..planning import run_idempotency_key
from ..runtime import RunJob
from ..storage.codec import dt, dumps, loads, run_keys


def new_run_id() -> str:
    return uuid.uuid4().hex


def partition_window(workflow, keys) -> tuple[datetime, datetime] | None:
    """The time span a run's keys cover (first and last key, either order), or ``None``."""
    pdef = workflow.partitions
    if pdef is None or not keys or not pdef.is_time_based:
        return None
    first = pdef.time_window(keys[0])
    last = first if len(keys) == 1 else pdef.time_window(keys[-1])
    return (min(first.start, last.start), max(first.end, last.end))


def partition_timezone(pdef) -> ZoneInfo:
    """The timezone of a time-based partitions definition (its time dimension's, for multi)."""
    if isinstance(pdef, MultiPartitions):
        pdef = pdef.dimensions[pdef.time_dimension_name]
    return ZoneInfo(pdef.timezone)


def materialize_rows(repo, led, row, count: int, now: float) -> list[dict]:
    """Rows for the next ``count`` planned runs of a backfill this process leads."""
    request = led.request
    params_all = request.get("params") or {}
    config = request.get("config") or {}
    backfill_tags = request.get("tags") or {}
    plan_now = datetime.fromisoformat(request["plan"]["now"]).timestamp()
    rows = []
    encoded: dict[str, tuple[str, str]] = {}  # per workflow: its runs' params and tags, as JSON, once
    for planned in led.plan.runs(row.cursor, row.cursor + count):
        workflow = repo._workflows[planned.workflow]
        if planned.workflow not in encoded:
            encoded[planned.workflow] = (
                dumps({**params_all, **config.get(planned.workflow, {})}),
                dumps({**workflow.tags, **backfill_tags, BACKFILL_TAG: led.backfill_id}))
        params_json, tags_json = encoded[planned.workflow]
        keys = list(planned.keys)
        window = None
        if planned.scheduled_time is not None:
            logical = planned.scheduled_time.timestamp()
            scheduled = logical
            keys_for_row: list[str] = []
        else:
            window = partition_window(workflow, keys)
            logical = window[1].timestamp() if window else plan_now
            scheduled = None
            keys_for_row = keys
        rows.append({
            "run_id": new_run_id(), "workflow": planned.workflow, "status": QUEUED, "keys": keys_for_row,
            "params": params_json, "tags": tags_json, "priority": request["priority"],
            "backfill_id": led.backfill_id, "idempotency_key": run_idempotency_key(led.backfill_id, keys),
            "attempt": 1, "logical_time": logical, "scheduled_time": scheduled, "created_at": now,
            "window_start": window[0].timestamp() if window else None,
            "window_end": window[1].timestamp() if window else None,
            "environ": "{}", "owner": repo._coordinator.worker_id, "cancel_requested": False,
        })
    return rows


def job_from_row(repo, row) -> RunJob:
    workflow = repo._workflows[row.workflow]
    keys = run_keys(row)
    logical = dt(row.logical_time) or datetime.now(timezone.utc)
    window = None
    if row.window_start is not None:
        tz = partition_timezone(workflow.partitions)
        window = (dt(row.window_start).astimezone(tz), dt(row.window_end).astimezone(tz))
    return RunJob(
        run_id=row.run_id, attempt=row.attempt, workflow=row.workflow,
        workflow_ref=(workflow.module, workflow.qualname, workflow.source_file),
        partition_key=row.partition_key, partition_keys=keys, partition_window=window,
        logical_time=logical, scheduled_time=dt(row.scheduled_time), params=loads(row.params, {}),
        tags=loads(row.tags, {}), backfill_id=row.backfill_id, environ=loads(row.environ, {}),
    )
