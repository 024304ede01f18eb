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
- Iterating a range of keys works in chunks: the grid hands out its ticks in bulk and, for
  formats made of %Y %m %d %H %M %S (see `key_format`), keys are built from string tables, not
  with one `strftime` per key. Ticks on a repeated wall time still take the per-key path above.
- With an `end`, no work ever looks at grid ticks far beyond it, however late the current time.
- `cron` takes 5 fields or a macro such as `@daily`; `cron` keeps what the user wrote and
  `cron_expression` the 5-field form that is evaluated.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from datetime import datetime, time, timedelta, timezone
from itertools import chain
from typing import Any
from zoneinfo import ZoneInfo

from .base import (
    UTC,
    DynamicKeys,
    KeySequence,
    PartitionsDefinition,
    TimeWindow,
    check_storable_key,
    localize,
    now_utc,
    resolve_timezone,
    to_datetime,
)
from .key_format import KeyFormat
from .time_grid import CronGrid, MinuteGrid, check_cron, from_us, local_runs, make_grid

_SUFFIX = re.compile(r"([+-])(\d\d):(\d\d)$")


_CACHE_SIZE = 4096  # keys / positions memoised per definition (multi keys reuse them a lot)
_BULK_MIN = 16  # shorter ranges are iterated key by key, through the key cache
_CHUNK_FIRST, _CHUNK_MAX = 256, 4096  # keys built at once while iterating (doubling)
_SUFFIX_LEN = len("+00:00")
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
    """`%Y-%m-%d` for a grid ticking at one time of day, else `%Y-%m-%dT%H:%M` (5-field cron)."""
    parts = cron.split()
    single = all(p.isascii() and p.isdigit() for p in parts[:2])
    return "%Y-%m-%d" if single else "%Y-%m-%dT%H:%M"


