"""Cron grids: the increasing instants that bound time windows, with O(1) arithmetic for the
regular shapes and lazy, cached cronsim iteration for everything else.

A grid is anchored at its first tick at or after the partition start; tick `i` is the start of
window `i` and tick `i + 1` its end. All instants cross this interface as aware UTC datetimes,
so comparisons never fall into Python's same-tzinfo wall-clock arithmetic.

Regular shapes (5-field crons, plain integers, no steps or names):
- `MINUTES * * * *` (MINUTES: numbers, ranges, lists, `*/n` steps) when the zone's UTC offset
  modulo one hour is constant over the grid's span: fixed minutes of every UTC hour (`MinuteGrid`);
- `M H * * DOW` (DOW `*` or a list/range of weekdays): local dates on a weekly pattern (`DayGrid`);
- `M H D MON *` with D <= 28 (MON `*` or a list/range of months): a yearly pattern (`MonthGrid`).
Times that fall into a DST gap move forward to the first valid minute and ambiguous times take
their first occurrence, exactly as cronsim does.

Every grid also hands out whole runs of ticks at once (`tick_runs`), as `range`s where the ticks
are evenly spaced, so that iterating a million keys costs integer arithmetic, not a datetime per
key; `local_runs` turns such runs into local wall times using the zone's offset changes, which are
found once per zone and year (`offset_changes`).
"""

from __future__ import annotations

import bisect
import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from cronsim import CronSim, CronSimError

from .base import UTC, localize

US = timedelta(microseconds=1)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
EPOCH_ORDINAL = EPOCH.date().toordinal()
SECOND_US = 1_000_000
HOUR_US = 3_600_000_000
DAY_US = 86_400_000_000
ONE_SECOND = timedelta(seconds=1)
Ticks = Sequence[int]  # ascending instants in microseconds since the epoch (a range or a list)

# Cron macros and their 5-field equivalents (@reboot is not a time grid, so it is refused).
CRON_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRON_FORMS = (
    "anachron takes 5-field cron (minute hour day month weekday), e.g. '0 6 * * 1-5', "
    f"or one of the macros {', '.join(CRON_MACROS)}"
)


def to_us(dt: datetime) -> int:
    """Microseconds since the epoch of an aware datetime."""
    return (dt - EPOCH) // US


def from_us(us: int) -> datetime:
    return EPOCH + timedelta(microseconds=us)


def expand_cron(cron: str) -> str:
    """The 5-field form of a cron macro (`@daily` -> `0 0 * * *`); anything else unchanged."""
    return CRON_MACROS.get(cron.strip().lower(), cron) if isinstance(cron, str) else cron


def check_cron(cron: object, field: str = "cron") -> str:
    """Validate a 5-field cron expression or macro and return the 5-field form to evaluate;
    ValueError naming `field` otherwise.

    cronsim would also take a 6-field expression (a leading seconds field), which would silently
    tick every second or shift every tick; anachron's grids and keys are minute-based, so only
    5 fields are accepted."""
    if not isinstance(cron, str) or not cron.strip():
        raise ValueError(f"{field} must be a cron expression string, got {cron!r}; {_CRON_FORMS}")
    text = cron.strip()
    if text.startswith("@"):
        if text.lower() not in CRON_MACROS:
            why = "is unknown"
            if text.lower() == "@reboot":
                why = "runs once at start-up, not on a time grid"
            raise ValueError(f"{field}: the macro {cron!r} {why}; {_CRON_FORMS}")
        return CRON_MACROS[text.lower()]
    fields = text.split()
    if len(fields) != 5:
        raise ValueError(f"{field}: {cron!r} has {len(fields)} fields; {_CRON_FORMS}")
    try:
        CronSim(text, datetime(2000, 1, 1))
    except (CronSimError, ValueError, IndexError, KeyError, TypeError) as exc:
        raise ValueError(f"{field}: invalid cron expression {cron!r}: {exc}; {_CRON_FORMS}") from None
    return text


# ---------------------------------------------------------------------------------------------
# zone offsets, found in bulk

# tzdata's shortest-lived UTC offset lasted about 4 days (Africa/Freetown, 1939), so sampling every
# 2 days cannot step over a change and its reversal; each change is then bisected to the second.
_SAMPLE_US = 2 * DAY_US
_CHANGE_MARGIN_US = 2 * DAY_US  # larger than any offset (<= 26 h) and any offset change


