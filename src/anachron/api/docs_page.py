"""``/docs``: the HTTP API's interactive reference (Swagger UI), served entirely by the server itself.

Swagger UI's script and stylesheet come from the pinned ``fastapi-offline`` package (the ``server`` extra;
Swagger UI 5, which reads the OpenAPI 3.1 document FastAPI writes) and are served under ``/docs/assets/`` —
gzipped, and open without a token like ``/static/``: they are the same public files for everyone. So the page
works on a machine with no internet, as the web UI does with its vendored htmx: nothing is fetched from a CDN.
``/openapi.json``, which the page reads, stays behind the token when one is set.

There is no ``/redoc``: ReDoc's bundle loads its logo from its vendor's CDN whatever it is told, and one
reference page is enough.
"""

from __future__ import annotations

from importlib.resources import files

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.middleware.gzip import GZipMiddleware
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

DOCS = "/docs"
ASSETS = "/docs/assets"
OAUTH2_REDIRECT = "/docs/oauth2-redirect"


def install(app: FastAPI, openapi_url: str = "/openapi.json") -> None:
    """Serve ``/docs`` and its assets on ``app`` (built with ``docs_url=None, redoc_url=None``)."""
    assets = str(files("fastapi_offline") / "static")
    app.mount(ASSETS, GZipMiddleware(StaticFiles(directory=assets), minimum_size=1024), name="api-docs-assets")

    @app.get(DOCS, include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url, title=f"{app.title} — HTTP API", oauth2_redirect_url=OAUTH2_REDIRECT,
            swagger_js_url=f"{ASSETS}/swagger-ui-bundle.js", swagger_css_url=f"{ASSETS}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS}/favicon.png")

    @app.get(OAUTH2_REDIRECT, include_in_schema=False)
    def oauth2_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()
