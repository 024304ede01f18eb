"""The runs list (with its filters), a run's page with its logs, and a partition's page: its status, window,
latest run and logs, and every run that covered it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from ..engine.readiness import BLOCKED_BECAUSE
from ..models import RERUN_OF_TAG, SCHEDULE_TAG, UPSTREAM_FAILED, Run
from ..repository import CodeRepository
from . import view
from .fields import param_form
from .filters import RUN_TABS, TRIGGER_LABELS, FilterError, RunFilters
from .keys import keys_of, partition_window, search
from .pages import PAGE, TOTAL_CAP, Offset, Paging, bad_request, not_found, repo_of, utcnow
from .render import fragment, page, query, workflow_url, zone_of

#: Log lines of a partition's latest run shown on its page (the run's page has them all).
LOG_TAIL = 30
router = APIRouter(include_in_schema=False)


def trigger_of(run: Run) -> str:
    """``backfill``, ``scheduled`` or ``manual`` (as ``list_runs(trigger=...)`` tells them apart)."""
    if run.backfill_id is not None:
        return "backfill"
    return "scheduled" if (run.idempotency_key or "").startswith("schedule:") else "manual"


@router.get("/runs", response_class=HTMLResponse)
def runs(request: Request, status: str = "all", workflow: str | None = None, backfill: str | None = None,
         partition: str | None = None, tag: Annotated[list[str] | None, Query()] = None, trigger: str | None = None,
         since: str | None = None, until: str | None = None, offset: Offset = 0,
         part: Annotated[str | None, Query(alias="fragment")] = None) -> Response:
    try:
        chosen = RunFilters.read(status, workflow, backfill, partition, tag, trigger, since, until)
        where = chosen.query(zone_of(request))
    except FilterError as exc:
        return bad_request(request, str(exc))
    repo = repo_of(request)
    now = utcnow()
    found = repo.list_runs(limit=PAGE + 1, offset=offset, **where)
    shown = found[:PAGE]
    total = repo.count_runs(cap=TOTAL_CAP, **where)
    context: dict[str, Any] = dict(now=now, runs=shown, tabs=RUN_TABS, f=chosen, triggers=TRIGGER_LABELS,
                                   paging=Paging(offset, len(shown), len(found) > PAGE, total),
                                   workflows=sorted(wf.name for wf in repo.workflows),
                                   busy=any(view.is_active(r.status) for r in shown),
                                   poll=query(fragment="table", offset=offset or None, **chosen.params()))
    if part == "table":
        return fragment(request, "_runs_table.html", **context)
    return page(request, "runs.html", **context)


@router.get("/runs/{run_id}", response_class=HTMLResponse)
def run(request: Request, run_id: str, part: Annotated[str | None, Query(alias="fragment")] = None,
        offset: Annotated[int, Query(ge=0)] = 0, attempt: Annotated[int, Query(ge=0)] = 0) -> Response:
    """A run and its logs. While it is active the page polls ``?fragment=follow&offset=N``: the lines
    logged since (appended) and the run's head (swapped out of band)."""
    repo = repo_of(request)
    found = repo.get_run(run_id)
    if found is None:
        return not_found(request, f"run {run_id!r} not found")
    lines = repo.run_logs(run_id)
    context = run_context(repo, found)
    if part == "follow":
        return fragment(request, "_run_follow.html", lines=lines[offset:], offset=len(lines), attempt=attempt,
                        **context)
    last_attempt = lines[-1]["attempt"] if lines else 0
    return page(request, "run.html", lines=lines, offset=len(lines), attempt=last_attempt, **context)


def run_context(repo: CodeRepository, found: Run) -> dict[str, Any]:
    """What a run's head shows: its trigger, its partition window, whether it can run again, and for a run an
    upstream failure kept from running, the upstream run that blocked it."""
    wf = repo.workflow_registry.get(found.workflow)
    again = wf is not None and found.is_finished and len(found.partition_keys) <= 1
    return dict(run=found, now=utcnow(), active=view.is_active(found.status), trigger=trigger_of(found),
                schedule_id=found.tags.get(SCHEDULE_TAG), span_window=partition_window(wf, found.partition_keys),
                again=again, rerun_of=found.tags.get(RERUN_OF_TAG), launch_key=uuid.uuid4().hex,
                blocker=blocker(repo, found))


