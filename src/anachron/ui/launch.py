"""The forms that start work: a backfill (previewed as a dry run, then launched), a schedule's ticks (the
same, Kestra's backfill panel: start, end, inputs, labels), and "Run now" for one run.

A refused form answers its message in the form's words (``forms.in_form_words``), where the form is; a
plain form post without JavaScript gets the workflow's page again with the form as typed.
"""

from __future__ import annotations

import itertools
import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from ..api.auth import caller
from ..definitions import Workflow
from ..estimate import Estimate, describe
from ..models import BackfillResult, ConflictError
from ..repository import CodeRepository
from .actions import read_form, redirect
from .fields import ParamForm, param_form
from .forms import BackfillForm, RunForm, in_form_words, tags
from .pages import not_found, repo_of
from .render import fragment, is_htmx, path_part
from .workflow_pages import grid_context, workflow_page

router = APIRouter(include_in_schema=False)

#: Run groups a preview lists.
PREVIEW_GROUPS = 8


@router.post("/backfills/preview")
async def preview(request: Request) -> Response:
    form = BackfillForm.of(await read_form(request))
    return await run_in_threadpool(_submit, request, form, True)


@router.post("/backfills/launch")
async def launch(request: Request) -> Response:
    form = BackfillForm.of(await read_form(request))
    return await run_in_threadpool(_submit, request, form, False)


def submit(repo: CodeRepository, form: BackfillForm, params: ParamForm, *, dry_run: bool,
           created_by: str | None = None) -> BackfillResult:
    """The form's backfill (a schedule's ticks when it names a schedule), stored for the server to lead, or
    only planned (``dry_run``)."""
    if form.schedule is not None:
        name = form.get("workflow")
        return repo.backfill_schedule(name, form.schedule, block=False, dry_run=dry_run, created_by=created_by,
                                      **form.schedule_options(params))
    return repo.create_backfill(form.request(params, dry_run=dry_run), block=False, created_by=created_by)


def workflow_named(request: Request, name: str) -> tuple[CodeRepository, Workflow] | Response:
    """The repository and the workflow a form names, or the page saying it is not found."""
    repo = repo_of(request)
    if name not in repo.workflow_registry:
        return not_found(request, f"workflow {name!r} not found")
    return repo, repo.workflow_registry[name]


def _submit(request: Request, form: BackfillForm, dry_run: bool) -> Response:
    found = workflow_named(request, form.get("workflow"))
    if isinstance(found, Response):
        return found
    repo, wf = found
    try:
        result = submit(repo, form, param_form(wf), dry_run=dry_run, created_by=caller(request))
    except (ValueError, LookupError) as exc:  # the engine's message names the field: shown in the form's words
        context: dict[str, Any] = dict(error=in_form_words(str(exc)), form=form)
        status = 409 if isinstance(exc, ConflictError) else 422
    else:
        if not dry_run:
            assert result.backfill_id is not None
            return redirect(request, f"/backfills/{path_part(result.backfill_id)}")
        context, status = preview_context(result, form), 200
    if is_htmx(request):
        return fragment(request, "_preview.html", status, pv=context)
    return workflow_page(request, repo, wf, grid_context(repo, wf, None, None), form=form, preview=context,
                         status=status)


def preview_context(result: BackfillResult, form: BackfillForm) -> dict[str, Any]:
    """What a dry run shows: counts, the first and last keys, the first run groups and the estimate; and
    the form's fields (with a fresh launch key) for the Launch button to send back unchanged."""
    keys, plan = result.partition_keys, result.plan
    groups = [list(group) for group in itertools.islice(plan, PREVIEW_GROUPS)]
    last_group = list(plan[len(plan) - 1]) if len(plan) > PREVIEW_GROUPS else None
    estimate = result.estimate
    echo = dict(form.echo, launch_key=uuid.uuid4().hex)
    return dict(error=None, result=result, first_key=keys[0] if len(keys) else None,
                last_key=keys[len(keys) - 1] if len(keys) else None, groups=groups, last_group=last_group,
                estimate=estimate, estimate_text=estimate_note(estimate) if estimate is not None else None,
                echo=echo, form=form)


def estimate_note(estimate: Estimate) -> str:
    """What the estimate's figure assumes (the figure itself is shown apart): ``at max_concurrency 4 ·
    median run 350 ms over the last 200 runs``; without history, why there is no figure."""
    if estimate.seconds is None or estimate.runs == 0:
        return describe(estimate)
    at = f"at max_concurrency {estimate.max_concurrency}"
    if estimate.limited_by is not None:
        at = f"{estimate.concurrency} runs at once ({estimate.limited_by}; max_concurrency {estimate.max_concurrency})"
    return f"{at} · {estimate.basis}"


# -- run now ----------------------------------------------------------------------------------------------
@router.post("/runs/launch")
async def run_now(request: Request) -> Response:
    form = RunForm.of(await read_form(request))
    return await run_in_threadpool(_run_now, request, form)


def _run_now(request: Request, form: RunForm) -> Response:
    """One run of the workflow (of one partition, for a partitioned one), led by the server; then its page."""
    found = workflow_named(request, form.get("workflow"))
    if isinstance(found, Response):
        return found
    repo, wf = found
    try:
        if wf.partitions is not None and not form.get("partition_key"):
            raise ValueError(f"Partition: workflow {wf.name!r} is partitioned: give the key of the partition to run")
        params = param_form(wf).values(form.values)
        labels = tags(form.get("tags"))
        run = repo.run(wf, form.get("partition_key") or None, params, labels, idempotency_key=form.idempotency_key,
                       block=False)
    except (ValueError, LookupError) as exc:
        error = in_form_words(str(exc))
        if is_htmx(request):
            return fragment(request, "_alert.html", 422, kind="error", message=error)
        return workflow_page(request, repo, wf, grid_context(repo, wf, None, None), run_form=form, run_error=error,
                             status=422)
    return redirect(request, f"/runs/{path_part(run.run_id)}")
