"""``/api/v1``: workflows, partitions, backfills and runs (SPEC §6).

Each route is a thin door onto ``CodeRepository``: the request models are the Python API's own
(``BackfillRequest``, ``RunRequest``), the answers its records. The server never waits for a backfill or a
run: it stores the request and its coordinator (with the daemon's loop) leads the work.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import APIRouter, Depends, Query, Request, Response

from .. import __version__
from ..clock import to_datetime
from ..graph import Graph
from ..models import BACKFILL_STATUSES, RUN_STATUSES, BackfillStatus, Run, ScheduleStatus
from ..repository import CodeRepository
from ..requests import BackfillRequest, RunRequest
from . import schemas
from .auth import caller
from .errors import RESPONSES, ApiError, storable_body

Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many (newest first)")]
Offset = Annotated[int, Query(ge=0, le=10_000_000, description="Skip this many (paging)")]
MaxCells = Annotated[int, Query(ge=1, le=100_000, description="At most this many cells")]
StatusFilter = Annotated[list[str] | None, Query(description="Only these statuses (repeat the parameter)")]


def repo_of(request: Request) -> CodeRepository:
    repo: CodeRepository = request.app.state.repo
    return repo


def _statuses(given: list[str] | None, allowed: tuple[str, ...]) -> list[str]:
    for status in given or ():
        if status not in allowed:
            raise ApiError(400, f"status: expected one of {', '.join(allowed)}, got {status!r}")
    return list(given or ())


def _workflow(repo: CodeRepository, name: str) -> Any:
    if name not in repo.workflow_registry:
        raise ApiError(404, f"workflow {name!r} not found")
    return repo.workflow_registry[name]


T = TypeVar("T")


def _found(value: T | None, kind: str, ident: str) -> T:
    if value is None:
        raise ApiError(404, f"{kind} {ident!r} not found")
    return value


def _run_id(run_id: str, request: Request) -> str:
    """A run id in a path: the full id, or a unique prefix or suffix of one, as the CLI takes them (404 for
    none, 400 naming the candidates when several match)."""
    return repo_of(request).resolve_run_id(run_id)


def _backfill_id(backfill_id: str, request: Request) -> str:
    return repo_of(request).resolve_backfill_id(backfill_id)


RunId = Annotated[str, Depends(_run_id)]
BackfillId = Annotated[str, Depends(_backfill_id)]

router = APIRouter(prefix="/api/v1", dependencies=[Depends(storable_body)], responses=RESPONSES)


@router.get("/health", response_model=schemas.Health, tags=["server"])
def health() -> schemas.Health:
    return schemas.Health(status="ok", version=__version__)


# -- workflows and partitions -------------------------------------------------------------------------
@router.get("/workflows", response_model=list[schemas.WorkflowInfo], tags=["workflows"])
def list_workflows(request: Request) -> list[schemas.WorkflowInfo]:
    repo = repo_of(request)
    schedules = repo.list_schedules()
    return [schemas.WorkflowInfo.of(wf, schedules) for wf in repo.workflows]


@router.get("/graph", response_model=Graph, tags=["workflows"])
def graph(request: Request) -> Graph:
    """The data graph (SPEC §8): the workflows as nodes (upstreams first, with their partitions) and their
    dependencies as edges (with their partition mappings, in the JSON form the Python mappings take)."""
    return repo_of(request).graph()


@router.get("/workflows/{name}", response_model=schemas.WorkflowInfo, tags=["workflows"])
def get_workflow(name: str, request: Request) -> schemas.WorkflowInfo:
    repo = repo_of(request)
    wf = _workflow(repo, name)
    return schemas.WorkflowInfo.of(wf, repo.list_schedules(wf))


@router.get("/workflows/{name}/partitions", response_model=schemas.PartitionPage, tags=["workflows"])
def workflow_partitions(name: str, request: Request,
                        from_key: Annotated[str | None, Query(description="First key of the page")] = None,
                        to_key: Annotated[str | None, Query(description="Last key (inclusive)")] = None,
                        limit: Annotated[int, Query(ge=1, le=10_000)] = 1000) -> schemas.PartitionPage:
    """One page of partitions with the status of each key's latest run (``missing`` when none)."""
    repo = repo_of(request)
    wf = _workflow(repo, name)
    page = repo.partition_status(wf, from_key=from_key, to_key=to_key, limit=limit + 1)
    items = list(page.items())
    next_key = items[limit][0] if len(items) > limit else None
    return schemas.PartitionPage(workflow=wf.name, next_key=next_key,
                                 partitions=[schemas.PartitionState(key=k, status=v) for k, v in items[:limit]])


