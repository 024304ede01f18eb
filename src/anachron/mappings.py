"""Partition mappings: which upstream keys a downstream key needs (SPEC §8).

``ac.Dep(upstream, mapping=...)`` takes one of these; without one, ``infer_mapping`` picks the default:

| upstream → downstream | inferred mapping |
|---|---|
| the same partitions definition | ``IdentityMapping()``: the same key |
| time windows → time windows | ``TimeWindowMapping()``: every upstream window overlapping the downstream one |
| static/dynamic → static/dynamic | ``IdentityMapping()``: the same key, where it exists upstream |
| multi-partitions on either side | ``DimensionMapping({})``: same-named dimensions by their own rule, others all keys |
| no partitions on either side | ``AllPartitionsMapping()``: one node, or every upstream key |

Mappings are values (compared, hashed and stored as JSON: ``to_dict`` / ``mapping_from_dict``), checked against
the two partitions definitions when the repository is built (``check``: a ``ValueError`` saying why it cannot
apply), and bound to the two key sequences when a backfill is planned (``bind`` → ``mapping_bounds.Bound``).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, ClassVar

from .mapping_bounds import (
    AllBound,
    Bound,
    LastBound,
    ProductBound,
    ShiftBound,
    Side,
    TableBound,
    TimeBound,
    describe_side,
    same_grid_shift,
)
from .partitions import (
    DynamicPartitions,
    MultiPartitions,
    PartitionsDefinition,
    StaticPartitions,
    TimeWindowPartitions,
)

PDef = PartitionsDefinition | None
Dynamic = Mapping[str, Sequence[str]]


class PartitionMapping(ABC):
    """Which upstream keys each downstream key needs."""

    kind: ClassVar[str]

    @abstractmethod
    def check(self, upstream: PDef, downstream: PDef) -> None:
        """``ValueError`` saying why this mapping cannot apply to the two definitions (``None``: unpartitioned)."""

    @abstractmethod
    def bind(self, up: Side, down: Side, now: datetime, dynamic: Dynamic) -> Bound:
        """The mapping on positions of the two sides' keys (``check`` passed)."""

    def _args(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, **self._args()}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, PartitionMapping) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(repr(self.to_dict()))

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._args().items())
        return f"{type(self).__name__}({args})"


class TimeWindowMapping(PartitionMapping):
    """Every upstream window overlapping the downstream window, each in its own timezone; ``start_offset=-1``
    also needs the upstream window before, ``end_offset=1`` the one after (offsets count upstream windows)."""

    kind = "time_window"

    def __init__(self, start_offset: int = 0, end_offset: int = 0) -> None:
        for name, value in (("start_offset", start_offset), ("end_offset", end_offset)):
            if isinstance(value, bool) or not isinstance(value, int):
                raise ValueError(f"TimeWindowMapping.{name}: must be an integer, got {value!r}")
        if start_offset > end_offset:
            raise ValueError(f"TimeWindowMapping: start_offset ({start_offset}) must not be after end_offset "
                             f"({end_offset})")
        self.start_offset, self.end_offset = start_offset, end_offset

    def _args(self) -> dict[str, Any]:
        return {k: v for k, v in (("start_offset", self.start_offset), ("end_offset", self.end_offset)) if v}

    def check(self, upstream: PDef, downstream: PDef) -> None:
        if not isinstance(upstream, TimeWindowPartitions) or not isinstance(downstream, TimeWindowPartitions):
            raise ValueError(f"{self!r} needs time-window partitions on both sides (for multi-partitions, use "
                             "DimensionMapping({'<time dimension>': TimeWindowMapping()}))")

    def bind(self, up: Side, down: Side, now: datetime, dynamic: Dynamic) -> Bound:
        assert isinstance(up.pdef, TimeWindowPartitions) and isinstance(down.pdef, TimeWindowPartitions)
        return TimeBound(up.pdef, down.pdef, up.size, down.size, self.start_offset, self.end_offset)


