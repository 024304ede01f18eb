"""Core partition types: `TimeWindow`, the lazy `KeySequence`, the `PartitionsDefinition`
base class, and helpers that turn date/datetime/ISO input into aware datetimes.

A `KeySequence` is an immutable, lazy view of partition keys in order. Implementations only
provide `__len__`, `_get(i)` (0 <= i < len) and `_index(key)` (position or None); slicing and
reversing return lazy views, membership and `index()` never scan.

Keys end up in SQLite and PostgreSQL text columns under a btree index: `check_storable_key`
refuses what a database cannot store (control characters, NUL above all, and keys over
`MAX_KEY_BYTES` bytes of UTF-8, well under PostgreSQL's ~2.7 kB index-row limit).
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from typing import Any, NamedTuple, overload
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

UTC = timezone.utc
DynamicKeys = Mapping[str, Sequence[str]]
RESERVED_CHARS = ("|", "=")
MAX_KEY_BYTES = 1000  # longest storable partition key, in bytes of UTF-8
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SHOWN_CHARS = 60  # how much of a long key an error message shows


class TimeWindow(NamedTuple):
    """A half-open window `[start, end)` of aware datetimes in the partition's timezone.

    Note that Python subtracts two datetimes sharing one tzinfo as wall-clock times; use
    `end.timestamp() - start.timestamp()` for the true (DST-aware) duration.
    """

    start: datetime
    end: datetime


class KeySequence(Sequence[str]):
    """A lazy, immutable, ordered view of partition keys."""

    __slots__ = ()

    @abstractmethod
    def __len__(self) -> int: ...

    @abstractmethod
    def _get(self, i: int) -> str:
        """The key at position `0 <= i < len(self)`."""

    @abstractmethod
    def _index(self, key: str) -> int | None:
        """The position of `key`, or None; must not scan the whole sequence."""

    def _iter_range(self, lo: int, hi: int, reverse: bool) -> Iterator[str]:
        """Keys at positions `lo..hi-1` (`0 <= lo <= hi <= len`), backwards if `reverse`."""
        rng = range(hi - 1, lo - 1, -1) if reverse else range(lo, hi)
        return map(self._get, rng)

    @staticmethod
    def from_list(keys: Iterable[str]) -> KeySequence:
        """An explicit sequence (de-duplicated, first occurrence wins) with O(1) lookup."""
        seen: dict[str, int] = {}
        for k in keys:
            if not isinstance(k, str):
                raise ValueError(f"partition key {k!r} is not a string")
            seen.setdefault(k, len(seen))
        return ListKeySequence(tuple(seen), seen)

    @overload
    def __getitem__(self, i: int) -> str: ...

    @overload
    def __getitem__(self, i: slice) -> KeySequence: ...

    def __getitem__(self, i: int | slice) -> str | KeySequence:
        n = len(self)
        if isinstance(i, slice):
            start, stop, step = i.indices(n)
            length = len(range(start, stop, step))
            if step == 1 and start == 0 and length == n:
                return self
            return SliceView(self, start, step, length)
        try:
            i = i.__index__()
        except AttributeError:
            raise TypeError(f"indices must be integers or slices, not {type(i).__name__}") from None
        if i < 0:
            i += n
        if not 0 <= i < n:
            raise IndexError(f"partition index {i} out of range (0..{n - 1})")
        return self._get(i)

    def __iter__(self) -> Iterator[str]:
        return self._iter_range(0, len(self), False)

    def __reversed__(self) -> Iterator[str]:
        return self._iter_range(0, len(self), True)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._index(key) is not None

    def index(self, key: Any, start: int = 0, stop: int | None = None) -> int:
        """Position of `key`; ValueError naming the key if it is absent."""
        pos = self._index(key) if isinstance(key, str) else None
        n = len(self)
        lo, hi, _ = slice(start, stop).indices(n)
        if pos is None or not lo <= pos < hi:
            raise ValueError(f"partition key {key!r} is not in {self!r}")
        return pos

    def count(self, key: Any) -> int:
        return 1 if key in self else 0

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if not isinstance(other, (KeySequence, list, tuple)):
            return NotImplemented
        if len(self) != len(other):
            return False
        return all(a == b for a, b in zip(self, other))

    __hash__ = None  # type: ignore[assignment]

    def __bool__(self) -> bool:
        return len(self) > 0

    def __repr__(self) -> str:
        n = len(self)
        if n <= 3:
            return f"KeySequence({list(self)!r})"
        return f"KeySequence([{self._get(0)!r}, {self._get(1)!r}, ..., {self._get(n - 1)!r}], len={n})"


class ListKeySequence(KeySequence):
    """Keys held explicitly; the position index is built on first lookup if not given."""

    __slots__ = ("_keys", "_pos")

    def __init__(self, keys: Sequence[str], pos: dict[str, int] | None = None) -> None:
        self._keys = keys
        self._pos = pos

    def __len__(self) -> int:
        return len(self._keys)

    def _get(self, i: int) -> str:
        return self._keys[i]

    def _index(self, key: str) -> int | None:
        if self._pos is None:
            pos: dict[str, int] = {}
            for i, k in enumerate(self._keys):
                pos.setdefault(k, i)
            self._pos = pos
        return self._pos.get(key)

    def _iter_range(self, lo: int, hi: int, reverse: bool) -> Iterator[str]:
        if not reverse and lo == 0 and hi == len(self._keys):
            return iter(self._keys)
        return super()._iter_range(lo, hi, reverse)


EMPTY = ListKeySequence((), {})


class SliceView(KeySequence):
    """A lazy arithmetic-progression view (any non-zero step) over another sequence."""

    __slots__ = ("_base", "_start", "_step", "_len")
    _base: KeySequence
    _start: int
    _step: int
    _len: int

    def __init__(self, base: KeySequence, start: int, step: int, length: int) -> None:
        if isinstance(base, SliceView):  # compose views so nesting never deepens
            start = base._start + start * base._step
            step = base._step * step
            base = base._base
        self._base, self._start, self._step, self._len = base, start, step, length

    def __len__(self) -> int:
        return self._len

    def _get(self, i: int) -> str:
        return self._base._get(self._start + i * self._step)

    def _index(self, key: str) -> int | None:
        j = self._base._index(key)
        if j is None:
            return None
        q, r = divmod(j - self._start, self._step)
        return q if r == 0 and 0 <= q < self._len else None

    def _iter_range(self, lo: int, hi: int, reverse: bool) -> Iterator[str]:
        if lo >= hi:
            return iter(())
        s, step = self._start, self._step
        if step == 1:
            return self._base._iter_range(s + lo, s + hi, reverse)
        if step == -1:
            return self._base._iter_range(s - hi + 1, s - lo + 1, not reverse)
        return super()._iter_range(lo, hi, reverse)


# ---------------------------------------------------------------------------------------------
# input parsing helpers


def resolve_timezone(tz: str | ZoneInfo | timezone) -> ZoneInfo:
    """A ZoneInfo for `tz`; ValueError naming `timezone` if it is unknown."""
    if isinstance(tz, ZoneInfo):
        return tz
    if tz is UTC:
        return ZoneInfo("UTC")
    if not isinstance(tz, str) or not tz:
        raise ValueError(f"timezone must be an IANA name like 'UTC', got {tz!r}")
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ValueError(f"unknown timezone {tz!r}") from None


_UTC_ZONE = ZoneInfo("UTC")


def localize(naive: datetime, tz: ZoneInfo) -> datetime:
    """The UTC instant of a local wall time. An ambiguous time takes its first occurrence; a
    time inside a DST gap moves forward to the first valid minute (as cron does)."""
    wall = naive.replace(tzinfo=None)
    if tz is _UTC_ZONE:
        return wall.replace(tzinfo=UTC)
    for _ in range(48 * 60):
        u = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
        if u.astimezone(tz).replace(tzinfo=None) == wall:
            return u
        wall = (wall + timedelta(minutes=1)).replace(second=0, microsecond=0)
    return naive.replace(tzinfo=tz).astimezone(UTC)  # pragma: no cover - no such gap exists


def to_datetime(value: Any, tz: ZoneInfo, name: str) -> datetime:
    """An aware UTC datetime from a date, datetime or ISO string; naive means local to `tz`.

    Raises ValueError naming `name` if the value cannot be understood, or if it lies so close to
    year 1 or 9999 that it has no UTC datetime."""
    original = value
    if isinstance(value, str):
        text = value.strip()
        try:
            value = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise ValueError(f"{name}: cannot parse {value!r} as an ISO date or datetime") from None
    try:
        if isinstance(value, datetime):
            return value.astimezone(UTC) if value.tzinfo is not None else localize(value, tz)
        if isinstance(value, date):
            return localize(datetime(value.year, value.month, value.day), tz)
    except OverflowError:
        raise ValueError(
            f"{name}: {original!r} is outside the supported range (years 1 to 9999 in UTC)"
        ) from None
    raise ValueError(f"{name} must be a date, datetime or ISO string, got {value!r}")


def now_utc(current_time: Any, tz: ZoneInfo) -> datetime:
    """`current_time` as an aware UTC datetime; None means the wall clock."""
    if current_time is None:
        return datetime.now(UTC)
    return to_datetime(current_time, tz, "current_time")


def shown_key(key: str) -> str:
    """`repr(key)`, cut to its first characters when long, for error messages."""
    if len(key) <= _SHOWN_CHARS:
        return repr(key)
    return f"{key[:_SHOWN_CHARS]!r}... ({len(key)} characters)"


def check_storable_key(key: str, what: str = "partition key") -> str:
    """Refuse text a database cannot store as a key: ASCII control characters (NUL, which
    PostgreSQL text cannot hold, and the rest, which are invisible in logs and URLs), text that
    is not valid Unicode, and keys longer than `MAX_KEY_BYTES` bytes of UTF-8. ValueError naming
    the key (`what` says what it is)."""
    bad = _CONTROL.search(key)
    if bad:
        raise ValueError(
            f"{what} {shown_key(key)} contains the control character {bad.group()!r} at position "
            f"{bad.start()}; keys may not contain control characters (\\x00-\\x1f, \\x7f)"
        )
    if len(key) * 4 > MAX_KEY_BYTES or not key.isascii():
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError:
            raise ValueError(f"{what} {shown_key(key)} is not valid Unicode text") from None
        if size > MAX_KEY_BYTES:
            raise ValueError(
                f"{what} {shown_key(key)} is {size} bytes long in UTF-8; "
                f"keys may be at most {MAX_KEY_BYTES} bytes"
            )
    return key


def check_key_text(key: Any) -> str:
    """Validate a static/dynamic key: a non-empty string without the reserved '|' and '=',
    that a database can store (`check_storable_key`)."""
    if not isinstance(key, str):
        raise ValueError(f"partition key {key!r} is not a string")
    if not key:
        raise ValueError("partition key '' is empty")
    for ch in RESERVED_CHARS:
        if ch in key:
            raise ValueError(f"partition key {shown_key(key)} contains the reserved character {ch!r}")
    return check_storable_key(key)


class PartitionsDefinition(ABC):
    """How a workflow's data is sliced. Every definition enumerates its keys lazily."""

    is_time_based: bool = False

    @abstractmethod
    def get_partition_keys(
        self, current_time: datetime | None = None, dynamic_partitions: DynamicKeys | None = None
    ) -> KeySequence:
        """All keys that exist at `current_time` (None = now), in order."""

    def has_partition_key(
        self, key: Any, current_time: datetime | None = None,
        dynamic_partitions: DynamicKeys | None = None,
    ) -> bool:
        return isinstance(key, str) and key in self.get_partition_keys(current_time, dynamic_partitions)

    def validate_key(
        self, key: Any, current_time: datetime | None = None,
        dynamic_partitions: DynamicKeys | None = None,
    ) -> None:
        """Raise ValueError naming `key` unless it currently exists."""
        if not self.has_partition_key(key, current_time, dynamic_partitions):
            raise ValueError(f"unknown partition key {key!r} for {self!r}")

    def time_window(self, key: str) -> TimeWindow:
        raise TypeError(f"{type(self).__name__} has no time dimension")

    def window_bounds(self, keys: Sequence[str]) -> list[tuple[float, float]]:
        """The windows of many keys at once, as ``(start, end)`` Unix seconds (what a run row stores).
        Time definitions compute them in bulk; the default asks ``time_window`` key by key."""
        windows = [self.time_window(k) for k in keys]
        return [(w.start.timestamp(), w.end.timestamp()) for w in windows]

    def _max_key_bytes(self) -> int | None:
        """The UTF-8 length of the longest key this definition can ever have; None if unknown
        in advance (keys added at run time)."""
        return None

    def keys_in_time_range(
        self, start: Any, end: Any = None, current_time: datetime | None = None,
        dynamic_partitions: DynamicKeys | None = None,
    ) -> KeySequence:
        raise TypeError(f"{type(self).__name__} has no time dimension")

    def _identity(self) -> tuple[Any, ...]:
        return (id(self),)

    def __eq__(self, other: object) -> bool:
        if type(self) is not type(other):
            return NotImplemented
        return self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash((type(self).__name__, self._identity()))
