"""Who may call the server, and from where.

- Every request must name this server in its ``Host`` header: a loopback name (``localhost``,
  ``127.0.0.1``, ``::1``), an IP address, or a name the operator allowed (``anachron server
  --allowed-host NAME``; ``*`` allows any). Anything else is refused with 421 before any route runs. This
  is what stops DNS rebinding: a web page whose own name is made to resolve to 127.0.0.1 is same-origin
  to the browser (so the cross-site rule below cannot see it), but its requests carry its own name as
  ``Host``. An IP address cannot be rebound, so IP literals always pass.
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
import ipaddress
from collections.abc import Iterable
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
#: The names a server bound to loopback answers to (with IP literals, which always pass).
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
ANY_HOST = "*"


def host_name(header: str) -> str:
    """The name in a ``Host`` header: without the port or IPv6 brackets, lower case, no trailing dot."""
    header = header.strip()
    if header.startswith("["):
        name = header[1:].split("]", 1)[0]
    else:
        name = header.rsplit(":", 1)[0] if header.count(":") == 1 else header
    return name.lower().rstrip(".")


def is_ip_literal(name: str) -> bool:
    try:
        ipaddress.ip_address(name)
        return True
    except ValueError:
        return False


class HostRule:
    """Which ``Host`` names the server answers to: the loopback names, ``allowed`` (case-insensitive; ``*``:
    any), and IP literals."""

    def __init__(self, allowed: Iterable[str] = ()):
        self.names = frozenset(host_name(n) for n in (*LOOPBACK_NAMES, *allowed))
        self.any = ANY_HOST in self.names

    def allows(self, header: str | None) -> bool:
        if self.any:
            return True
        if not header:
            return False
        name = host_name(header)
        return name in self.names or is_ip_literal(name)

    def describe(self) -> str:
        return ", ".join(sorted(self.names)) + " and IP addresses"


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

    def __init__(self, app: ASGIApp, token: str | None = None, hosts: HostRule | None = None):
        self.app = app
        self.token = token
        self.hosts = hosts or HostRule()

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
        host = request.headers.get("host")
        if not self.hosts.allows(host):
            shown = repr(host[:100]) if host else "no Host header"
            return error_response(421, f"host {shown} is not served here (this server answers to "
                                  f"{self.hosts.describe()}; start it with --allowed-host NAME to add a name)")
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
