"""The backfills list and a backfill's page.

A backfill's page shows its progress, counters and grid from one read (``repo.backfill_snapshot``), and
polls them as one fragment while the backfill is active, so they always agree. Every cell of the grid
leads somewhere: a run's cell to the run, an aggregated cell to its runs one by one (``?zoom=N``), a run
not created yet to its partition.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse, Response

from ..models import RERUN_OF_TAG, UPSTREAM_FAILED
from ..repository import CodeRepository
from . import cells, view
from .asked import asked
from .filters import BACKFILL_TABS, BackfillFilters, FilterError
from .pages import PAGE, TOTAL_CAP, Offset, Paging, bad_request, repo_of, utcnow
from .render import fragment, page, path_part, query

#: Failed runs listed on a backfill's page.
FAILED_SHOWN = 20
#: Reruns of a backfill linked from it.
RERUNS_SHOWN = 10
router = APIRouter(include_in_schema=False)
Zoom = Annotated[int | None, Query(ge=0, le=1_000_000)]


@router.get("/backfills", response_class=HTMLResponse)
def backfills(request: Request, status: str = "all", workflow: str | None = None,
              tag: Annotated[list[str] | None, Query()] = None, offset: Offset = 0,
              part: Annotated[str | None, Query(alias="fragment")] = None) -> Response:
    try:
        chosen = BackfillFilters.read(status, workflow, tag)
    except FilterError as exc:
        return bad_request(request, str(exc))
    repo = repo_of(request)
    now = utcnow()
    found = repo.list_backfills(limit=PAGE + 1, offset=offset, **chosen.query())
    rows = [(st, view.progress(st, now)) for st in found[:PAGE]]
    total = repo.count_backfills(cap=TOTAL_CAP, **chosen.query())
    busy = any(view.is_active(st.status) for st, _ in rows)
    context: dict[str, Any] = dict(now=now, rows=rows, tabs=BACKFILL_TABS, f=chosen,
                                   paging=Paging(offset, len(rows), len(found) > PAGE, total), busy=busy,
                                   workflows=sorted(wf.name for wf in repo.workflows),
                                   poll=query(fragment="table", offset=offset or None, **chosen.params()))
    if part == "table":
        return fragment(request, "_backfills_table.html", **context)
    return page(request, "backfills.html", **context)


@router.get("/backfills/{backfill_id}", response_class=HTMLResponse)
def backfill(request: Request, backfill_id: str, part: Annotated[str | None, Query(alias="fragment")] = None,
             s: str | None = None, zoom: Zoom = None) -> Response:
    # an unknown id raises NotFoundError: a 404 page naming it
    return backfill_response(request, repo_of(request), backfill_id, part, view.Sample.decode(s), zoom=zoom)


def backfill_response(request: Request, repo: CodeRepository, backfill_id: str, part: str | None,
                      sample: view.Sample | None, flash: tuple[str, str] | None = None, status: int = 200,
                      zoom: int | None = None) -> Response:
    """The backfill's page, or its ``live`` fragment (head, progress, counters, grid and failed runs, all
    from one read of the backfill: polled while it is active)."""
    context = backfill_context(repo, backfill_id, sample, zoom)
    context["flash"] = flash
    if part == "live":
        return fragment(request, "_backfill_live.html", status, **context)
    st = context["st"]
    known = repo.workflow_registry
    defaults = {name: known[name].backfill_strategy for name in st.workflows if name in known}
    return page(request, "backfill.html", status, asked=asked(st.request, st.created_by, defaults), **context)


def backfill_context(repo: CodeRepository, backfill_id: str, sample: view.Sample | None,
                     zoom: int | None) -> dict[str, Any]:
    now = utcnow()
    snap = repo.backfill_snapshot(backfill_id, cells.MAX_CELLS, zoom)
    st = snap.status
    bid = path_part(backfill_id)
    key_href = None
    if len(st.workflows) == 1:
        name = next(iter(st.workflows))

        def key_href(key: str) -> str:
            return "/partitions" + query(workflow=name, key=key)

    grid = cells.backfill_cells(snap.grid, f"/backfills/{bid}?zoom=", key_href, snap.zoom[0] if snap.zoom else None)
    zoomed = None
    if snap.zoom is not None:
        index, found = snap.zoom
        zoomed = (index, snap.grid.cells[index], cells.run_cells(found, key_href))
    p = view.progress(st, now, sample)
    failed = repo.list_runs(backfill_id=backfill_id, status="failed", limit=FAILED_SHOWN + 1) if p.failed else []
    blocked = repo.list_runs(backfill_id=backfill_id, status=UPSTREAM_FAILED, limit=FAILED_SHOWN + 1) \
        if p.upstream_failed else []
    reruns = repo.list_backfills(tags={RERUN_OF_TAG: backfill_id}, limit=RERUNS_SHOWN + 1)
    registry = repo.workflow_registry
    # a graph backfill (several workflows, or keys that wait for the key before): progress per workflow
    graph = len(st.workflows) > 1 or any(getattr(registry.get(name), "depends_on_past", False) for name in st.workflows)
    poll = query(fragment="live", s=p.sample.encode(), zoom=zoomed[0] if zoomed else None)
    return dict(st=st, p=p, now=now, grid=grid, pending=snap.grid.counts.get("pending", 0), zoomed=zoomed,
                failed=failed[:FAILED_SHOWN], more_failed=len(failed) > FAILED_SHOWN, blocked=blocked[:FAILED_SHOWN],
                more_blocked=len(blocked) > FAILED_SHOWN, graph=graph,
                tallies=view.workflow_tallies(st) if graph else [], reruns=reruns[:RERUNS_SHOWN],
                more_reruns=len(reruns) > RERUNS_SHOWN, rerun_of=dict(st.tags).get(RERUN_OF_TAG), poll=poll,
                every="1s" if snap.grid.total <= cells.MAX_CELLS else "2s")
