"""Rows ↔ records: JSON columns, partition-key columns, and the column order of full-row reads."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ..records import BackfillRecord, RunRecord

_EMPTY: tuple[str, ...] = ()


def dumps(value: Any) -> str:
    """Compact JSON; anything that is not plain JSON is a bug upstream (params are encoded before)."""
    return json.dumps(value, separators=(",", ":"))


def loads(text: str | None, default: Any = None) -> Any:
    return default if text is None else json.loads(text)


def keys_columns(keys: Sequence[str]) -> tuple[str | None, str | None, int]:
    """A run's keys as stored: ``partition_key`` for one key, a JSON list in ``partition_keys`` for more."""
    n = len(keys)
    if n == 1:
        return keys[0], None, 1
    return None, (dumps(list(keys)) if n else None), n


def keys_of(partition_key: str | None, partition_keys: str | None) -> tuple[str, ...]:
    if partition_keys is not None:
        return tuple(json.loads(partition_keys))
    return (partition_key,) if partition_key is not None else _EMPTY


def tags_of(text: str | None) -> Mapping[str, str]:
    return json.loads(text) if text and text != "{}" else {}


def run_record(row: Any) -> RunRecord:
    """A ``RunRecord`` from a row of ``select(runs)``."""
    m = row._mapping
    return RunRecord(
        seq=m["seq"], run_id=m["run_id"], workflow=m["workflow"], status=m["status"],
        keys=keys_of(m["partition_key"], m["partition_keys"]), params=m["params"], tags=tags_of(m["tags"]),
        priority=m["priority"], backfill_id=m["backfill_id"], idempotency_key=m["idempotency_key"],
        attempt=m["attempt"], logical_time=m["logical_time"], window_start=m["window_start"],
        window_end=m["window_end"], scheduled_time=m["scheduled_time"], created_at=m["created_at"],
        started_at=m["started_at"], ended_at=m["ended_at"], error=m["error"], run_name=m["run_name"],
        environ=tags_of(m["environ"]), owner=m["owner"], cancel_requested=bool(m["cancel_requested"]),
    )


def backfill_record(row: Any) -> BackfillRecord:
    """A ``BackfillRecord`` from a row of ``select(backfills)``."""
    m = row._mapping
    return BackfillRecord(
        backfill_id=m["backfill_id"], status=m["status"], workflows=tuple(json.loads(m["workflows"])),
        request=json.loads(m["request"]), total_partitions=m["total_partitions"], total_runs=m["total_runs"],
        cursor=m["cursor"], completed=m["completed"], failed=m["failed"], canceled=m["canceled"],
        max_concurrency=m["max_concurrency"], priority=m["priority"], tags=tags_of(m["tags"]),
        idempotency_key=m["idempotency_key"], owner=m["owner"], cancel_requested=bool(m["cancel_requested"]),
        error=m["error"], created_at=m["created_at"], updated_at=m["updated_at"], ended_at=m["ended_at"],
    )
