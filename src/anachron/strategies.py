"""How a backfill groups its partitions into runs.

``BackfillStrategy.multi_run()``, ``.single_run()``, ``.per_dimension(...)`` and ``.batched(n)`` return instances
of the nested types ``BackfillStrategy.MultiRun``, ``.SingleRun``, ``.PerDimension`` and ``.Batched`` (the
Rivers backfill API's types): ``isinstance(s, BackfillStrategy.PerDimension)`` tells them apart, and a
``PerDimension`` carries its dimension lists as ``.multi_run`` and ``.single_run``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

MULTI_RUN, SINGLE_RUN, PER_DIMENSION, BATCHED = "multi_run", "single_run", "per_dimension", "batched"


class BackfillStrategy:
    """Build with ``multi_run()``, ``single_run()``, ``per_dimension(...)`` or ``batched(n)``."""

    kind: ClassVar[str]
    MultiRun: ClassVar[type[MultiRunStrategy]]
    SingleRun: ClassVar[type[SingleRunStrategy]]
    PerDimension: ClassVar[type[PerDimensionStrategy]]
    Batched: ClassVar[type[BatchedStrategy]]

    @classmethod
    def multi_run(cls) -> MultiRunStrategy:
        """One run per partition key (the default)."""
        return MultiRunStrategy()

    @classmethod
    def single_run(cls) -> SingleRunStrategy:
        """All keys in one run."""
        return SingleRunStrategy()

    @classmethod
    def per_dimension(cls, multi_run: Sequence[str], single_run: Sequence[str]) -> PerDimensionStrategy:
        """One run per combination of the ``multi_run`` dimensions, covering all ``single_run`` keys.

        Dimensions named in neither list are treated as ``multi_run``.
        """
        multi, single = _dimension_list(multi_run, "multi_run"), _dimension_list(single_run, "single_run")
        both = sorted(set(multi) & set(single))
        if both:
            raise ValueError(f"per_dimension: dimension {both[0]!r} is in both multi_run and single_run")
        return PerDimensionStrategy(list(multi), list(single))

    @classmethod
    def batched(cls, max_partitions_per_run: int) -> BatchedStrategy:
        """Consecutive keys in runs of at most ``max_partitions_per_run``."""
        size = max_partitions_per_run
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                f"batched: max_partitions_per_run must be an integer >= 1, got {max_partitions_per_run!r}"
            )
        return BatchedStrategy(max_partitions_per_run)

    # -- what planning reads, whatever the type ---------------------------------------------------
    @property
    def multi_run_dimensions(self) -> tuple[str, ...]:
        return ()

    @property
    def single_run_dimensions(self) -> tuple[str, ...]:
        return ()

    @property
    def batch_size(self) -> int | None:
        """Keys per run of a ``batched`` strategy (``None`` for the others)."""
        return None

    def to_dict(self) -> dict[str, Any]:
        return {self.kind: True}

    @classmethod
    def from_dict(cls, data: Any) -> BackfillStrategy:
        """Parse the JSON form used by storage and the HTTP API."""
        if isinstance(data, str):
            if data == MULTI_RUN:
                return cls.multi_run()
            if data == SINGLE_RUN:
                return cls.single_run()
            raise ValueError(f"strategy: expected multi_run, single_run, per_dimension or batched, got {data!r}")
        if isinstance(data, dict) and len(data) == 1:
            (kind, value), = data.items()
            if kind in (MULTI_RUN, SINGLE_RUN):
                return cls.from_dict(kind)
            if kind == BATCHED:
                return cls.batched(value)
            if kind == PER_DIMENSION and isinstance(value, dict):
                return cls.per_dimension(value.get("multi_run", []), value.get("single_run", []))
        raise ValueError(f"strategy: cannot read {data!r}")


@dataclass(frozen=True)
class MultiRunStrategy(BackfillStrategy):
    """One run per partition key."""

    kind: ClassVar[str] = MULTI_RUN


@dataclass(frozen=True)
class SingleRunStrategy(BackfillStrategy):
    """All keys in one run."""

    kind: ClassVar[str] = SINGLE_RUN


@dataclass(frozen=True)
class PerDimensionStrategy(BackfillStrategy):
    """One run per combination of the ``multi_run`` dimensions, covering every key of the ``single_run`` ones."""

    kind: ClassVar[str] = PER_DIMENSION
    # ``field()`` without a default: the instance's lists, while ``PerDimension.multi_run()`` stays the factory
    multi_run: list[str] = field()  # type: ignore[assignment]
    single_run: list[str] = field()  # type: ignore[assignment]

    def __hash__(self) -> int:
        return hash((tuple(self.multi_run), tuple(self.single_run)))

    @property
    def multi_run_dimensions(self) -> tuple[str, ...]:
        return tuple(self.multi_run)

    @property
    def single_run_dimensions(self) -> tuple[str, ...]:
        return tuple(self.single_run)

    def to_dict(self) -> dict[str, Any]:
        return {PER_DIMENSION: {"multi_run": list(self.multi_run), "single_run": list(self.single_run)}}


@dataclass(frozen=True)
class BatchedStrategy(BackfillStrategy):
    """Consecutive keys in runs of at most ``max_partitions_per_run``."""

    kind: ClassVar[str] = BATCHED
    max_partitions_per_run: int

    @property
    def batch_size(self) -> int | None:
        return self.max_partitions_per_run

    def to_dict(self) -> dict[str, Any]:
        return {BATCHED: self.max_partitions_per_run}


for _cls, _name in ((MultiRunStrategy, "MultiRun"), (SingleRunStrategy, "SingleRun"),
                   (PerDimensionStrategy, "PerDimension"), (BatchedStrategy, "Batched")):
    _cls.__qualname__ = f"BackfillStrategy.{_name}"  # its repr, and where pickle finds it
BackfillStrategy.MultiRun = MultiRunStrategy
BackfillStrategy.SingleRun = SingleRunStrategy
BackfillStrategy.PerDimension = PerDimensionStrategy
BackfillStrategy.Batched = BatchedStrategy


def _dimension_list(value: Sequence[str], name: str) -> tuple[str, ...]:
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"per_dimension: {name} must be a non-empty list of dimension names")
    return tuple(value)
