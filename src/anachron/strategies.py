"""How a backfill groups its partitions into runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MULTI_RUN, SINGLE_RUN, PER_DIMENSION, BATCHED = "multi_run", "single_run", "per_dimension", "batched"


@dataclass(frozen=True)
class BackfillStrategy:
    """Build with ``multi_run()``, ``single_run()``, ``per_dimension(...)`` or ``batched(n)``."""

    kind: str
    multi_run_dimensions: tuple[str, ...] = ()
    single_run_dimensions: tuple[str, ...] = ()
    max_partitions_per_run: int | None = None

    @classmethod
    def multi_run(cls) -> BackfillStrategy:
        """One run per partition key (the default)."""
        return cls(MULTI_RUN)

    @classmethod
    def single_run(cls) -> BackfillStrategy:
        """All keys in one run."""
        return cls(SINGLE_RUN)

    @classmethod
    def per_dimension(cls, multi_run: Sequence[str], single_run: Sequence[str]) -> BackfillStrategy:
        """One run per combination of the ``multi_run`` dimensions, covering all ``single_run`` keys.

        Dimensions named in neither list are treated as ``multi_run``.
        """
        multi, single = _dimension_list(multi_run, "multi_run"), _dimension_list(single_run, "single_run")
        both = sorted(set(multi) & set(single))
        if both:
            raise ValueError(f"per_dimension: dimension {both[0]!r} is in both multi_run and single_run")
        return cls(PER_DIMENSION, multi_run_dimensions=multi, single_run_dimensions=single)

    @classmethod
    def batched(cls, max_partitions_per_run: int) -> BackfillStrategy:
        """Consecutive keys in runs of at most ``max_partitions_per_run``."""
        size = max_partitions_per_run
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                f"batched: max_partitions_per_run must be an integer >= 1, got {max_partitions_per_run!r}"
            )
        return cls(BATCHED, max_partitions_per_run=max_partitions_per_run)

    def to_dict(self) -> dict[str, Any]:
        if self.kind == PER_DIMENSION:
            return {"per_dimension": {"multi_run": list(self.multi_run_dimensions),
                                      "single_run": list(self.single_run_dimensions)}}
        if self.kind == BATCHED:
            return {"batched": self.max_partitions_per_run}
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


def _dimension_list(value: Sequence[str], name: str) -> tuple[str, ...]:
    if isinstance(value, str) or not value or not all(isinstance(v, str) and v for v in value):
        raise ValueError(f"per_dimension: {name} must be a non-empty list of dimension names")
    return tuple(value)
