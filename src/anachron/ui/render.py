"""Rendering: one Jinja2 environment (autoescape on, everywhere) and the page/fragment responses.

Every page and fragment is rendered in the reader's time zone (``tz`` in the templates): the
``anachron_tz`` cookie, which the page's script sets to the browser's zone on a first visit and the
time-zone page (``/timezone``) changes; UTC without it."""

from __future__ import annotations

from datetime import tzinfo
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.requests import Request
from starlette.responses import HTMLResponse

from .. import __version__
from . import view

HERE = Path(__file__).parent
TEMPLATES = HERE / "templates"
STATIC = HERE / "static"
#: the cookie holding the reader's time zone (an IANA name; not HttpOnly: the page's script sets it)
ZONE_COOKIE = "anachron_tz"
UTC = ZoneInfo("UTC")


def path_part(value: str) -> str:
    """One path segment (a workflow name may hold ``/``, ``?``, ``#`` or anything else)."""
    return quote(value, safe="")


def query(**params: Any) -> str:
    """``?a=1&b=2`` from the parameters that are not ``None`` (``""`` when none are)."""
    given = {k: v for k, v in params.items() if v is not None and v != ""}
    return "?" + urlencode(given, doseq=True) if given else ""


def workflow_url(name: str) -> str:
    return "/workflows/" + path_part(name)


def zone_named(name: str | None) -> ZoneInfo | None:
    """The IANA zone ``name`` (``None`` for anything else: a cookie is only a preference)."""
    if not name or len(name) > 64 or name.startswith(("/", ".")) or ".." in name:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        return None


def zone_of(request: Request) -> ZoneInfo:
    return zone_named(request.cookies.get(ZONE_COOKIE)) or UTC


def zone_name(zone: tzinfo) -> str:
    return getattr(zone, "key", None) or str(zone)


@lru_cache(maxsize=1)
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(str(TEMPLATES)), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True, auto_reload=False)
    env.globals.update(version=__version__, glyph=view.glyph, label=view.label, number=view.number,
                       rate_text=view.rate_text, duration=view.duration, approx=view.approx, ago=view.ago,
                       stamp=view.stamp, clock=view.clock, window=view.window, iso=view.iso, span=view.span,
                       run_keys=view.run_keys, first_line=view.first_line, run_duration=view.run_duration,
                       user_tags=view.user_tags, is_active=view.is_active, outcome=view.outcome,
                       zone_name=zone_name, workflow_url=workflow_url, path_part=path_part, query=query)
    env.filters["path_part"] = path_part
    return env


def html(template: str, status: int = 200, headers: dict[str, str] | None = None, **context: Any) -> HTMLResponse:
    context.setdefault("tz", UTC)
    text = environment().get_template(template).render(**context)
    return HTMLResponse(text, status_code=status, headers=headers)


def fragment(request: Request, template: str, status: int = 200, headers: dict[str, str] | None = None,
             **context: Any) -> HTMLResponse:
    """A part of a page (an htmx answer), in the reader's time zone."""
    return html(template, status, headers, tz=zone_of(request), **context)


def is_htmx(request: Request) -> bool:
    return request.headers.get("hx-request") == "true"


def signed_in(request: Request) -> bool:
    """Whether the page should offer "Sign out": a token is configured (the guard let this request in)."""
    return request.app.state.token is not None


#: the first segment of a path → the navigation entry it belongs to
SECTIONS = {"": "dashboard", "partitions": "workflows", "timezone": "dashboard"}


def page(request: Request, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    """A full page: the layout with the navigation marked for ``request``'s section."""
    path = request.url.path
    first = path.strip("/").split("/", 1)[0]
    section = SECTIONS.get(first, first)
    return html(template, status, request_path=path, section=section, token_auth=signed_in(request),
                tz=zone_of(request), zone_chosen=zone_named(request.cookies.get(ZONE_COOKIE)) is not None,
                **context)
