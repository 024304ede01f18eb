"""The data every layer shares: runs, backfills, their statuses and queue settings."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from .estimate import Estimate

if TYPE_CHECKING:
    from .requests import BackfillRequest


class RunStatus(StrEnum):
    """A run's status. A ``str``: it compares, hashes and serialises as its value (``"queued"``), which is
    what storage and the wire carry. The moves between them are ``anachron.lifecycle.RUN_TRANSITIONS``."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"
    #: never ran: a key it needs in the same (graph) backfill failed or was canceled (SPEC §8)
    UPSTREAM_FAILED = "upstream_failed"


class BackfillState(StrEnum):
    """A backfill's status (``BackfillStatus.status``; ``BackfillStatus`` is the record that carries it).
    Moves: ``anachron.lifecycle.BACKFILL_TRANSITIONS``."""

    REQUESTED = "requested"
    IN_PROGRESS = "in_progress"
    PAUSED = "paused"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELED = "canceled"




# Run statuses
QUEUED, RUNNING, SUCCESS = RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCESS
FAILED, CANCELED, UPSTREAM_FAILED = RunStatus.FAILED, RunStatus.CANCELED, RunStatus.UPSTREAM_FAILED
RUN_STATUSES = tuple(RunStatus)
ACTIVE_RUN_STATUSES = (QUEUED, RUNNING)
FINISHED_RUN_STATUSES = (SUCCESS, FAILED, CANCELED, UPSTREAM_FAILED)
#: how a run came to be (``list_runs(trigger=...)``): a backfill's, a schedule tick's, or anything else
RUN_TRIGGERS = ("backfill", "scheduled", "manual")

# Partition statuses (partition_status)
MISSING = "missing"

# Backfill statuses (FAILED and CANCELED are the same strings as the runs')
REQUESTED, IN_PROGRESS = BackfillState.REQUESTED, BackfillState.IN_PROGRESS
PAUSED, COMPLETED = BackfillState.PAUSED, BackfillState.COMPLETED
BACKFILL_STATUSES = tuple(BackfillState)
ACTIVE_BACKFILL_STATUSES = (REQUESTED, IN_PROGRESS, PAUSED)
FINISHED_BACKFILL_STATUSES = (COMPLETED, BackfillState.FAILED, BackfillState.CANCELED)

BACKFILL_PRIORITY = -10
REGULAR_PRIORITY = 0
PRIORITY_TAG = "anachron/priority"
BACKFILL_TAG = "anachron/backfill"
RERUN_OF_TAG = "anachron/rerun_of"
SCHEDULE_TAG = "anachron/schedule"  # on a tick's run: the schedule id
TRIGGER_TAG = "anachron/trigger"  # on a schedule backfill: the schedule (trigger) id it replays
OVERLAP_TAG = "anachron/overlap"  # on a tick's run of an overlap="buffer" or "skip" schedule: "<workflow>/<schedule>"


class ConflictError(ValueError):
    """A request that conflicts with the current state (a trigger's second active backfill, a status change
    the lifecycle does not allow): 409 over HTTP, exit status 2 on the command line."""


class InvalidTransition(ConflictError):
    """A status change the lifecycle does not allow (pausing a finished backfill, rerunning one that has
    not ended)."""


class NotFoundError(LookupError):
    """A run or backfill id that storage does not know."""

    def __str__(self) -> str:  # LookupError quotes its argument; keep the message readable
        return str(self.args[0]) if self.args else "not found"


@dataclass(frozen=True)
class Run:
    run_id: str
    workflow: str
    status: RunStatus
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
    status: BackfillState
    total_partitions: int
    completed_partitions: int
    failed_partitions: int
    canceled_partitions: int
    run_ids: list[str]
    error: str | None
    #: ``(key, value)`` pairs, as the seed has them (the backfill's own tags and the ``anachron/...`` ones)
    tags: list[tuple[str, str]]
    #: per workflow, in plan order: its partitions ``total`` and how many ``completed``, ``failed``,
    #: ``upstream_failed`` (never ran: a key it needs failed, SPEC §8) and ``canceled`` (never run); iterating it
    #: gives the workflows' names
    workflows: dict[str, dict[str, int]] = field(default_factory=dict)
    total_runs: int = 0
    queued_runs: int = 0
    running_runs: int = 0
    created_at: datetime | None = None
    ended_at: datetime | None = None
    #: what was asked: the validated request (``anachron.requests.BackfillRequest``) with the effective end of a
    #: time range (a future end of schedule ticks is clipped to the time of the request) and every tag
    request: BackfillRequest | None = None
    #: who asked: the API token's name over HTTP, the OS user for local calls
    created_by: str | None = None

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
    #: per workflow (upstreams first in a graph backfill): ``{"num_partitions": n, "num_runs": n}`` planned
    workflows: dict[str, dict[str, int]] = field(default_factory=dict)
    #: what was asked, as ``BackfillStatus.request`` (for a dry run too: its effective range)
    request: BackfillRequest | None = None


@dataclass(frozen=True)
class ScheduleStatus:
    """A schedule as every process sees it: its definition, whether it is paused, the latest tick that ran
    (``None`` until one has) and the next one due."""

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
            if not isinstance(name, str) or not name or name.startswith("anachron/"):
                raise ValueError(f"RunQueueConfig.pools: {name!r} is not a pool name (anachron/... is reserved)")
            if not isinstance(size, int) or size < 1:
                raise ValueError(f"RunQueueConfig.pools[{name!r}]: size must be an integer >= 1, got {size!r}")
        if not self.priority_aging_seconds or self.priority_aging_seconds <= 0:
            raise ValueError("RunQueueConfig.priority_aging_seconds: must be > 0")

