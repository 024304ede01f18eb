"""Partition keys built from integers and string tables instead of one `strftime` per key.

`KeyFormat.compile(fmt)` accepts formats made only of %Y %m %d %H %M %S %% and literals whose
date directives all come before (or all after) their time directives, e.g. `"%Y-%m-%d"`,
`"%Y-%m-%dT%H:%M"`, `"%Y%m%d%H"`, `"%H:%M %d/%m/%Y"`. A key is then `date text + time text`:
the date text of each local day is built once per month from tables, the time text once per
distinct time of day, and a run of evenly spaced wall times becomes keys day by day with one
string concatenation per key. The output is exactly what `strftime` gives for the same wall
times (years before 1000, which the platform may not pad, are formatted by `strftime` itself).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import date
from typing import Any

DAY_US = 86_400_000_000
EPOCH_ORDINAL = date(1970, 1, 1).toordinal()
_DATE, _TIME = frozenset("Ymd"), frozenset("HMS")
_TWO = tuple(f"{i:02d}" for i in range(100))
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)

Token = tuple[str, str]  # ("", literal text) or (directive letter, "")


def _tokens(fmt: str) -> list[Token] | None:
    """`fmt` as literals and directives; None if it uses anything but %Y %m %d %H %M %S %%,
    or a directive twice."""
    out: list[Token] = []
    seen: set[str] = set()
    i = 0
    while i < len(fmt):
        ch = fmt[i]
        if ch != "%":
            out.append(("", ch))
            i += 1
            continue
        d = fmt[i + 1 : i + 2]
        if d == "%":
            out.append(("", "%"))
        elif d in _DATE or d in _TIME:
            if d in seen:
                return None
            seen.add(d)
            out.append((d, ""))
        else:
            return None
        i += 2
    return out


def _days_in_month(y: int, m: int) -> int:
    if m == 2 and y % 4 == 0 and (y % 100 != 0 or y % 400 == 0):
        return 29
    return _MONTH_DAYS[m]


def _year_text(y: int) -> str:
    return f"{y:04d}" if y >= 1000 else date(y, 1, 1).strftime("%Y")


class _Texts(dict):  # type: ignore[type-arg]
    """A memo whose misses are computed by `make` (hits stay at C speed in comprehensions)."""

    __slots__ = ("_make",)

    def __init__(self, make: Callable[[int], str]) -> None:
        super().__init__()
        self._make = make

    def __missing__(self, key: int) -> str:
        text = self[key] = self._make(key)
        return text


class KeyFormat:
    """Formats local wall times given as microseconds since 1970-01-01T00:00 (naive)."""

    __slots__ = ("fmt", "_before", "_after", "_has_day", "_time", "_date_first", "_time_texts",
                 "_months", "_days")

    def __init__(self, fmt: str, date_part: list[Token], time_part: list[Token], date_first: bool) -> None:
        self.fmt = fmt
        cut = next((i for i, (d, _) in enumerate(date_part) if d == "d"), len(date_part))
        self._before, self._after = date_part[:cut], date_part[cut + 1 :]  # around the day
        self._has_day = cut < len(date_part)
        self._time, self._date_first = time_part, date_first
        self._time_texts = _Texts(self.time_text)
        self._months: dict[tuple[int, int], tuple[str, str]] = {}
        self._days: dict[tuple[int, int, int], tuple[str, ...]] = {}  # (step, sod, count) -> times

    @classmethod
    def compile(cls, fmt: str) -> KeyFormat | None:
        """The table formatter for `fmt`, or None when `fmt` needs `strftime`."""
        tokens = _tokens(fmt)
        if tokens is None:
            return None
        dates = [i for i, (d, _) in enumerate(tokens) if d in _DATE]
        times = [i for i, (d, _) in enumerate(tokens) if d in _TIME]
        if not dates or not times:
            split, date_first = (len(tokens), True) if dates else (0, True)
        elif dates[-1] < times[0]:
            split, date_first = times[0], True
        elif times[-1] < dates[0]:
            split, date_first = dates[0], False
        else:
            return None  # date and time directives interleave
        head, tail = tokens[:split], tokens[split:]
        return cls(fmt, head, tail, True) if date_first else cls(fmt, tail, head, False)

    def __reduce__(self) -> tuple[Any, ...]:
        return (KeyFormat.compile, (self.fmt,))  # the memo tables are rebuilt, not shipped

    # -- texts ---------------------------------------------------------------------------------

    @staticmethod
    def _render(tokens: list[Token], values: dict[str, str]) -> str:
        return "".join(values[d] if d else text for d, text in tokens)

    def _month_parts(self, y: int, m: int) -> tuple[str, str]:
        """The date text of month `(y, m)` before and after its day of the month (memoised)."""
        parts = self._months.get((y, m))
        if parts is None:
            if len(self._months) >= 4096:
                self._months.clear()
            values = {"Y": _year_text(y), "m": _TWO[m]}
            parts = (self._render(self._before, values), self._render(self._after, values))
            self._months[y, m] = parts
        return parts

    def day_text(self, day: int) -> str:
        """The date text of local day `day` (days since 1970-01-01)."""
        d = date.fromordinal(day + EPOCH_ORDINAL)
        before, after = self._month_parts(d.year, d.month)
        return before + _TWO[d.day] + after if self._has_day else before

    def day_texts(self, first: int, last: int) -> list[str]:
        """Date texts of the local days `first..last`, built month by month."""
        out: list[str] = []
        d = date.fromordinal(first + EPOCH_ORDINAL)
        y, m, dd = d.year, d.month, d.day
        left = last - first + 1
        while left > 0:
            take = min(_days_in_month(y, m) - dd + 1, left)
            before, after = self._month_parts(y, m)
            if not self._has_day:
                out += [before] * take
            elif after:
                out += [before + x + after for x in _TWO[dd : dd + take]]
            else:
                out += map(before.__add__, _TWO[dd : dd + take])
            left -= take
            y, m, dd = (y + 1, 1, 1) if m == 12 else (y, m + 1, 1)
        return out

    def time_text(self, sod: int) -> str:
        """The time text of `sod` microseconds after local midnight."""
        s = sod // 1_000_000
        values = {"H": _TWO[s // 3600], "M": _TWO[s // 60 % 60], "S": _TWO[s % 60]}
        return self._render(self._time, values)

    # -- keys ----------------------------------------------------------------------------------

    def keys(self, walls: Sequence[int]) -> list[str]:
        """The keys of ascending local wall times (a `range` is formatted day by day)."""
        if not walls:
            return []
        if isinstance(walls, range):
            if walls.step % DAY_US == 0:
                return self._keys_across_days(walls)
            if DAY_US % walls.step == 0:
                return self._keys_within_days(walls)
        first, last = walls[0] // DAY_US, walls[-1] // DAY_US
        times = self._time_texts
        if last - first < 4 * len(walls):  # dense: build every day's text from the month tables
            days = self.day_texts(first, last)
            if self._date_first:
                return [days[x // DAY_US - first] + times[x % DAY_US] for x in walls]
            return [times[x % DAY_US] + days[x // DAY_US - first] for x in walls]
        sparse = _Texts(self.day_text)
        if self._date_first:
            return [sparse[x // DAY_US] + times[x % DAY_US] for x in walls]
        return [times[x % DAY_US] + sparse[x // DAY_US] for x in walls]

    def _keys_within_days(self, walls: range) -> list[str]:
        """Several keys a day at a step dividing the day: every whole day shares its time texts."""
        step, start, n = walls.step, walls.start, len(walls)
        first = start // DAY_US
        days = self.day_texts(first, walls[-1] // DAY_US)
        memo, texts, date_first = self._days, self._time_texts, self._date_first
        out: list[str] = []
        i, day = 0, first
        while i < n:
            sod = start + i * step - day * DAY_US
            count = min(n - i, -(-(DAY_US - sod) // step))  # ticks left before midnight
            times = memo.get((step, sod, count))
            if times is None:
                if len(memo) >= 1024:
                    memo.clear()
                times = memo[step, sod, count] = tuple(texts[sod + j * step] for j in range(count))
            text = days[day - first]
            if date_first:
                out += map(text.__add__, times)
            else:
                out += [t + text for t in times]
            i += count
            day += 1
        return out

    def _keys_across_days(self, walls: range) -> list[str]:
        """One key every `step` whole days, all at the same time of day."""
        first, stride = walls.start // DAY_US, walls.step // DAY_US
        days = self.day_texts(first, walls[-1] // DAY_US)[::stride]
        time_text = self.time_text(walls.start % DAY_US)
        if not time_text:
            return days
        return [d + time_text for d in days] if self._date_first else [time_text + d for d in days]
