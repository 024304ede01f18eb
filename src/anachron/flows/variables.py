"""The template variables of one run, built from its ``RunContext``.

Times are ISO-8601 text with a UTC offset, in the timezone the time stands for:

- ``trigger.date`` — the schedule tick (``ctx.scheduled_time``) in the schedule's timezone when the flow's
  schedules share one (a flow has one schedule, usually), else in UTC; undefined when the run does not
  stand for a tick (a manual or partition run);
- ``execution.startDate`` — the run's logical time (``ctx.logical_time``: the tick, the end of the partition
  window, or ``ANACHRON_TIME``), so a backfilled run renders its historical date: in the schedule's timezone
  for a tick, in the partitions' timezone for a partition run, else in UTC (``+00:00``);
- ``partition.start`` / ``partition.end`` — the window's bounds in the partitions' timezone.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timezone, tzinfo
from typing import Any

from ..context import RunContext

__all__ = ["Scope", "run_variables"]


class Scope(dict[str, Any]):
    """A template namespace (``trigger``, ``partition``, ...): a dict that knows its name, and why a key may
    be missing in this run, for the message of an undefined value."""

    def __init__(self, name: str, values: Mapping[str, Any] | None = None, why: str = ""):
        super().__init__(values or {})
        self.scope_name = name
        self.why = why


def _iso(moment: datetime, zone: tzinfo | None) -> str:
    return moment.astimezone(zone or timezone.utc).isoformat()


def run_variables(ctx: RunContext, *, flow_id: str, namespace: str | None, labels: Mapping[str, str],
                  inputs: Mapping[str, Any], schedule_zone: tzinfo | None) -> dict[str, Scope]:
    """Every template variable for the run ``ctx`` describes."""
    trigger = Scope("trigger", why="the run was not started by a schedule tick")
    start_zone: tzinfo | None = None
    if ctx.scheduled_time is not None:
        trigger["date"] = _iso(ctx.scheduled_time, schedule_zone)
        start_zone = schedule_zone
    partition = Scope("partition", why="the run has no partition")
    if ctx.partition_keys:
        partition["keys"] = list(ctx.partition_keys)
    if ctx.partition_key is not None:
        partition["key"] = ctx.partition_key
    else:
        partition.why = "the run covers several partitions: use partition.keys" if ctx.partition_keys else partition.why
    if ctx.partition_window is not None:
        start, end = ctx.partition_window
        partition["start"], partition["end"] = start.isoformat(), end.isoformat()
        start_zone = start_zone or start.tzinfo
    execution = Scope("execution", {"id": ctx.run_id, "startDate": _iso(ctx.logical_time, start_zone)})
    flow = Scope("flow", {"id": flow_id}, why="the flow has no namespace")
    if namespace is not None:
        flow["namespace"] = namespace
    return {
        "trigger": trigger,
        "execution": execution,
        "partition": partition,
        "inputs": Scope("inputs", inputs),
        "labels": Scope("labels", {**labels, **ctx.tags}, why="no such label or run tag"),
        "flow": flow,
    }
