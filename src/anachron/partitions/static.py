"""Static partitions: a fixed, ordered list of keys."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from .base import DynamicKeys, KeySequence, ListKeySequence, PartitionsDefinition, check_key_text


class StaticPartitions(PartitionsDefinition):
    """`StaticPartitions(["us", "eu", "asia"])`: keys in the given order.

    Keys must be non-empty, unique strings without '|' or '=' (reserved by multi keys) that a
    database can store (no control characters, at most `MAX_KEY_BYTES` bytes of UTF-8)."""

    def __init__(self, keys: Iterable[str]) -> None:
        if isinstance(keys, str):
            raise ValueError(f"StaticPartitions takes a list of keys, not the string {keys!r}")
        pos: dict[str, int] = {}
        for key in keys:
            check_key_text(key)
            if key in pos:
                raise ValueError(f"duplicate partition key {key!r}")
            pos[key] = len(pos)
        if not pos:
            raise ValueError("StaticPartitions needs at least one key")
        self.keys: tuple[str, ...] = tuple(pos)
        self._seq = ListKeySequence(self.keys, pos)

    def get_partition_keys(
        self, current_time: datetime | None = None, dynamic_partitions: DynamicKeys | None = None
    ) -> KeySequence:
        return self._seq

    def has_partition_key(
        self, key: Any, current_time: datetime | None = None,
        dynamic_partitions: DynamicKeys | None = None,
    ) -> bool:
        return key in self._seq

    def _max_key_bytes(self) -> int | None:
        return max(len(k.encode("utf-8")) for k in self.keys)

    def _identity(self) -> tuple[Any, ...]:
        return self.keys

    def __repr__(self) -> str:
        shown = list(self.keys[:5])
        more = f", ... {len(self.keys)} keys" if len(self.keys) > 5 else ""
        return f"StaticPartitions({shown!r}{more})"
