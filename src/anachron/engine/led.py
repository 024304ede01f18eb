"""A backfill as the process leading it holds it: the stored request, the rebuilt plan, and the factory
of its next runs (created a window at a time)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone, tzinfo
from typing import Any

from ..clock import logical_time
from ..definitions import WorkflowRegistry
from ..graph_order import GraphPlan, RunNeeds
from ..loading import ref_of
from ..models import BACKFILL_TAG
from ..params import decode_params, encode_params
from ..plan_spec import PlanSpec
from ..planning import BackfillPlan, PlannedRun, build_plan, run_idempotency_key
from ..records import BackfillRecord, NewRun, WorkflowRef
from ..runtime import RunJob
from ..storage.codec import dumps
from .jobs import new_run, partition_timezone, tick_partition


@dataclass(frozen=True)
class StoredRequest:
    """What a backfill keeps of its request: the frozen plan and the rules its runs follow."""

    plan: PlanSpec  # what was planned (planning.freeze_plan)
    failure_policy: str
    params: str  # encoded (anachron.params): for every run
    config: Mapping[str, str]  # workflow → encoded overrides
    run_params: Mapping[str, str]  # workflow → the encoded params its runs get
    tags: Mapping[str, str]
    priority: int
    max_concurrency: int
    totals: Mapping[str, int] = field(default_factory=dict)  # workflow → the partitions it plans

    def to_json(self) -> dict[str, Any]:
        return {"plan": self.plan.to_json(), "failure_policy": self.failure_policy, "params": self.params,
                "config": dict(self.config), "run_params": dict(self.run_params), "tags": dict(self.tags),
                "priority": self.priority, "max_concurrency": self.max_concurrency, "totals": dict(self.totals)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> StoredRequest:
        params = data.get("params") or {}
        config = data.get("config") or {}
        if isinstance(params, dict):  # stored by anachron 0.1: plain JSON values
            params = encode_params(params)
        config = {w: encode_params(v) if isinstance(v, dict) else v for w, v in config.items()}
        run_params = data.get("run_params")
        if run_params is None:
            base = decode_params(params)
            run_params = {w: encode_params({**base, **decode_params(config.get(w))})
                          for w in data["plan"]["workflows"]}
        return cls(PlanSpec.of(data["plan"]), data.get("failure_policy", "continue"), params, config, run_params,
                   dict(data.get("tags") or {}), int(data["priority"]), int(data["max_concurrency"]),
                   dict(data.get("totals") or {}))

    def decoded_params(self) -> dict[str, Any]:
        return decode_params(self.params)

    def decoded_config(self) -> dict[str, dict[str, Any]]:
        return {w: decode_params(v) for w, v in self.config.items()}


def _stretches(indices: list[int]) -> Iterator[tuple[int, int]]:
    """Sorted indices as ``[start, stop)`` stretches."""
    start = prev = None
    for i in indices:
        if start is None:
            start = prev = i
        elif i == prev + 1:  # type: ignore[operator]
            prev = i
        else:
            yield start, prev + 1  # type: ignore[operator]
            start = prev = i
    if start is not None:
        yield start, prev + 1  # type: ignore[operator]


def rebuild_plan(record: BackfillRecord, registry: WorkflowRegistry,
                 dynamic: Mapping[str, list[str]] | None = None) -> tuple[StoredRequest, BackfillPlan]:
    """The stored request and its plan, rebuilt exactly (``planning.PlanChanged`` when it cannot be)."""
    stored = StoredRequest.from_json(record.request)
    return stored, build_plan(stored.plan, registry, dynamic or {})


#: runs of a backfill created ahead of those that may start (see ``LedBackfill.window``)
QUEUED_AHEAD = 16

#: per workflow of a backfill: params (JSON, decoded), tags (JSON, dict), its reference, its windows' timezone
_Shared = tuple[str, str, Mapping[str, Any], dict[str, str], WorkflowRef, tzinfo]


@dataclass
class LedBackfill:
    """A backfill this process leads, as its memory holds it: the record, cursor and active count as last
    known (they mirror storage between refreshes; the tick re-reads them when they may have changed), the
    stored request and rebuilt plan, and the jobs of runs created and not started yet."""

    record: BackfillRecord
    stored: StoredRequest
    plan: BackfillPlan
    cursor: int = 0
    active: int = 0  # its runs this process created or took over that have not finished
    jobs: dict[str, RunJob] = field(default_factory=dict)  # created, not yet started: their jobs, ready
    _shared: dict[str, _Shared] = field(default_factory=dict)  # per workflow: what all its runs share (a cache)
    _needs: dict[int, RunNeeds] = field(default_factory=dict)  # a graph plan's needs of waiting runs (a cache)

    @property
    def graph(self) -> GraphPlan | None:
        """The plan, when it is a graph backfill's whose runs need each other's (``None`` otherwise)."""
        plan = self.plan
        return plan if isinstance(plan, GraphPlan) and plan.edges else None

    def needs(self, indices: Iterable[int]) -> list[RunNeeds]:
        """What the runs at these plan indices need (a graph plan's), computed a stretch at a time and kept
        while they wait."""
        plan = self.graph
        if plan is None:
            return []
        wanted = sorted(set(indices))
        missing = [i for i in wanted if i not in self._needs]
        for start, stop in _stretches(missing):
            for found in plan.needs(start, stop):
                self._needs[found.index] = found
        if len(self._needs) > 4 * max(64, len(wanted)):  # forget the ones that ran
            low = wanted[0] if wanted else 0
            self._needs = {i: n for i, n in self._needs.items() if i >= low}
        return [self._needs[i] for i in wanted if i in self._needs]

    @property
    def backfill_id(self) -> str:
        return self.record.backfill_id

    @staticmethod
    def window(record: BackfillRecord, capacity: int) -> int:
        """How many of its runs may exist unfinished at once: as many as may run (its ``max_concurrency``, at
        most what the executor takes) and a few queued behind them — visible to other processes sharing
        the queue, and ready for the next start."""
        return min(record.max_concurrency, capacity) + QUEUED_AHEAD

    def refill(self, capacity: int, record: BackfillRecord, cursor: int, active: int) -> int:
        """How many runs to create now: enough to fill the window, once that is at least ``QUEUED_AHEAD``
        (or all that is left): fewer, larger batches — one statement and one bulk key slice each."""
        left = record.total_runs - cursor
        room = min(self.window(record, capacity) - active, left)
        return room if room >= min(QUEUED_AHEAD, left) and room > 0 else 0

    def tags_of(self, workflow: str) -> dict[str, str]:
        """The tags of this backfill's runs of ``workflow`` (after ``next_runs`` built some)."""
        return self._shared[workflow][3]

    def next_runs(self, cursor: int, count: int, registry: WorkflowRegistry, owner: str, now: float,
                  log_limit: int) -> tuple[list[NewRun], dict[str, RunJob]]:
        """The ``count`` planned runs from ``cursor`` on as rows, each with its ``plan_index`` (written with
        the cursor it moved, or not at all), and their jobs for when they start."""
        planned = list(self.plan.runs(cursor, cursor + count))
        windows = self._windows(planned, registry)
        plan_now = datetime.fromisoformat(self.stored.plan.now)
        priority, backfill_id = self.stored.priority, self.backfill_id
        rows = []
        jobs: dict[str, RunJob] = {}
        for index, (run, bounds) in enumerate(zip(planned, windows), cursor):
            params_json, tags_json, params, tags, ref, zone = self._shared_of(run.workflow, registry)
            keys = run.keys
            window = None
            row_keys = keys
            if run.scheduled_time is not None:  # a tick: the partition that ended by it, as the live tick runs
                row_keys, window = tick_partition(registry[run.workflow], run.scheduled_time)
                bounds = (window[0].timestamp(), window[1].timestamp()) if window is not None else None
            elif bounds is not None:
                window = (datetime.fromtimestamp(bounds[0], zone), datetime.fromtimestamp(bounds[1], zone))
            logical = logical_time(submitted=plan_now, tick=run.scheduled_time, window=window)
            row = new_run(workflow=run.workflow, keys=row_keys, params=params_json, tags=tags_json,
                          priority=priority, backfill_id=backfill_id,
                          idempotency_key=run.shared_key or run_idempotency_key(backfill_id, keys),
                          logical_time=logical.timestamp(), window=bounds,
                          scheduled_time=run.scheduled_time.timestamp() if run.scheduled_time else None,
                          created_at=now, owner=owner, plan_index=index)
            rows.append(row)
            # params decoded per run: a run that changes a list it was given must not change its neighbours'
            jobs[row.run_id] = RunJob(row.run_id, 1, ref, row_keys, window, logical, run.scheduled_time,
                                      decode_params(params_json) if params else {}, tags, backfill_id, {}, log_limit)
        return rows, jobs

    @staticmethod
    def _windows(planned: list[PlannedRun], registry: WorkflowRegistry) -> list[tuple[float, float] | None]:
        """Each planned run's time span (from its first key's start to its last key's end; ``None`` for a run
        of no time partition), in ``planned``'s order, computed in bulk per workflow."""
        spans: list[tuple[float, float] | None] = [None] * len(planned)
        by_workflow: dict[str, list[int]] = {}
        for i, run in enumerate(planned):
            if run.scheduled_time is None and run.keys:
                by_workflow.setdefault(run.workflow, []).append(i)
        for name, indices in by_workflow.items():
            pdef = registry[name].partitions
            if pdef is None or not pdef.is_time_based:
                continue
            runs = [planned[i] for i in indices]
            firsts = pdef.window_bounds([r.keys[0] for r in runs])
            lasts = firsts if all(len(r.keys) == 1 for r in runs) else pdef.window_bounds([r.keys[-1] for r in runs])
            for i, first, last in zip(indices, firsts, lasts):
                spans[i] = (min(first[0], last[0]), max(first[1], last[1]))
        return spans

    def _shared_of(self, name: str, registry: WorkflowRegistry) -> _Shared:
        shared = self._shared.get(name)
        if shared is None:
            workflow = registry[name]
            params_json = self.stored.run_params[name]
            tags = {**workflow.tags, **self.stored.tags, BACKFILL_TAG: self.backfill_id}
            pdef = workflow.partitions
            zone = partition_timezone(pdef) if pdef is not None and pdef.is_time_based else timezone.utc
            shared = self._shared[name] = (params_json, dumps(tags), decode_params(params_json), tags,
                                           ref_of(workflow), zone)
        return shared
