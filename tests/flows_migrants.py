"""Workflows for the migrants' paths (issue 13). Top-level, so LocalExecutor worker processes can import them.

Each writes what it saw to a file under the directory it is given (``out``), so a test counts executions by
files the runs wrote themselves, whatever process ran them.
"""

from __future__ import annotations

import json
import time
import uuid
from datetime import date
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


@ac.workflow
def marked(out: str, seconds: float = 0.0, hold: str = ""):
    """Writes ``started`` then, ``seconds`` later (and once the file ``hold`` exists, if given), ``done``
    markers: a run killed in between leaves only the first."""
    ctx = ac.context()
    Path(out, f"started-{ctx.run_id}-{ctx.attempt}").write_text(ac.now().isoformat())
    time.sleep(seconds)
    deadline = time.monotonic() + 120
    while hold and not Path(hold).exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    Path(out, f"done-{ctx.run_id}-{ctx.attempt}").write_text(ac.now().isoformat())
    return ctx.attempt


def markers(out: str, kind: str) -> list[str]:
    return sorted(p.name for p in Path(out).glob(f"{kind}-*"))


@ac.task(tags={"db": "warehouse"})
def warehouse_write(out: str, seconds: float) -> None:
    """A task call tagged db=warehouse: records when it held the warehouse (start and end, wall clock)."""
    start = time.time()
    time.sleep(seconds)
    Path(out, f"call-{uuid.uuid4().hex}").write_text(json.dumps([start, time.time()]))


@ac.task
def untagged_write(out: str, seconds: float) -> None:
    start = time.time()
    time.sleep(seconds)
    Path(out, f"free-{uuid.uuid4().hex}").write_text(json.dumps([start, time.time()]))


@ac.workflow(partitions=DAILY_2024)
def loads_warehouse(out: str, seconds: float = 0.3, tagged: bool = True):
    (warehouse_write if tagged else untagged_write)(out, seconds)


def peak(out: str, prefix: str) -> int:
    """The most calls that overlapped in time, from their ``[start, end]`` markers."""
    spans = [json.loads(p.read_text()) for p in Path(out).glob(f"{prefix}-*")]
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans], key=lambda x: (x[0], x[1]))
    most = current = 0
    for _, step in events:
        current += step
        most = max(most, current)
    return most


@ac.workflow(partitions=DAILY_2024)
def typed_params(day: date | None = None, n: int = 1):
    """Parameters of types storage must round-trip (a date)."""
    return [str(day), n]