@router.get("/workflows/{name}/partitions/grid", response_model=schemas.PartitionGridOut, tags=["workflows"])
def workflow_partition_grid(name: str, request: Request, max_cells: MaxCells = 2000) -> schemas.PartitionGridOut:
    """The aggregated form for huge workflows: every key in at most ``max_cells`` cells of status counts.
    Costs what ``partition_status`` of the whole workflow costs (the latest run of every key with runs)."""
    repo = repo_of(request)
    return schemas.PartitionGridOut.of(repo.partition_grid(_workflow(repo, name), max_cells))


@router.get("/schedules", response_model=list[ScheduleStatus], tags=["schedules"])
def list_schedules(request: Request, workflow: str | None = None) -> list[ScheduleStatus]:
    repo = repo_of(request)
    return repo.list_schedules(_workflow(repo, workflow) if workflow is not None else None)


@router.post("/workflows/{name}/schedules/{schedule_id}/pause", response_model=ScheduleStatus, tags=["schedules"])
def pause_schedule(name: str, schedule_id: str, request: Request) -> ScheduleStatus:
    repo = repo_of(request)
    return repo.pause_schedule(_workflow(repo, name), _schedule(repo, name, schedule_id))


@router.post("/workflows/{name}/schedules/{schedule_id}/resume", response_model=ScheduleStatus, tags=["schedules"])
def resume_schedule(name: str, schedule_id: str, request: Request) -> ScheduleStatus:
    repo = repo_of(request)
    return repo.resume_schedule(_workflow(repo, name), _schedule(repo, name, schedule_id))


def _schedule(repo: CodeRepository, name: str, schedule_id: str) -> str:
    if not any(s.id == schedule_id for s in _workflow(repo, name).schedules):
        raise ApiError(404, f"workflow {name!r} has no schedule {schedule_id!r}")
    return schedule_id


# -- backfills ----------------------------------------------------------------------------------------
@router.post("/backfills", response_model=schemas.BackfillCreated, status_code=201, tags=["backfills"],
             responses={200: {"description": "A dry run: what would run, nothing stored"}})
def create_backfill(body: BackfillRequest, request: Request, response: Response) -> Any:
    """Create a backfill (the body mirrors ``repo.backfill``), or with ``"dry_run": true`` see exactly what
    would run. The answer lists at most 1,000 keys, run groups and run ids."""
    repo = repo_of(request)
    result = repo.create_backfill(body, block=False, coordinate=True, created_by=caller(request))
    if result.is_dry_run:
        response.status_code = 200
    return schemas.backfill_created(result)


@router.get("/backfills", response_model=list[schemas.BackfillStatusOut],  # type: ignore[valid-type]
            tags=["backfills"])
def list_backfills(request: Request, status: StatusFilter = None, workflow: str | None = None,
                   limit: Limit = 100, offset: Offset = 0) -> list[BackfillStatus]:
    """Backfills, newest first (``run_ids`` left empty: ask one backfill for its own)."""
    return repo_of(request).list_backfills(_statuses(status, BACKFILL_STATUSES), workflow, limit=limit,
                                           offset=offset)


@router.get("/backfills/{backfill_id}", response_model=schemas.BackfillStatusOut, tags=["backfills"])
def get_backfill(backfill_id: str, request: Request,
                 include_run_ids: Annotated[bool, Query(description="List every run id (slow for big ones)")]
                 = False) -> BackfillStatus:
    repo = repo_of(request)  # the full id first: this is what pollers ask, many times a second
    found = repo.get_backfill(backfill_id, include_run_ids=include_run_ids)
    if found is None:
        found = repo.get_backfill(repo.resolve_backfill_id(backfill_id), include_run_ids=include_run_ids)
    return _found(found, "backfill", backfill_id)


@router.get("/backfills/{backfill_id}/grid", response_model=schemas.BackfillGridOut, tags=["backfills"])
def backfill_grid(backfill_id: BackfillId, request: Request, max_cells: MaxCells = 2000) -> schemas.BackfillGridOut:
    """The backfill's runs in plan order as at most ``max_cells`` cells: one per run while they fit, else
    counts per status (fast for a million runs: only the runs that did not succeed are read)."""
    return schemas.BackfillGridOut.of(repo_of(request).backfill_grid(backfill_id, max_cells))


