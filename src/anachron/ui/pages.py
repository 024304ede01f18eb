"""The UI's pages (GET): dashboard, backfills, workflows, runs — rendered from the ``CodeRepository`` at
``app.state.repo``, each with the fragments its page polls while something on it is active.

Every route is a plain function (run on the server's thread pool) doing a few short read transactions.
A page polls a fragment of itself (``?fragment=...``) every second or two only while what it shows is
active; a fragment that finds it finished renders without its trigger, and the polling stops.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..definitions import Workflow
from ..models import ACTIVE_BACKFILL_STATUSES, ACTIVE_RUN_STATUSES, BackfillStatus
from ..repository import CodeRepository
from . import cells, view
from .forms import BackfillForm
from .render import html, page, query, workflow_url

#: Rows per page of a list.
PAGE = 50
#: Failed runs listed on a backfill's page.
FAILED_SHOWN = 20
#: Counting running or queued runs for the dashboard stops here ("100+").
COUNT_CAP = 100
#: A workflow with more partitions than this refreshes its grid every 10 s instead of 2 s while busy.
BIG_WORKFLOW = 100_000
#: A workflow list looks up each workflow's last run up to this many workflows.
LAST_RUN_LOOKUPS = 100

BACKFILL_TABS: dict[str, tuple[str, tuple[str, ...]]] = {
    "all": ("All", ()), "active": ("Active", ACTIVE_BACKFILL_STATUSES), "completed": ("Completed", ("completed",)),
    "failed": ("Failed", ("failed",)), "canceled": ("Canceled", ("canceled",)),
}
RUN_TABS: dict[str, tuple[str, tuple[str, ...]]] = {
    "all": ("All", ()), "active": ("Running & queued", ACTIVE_RUN_STATUSES), "failed": ("Failed", ("failed",)),
    "success": ("Succeeded", ("success",)), "canceled": ("Canceled", ("canceled",)),
}

Offset = Annotated[int, Query(ge=0, le=10_000_000)]
router = APIRouter(include_in_schema=False)


def repo_of(request: Request) -> CodeRepository:
    repo: CodeRepository = request.app.state.repo
    return repo


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def not_found(request: Request, message: str) -> HTMLResponse:
    return page(request, "error.html", 404, title="Not found", message=message)


def bad_request(request: Request, message: str) -> HTMLResponse:
    return page(request, "error.html", 400, title="Bad request", message=message)


def _samples(given: list[str] | None) -> dict[str, view.Sample]:
    """``<backfill id>_<sample>`` values (the dashboard's polls carry one per active backfill)."""
    found = {}
    for item in (given or [])[:100]:
        ident, _, text = item.partition("_")
        sample = view.Sample.decode(text)
        if ident and sample is not None:
            found[ident] = sample
    return found


# -- dashboard ------------------------------------------------------------------------------------------
@router.get("/", response_class=HTMLResponse)
def dashboard(request: Request, fragment: str | None = None,
              s: Annotated[list[str] | None, Query()] = None) -> Response:
    repo = repo_of(request)
    now = utcnow()
    samples = _samples(s)
    active = repo.list_backfills(ACTIVE_BACKFILL_STATUSES, limit=20)
    rows = [(st, view.progress(st, now, samples.get(st.backfill_id))) for st in active]
    running = len(repo.list_runs(status="running", limit=COUNT_CAP + 1))
    queued = len(repo.list_runs(status="queued", limit=COUNT_CAP + 1))
    recent = repo.list_runs(limit=15)
    finished = [(st, view.progress(st, now)) for st in
                repo.list_backfills(("completed", "failed", "canceled"), limit=5)]
    busy = bool(active) or running > 0 or queued > 0
    poll = query(fragment="dash", s=[f"{st.backfill_id}_{p.sample.encode()}" for st, p in rows])
    context: dict[str, Any] = dict(now=now, rows=rows, running=running, queued=queued, cap=COUNT_CAP,
                                   recent=recent, finished=finished, busy=busy, poll=poll,
                                   workflows=len(repo.workflows))
    if fragment == "dash":
        return html("_dashboard.html", **context)
    return page(request, "dashboard.html", **context)


# -- backfills ------------------------------------------------------------------------------------------
@router.get("/backfills", response_class=HTMLResponse)
def backfills(request: Request, status: str = "all", workflow: str | None = None, offset: Offset = 0,
              fragment: str | None = None) -> Response:
    if status not in BACKFILL_TABS:
        return bad_request(request, f"status: expected one of {', '.join(BACKFILL_TABS)}, got {status!r}")
    repo = repo_of(request)
    now = utcnow()
    found = repo.list_backfills(BACKFILL_TABS[status][1], workflow, limit=PAGE + 1, offset=offset)
    rows = [(st, view.progress(st, now)) for st in found[:PAGE]]
    busy = any(view.is_active(st.status) for st, _ in rows)
    params = {"status": status if status != "all" else None, "workflow": workflow}
    context: dict[str, Any] = dict(now=now, rows=rows, tabs=BACKFILL_TABS, tab=status, workflow=workflow,
                                   offset=offset, limit=PAGE, has_more=len(found) > PAGE, params=params, busy=busy,
                                   poll=query(fragment="table", offset=offset or None, **params))
    if fragment == "table":
        return html("_backfills_table.html", **context)
    return page(request, "backfills.html", **context)


@router.get("/backfills/{backfill_id}", response_class=HTMLResponse)
def backfill(request: Request, backfill_id: str, fragment: str | None = None, s: str | None = None) -> Response:
    repo = repo_of(request)
    st = repo.get_backfill(backfill_id, include_run_ids=False)
    if st is None:
        return not_found(request, f"backfill {backfill_id!r} not found")
    return backfill_response(request, repo, st, fragment, view.Sample.decode(s))


def backfill_response(request: Request, repo: CodeRepository, st: BackfillStatus, fragment: str | None,
                      sample: view.Sample | None, flash: tuple[str, str] | None = None, status: int = 200) -> Response:
    """The backfill's page, or one of its fragments: ``live`` (progress, counters, actions: polled every
    second) or ``grid`` (the partition grid and failed runs: polled every two seconds)."""
    now = utcnow()
    context: dict[str, Any] = dict(st=st, p=view.progress(st, now, sample), now=now, flash=flash)
    if fragment == "live":
        return html("_backfill_live.html", status, oob_flash=True, **context)
    context.update(grid_context(repo, st))
    if fragment == "grid":
        return html("_backfill_grid.html", status, **context)
    return page(request, "backfill.html", status, **context)


def grid_context(repo: CodeRepository, st: BackfillStatus) -> dict[str, Any]:
    grid = cells.backfill_cells(repo.backfill_grid(st.backfill_id, cells.MAX_CELLS))
    failed = repo.list_runs(backfill_id=st.backfill_id, status="failed", limit=FAILED_SHOWN + 1) \
        if st.failed_partitions else []
    return dict(grid=grid, failed=failed[:FAILED_SHOWN], more_failed=len(failed) > FAILED_SHOWN)


# -- workflows ------------------------------------------------------------------------------------------
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
def workflow(request: Request, name: str, fragment: str | None = None,
             zoom: Annotated[int | None, Query(ge=0, le=1_000_000)] = None) -> Response:
    repo = repo_of(request)
    if name not in repo.workflow_registry:
        return not_found(request, f"workflow {name!r} not found")
    wf = repo.workflow_registry[name]
    context = workflow_context(repo, wf, zoom)
    if fragment == "grid":
        return html("_workflow_grid.html", **context)
    return workflow_page(request, repo, wf, context)


def workflow_context(repo: CodeRepository, wf: Workflow, zoom: int | None) -> dict[str, Any]:
    """The workflow's partition grid: every key as one cell while they fit, else aggregated cells, each a
    link to its own keys one by one (``zoom``)."""
    if wf.partitions is None:
        return dict(wf=wf, grid=None, zoomed=None, zoom=None, busy=False, every=None, first_key=None, last_key=None)
    whole = repo.partition_grid(wf, cells.MAX_CELLS)
    base = workflow_url(wf.name)
    grid = cells.partition_cells(whole, f"{base}?zoom=")
    zoomed = None
    if zoom is not None and zoom < len(whole.cells) and whole.cells[zoom].size > 1:
        cell = whole.cells[zoom]
        statuses = repo.partition_status(wf, from_key=cell.first_key, to_key=cell.last_key, limit=cells.MAX_CELLS)
        zoomed = (cell, cells.status_cells(statuses))
    else:
        zoom = None
    busy = any(whole.counts.get(s) for s in ("running", "queued"))
    # a workflow's grid costs as much as its history: a huge one is looked at less often
    every = "2s" if whole.total <= BIG_WORKFLOW else "10s"
    first_key = whole.cells[0].first_key if whole.cells else None
    last_key = whole.cells[-1].last_key if whole.cells else None
    return dict(wf=wf, grid=grid, zoomed=zoomed, zoom=zoom, busy=busy, every=every, first_key=first_key,
                last_key=last_key)


def workflow_page(request: Request, repo: CodeRepository, wf: Workflow, context: dict[str, Any],
                  form: BackfillForm | None = None, preview: dict[str, Any] | None = None,
                  status: int = 200) -> Response:
    """The workflow's page; after a form submitted without JavaScript, with that form and its preview."""
    now = utcnow()
    context = dict(context, now=now, schedules=repo.list_schedules(wf),
                   backfills=[(st, view.progress(st, now)) for st in repo.list_backfills(workflow=wf.name, limit=5)],
                   runs=repo.list_runs(wf.name, limit=10),
                   form=form or BackfillForm.of({"workflow": wf.name}), preview=preview,
                   time_based=bool(wf.partitions is not None and wf.partitions.is_time_based))
    return page(request, "workflow.html", status, **context)


# -- runs -----------------------------------------------------------------------------------------------
@router.get("/runs", response_class=HTMLResponse)
def runs(request: Request, status: str = "all", workflow: str | None = None, backfill: str | None = None,
         offset: Offset = 0, fragment: str | None = None) -> Response:
    if status not in RUN_TABS:
        return bad_request(request, f"status: expected one of {', '.join(RUN_TABS)}, got {status!r}")
    repo = repo_of(request)
    now = utcnow()
    found = repo.list_runs(workflow, RUN_TABS[status][1], backfill, limit=PAGE + 1, offset=offset)
    shown = found[:PAGE]
    params = {"status": status if status != "all" else None, "workflow": workflow, "backfill": backfill}
    context: dict[str, Any] = dict(now=now, runs=shown, tabs=RUN_TABS, tab=status, workflow=workflow,
                                   backfill=backfill, offset=offset, limit=PAGE, has_more=len(found) > PAGE,
                                   params=params, busy=any(view.is_active(r.status) for r in shown),
                                   poll=query(fragment="table", offset=offset or None, **params))
    if fragment == "table":
        return html("_runs_table.html", **context)
    return page(request, "runs.html", **context)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run(request: Request, run_id: str, fragment: str | None = None,
        offset: Annotated[int, Query(ge=0)] = 0, attempt: Annotated[int, Query(ge=0)] = 0) -> Response:
    """A run and its logs. While it is active the page polls ``?fragment=follow&offset=N``: the lines
    logged since (appended) and the run's head (swapped out of band)."""
    repo = repo_of(request)
    found = repo.get_run(run_id)
    if found is None:
        return not_found(request, f"run {run_id!r} not found")
    lines = repo.run_logs(run_id)
    now = utcnow()
    context: dict[str, Any] = dict(run=found, now=now, active=view.is_active(found.status))
    if fragment == "follow":
        return html("_run_follow.html", lines=lines[offset:], offset=len(lines), attempt=attempt, **context)
    last_attempt = lines[-1]["attempt"] if lines else 0
    return page(request, "run.html", lines=lines, offset=len(lines), attempt=last_attempt, **context)


# -- login ----------------------------------------------------------------------------------------------
@router.get("/login", response_class=HTMLResponse)
def login_form(request: Request, next: str = "/") -> Response:
    if request.app.state.token is None:
        return RedirectResponse("/", status_code=303)
    return page(request, "login.html", next=safe_next(next), error=None)


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path on this server only (``/...``, never ``//host`` or ``/\\host``)."""
    if not target or not target.startswith("/") or target.startswith(("//", "/\\")) or any(
            ord(c) < 32 for c in target):
        return "/"
    return target