class IdentityMapping(PartitionMapping):
    """The downstream key needs the upstream key of the same name."""

    kind = "identity"

    def check(self, upstream: PDef, downstream: PDef) -> None:
        if upstream is None or downstream is None:
            raise ValueError(f"{self!r} needs partitions on both sides")
        if upstream == downstream or _text_keys(upstream) and _text_keys(downstream):
            return
        if isinstance(upstream, TimeWindowPartitions) and isinstance(downstream, TimeWindowPartitions) and \
                _same_grid(upstream, downstream):
            return
        raise ValueError(f"{self!r} needs keys of the same form on both sides (the same partitions, time windows "
                         "on the same cron, timezone and format, or static/dynamic keys)")

    def bind(self, up: Side, down: Side, now: datetime, dynamic: Dynamic) -> Bound:
        if up.pdef == down.pdef:
            return ShiftBound(up.size, down.size)
        if isinstance(up.pdef, TimeWindowPartitions) and isinstance(down.pdef, TimeWindowPartitions):
            return ShiftBound(up.size, down.size, same_grid_shift(up.pdef, down.pdef))
        assert up.keys is not None and down.keys is not None
        return TableBound.by_text(up.keys, down.keys)


class AllPartitionsMapping(PartitionMapping):
    """Every downstream key needs every upstream key (of the backfill)."""

    kind = "all"

    def check(self, upstream: PDef, downstream: PDef) -> None:
        return None

    def bind(self, up: Side, down: Side, now: datetime, dynamic: Dynamic) -> Bound:
        return AllBound(up.size, down.size)


class LastPartitionMapping(PartitionMapping):
    """Every downstream key needs the upstream's last key."""

    kind = "last"

    def check(self, upstream: PDef, downstream: PDef) -> None:
        if upstream is None:
            raise ValueError(f"{self!r} needs an upstream with partitions")

    def bind(self, up: Side, down: Side, now: datetime, dynamic: Dynamic) -> Bound:
        return LastBound(up.size, down.size)


class StaticMapping(PartitionMapping):
    """Explicit keys: ``StaticMapping({"down_key": ["up_key", ...]})``; a downstream key not listed needs nothing."""

    kind = "static"

    def __init__(self, mapping: Mapping[str, Sequence[str] | str]) -> None:
        if not isinstance(mapping, Mapping):
            raise ValueError("StaticMapping: expected a mapping of downstream key → list of upstream keys")
        table: dict[str, tuple[str, ...]] = {}
        for down, ups in mapping.items():
            values = (ups,) if isinstance(ups, str) else ups
            if not isinstance(down, str) or not isinstance(values, Sequence) or \
                    not all(isinstance(u, str) for u in values):
                raise ValueError(f"StaticMapping: {down!r} → {ups!r}: expected a downstream key (a string) mapped "
                                 "to a list of upstream keys")
            table[down] = tuple(dict.fromkeys(values))
        self.mapping = table

    def _args(self) -> dict[str, Any]:
        return {"mapping": {k: list(v) for k, v in self.mapping.items()}}

    def check(self, upstream: PDef, downstream: PDef) -> None:
        for side, pdef in (("upstream", upstream), ("downstream", downstream)):
            if not _text_keys(pdef):
                raise ValueError(f"StaticMapping maps static or dynamic keys; the {side} has {describe_side(pdef)}")
        for key, ups in self.mapping.items():
            if isinstance(downstream, StaticPartitions) and key not in downstream.keys:
                raise ValueError(f"StaticMapping: {key!r} is not a key of the downstream {downstream!r}")
            for up in ups:
                if isinstance(upstream, StaticPartitions) and up not in upstream.keys:
                    raise ValueError(f"StaticMapping: {up!r} (for {key!r}) is not a key of the upstream {upstream!r}")

    def bind(self, up: Side, down: Side, now: datetime, dynamic: Dynamic) -> Bound:
        assert up.keys is not None and down.keys is not None
        table = {}
        for key, ups in self.mapping.items():
            d = down.keys._index(key)
            if d is not None:
                table[d] = [u for u in (up.keys._index(k) for k in ups) if u is not None]
        return TableBound(up.size, down.size, table)


