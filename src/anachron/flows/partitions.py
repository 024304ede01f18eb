"""``partitions:`` (an anachron addition to the Kestra format): the flow's partitions definition.

The keys mirror the Python constructors (``anachron.DailyPartitions(start, end=None, timezone="UTC",
fmt=..., end_offset=0)`` and so on)::

    partitions: {type: daily, start: 2024-01-01, timezone: Europe/Paris}       # also hourly, weekly, monthly
    partitions: {type: cron, cron: "0 6 * * 1-5", start: 2024-01-01}           # any cron grid
    partitions: {type: static, keys: [us, eu, asia]}
    partitions: {type: dynamic, name: customers}
    partitions:
      type: multi
      dimensions:
        date: {type: daily, start: 2024-01-01}
        region: {type: static, keys: [us, eu]}

``start`` and ``end`` take a date, a datetime or ISO text (``end`` is exclusive). A constructor's
``ValueError`` becomes a ``FlowError`` at the line of the key it names (else of the block).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

from ..partitions import (
    DailyPartitions,
    DynamicPartitions,
    HourlyPartitions,
    MonthlyPartitions,
    MultiPartitions,
    PartitionsDefinition,
    StaticPartitions,
    TimeWindowPartitions,
    WeeklyPartitions,
)
from .yamldoc import Field

__all__ = ["parse_partitions", "PARTITION_TYPES"]

_TIME_CLASSES: dict[str, Callable[..., PartitionsDefinition]] = {
    "daily": DailyPartitions, "hourly": HourlyPartitions, "weekly": WeeklyPartitions, "monthly": MonthlyPartitions,
}
_TIME_KEYS = ("type", "start", "end", "timezone", "fmt", "end_offset")
PARTITION_TYPES = (*_TIME_CLASSES, "cron", "static", "dynamic", "multi")


def parse_partitions(field: Field, nested: bool = False) -> PartitionsDefinition:
    refused = ("multi", "a multi dimension cannot itself be multi") if nested else None
    kind = field.type_of(PARTITION_TYPES, "partitions",
                         "a partitions mapping ({type: daily, start: 2024-01-01, ...})", refused)
    if kind in _TIME_CLASSES:
        keys = field.mapping(_TIME_KEYS, required=("start",))
        return _build(field, keys, _TIME_CLASSES[kind], _time_args(keys))
    if kind == "cron":
        keys = field.mapping(_TIME_KEYS + ("cron",), required=("cron", "start"))
        args = {"cron": keys["cron"].text("a cron expression (a string)"), **_time_args(keys)}
        return _build(field, keys, TimeWindowPartitions, args)
    if kind == "static":
        keys = field.mapping(("type", "keys"), required=("keys",))
        values = [item.scalar_text("a partition key (a string)") for item in keys["keys"].sequence()]
        return _build(field, keys, StaticPartitions, {"keys": values})
    if kind == "dynamic":
        keys = field.mapping(("type", "name"), required=("name",))
        return _build(field, keys, DynamicPartitions, {"name": keys["name"].text()})
    keys = field.mapping(("type", "dimensions"), required=("dimensions",))
    dimensions = {name: parse_partitions(child, nested=True)
                  for name, child in keys["dimensions"].items("a mapping of dimension names to partitions")}
    return _build(field, keys, MultiPartitions, {"dimensions": dimensions})


def _time_args(keys: Mapping[str, Field]) -> dict[str, Any]:
    args: dict[str, Any] = {"start": keys["start"].value}
    if "end" in keys:
        args["end"] = keys["end"].value
    if "timezone" in keys:
        args["timezone"] = keys["timezone"].text("a timezone name such as Europe/Paris")
    if "fmt" in keys:
        args["fmt"] = keys["fmt"].text("a strftime format")
    if "end_offset" in keys:
        args["end_offset"] = keys["end_offset"].integer()
    return args


def _build(field: Field, keys: Mapping[str, Field], make: Callable[..., PartitionsDefinition],
           args: dict[str, Any]) -> PartitionsDefinition:
    try:
        return make(**args)
    except ValueError as exc:
        message = str(exc)
        named = [child for name, child in keys.items() if name != "type" and message.startswith(name)]
        named = named or [child for name, child in keys.items()
                          if name != "type" and re.search(rf"\b{re.escape(name)}\b", message)]
        raise (named[0] if named else field).error(message) from None
