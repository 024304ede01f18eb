"""Partition grids: a backfill's runs (or a workflow's partition keys) as cells coloured by status.

Pure arithmetic over what storage counted — no I/O. A grid has at most ``max_cells`` cells: one per run
(or key) while they fit, otherwise each cell covers ``cell_size`` consecutive positions and counts the
statuses in it.

A backfill's grid is cheap however big the backfill (``CodeRepository.backfill_grid``). In a big backfill
nearly every run has succeeded, so storage counts only the runs that did **not** succeed, per cell
(``Session.backfill_grid_counts``, one index range per status); here every other created run of a cell
(plan index below the backfill's cursor) is a success, and a planned run not created yet is ``pending`` —
or ``canceled`` once the backfill has ended, as ``lifecycle.ending`` counts it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

from .models import CANCELED, FAILED, MISSING, QUEUED, RUNNING, SUCCESS, UPSTREAM_FAILED, BackfillStatus
from .records import GridCount, GridRun

#: a planned run of a backfill that has not been created yet
PENDING = "pending"
#: the status that colours a cell holding several: the first of these it has
PRECEDENCE = (FAILED, UPSTREAM_FAILED, RUNNING, QUEUED, CANCELED, PENDING, MISSING, SUCCESS)

#: a run's (or a position's) first and last partition key, or ``None`` when unknown
KeySpan = Callable[[int], "tuple[str, str] | None"]
#: the workflow of a run of a backfill of several workflows (a graph backfill's interleave)
WorkflowAt = Callable[[int], "str | None"]


class GridCell(NamedTuple):
    """Positions ``first_index..last_index`` (inclusive, 0-based: plan order for a backfill, key order for a
    workflow) and how many of them have each status (only statuses with a count). ``first_key`` and
    ``last_key``: the first partition key of the first position and the last of the last, when known.
    ``run_id``: the run of a one-run cell of a backfill, once created. ``workflow``: in a backfill of several
    workflows, the one whose runs the cell holds (when they all belong to one). (A ``NamedTuple``: a grid builds
    thousands at a time, four times faster than a frozen dataclass; ``_asdict()`` for JSON.)"""

    first_index: int
    last_index: int
    counts: Mapping[str, int]
    first_key: str | None = None
    last_key: str | None = None
    run_id: str | None = None
    workflow: str | None = None

    @property
    def size(self) -> int:
        return self.last_index - self.first_index + 1

    @property
    def status(self) -> str:
        """The status that colours the cell: the first of ``PRECEDENCE`` it has (a failure shows)."""
        for status in PRECEDENCE:
            if self.counts.get(status):
                return status
        return next(iter(self.counts), PENDING)


@dataclass(frozen=True, slots=True)
class BackfillGrid:
    """A backfill's planned runs as cells. ``total``: runs planned; ``created``: created so far (the
    cursor); ``counts``: per status over every cell (they add up to ``total``)."""

    backfill_id: str
    status: str
    total: int
    created: int
    cell_size: int
    cells: tuple[GridCell, ...]
    counts: Mapping[str, int]


@dataclass(frozen=True, slots=True)
class BackfillSnapshot:
    """A backfill's status and its grid read in one transaction (they agree), and, when asked, the runs of
    one aggregated cell one by one (``zoom``: that cell's index and its cells)."""

    status: BackfillStatus
    grid: BackfillGrid
    zoom: tuple[int, tuple[GridCell, ...]] | None = None


@dataclass(frozen=True, slots=True)
class PartitionGrid:
    """A workflow's partition keys, in key order, as cells counting ``partition_status`` values
    (``missing``, ``queued``, ``running``, ``success``, ``failed``); ``counts`` add up to ``total``."""

    workflow: str
    total: int
    cell_size: int
    cells: tuple[GridCell, ...]
    counts: Mapping[str, int]


def check_max_cells(max_cells: object) -> int:
    if isinstance(max_cells, bool) or not isinstance(max_cells, int) or max_cells < 1:
        raise ValueError(f"max_cells: must be an integer >= 1, got {max_cells!r}")
    return max_cells


def cell_size_for(total: int, max_cells: int) -> int:
    """The fewest positions per cell that fit ``total`` positions in ``max_cells`` cells."""
    return max(1, -(-total // check_max_cells(max_cells)))


def _bounds(total: int, size: int) -> Iterable[tuple[int, int, int]]:
    """(cell, first index, last index) of every cell."""
    for cell, first in enumerate(range(0, total, size)):
        yield cell, first, min(total, first + size) - 1


def _keys(span: KeySpan | None, first: int, last: int) -> tuple[str | None, str | None]:
    if span is None:
        return None, None
    a = span(first)
    b = a if last == first else span(last)
    return (a[0] if a else None), (b[1] if b else None)


def _workflow(workflow_at: WorkflowAt | None, first: int, last: int) -> str | None:
    if workflow_at is None:
        return None
    a = workflow_at(first)
    return a if last == first or workflow_at(last) == a else None


def _add(total: dict[str, int], counts: Mapping[str, int]) -> None:
    for status, n in counts.items():
        total[status] = total.get(status, 0) + n


def backfill_grid(backfill_id: str, status: str, total: int, created: int, finished: bool, max_cells: int,
                  counts: Iterable[GridCount] = (), runs: Sequence[GridRun] | None = None,
                  key_span: KeySpan | None = None, workflow_at: WorkflowAt | None = None) -> BackfillGrid:
    """A backfill's grid from what storage counted.

    ``counts``: the runs that did not succeed, per cell of ``cell_size_for(total, max_cells)`` positions
    (``Session.backfill_grid_counts``). ``runs``: when cells are single runs, the created runs themselves
    (``Session.backfill_grid_runs``): each cell then names its run; a created position without a run of this
    backfill (a schedule tick whose run another backfill holds) is ``canceled``, as the backfill's end
    counts it (an aggregated cell cannot tell such a position from a success: only exceptions are read).
    ``finished``: the backfill has ended, so what was never created is ``canceled``, not ``pending``.
    ``key_span``: a position's first and last key (from the plan), when it can be rebuilt; ``workflow_at``: a
    position's workflow, for a backfill of several."""
    size = cell_size_for(total, max_cells)
    created = max(0, min(created, total))
    not_created = CANCELED if finished else PENDING
    cells: list[GridCell]
    grand: dict[str, int] = {}
    if runs is not None and size == 1:
        cells = run_cells(0, total - 1, created, finished, runs, key_span, workflow_at)
        for one in cells:
            _add(grand, one.counts)
        return BackfillGrid(backfill_id, status, total, created, size, tuple(cells), grand)
    exceptions: dict[int, dict[str, int]] = {}
    for c in counts:
        if c.runs:
            bucket = exceptions.setdefault(c.cell, {})
            bucket[c.status] = bucket.get(c.status, 0) + c.runs
            grand[c.status] = grand.get(c.status, 0) + c.runs
    succeeded = 0
    cells = []
    for cell, first, last in _bounds(total, size):
        made = max(0, min(created, last + 1) - first)
        found = exceptions.get(cell)
        ok = made - sum(found.values()) if found else made
        tally: dict[str, int] = {SUCCESS: ok} if ok > 0 else {}
        succeeded += max(0, ok)
        if found:
            tally.update(found)
        if made <= last - first:  # some never created: pending, or canceled (with the canceled runs) once ended
            tally[not_created] = tally.get(not_created, 0) + last + 1 - first - made
        first_key, last_key = _keys(key_span, first, last)
        cells.append(GridCell(first, last, tally, first_key, last_key, None, _workflow(workflow_at, first, last)))
    if total > created:
        grand[not_created] = grand.get(not_created, 0) + total - created
    totals = {SUCCESS: succeeded, **grand} if succeeded else grand
    return BackfillGrid(backfill_id, status, total, created, size, tuple(cells), totals)


def run_cells(first: int, last: int, created: int, finished: bool, runs: Iterable[GridRun],
              key_span: KeySpan | None = None, workflow_at: WorkflowAt | None = None) -> list[GridCell]:
    """One cell per planned run ``first..last`` (plan indices, inclusive) from the created runs among them
    (``Session.backfill_grid_runs``): each names its run; a position below ``created`` without a run of
    this backfill (a schedule tick whose run another backfill holds) is ``canceled``, as the backfill's end
    counts it; one not created yet is ``pending`` (``canceled`` once the backfill has ended)."""
    not_created = CANCELED if finished else PENDING
    by_index = {r.plan_index: r for r in runs}
    cells = []
    for i in range(first, last + 1):
        run = by_index.get(i) if i < created else None
        state = run.status if run is not None else (CANCELED if i < created else not_created)
        first_key, last_key = _keys(key_span, i, i)
        if first_key is None and run is not None:
            first_key = last_key = _run_key(run)
        cells.append(GridCell(i, i, {state: 1}, first_key, last_key, run.run_id if run is not None else None,
                              _workflow(workflow_at, i, i)))
    return cells


def _run_key(run: GridRun) -> str | None:
    if run.partition_key is not None:
        return run.partition_key
    if run.scheduled_time is not None:
        from datetime import datetime, timezone

        from .schedules import tick_key

        return tick_key(datetime.fromtimestamp(run.scheduled_time, timezone.utc))
    return None


def partition_grid(workflow: str, keys: Sequence[str], statuses: Mapping[str, str], max_cells: int,
                   index_of: Callable[[str], int | None]) -> PartitionGrid:
    """A workflow's grid: ``keys`` (lazy, in order) bucketed ``cell_size`` at a time; ``statuses`` maps the
    keys that have runs to their ``partition_status`` (every other key is ``missing``); ``index_of`` gives a
    key's position in ``keys`` (``None`` for a key no longer among them: not shown)."""
    total = len(keys)
    size = cell_size_for(total, max_cells)
    found: dict[int, dict[str, int]] = {}
    for key, state in statuses.items():
        i = index_of(key)
        if i is not None and 0 <= i < total:
            bucket = found.setdefault(i // size, {})
            bucket[state] = bucket.get(state, 0) + 1
    cells: list[GridCell] = []
    grand: dict[str, int] = {}
    for cell, first, last in _bounds(total, size):
        tally = dict(found.get(cell, {}))
        missing = last + 1 - first - sum(tally.values())
        if missing:
            tally[MISSING] = missing
        cells.append(GridCell(first, last, tally, keys[first], keys[last]))
        _add(grand, tally)
    return PartitionGrid(workflow, total, size, tuple(cells), grand)
