"""The UI's actions (POST): backfill pause / resume / cancel / rerun, run cancel and re-run, schedule pause /
resume, the time zone, logging in and out. (The forms that create backfills and runs: ``launch``.)

Each calls the repository and answers the part of the page that changed (an htmx request), or redirects
to the page (a plain form post, without JavaScript). A refused action shows the engine's message, which
names the field, where the action was asked — never a 500. Cross-site POSTs never get here: the server's
guard (``api.auth``) refuses them first.
"""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import RedirectResponse, Response

from ..api.auth import COOKIE, caller, token_matches
from ..definitions import Workflow
from ..models import RERUN_OF_TAG
from .backfill_pages import backfill_response
from .forms import FormTooLarge, parse_form
from .pages import not_found, repo_of, safe_next, utcnow
from .render import UTC, ZONE_COOKIE, fragment, is_htmx, page, path_part, zone_named

router = APIRouter(include_in_schema=False)

#: How long the login cookie lasts (seconds).
COOKIE_AGE = 30 * 86400
#: How long the time-zone cookie lasts (seconds).
ZONE_AGE = 365 * 86400
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
    return backfill_response(request, repo, backfill_id, "live", None, flash, status)


@router.post("/runs/{run_id}/cancel")
def cancel_run(request: Request, run_id: str) -> Response:
    repo = repo_of(request)
    if repo.get_run(run_id) is None:
        return not_found(request, f"run {run_id!r} not found")
    repo.cancel_run(run_id)
    return redirect(request, f"/runs/{path_part(run_id)}")


@router.post("/runs/{run_id}/rerun")
async def rerun_run(request: Request, run_id: str) -> Response:
    form = await read_form(request)
    return await run_in_threadpool(_rerun_run, request, run_id, form.get("launch_key", ""))


def _rerun_run(request: Request, run_id: str, launch_key: str) -> Response:
    """Run a finished run's partition again (or an unpartitioned run), with its parameters and its own tags,
    as a new run tagged ``anachron/rerun_of`` = the run it repeats."""
    repo = repo_of(request)
    found = repo.get_run(run_id)
    if found is None:
        return not_found(request, f"run {run_id!r} not found")
    wf = repo.workflow_registry.get(found.workflow)
    if wf is None or len(found.partition_keys) > 1:
        reason = "its workflow is no longer defined" if wf is None else "it ran several partitions (backfill them)"
        return page(request, "error.html", 409, title="Cannot run again", message=f"run {run_id}: {reason}")
    tags = {k: v for k, v in found.tags.items() if not k.startswith("anachron/")}
    tags[RERUN_OF_TAG] = found.run_id
    key = f"ui:{launch_key}" if len(launch_key) == 32 and launch_key.isalnum() else None
    again = repo.run(wf, found.partition_key, found.params, tags, idempotency_key=key, block=False)
    return redirect(request, f"/runs/{path_part(again.run_id)}")


# -- schedules --------------------------------------------------------------------------------------------
@router.post("/schedules/{action}")
async def schedule_action(request: Request, action: str) -> Response:
    form = await read_form(request)
    return await run_in_threadpool(_schedule_action, request, action, form.get("workflow", ""),
                                   form.get("schedule", ""), form.get("next", ""))


def _schedule_action(request: Request, action: str, name: str, schedule_id: str, back: str) -> Response:
    repo = repo_of(request)
    if action not in ("pause", "resume"):
        return not_found(request, f"no such action: {action!r}")
    if name not in repo.workflow_registry:
        return not_found(request, f"workflow {name!r} not found")
    wf: Workflow = repo.workflow_registry[name]
    if not any(s.id == schedule_id for s in wf.schedules):
        return not_found(request, f"workflow {name!r} has no schedule {schedule_id!r}")
    if action == "pause":
        repo.pause_schedule(wf, schedule_id)
    else:
        repo.resume_schedule(wf, schedule_id)
    if not is_htmx(request):
        return RedirectResponse(safe_next(back or "/schedules"), status_code=303)
    from .schedule_pages import schedule_row

    row = schedule_row(repo, next(s for s in repo.list_schedules(wf) if s.schedule_id == schedule_id))
    return fragment(request, "_schedule_row.html", row=row, now=utcnow(), show_workflow=back == "/schedules",
                    back=back)


# -- the time zone ----------------------------------------------------------------------------------------
@router.post("/timezone")
async def set_timezone(request: Request) -> Response:
    """Show times in the zone chosen (a blank choice goes back to the browser's zone)."""
    form = await read_form(request)
    target = safe_next(form.get("next"))
    name = form.get("tz", "").strip()
    if name and zone_named(name) is None:
        return page(request, "error.html", 400, title="Bad request",
                    message=f"Time zone: {name[:60]!r} is not a time zone name (e.g. Europe/Paris, UTC)")
    response = RedirectResponse(target, status_code=303)
    if name:
        response.set_cookie(ZONE_COOKIE, name if zone_named(name) != UTC else "UTC", max_age=ZONE_AGE, path="/",
                            samesite=STRICT, secure=request.url.scheme == "https")
    else:
        response.delete_cookie(ZONE_COOKIE, path="/", samesite=STRICT)
    return response


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
