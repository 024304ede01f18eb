"""Every error the HTTP API answers, as ``{"error": {"code", "message"}}`` with a 4xx (5xx only for storage
that is down, or a bug).

The engine already raises errors a user can act on, each naming the field; this module only maps their
types to status codes. Nothing is written when a request is refused: validation runs before any write, and
each write is one transaction.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..limits import unstorable, why_unstorable
from ..models import ConflictError, NotFoundError
from ..requests import describe_errors
from ..storage import StorageRejected, StorageUnavailable

log = logging.getLogger("anachron.server")

_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
          421: "misdirected_request", 422: "invalid_request", 503: "storage_unavailable"}


class ErrorDetail(BaseModel):
    code: str
    message: str


class ErrorBody(BaseModel):
    """Every error answer: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail


def _answer(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


#: The error answers every route may give, for the OpenAPI document (routers take them as ``responses``).
RESPONSES: dict[int | str, dict[str, Any]] = {
    400: _answer("Bad input (the message names the field)"),
    401: _answer("A token is required (ANACHRON_API_TOKEN is set) and was missing or wrong"),
    404: _answer("No such workflow, backfill, run or schedule"),
    409: _answer("The request conflicts with the current state (a finished backfill, an active trigger backfill)"),
    413: _answer("The body is larger than the server's cap"),
    421: _answer("The Host header names a host this server does not answer to"),
    422: _answer("The body or a parameter does not validate (the message names the field)"),
    503: _answer("Storage is unavailable for now; retry (see Retry-After)"),
}


class ApiError(Exception):
    """Raised by a route: answered as ``status`` with ``{"error": {"code", "message"}}``."""

    def __init__(self, status: int, message: str, code: str | None = None):
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message


def error_response(status: int, message: str, code: str | None = None,
                   headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"error": {"code": code or _CODES.get(status, "error"), "message": message}}
    return JSONResponse(body, status_code=status, headers=headers)


async def storable_body(request: Request) -> None:
    """A router dependency: refuse text no database stores — a NUL (``\\x00``), or a lone surrogate such as
    ``"\\ud800"``, which JSON's escapes (and Python's JSON decoder, for raw bytes) let through — in the path,
    the query or a JSON body, naming the field. Refused here, it is a 4xx before anything is written, instead
    of a write that fails half way (PostgreSQL's text refuses NUL), or a run whose log lines cannot be stored."""
    for kind, items in (("path", request.path_params.items()), ("query", request.query_params.multi_items())):
        for name, value in items:
            why = why_unstorable(value)
            if why is not None:
                raise ApiError(400, f"{name} ({kind}): {why}")
    if request.method in ("GET", "HEAD"):
        return  # a body there is never read
    body = await request.body()
    if not body:
        return
    if b"\\u" not in body:
        try:
            body.decode("utf-8")
            return  # strict UTF-8 and no escapes: nothing to look for
        except UnicodeDecodeError:
            pass
    try:
        data = json.loads(body)
    except (ValueError, RecursionError):
        return  # not JSON: the route's validation says so
    found = unstorable(data)
    if found is not None:
        raise ApiError(422, f"{found[0]}: {found[1]}")


def allowed_methods(request: Request) -> list[str]:
    """Every method some route answers on this path (Starlette's own ``Allow`` names only the first route's)."""
    from starlette.routing import Match

    methods: set[str] = set()
    scope = {**request.scope, "type": "http"}
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"):
        probe = {**scope, "method": method}
        if any(route.matches(probe)[0] is Match.FULL for route in request.app.router.routes):
            methods.add(method)
    return sorted(methods)


def install(app: FastAPI) -> None:
    """Map the engine's exceptions (and FastAPI's own) to the one error shape."""

    async def api_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, ApiError)
        return error_response(exc.status, exc.message, exc.code)

    async def validation(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        errors: Any = exc.errors()
        return error_response(422, describe_errors(errors) if errors else "invalid request")

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, StarletteHTTPException)
        message = exc.detail if isinstance(exc.detail, str) else "error"
        headers = getattr(exc, "headers", None)
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such route: {request.method} {request.url.path}"
        if exc.status_code == 405:
            allowed = allowed_methods(request)
            headers = {**(headers or {}), "Allow": ", ".join(allowed)}
            message = f"{request.method} is not allowed on {request.url.path}; allowed: {', '.join(allowed)}"
        return error_response(exc.status_code, message, headers=headers)

    async def not_found(request: Request, exc: Exception) -> JSONResponse:
        return error_response(404, str(exc))

    async def bad_value(request: Request, exc: Exception) -> JSONResponse:
        return error_response(400, str(exc))

    async def conflict(request: Request, exc: Exception) -> JSONResponse:
        return error_response(409, str(exc))

    async def unavailable(request: Request, exc: Exception) -> JSONResponse:
        return error_response(503, f"storage: {exc}", headers={"Retry-After": "2"})

    async def rejected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(409, f"storage: {exc}", code="rejected")

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        return error_response(500, f"internal error ({type(exc).__name__}); the server log has the details",
                              code="internal")

    app.add_exception_handler(ApiError, api_error)
    app.add_exception_handler(RequestValidationError, validation)
    app.add_exception_handler(StarletteHTTPException, http_error)
    app.add_exception_handler(NotFoundError, not_found)
    app.add_exception_handler(ConflictError, conflict)  # a ValueError: its own handler comes first (by its MRO)
    app.add_exception_handler(ValueError, bad_value)  # RequestError and every field check of the engine
    app.add_exception_handler(StorageUnavailable, unavailable)
    app.add_exception_handler(StorageRejected, rejected)
    app.add_exception_handler(Exception, unexpected)
