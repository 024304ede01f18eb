"""The web UI (Jinja2 templates + vendored htmx), mounted on the server app by ``install``.

Pages are rendered on the server from the ``CodeRepository`` at ``app.state.repo`` (never through HTTP to
the server itself); htmx (``static/htmx.min.js``, vendored: nothing is fetched at run time) polls the
fragments of what is active and posts the actions. Templates autoescape everything.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.gzip import GZipMiddleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from ..models import NotFoundError
from ..storage import StorageRejected, StorageUnavailable
from . import actions, backfill_pages, graph_pages, launch, pages, run_pages, schedule_pages, workflow_pages
from .forms import FormTooLarge
from .render import STATIC, fragment, is_htmx, page

log = logging.getLogger("anachron.server")
Handler = Callable[[Request, Any], Response | Awaitable[Response]]

API_PATHS = ("/api/", "/openapi.json", "/docs")


def install(app: FastAPI) -> None:
    """Mount the UI's pages, actions and static files on ``app``; errors on UI paths answer HTML pages
    (the JSON API keeps its ``{"error": ...}`` answers)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.add_middleware(CompressPages)
    for module in (pages, backfill_pages, run_pages, workflow_pages, graph_pages, schedule_pages, launch, actions):
        app.include_router(module.router)
    for kind in (StarletteHTTPException, RequestValidationError, NotFoundError, ValueError, StorageUnavailable,
                 StorageRejected, Exception):
        api_handler = app.exception_handlers.get(kind)
        if api_handler is not None:
            app.add_exception_handler(kind, _html_on_ui_paths(api_handler))


def is_ui_path(path: str) -> bool:
    return not path.startswith(API_PATHS)


class CompressPages:
    """gzip for the UI's pages, fragments and static files (a big grid's markup shrinks ~10×: a page that
    polls it sends far less); the JSON API's answers are left as they are."""

    def __init__(self, app: ASGIApp):
        self.app = app
        self.gzip = GZipMiddleware(app, minimum_size=2048)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and is_ui_path(scope["path"]):
            await self.gzip(scope, receive, send)
        else:
            await self.app(scope, receive, send)


def _html_on_ui_paths(api_handler: Handler) -> Handler:
    async def handler(request: Request, exc: Exception) -> Response:
        if not is_ui_path(request.url.path):
            answer = api_handler(request, exc)
            return await answer if inspect.isawaitable(answer) else answer
        status, title, message = describe(request, exc)
        if status >= 500 and not isinstance(exc, (StorageUnavailable, StorageRejected)):
            log.exception("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
        headers = {"Retry-After": "2"} if isinstance(exc, StorageUnavailable) else None
        if is_htmx(request):
            return fragment(request, "_alert.html", status, headers=headers, kind="error",
                            message=f"{title}: {message}")
        response = page(request, "error.html", status, title=title, message=message)
        if headers:
            response.headers.update(headers)
        return response

    return handler


def describe(request: Request, exc: Exception) -> tuple[int, str, str]:
    """The status, a title and a message a person can act on."""
    if isinstance(exc, StarletteHTTPException):
        if exc.status_code == 404:
            return 404, "Not found", f"There is no page at {request.url.path}."
        if exc.status_code == 405:
            return 405, "Not allowed", f"{request.method} is not allowed on {request.url.path}."
        return exc.status_code, "Error", str(exc.detail)
    if isinstance(exc, RequestValidationError):
        from ..requests import describe_errors

        errors = exc.errors()
        return 400, "Bad request", describe_errors(list(errors)) if errors else "invalid request"
    if isinstance(exc, NotFoundError):
        return 404, "Not found", str(exc)
    if isinstance(exc, FormTooLarge):
        return 413, "Too large", str(exc)
    if isinstance(exc, ValueError):
        return 400, "Bad request", str(exc)
    if isinstance(exc, StorageUnavailable):
        return 503, "Storage unavailable", f"{exc}. The page will work again once the database answers."
    if isinstance(exc, StorageRejected):
        return 409, "Refused by storage", str(exc)
    return 500, "Internal error", f"{type(exc).__name__}: the server log has the details."
