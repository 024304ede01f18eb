"""Partition mappings bound to two key sequences: positions in, positions out.

A ``PartitionMapping`` (``anachron.mappings``) says which upstream keys a downstream key needs; bound to the
two workflows' keys at planning time it becomes a ``Bound``, which answers on *positions* of those lazy
sequences: ``up(lo, hi)`` — the upstream positions that downstream positions ``[lo, hi)`` need — and
``down(lo, hi)`` — the downstream positions that need upstream positions ``[lo, hi)``. Time windows are
mapped through grid arithmetic (a daily window → its 23, 24 or 25 hours without listing them), so a window
of a million hours costs the same as one hour. ``bounds(lo, hi)`` gives, where the mapping allows it, an
interval of upstream positions that only grows as ``lo`` and ``hi`` grow: the planner orders runs with it.

An unpartitioned workflow is a side with one position (its one run).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from .index_ranges import EMPTY, RangeSet, union_all
from .partitions import KeySequence, MultiPartitions, PartitionsDefinition, TimeWindowPartitions

#: a flattened product of ranges longer than this is refused rather than built (see ``flatten``)
MAX_RANGES = 2_000_000


@dataclass(frozen=True)
class Side:
    """One end of a dependency: a workflow's partitions (``None``: unpartitioned) and its keys at planning time."""

    pdef: PartitionsDefinition | None
    keys: KeySequence | None

    @classmethod
    def of(cls, pdef: PartitionsDefinition | None, now: datetime, dynamic: Mapping[str, Sequence[str]]) -> Side:
        return cls(pdef, None if pdef is None else pdef.get_partition_keys(now, dynamic))

    @property
    def size(self) -> int:
        return 1 if self.keys is None else len(self.keys)

    def dimensions(self, now: datetime, dynamic: Mapping[str, Sequence[str]]) -> list[tuple[str | None, Side]]:
        """The side as named dimensions: a multi definition's own, else one dimension named ``None``."""
        if isinstance(self.pdef, MultiPartitions):
            return [(name, Side.of(d, now, dynamic)) for name, d in self.pdef.dimensions.items()]
        return [(None, self)]


class Bound(ABC):
    """A mapping bound to two sides (see the module note)."""

    def __init__(self, n_up: int, n_down: int) -> None:
        self.n_up, self.n_down = n_up, n_down

    @abstractmethod
    def up(self, lo: int, hi: int) -> RangeSet:
        """Upstream positions that downstream positions ``[lo, hi)`` need."""

    @abstractmethod
    def down(self, lo: int, hi: int) -> RangeSet:
        """Downstream positions that need some of upstream positions ``[lo, hi)``."""

    def bounds(self, lo: int, hi: int) -> tuple[int, int] | None:
        """``(a, b)`` with every upstream position ``[lo, hi)`` needs in ``[a, b)``, non-decreasing in ``lo`` and
        ``hi``; ``None`` when the mapping cannot promise that (keys matched by text, say)."""
        return None

    def up_of(self, positions: RangeSet) -> RangeSet:
        return union_all(self.up(a, b) for a, b in positions.ranges)

    def down_of(self, positions: RangeSet) -> RangeSet:
        return union_all(self.down(a, b) for a, b in positions.ranges)

    def _up_clip(self, a: int, b: int) -> RangeSet:
        a, b = max(a, 0), min(b, self.n_up)
        return RangeSet.span(a, b) if a < b else EMPTY

    def _down_clip(self, a: int, b: int) -> RangeSet:
        a, b = max(a, 0), min(b, self.n_down)
        return RangeSet.span(a, b) if a < b else EMPTY


