"""Multi-dimensional partitions: the product of several definitions.

A multi key's text is `date=2024-01-01|region=us`, dimensions in definition order. Keys are
enumerated with the FIRST dimension outermost; key `i` and the index of a key are computed by
mixed-radix arithmetic on the per-dimension sequences, so nothing is materialised per key.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any

from .base import (
    MAX_KEY_BYTES,
    DynamicKeys,
    KeySequence,
    PartitionsDefinition,
    TimeWindow,
    check_storable_key,
)


def _split(text: str) -> list[tuple[str, str]]:
    pairs: list[tuple[str, str]] = []
    seen: set[str] = set()
    for part in text.split("|"):
        name, sep, value = part.partition("=")
        if not sep or not name or not value or name in seen:
            raise ValueError(
                f"malformed multi-partition key {text!r}: expected 'dim=key|dim=key' "
                "with distinct dimension names"
            )
        seen.add(name)
        pairs.append((name, value))
    return pairs


def _join(mapping: Mapping[str, str]) -> str:
    if not mapping:
        raise ValueError("a multi-partition key needs at least one dimension")
    for name, value in mapping.items():
        if not isinstance(name, str) or not name or "|" in name or "=" in name:
            raise ValueError(f"invalid dimension name {name!r}")
        if not isinstance(value, str) or not value or "|" in value:
            raise ValueError(f"invalid key {value!r} for dimension {name!r}")
    return "|".join(f"{n}={v}" for n, v in mapping.items())


class MultiPartitionKey(str):
    """A multi key, built from a `{dimension: key}` mapping or from its text form."""

    def __new__(cls, value: str | Mapping[str, str]) -> MultiPartitionKey:
        if isinstance(value, Mapping):
            text = _join(value)
        elif isinstance(value, str):
            _split(value)
            text = value
        else:
            raise TypeError(f"MultiPartitionKey takes a mapping or a string, not {value!r}")
        return super().__new__(cls, text)

    @property
    def keys_by_dimension(self) -> dict[str, str]:
        """`{dimension: key}` in the order of the text (definition order when canonical)."""
        return dict(_split(self))

    def __repr__(self) -> str:
        return f"MultiPartitionKey({str(self)!r})"


class ProductSequence(KeySequence):
    """The lazy cartesian product of per-dimension sequences (first dimension outermost)."""

    __slots__ = ("_prefixes", "_seqs", "_lens", "_sizes")

    def __init__(self, names: Sequence[str], seqs: Sequence[KeySequence]) -> None:
        self._prefixes = tuple(f"{n}=" for n in names)
        self._seqs = tuple(seqs)
        self._lens = tuple(len(s) for s in self._seqs)
        sizes = [1]
        for n in reversed(self._lens):
            sizes.append(sizes[-1] * n)
        self._sizes = tuple(reversed(sizes))  # _sizes[j] = size of the product of dims j..end

    def __len__(self) -> int:
        return self._sizes[0]

    def _get(self, i: int) -> str:
        parts = []
        for j in range(len(self._seqs) - 1, -1, -1):
            i, r = divmod(i, self._lens[j])
            parts.append(self._prefixes[j] + self._seqs[j]._get(r))
        parts.reverse()
        return "|".join(parts)

    def _index(self, key: str) -> int | None:
        parts = key.split("|")
        if len(parts) != len(self._seqs):
            return None
        pos = 0
        for part, prefix, seq, n in zip(parts, self._prefixes, self._seqs, self._lens):
            if not part.startswith(prefix):
                return None
            r = seq._index(part[len(prefix) :])
            if r is None:
                return None
            pos = pos * n + r
        return pos

    def _iter_range(self, lo: int, hi: int, reverse: bool) -> Iterator[str]:
        if lo >= hi:
            return iter(())
        return self._walk(0, lo, hi, "", reverse)

    def _walk(self, j: int, lo: int, hi: int, prefix: str, reverse: bool) -> Iterator[str]:
        """Keys `lo..hi-1` of the product of dims `j..`, each prefixed with `prefix`."""
        seq, head = self._seqs[j], prefix + self._prefixes[j]
        if j == len(self._seqs) - 1:
            yield from map(head.__add__, seq._iter_range(lo, hi, reverse))
            return
        inner = self._sizes[j + 1]
        o0, a = divmod(lo, inner)
        o1, b = divmod(hi - 1, inner)
        outer = range(o1, o0 - 1, -1) if reverse else range(o0, o1 + 1)
        for o, key in zip(outer, seq._iter_range(o0, o1 + 1, reverse)):
            s = a if o == o0 else 0
            e = b + 1 if o == o1 else inner
            yield from self._walk(j + 1, s, e, head + key + "|", reverse)


class MultiPartitions(PartitionsDefinition):
    """`MultiPartitions({"date": daily, "region": static})`: at most one time-based dimension;
    dimensions may not be multi themselves."""

    def __init__(self, dimensions: Mapping[str, PartitionsDefinition]) -> None:
        if not isinstance(dimensions, Mapping) or not dimensions:
            raise ValueError("MultiPartitions needs a non-empty {name: definition} mapping")
        for name, defn in dimensions.items():
            if not isinstance(name, str) or not name or "|" in name or "=" in name:
                raise ValueError(f"invalid dimension name {name!r}: a non-empty string without '|' or '='")
            check_storable_key(name, "dimension name")
            if isinstance(defn, MultiPartitions):
                raise ValueError(f"dimension {name!r} is itself a MultiPartitions; nesting is not allowed")
            if not isinstance(defn, PartitionsDefinition):
                raise ValueError(f"dimension {name!r} is not a partitions definition: {defn!r}")
        timed = [n for n, d in dimensions.items() if d.is_time_based]
        if len(timed) > 1:
            raise ValueError(f"MultiPartitions allows one time-based dimension, got {timed}")
        self.dimensions: dict[str, PartitionsDefinition] = dict(dimensions)
        self.dimension_names: list[str] = list(dimensions)
        self.time_dimension_name: str | None = timed[0] if timed else None
        self.is_time_based = bool(timed)
        self._check_key_size()

    def _max_key_bytes(self) -> int | None:
        """`name=key` per dimension joined by '|'; None when a dimension's keys are not known
        in advance (dynamic partitions: each added key is checked alone when it is stored)."""
        sizes = [d._max_key_bytes() for d in self.dimensions.values()]
        if any(size is None for size in sizes):
            return None
        names = sum(len(n.encode("utf-8")) + 1 for n in self.dimension_names)  # "name="
        return names + sum(sizes) + len(sizes) - 1  # type: ignore[arg-type]

    def _check_key_size(self) -> None:
        """Refuse dimensions whose combined keys could exceed `MAX_KEY_BYTES` (so every key this
        definition makes can be stored), naming the dimensions and their longest keys."""
        size = self._max_key_bytes()
        if size is not None and size > MAX_KEY_BYTES:
            parts = ", ".join(
                f"{n!r}: {d._max_key_bytes()} bytes" for n, d in self.dimensions.items()
            )
            raise ValueError(
                f"MultiPartitions keys could be {size} bytes long in UTF-8 (longest key per "
                f"dimension: {parts}); keys may be at most {MAX_KEY_BYTES} bytes: shorten "
                "the keys or the dimension names"
            )

    def _values(self, key: Any) -> list[str] | None:
        """Per-dimension keys of a canonical multi key, or None."""
        if not isinstance(key, str):
            return None
        parts = key.split("|")
        if len(parts) != len(self.dimension_names):
            return None
        out = []
        for part, name in zip(parts, self.dimension_names):
            n, sep, value = part.partition("=")
            if n != name or not sep:
                return None
            out.append(value)
        return out

    def _sequences(
        self, current_time: Any, dynamic_partitions: DynamicKeys | None,
        override: Mapping[str, KeySequence] | None = None,
    ) -> ProductSequence:
        given = override or {}
        seqs = [
            given[n] if n in given else d.get_partition_keys(current_time, dynamic_partitions)
            for n, d in self.dimensions.items()
        ]
        return ProductSequence(self.dimension_names, seqs)

    def get_partition_keys(
        self, current_time: datetime | None = None, dynamic_partitions: DynamicKeys | None = None
    ) -> KeySequence:
        return self._sequences(current_time, dynamic_partitions)

    def has_partition_key(
        self, key: Any, current_time: datetime | None = None,
        dynamic_partitions: DynamicKeys | None = None,
    ) -> bool:
        values = self._values(key)
        return values is not None and all(
            d.has_partition_key(v, current_time, dynamic_partitions)
            for d, v in zip(self.dimensions.values(), values)
        )

    def validate_key(
        self, key: Any, current_time: datetime | None = None,
        dynamic_partitions: DynamicKeys | None = None,
    ) -> None:
        parsed = self.parse_key(key)
        if parsed != key:
            raise ValueError(f"partition key {key!r} is not in canonical form {str(parsed)!r}")
        for name, value in parsed.keys_by_dimension.items():
            if not self.dimensions[name].has_partition_key(value, current_time, dynamic_partitions):
                raise ValueError(
                    f"partition key {key!r}: unknown key {value!r} for dimension {name!r}"
                )

    def time_window(self, key: str) -> TimeWindow:
        """The window of the time dimension's part of `key`."""
        if self.time_dimension_name is None:
            raise TypeError("MultiPartitions has no time dimension")
        t = self.time_dimension_name
        return self.dimensions[t].time_window(self.parse_key(key).keys_by_dimension[t])

    def window_bounds(self, keys: Sequence[str]) -> list[tuple[float, float]]:
        """The windows of `keys`, computed in bulk by the time dimension."""
        if self.time_dimension_name is None:
            raise TypeError("MultiPartitions has no time dimension")
        t = self.time_dimension_name
        return self.dimensions[t].window_bounds([dict(_split(k))[t] for k in keys])

    def keys_in_time_range(
        self, start: Any, end: Any = None, current_time: datetime | None = None,
        dynamic_partitions: DynamicKeys | None = None,
    ) -> KeySequence:
        """Keys whose time part starts in `[start, end]`, crossed with every key of the others."""
        if self.time_dimension_name is None:
            raise TypeError("MultiPartitions has no time dimension")
        t = self.time_dimension_name
        sub = self.dimensions[t].keys_in_time_range(start, end, current_time, dynamic_partitions)
        return self._sequences(current_time, dynamic_partitions, {t: sub})

    def key_for(self, mapping: Mapping[str, str]) -> MultiPartitionKey:
        """The canonical key for `{dimension: key}`; ValueError naming an unknown/missing dimension."""
        for name in mapping:
            if name not in self.dimensions:
                raise ValueError(f"unknown dimension {name!r}; dimensions are {self.dimension_names}")
        missing = [n for n in self.dimension_names if n not in mapping]
        if missing:
            raise ValueError(f"missing dimension {missing[0]!r} in {dict(mapping)!r}")
        return MultiPartitionKey({n: mapping[n] for n in self.dimension_names})

    def parse_key(self, key: str | Mapping[str, str]) -> MultiPartitionKey:
        """Parse (and put into canonical dimension order) a multi key given as text or mapping."""
        if isinstance(key, Mapping):
            return self.key_for(key)
        if not isinstance(key, str):
            raise ValueError(f"partition key {key!r} is not a string")
        return self.key_for(MultiPartitionKey(key).keys_by_dimension)

    def _identity(self) -> tuple[Any, ...]:
        return tuple(self.dimensions.items())

    def __repr__(self) -> str:
        return f"MultiPartitions({self.dimensions!r})"