@router.post("/backfills/{backfill_id}/pause", response_model=schemas.BackfillStatusOut, tags=["backfills"])
def pause_backfill(backfill_id: BackfillId, request: Request) -> BackfillStatus:
    return repo_of(request).pause_backfill(backfill_id)


@router.post("/backfills/{backfill_id}/resume", response_model=schemas.BackfillStatusOut, tags=["backfills"])
def resume_backfill(backfill_id: BackfillId, request: Request) -> BackfillStatus:
    return repo_of(request).resume_backfill(backfill_id)


@router.post("/backfills/{backfill_id}/cancel", response_model=schemas.BackfillStatusOut, tags=["backfills"])
def cancel_backfill(backfill_id: BackfillId, request: Request) -> BackfillStatus:
    """Cancel: queued runs at once, running ones stopped by the process running them. Cancelling a
    finished backfill changes nothing; the answer is its status either way."""
    repo = repo_of(request)
    repo.cancel_backfill(backfill_id)  # NotFoundError (404) for an unknown id
    return _found(repo.get_backfill(backfill_id, include_run_ids=False), "backfill", backfill_id)


@router.post("/backfills/{backfill_id}/rerun", response_model=schemas.BackfillCreated, status_code=201,
             tags=["backfills"])
def rerun_backfill(backfill_id: BackfillId, request: Request, response: Response,
                   dry_run: Annotated[bool, Query()] = False) -> Any:
    """A new backfill of the failed and canceled partitions only."""
    result = repo_of(request).rerun_backfill(backfill_id, block=False, dry_run=dry_run, created_by=caller(request))
    if result.is_dry_run:
        response.status_code = 200
    return schemas.backfill_created(result)


# -- runs ---------------------------------------------------------------------------------------------
@router.post("/runs", response_model=Run, status_code=201, tags=["runs"])
def create_run(body: RunRequest, request: Request) -> Run:
    """Submit one run; the same ``idempotency_key`` for the same workflow answers the same run. A future
    ``scheduled_time`` defers it: queued until then (the server starts it then), at that logical time."""
    repo = repo_of(request)
    wf = repo.workflow(body.workflow)
    return repo.run(wf, body.partition_key, body.params, body.tag_dict(), body.run_name,
                    scheduled_time=to_datetime(body.scheduled_time, "scheduled_time") if body.scheduled_time else None,
                    idempotency_key=body.idempotency_key, block=False)


@router.get("/runs", response_model=list[Run], tags=["runs"])
def list_runs(request: Request, workflow: str | None = None, status: StatusFilter = None,
              backfill_id: str | None = None,
              tag: Annotated[list[str] | None, Query(description="key=value (repeat for several)")] = None,
              partition_key: Annotated[str | None, Query(description="Runs that covered this partition key")]
              = None, limit: Limit = 100, offset: Offset = 0) -> list[Run]:
    tags = {}
    for item in tag or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ApiError(400, f"tag: expected key=value, got {item!r}")
        tags[key] = value
    return repo_of(request).list_runs(workflow, _statuses(status, RUN_STATUSES), backfill_id, tags, limit=limit,
                                      offset=offset, partition_key=partition_key)


@router.get("/runs/{run_id}", response_model=Run, tags=["runs"])
def get_run(run_id: str, request: Request) -> Run:
    repo = repo_of(request)  # the full id first (one read), else a short one
    found = repo.get_run(run_id)
    return _found(found if found is not None else repo.get_run(repo.resolve_run_id(run_id)), "run", run_id)


@router.get("/runs/{run_id}/logs", response_model=schemas.RunLogs, tags=["runs"])
def run_logs(run_id: RunId, request: Request,
             offset: Annotated[int, Query(ge=0, description="Skip the first lines (follow a run)")] = 0
             ) -> schemas.RunLogs:
    """A run's log lines, oldest first (logs are stored when an attempt ends)."""
    repo = repo_of(request)
    run = _found(repo.get_run(run_id), "run", run_id)
    lines = repo.run_logs(run_id)
    return schemas.RunLogs(run_id=run_id, status=run.status, next_offset=max(offset, len(lines)),
                           lines=[schemas.LogLine(**line) for line in lines[offset:]])


@router.post("/runs/{run_id}/cancel", response_model=schemas.Canceled, tags=["runs"])
def cancel_run(run_id: RunId, request: Request) -> schemas.Canceled:
    return schemas.Canceled(canceled=repo_of(request).cancel_run(run_id))  # NotFoundError (404) if unknown
