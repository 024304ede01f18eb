"""Time-window partitions: one partition per window between consecutive ticks of a cron grid.

- Windows are half-open `[tick_i, tick_{i+1})` in the partition's timezone and DST-correct: a
  daily window on a spring-forward day lasts 23 h, on a fall-back day 25 h.
- The first window starts at the first tick at or after `start`; `end` is exclusive (the end
  of the last window). Only windows that have ended by the current time exist, plus
  `end_offset` more (negative values hide the most recent ones).
- A key is the window start formatted with `fmt` in the partition's timezone.
- **Repeated wall times.** When two ticks format to the same text (the repeated hour of a DST
  fall-back, e.g. hourly keys in US/Eastern on 2024-11-03), BOTH keys get their UTC offset
  appended: `"2024-11-03T01:00-04:00"` then `"2024-11-03T01:00-05:00"`. Every other key has no
  suffix. `time_window`, `index` and membership parse the suffixed form back.
- Key `i` and the index of a key are computed arithmetically for hourly, daily, weekly,
  monthly and similar regular crons, so sequences of any length are lazy and O(1) to index.
"""

from __future__ import annotations

import re
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from .base import (
    UTC, DynamicKeys, KeySequence, PartitionsDefinition, TimeWindow, localize, now_utc,
    resolve_timezone, to_datetime,
)
from .time_grid import check_cron, make_grid

_SUFFIX = re.compile(r"([+-])(\d\d):(\d\d)$")


_CACHE_SIZE = 4096  # keys / positions memoised per definition (multi keys reuse them a lot)
_DIRECTIVES = {"Y": ("year", 4), "m": ("month", 2), "d": ("day", 2), "H": ("hour", 2),
               "M": ("minute", 2), "S": ("second", 2)}
_DEFAULTS = {"year": 1900, "month": 1, "day": 1, "hour": 0, "minute": 0, "second": 0}


def _compile_parser(fmt: str) -> tuple[re.Pattern[str] | None, tuple[str, ...]]:
    """A strict regex for formats made only of %Y %m %d %H %M %S %% and literals (much faster
    than strptime); (None, ()) for anything else."""
    rx, fields, i = [], [], 0
    while i < len(fmt):
        if fmt[i] != "%":
            rx.append(re.escape(fmt[i]))
            i += 1
            continue
        d = fmt[i + 1 : i + 2]
        if d == "%":
            rx.append("%")
        elif d in _DIRECTIVES:
            attr, width = _DIRECTIVES[d]
            if attr in fields:
                return None, ()
            rx.append(rf"(\d{{{width}}})")
            fields.append(attr)
        else:
            return None, ()
        i += 2
    return re.compile("".join(rx), re.ASCII), tuple(fields)


def _default_fmt(cron: str) -> str:
    parts = cron.split()
    if len(parts) == 6:
        return "%Y-%m-%dT%H:%M:%S"
    single = all(p.isascii() and p.isdigit() for p in parts[:2])
    return "%Y-%m-%d" if single else "%Y-%m-%dT%H:%M"


def _offset_text(off: timedelta | None) -> str:
    minutes = int((off or timedelta()).total_seconds()) // 60
    sign = "-" if minutes < 0 else "+"
    h, m = divmod(abs(minutes), 60)
    return f"{sign}{h:02d}:{m:02d}"


