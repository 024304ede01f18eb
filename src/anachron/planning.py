"""Backfill planning: a pure function of the request, the partition statuses and ``now``.

request → the keys each workflow selects (lazy) → the reprocess filter (kept as index ranges, so a
million-key selection is a handful of integers) → order → the strategy's run groups. Nothing here
touches storage or the clock: the frozen ``PlanSpec`` (JSON) rebuilds the identical plan in any
process, which is what lets a new coordinator finish a dead one's backfill.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, TypeVar, overload

from .clock import to_datetime
from .definitions import Workflow
from .models import FAILED, MISSING, TRIGGER_TAG
from .partitions import KeySequence, MultiPartitions, PartitionKeyRange, TimeWindowPartitions
from .partitions.base import to_datetime as local_datetime
from .plan_spec import PlanSpec
from .schedules import Schedule, run_key, zone
from .strategies import BATCHED, MULTI_RUN, PER_DIMENSION, SINGLE_RUN, BackfillStrategy

T = TypeVar("T")
REPROCESS = ("all", "failed_and_missing", "missing")
ORDERS = ("oldest_first", "newest_first")
FAILURE_POLICIES = ("continue", "stop_on_failure")


class PlanChanged(ValueError):
    """A stored plan can no longer be rebuilt as it was planned: the definitions changed since."""


@dataclass(frozen=True)
class PlannedRun:
    workflow: str
    keys: tuple[str, ...]
    scheduled_time: datetime | None = None
    #: the idempotency key a schedule tick's run shares with the daemon's live tick (``schedule:<id>:<tick>``)
    #: when the tick had no run when the backfill was planned; ``None``: the backfill's own key
    shared_key: str | None = None


def selection_spec(partition_keys: Sequence[str] | None = None, partition_range: PartitionKeyRange | None = None,
                   start: Any = None, end: Any = None, trigger_id: str | None = None,
                   now: datetime | None = None, cron: str | None = None,
                   timezone_name: str | None = None) -> dict[str, Any]:
    """Normalise the three ways to pick partitions into one JSON-able selection; ValueError on a mix.
    ``trigger_id`` (a schedule's ticks) or ``cron`` (the ticks of a cron, in ``timezone_name``) go with a time
    range."""
    given = [name for name, value in (("partition_keys", partition_keys), ("partition_range", partition_range))
             if value is not None]
    if start is not None or end is not None:
        given.append("start/end")
    if len(given) > 1:
        raise ValueError("selection: give exactly one of partition_keys, partition_range or start/end, "
                         f"got {' and '.join(given)}")
    if partition_keys is not None:
        if isinstance(partition_keys, str) or not isinstance(partition_keys, Sequence):
            raise ValueError("partition_keys: expected a list of partition keys")
        keys = list(dict.fromkeys(partition_keys))
        if not keys:
            raise ValueError("partition_keys: the list is empty")
        for key in keys:
            if not isinstance(key, str):
                raise ValueError(f"partition_keys: {key!r} is not a string")
        return {"kind": "keys", "keys": keys}
    if partition_range is not None:
        if not isinstance(partition_range, PartitionKeyRange):
            raise ValueError("partition_range: expected ac.PartitionKeyRange.single(...) or .multi(...)")
        return {"kind": "range", "range": partition_range.to_dict()}
    if start is not None or end is not None:
        if start is None:
            raise ValueError("start: a time range needs a start")
        start_dt = to_datetime(start, "start")
        end_dt = to_datetime(end, "end") if end is not None else now
        if end_dt is not None and end_dt < start_dt:
            raise ValueError(f"end: {end_dt.isoformat()} is before start {start_dt.isoformat()}")
        # Kept as given: a naive time is read in the partitions' (or schedule's) own timezone.
        spec = {"kind": "time", "start": _time_text(start),
                "end": _time_text(end) if end is not None else (now.isoformat() if now else None)}
        if trigger_id is not None:
            spec["trigger_id"] = trigger_id
        if cron is not None:
            spec["cron"] = cron
            spec["timezone"] = timezone_name or "UTC"
        return spec
    if cron is not None or trigger_id is not None:
        raise ValueError(f"start: a backfill of {'cron' if cron is not None else 'schedule'} ticks needs a start")
    return {"kind": "all"}


def _time_text(value: Any) -> str:
    return value.isoformat() if isinstance(value, (datetime, date)) else str(value).strip()


def resolve_keys(workflow: Workflow, selection: Mapping[str, Any], now: datetime,
                 dynamic: Mapping[str, Sequence[str]]) -> KeySequence:
    """The keys (or schedule ticks) a selection names for one workflow, in time/definition order."""
    kind = selection["kind"]
    pdef = workflow.partitions
    if kind in ("keys", "workflow_keys"):
        keys = selection["keys"] if kind == "keys" else selection["keys"].get(workflow.name, [])
        if is_tick_selection(workflow, selection):
            return KeySequence.from_list(sorted(keys))
        if pdef is None:
            raise ValueError(f"partition_keys: workflow {workflow.name!r} has no partitions")
        for key in keys:
            pdef.validate_key(key, now, dynamic)
        every = pdef.get_partition_keys(now, dynamic)  # explicit keys run in partition order
        return KeySequence.from_list(sorted(keys, key=every.index))
    if is_tick_selection(workflow, selection):
        schedule = tick_source(workflow, selection)
        tz = zone(schedule.timezone)
        end = local_datetime(selection["end"], tz, "end") if selection.get("end") else now
        ticks = schedule.tick_keys(local_datetime(selection["start"], tz, "start"), end)
        if pdef is not None:  # a tick runs the partition that ended by it: none yet, no run (as live)
            ticks = ticks[_first_tick_with_a_partition(workflow, ticks):]
        return KeySequence.from_list(ticks)
    if pdef is None:
        raise ValueError(f"workflow: {workflow.name!r} has no partitions; backfill it by start/end over its schedule, "
                         "or over the ticks of a cron (cron=...)")
    if kind == "all":
        return pdef.get_partition_keys(now, dynamic)
    if kind == "range":
        return PartitionKeyRange.from_dict(selection["range"]).resolve(pdef, now, dynamic)
    if kind == "time":
        if not pdef.is_time_based:
            raise ValueError(f"start: workflow {workflow.name!r} has no time partitions or schedule; "
                             "use partition_keys")
        end = selection.get("end") or now
        return pdef.keys_in_time_range(selection["start"], end, now, dynamic)
    raise ValueError(f"selection: unknown kind {kind!r}")


def tick_source(workflow: Workflow, selection: Mapping[str, Any]) -> Schedule:
    """The schedule whose ticks a tick selection replays: its ``trigger_id``'s, a ``cron``'s (any workflow
    without partitions), else the workflow's (first) schedule."""
    if selection.get("cron"):
        if workflow.partitions is not None:
            raise ValueError(f"cron: workflow {workflow.name!r} is partitioned ({workflow.partitions!r}); backfill "
                             "its partitions by start/end, without a cron")
        return Schedule(selection["cron"], selection.get("timezone") or "UTC", id="cron")
    if selection.get("trigger_id"):
        schedule = workflow.get_schedule(selection["trigger_id"])
        if workflow.partitions is not None and not isinstance(workflow.partitions, TimeWindowPartitions):
            raise ValueError(f"trigger_id: workflow {workflow.name!r} is partitioned by {workflow.partitions!r}: a "
                             "schedule tick runs the time partition that ended by it, and these partitions are not "
                             "time windows")
        return schedule
    if workflow.schedule is None:
        raise ValueError(f"workflow: {workflow.name!r} has neither partitions nor a schedule; replay it over a range "
                         "at the ticks of a cron: backfill(..., start=, end=, cron=\"0 0 * * *\")")
    return workflow.schedule


def _first_tick_with_a_partition(workflow: Workflow, ticks: Sequence[str]) -> int:
    """The index of the first tick by which a partition of ``workflow`` has ended (ticks in time order)."""
    pdef = workflow.partitions
    assert pdef is not None
    lo, hi = 0, len(ticks)
    while lo < hi:  # the number of ended partitions only grows with time: bisect
        mid = (lo + hi) // 2
        if len(pdef.get_partition_keys(datetime.fromisoformat(ticks[mid]))):
            hi = mid
        else:
            lo = mid + 1
    return lo


def clip_to_now(selection: Mapping[str, Any], workflows: Sequence[Workflow], now: datetime) -> dict[str, Any]:
    """A tick selection whose ``end`` lies after ``now`` ends at ``now``: only past ticks are replayed (a future
    tick is the live schedule's). The end is read in each tick source's timezone (a naive time is local)."""
    clipped = dict(selection)
    if selection["kind"] != "time" or not selection.get("end"):
        return clipped
    for workflow in workflows:
        if is_tick_selection(workflow, selection):
            tz = zone(tick_source(workflow, selection).timezone)
            if local_datetime(selection["end"], tz, "end") > now:
                clipped["end"] = now.isoformat()
                break
    return clipped


def trigger_of(workflows: Sequence[Workflow], selection: Mapping[str, Any],
               tags: Mapping[str, str]) -> tuple[str, str] | None:
    """``(workflow, schedule id)`` when a backfill replays the ticks of one schedule of one workflow (by a
    ``trigger_id``, the workflow's own schedule, or a rerun of such a backfill, tagged ``anachron/trigger``):
    a trigger has at most one active backfill. ``None`` for partitions and cron ticks."""
    if len(workflows) != 1 or selection.get("cron"):
        return None
    workflow = workflows[0]
    if not is_tick_selection(workflow, selection):
        return None
    schedule_id = selection.get("trigger_id") or tags.get(TRIGGER_TAG)
    if schedule_id is None and workflow.schedule is not None:
        schedule_id = workflow.schedule.id
    if schedule_id is None or not any(s.id == schedule_id for s in workflow.schedules):
        return None
    return workflow.name, str(schedule_id)


#: the request field each kind of selection comes from (what an error about it names)
SELECTION_FIELDS = {"keys": "partition_keys", "range": "partition_range", "time": "start", "all": "selection"}


def resolve_for(workflow: Workflow, selection: Mapping[str, Any], now: datetime,
                dynamic: Mapping[str, Sequence[str]], several: bool) -> KeySequence:
    """``resolve_keys``, whose error — when the selection names several workflows — says which one the range
    does not fit, and names the request's field: ``partition_range: workflow 'b': unknown partition key ...``."""
    try:
        return resolve_keys(workflow, selection, now, dynamic)
    except ValueError as exc:
        if not several:
            raise
        message = str(exc)
        field = SELECTION_FIELDS.get(selection["kind"], "selection")
        head, sep, rest = message.partition(": ")
        if sep and head.isidentifier():  # it names a field already (start: ..., cron: ...)
            field, message = head, rest
        if repr(workflow.name) not in message:
            message = f"workflow {workflow.name!r}: {message}"
        raise ValueError(f"{field}: {message}") from None


def schedule_id_of(workflow: Workflow, selection: Mapping[str, Any]) -> str:
    """The id of the schedule whose ticks a tick selection replays."""
    if selection.get("trigger_id"):
        return str(selection["trigger_id"])
    return workflow.schedule.id if workflow.schedule is not None else "schedule"


def is_tick_selection(workflow: Workflow, selection: Mapping[str, Any]) -> bool:
    """Whether a selection names schedule ticks (rather than partitions) for this workflow."""
    if selection["kind"] == "workflow_keys":
        return bool(selection.get("ticks"))
    return selection["kind"] == "time" and (workflow.partitions is None or "trigger_id" in selection
                                            or "cron" in selection)


def kept_ranges(keys: Sequence[str], status: Mapping[str, str], reprocess: str) -> list[tuple[int, int]] | None:
    """Index ranges ``[a, b)`` of the keys to run under ``reprocess``; ``None`` means all of them."""
    if reprocess == "all":
        return None
    wanted = (MISSING, FAILED) if reprocess == "failed_and_missing" else (MISSING,)
    ranges: list[tuple[int, int]] = []
    start = None
    for i, key in enumerate(keys):
        keep = status.get(key, MISSING) in wanted
        if keep and start is None:
            start = i
        elif not keep and start is not None:
            ranges.append((start, i))
            start = None
    if start is not None:
        ranges.append((start, len(keys)))
    return ranges


class _LazySequence(Sequence[T]):
    """An indexable view whose items are computed by ``_item(i)`` on demand."""

    def _item(self, i: int) -> T:
        raise NotImplementedError

    @overload
    def __getitem__(self, i: int) -> T: ...

    @overload
    def __getitem__(self, i: slice) -> list[T]: ...

    def __getitem__(self, i: int | slice) -> T | list[T]:
        if isinstance(i, slice):
            return [self[j] for j in range(*i.indices(len(self)))]
        if i < 0:
            i += len(self)
        if not 0 <= i < len(self):
            raise IndexError(i)
        return self._item(i)


class SelectedKeys(_LazySequence[str]):
    """A lazy view of the kept keys, in run order."""

    def __init__(self, keys: KeySequence, ranges: list[tuple[int, int]] | None, newest_first: bool):
        self._keys = keys
        self._ranges = ranges
        self._newest_first = newest_first
        if ranges is None:
            self._len = len(keys)
        else:
            self._starts = [a for a, _ in ranges]
            self._offsets = [0]
            for a, b in ranges:
                self._offsets.append(self._offsets[-1] + b - a)
            self._len = self._offsets[-1]

    def __len__(self) -> int:
        return self._len

    def _base_index(self, i: int) -> int:
        if self._ranges is None:
            return i
        r = bisect.bisect_right(self._offsets, i) - 1
        return self._ranges[r][0] + (i - self._offsets[r])

    def _item(self, i: int) -> str:
        if self._newest_first:
            i = self._len - 1 - i
        return self._keys[self._base_index(i)]

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> list[str]: ...

    def __getitem__(self, i: int | slice) -> str | list[str]:
        if isinstance(i, slice):
            start, stop, step = i.indices(self._len)
            if step == 1:  # a run's batch: hand whole stretches to the partition sequence's own slicing
                return self._stretch(start, max(start, stop))
        return super().__getitem__(i)

    def _stretch(self, start: int, stop: int) -> list[str]:
        lo, hi = (self._len - stop, self._len - start) if self._newest_first else (start, stop)
        keys: list[str] = []
        ranges = self._ranges if self._ranges is not None else [(0, self._len)]
        offset = 0
        for a, b in ranges:
            first, last = max(lo - offset, 0), min(hi - offset, b - a)
            if first < last:
                keys.extend(self._keys[a + first:a + last])
            offset += b - a
            if offset >= hi:
                break
        if self._newest_first:
            keys.reverse()
        return keys

    def __iter__(self) -> Iterator[str]:
        if self._ranges is None:
            yield from (reversed(self._keys) if self._newest_first else self._keys)
            return
        ranges = reversed(self._ranges) if self._newest_first else self._ranges
        for a, b in ranges:
            yield from (self._keys[j] for j in (range(b - 1, a - 1, -1) if self._newest_first else range(a, b)))


class WorkflowPlan:
    """The run groups of one workflow in a backfill."""

    def __init__(self, workflow: Workflow, keys: KeySequence, ranges: list[tuple[int, int]] | None, order: str,
                 strategy: BackfillStrategy, is_ticks: bool, taken: list[tuple[int, int]] | None = None,
                 schedule_id: str | None = None):
        self.workflow = workflow
        self.keys = SelectedKeys(keys, ranges, order == "newest_first")
        self.strategy = strategy
        self.is_ticks = is_ticks
        self._all = keys
        self._taken = [tuple(r) for r in taken or ()]
        self._schedule_id = schedule_id
        self._groups: list[tuple[str, ...]] | None = None
        n = len(self.keys)
        if n == 0:
            self.num_runs = 0
        elif strategy.kind == SINGLE_RUN and not is_ticks:
            self.num_runs = 1
        elif strategy.kind == BATCHED and not is_ticks:
            self.num_runs = -(-n // (strategy.batch_size or 1))
        elif strategy.kind == PER_DIMENSION and not is_ticks:
            self._groups = _per_dimension_groups(workflow, self.keys, strategy)
            self.num_runs = len(self._groups)
        else:
            self.num_runs = n

    def planned(self, keys: tuple[str, ...]) -> PlannedRun:
        """The run of one group of keys (for a tick: its time, and the key it shares with the live tick)."""
        if not self.is_ticks:
            return PlannedRun(self.workflow.name, keys)
        tick = datetime.fromisoformat(keys[0]).astimezone(timezone.utc)
        shared = None
        if self._schedule_id is not None:
            i = self._all.index(keys[0])
            if not any(a <= i < b for a, b in self._taken):
                shared = run_key(self._schedule_id, tick)
        return PlannedRun(self.workflow.name, keys, tick, shared)

    def group(self, j: int) -> tuple[str, ...]:
        kind = self.strategy.kind
        if self._groups is not None:
            return self._groups[j]
        if self.is_ticks or kind == MULTI_RUN:
            return (self.keys[j],)
        if kind == SINGLE_RUN:
            return tuple(self.keys)
        size = self.strategy.batch_size
        assert size is not None
        return tuple(self.keys[j * size:(j + 1) * size])

    def span(self, j: int) -> tuple[str, str] | None:
        """The first and last key of group ``j`` without building the group (a batch of a million keys
        is two look-ups); ``None`` for an empty group."""
        kind = self.strategy.kind
        if self._groups is not None:
            group = self._groups[j]
            return (group[0], group[-1]) if group else None
        if self.is_ticks or kind == MULTI_RUN:
            key = self.keys[j]
            return key, key
        n = len(self.keys)
        if kind == SINGLE_RUN:
            return (self.keys[0], self.keys[n - 1]) if n else None
        size = self.strategy.batch_size
        assert size is not None
        first, last = j * size, min(n, (j + 1) * size) - 1
        return (self.keys[first], self.keys[last]) if first <= last else None

    def groups(self, j0: int, j1: int) -> list[tuple[str, ...]]:
        """Groups ``j0..j1-1`` at once: their keys come from one slice of the selection, which time
        partitions format in bulk."""
        kind = self.strategy.kind
        if self._groups is not None:
            return self._groups[j0:j1]
        if self.is_ticks or kind == MULTI_RUN:
            return [(k,) for k in self.keys[j0:j1]]
        if kind == SINGLE_RUN:
            return [tuple(self.keys)] if j0 < j1 else []
        size = self.strategy.batch_size
        assert size is not None
        keys = self.keys[j0 * size:j1 * size]
        return [tuple(keys[i:i + size]) for i in range(0, len(keys), size)]


def _per_dimension_groups(workflow: Workflow, keys: Sequence[str],
                          strategy: BackfillStrategy) -> list[tuple[str, ...]]:
    pdef = workflow.partitions
    if not isinstance(pdef, MultiPartitions):
        raise ValueError(f"strategy: per_dimension needs multi-dimensional partitions; {workflow.name!r} has none")
    for dim in strategy.multi_run_dimensions + strategy.single_run_dimensions:
        if dim not in pdef.dimension_names:
            raise ValueError(f"strategy: workflow {workflow.name!r} has no dimension {dim!r}")
    split_by = [i for i, d in enumerate(pdef.dimension_names) if d not in strategy.single_run_dimensions]
    groups: dict[tuple[str, ...], list[str]] = {}
    for key in keys:
        parts = key.split("|")
        groups.setdefault(tuple(parts[i] for i in split_by), []).append(key)
    return [tuple(g) for g in groups.values()]


class BackfillPlan:
    """All the runs of a backfill, in order, computed lazily."""

    def __init__(self, plans: list[WorkflowPlan]):
        self.workflow_plans = [p for p in plans]
        self._offsets = [0]
        for p in plans:
            self._offsets.append(self._offsets[-1] + p.num_runs)
        self.num_runs = self._offsets[-1]
        self.num_partitions = sum(len(p.keys) for p in plans)

    def run(self, index: int) -> PlannedRun:
        w = bisect.bisect_right(self._offsets, index) - 1
        plan = self.workflow_plans[w]
        return plan.planned(plan.group(index - self._offsets[w]))

    def key_span(self, index: int) -> tuple[str, str] | None:
        """The first and last key of run ``index`` (cheap even for a run of many keys); ``None`` when it has
        none."""
        if not 0 <= index < self.num_runs:
            raise IndexError(f"run index {index} out of range (the plan has {self.num_runs} runs)")
        w = bisect.bisect_right(self._offsets, index) - 1
        return self.workflow_plans[w].span(index - self._offsets[w])

    def workflow_at(self, index: int) -> str:
        """The workflow of run ``index`` (without building its keys)."""
        return self.workflow_plans[bisect.bisect_right(self._offsets, index) - 1].workflow.name

    def runs(self, start: int = 0, stop: int | None = None) -> Iterator[PlannedRun]:
        """Runs ``start..stop-1``, their keys computed a workflow's stretch at a time."""
        stop = self.num_runs if stop is None else min(stop, self.num_runs)
        w = bisect.bisect_right(self._offsets, start) - 1
        while start < stop:
            plan, base = self.workflow_plans[w], self._offsets[w]
            end = min(stop, self._offsets[w + 1])
            if plan.is_ticks:
                yield from (plan.planned(keys) for keys in plan.groups(start - base, end - base))
            else:
                name = plan.workflow.name
                yield from (PlannedRun(name, keys) for keys in plan.groups(start - base, end - base))
            start, w = end, w + 1

    @property
    def partition_keys(self) -> Sequence[str]:
        if len(self.workflow_plans) == 1:
            return self.workflow_plans[0].keys
        return _Concat([p.keys for p in self.workflow_plans])

    @property
    def groups(self) -> Sequence[list[str]]:
        """The keys of each run, in order (lazy)."""
        return _Groups(self)


class _Concat(_LazySequence[str]):
    def __init__(self, parts: list[Sequence[str]]):
        self._parts = parts
        self._offsets = [0]
        for p in parts:
            self._offsets.append(self._offsets[-1] + len(p))

    def __len__(self) -> int:
        return self._offsets[-1]

    def _item(self, i: int) -> str:
        p = bisect.bisect_right(self._offsets, i) - 1
        return self._parts[p][i - self._offsets[p]]

    def __iter__(self) -> Iterator[str]:
        for part in self._parts:
            yield from part


class _Groups(_LazySequence[list[str]]):
    def __init__(self, plan: BackfillPlan):
        self._plan = plan

    def __len__(self) -> int:
        return self._plan.num_runs

    def _item(self, i: int) -> list[str]:
        return list(self._plan.run(i).keys)


#: Builders of plans of other shapes, by the part of the spec that marks them. ``graph_planning`` (which builds on
#: this module, so this one cannot import it) registers ``"graph"``; ``import anachron`` loads it.
PLAN_SHAPES: dict[str, Callable[[PlanSpec, Mapping[str, Workflow], Mapping[str, Sequence[str]]],
                                BackfillPlan]] = {}


def build_plan(spec: PlanSpec | Mapping[str, Any], workflows: Mapping[str, Workflow],
               dynamic: Mapping[str, Sequence[str]], resolved: Mapping[str, KeySequence] | None = None) -> BackfillPlan:
    """Rebuild a plan from its frozen spec (see ``freeze_plan``). Raises ``PlanChanged`` when the keys it
    planned can no longer be produced (a workflow or its partitions changed since). ``resolved``: the keys
    ``freeze_plan`` was given, when the plan is built right after it (not from storage)."""
    spec = PlanSpec.of(dict(spec) if not isinstance(spec, PlanSpec) else spec)
    for part, builder in PLAN_SHAPES.items():  # a plan of another shape (a graph backfill: graph_planning)
        if getattr(spec, part) is not None:
            return builder(spec, workflows, dynamic)
    now = datetime.fromisoformat(spec.now)
    strategy = BackfillStrategy.from_dict(spec.strategy) if spec.strategy else None
    plans = []
    for name in spec.workflows:
        workflow = workflows.get(name)
        if workflow is None:
            raise PlanChanged(f"workflow {name!r} is no longer defined")
        try:
            keys = resolved[name] if resolved and name in resolved else \
                resolve_keys(workflow, spec.selection, now, spec.dynamic if spec.dynamic is not None else dynamic)
        except ValueError as exc:
            if not spec.checks:
                raise
            raise PlanChanged(f"workflow {name!r}: {exc}") from None
        check = spec.checks.get(name)
        if check is not None:
            verify_keys(workflow, keys, check)
        is_ticks = is_tick_selection(workflow, spec.selection)
        ranges = spec.kept.get(name)
        ranges = None if ranges is None else [tuple(r) for r in ranges]
        chosen = strategy or workflow.backfill_strategy or BackfillStrategy.multi_run()
        taken = [(a, b) for a, b in (spec.taken or {}).get(name, [])] if spec.taken is not None else None
        shared = schedule_id_of(workflow, spec.selection) if is_ticks and spec.taken is not None else None
        plans.append(WorkflowPlan(workflow, keys, ranges, spec.order, chosen, is_ticks, taken, shared))
    return BackfillPlan(plans)


def definition_fingerprint(workflow: Workflow) -> str:
    """A short digest of what decides a workflow's keys: its partitions (or schedules)."""
    pdef = workflow.partitions
    text = repr((type(pdef).__name__, pdef._identity() if pdef is not None else None,
                 [(s.id, s.cron, s.timezone) for s in workflow.schedules]))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


#: Up to this many keys, a plan also stores a digest of them all (checked when the definition changed).
DIGEST_MAX_KEYS = 100_000


def key_check(workflow: Workflow, keys: Sequence[str]) -> dict[str, Any]:
    """What identifies the keys a workflow's selection resolved to, stored with the plan: their count,
    first and last key, a fingerprint of the definition and, for up to ``DIGEST_MAX_KEYS`` keys, a digest."""
    n = len(keys)
    return {"count": n, "first": keys[0] if n else None, "last": keys[n - 1] if n else None,
            "definition": definition_fingerprint(workflow), "shown": _shown(workflow),
            "digest": _digest(keys) if n <= DIGEST_MAX_KEYS else None}


def verify_keys(workflow: Workflow, keys: Sequence[str], check: Mapping[str, Any]) -> None:
    """Raise ``PlanChanged``, saying what changed, unless ``keys`` are the ones the plan was made with.

    The same definition gives the same keys. A changed definition (a later ``end``, say) is accepted
    when it still gives the planned keys: the same count, first and last key and, for plans of up to
    ``DIGEST_MAX_KEYS`` keys, the same digest of them all."""
    if check.get("definition") == definition_fingerprint(workflow):
        return
    n = len(keys)
    now = {"count": n, "first": keys[0] if n else None, "last": keys[n - 1] if n else None}
    same = all(now[k] == check[k] for k in now)
    if same and check.get("digest") is not None:
        same = _digest(keys) == check["digest"]
    if same:
        return

    def span(c: Mapping[str, Any]) -> str:
        return f"{c['count']} keys" + (f" {c['first']} … {c['last']}" if c["count"] else "")
    before = check.get("shown")
    changed = f" (planned with {before}, now {_shown(workflow)})" if before and before != _shown(workflow) else ""
    detail = f"{span(now)}" if now["count"] != check["count"] or now["first"] != check["first"] or \
        now["last"] != check["last"] else f"{span(now)}, not all of them the planned ones"
    raise PlanChanged(f"workflow {workflow.name!r} changed since the backfill was planned{changed}: it planned "
                      f"{span(check)}, the definition now gives {detail}")


def _digest(keys: Sequence[str]) -> str:
    h = hashlib.sha256()
    for key in keys:
        h.update(key.encode())
        h.update(b"\x00")
    return h.hexdigest()[:16]


def _shown(workflow: Workflow) -> str:
    if workflow.partitions is not None:
        return repr(workflow.partitions)
    return ", ".join(f"Schedule({s.cron!r}, timezone={s.timezone!r})" for s in workflow.schedules) or "no partitions"


def freeze_plan(workflows: Sequence[Workflow], selection: Mapping[str, Any], strategy: BackfillStrategy | None,
                order: str, reprocess: str, now: datetime, dynamic: Mapping[str, Sequence[str]],
                statuses: Mapping[str, Mapping[str, str]],
                taken: Mapping[str, Iterable[str]] | None = None,
                resolved: Mapping[str, KeySequence] | None = None) -> PlanSpec:
    """Decide a backfill's plan once (a ``PlanSpec``): the reprocess filter is evaluated now and kept as ranges.

    For a schedule's ticks, ``taken`` names (per workflow) the ticks that already had a run: the others'
    runs share their idempotency key with the daemon's live tick (``schedules.run_key``), so a tick the
    backfill and the daemon reach together runs once; a tick that had run is run again under the backfill's
    own key (that is what replaying it asks for)."""
    if order not in ORDERS:
        raise ValueError(f"order: expected one of {ORDERS}, got {order!r}")
    if reprocess not in REPROCESS:
        raise ValueError(f"reprocess: expected one of {REPROCESS}, got {reprocess!r}")
    kept: dict[str, Any] = {}
    checks: dict[str, Any] = {}
    resolved = dict(resolved or {})
    for workflow in workflows:
        if workflow.name not in resolved:
            resolved[workflow.name] = resolve_for(workflow, selection, now, dynamic, len(workflows) > 1)
        keys = resolved[workflow.name]
        kept[workflow.name] = kept_ranges(keys, statuses.get(workflow.name, {}), reprocess)
        checks[workflow.name] = key_check(workflow, keys)
    shared: dict[str, list[list[int]]] | None = None
    if taken is not None:
        shared = {}
        for workflow in workflows:
            if is_tick_selection(workflow, selection):
                had = set(taken.get(workflow.name, ()))
                keys = resolved[workflow.name]
                shared[workflow.name] = _index_ranges(i for i, k in enumerate(keys) if k in had) if had else []
    return PlanSpec(workflows=[w.name for w in workflows], selection=dict(selection), now=now.isoformat(),
                    strategy=strategy.to_dict() if strategy else None, order=order, reprocess=reprocess,  # type: ignore[arg-type]
                    kept=kept, checks=checks, taken=shared,
                    dynamic={k: list(v) for k, v in dynamic.items()} if any(_uses_dynamic(w) for w in workflows)
                    else None)


def _index_ranges(indices: Iterable[int]) -> list[list[int]]:
    """Increasing indices as ``[a, b)`` ranges."""
    ranges: list[list[int]] = []
    for i in indices:
        if ranges and ranges[-1][1] == i:
            ranges[-1][1] = i + 1
        else:
            ranges.append([i, i + 1])
    return ranges


def _uses_dynamic(workflow: Workflow) -> bool:
    from .partitions import DynamicPartitions

    pdef = workflow.partitions
    dims = pdef.dimensions.values() if isinstance(pdef, MultiPartitions) else [pdef]
    return any(isinstance(d, DynamicPartitions) for d in dims)


def run_idempotency_key(backfill_id: str, keys: Sequence[str]) -> str:
    """``backfill:<id>:<keys>``: the keys joined by commas, each with ``%`` and ``,`` escaped, so no two key
    lists give the same text (``["a", "b"]`` → ``a,b``; ``["a,b"]`` → ``a%2Cb``). A list longer than 200
    characters is summarised by its (shortened) first and last key, its length and a digest of the whole."""
    escaped = [_escape(k) for k in keys]
    joined = ",".join(escaped)
    if len(joined) > 200:
        digest = hashlib.sha256(joined.encode()).hexdigest()[:16]
        joined = f"{escaped[0][:40]}..{escaped[-1][:40]}#{len(keys)}:{digest}"
    return f"backfill:{backfill_id}:{joined}"


def _escape(key: str) -> str:
    return key.replace("%", "%25").replace(",", "%2C") if ("%" in key or "," in key) else key
