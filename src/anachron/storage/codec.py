"""Rows ↔ models: JSON columns and Unix-second timestamps."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any

from ..models import BackfillStatus, Run


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def loads(text: str | None, default: Any = None) -> Any:
    return default if text is None else json.loads(text)


def ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def dt(value: float | None) -> datetime | None:
    return None if value is None else datetime.fromtimestamp(value, timezone.utc)


def run_keys(row) -> list[str]:
    if row.partition_keys is not None:
        return json.loads(row.partition_keys)
    return [row.partition_key] if row.partition_key is not None else []


def row_to_run(row) -> Run:
    return Run(
        run_id=row.run_id, workflow=row.workflow, status=row.status, partition_key=row.partition_key,
        partition_keys=run_keys(row), params=loads(row.params, {}), tags=loads(row.tags, {}),
        priority=row.priority, backfill_id=row.backfill_id, idempotency_key=row.idempotency_key,
        attempt=row.attempt, logical_time=dt(row.logical_time), scheduled_time=dt(row.scheduled_time),
        created_at=dt(row.created_at), started_at=dt(row.started_at), ended_at=dt(row.ended_at),
        error=row.error, run_name=row.run_name,
    )


def row_to_backfill(row, run_ids: list[str], queued: int = 0, running: int = 0) -> BackfillStatus:
    return BackfillStatus(
        backfill_id=row.backfill_id, status=row.status, total_partitions=row.total_partitions,
        completed_partitions=row.completed, failed_partitions=row.failed, canceled_partitions=row.canceled,
        run_ids=run_ids, error=row.error, tags=loads(row.tags, {}), workflows=loads(row.workflows, []),
        total_runs=row.total_runs, queued_runs=queued, running_runs=running,
        created_at=dt(row.created_at), ended_at=dt(row.ended_at),
    )
