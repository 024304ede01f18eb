"""A three-level data graph for the graph tests: hourly events → daily summary → weekly report (2024, UTC).

``raw_events`` writes one file per hour under ``GRAPH_DIR`` (the environment; unset, a folder of the system's
temporary directory, never the working directory), ``daily_summary`` reads the day's
hours, ``weekly_report`` the week's days; each run appends ``<workflow> <keys> <start> <end> <attempt>`` to
``runs.log`` there when it has run to its end, so tests count executions and check their order from what the
runs wrote themselves. A key listed in ``GRAPH_FAIL`` (comma-separated, ``workflow/key``) fails instead.
"""

from __future__ import annotations

import os
import tempfile
import time
from pathlib import Path

import anachron as ac

HOURS = ac.HourlyPartitions("2024-01-01", "2025-01-01")
DAYS = ac.DailyPartitions("2024-01-01", "2025-01-01")
WEEKS = ac.WeeklyPartitions("2024-01-01", "2024-12-30")


def _record(name: str) -> Path:
    folder = Path(os.environ.get("GRAPH_DIR") or Path(tempfile.gettempdir()) / "anachron-graph-flows")
    folder.mkdir(parents=True, exist_ok=True)
    ctx = ac.context()
    started = time.time()
    keys = ",".join(ctx.partition_keys) or "-"
    if f"{name}/{keys}" in os.environ.get("GRAPH_FAIL", "").split(","):
        raise RuntimeError(f"bad input for {keys}")
    time.sleep(float(os.environ.get("GRAPH_SLEEP", "0")))
    with open(folder / "runs.log", "a") as log:
        log.write(f"{name} {keys} {started:.6f} {time.time():.6f} {ctx.attempt}\n")
    return folder


@ac.workflow(partitions=HOURS)
def raw_events() -> None:
    folder = _record("raw_events")
    for key in ac.context().partition_keys:
        (folder / f"raw-{key.replace(':', '')}").write_text("events")


@ac.workflow(partitions=DAYS, deps=[raw_events])
def daily_summary() -> None:
    _record("daily_summary")


@ac.workflow(partitions=WEEKS, deps=[ac.Dep(daily_summary, ac.TimeWindowMapping())])
def weekly_report() -> None:
    _record("weekly_report")


@ac.workflow(partitions=ac.StaticPartitions(["us", "eu"]))
def regions() -> None:
    _record("regions")


@ac.workflow(deps=[weekly_report])
def yearly_deck() -> None:
    """No partitions: needs every weekly report in the backfill."""
    _record("yearly_deck")


@ac.workflow(partitions=DAYS, depends_on_past=True)
def running_total() -> None:
    _record("running_total")


GRAPH = [raw_events, daily_summary, weekly_report]
ALL = [*GRAPH, regions, yearly_deck, running_total]