@dataclass(frozen=True)
class Blocker:
    """The upstream key whose failure kept a run from running, and that key's run in the same backfill."""

    workflow: str
    key: str | None
    #: what happened to it: ``failed``, ``was canceled``, ``did not run either (its own upstream failed)``
    why: str
    run: Run | None


def blocker(repo: CodeRepository, found: Run) -> Blocker | None:
    """For an ``upstream_failed`` run: what its error names (``upstream <workflow> <key> failed``, as the engine
    writes it: ``engine.readiness``), read against the workflows it depends on, and that key's run."""
    if found.status != UPSTREAM_FAILED or not found.error or found.backfill_id is None:
        return None
    graph = repo.workflow_registry.graph
    candidates = {e.upstream for e in graph.upstream_edges(found.workflow)} | {found.workflow}
    for name in sorted(candidates, key=len, reverse=True):  # the longest name that fits: names may hold spaces
        head = f"upstream {name}"
        if not found.error.startswith(head):
            continue
        rest = found.error[len(head):]
        for status, why in sorted(BLOCKED_BECAUSE.items(), key=lambda sw: -len(sw[1])):  # "… upstream failed" first
            words = "did not run either (its own upstream failed)" if status == UPSTREAM_FAILED else why
            if rest == f" {why}":
                runs = repo.list_runs(name, backfill_id=found.backfill_id, limit=1)
                return Blocker(name, None, words, runs[0] if runs else None)
            if rest.startswith(" ") and rest.endswith(f" {why}"):
                key = rest[1: -len(why) - 1]
                runs = repo.list_runs(name, backfill_id=found.backfill_id, partition_key=key, limit=1)
                return Blocker(name, key, words, runs[0] if runs else None)
    return None


# -- a partition ----------------------------------------------------------------------------------------
@router.get("/partitions", response_class=HTMLResponse)
def partition(request: Request, workflow: str = "", key: str = "", offset: Offset = 0) -> Response:
    """A partition's page, or — for text that is not one of the workflow's keys — the keys containing it."""
    repo = repo_of(request)
    wf = repo.workflow_registry.get(workflow)
    if wf is None:
        return not_found(request, f"workflow {workflow!r} not found")
    key = key.strip()
    if not key:
        return RedirectResponse(workflow_url(wf.name), status_code=303)
    if len(key) > 10_000:
        return bad_request(request, "Partition: longer than 10,000 characters")
    keys = keys_of(repo, wf) if wf.partitions is not None else None
    position = keys.index(key) if keys is not None and key in keys else None
    history = repo.list_runs(wf, partition_key=key, limit=PAGE + 1, offset=offset)
    if position is None and not history:
        return page(request, "search.html", wf=wf, key=key, matches=search(keys, key) if keys is not None else [],
                    now=utcnow())
    total = repo.count_runs(wf, partition_key=key, cap=TOTAL_CAP)
    newest = history if not offset else repo.list_runs(wf, partition_key=key, limit=1)
    latest = newest[0] if newest else None
    state = repo.partition_status(wf, from_key=key, to_key=key)[key] if position is not None else None
    lines = repo.run_logs(latest.run_id)[-LOG_TAIL:] if latest is not None else []
    before = keys[position - 1] if keys is not None and position else None
    after = keys[position + 1] if keys is not None and position is not None and position + 1 < len(keys) else None
    again = param_form(wf).shown(latest.params) if latest is not None else {}
    return page(request, "partition.html", wf=wf, key=key, state=state, known=position is not None,
                span_window=partition_window(wf, [key]), latest=latest, lines=lines, runs=history[:PAGE],
                paging=Paging(offset, len(history[:PAGE]), len(history) > PAGE, total), before=before, after=after,
                again=again, launch_key=uuid.uuid4().hex, now=utcnow())
