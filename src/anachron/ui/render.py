"""Rendering: one Jinja2 environment (autoescape on, everywhere) and the page/fragment responses."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from .. import __version__
from . import view

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"


def path_part(value: str) -> str:
    """One path segment (a workflow name may hold ``/``, ``?``, ``#`` or anything else)."""
    return quote(value, safe="")


def query(**params: Any) -> str:
    """``?a=1&b=2`` from the parameters that are not ``None`` (``""`` when none are)."""
    given = {k: v for k, v in params.items() if v is not None and v != ""}
    return "?" + urlencode(given, doseq=True) if given else ""


def workflow_url(name: str) -> str:
    return "/workflows/" + path_part(name)


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.globals.update(version=__version__, glyph=view.glyph, label=view.label, number=view.number,
                       rate_text=view.rate_text, duration=view.duration, approx=view.approx, ago=view.ago,
                       stamp=view.stamp, iso=view.iso, span=view.span, run_keys=view.run_keys,
                       first_line=view.first_line, run_duration=view.run_duration, user_tags=view.user_tags,
                       is_active=view.is_active,
                       workflow_url=workflow_url, path_part=path_part, query=query)
    env.filters["path_part"] = path_part
    return env


def html(template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    text = environment().get_template(template).render(**context)
    return HTMLResponse(text, status_code=status, headers=headers)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def signed_in(request: Request) -> bool:
    """Whether the page should offer "Sign out": a token is configured (the guard let this request in)."""
    return request.app.state.token is not None


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A full page: the layout with the navigation marked for ``request``'s section."""
    path = request.url.path
    section = path.strip("/").split("/", 1)[0] or "dashboard"
    return html(template, status, request_path=path, section=section, token_auth=signed_in(request), **context)