def offset_us(tz: ZoneInfo, u: int) -> int:
    """The UTC offset of `tz` at instant `u` (microseconds; offsets change on whole seconds).
    OverflowError when the instant has no local datetime in `tz`."""
    try:
        off = datetime.fromtimestamp(u // SECOND_US, tz).utcoffset()
    except (ValueError, OSError) as exc:  # the year would leave 1..9999
        raise OverflowError(str(exc)) from None
    return 0 if off is None else off // US


@functools.lru_cache(maxsize=4096)
def _year_changes(tz: ZoneInfo, year: int) -> tuple[tuple[int, int, int], ...]:
    """`(instant, offset_before, offset_after)` (microseconds) of every UTC-offset change of `tz`
    at an instant in `(start of UTC year, start of the next]`."""
    a = to_us(datetime(year, 1, 1, tzinfo=UTC))
    end = datetime(year + 1, 1, 1) if year < 9999 else datetime.max
    b = to_us(end.replace(tzinfo=UTC))
    out: list[tuple[int, int, int]] = []
    t, off = a, offset_us(tz, a)
    while t < b:
        n = min(t + _SAMPLE_US, b)
        o = offset_us(tz, n)
        if o == off:
            t = n
            continue
        lo, hi = t // SECOND_US, n // SECOND_US  # `off` at lo, another at hi (tzdata is in seconds)
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if offset_us(tz, mid * SECOND_US) == off:
                lo = mid
            else:
                hi = mid
        t = hi * SECOND_US
        new = offset_us(tz, t)
        out.append((t, off, new))
        off = new  # scan on from the change: a second change may follow within the same sample
    return tuple(out)


def offset_changes(tz: ZoneInfo, a: int, b: int) -> list[tuple[int, int, int]]:
    """`(instant, offset_before, offset_after)` of every UTC-offset change of `tz` in `(a, b]`."""
    if tz.key == "UTC":
        return []
    y0, y1 = from_us(a).year, from_us(b).year
    return [c for y in range(max(1, y0 - 1), y1 + 1) for c in _year_changes(tz, y) if a < c[0] <= b]


def shift(ticks: Ticks, d: int) -> Ticks:
    """Every instant of `ticks` moved by `d` microseconds (a range stays a range)."""
    if d == 0:
        return ticks
    if isinstance(ticks, range):
        return range(ticks.start + d, ticks.stop + d, ticks.step)
    return [x + d for x in ticks]


def local_runs(tz: ZoneInfo, utc: Ticks) -> list[Ticks | int]:
    """Split ascending UTC instants into runs of local wall times (each run at one UTC offset,
    ranges kept as ranges). An instant whose wall time a fall-back repeats comes alone, as the
    UTC instant itself (an int): its key may need the offset suffix, which the caller decides."""
    if not utc:
        return []
    first, last = utc[0], utc[-1]
    changes = offset_changes(tz, first - _CHANGE_MARGIN_US, last + _CHANGE_MARGIN_US)
    if not changes:
        return [shift(utc, offset_us(tz, first))]
    out: list[Ticks | int] = []
    pos = 0
    for t, before, after in changes:
        fold = max(0, before - after)  # wall times in [t + after, t + before) occur twice
        i = bisect.bisect_left(utc, t - fold, pos)
        if i > pos:
            out.append(shift(utc[pos:i], before))
        j = bisect.bisect_left(utc, t + fold, i)
        out.extend(utc[i:j])
        pos = j
    if pos < len(utc):
        out.append(shift(utc[pos:], changes[-1][2]))
    return out


def walls_to_utc(tz: ZoneInfo, walls: Ticks) -> list[Ticks]:
    """The UTC instants of ascending local wall times (microseconds, naive), as runs: a wall time
    in a DST gap moves forward and a repeated one takes its first occurrence (`localize`)."""
    if not walls:
        return []
    first, last = walls[0], walls[-1]
    changes = offset_changes(tz, first - _CHANGE_MARGIN_US, last + _CHANGE_MARGIN_US)
    if not changes:
        return [shift(walls, -offset_us(tz, first))]
    out: list[Ticks] = []
    pos = 0
    for t, before, after in changes:
        i = bisect.bisect_left(walls, t + min(before, after), pos)  # skipped or repeated walls
        if i > pos:
            out.append(shift(walls[pos:i], -before))
        j = bisect.bisect_left(walls, t + max(before, after), i)
        if j > i:
            out.append([to_us(localize(from_us(w).replace(tzinfo=None), tz)) for w in walls[i:j]])
        pos = j
    if pos < len(walls):
        out.append(shift(walls[pos:], -changes[-1][2]))
    return out


class Grid(ABC):
    """Increasing window boundaries starting at the first tick >= the partition start."""

    @abstractmethod
    def tick(self, i: int) -> datetime:
        """Tick `i >= 0` (UTC); IndexError if the grid has fewer ticks."""

    @abstractmethod
    def count(self, x: datetime, strict: bool) -> int:
        """Number of ticks `<= x` (or `< x` if strict)."""

    @abstractmethod
    def is_tick(self, x: datetime) -> bool:
        """Whether `x` lies on the unanchored cron grid (independent of the start)."""

    def tick_runs(self, lo: int, hi: int) -> list[Ticks]:
        """Ticks `lo..hi-1` (`0 <= lo < hi`) as microseconds, in runs that concatenate in order."""
        return [[to_us(self.tick(i)) for i in range(lo, hi)]]


class MinuteGrid(Grid):
    """Ticks at fixed minutes of every hour of UTC time (the zone's offset modulo one hour is
    constant, so local minutes map to fixed UTC minutes)."""

    def __init__(self, offsets_us: Iterable[int], start: datetime) -> None:
        self._offs = sorted(set(offsets_us))
        self._set = frozenset(self._offs)
        self._k = len(self._offs)
        self._g0 = self._global(to_us(start), True)
        steps = {b - a for a, b in zip(self._offs, self._offs[1:] + [self._offs[0] + HOUR_US])}
        # evenly spaced minutes: tick number g is at g * step + offs[0]
        self._step = steps.pop() if len(steps) == 1 else None

    def _global(self, u: int, strict: bool) -> int:
        q, r = divmod(u, HOUR_US)
        return q * self._k + (bisect.bisect_left if strict else bisect.bisect_right)(self._offs, r)

    def tick(self, i: int) -> datetime:
        q, j = divmod(self._g0 + i, self._k)
        return EPOCH + timedelta(microseconds=q * HOUR_US + self._offs[j])

    def count(self, x: datetime, strict: bool) -> int:
        return max(0, self._global(to_us(x), strict) - self._g0)

    def is_tick(self, x: datetime) -> bool:
        return to_us(x) % HOUR_US in self._set

    def tick_runs(self, lo: int, hi: int) -> list[Ticks]:
        g, h, k = self._g0 + lo, self._g0 + hi, self._k
        if self._step is not None:
            return [range(g * self._step + self._offs[0], h * self._step + self._offs[0], self._step)]
        hours = range(g // k, (h - 1) // k + 1)
        return [[q * HOUR_US + o for q in hours for o in self._offs][g % k : g % k + hi - lo]]


class _PatternGrid(Grid):
    """Shared logic of the day and month grids: period slots numbered globally by `g`."""

    def __init__(self, tz: ZoneInfo, at: time, start: datetime) -> None:
        self._tz, self._at = tz, at
        g = self._slots_before(start.astimezone(tz))
        if self._tick_g(g) < start:
            g += 1
        self._g0 = g

    @abstractmethod
    def _slot_date(self, g: int) -> date: ...

    @abstractmethod
    def _slots_before(self, local: datetime) -> int:
        """Global number of slots on local dates (or months) strictly before `local`'s."""

    @abstractmethod
    def _on_slot(self, local: datetime) -> bool:
        """Whether `local`'s date (or month) holds a slot."""

    def _tick_g(self, g: int) -> datetime:
        return localize(datetime.combine(self._slot_date(g), self._at), self._tz)

    def tick(self, i: int) -> datetime:
        return self._tick_g(self._g0 + i)

    def count(self, x: datetime, strict: bool) -> int:
        local = x.astimezone(self._tz)
        c = self._slots_before(local)
        if self._on_slot(local):
            t = self._tick_g(c)
            if t < x or (t == x and not strict):
                c += 1
        return max(0, c - self._g0)

    def is_tick(self, x: datetime) -> bool:
        local = x.astimezone(self._tz)
        return self._on_slot(local) and self._tick_g(self._slots_before(local)) == x

    @abstractmethod
    def _slot_ordinals(self, g: int, h: int) -> Ticks:
        """Proleptic ordinals of the dates of slots `g..h-1`."""

    def tick_runs(self, lo: int, hi: int) -> list[Ticks]:
        days = self._slot_ordinals(self._g0 + lo, self._g0 + hi)
        at = ((self._at.hour * 60 + self._at.minute) * 60 + self._at.second) * SECOND_US
        base = at - EPOCH_ORDINAL * DAY_US
        if isinstance(days, range):
            start, stop = days.start * DAY_US + base, days.stop * DAY_US + base
            walls: Ticks = range(start, stop, days.step * DAY_US)
        else:
            walls = [d * DAY_US + base for d in days]
        return walls_to_utc(self._tz, walls)


class DayGrid(_PatternGrid):
    """One tick per selected weekday at a local time (daily, weekly, weekdays...)."""

    def __init__(self, tz: ZoneInfo, weekdays: Iterable[int], at: time, start: datetime) -> None:
        self._wd = sorted(set(weekdays))
        self._k = len(self._wd)
        self._before = [sum(1 for w in self._wd if w < d) for d in range(7)]
        self._set = frozenset(self._wd)
        d0 = start.astimezone(tz).date()
        self._ref = d0 - timedelta(days=d0.weekday())  # a Monday
        super().__init__(tz, at, start)

    def _slot_date(self, g: int) -> date:
        q, r = divmod(g, self._k)
        return self._ref + timedelta(days=7 * q + self._wd[r])

    def _slots_before(self, local: datetime) -> int:
        q, r = divmod((local.date() - self._ref).days, 7)
        return q * self._k + self._before[r]

    def _on_slot(self, local: datetime) -> bool:
        return local.weekday() in self._set

    def _slot_ordinals(self, g: int, h: int) -> Ticks:
        ref, k, wd = self._ref.toordinal(), self._k, self._wd
        if k in (1, 7):  # weekly, daily: evenly spaced
            step = 7 // k
            first = ref + 7 * (g // k) + wd[g % k]
            return range(first, first + (h - g) * step, step)
        weeks = range(g // k, (h - 1) // k + 1)
        return [ref + 7 * q + w for q in weeks for w in wd][g % k : g % k + h - g]


class MonthGrid(_PatternGrid):
    """One tick on day `day` (<= 28) of each selected month at a local time."""

    def __init__(self, tz: ZoneInfo, months: Iterable[int], day: int, at: time, start: datetime) -> None:
        self._months = sorted(set(months))
        self._k = len(self._months)
        self._before = [sum(1 for m in self._months if m < mm) for mm in range(13)]
        self._set = frozenset(self._months)
        self._day = day
        self._y0 = start.astimezone(tz).year
        super().__init__(tz, at, start)

    def _slot_date(self, g: int) -> date:
        q, r = divmod(g, self._k)
        return date(self._y0 + q, self._months[r], self._day)

    def _slots_before(self, local: datetime) -> int:
        c = (local.year - self._y0) * self._k + self._before[local.month]
        return c + 1 if local.month in self._set and local.day > self._day else c

    def _on_slot(self, local: datetime) -> bool:
        return local.month in self._set and local.day == self._day

    def _slot_ordinals(self, g: int, h: int) -> Ticks:
        return [self._slot_date(i).toordinal() for i in range(g, h)]


class CronGrid(Grid):
    """Any cron expression, iterated lazily with cronsim; ticks are cached as integers."""

    def __init__(self, cron: str, tz: ZoneInfo, start: datetime) -> None:
        self._cron, self._tz = cron, tz
        self._start_us = to_us(start)
        self._ticks: list[int] = []
        self._it = CronSim(cron, (start - ONE_SECOND).astimezone(tz))
        self._done = False
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, object]:
        return {k: v for k, v in self.__dict__.items() if k != "_lock"}

    def __setstate__(self, state: dict[str, object]) -> None:
        self.__dict__.update(state)
        self._lock = threading.Lock()

    def _more(self) -> bool:
        with self._lock:  # cronsim iterators are not thread-safe
            if self._done:
                return False
            try:
                us = to_us(next(self._it))
            except StopIteration:
                self._done = True
                return False
            if us >= self._start_us and (not self._ticks or us > self._ticks[-1]):
                self._ticks.append(us)
            return True

    def tick(self, i: int) -> datetime:
        while len(self._ticks) <= i:
            if not self._more():
                raise IndexError(f"cron {self._cron!r} has no tick number {i}")
        return from_us(self._ticks[i])

    def count(self, x: datetime, strict: bool) -> int:
        u = to_us(x)
        while not self._ticks or self._ticks[-1] <= u:
            if not self._more():
                break
        return (bisect.bisect_left if strict else bisect.bisect_right)(self._ticks, u)

    def tick_runs(self, lo: int, hi: int) -> list[Ticks]:
        self.tick(hi - 1)
        return [self._ticks[lo:hi]]

    def is_tick(self, x: datetime) -> bool:
        u = to_us(x)
        if u >= self._start_us:  # consult the cache so answers match the iteration exactly
            c = self.count(x, False)
            return c > 0 and self._ticks[c - 1] == u
        try:
            nxt = next(CronSim(self._cron, (x - ONE_SECOND).astimezone(self._tz)))
        except StopIteration:
            return False
        return to_us(nxt) == u


# ---------------------------------------------------------------------------------------------
# recognising regular shapes


def _int_field(s: str, lo: int, hi: int) -> int | None:
    return int(s) if s.isascii() and s.isdigit() and lo <= int(s) <= hi else None


def _set_field(s: str, lo: int, hi: int) -> set[int] | None:
    """Values of a numeric field made of `*`, `a`, `a-b`, with optional `/step`, comma-separated."""
    out: set[int] = set()
    for term in s.split(","):
        term, slash, step_text = term.partition("/")
        step = _int_field(step_text, 1, hi) if slash else 1
        x: int | None
        y: int | None
        if term == "*":
            x, y = lo, hi
        else:
            a, _, b = term.partition("-")
            x, y = _int_field(a, lo, hi), _int_field(b, lo, hi) if b else _int_field(a, lo, hi)
            if slash and not b:
                y = hi
        if x is None or y is None or step is None or x > y:
            return None
        out.update(range(x, y + 1, step))
    return out


@functools.lru_cache(maxsize=256)
def _hour_phase(tz: ZoneInfo, first: date, last: date) -> int | None:
    """The zone's UTC offset modulo one hour (seconds) if it is constant between the two dates
    (sampled weekly: DST and offset-change periods last far longer), else None."""
    phases = set()
    t = datetime.combine(first, time(), UTC)
    stop = datetime.combine(last, time(), UTC)
    while True:
        off = t.astimezone(tz).utcoffset()
        phases.add(int(off.total_seconds()) % 3600 if off is not None else 0)
        if len(phases) > 1:
            return None
        if t >= stop:
            return phases.pop()
        t = min(t + timedelta(days=7), stop)


def make_grid(cron: str, tz: ZoneInfo, start: datetime, end: datetime | None) -> Grid:
    """The fastest exact grid for `cron` in `tz` from `start` (UTC) up to `end` (or forever)."""
    parts = cron.split()
    if len(parts) == 5:
        mi, hr, dom, mon, dow = parts
        minutes = _set_field(mi, 0, 59)
        if minutes and hr == "*" and dom == mon == dow == "*":
            # after the last listed transition zones repeat yearly: sampling to ~2040 covers forever
            horizon = end if end is not None else max(start, datetime(2040, 1, 1, tzinfo=UTC))
            last = horizon.date() + timedelta(days=400 if end is None else 1)
            phase = _hour_phase(tz, start.date() - timedelta(days=1), last)
            if phase is not None:
                return MinuteGrid([(m * 60 - phase) % 3600 * 1_000_000 for m in minutes], start)
        minute = _int_field(mi, 0, 59)
        hour = _int_field(hr, 0, 23)
        if minute is not None and hour is not None:
            at = time(hour, minute)
            if dom == "*" and mon == "*":
                days = set(range(7)) if dow == "*" else _set_field(dow, 0, 7)
                if days:
                    return DayGrid(tz, {(d - 1) % 7 for d in days}, at, start)
            if dow == "*":
                day = _int_field(dom, 1, 28)
                months = set(range(1, 13)) if mon == "*" else _set_field(mon, 1, 12)
                if day is not None and months:
                    return MonthGrid(tz, months, day, at, start)
    return CronGrid(cron, tz, start)
