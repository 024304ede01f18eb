"""Logical time.

A run sees a *logical* clock, frozen for the whole run: exactly the schedule tick or partition window
end it stands for (as Uniflow's ``time()`` returns the ``STARLARK_TIME`` timestamp itself), so a re-run
computes the same values. Outside a run, ``ANACHRON_TIME`` (or ``STARLARK_TIME``, for pipelines
moved from Uniflow) sets the clock; otherwise it is the wall clock. ``time.time()`` and
``datetime.now()`` are never patched.
"""

from __future__ import annotations

import math
import os
import threading
import time as _time
from collections.abc import Callable, Mapping
from contextvars import ContextVar, Token
from dataclasses import dataclass
from datetime import date, datetime, timezone

TIME_VARIABLES = ("ANACHRON_TIME", "STARLARK_TIME")
_RANGE = "years 1 to 9999 in UTC"
_FORMS = (
    "expected unix:<seconds> or ISO-8601 with an offset, e.g. unix:1767225600 or "
    f"2026-01-01T00:00:00+00:00 ({_RANGE})"
)


class LogicalTimeError(ValueError):
    """A logical-time environment variable holds a value that is not a time."""


def _from_unix(seconds: float) -> datetime:
    """An aware UTC datetime from Unix seconds; ValueError (never OverflowError or OSError) for
    NaN, infinities and instants outside years 1 to 9999."""
    if not math.isfinite(seconds):
        raise ValueError(f"{seconds} seconds is not a finite number")
    try:
        return datetime.fromtimestamp(seconds, timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise ValueError(f"{seconds:.17g} seconds is outside {_RANGE}") from None


def _to_utc(value: datetime) -> datetime:
    """An aware datetime in UTC; ValueError if the conversion leaves years 1 to 9999."""
    try:
        return value.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is outside {_RANGE}") from None


def parse_time_value(value: str, variable: str = "ANACHRON_TIME") -> datetime:
    """Parse ``unix:<seconds>`` or ISO-8601 with an offset into an aware UTC datetime.

    Anything else, including numbers that are not finite and instants outside years 1 to 9999
    in UTC, raises ``LogicalTimeError`` naming ``variable`` and the accepted forms."""
    if not isinstance(value, str):
        raise LogicalTimeError(f"{variable}={value!r} is not a time: {_FORMS}")
    text = value.strip()
    if text.startswith("unix:"):
        number = text[5:].strip()
        try:
            seconds = float(number)
        except ValueError:
            raise LogicalTimeError(
                f"{variable}={value!r} is not a time ({number or 'nothing'!r} after 'unix:' is not "
                f"a number of seconds): {_FORMS}"
            ) from None
        try:
            return _from_unix(seconds)
        except ValueError as exc:
            raise LogicalTimeError(f"{variable}={value!r} is not a time ({exc}): {_FORMS}") from None
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        parsed = None
    if parsed is None or parsed.tzinfo is None:
        why = "no UTC offset" if parsed is not None else "not ISO-8601"
        raise LogicalTimeError(f"{variable}={value!r} is not a time ({why}): {_FORMS}")
    try:
        return _to_utc(parsed)
    except ValueError as exc:
        raise LogicalTimeError(f"{variable}={value!r} is not a time ({exc}): {_FORMS}") from None


def time_from_environ(environ: Mapping[str, str]) -> datetime | None:
    """The logical time an environment asks for, or ``None``; raises on a malformed value."""
    for variable in TIME_VARIABLES:
        value = environ.get(variable)
        if value:
            return parse_time_value(value, variable)
    return None


def to_datetime(value: datetime | date | str | float | int, field: str = "time") -> datetime:
    """Coerce user input to an aware UTC datetime; naive values are taken as UTC.

    ValueError naming ``field`` for anything else, including numbers that are not finite and
    instants outside years 1 to 9999 in UTC."""
    if isinstance(value, datetime):
        result = value
    elif isinstance(value, date):
        result = datetime(value.year, value.month, value.day)
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        try:
            return _from_unix(value)
        except ValueError as exc:
            raise ValueError(f"{field}: {value!r} is not a time: {exc}") from None
    elif isinstance(value, str):
        try:
            result = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"{field}: {value!r} is not an ISO-8601 date or datetime") from None
    else:
        raise ValueError(f"{field}: expected a datetime, date or ISO string, got {type(value).__name__}")
    if result.tzinfo is None:
        result = result.replace(tzinfo=timezone.utc)
    try:
        return _to_utc(result)
    except ValueError as exc:
        raise ValueError(f"{field}: {value!r} is not a time: {exc}") from None


