"""No-op workflows for bench_graph_run.py (a module, so LocalExecutor's workers find them)."""

from __future__ import annotations

import anachron as ac

HOURS = ac.HourlyPartitions("2020-01-01", "2025-01-01")


@ac.workflow(partitions=HOURS)
def raw() -> None:
    pass


@ac.workflow(partitions=ac.DailyPartitions("2020-01-01", "2025-01-01"), deps=[raw])
def daily() -> None:
    pass


@ac.workflow(partitions=ac.WeeklyPartitions("2020-01-06", "2025-01-06"), deps=[daily])
def weekly() -> None:
    pass


@ac.workflow(partitions=HOURS)
def hourly_alone() -> None:
    pass


@ac.workflow(partitions=ac.DailyPartitions("2023-01-01", "2024-01-01"), depends_on_past=True)
def chain() -> None:
    pass
