"""Who may call the server, and from where.

- With ``ANACHRON_API_TOKEN`` set, every API route, UI page and UI action needs the token: an
  ``Authorization: Bearer <token>`` header (the CLI, scripts), or the ``anachron_token`` cookie the UI's
  login page sets (HttpOnly, SameSite=Strict). Tokens are compared in constant time. Only ``/login``,
  ``/static/``, ``/docs/assets/`` (Swagger UI's files) and ``/api/v1/health`` are open.
- Whether or not a token is set, a state-changing request (POST, PUT, PATCH, DELETE) sent by a browser
  from another site is refused (``Sec-Fetch-Site``, else ``Origin`` against ``Host``): a page elsewhere
  cannot make a user's browser pause or cancel a backfill. Clients that are not browsers send neither
  header and are not affected.
"""

from __future__ import annotations

import hmac
from urllib.parse import quote, urlsplit

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.types import ASGIApp, Receive, Scope, Send

from .errors import error_response

COOKIE = "anachron_token"
#: Who a backfill created over HTTP is recorded as (``BackfillStatus.created_by``): the token's name —
#: ``ANACHRON_API_TOKEN_NAME``, else this — or, on a server without a token, ``ANONYMOUS``.
DEFAULT_TOKEN_NAME = "api-token"
ANONYMOUS = "anonymous"
OPEN_PREFIXES = ("/static/", "/docs/assets/", "/login", "/api/v1/health")
UNSAFE = frozenset({"POST", "PUT", "PATCH", "DELETE"})


def token_matches(given: str | None, token: str) -> bool:
    return given is not None and hmac.compare_digest(given.encode(), token.encode())


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def caller(request: Request) -> str:
    """The identity of a request that passed the guard: the server token's name, or ``anonymous`` when the
    server has no token."""
    if request.app.state.token is None:
        return ANONYMOUS
    return str(getattr(request.app.state, "token_name", DEFAULT_TOKEN_NAME))


def cross_site(request: Request) -> bool:
    """A browser request from another origin (another site, or another port of this host)."""
    fetch_site = request.headers.get("sec-fetch-site")
    if fetch_site is not None:
        return fetch_site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    if origin is None:
        return False
    host = request.headers.get("host", "")
    return origin == "null" or urlsplit(origin).netloc != host


def _is_api(path: str) -> bool:
    return path.startswith("/api/") or path in ("/openapi.json", "/docs", "/docs/oauth2-redirect")


class Guard:
    """The ASGI middleware enforcing both rules (``app.add_middleware(Guard, token=...)``).

    Plain ASGI rather than an ``@app.middleware("http")`` function: Starlette runs those through
    ``BaseHTTPMiddleware``, whose task group and streams per request cost about 1 ms — as much as the rest
    of a status request (``bench/bench_api.py``)."""

    def __init__(self, app: ASGIApp, token: str | None = None):
        self.app = app
        self.token = token

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            refusal = self.refusal(Request(scope))
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)

    def refusal(self, request: Request) -> Response | None:
        """The answer refusing the request, or None to let it through."""
        path, token = request.url.path, self.token
        if request.method in UNSAFE and cross_site(request):
            return error_response(403, "cross-site request refused: use the anachron UI or an API client")
        if token is None or path.startswith(OPEN_PREFIXES):
            return None
        if token_matches(bearer(request), token) or token_matches(request.cookies.get(COOKIE), token):
            return None
        if _is_api(path):
            given = "a wrong token" if bearer(request) or request.cookies.get(COOKIE) else "no token"
            return error_response(401, f"unauthorized: {given}; send Authorization: Bearer <ANACHRON_API_TOKEN>",
                                  headers={"WWW-Authenticate": "Bearer"})
        if request.headers.get("hx-request"):  # an htmx call from a page whose cookie is gone: log in again
            return Response(status_code=401, headers={"HX-Redirect": "/login"})
        target = path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