class TimeWindowPartitions(PartitionsDefinition):
    """Partitions on any cron grid, e.g. `TimeWindowPartitions("0 6 * * 1-5", "2024-01-01")`."""

    is_time_based = True

    def __init__(
        self, cron: str, start: Any, end: Any = None, timezone: str = "UTC",
        fmt: str | None = None, end_offset: int = 0,
    ) -> None:
        tz = resolve_timezone(timezone)
        self.cron: str = check_cron(cron)
        self.timezone: str = tz.key
        self.fmt: str = fmt or _default_fmt(cron)
        if not isinstance(self.fmt, str):
            raise ValueError(f"fmt must be a strftime format string, got {fmt!r}")
        if not isinstance(end_offset, int) or isinstance(end_offset, bool):
            raise ValueError(f"end_offset must be an int, got {end_offset!r}")
        self.end_offset: int = end_offset
        self._tz: ZoneInfo = tz
        self._start = to_datetime(start, tz, "start")
        self._end = None if end is None else to_datetime(end, tz, "end")
        if self._end is not None and self._end <= self._start:
            raise ValueError(f"end ({end!r}) must be after start ({start!r})")
        self.start: datetime = self._start.astimezone(tz)
        self.end: datetime | None = None if self._end is None else self._end.astimezone(tz)
        self._key_cache: dict[int, str] = {}
        self._pos_cache: dict[str, int] = {}
        self._fast, self._fields = _compile_parser(self.fmt)
        self._grid = make_grid(self.cron, tz, self._start, self._end)
        self._max = None if self._end is None else max(0, self._grid.count(self._end, False) - 1)
        self._check_fmt()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_key_cache": {}, "_pos_cache": {}}

    def _check_fmt(self) -> None:
        try:
            first, second = self._key_at(0), self._key_at(1)
            ok = self._locate(first) == 0 and first != second and self._locate(second) == 1
        except (ValueError, IndexError):
            ok = False
        except Exception as exc:  # a broken format string
            raise ValueError(f"fmt {self.fmt!r} is not a usable strftime format: {exc}") from None
        if not ok:
            raise ValueError(
                f"fmt {self.fmt!r} does not round-trip: keys must be distinct and parse back"
            )

    # -- keys <-> grid positions ---------------------------------------------------------------

    def _key_at(self, i: int) -> str:
        cache = self._key_cache
        key = cache.get(i)
        if key is None:
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            key = cache[i] = self._format_tick(i)
        return key

    def _format_tick(self, i: int) -> str:
        t = self._grid.tick(i).astimezone(self._tz)
        text = t.strftime(self.fmt)
        other = t.replace(fold=1 - t.fold)
        off = t.utcoffset()
        if other.utcoffset() != off and other.strftime(self.fmt) == text:
            if self._grid.is_tick(other.astimezone(UTC)):
                text += _offset_text(off)
        return text

    def _parse(self, text: str) -> datetime:
        if self._fast is None:
            return datetime.strptime(text, self.fmt)
        m = self._fast.fullmatch(text)
        if m is None:
            raise ValueError(text)
        values = dict(_DEFAULTS)
        values.update(zip(self._fields, map(int, m.groups())))
        return datetime(**values)

    def _locate(self, key: Any) -> int:
        """Grid position of `key`; ValueError naming the key if it is malformed or off-grid."""
        if not isinstance(key, str):
            raise ValueError(f"partition key {key!r} is not a string")
        cache = self._pos_cache
        pos = cache.get(key)
        if pos is None:
            if len(cache) >= _CACHE_SIZE:
                cache.clear()
            pos = cache[key] = self._locate_uncached(key)
        return pos

    def _locate_uncached(self, key: str) -> int:
        offset = None
        try:
            parsed = self._parse(key)
        except ValueError:
            m = _SUFFIX.search(key)
            try:
                if m is None:
                    raise ValueError
                parsed = self._parse(key[: m.start()])
                sign = -1 if m.group(1) == "-" else 1
                offset = timezone(sign * timedelta(hours=int(m.group(2)), minutes=int(m.group(3))))
            except ValueError:
                raise ValueError(
                    f"partition key {key!r} does not match the format {self.fmt!r}"
                ) from None
        if parsed.tzinfo is not None:
            instant = parsed.astimezone(UTC)
        elif offset is not None:
            instant = parsed.replace(tzinfo=offset).astimezone(UTC)
        else:
            instant = localize(parsed, self._tz)
        pos = self._grid.count(instant, True)
        try:
            ok = self._key_at(pos) == key and (self._max is None or pos < self._max)
        except IndexError:
            ok = False
        if not ok:
            raise ValueError(f"partition key {key!r} is not a window of {self!r}")
        return pos

    def _count(self, current_time: Any) -> int:
        now = now_utc(current_time, self._tz)
        n = max(0, self._grid.count(now, False) - 1) + self.end_offset
        if self._max is not None:
            n = min(n, self._max)
        return max(0, n)

    # -- public API ----------------------------------------------------------------------------

    def get_partition_keys(
        self, current_time: datetime | None = None, dynamic_partitions: DynamicKeys | None = None
    ) -> KeySequence:
        return TimeKeySequence(self, self._count(current_time))

    def has_partition_key(
        self, key: Any, current_time: datetime | None = None,
        dynamic_partitions: DynamicKeys | None = None,
    ) -> bool:
        try:
            return self._locate(key) < self._count(current_time)
        except ValueError:
            return False

    def validate_key(
        self, key: Any, current_time: datetime | None = None,
        dynamic_partitions: DynamicKeys | None = None,
    ) -> None:
        pos = self._locate(key)
        if pos >= self._count(current_time):
            raise ValueError(f"partition key {key!r} does not exist yet: its window has not ended")

    def time_window(self, key: str) -> TimeWindow:
        """The window `[start, end)` of `key`, aware datetimes in the partition's timezone.

        Works for any key on the grid before `end`, including windows that have not ended yet;
        ValueError naming the key otherwise."""
        pos = self._locate(key)
        return TimeWindow(
            self._grid.tick(pos).astimezone(self._tz), self._grid.tick(pos + 1).astimezone(self._tz)
        )

    def keys_in_time_range(
        self, start: Any, end: Any = None, current_time: datetime | None = None,
        dynamic_partitions: DynamicKeys | None = None,
    ) -> KeySequence:
        """Existing keys whose window start lies in `[start, end]` (end None = now)."""
        lo_t = to_datetime(start, self._tz, "start")
        hi_t = now_utc(current_time, self._tz) if end is None else to_datetime(end, self._tz, "end")
        n = self._count(current_time)
        lo = min(self._grid.count(lo_t, True), n)
        hi = min(self._grid.count(hi_t, False), n)
        return TimeKeySequence(self, n)[lo : max(lo, hi)]

    def _identity(self) -> tuple[Any, ...]:
        return (self.cron, self._start, self._end, self.timezone, self.fmt, self.end_offset)

    def _repr_args(self) -> list[str]:
        def text(dt: datetime) -> str:
            return dt.date().isoformat() if dt.time() == time() else dt.replace(tzinfo=None).isoformat()

        args = [repr(text(self.start))]
        if self.end is not None:
            args.append(f"end={text(self.end)!r}")
        if self.timezone != "UTC":
            args.append(f"timezone={self.timezone!r}")
        if self.end_offset:
            args.append(f"end_offset={self.end_offset}")
        return args

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.cron!r}, {', '.join(self._repr_args())})"


