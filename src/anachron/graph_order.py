"""A graph backfill's plan: its runs in an order that puts upstream work first, and what each run waits for.

``GraphPlan`` answers what the engine asks of any plan (``num_runs``, ``run(i)``, ``runs(a, b)``, ``key_span(i)``,
``workflow_plans``), so runs are created a window at a time exactly as for one workflow. The order interleaves
the workflows: every run gets a *release value* ``v`` — for time partitions the end of its last window (oldest
first) — raised to the values of the upstream runs it needs, and runs are merged by ``(v, level, workflow,
run)``. A daily run therefore comes right after its 24 hours, a weekly run right after its 7 days, and no run
ever comes before an upstream run it needs (ties go to the upstream, whose level is lower). Where a mapping gives
no monotone bound (keys matched by text), the downstream workflow's runs all come after its upstreams' runs.
Nothing is materialised per run: ``v`` is computed on demand, the merge is a heap of one head per workflow, and
a random position is found by binary search (or from checkpoints once a grid asks for many).

``needs(start, stop)`` is the readiness helper the engine's decide step uses: for each run of a window, the
upstream runs of this backfill that must have succeeded first, as contiguous stretches of each upstream's runs
with their first and last plan index (``plan_index`` of the stored runs) and how many runs they hold.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .index_ranges import EMPTY, RangeSet, union_all
from .mapping_bounds import Bound
from .partitions import MultiPartitions, TimeWindowPartitions
from .partitions.base import EMPTY as EMPTY_KEYS
from .planning import BackfillPlan, PlannedRun, SelectedKeys, WorkflowPlan, _Concat
from .strategies import BATCHED, PER_DIMENSION, SINGLE_RUN, BackfillStrategy

if TYPE_CHECKING:
    from .definitions import Workflow
    from .mapping_bounds import Side

NEG_INF = float("-inf")
_MEMO_MAX = 200_000  # release values remembered per workflow
_CHECKPOINT_EVERY = 64
_CHUNK = 512  # runs whose keys are built together
_RECENT_MAX = 65_536  # plan indices of iterated runs remembered


class NodePlan(WorkflowPlan):
    """An unpartitioned workflow in a graph backfill: one run without keys (when kept), counted as one partition."""

    def __init__(self, workflow: Workflow, kept: bool) -> None:
        self.workflow = workflow
        self.keys = SelectedKeys(EMPTY_KEYS, None, False)
        self.num_runs = 1 if kept else 0
        self.strategy = BackfillStrategy.multi_run()
        self.is_ticks = False

    def planned(self, keys: tuple[str, ...]) -> PlannedRun:
        return PlannedRun(self.workflow.name, ())

    def group(self, j: int) -> tuple[str, ...]:
        return ()

    def span(self, j: int) -> tuple[str, str] | None:
        return None

    def groups(self, j0: int, j1: int) -> list[tuple[str, ...]]:
        return [() for _ in range(j0, j1)]


def num_partitions(plan: WorkflowPlan) -> int:
    return plan.num_runs if isinstance(plan, NodePlan) else len(plan.keys)


def workflow_counts(plan: BackfillPlan) -> dict[str, dict[str, int]]:
    """Per workflow of a plan (any plan), in its order: ``{"num_partitions": n, "num_runs": n}``."""
    return {p.workflow.name: {"num_partitions": num_partitions(p), "num_runs": p.num_runs}
            for p in plan.workflow_plans}


class Lane:
    """One workflow of the plan: its kept key positions and how they fall into runs."""

    def __init__(self, plan: WorkflowPlan, side: Side, kept: RangeSet, newest_first: bool, level: int,
                 inner: int = 1) -> None:
        self.plan, self.side, self.kept, self.newest_first, self.level = plan, side, kept, newest_first, level
        self.name = plan.workflow.name
        self.runs = plan.num_runs
        self.n = len(kept) if isinstance(plan, WorkflowPlan) else plan.num_runs
        kind = plan.strategy.kind
        self.size: int | None = 1
        if isinstance(plan, WorkflowPlan) and kind == SINGLE_RUN:
            self.size = max(1, self.n)
        elif isinstance(plan, WorkflowPlan) and kind == BATCHED:
            self.size = plan.strategy.batch_size or 1
        elif isinstance(plan, WorkflowPlan) and kind == PER_DIMENSION:
            self.size = None
        self._group_of: dict[int, int] | None = None
        pdef = side.pdef
        self._time: TimeWindowPartitions | None = None
        self._inner = inner
        if isinstance(pdef, TimeWindowPartitions):
            self._time = pdef
        elif isinstance(pdef, MultiPartitions) and isinstance(pdef.dimensions[pdef.dimension_names[0]],
                                                              TimeWindowPartitions):
            self._time = pdef.dimensions[pdef.dimension_names[0]]  # type: ignore[assignment]

    @property
    def ordered(self) -> bool:
        """Whether runs follow key order (so a run's keys are a stretch of the kept keys)."""
        return self.size is not None

    def _position(self, ordinal: int) -> int:
        return self.kept.nth(self.n - 1 - ordinal if self.newest_first else ordinal)

    def span(self, j: int) -> tuple[int, int]:
        """The smallest and largest key position of run ``j`` (an ordered lane; a node: ``(0, 0)``)."""
        if isinstance(self.plan, NodePlan):
            return 0, 0
        assert self.size is not None
        if self.size == 1:
            p = self._position(j)
            return p, p
        o0, o1 = j * self.size, min(self.n, (j + 1) * self.size) - 1
        a, b = self._position(o0), self._position(o1)
        return (b, a) if self.newest_first else (a, b)

    def positions(self, j: int) -> RangeSet:
        """The key positions of run ``j``."""
        if isinstance(self.plan, NodePlan):
            return RangeSet.span(0, 1)
        if self.size is None:
            keys = self.side.keys
            assert keys is not None
            return RangeSet.of_indices(keys.index(k) for k in self.plan.group(j))
        lo, hi = self.span(j)
        return self.kept & RangeSet.span(lo, hi + 1)

    def run_of(self, position: int) -> int:
        """The run holding the kept key at ``position``."""
        if isinstance(self.plan, NodePlan):
            return 0
        if self.size is None:
            if self._group_of is None:
                keys = self.side.keys
                assert keys is not None
                self._group_of = {keys.index(k): j for j in range(self.runs) for k in self.plan.group(j)}
            return self._group_of[position]
        ordinal = self.kept.rank(position)
        if self.newest_first:
            ordinal = self.n - 1 - ordinal
        return ordinal // self.size

    def runs_of(self, positions: RangeSet) -> RangeSet:
        """The runs holding the kept keys among ``positions``."""
        chosen = self.kept & positions
        if not chosen:
            return EMPTY
        if self.size is None or isinstance(self.plan, NodePlan):
            return RangeSet.of_indices(self.run_of(p) for p in chosen)
        out = []
        for a, b in chosen.ranges:
            o0, o1 = self.kept.rank(a), self.kept.rank(b) - 1
            if self.newest_first:
                o0, o1 = self.n - 1 - o1, self.n - 1 - o0
            out.append((o0 // self.size, o1 // self.size + 1))
        return RangeSet(out)

    def base(self, j: int) -> float:
        """A run's own release value: the end of its last window (oldest first), minus the start of its first
        (newest first), in microseconds; ``-inf`` without time windows."""
        if self._time is None or not self.ordered:
            return NEG_INF
        lo, hi = self.span(j)
        if self.newest_first:
            return -self._time.boundary(lo // self._inner).timestamp() * 1e6
        return self._time.boundary(hi // self._inner + 1).timestamp() * 1e6


@dataclass(frozen=True)
class LaneEdge:
    """An edge of the plan between two lanes (``upstream == downstream`` for ``depends_on_past``)."""

    upstream: int
    downstream: int
    bound: Bound


class RunOrder:
    """The merged order of the lanes' runs (see the module note)."""

    def __init__(self, lanes: list[Lane], edges: list[LaneEdge]) -> None:
        self.lanes = lanes
        self.total = sum(lane.runs for lane in lanes)
        self._incoming: list[list[LaneEdge]] = [[] for _ in lanes]
        for e in edges:
            if e.upstream != e.downstream:
                self._incoming[e.downstream].append(e)
        self._constant: list[float | None] = []
        self._memo: list[dict[int, float]] = [{} for _ in lanes]
        for w, lane in enumerate(lanes):
            monotone = lane.ordered and all(e.bound.bounds(0, 1) is not None for e in self._incoming[w])
            if monotone:
                self._constant.append(None)
            else:
                last = [self.v(e.upstream, lanes[e.upstream].runs - 1) for e in self._incoming[w]
                        if lanes[e.upstream].runs]
                self._constant.append(max(last, default=NEG_INF))
        self._cursor: tuple[int, list[int]] = (0, [0] * len(lanes))
        self._recent: dict[tuple[int, int], int] = {}  # (lane, run) → plan index, of runs iterated lately
        self._starts: dict[int, list[int]] = {}  # where the latest iterations started: plan index → positions
        self._checkpoints: list[list[int]] | None = None

    # -- release values ---------------------------------------------------------------------------
    def v(self, w: int, j: int) -> float:
        constant = self._constant[w]
        if constant is not None:
            return constant
        memo = self._memo[w]
        found = memo.get(j)
        if found is not None:
            return found
        lane = self.lanes[w]
        value = lane.base(j)
        lo, hi = lane.span(j)
        for e in self._incoming[w]:
            up = self.lanes[e.upstream]
            bounds = e.bound.bounds(lo, hi + 1)
            assert bounds is not None
            q = up.kept.first_at_or_above(bounds[0]) if lane.newest_first else up.kept.last_below(bounds[1])
            if q is not None:
                value = max(value, self.v(e.upstream, up.run_of(q)))
        if len(memo) >= _MEMO_MAX:
            memo.clear()
        memo[j] = value
        return value

    def key(self, w: int, j: int) -> tuple[float, int, int, int]:
        return self.v(w, j), self.lanes[w].level, w, j

    # -- positions ----------------------------------------------------------------------------------
    def _count_before(self, x: int, kappa: tuple[float, int, int, int]) -> int:
        return _count_while(self.lanes[x].runs, lambda j: self.key(x, j) < kappa)

    def rank(self, w: int, j: int) -> int:
        """The plan index of lane ``w``'s run ``j`` (remembered for runs iterated lately: a window's needs are
        mostly the runs just before it)."""
        seen = self._recent.get((w, j))
        if seen is not None:
            return seen
        kappa = self.key(w, j)
        return j + sum(self._count_before(x, kappa) for x in range(len(self.lanes)) if x != w)

    def _positions_at(self, g: int) -> list[int]:
        """How many runs of each lane come before plan index ``g``."""
        if self._cursor[0] == g:
            return list(self._cursor[1])
        if g in self._starts:  # a window iterated again (its runs created, then its readiness asked)
            return list(self._starts[g])
        if self._checkpoints is not None:
            c = min(g // _CHECKPOINT_EVERY, len(self._checkpoints) - 1)
            positions = list(self._checkpoints[c])
            for _ in self._walk(c * _CHECKPOINT_EVERY, positions, g - c * _CHECKPOINT_EVERY):
                pass
            return positions
        return [self._runs_before(w, g) for w in range(len(self.lanes))]

    def _runs_before(self, w: int, g: int) -> int:
        return _count_while(self.lanes[w].runs, lambda j: self.rank(w, j) < g)

    def _walk(self, g: int, positions: list[int], steps: int | None = None) -> Iterator[tuple[int, int]]:
        """Lanes' runs from plan index ``g`` on (``positions``: runs of each lane before it; updated in place)."""
        heap = [(self.key(w, p), w) for w, p in enumerate(positions) if p < self.lanes[w].runs]
        heapq.heapify(heap)
        done = 0
        while heap and (steps is None or done < steps):
            (_, _, w, j), _ = heapq.heappop(heap)
            positions[w] = j + 1
            done += 1
            if j + 1 < self.lanes[w].runs:
                heapq.heappush(heap, (self.key(w, j + 1), w))
            yield w, j

    def iterate(self, start: int, stop: int) -> Iterator[tuple[int, int]]:
        """``(lane, run)`` of plan indices ``start..stop-1``."""
        stop = min(stop, self.total)
        if start >= stop:
            return
        positions = self._positions_at(start)
        if len(self._starts) >= 16:
            self._starts.clear()
        self._starts[start] = list(positions)
        g = start
        recent = self._recent
        for item in self._walk(start, positions, stop - start):
            if len(recent) >= _RECENT_MAX:
                recent.clear()
            recent[item] = g
            g += 1
            self._cursor = (g, list(positions))
            yield item

    def at(self, g: int) -> tuple[int, int]:
        if not 0 <= g < self.total:
            raise IndexError(f"run index {g} out of range (the plan has {self.total} runs)")
        return next(self.iterate(g, g + 1))

    def build_checkpoints(self) -> None:
        """Remember every ``_CHECKPOINT_EVERY``-th position (one pass over the plan): random access by many
        callers (a status grid) then costs a few merge steps."""
        if self._checkpoints is not None:
            return
        checkpoints: list[list[int]] = []
        positions = [0] * len(self.lanes)
        for g, _ in enumerate(self._walk(0, positions)):
            if (g + 1) % _CHECKPOINT_EVERY == 0:
                checkpoints.append(list(positions))
        self._checkpoints = [[0] * len(self.lanes), *checkpoints]


def _count_while(n: int, holds: Callable[[int], bool]) -> int:
    """How many of ``0..n-1`` satisfy ``holds``, a predicate true on a prefix (binary search)."""
    lo, hi = 0, n
    while lo < hi:
        mid = (lo + hi) // 2
        if holds(mid):
            lo = mid + 1
        else:
            hi = mid
    return lo


@dataclass(frozen=True)
class UpstreamNeed:
    """Runs of ``workflow`` in this backfill that must have succeeded: its runs ``runs[0] .. runs[1] - 1`` (``count``
    of them), stored with plan indices ``first_index .. last_index`` (other workflows' runs lie between: count
    ``workflow``'s only). ``keys``: the positions of the needed keys in ``workflow``'s key sequence."""

    workflow: str
    runs: tuple[int, int]
    first_index: int
    last_index: int
    count: int
    keys: RangeSet


@dataclass(frozen=True)
class RunNeeds:
    """Plan index ``index`` (a run of ``workflow``) may start once every need has succeeded."""

    index: int
    workflow: str
    needs: tuple[UpstreamNeed, ...]


class GraphPlan(BackfillPlan):
    """A graph backfill's runs (see the module note); built by ``graph_planning.build_graph_plan``. A
    ``BackfillPlan`` whose runs interleave its workflows instead of following one another."""

    def __init__(self, lanes: list[Lane], edges: list[LaneEdge]) -> None:
        self.lanes = lanes
        self.edges = edges
        self.workflow_plans = [lane.plan for lane in lanes]
        self.order = RunOrder(lanes, edges)
        self.num_runs = self.order.total
        self.num_partitions = sum(num_partitions(lane.plan) for lane in lanes)
        self._by_name = {lane.name: w for w, lane in enumerate(lanes)}
        self._incoming = [[e for e in edges if e.downstream == w] for w in range(len(lanes))]

    @property
    def workflows(self) -> dict[str, dict[str, int]]:
        """Per workflow (upstreams first): how many partitions and runs it plans."""
        return workflow_counts(self)

    def _planned(self, w: int, j: int) -> PlannedRun:
        plan = self.lanes[w].plan
        return plan.planned(plan.group(j))

    def run(self, index: int) -> PlannedRun:
        return self._planned(*self.order.at(index))

    def runs(self, start: int = 0, stop: int | None = None) -> Iterator[PlannedRun]:
        """Runs ``start..stop-1``, their keys built per workflow in bulk, a stretch of the order at a time."""
        stop = self.num_runs if stop is None else min(stop, self.num_runs)
        order = self.order.iterate(start, stop)
        while True:
            chunk = list(itertools.islice(order, _CHUNK))
            if not chunk:
                return
            spans: dict[int, tuple[int, int]] = {}
            for w, j in chunk:
                lo, hi = spans.get(w, (j, j))
                spans[w] = (min(lo, j), max(hi, j))
            groups = {w: self.lanes[w].plan.groups(lo, hi + 1) for w, (lo, hi) in spans.items()}
            for w, j in chunk:
                plan = self.lanes[w].plan
                keys = groups[w][j - spans[w][0]]
                yield plan.planned(keys) if plan.is_ticks or isinstance(plan, NodePlan) else \
                    PlannedRun(plan.workflow.name, keys)

    def key_span(self, index: int) -> tuple[str, str] | None:
        self.order.build_checkpoints()
        w, j = self.order.at(index)
        return self.lanes[w].plan.span(j)

    def workflow_at(self, index: int) -> str:
        self.order.build_checkpoints()
        return self.lanes[self.order.at(index)[0]].name

    @property
    def partition_keys(self) -> Sequence[str]:
        return _Concat([lane.plan.keys for lane in self.lanes])

    @property
    def groups(self) -> Sequence[list[str]]:
        return _GraphGroups(self)

    # -- readiness --------------------------------------------------------------------------------
    def index_of(self, workflow: str, run: int) -> int:
        """The plan index of ``workflow``'s run number ``run``."""
        return self.order.rank(self._by_name[workflow], run)

    def needs(self, start: int, stop: int) -> list[RunNeeds]:
        """For plan indices ``start..stop-1``: what each run waits for (see ``UpstreamNeed``)."""
        out = []
        for g, (w, j) in enumerate(self.order.iterate(start, stop), start):
            out.append(RunNeeds(g, self.lanes[w].name, tuple(self._needs_of(w, j))))
        return out

    def _needs_of(self, w: int, j: int) -> Iterator[UpstreamNeed]:
        edges = self._incoming[w]
        if not edges:
            return
        own = self.lanes[w].positions(j)
        for e in edges:
            up = self.lanes[e.upstream]
            keys = e.bound.up_of(own) & up.kept
            if e.upstream == w:
                keys = keys - own
            for r0, r1 in up.runs_of(keys).ranges:
                yield UpstreamNeed(up.name, (r0, r1), self.order.rank(e.upstream, r0),
                                   self.order.rank(e.upstream, r1 - 1), r1 - r0, keys)

    def blocked_by(self, workflow: str, run: int) -> dict[str, RangeSet]:
        """Every run of this backfill that waits, directly or through others, on ``workflow``'s run ``run``: per
        workflow, its run numbers (what a failure marks ``upstream_failed``)."""
        w0 = self._by_name[workflow]
        found: dict[int, RangeSet] = {}
        todo = [(w0, self.lanes[w0].positions(run))]
        while todo:
            w, positions = todo.pop()
            for e in self.edges:
                if e.upstream != w:
                    continue
                down = self.lanes[e.downstream]
                runs = down.runs_of(e.bound.down_of(positions))
                if e.downstream == w0:
                    runs = runs - RangeSet.span(run, run + 1)
                new = runs - found.get(e.downstream, EMPTY)
                if new:
                    found[e.downstream] = found.get(e.downstream, EMPTY) | new
                    todo.append((e.downstream, union_all(down.positions(r) for r in new)))
        return {self.lanes[w].name: runs for w, runs in sorted(found.items())}


class _GraphGroups(Sequence[list[str]]):
    """The keys of each run in plan order: iterated with one merge, indexed by position."""

    def __init__(self, plan: GraphPlan) -> None:
        self._plan = plan

    def __len__(self) -> int:
        return self._plan.num_runs

    def __getitem__(self, i: Any) -> Any:
        if isinstance(i, slice):
            start, stop, step = i.indices(len(self))
            found = [list(r.keys) for r in self._plan.runs(start, stop)] if step == 1 else \
                [self[j] for j in range(start, stop, step)]
            return found
        if i < 0:
            i += len(self)
        return list(self._plan.run(i).keys)

    def __iter__(self) -> Iterator[list[str]]:
        return (list(r.keys) for r in self._plan.runs())
