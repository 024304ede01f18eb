"""Data graphs: which workflow feeds which, and through which partition mapping (SPEC §8).

``@ac.workflow(deps=[upstream, ac.Dep(other, mapping=...)], depends_on_past=False)`` declares the edges;
``WorkflowGraph`` checks them when a repository is built — an unknown upstream, a cycle (other than
``depends_on_past``, a workflow's edge to itself), a mapping that cannot apply to the two partition
definitions — with a message naming both workflows, and answers the questions planning asks: topological
order, what lies upstream or downstream of a set of workflows. ``repo.graph()`` returns ``Graph``: the nodes
and edges as plain records (what ``GET /api/v1/graph`` answers).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .mappings import PartitionMapping, infer_mapping, mapping_from_dict, past_mapping
from .partitions import MultiPartitions

if TYPE_CHECKING:
    from .definitions import Workflow


@dataclass(frozen=True)
class Dep:
    """A dependency on an upstream workflow (or its name); ``mapping=None`` infers it (see ``anachron.mappings``)."""

    upstream: Any
    mapping: PartitionMapping | None = None

    def __post_init__(self) -> None:
        name = getattr(self.upstream, "name", self.upstream)
        if not isinstance(name, str) or not name:
            raise ValueError(f"Dep: the upstream must be a workflow or its name, got {self.upstream!r}")
        if self.mapping is not None and not isinstance(self.mapping, PartitionMapping):
            raise ValueError(f"Dep({name!r}): mapping must be an ac.*Mapping, got {self.mapping!r}")
        object.__setattr__(self, "upstream", name)

    @property
    def name(self) -> str:
        return str(self.upstream)


def normalize_deps(deps: Iterable[Any] | None, workflow: str | None = None) -> tuple[Dep, ...]:
    """``deps=[...]`` as ``Dep`` values: a workflow, a name or a ``Dep`` each; one dependency per upstream."""
    if deps is None:
        return ()
    if isinstance(deps, (str, Dep)) or not isinstance(deps, Iterable):
        raise ValueError("workflow.deps: expected a list of workflows, names or ac.Dep(...)")
    found: dict[str, Dep] = {}
    for item in deps:
        dep = item if isinstance(item, Dep) else Dep(item)
        if dep.name in found:
            raise ValueError(f"workflow.deps: {dep.name!r} is listed twice")
        if workflow is not None and dep.name == workflow:
            raise ValueError(f"workflow.deps: {workflow!r} depends on itself; use depends_on_past=True for a key "
                             "that needs the key before it")
        found[dep.name] = dep
    return tuple(found.values())


@dataclass(frozen=True)
class Edge:
    """``downstream`` needs ``upstream`` through ``mapping``; ``inferred`` when the workflow gave none. An edge from
    a workflow to itself is its ``depends_on_past``."""

    upstream: str
    downstream: str
    mapping: PartitionMapping
    inferred: bool = False

    @property
    def is_past(self) -> bool:
        return self.upstream == self.downstream

    def to_json(self) -> dict[str, Any]:
        return {"upstream": self.upstream, "downstream": self.downstream, "mapping": self.mapping.to_dict()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Edge:
        return cls(str(data["upstream"]), str(data["downstream"]), mapping_from_dict(data["mapping"]))


class WorkflowGraph:
    """The checked edges between a repository's workflows."""

    def __init__(self, workflows: Mapping[str, Workflow]) -> None:
        self._names = list(workflows)
        edges: list[Edge] = []
        for wf in workflows.values():
            for dep in getattr(wf, "deps", ()):
                upstream = workflows.get(dep.name)
                if upstream is None:
                    known = ", ".join(sorted(workflows)) or "none"
                    raise ValueError(f"workflows: {wf.name!r} depends on {dep.name!r}, which is not a workflow of "
                                     f"this repository (known: {known})")
                edges.append(_checked_edge(upstream, wf, dep.mapping))
            if getattr(wf, "depends_on_past", False):
                edges.append(Edge(wf.name, wf.name, past_mapping(wf.partitions), inferred=True))
        self.edges: tuple[Edge, ...] = tuple(edges)
        self._ups: dict[str, list[Edge]] = {n: [] for n in self._names}
        self._downs: dict[str, list[Edge]] = {n: [] for n in self._names}
        for e in self.edges:
            if not e.is_past:
                self._ups[e.downstream].append(e)
                self._downs[e.upstream].append(e)
        self.order: tuple[str, ...] = self._topological()

    def _topological(self) -> tuple[str, ...]:
        """Upstreams first (ties in definition order); ``ValueError`` naming a cycle."""
        waiting = {n: len(self._ups[n]) for n in self._names}
        ready = [n for n in self._names if not waiting[n]]
        order: list[str] = []
        while ready:
            name = ready.pop(0)
            order.append(name)
            for e in self._downs[name]:
                waiting[e.downstream] -= 1
                if not waiting[e.downstream]:
                    ready.append(e.downstream)
        if len(order) < len(self._names):
            raise ValueError(f"workflows: a dependency cycle: {' → '.join(self._cycle(set(self._names) - set(order)))}"
                             " (each feeds the next); only depends_on_past may make a workflow wait for itself")
        return tuple(order)

    def _cycle(self, stuck: set[str]) -> list[str]:
        path: list[str] = []
        node = min(stuck, key=self._names.index)
        while node not in path:
            path.append(node)
            node = next(e.upstream for e in self._ups[node] if e.upstream in stuck)
        cycle = path[path.index(node):] + [node]
        return list(reversed(cycle))

    # -- questions planning asks -------------------------------------------------------------------
    def upstream_edges(self, name: str) -> list[Edge]:
        return list(self._ups.get(name, ()))

    def downstream_edges(self, name: str) -> list[Edge]:
        return list(self._downs.get(name, ()))

    def past_edge(self, name: str) -> Edge | None:
        return next((e for e in self.edges if e.is_past and e.upstream == name), None)

    def closure(self, names: Iterable[str], direction: str) -> list[str]:
        """``names`` and every workflow ``"downstream"`` (or ``"upstream"``) of them, in topological order."""
        seen = set(names)
        todo = list(seen)
        while todo:
            name = todo.pop()
            nexts = [e.downstream for e in self._downs[name]] if direction == "downstream" else \
                [e.upstream for e in self._ups[name]]
            for n in nexts:
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return [n for n in self.order if n in seen]

    def edges_among(self, names: Iterable[str]) -> list[Edge]:
        """The edges (``depends_on_past`` ones included) whose both ends are in ``names``."""
        chosen = set(names)
        return [e for e in self.edges if e.upstream in chosen and e.downstream in chosen]

    def describe(self, workflows: Mapping[str, Workflow]) -> Graph:
        nodes = []
        for name in self.order:
            wf = workflows[name]
            pdef = wf.partitions
            nodes.append(GraphNode(
                name=name, partitions=None if pdef is None else repr(pdef), partitioned=pdef is not None,
                time_based=bool(pdef is not None and pdef.is_time_based),
                dimensions=list(pdef.dimension_names) if isinstance(pdef, MultiPartitions) else None,
                depends_on_past=bool(getattr(wf, "depends_on_past", False)),
                upstream=[e.upstream for e in self._ups[name]], downstream=[e.downstream for e in self._downs[name]]))
        edges = [GraphEdge(upstream=e.upstream, downstream=e.downstream, mapping=e.mapping.to_dict(),
                           description=repr(e.mapping), inferred=e.inferred) for e in self.edges]
        return Graph(nodes=nodes, edges=edges)