class TimeKeySequence(KeySequence):
    """The first `n` keys of a time-window definition, computed on demand."""

    __slots__ = ("_defn", "_n")

    def __init__(self, defn: TimeWindowPartitions, n: int) -> None:
        self._defn, self._n = defn, n

    def __len__(self) -> int:
        return self._n

    def _get(self, i: int) -> str:
        return self._defn._key_at(i)

    def _index(self, key: str) -> int | None:
        try:
            pos = self._defn._locate(key)
        except ValueError:
            return None
        return pos if pos < self._n else None


class _Fixed(TimeWindowPartitions):
    _CRON = ""
    _FMT = ""

    def __init__(
        self, start: Any, end: Any = None, timezone: str = "UTC", fmt: str | None = None,
        end_offset: int = 0,
    ) -> None:
        super().__init__(self._CRON, start, end, timezone, fmt or self._FMT, end_offset)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(self._repr_args())})"


class DailyPartitions(_Fixed):
    """One partition per local day; key `"%Y-%m-%d"`."""

    _CRON, _FMT = "0 0 * * *", "%Y-%m-%d"


class HourlyPartitions(_Fixed):
    """One partition per local hour; key `"%Y-%m-%dT%H:%M"` (see the module note on DST)."""

    _CRON, _FMT = "0 * * * *", "%Y-%m-%dT%H:%M"


class WeeklyPartitions(_Fixed):
    """One partition per week starting Monday; key = the Monday, `"%Y-%m-%d"`."""

    _CRON, _FMT = "0 0 * * 1", "%Y-%m-%d"


class MonthlyPartitions(_Fixed):
    """One partition per calendar month; key = its first day, `"%Y-%m-%d"`."""

    _CRON, _FMT = "0 0 1 * *", "%Y-%m-%d"
