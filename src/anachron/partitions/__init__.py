"""Partitions: how a workflow's data is sliced (time windows, static, dynamic, multi) and
ranges of partition keys. Every definition enumerates its keys as a lazy `KeySequence`."""

from .base import KeySequence, PartitionsDefinition, TimeWindow
from .dynamic import DynamicPartitions
from .key_range import PartitionKeyRange
from .multi import MultiPartitionKey, MultiPartitions
from .static import StaticPartitions
from .time_window import (
    DailyPartitions,
    HourlyPartitions,
    MonthlyPartitions,
    TimeWindowPartitions,
    WeeklyPartitions,
)

__all__ = [
    "DailyPartitions",
    "DynamicPartitions",
    "HourlyPartitions",
    "KeySequence",
    "MonthlyPartitions",
    "MultiPartitionKey",
    "MultiPartitions",
    "PartitionKeyRange",
    "PartitionsDefinition",
    "StaticPartitions",
    "TimeWindow",
    "TimeWindowPartitions",
    "WeeklyPartitions",
]
