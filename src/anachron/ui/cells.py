"""Partition grids as the page draws them: one small element per cell, a class per status, a title.

``anachron.grid`` gives the cells (one per run or key while they fit, aggregated beyond); this module
only words them. A page of a million-partition backfill draws at most ``MAX_CELLS`` cells, each a single
``<a>`` (a link to where the cell leads: a run, a partition, a zoom on an aggregated cell) of well under 160
bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from ..grid import BackfillGrid, GridCell, PartitionGrid
from . import view
from .render import path_part

#: At most this many cells in a grid (the grid module aggregates beyond it).
MAX_CELLS = 2000
#: The order statuses are listed in (a legend, a title).
ORDER = ("success", "failed", "upstream_failed", "running", "queued", "canceled", "pending", "missing")


@dataclass(frozen=True, slots=True)
class Cell:
    css: str
    title: str
    href: str | None = None


@dataclass(frozen=True)
class Grid:
    """What the grid partial draws. ``unit``: what a position is (``run`` or ``partition``)."""

    cells: Sequence[Cell]
    counts: Sequence[tuple[str, int]]
    total: int
    cell_size: int
    unit: str

    @property
    def aggregated(self) -> bool:
        return self.cell_size > 1

    def html(self) -> Markup:
        """The cells' markup (built here rather than in a template loop: it is the page's hot part)."""
        parts = []
        for c in self.cells:
            title = escape(c.title)
            if c.href is not None:
                parts.append(f'<a href="{escape(c.href)}" tabindex="-1" class="{escape(c.css)}" title="{title}"></a>')
            else:
                parts.append(f'<i class="{escape(c.css)}" title="{title}"></i>')
        return Markup("".join(parts))


def ordered_counts(counts: Mapping[str, int]) -> list[tuple[str, int]]:
    known = [(s, counts[s]) for s in ORDER if counts.get(s)]
    return known + sorted((s, n) for s, n in counts.items() if n and s not in ORDER)


def _keys(cell: GridCell) -> str | None:
    if cell.first_key is None:
        return None
    if cell.last_key is None or cell.last_key == cell.first_key:
        return cell.first_key
    return f"{cell.first_key} … {cell.last_key}"


def _tally(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n:,} {view.label(s)}" for s, n in ordered_counts(counts))


def _title(cell: GridCell, unit: str) -> str:
    keys = _keys(cell)
    if cell.workflow is not None:  # a backfill of several workflows: whose keys
        keys = cell.workflow if keys is None else f"{cell.workflow} {keys}"
    if cell.size == 1:
        where = keys if keys is not None else f"{unit} {cell.first_index + 1:,}"
        return f"{where}: {view.label(cell.status)}"
    where = keys if keys is not None else f"{unit}s {cell.first_index + 1:,}–{cell.last_index + 1:,}"
    return f"{where}: {cell.size:,} {unit}s — {_tally(cell.counts)}"


def backfill_cells(grid: BackfillGrid, zoom_href: str, key_href: Callable[[str], str] | None = None,
                   zoomed: int | None = None) -> Grid:
    """A backfill's runs in plan order. Every cell leads somewhere: a run's cell to the run (and its logs),
    an aggregated cell to ``zoom_href`` + its index (its runs one by one; the one ``zoomed`` is marked), a
    run not created yet to its partition's page (``key_href``, when the backfill has one workflow)."""
    unit = "run"
    return Grid([Cell(_marked(cell.status, i == zoomed), _title(cell, unit),
                      _backfill_href(cell, i, zoom_href, key_href))
                 for i, cell in enumerate(grid.cells)], ordered_counts(grid.counts), grid.total, grid.cell_size, unit)


def _marked(css: str, on: bool) -> str:
    return f"{css} on" if on else css


def run_cells(found: Sequence[GridCell], key_href: Callable[[str], str] | None = None) -> Grid:
    """The runs of one aggregated cell of a backfill's grid, one cell each (``BackfillSnapshot.zoom``)."""
    counts: dict[str, int] = {}
    for cell in found:
        counts[cell.status] = counts.get(cell.status, 0) + 1
    return Grid([Cell(cell.status, _title(cell, "run"), _backfill_href(cell, 0, "", key_href)) for cell in found],
                ordered_counts(counts), len(found), 1, "run")


def _backfill_href(cell: GridCell, index: int, zoom_href: str, key_href: Callable[[str], str] | None) -> str | None:
    if cell.size > 1:
        return f"{zoom_href}{index}"
    if cell.run_id is not None:
        return f"/runs/{path_part(cell.run_id)}"
    return key_href(cell.first_key) if key_href is not None and cell.first_key is not None else None


def partition_cells(grid: PartitionGrid, zoom_href: str, key_href: Callable[[str], str],
                    zoomed: int | None = None) -> Grid:
    """A workflow's keys in key order: a key's cell links to its partition's page (``key_href``), an
    aggregated cell to ``zoom_href`` + its index (its keys one by one; the one ``zoomed`` is marked)."""
    unit = "partition"
    cells = [Cell(_marked(cell.status, i == zoomed), _title(cell, unit),
                  f"{zoom_href}{i}" if cell.size > 1 else key_href(cell.first_key) if cell.first_key else None)
             for i, cell in enumerate(grid.cells)]
    return Grid(cells, ordered_counts(grid.counts), grid.total, grid.cell_size, unit)


def status_cells(statuses: Mapping[str, str], key_href: Callable[[str], str]) -> Grid:
    """A page of ``partition_status`` (key → status), one cell per key, each linking to its partition."""
    counts: dict[str, int] = {}
    cells = []
    for key, status in statuses.items():
        counts[status] = counts.get(status, 0) + 1
        cells.append(Cell(status, f"{key}: {view.label(status)}", key_href(key)))
    return Grid(cells, ordered_counts(counts), len(cells), 1, "partition")
