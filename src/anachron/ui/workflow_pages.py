"""The workflows list and a workflow's page: its partition grid (1-D, or date × region for a multi-partitioned
workflow), a partition search, its schedules, backfills and runs, and the forms that work for it — a
backfill form for a partitioned workflow (per dimension for a multi-partitioned one), the tick-backfill
form for a scheduled one without partitions, and "Run now" for every workflow.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse, Response

from ..definitions import Workflow
from ..partitions import MultiPartitions
from ..repository import CodeRepository
from . import cells, matrix, view
from .fields import param_form
from .forms import BackfillForm, RunForm
from .graph_pages import neighbours
from .keys import dimension_keys
from .pages import not_found, repo_of, utcnow
from .render import fragment, page, query, workflow_url
from .schedule_pages import schedule_row

#: A workflow with more partitions than this refreshes its grid every 10 s instead of 2 s while busy.
BIG_WORKFLOW = 100_000
#: A workflow list looks up each workflow's last run up to this many workflows.
LAST_RUN_LOOKUPS = 100
#: A dimension with at most this many keys (and not time-based) is picked with checkboxes.
PICK_KEYS = 16
router = APIRouter(include_in_schema=False)
Zoom = Annotated[int | None, Query(ge=0, le=1_000_000)]


@router.get("/workflows", response_class=HTMLResponse)
def workflows(request: Request) -> Response:
    repo = repo_of(request)
    now = utcnow()
    schedules = repo.list_schedules()
    items = []
    for i, wf in enumerate(sorted(repo.workflows, key=lambda w: w.name)):
        last = repo.list_runs(wf.name, limit=1) if i < LAST_RUN_LOOKUPS else []
        items.append((wf, [sc for sc in schedules if sc.workflow == wf.name], last[0] if last else None))
    return page(request, "workflows.html", now=now, items=items)


@router.get("/workflows/{name:path}", response_class=HTMLResponse)
def workflow(request: Request, name: str, part: Annotated[str | None, Query(alias="fragment")] = None,
             zoom: Zoom = None, x: Zoom = None) -> Response:
    repo = repo_of(request)
    if name not in repo.workflow_registry:
        return not_found(request, f"workflow {name!r} not found")
    wf = repo.workflow_registry[name]
    context = grid_context(repo, wf, zoom, x)
    if part == "grid":
        return fragment(request, "_workflow_grid.html", **context)
    return workflow_page(request, repo, wf, context)


def partition_href(name: str) -> Any:
    def href(key: str) -> str:
        return "/partitions" + query(workflow=name, key=key)

    return href


def grid_context(repo: CodeRepository, wf: Workflow, zoom: int | None, x: int | None) -> dict[str, Any]:
    """The workflow's partition grid: a 2-D grid (time across, the other dimensions down) for a
    multi-partitioned workflow that fits one, else every key as one cell while they fit, else aggregated
    cells, each a link to its own keys one by one (``zoom``; ``x`` for a 2-D grid's column)."""
    empty = dict(wf=wf, grid=None, zoomed=None, zoom=None, x=None, busy=False, every=None, first_key=None,
                 last_key=None, matrix=None)
    if wf.partitions is None:
        return empty
    base = workflow_url(wf.name)
    href = partition_href(wf.name)
    if isinstance(wf.partitions, MultiPartitions):
        seqs = dimension_keys(repo, wf)
        if matrix.fits(wf.partitions, {n: len(s) for n, s in seqs.items()}):
            statuses = repo.partition_status(wf)
            grid2 = matrix.matrix(wf.partitions, seqs, statuses, href, lambda c: f"{base}?x={c}#wf-grid", x)
            busy = any(s in ("running", "queued") for s, _ in grid2.counts)
            ordered = list(statuses)
            return dict(empty, matrix=grid2, x=x if grid2.zoom else None, busy=busy, every="2s",
                        first_key=ordered[0] if ordered else None, last_key=ordered[-1] if ordered else None)
    whole = repo.partition_grid(wf, cells.MAX_CELLS)
    if zoom is not None and not (zoom < len(whole.cells) and whole.cells[zoom].size > 1):
        zoom = None
    grid = cells.partition_cells(whole, f"{base}?zoom=", href, zoom)
    zoomed = None
    if zoom is not None:
        cell = whole.cells[zoom]
        statuses = repo.partition_status(wf, from_key=cell.first_key, to_key=cell.last_key, limit=cells.MAX_CELLS)
        zoomed = (cell, cells.status_cells(statuses, href))
    busy = any(whole.counts.get(s) for s in ("running", "queued"))
    # a workflow's grid costs as much as its history: a huge one is looked at less often
    every = "2s" if whole.total <= BIG_WORKFLOW else "10s"
    first_key = whole.cells[0].first_key if whole.cells else None
    last_key = whole.cells[-1].last_key if whole.cells else None
    return dict(empty, grid=grid, zoomed=zoomed, zoom=zoom, busy=busy, every=every, first_key=first_key,
                last_key=last_key)


@dataclass(frozen=True)
class Dimension:
    """How the backfill form asks for one dimension of a multi-partitioned workflow."""

    name: str
    #: ``pick`` (checkboxes), ``range`` (from / to: a time dimension), ``keys`` (from / to, or a list)
    kind: str
    keys: tuple[str, ...]
    first: str
    last: str
    count: int


def dimensions(repo: CodeRepository, wf: Workflow) -> list[Dimension]:
    if not isinstance(wf.partitions, MultiPartitions):
        return []
    found = []
    for name, seq in dimension_keys(repo, wf).items():
        n = len(seq)
        kind = "range" if wf.partitions.dimensions[name].is_time_based else "pick" if n <= PICK_KEYS else "keys"
        found.append(Dimension(name, kind, tuple(seq) if kind == "pick" else (), seq[0] if n else "",
                               seq[n - 1] if n else "", n))
    return found


def workflow_page(request: Request, repo: CodeRepository, wf: Workflow, context: dict[str, Any],
                  form: BackfillForm | None = None, preview: dict[str, Any] | None = None,
                  run_form: RunForm | None = None, run_error: str | None = None, status: int = 200) -> Response:
    """The workflow's page; after a form submitted without JavaScript, with that form and its preview."""
    now = utcnow()
    schedules = repo.list_schedules(wf)
    main = "partition" if wf.partitions is not None else "tick" if schedules else None
    context = dict(context, now=now, schedules=schedules, main=main,
                   schedule_rows=[schedule_row(repo, sc) for sc in schedules],
                   backfills=[(st, view.progress(st, now)) for st in repo.list_backfills(workflow=wf.name, limit=5)],
                   runs=repo.list_runs(wf.name, limit=10), params=param_form(wf), dims=dimensions(repo, wf),
                   form=form or BackfillForm.of({"workflow": wf.name}), preview=preview,
                   run_form=run_form or RunForm.of({"workflow": wf.name}), run_error=run_error,
                   launch_key=uuid.uuid4().hex, deps=neighbours(repo, wf.name),
                   time_based=bool(wf.partitions is not None and wf.partitions.is_time_based))
    return page(request, "workflow.html", status, **context)
