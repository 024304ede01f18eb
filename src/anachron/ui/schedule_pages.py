"""The schedules page: every schedule of every workflow — its cron and time zone, whether it is paused, its
last tick and run, its next ticks, its active backfill — with pause / resume and the tick-backfill form
(start, end, inputs and labels, as Kestra's backfill panel has)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from fastapi import APIRouter, Request
from starlette.responses import HTMLResponse, Response

from ..models import ACTIVE_BACKFILL_STATUSES, SCHEDULE_TAG, TRIGGER_TAG, BackfillStatus, Run, ScheduleStatus
from ..repository import CodeRepository
from .fields import ParamForm, param_form
from .pages import repo_of, utcnow
from .render import page

#: Next ticks shown per schedule.
NEXT_TICKS = 3
#: Schedules whose last run and active backfill are looked up (one short read each) on the page.
LOOKUPS = 200
router = APIRouter(include_in_schema=False)


@dataclass(frozen=True)
class ScheduleRow:
    schedule: ScheduleStatus
    next_ticks: tuple[datetime, ...]
    last_run: Run | None
    backfill: BackfillStatus | None
    params: ParamForm
    launch_key: str


def schedule_row(repo: CodeRepository, sc: ScheduleStatus, look: bool = True) -> ScheduleRow:
    wf = repo.workflow_registry[sc.workflow]
    sched = wf.get_schedule(sc.schedule_id)
    ticks: list[datetime] = []
    tick = sc.next_tick
    while tick is not None and len(ticks) < NEXT_TICKS:
        ticks.append(tick)
        tick = sched.next_tick(tick)
    last = repo.list_runs(wf, tags={SCHEDULE_TAG: sc.schedule_id}, trigger="scheduled", limit=1) if look else []
    active = repo.list_backfills(ACTIVE_BACKFILL_STATUSES, wf, tags={TRIGGER_TAG: sc.schedule_id},
                                 limit=1) if look else []
    return ScheduleRow(sc, tuple(ticks), last[0] if last else None, active[0] if active else None, param_form(wf),
                       uuid.uuid4().hex)


@router.get("/schedules", response_class=HTMLResponse)
def schedules(request: Request) -> Response:
    repo = repo_of(request)
    rows = [schedule_row(repo, sc, i < LOOKUPS) for i, sc in enumerate(repo.list_schedules())]
    return page(request, "schedules.html", rows=rows, now=utcnow(), show_workflow=True, back="/schedules")
