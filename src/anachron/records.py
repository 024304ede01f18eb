"""Frozen records that cross the layers: what storage returns, and what the engine hands to storage.

Storage speaks only in these (never SQLAlchemy rows or dicts); the engine and the façade consume them.
Records on the hot path — built thousands of times a second by the coordinator — are ``NamedTuple``s:
immutable, and built straight from a database row or a parameter tuple without a per-field copy. The
others are frozen dataclasses. Times are Unix seconds (floats), as stored; the façade turns them into
aware datetimes for the public models (``models.Run``, ``models.BackfillStatus``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, NamedTuple

from .models import BackfillState, BackfillStatus, Run, RunStatus
from .params import decode_params

EMPTY_TAGS: Mapping[str, str] = {}


def utc(ts: float | None) -> datetime | None:
    """An aware UTC datetime from stored Unix seconds."""
    return None if ts is None else datetime.fromtimestamp(ts, timezone.utc)


# -- the run queue ----------------------------------------------------------------------------------
class QueuedRun(NamedTuple):
    """A queued run, as the queue policy (``engine.queue.select_runs``) sees it."""

    run_id: str
    workflow: str
    priority: int
    created_at: float
    seq: int
    owner: str | None
    backfill_id: str | None = None
    backfill_max_concurrency: int | None = None
    tags: Mapping[str, str] = EMPTY_TAGS
    keys: tuple[str, ...] = ()
    plan_index: int | None = None  # its place in its backfill's plan (a graph backfill's readiness reads it)


class ActiveRun(NamedTuple):
    """A running run, as the queue policy sees it: what it counts against."""

    workflow: str
    backfill_id: str | None = None
    tags: Mapping[str, str] = EMPTY_TAGS
    keys: tuple[str, ...] = ()


# -- runs -------------------------------------------------------------------------------------------
class NewRun(NamedTuple):
    """A run to insert. ``keys`` are the partition keys it covers (none for a schedule tick or a manual run)."""

    run_id: str
    workflow: str
    status: str
    keys: tuple[str, ...]
    params: str  # JSON, encoded by anachron.params
    tags: str  # JSON
    priority: int
    backfill_id: str | None
    idempotency_key: str | None
    attempt: int
    logical_time: float
    window_start: float | None
    window_end: float | None
    scheduled_time: float | None
    created_at: float
    run_name: str | None
    environ: str  # JSON
    owner: str | None
    error: str | None = None
    ended_at: float | None = None
    started_at: float | None = None  # set when it is created running (started in the transaction creating it)
    plan_index: int | None = None  # its position in its backfill's plan (0-based); None outside a backfill


class RunRecord(NamedTuple):
    """A stored run, every column decoded."""

    seq: int
    run_id: str
    workflow: str
    status: str
    keys: tuple[str, ...]
    params: str  # JSON text: decoded where it is used (anachron.params.decode_params)
    tags: Mapping[str, str]
    priority: int
    backfill_id: str | None
    idempotency_key: str | None
    attempt: int
    logical_time: float | None
    window_start: float | None
    window_end: float | None
    scheduled_time: float | None
    created_at: float
    started_at: float | None
    ended_at: float | None
    error: str | None
    run_name: str | None
    environ: Mapping[str, str]
    owner: str | None
    cancel_requested: bool

    @property
    def partition_key(self) -> str | None:
        return self.keys[0] if len(self.keys) == 1 else None

    def to_run(self) -> Run:
        return Run(
            run_id=self.run_id, workflow=self.workflow, status=RunStatus(self.status), partition_key=self.partition_key,
            partition_keys=list(self.keys), params=decode_params(self.params), tags=dict(self.tags),
            priority=self.priority, backfill_id=self.backfill_id, idempotency_key=self.idempotency_key,
            attempt=self.attempt, logical_time=utc(self.logical_time), scheduled_time=utc(self.scheduled_time),
            created_at=utc(self.created_at),  # type: ignore[arg-type]  # never None for a stored run
            started_at=utc(self.started_at), ended_at=utc(self.ended_at), error=self.error, run_name=self.run_name,
        )


class GridCount(NamedTuple):
    """How many of a backfill's runs in one cell of its partition grid (plan indices ``cell * cell_size`` up
    to the next cell's) have one status."""

    cell: int
    status: str
    runs: int


class GridRun(NamedTuple):
    """One run of a backfill, as a cell of its partition grid shows it. ``partition_key`` is set for a one-key
    run; ``scheduled_time`` for a schedule tick's."""

    plan_index: int
    run_id: str
    status: str
    partition_key: str | None
    scheduled_time: float | None


class ScheduleState(NamedTuple):
    """A schedule's shared state: paused or not, and its cursor (the last tick evaluated, Unix seconds;
    ``None`` until a daemon first evaluates it)."""

    workflow: str
    schedule_id: str
    paused: bool
    cursor: float | None
    updated_at: float


class WorkflowRef(NamedTuple):
    """How another process finds a workflow: its module (or source file) and its registered name."""

    module: str | None
    source_file: str | None
    name: str


class RunRef(NamedTuple):
    """Just enough of an active run to cancel or adopt it."""

    run_id: str
    status: str
    owner: str | None
    backfill_id: str | None
    cancel_requested: bool
    attempt: int


