"""The data every layer shares: runs, backfills, their statuses and queue settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .estimate import Estimate

# Run statuses
QUEUED, RUNNING, SUCCESS, FAILED, CANCELED = "queued", "running", "success", "failed", "canceled"
RUN_STATUSES = (QUEUED, RUNNING, SUCCESS, FAILED, CANCELED)
ACTIVE_RUN_STATUSES = (QUEUED, RUNNING)
FINISHED_RUN_STATUSES = (SUCCESS, FAILED, CANCELED)

# Partition statuses (partition_status)
MISSING = "missing"

# Backfill statuses
REQUESTED, IN_PROGRESS, PAUSED, COMPLETED = "requested", "in_progress", "paused", "completed"
BACKFILL_STATUSES = (REQUESTED, IN_PROGRESS, PAUSED, COMPLETED, FAILED, CANCELED)
ACTIVE_BACKFILL_STATUSES = (REQUESTED, IN_PROGRESS, PAUSED)
FINISHED_BACKFILL_STATUSES = (COMPLETED, FAILED, CANCELED)

BACKFILL_PRIORITY = -10
REGULAR_PRIORITY = 0
PRIORITY_TAG = "anachron/priority"
BACKFILL_TAG = "anachron/backfill"
RERUN_OF_TAG = "anachron/rerun_of"
SCHEDULE_TAG = "anachron/schedule"  # on a tick's run: the schedule id
TRIGGER_TAG = "anachron/trigger"  # on a schedule backfill: the schedule (trigger) id it replays
OVERLAP_TAG = "anachron/overlap"  # on a tick's run of an overlap="buffer" or "skip" schedule: "<workflow>/<schedule>"


class NotFoundError(LookupError):
    """A run or backfill id that storage does not know."""

    def __str__(self) -> str:  # LookupError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "not found"


@dataclass(frozen=True)
class Run:
    run_id: str
    workflow: str
    status: str
    partition_key: str | None
    partition_keys: list[str]
    params: dict[str, Any]
    tags: dict[str, str]
    priority: int
    backfill_id: str | None
    idempotency_key: str | None
    attempt: int
    logical_time: datetime | None
    scheduled_time: datetime | None
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    error: str | None
    run_name: str | None = None

    @property
    def is_finished(self) -> bool:
        return self.status in FINISHED_RUN_STATUSES


@dataclass(frozen=True)
class BackfillStatus:
    backfill_id: str
    status: str
    total_partitions: int
    completed_partitions: int
    failed_partitions: int
    canceled_partitions: int
    run_ids: list[str]
    error: str | None
    tags: dict[str, str]
    workflows: list[str] = field(default_factory=list)
    total_runs: int = 0
    queued_runs: int = 0
    running_runs: int = 0
    created_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def is_finished(self) -> bool:
        """Ended, with final counts: a canceled backfill is ``canceled`` at once, but its leader stops its
        running runs and counts what will never run before it sets ``ended_at``."""
        return self.status in FINISHED_BACKFILL_STATUSES and self.ended_at is not None


@dataclass(frozen=True)
class BackfillResult:
    backfill_id: str | None
    num_partitions: int
    num_runs: int
    status: str
    completed: int
    failed: int
    canceled: int
    run_ids: list[str]
    is_dry_run: bool
    partition_keys: Sequence[str]
    plan: Sequence[Sequence[str]]
    #: how long it would take (a dry run's; ``None`` otherwise): see ``anachron.estimate``
    estimate: Estimate | None = None


@dataclass(frozen=True)
class ScheduleStatus:
    """A schedule as every process sees it: its definition, whether it is paused, the last tick evaluated
    (run, or passed over) and the next one due."""

    workflow: str
    schedule_id: str
    cron: str
    timezone: str
    recover_missed: str
    overlap: str
    paused: bool
    last_tick: datetime | None
    next_tick: datetime | None


@dataclass(frozen=True)
class TagConcurrencyLimit:
    """At most ``limit`` running runs carrying tag ``key`` (with ``value``, when given).

    ``per_unique_value=True`` applies the limit to each value of the tag separately.
    """

    key: str
    value: str | None = None
    limit: int = 1
    per_unique_value: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.key, str) or not self.key:
            raise ValueError("TagConcurrencyLimit.key: must be a non-empty string")
        if not isinstance(self.limit, int) or self.limit < 0:
            raise ValueError(f"TagConcurrencyLimit.limit: must be an integer >= 0, got {self.limit!r}")
        if self.per_unique_value and self.value is not None:
            raise ValueError("TagConcurrencyLimit.value: give a value or per_unique_value=True, not both")


@dataclass(frozen=True)
class RunQueueConfig:
    max_concurrent_runs: int | None = None
    tag_concurrency_limits: Sequence[TagConcurrencyLimit] = ()
    pools: Mapping[str, int] = field(default_factory=dict)
    priority_aging_seconds: float = 60

    def __post_init__(self) -> None:
        if self.max_concurrent_runs is not None and (
            not isinstance(self.max_concurrent_runs, int) or self.max_concurrent_runs < 1
        ):
            raise ValueError(
                f"RunQueueConfig.max_concurrent_runs: must be an integer >= 1 or None, got {self.max_concurrent_runs!r}"
            )
        for limit in self.tag_concurrency_limits:
            if not isinstance(limit, TagConcurrencyLimit):
                raise ValueError("RunQueueConfig.tag_concurrency_limits: expected TagConcurrencyLimit items")
        for name, size in dict(self.pools).items():
            if not isinstance(size, int) or size < 1:
                raise ValueError(f"RunQueueConfig.pools[{name!r}]: size must be an integer >= 1, got {size!r}")
        if not self.priority_aging_seconds or self.priority_aging_seconds <= 0:
            raise ValueError("RunQueueConfig.priority_aging_seconds: must be > 0")
