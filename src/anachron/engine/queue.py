"""Which queued runs start now: a pure function of the queue, what is running, the limits and ``now``.

Order is "higher effective priority first, then oldest", where a queued run gains one priority point
per ``priority_aging_seconds`` waited. Walking that order, a run starts when every limit it falls
under has room: the global limit, its workflow's, its backfill's ``max_concurrency``, each tag limit,
and partition exclusion (no key of a workflow may be in two running runs). A run owned by another
process still takes its place in line (it reserves its slots) so that a busy process does not starve
a higher-priority run elsewhere.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from ..models import TagConcurrencyLimit
from ..records import ActiveRun, QueuedRun

__all__ = ["ActiveRun", "QueueLimits", "QueuedRun", "effective_priority", "queue_order", "select_runs"]


@dataclass(frozen=True)
class QueueLimits:
    max_concurrent_runs: int | None = None
    workflow_limits: Mapping[str, int] = field(default_factory=dict)
    tag_limits: Sequence[TagConcurrencyLimit] = ()
    priority_aging_seconds: float = 60


def effective_priority(run: QueuedRun, now: float, aging_seconds: float) -> int:
    waited = max(0.0, now - run.created_at)
    return run.priority + int(waited // aging_seconds)


def queue_order(queued: Iterable[QueuedRun], now: float, aging_seconds: float) -> list[QueuedRun]:
    # effective_priority inlined: this runs for every candidate on every claim
    return sorted(queued, key=lambda r: (-(r.priority + int(max(0.0, now - r.created_at) // aging_seconds)),
                                         r.created_at, r.seq))


class _Usage:
    """Running counts per limit, updated as the selection walks the queue."""

    def __init__(self, running: Iterable[ActiveRun], limits: QueueLimits):
        self.limits = limits
        self.tagged = bool(limits.tag_limits)
        self.total = 0
        self.by_workflow: Counter[str] = Counter()
        self.by_backfill: Counter[str] = Counter()
        self.by_tag: Counter[tuple[str, str | None]] = Counter()
        self.keys: set[tuple[str, str]] = set()
        for run in running:
            self.add(run.workflow, run.backfill_id, run.tags, run.keys)

    def _tag_buckets(self, tags: Mapping[str, str]) -> list[tuple[TagConcurrencyLimit, tuple[str, str | None]]]:
        buckets: list[tuple[TagConcurrencyLimit, tuple[str, str | None]]] = []
        for limit in self.limits.tag_limits:
            if limit.key not in tags:
                continue
            value = tags[limit.key]
            if limit.per_unique_value:
                buckets.append((limit, (limit.key, value)))
            elif limit.value is None or limit.value == value:
                buckets.append((limit, (limit.key, limit.value)))
        return buckets

    def add(self, workflow: str, backfill_id: str | None, tags: Mapping[str, str], keys: Sequence[str]) -> None:
        self.total += 1
        self.by_workflow[workflow] += 1
        if backfill_id:
            self.by_backfill[backfill_id] += 1
        if self.tagged:
            for _, bucket in self._tag_buckets(tags):
                self.by_tag[bucket] += 1
        if len(keys) == 1:
            self.keys.add((workflow, keys[0]))
        else:
            self.keys.update((workflow, k) for k in keys)

    def admits(self, run: QueuedRun) -> bool:
        limits = self.limits
        if limits.max_concurrent_runs is not None and self.total >= limits.max_concurrent_runs:
            return False
        workflow_limit = limits.workflow_limits.get(run.workflow)
        if workflow_limit is not None and self.by_workflow[run.workflow] >= workflow_limit:
            return False
        if run.backfill_id and run.backfill_max_concurrency is not None:
            if self.by_backfill[run.backfill_id] >= run.backfill_max_concurrency:
                return False
        if self.tagged:
            for limit, bucket in self._tag_buckets(run.tags):
                if self.by_tag[bucket] >= limit.limit:
                    return False
        keys = run.keys
        if len(keys) == 1:
            return (run.workflow, keys[0]) not in self.keys
        return not any((run.workflow, k) in self.keys for k in keys)


def select_runs(queued: Iterable[QueuedRun], running: Iterable[ActiveRun], limits: QueueLimits, now: float,
                owner: str, capacity: int, claimable: Collection[str] | None = None) -> list[QueuedRun]:
    """The runs ``owner`` should start now, at most ``capacity`` of them, in start order.

    ``claimable`` restricts which workflows this owner can execute (``None``: any).
    """
    if capacity <= 0:
        return []
    usage = _Usage(running, limits)
    chosen: list[QueuedRun] = []
    for run in queue_order(queued, now, limits.priority_aging_seconds):
        if limits.max_concurrent_runs is not None and usage.total >= limits.max_concurrent_runs:
            break
        if not usage.admits(run):
            continue
        usage.add(run.workflow, run.backfill_id, run.tags, run.keys)
        if run.owner == owner and (claimable is None or run.workflow in claimable):
            chosen.append(run)
            if len(chosen) >= capacity:
                break
    return chosen
