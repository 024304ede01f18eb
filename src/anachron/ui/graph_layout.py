"""A layered left-to-right drawing of the workflow graph (pure: names and edges in, coordinates out).

The classic steps (Sugiyama's), sized for the tens of workflows a repository has:

1. **Layers.** A workflow sits one layer right of its furthest upstream; a source sits just left of its nearest
   downstream (so it does not stretch an edge across the page). Workflows without any dependency are drawn
   apart, in rows under the graph.
2. **Long edges** get a waypoint in every layer they cross, so they run between the nodes, never through them.
3. **Order within a layer**: barycentre sweeps (each item moves to the mean position of its neighbours in the
   layer before, then after), keeping the order with the fewest crossings; connected groups stay together.
4. **Heights**: each item is pulled towards the mean height of its neighbours, under the order and a minimum
   gap (a least-squares placement: pool adjacent violators), a few passes each way.
5. **Edges** are cubic curves from the right side of the upstream to the left side of the downstream through
   their waypoints; each carries its label on its last stretch, moved along the curve to avoid other labels and
   the nodes. A workflow's edge to itself (``depends_on_past``) is a small loop over its top.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

#: Space around the drawing, above a row of nodes (room for a self-loop), between items of a layer.
MARGIN = 16
LOOP_ROOM = 30
NODE_GAP = 22
WAYPOINT_GAP = 14
GROUP_GAP = 26
#: The horizontal gap between layers: wide enough for the widest label in it, within these bounds.
MIN_GAP = 84
MAX_GAP = 300
LABEL_PAD = 40
SWEEPS = 12
PASSES = 8


@dataclass(frozen=True)
class Box:
    """A node's rectangle (top-left corner, size)."""

    x: float
    y: float
    w: float
    h: float

    def hits(self, other: Box) -> bool:
        return self.x < other.x + other.w and other.x < self.x + self.w and \
            self.y < other.y + other.h and other.y < self.y + self.h


@dataclass(frozen=True)
class Route:
    """The drawing of edge number ``index`` (in the order given): an SVG path and its label's box."""

    index: int
    path: str
    label: Box


@dataclass(frozen=True)
class Layout:
    width: float
    height: float
    boxes: Mapping[str, Box]
    routes: Sequence[Route]
    #: the SVG path of each self-loop, by workflow
    loops: Mapping[str, str]
    layers: int


Item = tuple[str, ...]  # ("n", name) or ("d", edge index, layer)


