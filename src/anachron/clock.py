"""Logical time.

A run sees a *logical* clock: the schedule tick or partition window it stands for, plus the time
elapsed since it started. Outside a run, ``ANACHRON_TIME`` (or ``STARLARK_TIME``, for pipelines
moved from Uniflow) sets the clock; otherwise it is the wall clock. ``time.time()`` and
``datetime.now()`` are never patched.
"""

from __future__ import annotations

import os
import time as _time
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Mapping

TIME_VARIABLES = ("ANACHRON_TIME", "STARLARK_TIME")


class LogicalTimeError(ValueError):
    """A logical-time environment variable holds a value that is not a time."""


def parse_time_value(value: str, variable: str = "ANACHRON_TIME") -> datetime:
    """Parse ``unix:<seconds>`` or ISO-8601 with an offset into an aware UTC datetime."""
    text = value.strip()
    if text.startswith("unix:"):
        try:
            seconds = float(text[5:])
        except ValueError:
            raise LogicalTimeError(
                f"{variable}={value!r} is not a time: after 'unix:' expected seconds, e.g. unix:1767225600"
            ) from None
        return datetime.fromtimestamp(seconds, timezone.utc)
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        raise LogicalTimeError(
            f"{variable}={value!r} is not a time: expected unix:<seconds> or ISO-8601 with an offset, "
            "e.g. 2026-01-01T00:00:00+00:00"
        )
    return parsed.astimezone(timezone.utc)


def time_from_environ(environ: Mapping[str, str]) -> datetime | None:
    """The logical time an environment asks for, or ``None``; raises on a malformed value."""
    for variable in TIME_VARIABLES:
        value = environ.get(variable)
        if value:
            return parse_time_value(value, variable)
    return None


def to_datetime(value: datetime | date | str | float | int, field: str = "time") -> datetime:
    """Coerce user input to an aware UTC datetime; naive values are taken as UTC."""
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, timezone.utc)
    elif isinstance(value, str):
        try:
            result = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{field}: {value!r} is not an ISO-8601 date or datetime") from None
    else:
        raise ValueError(f"{field}: expected a datetime, date or ISO string, got {type(value).__name__}")
    if result.tzinfo is None:
        result = result.replace(tzinfo=timezone.utc)
    return result.astimezone(timezone.utc)


@dataclass(frozen=True)
class RunClock:
    """The logical clock of one run: ``logical_time`` at ``started`` (a monotonic reading)."""

    logical_time: datetime
    started: float

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.time(), timezone.utc)

    def time(self) -> float:
        return self.logical_time.timestamp() + (_time.monotonic() - self.started)


_current_clock: ContextVar[RunClock | None] = ContextVar("anachron_run_clock", default=None)


def bind_clock(clock: RunClock | None):
    """Bind a run's clock to the current context; returns a token for ``unbind_clock``."""
    return _current_clock.set(clock)


def unbind_clock(token) -> None:
    _current_clock.reset(token)


def time() -> float:
    """Unix seconds on the logical clock."""
    clock = _current_clock.get()
    if clock is not None:
        return clock.time()
    logical = time_from_environ(os.environ)
    if logical is not None:
        return logical.timestamp()
    return _time.time()


def now() -> datetime:
    """An aware UTC datetime on the logical clock."""
    return datetime.fromtimestamp(time(), timezone.utc)


def wall_clock() -> datetime:
    """The real current time; the only place the core reads it (the outermost loops pass it down)."""
    return datetime.now(timezone.utc)
