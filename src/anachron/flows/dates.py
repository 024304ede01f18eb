"""The ``date`` template filter: format a date or time given as a value or as ISO-8601 text.

``{{ trigger.date | date('%Y-%m-%d') }}`` takes a ``strftime`` format. Flows written for Kestra use Java
patterns (``yyyy-MM-dd``, ``yyyy-MM-dd'T'HH:mm:ss``, ``dd/MM/yyyy HH:mm``), so a format without ``%`` is
read as one: the usual letters are translated (``y`` year, ``M`` month, ``d`` day, ``H``/``h`` hour,
``m`` minute, ``s`` second, ``S`` fraction, ``E`` weekday, ``a`` AM/PM, ``X``/``x``/``Z`` offset,
``z`` zone name, ``D`` day of year), ``'...'`` is literal text and ``''`` a quote; any other letter is
refused, naming it. Without a format the value is written as ISO-8601. ``timezone='Europe/Paris'``
converts an aware value first.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, time
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = ["format_date", "to_datetime"]


def to_datetime(value: object) -> date:
    """A ``date`` / ``datetime`` from a value or its ISO-8601 text (``Z`` accepted); ``ValueError`` otherwise."""
    if isinstance(value, (date, datetime)):
        return value
    if isinstance(value, str):
        text = value.strip()
        try:
            return date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        except ValueError:
            pass
    raise ValueError(f"date: expected a date, a datetime or ISO-8601 text, got {value!r}")


def format_date(value: object, fmt: str | None = None, timezone_name: str | None = None) -> str:
    moment = to_datetime(value)
    if timezone_name is not None:
        if not isinstance(moment, datetime) or moment.tzinfo is None:
            raise ValueError(f"date: timezone={timezone_name!r} needs a datetime with an offset, got {value!r}")
        try:
            moment = moment.astimezone(ZoneInfo(timezone_name))
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"date: unknown timezone {timezone_name!r}") from None
    if fmt is None:
        return moment.isoformat()
    if not isinstance(fmt, str):
        raise ValueError(f"date: the format must be a string, got {fmt!r}")
    if "%" in fmt:
        return moment.strftime(fmt)
    return "".join(part(moment) for part in _java_pattern(fmt))


# -- Java (DateTimeFormatter-style) patterns ------------------------------------------------------------------

_Part = Callable[[date], str]


def _as_datetime(d: date) -> datetime:
    return d if isinstance(d, datetime) else datetime.combine(d, time())


def _offset(d: date, colon: bool, z_for_zero: bool) -> str:
    if not isinstance(d, datetime) or d.utcoffset() is None:
        raise ValueError("date: the pattern asks for an offset but the value has none")
    offset = d.utcoffset()
    assert offset is not None
    seconds = int(offset.total_seconds())
    if seconds == 0 and z_for_zero:
        return "Z"
    sign = "+" if seconds >= 0 else "-"
    hours, minutes = divmod(abs(seconds) // 60, 60)
    return f"{sign}{hours:02d}:{minutes:02d}" if colon else f"{sign}{hours:02d}{minutes:02d}"


def _fraction(width: int) -> _Part:
    return lambda d: f"{_as_datetime(d).microsecond:06d}{'0' * max(0, width - 6)}"[:width]


def _hour12(d: date) -> int:
    return _as_datetime(d).hour % 12 or 12


def _letter(letter: str, width: int) -> _Part:
    """The formatter of ``width`` repetitions of a pattern letter."""
    def pad(get: Callable[[datetime], int]) -> _Part:
        return lambda d: f"{get(_as_datetime(d)):0{width}d}"

    if letter in "yu":
        return (lambda d: f"{d.year % 100:02d}") if width == 2 else (lambda d: f"{d.year:0{width}d}")
    if letter in "ML":
        if width >= 4:
            return lambda d: _as_datetime(d).strftime("%B")
        if width == 3:
            return lambda d: _as_datetime(d).strftime("%b")
        return pad(lambda d: d.month)
    if letter == "d":
        return pad(lambda d: d.day)
    if letter == "D":
        return pad(lambda d: d.timetuple().tm_yday)
    if letter == "H":
        return pad(lambda d: d.hour)
    if letter == "h":
        return lambda d: f"{_hour12(d):0{width}d}"
    if letter == "m":
        return pad(lambda d: d.minute)
    if letter == "s":
        return pad(lambda d: d.second)
    if letter == "S":
        return _fraction(width)
    if letter == "E":
        return (lambda d: _as_datetime(d).strftime("%A")) if width >= 4 else (lambda d: _as_datetime(d).strftime("%a"))
    if letter == "a":
        return lambda d: _as_datetime(d).strftime("%p")
    if letter == "X":
        return lambda d: _offset(d, colon=width >= 3 or width == 1, z_for_zero=True)
    if letter == "x":
        return lambda d: _offset(d, colon=width >= 3, z_for_zero=False)
    if letter == "Z":
        return lambda d: _offset(d, colon=width >= 5, z_for_zero=False)
    if letter == "z":
        return lambda d: (_as_datetime(d).tzname() or "") if isinstance(d, datetime) else ""
    raise ValueError(f"date: the pattern letter {letter!r} is not supported (use y M d H h m s S E a X x Z z D, "
                     "or a strftime format with %)")


def _literal(text: str) -> _Part:
    return lambda d: text


def _java_pattern(fmt: str) -> list[_Part]:
    parts: list[_Part] = []
    i, n = 0, len(fmt)
    while i < n:
        c = fmt[i]
        if c == "'":
            if fmt.startswith("''", i):
                parts.append(_literal("'"))
                i += 2
                continue
            end = fmt.find("'", i + 1)
            if end < 0:
                raise ValueError(f"date: unterminated quote in the pattern {fmt!r}")
            parts.append(_literal(fmt[i + 1:end]))
            i = end + 1
        elif c.isascii() and c.isalpha():
            k = i
            while k < n and fmt[k] == c:
                k += 1
            parts.append(_letter(c, k - i))
            i = k
        else:
            parts.append(_literal(c))
            i += 1
    return parts