def _checked_edge(upstream: Workflow, downstream: Workflow, mapping: PartitionMapping | None) -> Edge:
    names = f"{downstream.name!r} depends on {upstream.name!r}"
    try:
        chosen = mapping if mapping is not None else infer_mapping(upstream.partitions, downstream.partitions)
        chosen.check(upstream.partitions, downstream.partitions)
    except ValueError as exc:
        raise ValueError(f"workflows: {names}: {exc} (upstream {_shown(upstream)}, downstream {_shown(downstream)})") \
            from None
    return Edge(upstream.name, downstream.name, chosen, inferred=mapping is None)


def _shown(wf: Workflow) -> str:
    return "without partitions" if wf.partitions is None else repr(wf.partitions)


@dataclass(frozen=True)
class GraphNode:
    """A workflow of the graph: its partitions (as Python prints them) and its neighbours."""

    name: str
    partitions: str | None
    partitioned: bool
    time_based: bool
    dimensions: list[str] | None
    depends_on_past: bool
    upstream: list[str] = field(default_factory=list)
    downstream: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class GraphEdge:
    """``downstream`` needs ``upstream``'s keys through ``mapping`` (its JSON form; ``description`` as Python prints
    it). An edge from a workflow to itself is its ``depends_on_past``."""

    upstream: str
    downstream: str
    mapping: dict[str, Any]
    description: str
    inferred: bool


@dataclass(frozen=True)
class Graph:
    """``repo.graph()``: the workflows (upstreams first) and the dependencies between them."""

    nodes: list[GraphNode]
    edges: list[GraphEdge]

    def node(self, name: str) -> GraphNode:
        for n in self.nodes:
            if n.name == name:
                return n
        raise KeyError(name)


def edges_from_json(data: Sequence[Mapping[str, Any]]) -> list[Edge]:
    return [Edge.from_json(d) for d in data]
