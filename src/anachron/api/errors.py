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
from starlette.exceptions import HTTPException as StarletteHTTPException

from ..models import ConflictError, NotFoundError
from ..requests import describe_errors
from ..storage import StorageRejected, StorageUnavailable

log = logging.getLogger("anachron.server")

_CODES = {400: "invalid_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large", 415: "unsupported_media_type",
          422: "invalid_request", 503: "storage_unavailable"}


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
    """A router dependency: refuse a JSON body holding text that is not valid Unicode — a lone surrogate such
    as ``"\\ud800"``, which JSON's escapes (and Python's JSON decoder, for raw bytes) let through — naming the
    field. Storage cannot encode it: refused here, it is a 422 before anything is written, instead of a write
    that fails half way, or a run whose log lines cannot be stored."""
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
    where = _unencodable(data)
    if where is not None:
        raise ApiError(422, f"{where}: text that is not valid Unicode (a lone surrogate) cannot be stored")


def _encodable(text: str) -> bool:
    try:
        text.encode("utf-8")
        return True
    except UnicodeEncodeError:
        return False


def _unencodable(data: Any) -> str | None:
    """Where in ``data`` (``params.name``, ``tags.0.value``) a string or key cannot be encoded, or None."""
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    while stack:
        value, path = stack.pop()
        if isinstance(value, str) and not _encodable(value):
            return ".".join(path) or "body"
        if isinstance(value, dict):
            for key, item in value.items():
                shown = (*path, key.encode("utf-8", "backslashreplace").decode())
                if not _encodable(key):
                    return ".".join(shown)
                stack.append((item, shown))
        elif isinstance(value, list):
            stack.extend((item, (*path, str(i))) for i, item in enumerate(value))
    return None


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
        if exc.status_code == 404 and message == "Not Found":
            message = f"no such route: {request.method} {request.url.path}"
        return error_response(exc.status_code, message, headers=getattr(exc, "headers", None))

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
