"""Partition key ranges: an inclusive `from..to` range, or a per-dimension selection of a
multi-partitioned definition, resolved lazily against a definition."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from .base import DynamicKeys, KeySequence, PartitionsDefinition
from .multi import MultiPartitions, ProductSequence

DimensionSpec = dict[str, str] | list[str]


def _check_key(key: Any, what: str) -> str:
    if not isinstance(key, str) or not key:
        raise ValueError(f"{what} must be a non-empty partition key string, got {key!r}")
    return key


def _normalise(name: str, spec: Any) -> DimensionSpec:
    """`(from, to)` or `{"from", "to"}` -> `{"from", "to"}`; a list -> de-duplicated list."""
    if isinstance(spec, Mapping):
        if set(spec) != {"from", "to"}:
            raise ValueError(f"dimension {name!r}: a range mapping needs exactly 'from' and 'to'")
        spec = (spec["from"], spec["to"])
    if isinstance(spec, tuple):
        if len(spec) != 2:
            raise ValueError(f"dimension {name!r}: a range is a (from_key, to_key) pair, got {spec!r}")
        return {"from": _check_key(spec[0], f"dimension {name!r} from"),
                "to": _check_key(spec[1], f"dimension {name!r} to")}
    if isinstance(spec, str) or not isinstance(spec, Sequence):
        raise ValueError(
            f"dimension {name!r}: expected a (from, to) tuple or a list of keys, got {spec!r}"
        )
    keys = list(dict.fromkeys(_check_key(k, f"dimension {name!r} key") for k in spec))
    if not keys:
        raise ValueError(f"dimension {name!r}: the list of keys is empty")
    return keys


def _position(
    seq: KeySequence, key: str, defn: PartitionsDefinition, dim: str | None,
    current_time: Any, dynamic_partitions: DynamicKeys | None,
) -> int:
    pos = seq._index(key)
    if pos is not None:
        return pos
    where = f" in dimension {dim!r}" if dim else ""
    try:
        defn.validate_key(key, current_time, dynamic_partitions)
    except ValueError as exc:
        raise ValueError(f"unknown partition key {key!r}{where}: {exc}") from None
    raise ValueError(f"unknown partition key {key!r}{where}")


class PartitionKeyRange:
    """Build with `PartitionKeyRange.single(from_key, to_key)` (inclusive) or
    `PartitionKeyRange.multi({"date": ("2024-01-01", "2024-01-07"), "region": ["us", "eu"]})`:
    a tuple is an inclusive range in key order, a list explicit keys (given order, de-duplicated),
    and a dimension left out means all of its keys."""

    __slots__ = ("kind", "from_key", "to_key", "_dims")

    def __init__(
        self, kind: str, from_key: str | None = None, to_key: str | None = None,
        dimensions: Mapping[str, DimensionSpec] | None = None,
    ) -> None:
        if kind not in ("single", "multi"):
            raise ValueError(f"kind must be 'single' or 'multi', got {kind!r}")
        self.kind = kind
        self.from_key = from_key
        self.to_key = to_key
        self._dims: dict[str, DimensionSpec] = dict(dimensions or {})

    @classmethod
    def single(cls, from_key: str, to_key: str) -> PartitionKeyRange:
        return cls("single", _check_key(from_key, "from_key"), _check_key(to_key, "to_key"))

    @classmethod
    def multi(cls, dimensions: Mapping[str, Any]) -> PartitionKeyRange:
        if not isinstance(dimensions, Mapping):
            raise ValueError(f"PartitionKeyRange.multi takes a {{dimension: selection}} mapping, got {dimensions!r}")
        for name in dimensions:
            if not isinstance(name, str) or not name:
                raise ValueError(f"invalid dimension name {name!r}")
        return cls("multi", dimensions={n: _normalise(n, s) for n, s in dimensions.items()})

    @property
    def dimensions(self) -> dict[str, DimensionSpec]:
        """Per-dimension selections: `{"from": k, "to": k}` or a list of keys (copies)."""
        return {n: (dict(s) if isinstance(s, dict) else list(s)) for n, s in self._dims.items()}

    def resolve(
        self, partitions_def: PartitionsDefinition, current_time: datetime | None = None,
        dynamic_partitions: DynamicKeys | None = None,
    ) -> KeySequence:
        """The selected keys as a lazy sequence, in key order (multi: product in definition order)."""
        ct, dyn = current_time, dynamic_partitions
        if self.kind == "single":
            assert self.from_key is not None and self.to_key is not None
            seq = partitions_def.get_partition_keys(ct, dyn)
            i = _position(seq, self.from_key, partitions_def, None, ct, dyn)
            j = _position(seq, self.to_key, partitions_def, None, ct, dyn)
            if i > j:
                raise ValueError(
                    f"inverted partition range: {self.from_key!r} comes after {self.to_key!r}"
                )
            return seq[i : j + 1]
        if not isinstance(partitions_def, MultiPartitions):
            raise ValueError(
                f"a per-dimension key range needs a MultiPartitions definition, got {partitions_def!r}"
            )
        for name in self._dims:
            if name not in partitions_def.dimensions:
                raise ValueError(
                    f"unknown dimension {name!r}; dimensions are {partitions_def.dimension_names}"
                )
        seqs = []
        for name, defn in partitions_def.dimensions.items():
            sub = defn.get_partition_keys(ct, dyn)
            spec = self._dims.get(name)
            if isinstance(spec, dict):
                i = _position(sub, spec["from"], defn, name, ct, dyn)
                j = _position(sub, spec["to"], defn, name, ct, dyn)
                if i > j:
                    raise ValueError(
                        f"inverted partition range in dimension {name!r}: "
                        f"{spec['from']!r} comes after {spec['to']!r}"
                    )
                sub = sub[i : j + 1]
            elif spec is not None:
                for key in spec:
                    _position(sub, key, defn, name, ct, dyn)
                sub = KeySequence.from_list(spec)
            seqs.append(sub)
        return ProductSequence(partitions_def.dimension_names, seqs)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-able form; `PartitionKeyRange.from_dict` reads it back."""
        if self.kind == "single":
            return {"kind": "single", "from": self.from_key, "to": self.to_key}
        return {"kind": "multi", "dimensions": self.dimensions}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PartitionKeyRange:
        """Read `to_dict` output; `kind` may be omitted (`{"from", "to"}` or `{"dimensions"}`)."""
        if not isinstance(data, Mapping):
            raise ValueError(f"a partition range must be a mapping, got {data!r}")
        kind = data.get("kind") or ("multi" if "dimensions" in data else "single")
        if kind == "single":
            if "from" not in data or "to" not in data:
                raise ValueError(f"a single partition range needs 'from' and 'to': {dict(data)!r}")
            return cls.single(data["from"], data["to"])
        if kind == "multi":
            dims = data.get("dimensions")
            if not isinstance(dims, Mapping):
                raise ValueError(f"a multi partition range needs a 'dimensions' mapping: {dict(data)!r}")
            return cls.multi(dict(dims))
        raise ValueError(f"unknown partition range kind {kind!r}")

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PartitionKeyRange):
            return NotImplemented
        return self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self))

    def __repr__(self) -> str:
        if self.kind == "single":
            return f"PartitionKeyRange.single({self.from_key!r}, {self.to_key!r})"
        return f"PartitionKeyRange.multi({self._dims!r})"