class Outcome(NamedTuple):
    """How a run ended, to be recorded. ``attempt`` guards against a stale report (``None``: any attempt)."""

    run_id: str
    status: str
    error: str | None = None
    attempt: int | None = None
    started_at: float | None = None
    ended_at: float | None = None
    logs: tuple[tuple[float, str, str], ...] = ()
    failed_partitions: Mapping[str, str] = EMPTY_TAGS


class Unfinished(NamedTuple):
    """A run of a backfill that has not succeeded, as a graph backfill's readiness sees it."""

    plan_index: int
    workflow: str
    status: str
    partition_key: str | None


class Recorded(NamedTuple):
    """An outcome storage accepted, and the backfill its run counts for (a tick run may have joined one)."""

    run_id: str
    status: str
    backfill_id: str | None


class InFlight(NamedTuple):
    """What the coordinator remembers of a run it handed to its executor (so recording it costs no read)."""

    attempt: int
    backfill_id: str | None
    num_partitions: int


class LogLine(NamedTuple):
    attempt: int
    ts: float
    level: str
    message: str


class AdoptedRuns(NamedTuple):
    """What adopting a dead owner's runs did."""

    requeued: tuple[str, ...]  # were running: queued again as a new attempt
    moved: tuple[str, ...]  # were queued: now ours
    canceled: tuple[str, ...]  # had a cancel request pending: canceled


# -- backfills ----------------------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class NewBackfill:
    backfill_id: str
    status: str
    workflows: tuple[str, ...]
    request: Mapping[str, Any]  # JSON-able: the validated request and its frozen plan
    total_partitions: int
    total_runs: int
    max_concurrency: int
    priority: int
    tags: Mapping[str, str]
    idempotency_key: str | None
    created_at: float
    ended_at: float | None = None


@dataclass(frozen=True, slots=True)
class BackfillRecord:
    backfill_id: str
    status: str
    workflows: tuple[str, ...]
    request: Mapping[str, Any]
    total_partitions: int
    total_runs: int
    cursor: int
    completed: int
    failed: int
    canceled: int
    max_concurrency: int
    priority: int
    tags: Mapping[str, str]
    idempotency_key: str | None
    owner: str | None
    cancel_requested: bool
    error: str | None
    created_at: float
    updated_at: float
    ended_at: float | None

    def to_status(self, run_ids: list[str] | None = None, queued: int = 0, running: int = 0,
                  workflows: Mapping[str, Mapping[str, int]] | None = None,
                  request: Any = None) -> BackfillStatus:
        """The public status. ``workflows``: per workflow, its partitions by status (``workflow_counts``;
        without it, a one-workflow backfill's come from its counters); ``request``: what was asked, decoded by
        the caller (``requests.asked_request``)."""
        return BackfillStatus(
            backfill_id=self.backfill_id, status=BackfillState(self.status), total_partitions=self.total_partitions,
            completed_partitions=self.completed, failed_partitions=self.failed,
            canceled_partitions=self.canceled, run_ids=list(run_ids or []), error=self.error,
            tags=list(self.tags.items()), workflows=self.workflow_counts(workflows), total_runs=self.total_runs,
            queued_runs=queued, running_runs=running, created_at=utc(self.created_at), ended_at=utc(self.ended_at),
            request=request, created_by=self.request.get("created_by"),
        )


    def workflow_counts(self, found: Mapping[str, Mapping[str, int]] | None) -> dict[str, dict[str, int]]:
        """Per workflow: ``total``, ``completed``, ``failed``, ``upstream_failed``, ``canceled`` — from the
        partitions of its runs by status (``found``), or, for a backfill of one workflow without them, from the
        backfill's counters. Partitions never run count as canceled once the backfill has ended."""
        totals = self.request.get("totals") or {}
        if found is None:
            if len(self.workflows) != 1:
                return {name: {} for name in self.workflows}
            found = {self.workflows[0]: {"success": self.completed, "failed": self.failed, "canceled": self.canceled}}
        out = {}
        for name in self.workflows:
            by = found.get(name, {})
            total = int(totals.get(name, self.total_partitions if len(self.workflows) == 1 else sum(by.values())))
            counts = {"total": total, "completed": by.get("success", 0), "failed": by.get("failed", 0),
                      "upstream_failed": by.get("upstream_failed", 0), "canceled": by.get("canceled", 0)}
            if self.ended_at is not None:
                counts["canceled"] = max(0, total - counts["completed"] - counts["failed"] - counts["upstream_failed"])
            out[name] = counts
        return out


@dataclass(frozen=True, slots=True)
class RunCounts:
    """Active runs of one backfill."""

    queued: int = 0
    running: int = 0


@dataclass(frozen=True, slots=True)
class PoolSlot:
    pool: str
    slot: int


@dataclass(frozen=True)
class RunFilter:
    """Which runs ``list_runs`` returns (newest first), and ``count_runs`` counts."""

    workflow: str | None = None
    statuses: tuple[str, ...] = ()
    backfill_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    limit: int | None = 100
    offset: int = 0  # skip this many of the newest (paging)
    #: runs that covered this partition key (a one-key run of it, or a run of several keys holding it)
    partition_key: str | None = None
    #: how the run came to be: ``"backfill"`` (a backfill's), ``"scheduled"`` (a schedule's tick), ``"manual"``
    trigger: str | None = None
    #: created at or after / before (epoch seconds)
    created_after: float | None = None
    created_before: float | None = None
