"""Kestra-compatible trigger backfills: ``PUT /api/v1/triggers`` and ``/api/v1/triggers/backfill/...``.

Kestra backfills a flow's schedule trigger by putting a ``backfill`` object on the trigger. Here the same
calls, in the same JSON, create and control a schedule backfill (``repo.backfill_schedule``) of a YAML flow
or of a Python workflow with schedules. A flow is found by ``flowId`` (the workflow's name) and
``namespace`` (a YAML flow's namespace; a Python workflow's module, or ``default``); ``triggerId`` is the
schedule's id. The answer is Kestra's trigger object plus ``backfill_id``.

A trigger has at most one backfill in flight (as in Kestra): putting another while one is active is a
409 — the rule is the engine's, so a backfill of the trigger made through any other door (the Python API,
the CLI, the web UI, ``POST /api/v1/backfills``) counts too. Pause, unpause and delete act on that one;
delete cancels what has not run yet. ``backfill.max_concurrency`` (an anachron addition) sets how many of
its runs may run at once (default 4, as ``POST /api/v1/backfills``). Errors name the body's fields
(``backfill.inputs: ...``).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from ..definitions import Workflow
from ..engine.led import StoredRequest
from ..models import ACTIVE_BACKFILL_STATUSES, TRIGGER_TAG, BackfillStatus, ConflictError
from ..repository import CodeRepository
from ..requests import Tag
from .auth import caller
from .errors import RESPONSES, ApiError, storable_body
from .routes import repo_of
from .schemas import namespace_of


class TriggerRef(BaseModel):
    """Which trigger: Kestra's ``flowId``, ``namespace`` and ``triggerId``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    flowId: str = Field(min_length=1)  # noqa: N815 - Kestra's JSON names
    namespace: str = Field(min_length=1)
    triggerId: str = Field(min_length=1)  # noqa: N815


class BackfillSpec(BaseModel):
    """Kestra's ``backfill`` object: ticks from ``start`` to ``end`` (``null``: now)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    # Text only: a JSON number is not a time (pydantic would read 12 as 1970-01-01T00:00:12Z).
    start: str = Field(description="ISO-8601 date or datetime (a date or a time without offset: the schedule's "
                                   "timezone)")
    end: str | None = Field(None, description="ISO-8601 date or datetime; null: now")
    inputs: dict[str, Any] | None = None
    labels: list[Tag] | None = None
    max_concurrency: int | None = Field(None, description="Runs of the backfill in flight at once (an anachron "
                                                          "addition; default 4)")


class TriggerBackfill(TriggerRef):
    backfill: BackfillSpec


class BackfillState(BaseModel):
    start: str | None
    end: str | None
    currentDate: datetime | None = Field(description="Not tracked: always null")  # noqa: N815
    previousNextExecutionDate: datetime | None = None  # noqa: N815
    inputs: dict[str, Any]
    labels: list[Tag]
    paused: bool


class Trigger(BaseModel):
    """Kestra's trigger object, with the anachron backfill behind it."""

    namespace: str
    flowId: str  # noqa: N815
    triggerId: str  # noqa: N815
    date: datetime | None = Field(description="The schedule's last evaluated tick")
    nextExecutionDate: datetime | None  # noqa: N815
    disabled: bool = Field(description="The schedule is paused")
    backfill: BackfillState | None
    backfill_id: str | None
    backfill_status: str | None


router = APIRouter(prefix="/api/v1/triggers", tags=["triggers (Kestra-compatible)"],
                   dependencies=[Depends(storable_body)], responses=RESPONSES)


@router.put("", response_model=Trigger)
def backfill_trigger(body: TriggerBackfill, request: Request) -> Trigger:
    """Backfill a schedule trigger over ``[start, end]``, as Kestra does."""
    repo = repo_of(request)
    wf = _flow(repo, body)
    spec = body.backfill
    labels = [(t.key, t.value) for t in spec.labels or ()]
    options: dict[str, Any] = {} if spec.max_concurrency is None else {"max_concurrency": spec.max_concurrency}
    try:  # a second active backfill of the trigger is the engine's ConflictError: a 409
        result = repo.backfill_schedule(wf, body.triggerId, start=spec.start, end=spec.end, inputs=spec.inputs,
                                        labels=labels, block=False, created_by=caller(request), **options)
    except ConflictError as exc:
        raise ApiError(409, f"trigger {body.triggerId!r} of flow {body.flowId!r}: {_body_fields(str(exc))}; pause, "
                            "unpause or delete it first") from None
    except ValueError as exc:
        raise ApiError(400, _body_fields(str(exc))) from None
    assert result.backfill_id is not None
    return _trigger(repo, wf, body.triggerId, repo.get_backfill(result.backfill_id, include_run_ids=False))


