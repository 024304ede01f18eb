"""Dynamic partitions: keys added and removed at run time, supplied by the repository."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .base import (
    EMPTY,
    DynamicKeys,
    KeySequence,
    ListKeySequence,
    PartitionsDefinition,
    check_key_text,
)


class DynamicPartitions(PartitionsDefinition):
    """`DynamicPartitions("customers")`: keys come from `dynamic_partitions["customers"]`
    (insertion order); a name missing from the mapping has no keys."""

    def __init__(self, name: str) -> None:
        if not isinstance(name, str) or not name.strip():
            raise ValueError(f"DynamicPartitions needs a non-empty name, got {name!r}")
        self.name: str = name

    @staticmethod
    def validate_new_keys(keys: Iterable[str]) -> list[str]:
        """Check keys before they are stored: non-empty strings without '|' or '=', without
        control characters and at most `MAX_KEY_BYTES` bytes of UTF-8 (`check_key_text`)."""
        if isinstance(keys, str):
            keys = [keys]
        return [check_key_text(k) for k in keys]

    def _raw(self, dynamic_partitions: DynamicKeys | None) -> Any:
        return (dynamic_partitions or {}).get(self.name)

    def get_partition_keys(
        self, current_time: datetime | None = None, dynamic_partitions: DynamicKeys | None = None
    ) -> KeySequence:
        keys = self._raw(dynamic_partitions)
        if keys is None:
            return EMPTY
        if isinstance(keys, KeySequence):
            return keys
        return ListKeySequence(tuple(keys))

    def has_partition_key(
        self, key: Any, current_time: datetime | None = None,
        dynamic_partitions: DynamicKeys | None = None,
    ) -> bool:
        keys = self._raw(dynamic_partitions)
        return isinstance(key, str) and keys is not None and key in keys

    def _identity(self) -> tuple[Any, ...]:
        return (self.name,)

    def __repr__(self) -> str:
        return f"DynamicPartitions({self.name!r})"