class DimensionMapping(PartitionMapping):
    """Multi-partitions, dimension by dimension: ``DimensionMapping({"date": TimeWindowMapping(), "region":
    IdentityMapping()})``. Dimensions of the same name not listed map by their inferred rule; upstream dimensions
    without a downstream counterpart need all their keys. A side that is not multi-partitioned counts as one
    dimension: the one named (at most one name then), else the other side's dimension with the same definition
    (or its time dimension, for time windows)."""

    kind = "dimension"

    def __init__(self, dimensions: Mapping[str, PartitionMapping] | None = None) -> None:
        dims = dict(dimensions or {})
        for name, mapping in dims.items():
            if not isinstance(name, str) or not isinstance(mapping, PartitionMapping):
                raise ValueError(f"DimensionMapping: {name!r}: expected a dimension name mapped to a partition "
                                 f"mapping, got {mapping!r}")
            if isinstance(mapping, DimensionMapping):
                raise ValueError(f"DimensionMapping: {name!r}: a dimension's mapping cannot be a DimensionMapping")
        self.dimensions = dims

    def _args(self) -> dict[str, Any]:
        return {"dimensions": {k: m.to_dict() for k, m in self.dimensions.items()}} if self.dimensions else {}

    def __repr__(self) -> str:
        return f"DimensionMapping({self.dimensions!r})"

    def check(self, upstream: PDef, downstream: PDef) -> None:
        self._links(upstream, downstream)

    def _links(self, upstream: PDef, downstream: PDef) -> list[tuple[int, PartitionMapping] | None]:
        """Per upstream dimension: ``(downstream dimension index, mapping)``, or ``None`` (needs all its keys)."""
        if not isinstance(upstream, MultiPartitions) and not isinstance(downstream, MultiPartitions):
            raise ValueError(f"{self!r} needs multi-partitions on at least one side")
        up_dims, down_dims = _named(upstream, downstream, self.dimensions, "upstream"), \
            _named(downstream, upstream, self.dimensions, "downstream")
        for wanted in self.dimensions:
            for side, dims in (("upstream", up_dims), ("downstream", down_dims)):
                if wanted not in [n for n, _ in dims]:
                    raise ValueError(f"DimensionMapping: {wanted!r} is not a dimension of the {side} partitions")
        down_index = {dim: i for i, (dim, _) in enumerate(down_dims) if dim is not None}
        links: list[tuple[int, PartitionMapping] | None] = []
        for name, pdef in up_dims:
            if name is None or name not in down_index:
                links.append(None)
                continue
            other = down_dims[down_index[name]][1]
            mapping = self.dimensions.get(name)
            try:
                if mapping is None:
                    mapping = infer_mapping(pdef, other)
                mapping.check(pdef, other)
            except ValueError as exc:
                raise ValueError(f"dimension {name!r}: {exc}") from None
            links.append((down_index[name], mapping))
        return links

    def bind(self, up: Side, down: Side, now: datetime, dynamic: Dynamic) -> Bound:
        links = self._links(up.pdef, down.pdef)
        ups, downs = up.dimensions(now, dynamic), down.dimensions(now, dynamic)
        bound: list[tuple[int, Bound] | None] = []
        for (_, side), link in zip(ups, links):
            bound.append(None if link is None else (link[0], link[1].bind(side, downs[link[0]][1], now, dynamic)))
        return ProductBound([s.size for _, s in ups], [s.size for _, s in downs], bound)


class PreviousKeyMapping(PartitionMapping):
    """A key needs the key before it in its own definition (``depends_on_past`` on keys that are not time windows)."""

    kind = "previous"

    def check(self, upstream: PDef, downstream: PDef) -> None:
        if upstream is None or upstream != downstream:
            raise ValueError(f"{self!r} maps a workflow's keys to its own")

    def bind(self, up: Side, down: Side, now: datetime, dynamic: Dynamic) -> Bound:
        return ShiftBound(up.size, down.size, -1)