@router.put("/backfill/pause", response_model=Trigger)
def pause(body: TriggerRef, request: Request) -> Trigger:
    repo = repo_of(request)
    wf = _flow(repo, body)
    status = _require_active(repo, wf, body.triggerId)
    return _trigger(repo, wf, body.triggerId, repo.pause_backfill(status.backfill_id))


@router.put("/backfill/unpause", response_model=Trigger)
def unpause(body: TriggerRef, request: Request) -> Trigger:
    repo = repo_of(request)
    wf = _flow(repo, body)
    status = _require_active(repo, wf, body.triggerId)
    return _trigger(repo, wf, body.triggerId, repo.resume_backfill(status.backfill_id))


@router.post("/backfill/delete", response_model=Trigger)
def delete(body: TriggerRef, request: Request) -> Trigger:
    """Remove the trigger's backfill: what has not run is canceled (runs in flight are stopped)."""
    repo = repo_of(request)
    wf = _flow(repo, body)
    status = _require_active(repo, wf, body.triggerId)
    repo.cancel_backfill(status.backfill_id)
    ended = repo.get_backfill(status.backfill_id, include_run_ids=False)
    trigger = _trigger(repo, wf, body.triggerId, None)
    return trigger.model_copy(update={"backfill_id": status.backfill_id,
                                      "backfill_status": ended.status if ended else None})


#: the engine's request fields → where they are in Kestra's body
_BODY_FIELDS = {"params": "backfill.inputs", "inputs": "backfill.inputs", "tags": "backfill.labels",
                "labels": "backfill.labels", "start": "backfill.start", "end": "backfill.end",
                "max_concurrency": "backfill.max_concurrency", "trigger_id": "triggerId"}


def _body_fields(message: str) -> str:
    """An engine message naming a request field (``params: unknown parameter 'x'``) → naming the body's field
    (``backfill.inputs: unknown parameter 'x'``)."""
    head, sep, rest = message.partition(":")
    return f"{_BODY_FIELDS[head]}:{rest}" if sep and head in _BODY_FIELDS else message


def _flow(repo: CodeRepository, ref: TriggerRef) -> Workflow:
    wf = repo.workflow_registry.get(ref.flowId)
    if wf is None or namespace_of(wf) != ref.namespace:
        raise ApiError(404, f"flow {ref.namespace}.{ref.flowId} not found")
    if not any(s.id == ref.triggerId for s in wf.schedules):
        raise ApiError(404, f"flow {ref.namespace}.{ref.flowId} has no schedule trigger {ref.triggerId!r}")
    return wf


def _active(repo: CodeRepository, wf: Workflow, trigger_id: str) -> BackfillStatus | None:
    for status in repo.list_backfills(list(ACTIVE_BACKFILL_STATUSES), wf.name):
        if dict(status.tags).get(TRIGGER_TAG) == trigger_id:
            return status
    return None


def _require_active(repo: CodeRepository, wf: Workflow, trigger_id: str) -> BackfillStatus:
    status = _active(repo, wf, trigger_id)
    if status is None:
        raise ApiError(404, f"trigger {trigger_id!r} of flow {wf.name!r} has no backfill in progress")
    return status


def _trigger(repo: CodeRepository, wf: Workflow, trigger_id: str, status: BackfillStatus | None) -> Trigger:
    schedule = next(s for s in repo.list_schedules(wf) if s.schedule_id == trigger_id)
    state = None
    if status is not None:
        backfill_id = status.backfill_id
        record = repo.storage.run(lambda s: s.get_backfill(backfill_id), write=False)
        assert record is not None
        stored = StoredRequest.from_json(record.request)
        selection = stored.plan.selection
        state = BackfillState(start=selection.get("start"), end=selection.get("end"), currentDate=None,
                              inputs=stored.decoded_params(),
                              labels=[Tag(key=k, value=v) for k, v in stored.tags.items() if k != TRIGGER_TAG],
                              paused=status.status == "paused")
    return Trigger(namespace=namespace_of(wf), flowId=wf.name, triggerId=trigger_id, date=schedule.last_tick,
                   nextExecutionDate=schedule.next_tick, disabled=schedule.paused, backfill=state,
                   backfill_id=status.backfill_id if status else None,
                   backfill_status=status.status if status else None)
