"""Workflows for the migrants' paths (issue 13). Top-level, so LocalExecutor worker processes can import them.

Each writes what it saw to a file under the directory it is given (``out``), so a test counts executions by
files the runs wrote themselves, whatever process ran them.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import anachron as ac

DAILY_2024 = ac.DailyPartitions("2024-01-01", "2025-01-01")


def _write(out: str, **seen: object) -> None:
    """One file per execution: ``<out>/<run id>-<random>.json``."""
    ctx = ac.context()
    record = {"run_id": ctx.run_id, "partition_key": ctx.partition_key, "logical_time": ctx.logical_time.isoformat(),
              "attempt": ctx.attempt, **seen}
    Path(out, f"{ctx.run_id}-{uuid.uuid4().hex[:8]}.json").write_text(json.dumps(record, default=str))


def seen(out: str) -> list[dict]:
    """What every execution wrote, oldest first."""
    found = [json.loads(p.read_text()) for p in Path(out).glob("*.json")]
    return sorted(found, key=lambda r: (r.get("wall", 0), r["logical_time"]))


@ac.workflow
def clock_reader(out: str, pause: float = 0.05):
    """Reads the logical clock twice, ``pause`` seconds apart."""
    first = ac.time()
    time.sleep(pause)
    _write(out, first=first, second=ac.time(), now=ac.now().isoformat(), wall=time.time())
    return first


@ac.workflow(partitions=ac.DailyPartitions("2025-12-01"), schedule=ac.Schedule("0 6 * * *"))
def daily_summary(out: str = ""):
    """A partitioned, scheduled workflow: its live tick runs the day that ended by the tick."""
    ctx = ac.context()
    if out:
        _write(out, window=[t.isoformat() for t in ctx.partition_window], scheduled=ctx.scheduled_time.isoformat())
    return ctx.partition_key


@ac.workflow(schedule=[ac.Schedule("0 0 * * *", id="nightly"), ac.Schedule("0 12 * * *", id="noon")])
def nightly_export(out: str = ""):
    """Scheduled, not partitioned (Kestra's flow with schedule triggers)."""
    if out:
        _write(out)


@ac.workflow
def export_snapshot(out: str = "", region: str = "us"):
    """Neither partitioned nor scheduled: Uniflow's job, replayed over a range at a cron's ticks."""
    if out:
        _write(out, region=region, now=ac.now().isoformat())
    return ac.time()