_KINDS: dict[str, type[PartitionMapping]] = {
    c.kind: c for c in (TimeWindowMapping, IdentityMapping, AllPartitionsMapping, LastPartitionMapping, StaticMapping,
                        DimensionMapping, PreviousKeyMapping)
}


def mapping_from_dict(data: Mapping[str, Any]) -> PartitionMapping:
    """The mapping ``to_dict`` described; ``ValueError`` naming what is wrong."""
    kind = data.get("kind") if isinstance(data, Mapping) else None
    cls = _KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ValueError(f"mapping: unknown kind {kind!r}; expected one of {', '.join(_KINDS)}")
    args = {k: v for k, v in data.items() if k != "kind"}
    if cls is DimensionMapping:
        return DimensionMapping({k: mapping_from_dict(v) for k, v in (args.get("dimensions") or {}).items()})
    try:
        return cls(**args)
    except TypeError:
        raise ValueError(f"mapping {kind!r}: unexpected fields {sorted(args)}") from None


def infer_mapping(upstream: PDef, downstream: PDef) -> PartitionMapping:
    """The default mapping between two definitions (the table in the module note); ``ValueError`` when none fits."""
    if upstream is None or downstream is None:
        return AllPartitionsMapping()
    if upstream == downstream:
        return IdentityMapping()
    if isinstance(upstream, TimeWindowPartitions) and isinstance(downstream, TimeWindowPartitions):
        return TimeWindowMapping()
    if isinstance(upstream, MultiPartitions) or isinstance(downstream, MultiPartitions):
        return DimensionMapping()
    if _text_keys(upstream) and _text_keys(downstream):
        return IdentityMapping()
    raise ValueError(f"no mapping can be inferred from {describe_side(upstream)} to {describe_side(downstream)}; "
                     "give one, e.g. ac.Dep(upstream, mapping=ac.AllPartitionsMapping())")


def past_mapping(pdef: PDef) -> PartitionMapping:
    """What ``depends_on_past=True`` means for a definition: each key needs the one before it (for multi-partitions,
    the window before on the time dimension, the same keys on the others)."""
    if isinstance(pdef, TimeWindowPartitions):
        return TimeWindowMapping(-1, -1)
    if isinstance(pdef, MultiPartitions) and pdef.time_dimension_name is not None:
        return DimensionMapping({pdef.time_dimension_name: TimeWindowMapping(-1, -1)})
    return PreviousKeyMapping()


def _text_keys(pdef: PDef) -> bool:
    return isinstance(pdef, (StaticPartitions, DynamicPartitions))


def _same_grid(a: TimeWindowPartitions, b: TimeWindowPartitions) -> bool:
    return (a.cron_expression, a.timezone, a.fmt) == (b.cron_expression, b.timezone, b.fmt)


def _named(side: PDef, other: PDef, explicit: Mapping[str, PartitionMapping],
           which: str) -> list[tuple[str | None, PartitionsDefinition]]:
    """A side's dimensions by name; a side that is not multi-partitioned is one dimension, named after the one
    explicit dimension, or after the other side's matching dimension (same definition, else the time one)."""
    assert side is not None
    if isinstance(side, MultiPartitions):
        return list(side.dimensions.items())
    if len(explicit) > 1:
        raise ValueError(f"DimensionMapping: the {which} partitions have one dimension ({side!r}); name one "
                         f"dimension, not {len(explicit)}")
    if explicit:
        return [(next(iter(explicit)), side)]
    assert isinstance(other, MultiPartitions)
    for name, pdef in other.dimensions.items():
        if pdef == side:
            return [(name, side)]
    if side.is_time_based and other.time_dimension_name is not None:
        return [(other.time_dimension_name, side)]
    return [(None, side)]
