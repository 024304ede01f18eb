"""A workflow's partition keys as the pages need them: all of them now (dynamic ones read from storage), each
dimension's, a search through them, and the time window some keys cover."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from ..definitions import Workflow
from ..partitions import DynamicPartitions, MultiPartitions
from ..repository import CodeRepository

#: Keys a partition search lists at most, and how many keys it reads at most looking for them.
SEARCH_SHOWN = 50
SEARCH_SCAN = 2_000_000


def dynamic_keys(repo: CodeRepository, wf: Workflow) -> dict[str, list[str]]:
    """The keys of the workflow's dynamic partitions (of a dimension, for a multi-partitioned one)."""
    pdef = wf.partitions
    dims = pdef.dimensions.values() if isinstance(pdef, MultiPartitions) else [pdef] if pdef is not None else []
    return {d.name: repo.get_dynamic_partitions(d.name) for d in dims if isinstance(d, DynamicPartitions)}


def keys_of(repo: CodeRepository, wf: Workflow) -> Any:
    """The workflow's partition keys now (a lazy sequence, in key order)."""
    assert wf.partitions is not None
    return wf.partitions.get_partition_keys(datetime.now(timezone.utc), dynamic_keys(repo, wf))


def dimension_keys(repo: CodeRepository, wf: Workflow) -> dict[str, Any]:
    """Each dimension's keys now, in definition order (a multi-partitioned workflow)."""
    assert isinstance(wf.partitions, MultiPartitions)
    now, dynamic = datetime.now(timezone.utc), dynamic_keys(repo, wf)
    return {name: d.get_partition_keys(now, dynamic) for name, d in wf.partitions.dimensions.items()}


def search(keys: Sequence[str], text: str) -> list[str]:
    """The keys containing ``text`` (case-insensitively), at most ``SEARCH_SHOWN`` of them, in key order."""
    wanted = text.lower()
    found = []
    for i, key in enumerate(keys):
        if i >= SEARCH_SCAN:
            break
        if wanted in key.lower():
            found.append(key)
            if len(found) >= SEARCH_SHOWN:
                break
    return found


def partition_window(wf: Workflow | None, keys: Sequence[str]) -> tuple[datetime, datetime] | None:
    """The time window ``keys`` cover (the first one's start to the last one's end), when the workflow is
    still defined with time partitions that know them."""
    if wf is None or wf.partitions is None or not wf.partitions.is_time_based or not keys:
        return None
    try:
        return wf.partitions.time_window(keys[0]).start, wf.partitions.time_window(keys[-1]).end
    except (ValueError, TypeError, LookupError):
        return None
