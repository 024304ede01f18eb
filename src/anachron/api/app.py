"""The ``anachron server`` application: the JSON API, the web UI and the daemon's loop in one process.

``create_app(repo)`` builds it around a ``CodeRepository``. While the app runs (its lifespan), the
repository's daemon loop runs on a background thread: schedules fire, backfills created through the API
are led here, orphans are adopted. Routes are plain functions run on the server's thread pool; each is one
or two short storage transactions.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from .. import __version__
from ..limits import MAX_BODY_BYTES
from ..repository import CodeRepository
from . import auth, cache, docs_page, errors, routes, triggers
from .bodylimit import BodyLimit

DESCRIPTION = """The HTTP API of anachron, a backfill-first workflow orchestrator.

Bodies and answers use the Python API's names (SPEC §6). Every error answers
`{"error": {"code", "message"}}` with a 4xx status (503 when storage is unavailable).
With `ANACHRON_API_TOKEN` set, send `Authorization: Bearer <token>`. Requests must name the server in
their `Host` header (loopback names, IP addresses, or the names given with `--allowed-host`; else 421), and
bodies are capped (1 MB by default; else 413).
"""


def create_app(repo: CodeRepository, *, token: str | None = None, daemon: bool = True,
               scan_seconds: float = 1.0, ui: bool = True, token_name: str = auth.DEFAULT_TOKEN_NAME,
               allowed_hosts: Iterable[str] = (), max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The ASGI app serving ``repo``. ``token``: require it on every route (see ``api.auth``); ``token_name``: who
    its holder is recorded as (a backfill's ``created_by``); ``daemon``: run the daemon's loop while the app
    runs; ``ui``: serve the web UI at ``/``; ``allowed_hosts``: the ``Host`` names answered besides loopback names
    and IP addresses (``"*"``: any); ``max_body_bytes``: the request body cap."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        loop = repo.daemon(scan_seconds=scan_seconds) if daemon else None
        if loop is not None:
            loop.start()
        try:
            yield
        finally:
            if loop is not None:
                loop.stop()

    app = FastAPI(title="anachron", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  openapi_url="/openapi.json", docs_url=None, redoc_url=None)
    app.state.repo = repo
    app.state.token = token
    app.state.token_name = token_name
    errors.install(app)
    app.add_middleware(cache.StatusCache)  # inside the guard (the middleware added last runs first)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    app.add_middleware(auth.Guard, token=token, hosts=auth.HostRule(allowed_hosts))
    app.include_router(routes.router)
    app.include_router(triggers.router)
    docs_page.install(app)  # /docs, its assets served here (no CDN)
    if ui:
        from ..ui import install as install_ui

        install_ui(app)
    return app
