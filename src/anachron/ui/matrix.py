"""A multi-partitioned workflow's partitions as a 2-D grid: its time dimension across (or its first, when none
is time-based), one row per key of the others (``date × region``).

Pure: from the definition, the keys of each dimension and ``partition_status`` (key → status). Columns hold
one key of the dimension across, or several when there are more than ``max_columns`` (a cell then counts
its keys and links to a zoom on its columns, one key each); a cell of one partition links to that
partition's page. Workflows with too many rows or keys keep the 1-D grid (``MAX_ROWS``, ``MAX_KEYS``).
"""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from ..grid import PRECEDENCE, cell_size_for
from ..models import MISSING
from ..partitions import MultiPartitions
from . import view
from .cells import Cell, ordered_counts

#: more rows than this (keys of the dimensions down) and the 1-D grid is drawn instead
MAX_ROWS = 48
#: more partitions than this and the 1-D grid is drawn instead (the 2-D grid reads every key's status)
MAX_KEYS = 50_000
#: at most this many columns (the page's width)
MAX_COLUMNS = 60


@dataclass(frozen=True)
class Matrix:
    across: str
    down: tuple[str, ...]
    rows: tuple[tuple[str, tuple[Cell, ...]], ...]
    counts: Sequence[tuple[str, int]]
    total: int
    #: keys of the dimension across per column
    column_size: int
    #: the first and last key across (of the zoomed columns, when zoomed)
    first: str
    last: str
    #: the zoomed range of positions across (``None``: all of them)
    zoom: tuple[int, int] | None = None

    @property
    def columns(self) -> int:
        return len(self.rows[0][1]) if self.rows else 0


def fits(pdef: MultiPartitions, sizes: Mapping[str, int]) -> bool:
    """Whether a 2-D grid suits this definition with these dimension sizes."""
    if len(pdef.dimension_names) < 2:
        return False
    across = pdef.time_dimension_name or pdef.dimension_names[0]
    rows = 1
    for name in pdef.dimension_names:
        if name != across:
            rows *= sizes[name]
    total = rows * sizes[across]
    return 0 < rows <= MAX_ROWS and 0 < total <= MAX_KEYS


def matrix(pdef: MultiPartitions, keys: Mapping[str, Sequence[str]], statuses: Mapping[str, str],
           key_href: Callable[[str], str], column_href: Callable[[int], str], zoom: int | None = None,
           max_columns: int = MAX_COLUMNS) -> Matrix:
    """The grid of ``statuses``: ``partition_status`` of every key, in key order (the product of ``keys``,
    each dimension's keys in order, the first dimension outermost). ``zoom``: a column of the whole grid to
    show one key per column.

    A key's position is arithmetic (``sum(index_j * stride_j)``), so a row is a strided slice of the
    statuses and a cell counts a slice of it: no key is parsed."""
    names = pdef.dimension_names
    across = pdef.time_dimension_name or names[0]
    down = tuple(n for n in names if n != across)
    sizes = {n: len(keys[n]) for n in names}
    strides, step = {}, 1
    for n in reversed(names):
        strides[n] = step
        step *= sizes[n]
    values = list(statuses.values())
    if len(values) != step:
        raise ValueError(f"statuses: expected the {step:,} keys of the workflow in key order, got {len(values):,}")
    xs = keys[across]
    size = cell_size_for(len(xs), max_columns)
    lo, hi = 0, len(xs)
    if zoom is not None and size > 1 and 0 <= zoom * size < len(xs):
        lo, hi, size = zoom * size, min(len(xs), (zoom + 1) * size), 1
    else:
        zoom = None
    stride = strides[across]
    grand: Counter[str] = Counter()
    rows = []
    for combo in itertools.product(*(range(sizes[n]) for n in down)):
        offset = sum(i * strides[n] for i, n in zip(combo, down))
        line = values[offset + lo * stride:offset + (hi - 1) * stride + 1:stride]
        named = {n: keys[n][i] for i, n in zip(combo, down)}
        label = "|".join(f"{n}={v}" for n, v in named.items()) if len(down) > 1 else next(iter(named.values()))
        cells = []
        for first in range(lo, hi, size):
            last = min(hi, first + size) - 1
            tally = Counter(line[first - lo:last - lo + 1])
            grand.update(tally)
            status = next((s for s in PRECEDENCE if tally.get(s)), MISSING)
            where = xs[first] if first == last else f"{xs[first]} … {xs[last]}"
            if first == last:
                key = pdef.key_for({across: xs[first], **named})
                cells.append(Cell(status, f"{where} × {label}: {view.label(status)}", key_href(key)))
            else:
                counted = ", ".join(f"{n:,} {view.label(s)}" for s, n in ordered_counts(tally))
                cells.append(Cell(status, f"{where} × {label}: {counted}", column_href((first - lo) // size)))
        rows.append((label, tuple(cells)))
    return Matrix(across, down, tuple(rows), ordered_counts(grand), sum(grand.values()), size,
                  xs[lo] if hi > lo else "", xs[hi - 1] if hi > lo else "", (lo, hi) if zoom is not None else None)