def layout(names: Sequence[str], edges: Sequence[tuple[str, str]], labels: Sequence[tuple[float, float]],
           loops: Sequence[str] = (), node_w: float = 240, node_h: float = 96) -> Layout:
    """Coordinates for ``names`` (upstreams first) joined by ``edges`` (upstream, downstream; no self-edges),
    whose labels have the sizes ``labels`` (width, height); ``loops``: the workflows with an edge to
    themselves."""
    ups: dict[str, list[str]] = {n: [] for n in names}
    downs: dict[str, list[str]] = {n: [] for n in names}
    for u, v in edges:
        ups[v].append(u)
        downs[u].append(v)
    connected = [n for n in names if ups[n] or downs[n]]
    alone = [n for n in names if not (ups[n] or downs[n])]
    layer = _layers(connected, ups, downs)
    count = max(layer.values(), default=-1) + 1
    group = _groups(connected, ups, downs)
    rank = {n: i for i, n in enumerate(names)}

    # items per layer: the nodes and the waypoints of the edges that cross it
    rows: list[list[Item]] = [[] for _ in range(count)]
    for n in connected:
        rows[layer[n]].append(("n", n))
    chains: list[list[Item]] = []
    for i, (u, v) in enumerate(edges):
        chain: list[Item] = [("n", u)]
        for m in range(layer[u] + 1, layer[v]):
            way: Item = ("d", str(i), str(m))
            rows[m].append(way)
            chain.append(way)
        chain.append(("n", v))
        chains.append(chain)
    item_group: dict[Item, int] = {("n", n): group[n] for n in connected}
    for i, chain in enumerate(chains):
        for way in chain[1:-1]:
            item_group[way] = group[edges[i][0]]
    neighbours_before: dict[Item, list[Item]] = {}
    neighbours_after: dict[Item, list[Item]] = {}
    for chain in chains:
        for a, b in zip(chain, chain[1:]):
            neighbours_after.setdefault(a, []).append(b)
            neighbours_before.setdefault(b, []).append(a)

    def start(item: Item) -> float:
        return rank[item[1]] if item[0] == "n" else rank[edges[int(item[1])][0]] + 0.5

    for row in rows:
        row.sort(key=lambda it: (item_group[it], start(it)))
    rows = _order(rows, neighbours_before, neighbours_after, item_group)

    # heights
    loop_set = set(loops)

    def height(item: Item) -> float:
        return node_h if item[0] == "n" else 0.0

    def gap(a: Item, b: Item) -> float:
        if item_group[a] != item_group[b]:
            base = GROUP_GAP + NODE_GAP
        elif a[0] == "n" and b[0] == "n":
            base = NODE_GAP
        else:
            base = WAYPOINT_GAP
        return base + (LOOP_ROOM if b[0] == "n" and b[1] in loop_set else 0)

    centre = _heights(rows, height, gap, neighbours_before, neighbours_after)
    top = min((centre[it] - height(it) / 2 - (LOOP_ROOM if it[0] == "n" and it[1] in loop_set else 0)
               for row in rows for it in row), default=0.0)
    shift = MARGIN + LOOP_ROOM / 2 - top if rows else 0.0
    for it in centre:
        centre[it] += shift

    # columns: each gap as wide as the widest label whose last stretch lies in it
    widest = [0.0] * max(count, 1)
    for i, (_, v) in enumerate(edges):
        widest[layer[v] - 1] = max(widest[layer[v] - 1], labels[i][0])
    gaps = [min(MAX_GAP, max(MIN_GAP, w + LABEL_PAD)) for w in widest]
    xs: list[float] = []
    x = float(MARGIN)
    for m in range(count):
        xs.append(x)
        x += node_w + gaps[m]
    boxes = {it[1]: Box(xs[layer[it[1]]], centre[it] - node_h / 2, node_w, node_h) for row in rows for it in row
             if it[0] == "n"}
    width = (xs[-1] + node_w if xs else 0.0) + MARGIN
    height_used = max((b.y + b.h for b in boxes.values()), default=0.0)

    # workflows without dependencies: rows under the graph, in the layers' columns
    if alone:
        columns = max(count, min(3, len(alone)))
        cols = xs + [(xs[-1] if xs else MARGIN - node_w - MIN_GAP) + (node_w + MIN_GAP) * (k + 1)
                     for k in range(columns - len(xs))]
        y0 = (height_used + GROUP_GAP * 2 if boxes else MARGIN) + LOOP_ROOM
        for k, n in enumerate(alone):
            r, c = divmod(k, columns)
            boxes[n] = Box(cols[c], y0 + r * (node_h + NODE_GAP + LOOP_ROOM), node_w, node_h)
        width = max(width, cols[columns - 1] + node_w + MARGIN)
        height_used = max(b.y + b.h for b in boxes.values())

    routes = _routes(edges, chains, labels, boxes, centre, xs, node_w)
    loop_paths = {n: _loop(boxes[n]) for n in loops if n in boxes}
    return Layout(width, height_used + MARGIN, boxes, routes, loop_paths, count)


def _layers(names: Sequence[str], ups: Mapping[str, list[str]], downs: Mapping[str, list[str]]) -> dict[str, int]:
    """One layer right of the furthest upstream; then each source just left of its nearest downstream."""
    layer: dict[str, int] = {}
    for n in names:  # upstreams first
        layer[n] = max((layer[u] + 1 for u in ups[n]), default=0)
    for n in reversed(names):
        if not ups[n] and downs[n]:
            layer[n] = min(layer[d] for d in downs[n]) - 1
    return layer


def _groups(names: Sequence[str], ups: Mapping[str, list[str]], downs: Mapping[str, list[str]]) -> dict[str, int]:
    """The connected group of each workflow, numbered in the order their first workflow comes."""
    group: dict[str, int] = {}
    for n in names:
        if n in group:
            continue
        number = len(set(group.values()))
        todo = [n]
        group[n] = number
        while todo:
            m = todo.pop()
            for o in (*ups[m], *downs[m]):
                if o not in group:
                    group[o] = number
                    todo.append(o)
    return group