def _utf8_len(text: str) -> int:
    return len(text.encode("utf-8"))


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
        self.cron_expression: str = check_cron(cron)
        self.cron: str = cron
        self.timezone: str = tz.key
        self.fmt: str = fmt or _default_fmt(self.cron_expression)
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
        self._chunk_cache: dict[tuple[int, int], list[str]] = {}  # at most _CACHE_SIZE keys in all
        self._fast, self._fields = _compile_parser(self.fmt)
        self._keyfmt = KeyFormat.compile(self.fmt)
        try:
            self._grid = make_grid(self.cron_expression, tz, self._start, self._end)
            self._max = None if self._end is None else max(0, self._grid.count(self._end, False) - 1)
            self._check_fmt()
        except OverflowError:
            raise ValueError(
                f"start ({start!r}) and end ({end!r}): the first windows of {cron!r} in {tz.key} "
                "fall outside the supported years 1 to 9999"
            ) from None

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_key_cache": {}, "_pos_cache": {}, "_chunk_cache": {}}

    def _check_fmt(self) -> None:
        """Keys must be distinct, parse back, and be storable (see `check_storable_key`)."""
        try:
            # the first two ticks, whether or not the second starts a window (a definition may have one)
            first, second = self._key_at(0), self._key_at(1)
            ok = self._position(first) == 0 and first != second and self._position(second) == 1
        except (ValueError, IndexError):
            ok = False
        except OverflowError:  # ticks beyond year 9999 (or before 1): the caller names start/end
            raise
        except Exception as exc:  # noqa: BLE001 - a broken format string fails in many ways
            raise ValueError(f"fmt {self.fmt!r} is not a usable strftime format: {exc}") from None
        if not ok:
            raise ValueError(
                f"fmt {self.fmt!r} does not round-trip: keys must be distinct and parse back"
            )
        may_suffix = self._may_suffix()
        try:
            keys = self._sample_keys(first, second)
            for key in keys:
                check_storable_key(key)
            longest = max(keys, key=_utf8_len)
            if may_suffix:
                check_storable_key(longest + _offset_text(timedelta()))
        except ValueError as exc:
            raise ValueError(f"fmt {self.fmt!r} makes keys a database cannot store: {exc}") from None
        self._key_bytes = _utf8_len(longest) + (_SUFFIX_LEN if may_suffix else 0)

    def _sample_keys(self, *keys: str) -> list[str]:
        """`keys` plus, for a format that needs `strftime`, the texts of dates spanning every
        month and weekday (names like `%B` or `%A` change a key's length)."""
        out = list(keys)
        if self._keyfmt is None:
            out += [datetime(2001, m, d, h).strftime(self.fmt)
                    for m in range(1, 13) for d in range(1, 8) for h in (0, 12)]
        return out

    def _may_suffix(self) -> bool:
        """Whether some key may carry the offset suffix of a repeated wall time (sub-daily grids)."""
        return self.timezone != "UTC" and isinstance(self._grid, (MinuteGrid, CronGrid))

    def _max_key_bytes(self) -> int | None:
        return self._key_bytes

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
        return self._format_instant(self._grid.tick(i))

    def _format_instant(self, tick: datetime) -> str:
        """The key of a grid tick (UTC) with `strftime`: the reference for every other path."""
        t = tick.astimezone(self._tz)
        text = t.strftime(self.fmt)
        other = t.replace(fold=1 - t.fold)
        off = t.utcoffset()
        if other.utcoffset() != off and other.strftime(self.fmt) == text:
            if self._grid.is_tick(other.astimezone(UTC)):
                text += _offset_text(off)
        return text

    def _keys_between(self, lo: int, hi: int) -> list[str]:
        """Keys `lo..hi-1` built in bulk from the grid's tick runs and the key tables. Their positions
        are remembered (up to the cache size), so looking a key up right after listing it is free."""
        keyfmt = self._keyfmt
        assert keyfmt is not None
        out: list[str] = []
        for run in self._grid.tick_runs(lo, hi):
            for part in local_runs(self._tz, run):
                if isinstance(part, int):  # a repeated wall time: may need the offset suffix
                    out.append(self._format_instant(from_us(part)))
                else:
                    out += keyfmt.keys(part)
        if len(out) <= _CACHE_SIZE:
            cache = self._pos_cache
            if len(cache) + len(out) > _CACHE_SIZE:
                cache.clear()
            cache.update(zip(out, range(lo, hi)))
        return out

    def _key_chunks(self, lo: int, hi: int, reverse: bool) -> Iterator[list[str]]:
        """Keys `lo..hi-1` as lists of growing size, backwards if `reverse`. Chunks are memoised
        up to `_CACHE_SIZE` keys in all, so a short range iterated again and again (the inner
        dimension of a multi key) is built once."""
        size = _CHUNK_FIRST
        while lo < hi:
            a, b = (max(lo, hi - size), hi) if reverse else (lo, min(hi, lo + size))
            keys = self._chunk(a, b)
            if reverse:
                keys = keys[::-1]
                hi = a
            else:
                lo = b
            size = min(2 * size, _CHUNK_MAX)
            yield keys

    def _chunk(self, a: int, b: int) -> list[str]:
        """Keys `a..b-1` (memoised; never mutate the list). Ticks outside the datetime range
        are formatted key by key, so the error is raised where strftime would raise it."""
        cache = self._chunk_cache
        keys = cache.get((a, b))
        if keys is None:
            try:
                keys = self._keys_between(a, b)
            except OverflowError:
                keys = [self._key_at(i) for i in range(a, b)]
            if sum(map(len, cache.values())) + len(keys) > _CACHE_SIZE:
                cache.clear()
            if len(keys) <= _CACHE_SIZE:
                cache[a, b] = keys
        return keys

    def _parse(self, text: str) -> datetime:
        if self._fast is None:
            return datetime.strptime(text, self.fmt)
        m = self._fast.fullmatch(text)
        if m is None:
            raise ValueError(text)
        values = dict(_DEFAULTS)
        values.update(zip(self._fields, map(int, m.groups())))
        return datetime(
            values["year"], values["month"], values["day"], values["hour"], values["minute"], values["second"]
        )

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
        pos = self._position(key)
        if self._max is not None and pos >= self._max:
            raise ValueError(f"partition key {key!r} is not a window of {self!r}")
        return pos

    def _position(self, key: str) -> int:
        """Grid position of the tick `key` names (a window's start, or the end of the last window)."""
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
        try:
            if parsed.tzinfo is not None:
                instant = parsed.astimezone(UTC)
            elif offset is not None:
                instant = parsed.replace(tzinfo=offset).astimezone(UTC)
            else:
                instant = localize(parsed, self._tz)
        except OverflowError:
            raise ValueError(f"partition key {key!r} is outside the supported years") from None
        if self._end is not None and instant > self._end:  # never run the grid past the end
            raise ValueError(f"partition key {key!r} is not a window of {self!r}: it starts after end")
        pos = self._grid.count(instant, True)
        try:
            ok = self._key_at(pos) == key
        except IndexError:
            ok = False
        if not ok:
            raise ValueError(f"partition key {key!r} is not a window of {self!r}")
        return pos

    def _count(self, current_time: Any) -> int:
        """How many windows exist at `current_time`. Past the end, only the few ticks after it
        that a negative `end_offset` waits for are looked at, never the grid up to now."""
        now = now_utc(current_time, self._tz)
        if self._max is not None and self._end is not None and now >= self._end:
            need = self._max + 1 - min(0, self.end_offset)  # ticks <= now for every window to exist
            try:
                if self._grid.tick(need - 1) <= now:
                    return self._max
            except IndexError:
                pass
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

    def window_bounds(self, keys: Sequence[str]) -> list[tuple[float, float]]:
        """The windows of `keys` as `(start, end)` Unix seconds, from the grid's ticks in bulk when the
        keys lie close together (the next window of a backfill), else key by key."""
        positions = [self._locate(k) for k in keys]
        if not positions:
            return []
        lo, hi = min(positions), max(positions) + 2
        if hi - lo > 4 * len(positions) + 64:  # far apart: only the ticks needed
            return [(self._grid.tick(p).timestamp(), self._grid.tick(p + 1).timestamp()) for p in positions]
        ticks = [u / 1e6 for run in self._grid.tick_runs(lo, hi) for u in run]
        return [(ticks[p - lo], ticks[p - lo + 1]) for p in positions]

    def time_window(self, key: str) -> TimeWindow:
        """The window `[start, end)` of `key`, aware datetimes in the partition's timezone.

        Works for any key on the grid before `end`, including windows that have not ended yet;
        ValueError naming the key otherwise."""
        pos = self._locate(key)
        return TimeWindow(
            self._grid.tick(pos).astimezone(self._tz), self._grid.tick(pos + 1).astimezone(self._tz)
        )

    def boundary(self, i: int) -> datetime:
        """The start of window `i` (= the end of window `i - 1`) as an aware UTC datetime, for any
        `i >= 0` on the grid (IndexError past the last tick of a finite cron)."""
        return self._grid.tick(i)

    def window_positions(self, start: datetime, end: datetime) -> tuple[int, int]:
        """Positions `[lo, hi)` of the windows that overlap the instants `[start, end)` (aware), whether
        they have ended yet or not; windows past the definition's `end` are left out."""
        lo = max(0, self._grid.count(start, False) - 1)
        hi = self._grid.count(end, True)
        if self._max is not None:
            hi = min(hi, self._max)
        return min(lo, max(0, hi)), max(0, hi)

    def keys_in_time_range(
        self, start: Any, end: Any = None, current_time: datetime | None = None,
        dynamic_partitions: DynamicKeys | None = None,
    ) -> KeySequence:
        """Existing keys whose window start lies in `[start, end]` (end None = now)."""
        lo_t = to_datetime(start, self._tz, "start")
        hi_t = now_utc(current_time, self._tz) if end is None else to_datetime(end, self._tz, "end")
        if self._end is not None:  # positions past the end are clipped anyway: do not count them
            lo_t, hi_t = min(lo_t, self._end), min(hi_t, self._end)
        n = self._count(current_time)
        lo = min(self._grid.count(lo_t, True), n)
        hi = min(self._grid.count(hi_t, False), n)
        return TimeKeySequence(self, n)[lo : max(lo, hi)]

    def _identity(self) -> tuple[Any, ...]:
        return (self.cron_expression, self._start, self._end, self.timezone, self.fmt, self.end_offset)

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

    def _iter_range(self, lo: int, hi: int, reverse: bool) -> Iterator[str]:
        if hi - lo < _BULK_MIN or self._defn._keyfmt is None:
            return super()._iter_range(lo, hi, reverse)
        return chain.from_iterable(self._defn._key_chunks(lo, hi, reverse))


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
