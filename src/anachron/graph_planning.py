"""Planning a graph backfill (SPEC §8): pure, lazy, and frozen as JSON like any plan.

``backfill_members`` says which workflows a request covers (the selection, plus what ``include`` adds);
``freeze_graph_plan`` decides, per workflow, which key positions run — as index ranges of the workflow's key
sequence — and records the graph's edges with the plan, so a leader in another process rebuilds the identical
plan (``build_graph_plan``, called by ``planning.build_plan`` for a spec with a ``"graph"`` part).

How keys are chosen, per workflow:
- the range is read per workflow: ``start``/``end`` selects in each time-partitioned workflow the windows a
  one-workflow backfill would select, and every key of one without time windows (an unpartitioned workflow is
  one node: one run); ``partition_keys`` / ``partition_range`` name keys of the first selected workflow, and
  another selected workflow connected to it gets the keys mapped from them through the graph;
- ``include="downstream"`` adds every workflow downstream of the selection with the keys mapped from the
  selected ones; ``"upstream"`` adds the upstream keys the selected keys need;
- ``reprocess`` applies per workflow and key, and a key that runs makes the keys downstream of it in the
  backfill run too: ``reprocess="missing"`` fills exactly the missing keys everywhere plus what depends on them.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from datetime import datetime
from typing import Any

from .definitions import Workflow, WorkflowRegistry
from .graph import WorkflowGraph, edges_from_json
from .graph_order import GraphPlan, Lane, LaneEdge, NodePlan
from .index_ranges import EMPTY, RangeSet, union_all
from .mapping_bounds import Bound, Side, flatten
from .models import FAILED, MISSING
from .partitions import KeySequence, MultiPartitions, PartitionKeyRange
from .plan_spec import PlanSpec
from .planning import (
    ORDERS,
    PLAN_SHAPES,
    REPROCESS,
    PlanChanged,
    WorkflowPlan,
    key_check,
    resolve_keys,
    verify_keys,
)
from .strategies import BackfillStrategy

INCLUDES = ("selection", "downstream", "upstream")
Dynamic = Mapping[str, Sequence[str]]
#: the partition status of an unpartitioned workflow (its latest run's) is read under this key
NODE_KEY = ""


def backfill_members(graph: WorkflowGraph, selected: Sequence[str], include: str) -> list[str]:
    """The workflows a backfill of ``selected`` covers, upstreams first."""
    if include not in INCLUDES:
        raise ValueError(f"include: expected one of {', '.join(INCLUDES)}, got {include!r}")
    if include == "selection":
        return [n for n in graph.order if n in set(selected)]
    return graph.closure(selected, include)


def is_graph_backfill(graph: WorkflowGraph, selected: Sequence[str], include: str,
                      ticking: Collection[str] = ()) -> bool:
    """Whether a backfill needs graph planning: it includes more than its selection, or some of its workflows
    depend on others of it (or on their own past, unless they replay schedule ticks: ``ticking``)."""
    edges = [e for e in graph.edges_among(selected) if not (e.is_past and e.upstream in ticking)]
    return include != "selection" or bool(edges)


class _Planner:
    def __init__(self, registry: WorkflowRegistry, now: datetime, dynamic: Dynamic) -> None:
        self.registry, self.graph, self.now, self.dynamic = registry, registry.graph, now, dynamic
        self._sides: dict[str, Side] = {}
        self._bounds: dict[tuple[str, str], Bound] = {}

    def side(self, name: str) -> Side:
        if name not in self._sides:
            self._sides[name] = Side.of(self.registry[name].partitions, self.now, self.dynamic)
        return self._sides[name]

    def bound(self, upstream: str, downstream: str) -> Bound:
        found = self._bounds.get((upstream, downstream))
        if found is None:
            edge = next(e for e in self.graph.upstream_edges(downstream) if e.upstream == upstream)
            found = self._bounds[upstream, downstream] = edge.mapping.bind(
                self.side(upstream), self.side(downstream), self.now, self.dynamic)
        return found

    # -- which keys each workflow is asked for ------------------------------------------------------
    def own(self, wf: Workflow, selection: Mapping[str, Any]) -> RangeSet:
        """The positions a selection names in one workflow, read by the workflow itself."""
        side = self.side(wf.name)
        pdef, keys = wf.partitions, side.keys
        if pdef is None or keys is None:
            return RangeSet.span(0, 1)
        kind = selection["kind"]
        if kind == "time":
            end = selection.get("end") or self.now
            if isinstance(pdef, MultiPartitions) and pdef.time_dimension_name is not None:
                dims = side.dimensions(self.now, self.dynamic)
                parts = []
                for name, dim in dims:
                    if name == pdef.time_dimension_name:
                        sub = pdef.dimensions[name].keys_in_time_range(selection["start"], end, self.now, self.dynamic)
                        assert dim.keys is not None
                        parts.append(_stretch(dim.keys, sub))
                    else:
                        parts.append(RangeSet.span(0, dim.size))
                return flatten(parts, [d.size for _, d in dims])
            if pdef.is_time_based:
                return _stretch(keys, pdef.keys_in_time_range(selection["start"], end, self.now, self.dynamic))
            return RangeSet.span(0, len(keys))
        if kind == "all":
            return RangeSet.span(0, len(keys))
        if kind == "workflow_keys":
            given = selection["keys"].get(wf.name, [])
            for key in given:
                pdef.validate_key(key, self.now, self.dynamic)
            return RangeSet.of_indices(keys.index(k) for k in given)
        resolved = resolve_keys(wf, selection, self.now, self.dynamic)  # checks every key it names
        if kind != "range":
            return RangeSet.of_indices(keys.index(k) for k in resolved)
        chosen = PartitionKeyRange.from_dict(selection["range"])
        if chosen.kind == "single":
            return _stretch(keys, resolved)
        dims = side.dimensions(self.now, self.dynamic)
        parts = []
        for name, dim in dims:
            spec, seq = chosen.dimensions.get(str(name)), dim.keys
            assert seq is not None
            if isinstance(spec, dict):
                parts.append(RangeSet.span(seq.index(spec["from"]), seq.index(spec["to"]) + 1))
            else:
                parts.append(RangeSet.span(0, dim.size) if spec is None else RangeSet.of_indices(map(seq.index, spec)))
        return flatten(parts, [d.size for _, d in dims])

    def unconnected(self, name: str, first: str, selection: Mapping[str, Any]) -> RangeSet:
        """The keys of a selected workflow that no dependency links to the first one: read as its own."""
        try:
            return self.own(self.registry[name], selection)
        except ValueError as exc:
            field = "partition_keys" if selection["kind"] == "keys" else "partition_range"
            raise ValueError(f"{field}: workflow {name!r} is not connected to {first!r} through dependencies, so "
                             f"the keys are read as its own: {exc}") from None

    def reach(self, start: str, seed: RangeSet, direction: str) -> dict[str, RangeSet]:
        """The positions mapped from ``seed`` (of ``start``) through the whole graph, in one direction."""
        found = {start: seed}
        names = self.graph.closure([start], direction)
        if direction == "upstream":
            names.reverse()
        for name in names:
            if name != start:
                found[name] = self.mapped(name, found, direction)
        return found

    def mapped(self, name: str, known: Mapping[str, RangeSet], direction: str) -> RangeSet:
        """``name``'s positions mapped from its neighbours' ``known`` ones: from its upstreams (``"downstream"``:
        the keys that need them) or from its downstreams (``"upstream"``: the keys they need)."""
        if direction == "downstream":
            return union_all(self.bound(e.upstream, name).down_of(known[e.upstream])
                             for e in self.graph.upstream_edges(name) if e.upstream in known)
        return union_all(self.bound(name, e.downstream).up_of(known[e.downstream])
                         for e in self.graph.downstream_edges(name) if e.downstream in known)

    def candidates(self, members: list[str], selected: list[str], selection: Mapping[str, Any],
                   include: str) -> dict[str, RangeSet]:
        wanted: dict[str, RangeSet] = {}
        first = self.registry[selected[0]]
        if selection["kind"] in ("keys", "range"):
            wanted[first.name] = self.own(first, selection)
            down = self.reach(first.name, wanted[first.name], "downstream")
            up = self.reach(first.name, wanted[first.name], "upstream")
            for name in selected[1:]:
                wanted[name] = down[name] if name in down else up[name] if name in up else \
                    self.unconnected(name, first.name, selection)
        else:
            for name in selected:
                wanted[name] = self.own(self.registry[name], selection)
        added = [n for n in members if n not in wanted]
        if include == "upstream":
            added.reverse()
        for name in added:
            wanted[name] = self.mapped(name, wanted, include)
        return wanted

    # -- reprocess ------------------------------------------------------------------------------------
    def kept(self, members: list[str], wanted: Mapping[str, RangeSet], reprocess: str,
             statuses: Mapping[str, Mapping[str, str]]) -> dict[str, RangeSet]:
        if reprocess == "all":
            return dict(wanted)
        kept: dict[str, RangeSet] = {}
        for name in members:
            due = self.mapped(name, kept, "downstream")
            own = self.filtered(name, wanted[name], statuses.get(name, {}), reprocess)
            kept[name] = own | (due & wanted[name])
        return kept

    def filtered(self, name: str, positions: RangeSet, status: Mapping[str, str], reprocess: str) -> RangeSet:
        """The positions whose status ``reprocess`` asks to run: missing (and failed) keys."""
        accepted = (MISSING, FAILED) if reprocess == "failed_and_missing" else (MISSING,)
        keys = self.side(name).keys
        if keys is None:
            return positions if status.get(NODE_KEY, MISSING) in accepted else EMPTY
        if len(status) * 4 < len(positions):  # few keys have runs: look those up
            done = RangeSet.of_indices(i for i in (keys._index(k) for k, st in status.items() if st not in accepted)
                                       if i is not None)
            return positions - done
        keep: list[int] = []
        for a, b in positions.ranges:
            keep += [i for i, key in enumerate(keys[a:b], a) if status.get(key, MISSING) in accepted]
        return RangeSet.of_indices(keep)


def freeze_graph_plan(registry: WorkflowRegistry, selected: Sequence[Workflow], include: str,
                      selection: Mapping[str, Any], strategy: BackfillStrategy | None, order: str, reprocess: str,
                      now: datetime, dynamic: Dynamic, statuses: Mapping[str, Mapping[str, str]]) -> PlanSpec:
    """A graph backfill's plan, decided once, as JSON (see the module note). ``statuses``: per workflow of
    ``backfill_members``, its partition statuses (an unpartitioned one's latest run under ``NODE_KEY``), needed
    unless ``reprocess="all"``."""
    if order not in ORDERS:
        raise ValueError(f"order: expected one of {ORDERS}, got {order!r}")
    if reprocess not in REPROCESS:
        raise ValueError(f"reprocess: expected one of {REPROCESS}, got {reprocess!r}")
    if selection.get("trigger_id") is not None:
        raise ValueError("trigger_id: a schedule backfill replays the ticks of one workflow; it cannot include other "
                         "workflows (include='selection', and no dependencies among the workflows)")
    graph = registry.graph
    names = [w.name for w in selected]
    members = backfill_members(graph, names, include)
    check_order(registry, members, order)
    planner = _Planner(registry, now, dynamic)
    wanted = planner.candidates(members, names, selection, include)
    kept = planner.kept(members, wanted, reprocess, statuses)
    checks = {n: key_check(registry[n], planner.side(n).keys or ()) for n in members
              if registry[n].partitions is not None}
    return PlanSpec(
        workflows=members, selection={"kind": "all"}, now=now.isoformat(),
        strategy=strategy.to_dict() if strategy else None, order=order, reprocess=reprocess,  # type: ignore[arg-type]
        kept={n: kept[n].to_json() for n in members}, checks=checks,
        graph={"include": include, "selected": names, "selection": dict(selection),
               "edges": [e.to_json() for e in graph.edges_among(members)]},
        dynamic={k: list(v) for k, v in dynamic.items()}
        if dynamic and any(_dynamic_names(registry[n]) for n in members) else None)


def check_order(registry: WorkflowRegistry, names: Sequence[str], order: str) -> None:
    """``depends_on_past`` runs each key after the one before it: refused with ``order="newest_first"``."""
    if order != "newest_first":
        return
    for name in names:
        if registry[name].depends_on_past:
            raise ValueError(f"order: 'newest_first' conflicts with depends_on_past=True of workflow {name!r} "
                             "(each key waits for the key before it); use order='oldest_first'")


def ticks_not_available(names: Sequence[str]) -> str:
    """Why replaying the ticks of a ``depends_on_past`` workflow is refused for now (see ``engine.backfills``)."""
    return (f"workflow {names[0]!r}: depends_on_past=True: replaying its schedule's ticks one after another is not "
            "available yet (a dry run shows them); give it partitions (e.g. TimeWindowPartitions on its cron) for "
            "a backfill whose keys wait for the key before")


def build_graph_plan(spec: PlanSpec, workflows: Mapping[str, Workflow], dynamic: Dynamic) -> GraphPlan:
    """Rebuild a graph backfill's plan from its frozen spec; ``PlanChanged`` when a workflow or its partitions
    changed so that the planned keys can no longer be produced."""
    assert spec.graph is not None
    now = datetime.fromisoformat(spec.now)
    dynamic = spec.dynamic if spec.dynamic is not None else dynamic
    strategy = BackfillStrategy.from_dict(spec.strategy) if spec.strategy else None
    newest_first = spec.order == "newest_first"
    names: list[str] = list(spec.workflows)
    edges = edges_from_json(spec.graph["edges"])
    levels: dict[str, int] = {}
    for name in names:
        levels[name] = max((levels[e.upstream] + 1 for e in edges
                            if e.downstream == name and e.upstream != name and e.upstream in levels), default=0)
    lanes: list[Lane] = []
    sides: dict[str, Side] = {}
    for name in names:
        workflow = workflows.get(name)
        if workflow is None:
            raise PlanChanged(f"workflow {name!r} is no longer defined")
        side = sides[name] = Side.of(workflow.partitions, now, dynamic)
        check = spec.checks.get(name)
        if (check is None) != (side.keys is None):
            raise PlanChanged(f"workflow {name!r} changed since the backfill was planned: it "
                              f"{'has' if side.keys is not None else 'no longer has'} partitions")
        kept = RangeSet(spec.kept[name])
        if side.keys is None:
            plan: Any = NodePlan(workflow, bool(kept))
        else:
            assert check is not None  # (a workflow with keys has a check: above)
            verify_keys(workflow, side.keys, check)
            if kept and kept.last is not None and kept.last >= len(side.keys):
                raise PlanChanged(f"workflow {name!r}: the plan runs key number {kept.last + 1}, the definition "
                                  f"now has {len(side.keys)} keys")
            chosen = strategy or workflow.backfill_strategy or BackfillStrategy.multi_run()
            plan = WorkflowPlan(workflow, side.keys, list(kept.ranges), spec.order, chosen, False)
        lanes.append(Lane(plan, side, kept, newest_first, levels[name], _inner(workflow, side, now, dynamic)))
    index = {name: i for i, name in enumerate(names)}
    bound = [LaneEdge(index[e.upstream], index[e.downstream],
                      e.mapping.bind(sides[e.upstream], sides[e.downstream], now, dynamic)) for e in edges]
    return GraphPlan(lanes, bound)


def _inner(workflow: Workflow, side: Side, now: datetime, dynamic: Dynamic) -> int:
    """For multi-partitions whose first dimension is time: how many keys share one window."""
    pdef = workflow.partitions
    if not isinstance(pdef, MultiPartitions) or side.keys is None:
        return 1
    first = pdef.dimensions[pdef.dimension_names[0]].get_partition_keys(now, dynamic)
    return max(1, len(side.keys) // max(1, len(first)))


def _stretch(keys: KeySequence, sub: Sequence[str]) -> RangeSet:
    """The positions in ``keys`` of ``sub``, a contiguous stretch of them (or empty)."""
    if not len(sub):
        return EMPTY
    first = keys.index(sub[0])
    return RangeSet.span(first, first + len(sub))


def _dynamic_names(workflow: Workflow) -> bool:
    from .partitions import DynamicPartitions

    pdef = workflow.partitions
    dims = pdef.dimensions.values() if isinstance(pdef, MultiPartitions) else [pdef]
    return any(isinstance(d, DynamicPartitions) for d in dims)


PLAN_SHAPES["graph"] = build_graph_plan