@dataclass(frozen=True)
class RunClock:
    """The logical clock of one run: ``logical_time``, frozen (it does not advance while the run runs)."""

    logical_time: datetime

    def now(self) -> datetime:
        return self.logical_time.astimezone(timezone.utc)

    def time(self) -> float:
        return self.logical_time.timestamp()


_current_clock: ContextVar[RunClock | None] = ContextVar("anachron_run_clock", default=None)


def bind_clock(clock: RunClock | None) -> Token[RunClock | None]:
    """Bind a run's clock to the current context; returns a token for ``unbind_clock``."""
    return _current_clock.set(clock)


def unbind_clock(token: Token[RunClock | None]) -> None:
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


# -- the engine's clock: one seam for every reading of the time the engine and storage make ------------
class Clock:
    """What the engine reads the time from (``EngineContext.clock``): ``now()`` (an aware UTC datetime: when
    runs are created, priorities age, schedules tick), ``wall()`` (Unix seconds: leases, fences, liveness —
    shared with other processes) and ``monotonic()`` (intervals within this process). Nothing under
    ``engine/`` or ``storage/`` reads the time any other way (a lint rule keeps it so), so a test drives
    every time-dependent decision — leases, takeovers, fences — with a ``ManualClock``."""

    def now(self) -> datetime:
        return datetime.now(timezone.utc)

    def wall(self) -> float:
        return _time.time()

    def monotonic(self) -> float:
        return _time.monotonic()


#: the real time (the default)
SYSTEM_CLOCK = Clock()


class CallableClock(Clock):
    """``now()`` from a function (``CodeRepository(clock=fn)``, as tests drive schedules); leases and
    intervals stay on real time, so processes that do not share the function still agree on them."""

    def __init__(self, fn: Callable[[], datetime]):
        self._fn = fn

    def now(self) -> datetime:
        return self._fn()


class ManualClock(Clock):
    """Time that moves only when told (``advance``): tests of leases, fences and takeovers run in
    milliseconds instead of sleeping. Thread-safe."""

    def __init__(self, start: datetime | None = None):
        self._at = (start or datetime(2026, 1, 1, tzinfo=timezone.utc)).timestamp()
        self._lock = threading.Lock()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.wall(), timezone.utc)

    def wall(self) -> float:
        with self._lock:
            return self._at

    def monotonic(self) -> float:
        """Real: intervals within this process (poll cadence, timeouts) run as usual; what the engine
        decides from the time (leases, liveness, takeovers, queue times) reads ``wall`` and ``now``."""
        return _time.monotonic()

    def advance(self, seconds: float) -> None:
        with self._lock:
            self._at += seconds

    def __call__(self) -> datetime:  # usable where a function returning the time is expected
        return self.now()


def as_clock(clock: Clock | Callable[[], datetime] | None) -> Clock:
    """A ``Clock`` from what ``CodeRepository(clock=...)`` accepts."""
    if clock is None:
        return SYSTEM_CLOCK
    if isinstance(clock, Clock):
        return clock
    if callable(clock):
        return CallableClock(clock)
    raise ValueError("clock: expected an anachron.clock.Clock or a function returning an aware datetime")


def logical_time(*, submitted: datetime, tick: datetime | None = None,
                 window: tuple[datetime, datetime] | None = None, scheduled: datetime | None = None,
                 environ: Mapping[str, str] | None = None, process: Mapping[str, str] | None = None) -> datetime:
    """A run's logical time, the one rule (SPEC §2) every kind of run is created with: a schedule tick's → the
    tick; a time partition's → its window's end; a run deferred to a ``scheduled`` time → that time; any other →
    ``ANACHRON_TIME`` (or ``STARLARK_TIME``) from the run's ``environ``, else from the submitting ``process``'s,
    else the time it was ``submitted``. A malformed variable in the run's ``environ`` or the ``process``'s raises
    ``LogicalTimeError`` whatever decides the time (the run fails before any task starts): never a silent
    fallback."""
    from_run = time_from_environ(environ) if environ else None
    from_process = time_from_environ(process) if process else None
    if tick is not None:
        return tick
    if window is not None:
        return window[1]
    if scheduled is not None:
        return scheduled
    return from_run or from_process or submitted
