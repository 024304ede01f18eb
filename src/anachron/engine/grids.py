"""Reading partition grids (for the web UI and the HTTP API): one read transaction, then the arithmetic of
``anachron.grid``.

A backfill's grid costs a few index ranges however big the backfill (the runs that did not succeed, per
cell), plus two plan look-ups per cell for the keys it covers (remembered for the next call). A workflow's
grid reads the latest run of every key that has runs (``Session.partition_statuses``): it costs as much as
the workflow's history.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import TYPE_CHECKING

from ..definitions import Workflow
from ..grid import (
    BackfillGrid,
    BackfillSnapshot,
    KeySpan,
    PartitionGrid,
    WorkflowAt,
    backfill_grid,
    cell_size_for,
    check_max_cells,
    partition_grid,
    run_cells,
)
from ..models import FINISHED_BACKFILL_STATUSES, BackfillStatus, NotFoundError
from ..records import BackfillRecord, GridCount, GridRun
from ..requests import asked_request
from .backfills import read_workflow_counts
from .context import EngineContext
from .led import rebuild_plan

if TYPE_CHECKING:
    from ..storage.contract import StoreSession as Session

_Read = tuple[BackfillRecord, BackfillStatus, list[GridCount], list[GridRun] | None, list[GridRun] | None]


def read_backfill_grid(engine: EngineContext, backfill_id: str, max_cells: int = 2000) -> BackfillGrid:
    """The backfill's runs in plan order as at most ``max_cells`` cells (``NotFoundError`` for an unknown id)."""
    return read_backfill_snapshot(engine, backfill_id, max_cells).grid


def read_backfill_snapshot(engine: EngineContext, backfill_id: str, max_cells: int = 2000,
                           zoom: int | None = None) -> BackfillSnapshot:
    """The backfill's status (with its per-workflow counts for a graph backfill) and grid from one read
    transaction, so that counters and cells agree; with ``zoom`` (the index of an aggregated cell), that cell's runs
    one by one as well."""
    check_max_cells(max_cells)

    def read(s: Session) -> _Read | None:
        record = s.get_backfill(backfill_id)
        if record is None:
            return None
        active = s.run_counts([backfill_id]).get(backfill_id)
        status = record.to_status([], active.queued if active else 0, active.running if active else 0,
                                  read_workflow_counts(s, record),  # per workflow, in the same read as the grid
                                  request=asked_request(record.request))  # what was asked: the page shows it
        size = cell_size_for(record.total_runs, max_cells)
        if size == 1:  # a cell per run: the runs themselves (at most max_cells of them), with their ids
            return record, status, [], s.backfill_grid_runs(backfill_id, record.cursor, record.total_runs), None
        zoomed = None
        if zoom is not None and 0 <= zoom * size < record.total_runs:
            zoomed = s.backfill_grid_runs(backfill_id, record.cursor, size, first=zoom * size)
        return record, status, s.backfill_grid_counts(backfill_id, size, record.cursor), None, zoomed

    found = engine.storage.run(read, write=False)
    if found is None:
        raise NotFoundError(f"backfill {backfill_id!r} not found")
    record, status, counts, runs, zoomed = found
    size = cell_size_for(record.total_runs, max_cells)
    span, workflow_at = _key_span(record, engine, size)
    finished = record.status in FINISHED_BACKFILL_STATUSES
    grid = backfill_grid(record.backfill_id, record.status, record.total_runs, record.cursor, finished, max_cells,
                         counts, runs, span, workflow_at)
    if zoomed is None or zoom is None:
        return BackfillSnapshot(status, grid)
    first = zoom * size
    last = min(record.total_runs, first + size) - 1
    one_by_one, workflow_at = _key_span(record, engine, 1)
    return BackfillSnapshot(status, grid, (zoom, tuple(run_cells(first, last, record.cursor, finished, zoomed,
                                                                 one_by_one, workflow_at))))