def _crossings(rows: Sequence[Sequence[Item]], after: Mapping[Item, list[Item]]) -> int:
    total = 0
    for m in range(len(rows) - 1):
        here = {it: i for i, it in enumerate(rows[m])}
        there = {it: i for i, it in enumerate(rows[m + 1])}
        pairs = [(here[a], there[b]) for a in rows[m] for b in after.get(a, ()) if b in there]
        for i, (a1, b1) in enumerate(pairs):
            for a2, b2 in pairs[i + 1:]:
                if (a1 - a2) * (b1 - b2) < 0:
                    total += 1
    return total


def _order(rows: list[list[Item]], before: Mapping[Item, list[Item]], after: Mapping[Item, list[Item]],
           group: Mapping[Item, int]) -> list[list[Item]]:
    """Barycentre sweeps down and up the layers; the order with the fewest crossings wins."""
    best = [list(r) for r in rows]
    fewest = _crossings(best, after)
    current = [list(r) for r in rows]
    for sweep in range(SWEEPS):
        if not fewest:
            break
        down = sweep % 2 == 0
        span = range(1, len(current)) if down else range(len(current) - 2, -1, -1)
        for m in span:
            ref = {it: i for i, it in enumerate(current[m - 1 if down else m + 1])}
            here = {it: i for i, it in enumerate(current[m])}
            links = before if down else after
            centres = {it: _barycentre(it, links, ref, here[it]) for it in current[m]}
            current[m] = sorted(current[m], key=lambda it: (group[it], centres[it]))
        crossings = _crossings(current, after)
        if crossings < fewest:
            best, fewest = [list(r) for r in current], crossings
    return best


def _barycentre(item: Item, links: Mapping[Item, list[Item]], ref: Mapping[Item, int], now: int) -> float:
    """The mean position of ``item``'s neighbours in the reference layer (its own position without any)."""
    found = [ref[o] for o in links.get(item, ()) if o in ref]
    return sum(found) / len(found) if found else float(now)


def _heights(rows: Sequence[Sequence[Item]], height: Callable[[Item], float], gap: Callable[[Item, Item], float],
             before: Mapping[Item, list[Item]], after: Mapping[Item, list[Item]]) -> dict[Item, float]:
    """Each item's centre: stacked first, then pulled towards its neighbours' centres under the order and gaps."""
    centre: dict[Item, float] = {}
    seps: list[list[float]] = []
    for row in rows:
        y = 0.0
        row_seps = []
        for i, it in enumerate(row):
            if i:
                sep = height(row[i - 1]) / 2 + gap(row[i - 1], it) + height(it) / 2
                row_seps.append(sep)
                y += sep
            centre[it] = y
        seps.append(row_seps)
    order = list(range(len(rows)))
    for p in range(PASSES):
        for m in (order if p % 2 == 0 else order[::-1]):
            row = rows[m]
            if not row:
                continue
            wanted = []
            for it in row:
                around = [centre[o] for o in (*before.get(it, ()), *after.get(it, ()))]
                wanted.append(sum(around) / len(around) if around else centre[it])
            for it, y in zip(row, _place(wanted, seps[m])):
                centre[it] = y
    return centre


