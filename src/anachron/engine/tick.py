"""One coordinator tick as a decision: what storage says now → what to write and what to run. Pure.

``decide(snapshot, outcomes, limits, now)`` holds every rule of a tick — per led backfill: follow a cancel,
stop after a failure (``stop_on_failure``), create the next window of runs, end it; then choose, among the
queued runs and the new ones, which start now under every limit (``queue.select_runs``). It reads nothing
and writes nothing: ``snapshot.read`` gathers its input in the tick's transaction, ``apply.apply`` writes its
``Decisions`` in the same transaction (each status change guarded by ``anachron.lifecycle``), and the
coordinator hands the started runs to its executor once that transaction has committed. What a guard
refuses comes back as data for the next tick (``Snapshot.refused``), never as a flag.

Tests drive it with tables of snapshots (``tests/test_tick.py``), no database and no processes.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from .. import lifecycle
from ..definitions import WorkflowRegistry
from ..models import CANCELED, MISSING, PAUSED, RUNNING, SUCCESS
from ..records import EMPTY_TAGS, ActiveRun, BackfillRecord, NewRun, QueuedRun, Recorded
from ..runtime import RunJob
from .led import LedBackfill
from .queue import QueueLimits, select_runs
from .readiness import GraphFacts, Verdicts

#: where new runs stand in line: after every queued run, in creation order
FRESH_SEQ = 1_000_000_000


@dataclass(frozen=True)
class Led:
    """A backfill this process leads, as the tick sees it: its memory (plan, stored request, jobs of runs
    created and not started) and its state — ``record`` as storage says it is (re-read when it may have
    changed: after a run of it did not succeed, or a pause or cancel), ``cursor`` (runs created so far) and
    ``active`` (its runs not finished, before this tick's outcomes)."""

    memory: LedBackfill
    record: BackfillRecord
    cursor: int
    active: int
    #: a graph backfill's: the needs of its runs that wait (queued, and the next window's) and what storage
    #: says of them (``readiness``); ``None`` for a backfill whose runs need nothing of each other
    graph: GraphFacts | None = None

    @property
    def backfill_id(self) -> str:
        return self.record.backfill_id



@dataclass(frozen=True)
class Queue:
    """The run queue as the tick's claim sees it (read holding the queue's claim lock)."""

    queued: Sequence[QueuedRun]
    running: Sequence[ActiveRun]


@dataclass(frozen=True)
class Snapshot:
    owner: str  # this process's worker id
    registry: WorkflowRegistry  # the workflows this process can run
    log_limit: int
    capacity: int  # jobs the executor takes now
    executor_capacity: int  # jobs it takes when idle (sizes a backfill's window)
    led: Sequence[Led] = ()
    #: this process's running runs another process asked to cancel
    cancel_asked: Sequence[str] = ()
    #: ``None``: no claim this tick (no room, or another process holds the claim lock)
    queue: Queue | None = None
    claim_skipped: bool = False
    #: backfills whose last window was refused by the database: the error (they fail now)
    refused: Mapping[str, str] = field(default_factory=dict)
    #: insert new runs under a savepoint (a previous attempt of this tick was refused without one)
    careful: bool = False
    #: queued runs outside backfills of ``depends_on_past`` workflows (a schedule's ticks): the status of the key
    #: before theirs (``None``: there is none)
    previous: Mapping[str, str | None] = field(default_factory=dict)


@dataclass(frozen=True)
class Window:
    """A backfill's next runs: inserted with its cursor moved from ``cursor`` (compare-and-set), the ones the
    queue chose already ``running``."""

    backfill_id: str
    cursor: int
    rows: Sequence[NewRun]
    jobs: Mapping[str, RunJob]
    shared: bool  # some rows are schedule ticks whose run the daemon may have created first


@dataclass(frozen=True)
class End:
    backfill_id: str
    ending: lifecycle.Ending


@dataclass(frozen=True)
class Decisions:
    cancel_asked: Sequence[str] = ()  # recorded canceled, stopped here
    stop: Sequence[tuple[str, str]] = ()  # (backfill, why): every active run canceled and stopped
    drop_queued: Sequence[tuple[str, str]] = ()  # (backfill, why): its queued runs canceled
    windows: Sequence[Window] = ()
    #: (run, why, backfill): queued runs of graph backfills that will never run, an upstream run having failed
    upstream_failed: Sequence[tuple[str, str, str]] = ()
    start: Sequence[str] = ()  # queued runs to start (their jobs: ``jobs`` or read from storage)
    jobs: Mapping[str, RunJob] = field(default_factory=dict)  # jobs of the runs started, when known
    ends: Sequence[End] = ()
    careful: bool = False
    #: tick again at once: new runs of a graph backfill were created that the next tick may start or block
    again: bool = False

    @property
    def writes(self) -> bool:
        return bool(self.cancel_asked or self.stop or self.drop_queued or self.windows or self.upstream_failed
                    or self.start or self.ends)


def decide(snapshot: Snapshot, outcomes: Sequence[Recorded], limits: QueueLimits, now: float) -> Decisions:
    """Everything one tick does, decided from ``snapshot`` (read after ``outcomes`` were recorded)."""
    stop: list[tuple[str, str]] = []
    drop: list[tuple[str, str]] = []
    ends: list[End] = []
    windows: list[tuple[Led, list[NewRun], dict[str, RunJob]]] = []
    finished = Counter(o.backfill_id for o in outcomes if o.backfill_id)
    verdicts = {led.backfill_id: led.graph.judge() for led in snapshot.led if led.graph is not None}
    for led in snapshot.led:
        record = led.record
        backfill_id = led.backfill_id
        active = led.active - finished[backfill_id]
        error = snapshot.refused.get(backfill_id)
        if error is not None:
            stop.append((backfill_id, "backfill failed"))
            ends.append(End(backfill_id, lifecycle.ending(record, error=error)))
            continue
        if record.status == CANCELED or record.cancel_requested:
            stop.append((backfill_id, "backfill canceled"))
            ends.append(End(backfill_id, lifecycle.ending(record, canceled=True)))
            continue
        if record.status == PAUSED:
            continue
        halted = lifecycle.stops(led.memory.stored.failure_policy, record.failed)
        if halted:
            drop.append((backfill_id, "stopped after a failure"))
        elif led.cursor < record.total_runs and (
                count := led.memory.refill(snapshot.executor_capacity, record, led.cursor, active)):
            try:
                rows, jobs = led.memory.next_runs(led.cursor, count, snapshot.registry, snapshot.owner, now,
                                                  snapshot.log_limit)
            except (ValueError, LookupError, TypeError) as exc:  # the plan (a changed definition) or a key
                message = (f"could not create runs {led.cursor + 1}..{led.cursor + count} of {record.total_runs}: "
                           f"{exc}")
                stop.append((backfill_id, "backfill failed"))
                ends.append(End(backfill_id, lifecycle.ending(record, error=message)))
                continue
            windows.append((led, rows, jobs))
            continue
        if active <= 0 and (halted or led.cursor >= record.total_runs):
            ends.append(End(backfill_id, lifecycle.ending(record, stopped=halted)))
    stopping = {b for b, _ in stop + drop}
    blocked = _blocked(snapshot, verdicts, stopping)
    start, fresh_started, jobs = _claim(snapshot, windows, stopping, verdicts, limits, now)
    made = []
    again = False
    for led, rows, new_jobs in windows:
        judged = verdicts.get(led.backfill_id)
        if judged is not None:  # a new run its upstream failure blocks (or not judged yet): the next tick says
            again = again or any(r.plan_index in judged.blocked or not judged.knows(r.plan_index) for r in rows)
        rows = [_running(r, now) if r.run_id in fresh_started else r for r in rows]
        shared = any(r.idempotency_key and r.idempotency_key.startswith("schedule:") for r in rows)
        made.append(Window(led.backfill_id, led.cursor, tuple(rows), new_jobs, shared))
    return Decisions(tuple(snapshot.cancel_asked), tuple(stop), tuple(drop), tuple(made), tuple(blocked),
                     tuple(start), jobs, tuple(ends), snapshot.careful, again)


_STATUS, _STARTED_AT = NewRun._fields.index("status"), NewRun._fields.index("started_at")


def _running(row: NewRun, now: float) -> NewRun:
    """``row`` created running, started at ``now`` (``_replace`` builds a tuple of 22 fields a field at a time:
    twice as slow, for most runs of a busy backfill)."""
    values = list(row)
    values[_STATUS], values[_STARTED_AT] = RUNNING, now
    return NewRun._make(values)


def _blocked(snapshot: Snapshot, verdicts: Mapping[str, Verdicts], halted: set[str]) -> list[tuple[str, str, str]]:
    """Queued runs of graph backfills that an upstream failure blocks for good (not of a backfill that stops:
    those are canceled)."""
    if snapshot.queue is None or not verdicts:
        return []
    found = []
    for q in snapshot.queue.queued:
        judged = verdicts.get(q.backfill_id or "")
        if judged is not None and q.backfill_id and q.backfill_id not in halted and q.plan_index in judged.blocked:
            found.append((q.run_id, judged.blocked[q.plan_index], q.backfill_id))
    return found


def _claim(snapshot: Snapshot, windows: Sequence[tuple[Led, list[NewRun], dict[str, RunJob]]],
           halted: set[str], verdicts: Mapping[str, Verdicts], limits: QueueLimits,
           now: float) -> tuple[list[str], set[str], dict[str, RunJob]]:
    """Which runs start now, among the queued ones and those this tick creates (behind every queued one, as
    if they had just been inserted): the queued ones to start, the new ones created running, and the jobs
    known for them."""
    queue = snapshot.queue
    if queue is None or snapshot.capacity <= 0:
        return [], set(), {}
    with_tags = bool(limits.tag_limits)
    candidates = [q for q in queue.queued
                  if q.backfill_id not in halted and _may_start(verdicts, snapshot.previous, q)]
    seq = (queue.queued[-1].seq if queue.queued else 0) + FRESH_SEQ
    fresh: dict[str, RunJob] = {}
    for led, rows, jobs in windows:
        judged = verdicts.get(led.backfill_id)
        for row in rows:
            if judged is not None and not judged.may_start(row.plan_index):
                continue  # its upstream runs are not done (or failed): created queued
            tags = led.memory.tags_of(row.workflow) if with_tags else EMPTY_TAGS
            candidates.append(QueuedRun(row.run_id, row.workflow, row.priority, now, seq, snapshot.owner,
                                        led.backfill_id, led.record.max_concurrency, tags, row.keys))
            fresh[row.run_id] = jobs[row.run_id]
            seq += 1
    registry = snapshot.registry
    if not any(q.owner == snapshot.owner and q.workflow in registry for q in candidates):
        return [], set(), {}
    chosen = select_runs(candidates, queue.running, limits, now, snapshot.owner, snapshot.capacity, registry)
    known = {led.backfill_id: led.memory.jobs for led in snapshot.led}
    start, fresh_started, jobs = [], set(), {}
    for c in chosen:
        if c.run_id in fresh:
            fresh_started.add(c.run_id)
            jobs[c.run_id] = fresh[c.run_id]
            continue
        start.append(c.run_id)
        job = known.get(c.backfill_id or "", EMPTY_JOBS).get(c.run_id)
        if job is not None:
            jobs[c.run_id] = job
    return start, fresh_started, jobs


def _may_start(verdicts: Mapping[str, Verdicts], previous: Mapping[str, str | None], q: QueuedRun) -> bool:
    judged = verdicts.get(q.backfill_id or "")
    if judged is not None:
        return judged.may_start(q.plan_index)
    if q.run_id in previous:  # depends_on_past outside a backfill: the key before has succeeded, or never ran
        return previous[q.run_id] in (None, SUCCESS, MISSING)
    return True


EMPTY_JOBS: Mapping[str, RunJob] = {}
