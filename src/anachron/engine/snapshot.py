"""What a tick decides from: storage as it is now (read in the tick's transaction) and the coordinator's
memory, as one ``tick.Snapshot``. Reads only what the tick may need — led backfills are re-read when they
may have changed, the queue when this process has room — so an idle or busy tick costs a few statements."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from ..definitions import WorkflowRegistry
from ..models import MISSING
from ..records import QueuedRun, Recorded
from .led import LedBackfill
from .queue import QueueLimits
from .readiness import GraphFacts
from .tick import Led, Queue, Snapshot

if TYPE_CHECKING:
    from ..storage.contract import StoreSession as Session

QUEUE_SCAN_MIN = 64


def read(s: Session, *, owner: str, registry: WorkflowRegistry, log_limit: int, led: Mapping[str, LedBackfill],
         outcomes: Sequence[Recorded], refresh: bool, cancel_poll: bool, capacity: int, executor_capacity: int,
         limits: QueueLimits, now: float, refused: Mapping[str, str], careful: bool
         ) -> tuple[Snapshot, list[str]]:
    """The snapshot of this tick, and the led backfills this process no longer leads (taken over by another
    process while its lease had lapsed)."""
    lost: list[str] = []
    views: list[Led] = []
    finished = Counter(o.backfill_id for o in outcomes if o.backfill_id)
    refresh = refresh or any(o.status != "success" for o in outcomes)  # counts a stop or an end depends on
    if led and refresh:
        owned = {r.backfill_id: r for r in s.backfills_owned_by(owner)}
        active = s.active_counts(owner)
        for backfill_id, memory in led.items():
            record = owned.get(backfill_id)
            if record is None:
                lost.append(backfill_id)
                continue
            # storage's count already excludes this tick's outcomes: the tick subtracts them again
            views.append(Led(memory, record, record.cursor, active.get(backfill_id, 0) + finished[backfill_id]))
    else:
        ending = [b for b, m in led.items() if m.active - finished[b] <= 0]  # may end now: its final counts
        fresh = {b: s.get_backfill(b) for b in ending}
        for backfill_id, memory in led.items():
            record = fresh.get(backfill_id) or memory.record
            views.append(Led(memory, record, memory.cursor, memory.active))
    cancel_asked = s.cancel_requested_runs(owner) if cancel_poll else []
    queue, skipped = None, False
    previous: dict[str, str | None] = {}
    if capacity > 0:
        if not s.lock_queue():
            skipped = True  # another process is claiming: this tick creates its runs queued, the next claims
        else:
            with_tags = bool(limits.tag_limits)
            queued = s.queued_runs(max(QUEUE_SCAN_MIN, 2 * capacity), with_tags, now)
            mine = any(q.owner == owner and q.workflow in registry for q in queued)
            growing = any(v.cursor < v.record.total_runs for v in views)
            running = s.running_runs(with_tags) if mine or growing else []
            queue = Queue(queued, running)
            views = [_with_graph(s, v, queued, finished[v.backfill_id], executor_capacity) for v in views]
            previous = _previous_keys(s, registry, queued, now)
    snapshot = Snapshot(owner, registry, log_limit, capacity, executor_capacity, tuple(views), tuple(cancel_asked),
                        queue, skipped, dict(refused), careful, previous)
    return snapshot, lost


def _with_graph(s: Session, view: Led, queued: Sequence[QueuedRun], finished: int, capacity: int) -> Led:
    """A graph backfill's view with the facts its readiness is judged from: the needs of its queued runs and
    of the window the tick may create, and its runs within them that have not succeeded (one read)."""
    memory = view.memory
    if memory.graph is None:
        return view
    indices = [q.plan_index for q in queued if q.backfill_id == view.backfill_id and q.plan_index is not None]
    if view.cursor < view.record.total_runs:
        count = memory.refill(capacity, view.record, view.cursor, view.active - finished)
        indices.extend(range(view.cursor, view.cursor + count))
    needs = memory.needs(indices)
    spans = [(n.first_index, n.last_index) for run in needs for n in run.needs]
    unfinished = s.unfinished_in_plan(view.backfill_id, min(a for a, _ in spans), max(b for _, b in spans)) \
        if spans else []
    return replace(view, graph=GraphFacts(needs, unfinished, view.cursor))


def _previous_keys(s: Session, registry: WorkflowRegistry, queued: Sequence[QueuedRun],
                   now: float) -> dict[str, str | None]:
    """For queued one-key runs outside backfills of ``depends_on_past`` workflows (a schedule's ticks, manual
    runs): the status of the key before theirs (``partition_status``; ``None`` for the first key)."""
    found: dict[str, str | None] = {}
    for q in queued:
        workflow = registry.get(q.workflow) if q.backfill_id is None and len(q.keys) == 1 else None
        if workflow is None or not workflow.depends_on_past or workflow.partitions is None:
            continue
        keys = workflow.partitions.get_partition_keys(datetime.fromtimestamp(now, timezone.utc))
        try:
            index = keys.index(q.keys[0])
        except ValueError:
            continue
        if index == 0:
            found[q.run_id] = None
            continue
        before = keys[index - 1]
        found[q.run_id] = s.partition_statuses(workflow.name, [before]).get(before, MISSING)
    return found
