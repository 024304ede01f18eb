"""The UI's actions (POST): backfill pause / resume / cancel / rerun, run cancel, schedule pause / resume,
a backfill form's preview and launch, logging in and out.

Each calls the repository and answers the part of the page that changed (an htmx request), or redirects
to the page (a plain form post, without JavaScript). A refused action shows the engine's message, which
names the field, where the action was asked — never a 500. Cross-site POSTs never get here: the server's
guard (``api.auth``) refuses them first.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from ..api.auth import COOKIE, caller, token_matches
from ..estimate import Estimate, describe
from ..models import BackfillResult, ConflictError
from ..repository import CodeRepository
from .forms import BackfillForm, FormTooLarge, parse_form
from .pages import backfill_response, not_found, repo_of, safe_next, utcnow, workflow_context, workflow_page
from .render import html, is_htmx, page, path_part, workflow_url

router = APIRouter(include_in_schema=False)

#: Run groups a preview lists.
PREVIEW_GROUPS = 8
#: How long the login cookie lasts (seconds).
COOKIE_AGE = 30 * 86400
#: The cookie's SameSite, spelled as RFC 6265bis does (Starlette writes it as given; its type says lowercase).
STRICT: Any = "Strict"
#: A wrong token waits this long before its answer (slows guessing down; the token is compared in constant time).
WRONG_TOKEN_PAUSE = 0.3

MESSAGES = {
    "pause": "Paused: runs in flight finish and no new run starts until you resume.",
    "resume": "Resumed: new runs start again where the backfill stopped.",
    "cancel": "Canceled: queued runs are canceled and running ones are being stopped.",
}


async def read_form(request: Request) -> dict[str, str]:
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > 1_000_000:
            raise FormTooLarge("form: larger than 1,000,000 bytes")
        chunks.append(chunk)
    return parse_form(b"".join(chunks))


def redirect(request: Request, url: str) -> Response:
    """Go to ``url``: htmx follows ``HX-Redirect``; a plain form post follows a 303."""
    if is_htmx(request):
        return Response(status_code=200, headers={"HX-Redirect": url})
    return RedirectResponse(url, status_code=303)


# -- backfills and runs -----------------------------------------------------------------------------------
@router.post("/backfills/{backfill_id}/{action}")
def backfill_action(request: Request, backfill_id: str, action: str) -> Response:
    repo = repo_of(request)
    if action not in ("pause", "resume", "cancel", "rerun"):
        return not_found(request, f"no such action: {action!r}")
    if repo.get_backfill(backfill_id, include_run_ids=False) is None:
        return not_found(request, f"backfill {backfill_id!r} not found")
    flash: tuple[str, str]
    status = 200
    try:
        if action == "pause":
            repo.pause_backfill(backfill_id)
        elif action == "resume":
            repo.resume_backfill(backfill_id)
        elif action == "cancel":
            repo.cancel_backfill(backfill_id)
        else:
            result = repo.rerun_backfill(backfill_id, block=False, created_by=caller(request))
            if result.backfill_id is not None:
                return redirect(request, f"/backfills/{path_part(result.backfill_id)}")
        flash = ("ok", MESSAGES.get(action, "Done."))
    except ValueError as exc:  # e.g. pausing a backfill that has just finished
        flash, status = ("error", str(exc)), 409
    if not is_htmx(request):
        return RedirectResponse(f"/backfills/{path_part(backfill_id)}", status_code=303)
    st = repo.get_backfill(backfill_id, include_run_ids=False)
    assert st is not None  # backfills are never deleted
    return backfill_response(request, repo, st, "live", None, flash, status)


@router.post("/runs/{run_id}/cancel")
def cancel_run(request: Request, run_id: str) -> Response:
    repo = repo_of(request)
    if repo.get_run(run_id) is None:
        return not_found(request, f"run {run_id!r} not found")
    repo.cancel_run(run_id)
    return redirect(request, f"/runs/{path_part(run_id)}")


# -- schedules --------------------------------------------------------------------------------------------
@router.post("/schedules/{action}")
async def schedule_action(request: Request, action: str) -> Response:
    form = await read_form(request)
    return await run_in_threadpool(_schedule_action, request, action, form.get("workflow", ""),
                                   form.get("schedule", ""))


def _schedule_action(request: Request, action: str, name: str, schedule_id: str) -> Response:
    repo = repo_of(request)
    if action not in ("pause", "resume"):
        return not_found(request, f"no such action: {action!r}")
    if name not in repo.workflow_registry:
        return not_found(request, f"workflow {name!r} not found")
    wf = repo.workflow_registry[name]
    if not any(s.id == schedule_id for s in wf.schedules):
        return not_found(request, f"workflow {name!r} has no schedule {schedule_id!r}")
    if action == "pause":
        repo.pause_schedule(wf, schedule_id)
    else:
        repo.resume_schedule(wf, schedule_id)
    if not is_htmx(request):
        return RedirectResponse(workflow_url(name), status_code=303)
    return html("_schedules.html", wf=wf, schedules=repo.list_schedules(wf), now=utcnow(), form=None)


# -- the backfill form ------------------------------------------------------------------------------------
@router.post("/backfills/preview")
async def preview(request: Request) -> Response:
    form = BackfillForm.of(await read_form(request))
    return await run_in_threadpool(_submit, request, form, True)


@router.post("/backfills/launch")
async def launch(request: Request) -> Response:
    form = BackfillForm.of(await read_form(request))
    return await run_in_threadpool(_submit, request, form, False)


def submit(repo: CodeRepository, form: BackfillForm, *, dry_run: bool, created_by: str | None = None
           ) -> BackfillResult:
    """The form's backfill (a schedule's ticks when it names a schedule), stored for the server to lead, or
    only planned (``dry_run``)."""
    if form.schedule is not None:
        name = form.get("workflow")
        return repo.backfill_schedule(name, form.schedule, block=False, dry_run=dry_run, created_by=created_by,
                                      **form.schedule_options())
    return repo.create_backfill(form.request(dry_run=dry_run), block=False, created_by=created_by)


def _submit(request: Request, form: BackfillForm, dry_run: bool) -> Response:
    repo = repo_of(request)
    name = form.get("workflow")
    if name not in repo.workflow_registry:
        return not_found(request, f"workflow {name!r} not found")
    try:
        result = submit(repo, form, dry_run=dry_run, created_by=caller(request))
    except (ValueError, LookupError) as exc:  # the engine's message names the field
        context: dict[str, Any] = dict(error=str(exc), form=form)
        status = 409 if isinstance(exc, ConflictError) else 422
    else:
        if not dry_run:
            assert result.backfill_id is not None
            return redirect(request, f"/backfills/{path_part(result.backfill_id)}")
        context, status = preview_context(result, form), 200
    if is_htmx(request):
        return html("_preview.html", status, pv=context)
    wf = repo.workflow_registry[name]
    return workflow_page(request, repo, wf, workflow_context(repo, wf, None), form=form, preview=context,
                         status=status)


def preview_context(result: BackfillResult, form: BackfillForm) -> dict[str, Any]:
    """What a dry run shows: counts, the first and last keys, the first run groups and the estimate; and
    the form's fields (with a fresh launch key) for the Launch button to send back unchanged."""
    keys, plan = result.partition_keys, result.plan
    groups = [list(group) for group in itertools.islice(plan, PREVIEW_GROUPS)]
    last_group = list(plan[len(plan) - 1]) if len(plan) > PREVIEW_GROUPS else None
    estimate = result.estimate
    echo = dict(form.values, launch_key=uuid.uuid4().hex)
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


# -- login ------------------------------------------------------------------------------------------------
@router.post("/login")
async def login(request: Request) -> Response:
    form = await read_form(request)
    token: str | None = request.app.state.token
    target = safe_next(form.get("next"))
    if token is None:
        return RedirectResponse("/", status_code=303)
    if not token_matches(form.get("token"), token):
        await asyncio.sleep(WRONG_TOKEN_PAUSE)
        message = "That token is not the server's ANACHRON_API_TOKEN." if form.get("token") else "Enter the token."
        return page(request, "login.html", 401, next=target, error=message)
    response = RedirectResponse(target, status_code=303)
    response.set_cookie(COOKIE, token, max_age=COOKIE_AGE, path="/", httponly=True, samesite=STRICT,
                        secure=request.url.scheme == "https")
    return response


@router.post("/logout")
def logout(request: Request) -> Response:
    response = RedirectResponse("/login" if request.app.state.token is not None else "/", status_code=303)
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite=STRICT)
    return response