class TimeBound(Bound):
    """Every upstream window overlapping the downstream window, each in its own timezone, widened by the offsets
    (in upstream windows)."""

    def __init__(self, up: TimeWindowPartitions, down: TimeWindowPartitions, n_up: int, n_down: int,
                 start_offset: int = 0, end_offset: int = 0) -> None:
        super().__init__(n_up, n_down)
        self._u, self._d = up, down
        self._so, self._eo = start_offset, end_offset

    def _raw(self, lo: int, hi: int) -> tuple[int, int]:
        a, b = self._u.window_positions(self._d.boundary(lo), self._d.boundary(hi))
        return a + self._so, b + self._eo

    def up(self, lo: int, hi: int) -> RangeSet:
        lo, hi = max(lo, 0), min(hi, self.n_down)
        return self._up_clip(*self._raw(lo, hi)) if lo < hi else EMPTY

    def bounds(self, lo: int, hi: int) -> tuple[int, int] | None:
        if lo >= hi:
            return (0, 0)
        a, b = self._raw(lo, hi)
        return min(max(a, 0), self.n_up), max(0, min(b, self.n_up))

    def down(self, lo: int, hi: int) -> RangeSet:
        lo, hi = max(lo, 0), min(hi, self.n_up)
        if lo >= hi or hi - self._so <= 0:
            return EMPTY
        first = 0
        if lo - self._eo >= 0:
            first = self._d.window_positions(self._u.boundary(lo - self._eo), self._u.boundary(lo - self._eo))[0]
        try:
            last_instant = self._u.boundary(hi - self._so)
        except IndexError:  # a finite cron with no tick that far: every later downstream window
            return self._down_clip(first, self.n_down)
        return self._down_clip(first, self._d.window_positions(last_instant, last_instant)[1])


class ShiftBound(Bound):
    """Position ``i`` downstream needs position ``i + delta`` upstream (the same keys, or the key before)."""

    def __init__(self, n_up: int, n_down: int, delta: int = 0) -> None:
        super().__init__(n_up, n_down)
        self._delta = delta

    def up(self, lo: int, hi: int) -> RangeSet:
        return self._up_clip(max(lo, 0) + self._delta, min(hi, self.n_down) + self._delta)

    def down(self, lo: int, hi: int) -> RangeSet:
        return self._down_clip(max(lo, 0) - self._delta, min(hi, self.n_up) - self._delta)

    def bounds(self, lo: int, hi: int) -> tuple[int, int] | None:
        return min(max(lo + self._delta, 0), self.n_up), max(0, min(hi + self._delta, self.n_up))


def same_grid_shift(up: TimeWindowPartitions, down: TimeWindowPartitions) -> int:
    """``delta`` such that downstream position ``i`` is the window of upstream position ``i + delta`` (two
    definitions on one grid: the same cron, timezone and format)."""
    u0, d0 = up.boundary(0), down.boundary(0)
    if d0 >= u0:
        return up.window_positions(d0, d0)[0]
    return -down.window_positions(u0, u0)[0]


class TableBound(Bound):
    """Explicit position tables (keys matched by text, or a static mapping): for a few thousand keys at most."""

    def __init__(self, n_up: int, n_down: int, table: Mapping[int, Sequence[int]]) -> None:
        super().__init__(n_up, n_down)
        self._table = {d: RangeSet.of_indices(u) for d, u in table.items()}
        back: dict[int, list[int]] = {}
        for d, ups in table.items():
            for u in ups:
                back.setdefault(u, []).append(d)
        self._back = {u: RangeSet.of_indices(ds) for u, ds in back.items()}

    @classmethod
    def by_text(cls, up: KeySequence, down: KeySequence) -> TableBound:
        """The same key on both sides (the keys that exist on both)."""
        table = {}
        for i, key in enumerate(down):
            j = up._index(key)
            if j is not None:
                table[i] = [j]
        return cls(len(up), len(down), table)

    def up(self, lo: int, hi: int) -> RangeSet:
        return union_all(self._table[i] for i in range(max(lo, 0), min(hi, self.n_down)) if i in self._table)

    def down(self, lo: int, hi: int) -> RangeSet:
        return union_all(self._back[i] for i in range(max(lo, 0), min(hi, self.n_up)) if i in self._back)


class AllBound(Bound):
    """Any downstream position needs every upstream position."""

    def up(self, lo: int, hi: int) -> RangeSet:
        return self._up_clip(0, self.n_up) if max(lo, 0) < min(hi, self.n_down) else EMPTY

    def down(self, lo: int, hi: int) -> RangeSet:
        return self._down_clip(0, self.n_down) if max(lo, 0) < min(hi, self.n_up) else EMPTY

    def bounds(self, lo: int, hi: int) -> tuple[int, int] | None:
        return (0, self.n_up)


class LastBound(Bound):
    """Any downstream position needs the last upstream position."""

    def up(self, lo: int, hi: int) -> RangeSet:
        return self._up_clip(self.n_up - 1, self.n_up) if max(lo, 0) < min(hi, self.n_down) else EMPTY

    def down(self, lo: int, hi: int) -> RangeSet:
        return self._down_clip(0, self.n_down) if lo <= self.n_up - 1 < hi else EMPTY

    def bounds(self, lo: int, hi: int) -> tuple[int, int] | None:
        return (max(0, self.n_up - 1), self.n_up)


