"""The UI's pages (GET) shared helpers, and the dashboard, sign-in and time-zone pages. The other pages live
beside it by concept: ``backfill_pages``, ``run_pages``, ``workflow_pages``, ``schedule_pages``.

Every route is a plain function (run on the server's thread pool) doing a few short read transactions,
rendered from the ``CodeRepository`` at ``app.state.repo``. A page polls a fragment of itself
(``?fragment=...``) every second or two only while what it shows is active; a fragment that finds it
finished renders without its trigger, and the polling stops.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..models import ACTIVE_BACKFILL_STATUSES
from ..repository import CodeRepository
from . import view
from .render import fragment, page, query, zone_name, zone_of

#: Rows per page of a list.
PAGE = 50
#: Counting running or queued runs for the dashboard stops here ("100+").
COUNT_CAP = 100
#: A list counts its rows up to this many ("10,000+").
TOTAL_CAP = 10_000

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


@dataclass(frozen=True)
class Paging:
    """Where a paged list is: rows ``offset + 1 ..`` of ``total`` (counted up to ``TOTAL_CAP``)."""

    offset: int
    shown: int
    has_more: bool
    total: int
    limit: int = PAGE

    @property
    def total_text(self) -> str:
        return f"{TOTAL_CAP:,}+" if self.total >= TOTAL_CAP else f"{self.total:,}"


def samples(given: list[str] | None) -> dict[str, view.Sample]:
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
def dashboard(request: Request, fragment_name: Annotated[str | None, Query(alias="fragment")] = None,
              s: Annotated[list[str] | None, Query()] = None) -> Response:
    repo = repo_of(request)
    now = utcnow()
    given = samples(s)
    active = repo.list_backfills(ACTIVE_BACKFILL_STATUSES, limit=20)
    rows = [(st, view.progress(st, now, given.get(st.backfill_id))) for st in active]
    running = len(repo.list_runs(status="running", limit=COUNT_CAP + 1))
    queued = len(repo.list_runs(status="queued", limit=COUNT_CAP + 1))
    recent = repo.list_runs(limit=15)
    finished = [(st, view.progress(st, now)) for st in
                repo.list_backfills(("completed", "failed", "canceled"), limit=5)]
    busy = bool(active) or running > 0 or queued > 0
    poll = query(fragment="dash", s=[f"{st.backfill_id}_{p.sample.encode()}" for st, p in rows])
    context: dict[str, Any] = dict(now=now, rows=rows, running=running, queued=queued, cap=COUNT_CAP,
                                   recent=recent, finished=finished, busy=busy, poll=poll,
                                   workflows=len(repo.workflows), schedules=len(repo.list_schedules()))
    if fragment_name == "dash":
        return fragment(request, "_dashboard.html", **context)
    return page(request, "dashboard.html", **context)


# -- time zone ------------------------------------------------------------------------------------------
@router.get("/timezone", response_class=HTMLResponse)
def timezone_page(request: Request, next: str = "/") -> Response:
    """Choose the zone times are shown in (the browser's by default)."""
    from zoneinfo import available_timezones

    repo = repo_of(request)
    used = sorted(({s.timezone for s in repo.list_schedules()} | {
        zone for wf in repo.workflows for zone in _partition_zones(wf.partitions)}) - {"UTC"})
    return page(request, "timezone.html", next=safe_next(next), current=zone_name(zone_of(request)), used=used,
                zones=sorted(available_timezones()))


def _partition_zones(pdef: Any) -> list[str]:
    if pdef is None:
        return []
    inner = getattr(pdef, "dimensions", None)
    if isinstance(inner, dict):
        return [z for d in inner.values() for z in _partition_zones(d)]
    zone = getattr(pdef, "timezone", None)
    return [zone] if isinstance(zone, str) else []


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
