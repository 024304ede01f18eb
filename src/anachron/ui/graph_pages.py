"""The graph page (``/graph``): the workflows as nodes with their partitions and health, and the dependencies as
edges labelled with their mappings, drawn on the server as SVG (``graph_layout``: layered, left to right); and
a workflow's neighbours for its own page.

A node's health is its partition status counts as the workflow page's grid counts them
(``repo.partition_grid``, one cell: the same read, without cells); an unpartitioned workflow shows its latest
run. The drawing polls itself every few seconds while some workflow has runs running or queued.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse, Response

from ..definitions import Workflow
from ..graph import Graph, GraphEdge
from ..models import Run
from ..partitions import DynamicPartitions, MultiPartitions, PartitionsDefinition, StaticPartitions
from ..repository import CodeRepository
from . import view
from .graph_layout import Box, Layout, layout
from .pages import repo_of, utcnow
from .render import fragment, page, workflow_url

router = APIRouter(include_in_schema=False)

NODE_W, NODE_H = 244, 96
#: A label's lines hold this many characters, and there are at most ``LABEL_LINES`` of them (the whole mapping
#: is in its tooltip and in the table under the drawing).
LABEL_CHARS, LABEL_LINES = 24, 3
#: Width of one character of a label (11 px monospace), the height of a line, and the label's padding.
CHAR_W, LINE_H, LABEL_PAD = 6.7, 13, 12
#: Characters of a node's name and of its partitions' range that fit its box.
NAME_CHARS, LINE_CHARS = 27, 36
#: The statuses a node's health shows, in this order (as the workflow page's legend lists them).
HEALTH = ("success", "failed", "running", "queued", "missing")
BAR_W = NODE_W - 24
#: How often the drawing refreshes while something runs.
EVERY = "5s"


@dataclass(frozen=True)
class Node:
    """A workflow as the drawing shows it."""

    name: str
    href: str
    box: Box
    kind: str
    #: its partitions now (``None``: not partitioned), and their first … last key
    total: int | None
    span: str
    #: (status, count) in ``HEALTH`` order, only those with a count
    counts: Sequence[tuple[str, int]]
    #: (status, x offset, width) of the health bar's segments
    segments: Sequence[tuple[str, float, float]]
    last: Run | None
    depends_on_past: bool
    #: the status the node's edge is coloured by: failed, then running, queued, success; else ``none``
    tone: str
    words: str

    @property
    def short_name(self) -> str:
        return cut(self.name, NAME_CHARS)


@dataclass(frozen=True)
class Link:
    """An edge as the drawing shows it."""

    edge: GraphEdge
    path: str
    label: Box
    lines: Sequence[str]

    @property
    def words(self) -> str:
        how = "inferred" if self.edge.inferred else "declared"
        return f"{self.edge.downstream} needs {self.edge.upstream} through {self.edge.description} ({how})"


def cut(text: str, chars: int) -> str:
    return text if len(text) <= chars else text[: chars - 1] + "…"


def kind_of(pdef: PartitionsDefinition | None) -> str:
    """``hourly``, ``daily (Europe/Paris)``, ``cron */15 * * * *``, ``static``, ``dynamic (customers)``,
    ``date × region``, or ``not partitioned``."""
    if pdef is None:
        return "not partitioned"
    if isinstance(pdef, MultiPartitions):
        return " × ".join(pdef.dimension_names)
    if isinstance(pdef, StaticPartitions):
        return "static"
    if isinstance(pdef, DynamicPartitions):
        return f"dynamic ({pdef.name})"
    name = type(pdef).__name__
    kind = name[: -len("Partitions")].lower() if name in ("HourlyPartitions", "DailyPartitions", "WeeklyPartitions",
                                                          "MonthlyPartitions") else f"cron {getattr(pdef, 'cron', '')}"
    zone = getattr(pdef, "timezone", "UTC")
    return kind if zone == "UTC" else f"{kind} ({zone})"


def health(repo: CodeRepository, wf: Workflow) -> tuple[int, Mapping[str, int], str, Run | None]:
    """(partitions, their status counts, their first … last key, the latest run for a workflow without
    partitions)."""
    if wf.partitions is None:
        last = repo.list_runs(wf.name, limit=1)
        return 0, {}, "", last[0] if last else None
    grid = repo.partition_grid(wf, 1)  # the workflow page's read, as one cell: its counts and its ends
    if not grid.cells:
        return 0, {}, "no partition keys yet", None
    first, last_key = grid.cells[0].first_key or "", grid.cells[-1].last_key or ""
    return grid.total, grid.counts, first if grid.total == 1 else f"{first} … {last_key}", None


def node(wf: Workflow, box: Box, depends_on_past: bool, found: tuple[int, Mapping[str, int], str, Run | None]) \
        -> Node:
    total, counts, span, last = found
    shown = [(s, counts[s]) for s in HEALTH if counts.get(s)]
    segments, x = [], 0.0
    for status, n in shown:
        w = BAR_W * n / total if total else 0.0
        segments.append((status, x, w))
        x += w
    if last is not None:
        segments = [(last.status, 0.0, float(BAR_W))]
    states = {s for s, _ in shown} | ({last.status} if last is not None else set())
    tone = next((s for s in ("failed", "running", "queued", "success") if s in states), "none")
    kind = kind_of(wf.partitions)
    about = f"{kind}, {total:,} partition{'' if total == 1 else 's'}" if wf.partitions is not None else kind
    health_words = ", ".join(f"{n:,} {view.label(s)}" for s, n in shown) if shown else (
        f"last run {view.label(last.status)}" if last is not None else "never run")
    past = "; each key waits for the key before it" if depends_on_past else ""
    return Node(wf.name, workflow_url(wf.name), box, kind, total if wf.partitions is not None else None, span, shown,
                segments, last, depends_on_past, tone, f"{wf.name}: {about}; {health_words}{past}")


def label_lines(text: str) -> list[str]:
    """A mapping's description on a few short lines, broken after ``(``, ``, `` or ``: ``:
    ``TimeWindowMapping(`` / ``start_offset=-6)``."""
    pieces = [p for p in re.split(r"(?<=\()|(?<=, )|(?<=: )", text) if p]
    lines: list[str] = []
    for piece in pieces:
        if lines and len(lines[-1]) + len(piece) <= LABEL_CHARS:
            lines[-1] += piece
        else:
            lines.append(piece)
    lines = [cut(line.rstrip(), LABEL_CHARS) for line in lines]
    if len(lines) > LABEL_LINES:
        lines = lines[: LABEL_LINES - 1] + [cut(lines[LABEL_LINES - 1] + " …", LABEL_CHARS)]
    return lines


def drawing(repo: CodeRepository, graph: Graph) -> tuple[Layout, list[Node], list[Link]]:
    """The graph laid out, its nodes with their health, its edges with their labels."""
    between = [e for e in graph.edges if e.upstream != e.downstream]
    texts = [label_lines(e.description) for e in between]
    loops = [n.name for n in graph.nodes if n.depends_on_past]
    drawn = layout([n.name for n in graph.nodes], [(e.upstream, e.downstream) for e in between],
                   [(max(map(len, t)) * CHAR_W + LABEL_PAD, len(t) * LINE_H + 4) for t in texts], loops, NODE_W,
                   NODE_H)
    registry = repo.workflow_registry
    nodes = [node(registry[n.name], drawn.boxes[n.name], n.depends_on_past, health(repo, registry[n.name]))
             for n in graph.nodes]
    links = [Link(e, r.path, r.label, t) for e, r, t in zip(between, drawn.routes, texts)]
    return drawn, nodes, links


@router.get("/graph", response_class=HTMLResponse)
def graph_page(request: Request, part: Annotated[str | None, Query(alias="fragment")] = None) -> Response:
    repo = repo_of(request)
    graph = repo.graph()
    drawn, nodes, links = drawing(repo, graph)
    busy = any(n.tone in ("running", "queued") for n in nodes)
    needs: dict[str, list[GraphEdge]] = {n.name: [] for n in graph.nodes}
    for e in graph.edges:
        needs[e.downstream].append(e)
    context: dict[str, Any] = dict(graph=graph, drawn=drawn, nodes=nodes, links=links, busy=busy, every=EVERY,
                                   now=utcnow(), bar_w=BAR_W, needs=needs,
                                   past=[e for e in graph.edges if e.upstream == e.downstream])
    if part == "drawing":
        return fragment(request, "_graph.html", **context)
    return page(request, "graph.html", wide=True, **context)


# -- a workflow's neighbours ------------------------------------------------------------------------------
@dataclass(frozen=True)
class Neighbours:
    """A workflow's edges: those it needs (``upstream``), those that need it (``downstream``), its own
    ``depends_on_past`` edge; and the workflows a graph backfill from it would add."""

    upstream: Sequence[GraphEdge]
    downstream: Sequence[GraphEdge]
    past: GraphEdge | None
    with_downstream: Sequence[str]
    with_upstream: Sequence[str]

    @property
    def any(self) -> bool:
        return bool(self.upstream or self.downstream or self.past)


def neighbours(repo: CodeRepository, name: str) -> Neighbours:
    graph = repo.graph()
    wf_graph = repo.workflow_registry.graph
    edges = graph.edges
    return Neighbours([e for e in edges if e.downstream == name and e.upstream != name],
                      [e for e in edges if e.upstream == name and e.downstream != name],
                      next((e for e in edges if e.upstream == name == e.downstream), None),
                      [n for n in wf_graph.closure([name], "downstream") if n != name],
                      [n for n in wf_graph.closure([name], "upstream") if n != name])

