"""Sets of key positions kept as sorted, disjoint half-open ranges ``[a, b)``.

Data graphs speak in positions of a definition's lazy key sequence: a downstream window of keys maps to
ranges of upstream positions, a selection is a few ranges, the reprocess filter removes some. A million
hourly keys selected by time are one range; nothing here builds an object per key.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Iterator, Sequence

Range = tuple[int, int]


class RangeSet:
    """An immutable set of non-negative integers stored as sorted, disjoint, non-adjacent ranges."""

    __slots__ = ("ranges", "_starts", "_offsets")

    def __init__(self, ranges: Iterable[Sequence[int]] = ()) -> None:
        merged: list[Range] = []
        for a, b in sorted((int(r[0]), int(r[1])) for r in ranges):
            if a >= b:
                continue
            if merged and a <= merged[-1][1]:
                if b > merged[-1][1]:
                    merged[-1] = (merged[-1][0], b)
            else:
                merged.append((a, b))
        self.ranges: tuple[Range, ...] = tuple(merged)
        self._starts = [a for a, _ in merged]
        offsets = [0]
        for a, b in merged:
            offsets.append(offsets[-1] + b - a)
        self._offsets = offsets

    @classmethod
    def span(cls, a: int, b: int) -> RangeSet:
        return cls([(a, b)])

    @classmethod
    def of_indices(cls, indices: Iterable[int]) -> RangeSet:
        """From positions in any order (duplicates allowed)."""
        runs: list[Range] = []
        for i in sorted(set(indices)):
            if runs and runs[-1][1] == i:
                runs[-1] = (runs[-1][0], i + 1)
            else:
                runs.append((i, i + 1))
        return cls(runs)

    # -- size and membership -------------------------------------------------------------------------
    def __len__(self) -> int:
        """How many positions the set holds."""
        return self._offsets[-1]

    def __bool__(self) -> bool:
        return bool(self.ranges)

    def __iter__(self) -> Iterator[int]:
        for a, b in self.ranges:
            yield from range(a, b)

    def __contains__(self, i: object) -> bool:
        if not isinstance(i, int):
            return False
        r = bisect.bisect_right(self._starts, i) - 1
        return r >= 0 and i < self.ranges[r][1]

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RangeSet) and self.ranges == other.ranges

    def __hash__(self) -> int:
        return hash(self.ranges)

    def __repr__(self) -> str:
        shown = ", ".join(f"[{a}, {b})" for a, b in self.ranges[:4])
        more = f", ... {len(self.ranges)} ranges" if len(self.ranges) > 4 else ""
        return f"RangeSet({shown}{more})"

    @property
    def first(self) -> int | None:
        return self.ranges[0][0] if self.ranges else None

    @property
    def last(self) -> int | None:
        return self.ranges[-1][1] - 1 if self.ranges else None

    # -- positions inside the set ----------------------------------------------------------------
    def rank(self, i: int) -> int:
        """How many members are smaller than ``i``."""
        r = bisect.bisect_right(self._starts, i) - 1
        if r < 0:
            return 0
        a, b = self.ranges[r]
        return self._offsets[r] + min(i, b) - a

    def nth(self, n: int) -> int:
        """The member with ``n`` smaller members (``0 <= n < len``)."""
        if not 0 <= n < len(self):
            raise IndexError(f"position {n} out of range (the set holds {len(self)})")
        r = bisect.bisect_right(self._offsets, n) - 1
        return self.ranges[r][0] + n - self._offsets[r]

    def last_below(self, hi: int) -> int | None:
        """The largest member ``< hi``, or None."""
        n = self.rank(hi)
        return self.nth(n - 1) if n else None

    def first_at_or_above(self, lo: int) -> int | None:
        """The smallest member ``>= lo``, or None."""
        n = self.rank(lo)
        return self.nth(n) if n < len(self) else None

    # -- algebra ----------------------------------------------------------------------------------
    def __or__(self, other: RangeSet) -> RangeSet:
        if not other.ranges:
            return self
        if not self.ranges:
            return other
        return RangeSet(self.ranges + other.ranges)

    def __and__(self, other: RangeSet) -> RangeSet:
        out: list[Range] = []
        i = j = 0
        xs, ys = self.ranges, other.ranges
        while i < len(xs) and j < len(ys):
            a, b = max(xs[i][0], ys[j][0]), min(xs[i][1], ys[j][1])
            if a < b:
                out.append((a, b))
            if xs[i][1] < ys[j][1]:
                i += 1
            else:
                j += 1
        return RangeSet(out)

    def __sub__(self, other: RangeSet) -> RangeSet:
        out: list[Range] = []
        ys = other.ranges
        j = 0
        for a, b in self.ranges:
            while j < len(ys) and ys[j][1] <= a:
                j += 1
            k = j
            while a < b and k < len(ys) and ys[k][0] < b:
                if ys[k][0] > a:
                    out.append((a, ys[k][0]))
                a = max(a, ys[k][1])
                k += 1
            if a < b:
                out.append((a, b))
        return RangeSet(out)

    def clip(self, n: int) -> RangeSet:
        """The members in ``[0, n)``."""
        return self & RangeSet.span(0, n) if self.ranges and (self.ranges[0][0] < 0 or self.ranges[-1][1] > n) \
            else self

    def to_json(self) -> list[list[int]]:
        return [[a, b] for a, b in self.ranges]


EMPTY = RangeSet()


def union_all(sets: Iterable[RangeSet]) -> RangeSet:
    """The union of many sets in one merge."""
    return RangeSet(r for s in sets for r in s.ranges)