def _place(wanted: Sequence[float], seps: Sequence[float]) -> list[float]:
    """Positions as close as possible (least squares) to ``wanted``, in order, each at least ``seps[i - 1]``
    below the one before: isotonic regression of the targets minus the cumulative gaps (pool adjacent
    violators)."""
    offsets = [0.0]
    for s in seps:
        offsets.append(offsets[-1] + s)
    targets = [w - o for w, o in zip(wanted, offsets)]
    blocks: list[list[float]] = []  # [sum, count]
    for t in targets:
        blocks.append([t, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    z: list[float] = []
    for s, c in blocks:
        z.extend([s / c] * int(c))
    return [a + o for a, o in zip(z, offsets)]


def _ports(ends: Sequence[tuple[int, float]], box: Box) -> dict[int, float]:
    """Where the edges meet a side of ``box``: spread over its middle, in the order of their other ends."""
    ordered = sorted(ends, key=lambda e: (e[1], e[0]))
    k = len(ordered)
    if k == 1:
        return {ordered[0][0]: box.y + box.h / 2}
    low, high = box.y + box.h * 0.3, box.y + box.h * 0.7
    return {i: low + (high - low) * j / (k - 1) for j, (i, _) in enumerate(ordered)}


def _routes(edges: Sequence[tuple[str, str]], chains: Sequence[Sequence[Item]], labels: Sequence[tuple[float, float]],
            boxes: Mapping[str, Box], centre: Mapping[Item, float], xs: Sequence[float],
            node_w: float) -> list[Route]:
    def y_of(item: Item) -> float:
        return boxes[item[1]].y + boxes[item[1]].h / 2 if item[0] == "n" else centre[item]

    outs: dict[str, list[tuple[int, float]]] = {}
    ins: dict[str, list[tuple[int, float]]] = {}
    for i, chain in enumerate(chains):
        outs.setdefault(edges[i][0], []).append((i, y_of(chain[1])))
        ins.setdefault(edges[i][1], []).append((i, y_of(chain[-2])))
    out_y = {n: _ports(e, boxes[n]) for n, e in outs.items()}
    in_y = {n: _ports(e, boxes[n]) for n, e in ins.items()}
    routes = []
    placed: list[Box] = list(boxes.values())  # labels keep off the nodes and off each other
    for i, chain in enumerate(chains):
        u, v = edges[i]
        points: list[tuple[float, float, bool]] = [(boxes[u].x + boxes[u].w, out_y[u][i], False)]
        for way in chain[1:-1]:
            x = xs[int(way[2])]
            points += [(x, centre[way], False), (x + node_w, centre[way], True)]  # straight through the layer
        end = (boxes[v].x - 2, in_y[v][i], False)
        points.append(end)
        parts = [f"M{points[0][0]:.1f},{points[0][1]:.1f}"]
        for (x0, y0, _), (x1, y1, straight) in zip(points, points[1:]):
            if straight:
                parts.append(f"L{x1:.1f},{y1:.1f}")
            else:
                dx = (x1 - x0) / 2
                parts.append(f"C{x0 + dx:.1f},{y0:.1f} {x1 - dx:.1f},{y1:.1f} {x1:.1f},{y1:.1f}")
        (x0, y0, _), (x1, y1, _) = points[-2], points[-1]
        label = _label(x0, y0, x1, y1, labels[i], placed)
        placed.append(label)
        routes.append(Route(i, " ".join(parts), label))
    return routes


def _label(x0: float, y0: float, x1: float, y1: float, size: tuple[float, float], placed: Sequence[Box]) -> Box:
    """A label's box on the curve from ``(x0, y0)`` to ``(x1, y1)``: the first spot along it, from the
    middle outwards, that covers no other label and no node."""
    first = None
    for t in (0.5, 0.62, 0.38, 0.74, 0.26, 0.84, 0.16):
        s = 1 - t  # the curve's control points share the ends' heights: x and y of a cubic Bézier at t
        x = s ** 3 * x0 + 3 * s * s * t * (x0 + (x1 - x0) / 2) + 3 * s * t * t * (x1 - (x1 - x0) / 2) + t ** 3 * x1
        y = s ** 3 * y0 + 3 * s * s * t * y0 + 3 * s * t * t * y1 + t ** 3 * y1
        box = Box(x - size[0] / 2, y - size[1] / 2, size[0], size[1])
        if first is None:
            first = box
        if not any(box.hits(b) for b in placed):
            return box
    assert first is not None
    return first


def _loop(box: Box) -> str:
    """A loop over the node's top right corner, back into the node (``depends_on_past``)."""
    x1, x2, y = box.x + box.w - 54, box.x + box.w - 22, box.y
    return f"M{x1:.1f},{y:.1f} C{x1 - 4:.1f},{y - 28:.1f} {x2 + 4:.1f},{y - 28:.1f} {x2:.1f},{y - 2:.1f}"