class ProductBound(Bound):
    """Multi-partitions: each upstream dimension is mapped from one downstream dimension (``links[u] = (d, bound)``)
    or needs all its keys (``links[u] = None``); downstream dimensions nothing maps from are free."""

    def __init__(self, up_sizes: Sequence[int], down_sizes: Sequence[int],
                 links: Sequence[tuple[int, Bound] | None]) -> None:
        super().__init__(_product(up_sizes), _product(down_sizes))
        self._us, self._ds, self._links = list(up_sizes), list(down_sizes), list(links)

    def up(self, lo: int, hi: int) -> RangeSet:
        out = []
        for box in _boxes(max(lo, 0), min(hi, self.n_down), self._ds):
            parts = [RangeSet.span(0, n) if link is None else link[1].up(*box[link[0]])
                     for link, n in zip(self._links, self._us)]
            out.append(flatten(parts, self._us))
        return union_all(out)

    def down(self, lo: int, hi: int) -> RangeSet:
        out = []
        for box in _boxes(max(lo, 0), min(hi, self.n_up), self._us):
            parts = [RangeSet.span(0, n) for n in self._ds]
            for u, link in enumerate(self._links):
                if link is not None:
                    parts[link[0]] = parts[link[0]] & link[1].down(*box[u])
            out.append(flatten(parts, self._ds))
        return union_all(out)

    def bounds(self, lo: int, hi: int) -> tuple[int, int] | None:
        """Monotone only when the outermost upstream dimension follows the outermost downstream one through a
        monotone mapping: then whole rows of the outer dimension bound the positions."""
        link = self._links[0]
        if link is None or link[0] != 0:
            return None
        if lo >= hi:
            return (0, 0)
        inner_down, inner_up = self.n_down // max(1, self._ds[0]), self.n_up // max(1, self._us[0])
        rows = link[1].bounds(lo // max(1, inner_down), (hi - 1) // max(1, inner_down) + 1)
        return None if rows is None else (rows[0] * inner_up, rows[1] * inner_up)


def _product(sizes: Sequence[int]) -> int:
    n = 1
    for s in sizes:
        n *= s
    return n


def _boxes(lo: int, hi: int, sizes: Sequence[int]) -> list[list[tuple[int, int]]]:
    """Flat positions ``[lo, hi)`` of a product (first dimension outermost) as boxes: one ``(a, b)`` per dimension."""
    if lo >= hi:
        return []
    if len(sizes) == 1:
        return [[(lo, hi)]]
    inner = _product(sizes[1:])
    o0, a = divmod(lo, inner)
    o1, b = divmod(hi, inner)
    if o0 == o1:
        return [[(o0, o0 + 1), *rest] for rest in _boxes(a, b, sizes[1:])]
    out = []
    if a:
        out += [[(o0, o0 + 1), *rest] for rest in _boxes(a, inner, sizes[1:])]
        o0 += 1
    if o0 < o1:
        out.append([(o0, o1), *[(0, n) for n in sizes[1:]]])
    if b:
        out += [[(o1, o1 + 1), *rest] for rest in _boxes(0, b, sizes[1:])]
    return out


def flatten(parts: Sequence[RangeSet], sizes: Sequence[int]) -> RangeSet:
    """The flat positions of the product of one set per dimension (first dimension outermost)."""
    if any(not p for p in parts):
        return EMPTY
    inner = flatten(parts[1:], sizes[1:]) if len(parts) > 1 else None
    if inner is None:
        return parts[0]
    width = _product(sizes[1:])
    if inner.ranges == ((0, width),):
        return RangeSet((a * width, b * width) for a, b in parts[0].ranges)
    count = len(parts[0]) * len(inner.ranges)
    if count > MAX_RANGES:
        raise ValueError(f"the mapped keys make {count:,} separate ranges; select whole keys of the inner "
                         "dimensions, or backfill a smaller window")
    return RangeSet((o * width + a, o * width + b) for o in parts[0] for a, b in inner.ranges)


def describe_side(pdef: PartitionsDefinition | None) -> str:
    return "no partitions" if pdef is None else repr(pdef)