#: the key spans of recently shown backfills, (storage, backfill, cell size) → (the plan's ``key_span``, its
#: ``workflow_at`` for a plan of several workflows, what was looked up): a backfill's plan never changes, and a page
#: showing one polls it (the look-ups are most of a big grid's Python time). Entries are small: two keys per cell.
_Kept = tuple[KeySpan, "WorkflowAt | None", dict[int, tuple[str, str] | None], dict[int, str | None]]
_SPANS: OrderedDict[tuple[str, str, int], _Kept] = OrderedDict()
_SPANS_KEPT = 16
_spans_lock = threading.Lock()


def _key_span(record: BackfillRecord, engine: EngineContext, cell_size: int) -> tuple[KeySpan | None,
                                                                                       WorkflowAt | None]:
    """A planned run's first and last key, and for a backfill of several workflows the workflow it belongs to,
    from the plan rebuilt from its spec (cheap: the plan is lazy), remembered per backfill; ``None`` when it
    cannot be rebuilt (a workflow no longer defined, a changed definition)."""
    slot = (engine.storage_handle.url, record.backfill_id, cell_size)
    with _spans_lock:
        kept = _SPANS.get(slot)
        if kept is not None:
            _SPANS.move_to_end(slot)
    if kept is None:
        try:
            _, plan = rebuild_plan(record, engine.registry)
        except (ValueError, LookupError, TypeError):  # planning.PlanChanged is a ValueError
            return None, None
        if plan.num_runs != record.total_runs:
            return None, None
        kept = (plan.key_span, plan.workflow_at if len(plan.workflow_plans) > 1 else None, {}, {})
        with _spans_lock:
            _SPANS[slot] = kept
            while len(_SPANS) > _SPANS_KEPT:
                _SPANS.popitem(last=False)
    span, workflow_at, seen, seen_workflows = kept

    def remembered(index: int) -> tuple[str, str] | None:
        try:
            return seen[index]
        except KeyError:
            found = seen[index] = span(index)
            return found

    if workflow_at is None:
        return remembered, None
    at = workflow_at

    def workflow_remembered(index: int) -> str | None:
        try:
            return seen_workflows[index]
        except KeyError:
            found = seen_workflows[index] = at(index)
            return found

    return remembered, workflow_remembered


#: Looking one key up in a lazy key sequence (parsing it) costs about as much as producing this many keys in a
#: pass over the sequence (measured: 40–130 µs against 1–3.5 µs for hourly keys, 3 µs against 0.75 µs for static).
LOOKUP_COST = 30


def read_partition_grid(engine: EngineContext, workflow: Workflow, max_cells: int = 2000) -> PartitionGrid:
    """A workflow's partition keys in key order as at most ``max_cells`` cells of ``partition_status``
    counts. Reads the latest run of every key with runs (the database aggregates; Python sees one row per
    such key): proportional to the workflow's history, not to ``max_cells``."""
    check_max_cells(max_cells)
    name = workflow.name
    if workflow.partitions is None:  # keys only as runs name them
        statuses = engine.storage.run(lambda s: s.partition_statuses(name), write=False)
        ordered = sorted(statuses)
        positions = {k: i for i, k in enumerate(ordered)}
        return partition_grid(name, ordered, statuses, max_cells, positions.get)

    def read(s: Session) -> tuple[dict[str, list[str]], dict[str, str]]:
        return s.dynamic_keys(), s.partition_statuses(name)

    dynamic, statuses = engine.storage.run(read, write=False)
    keys = workflow.partitions.get_partition_keys(engine.now(), dynamic)
    if len(statuses) * LOOKUP_COST > len(keys):  # many keys with runs: one pass over the keys costs less
        positions = {k: i for i, k in enumerate(keys) if k in statuses}
        return partition_grid(name, keys, statuses, max_cells, positions.get)

    def index_of(key: str) -> int | None:
        try:
            return keys.index(key)
        except ValueError:  # a key of an earlier definition: not in the grid
            return None

    return partition_grid(name, keys, statuses, max_cells, index_of)
