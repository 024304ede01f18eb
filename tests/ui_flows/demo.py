"""Workflows for the web UI's tests (tests/test_ui.py, tests/test_ui_browser.py) and its screenshots.

``daily_sales`` is a daily workflow over 2024 whose partitions take ``sleep`` seconds (default
``$UI_SLEEP``, else 0.02) and fail on the days listed in ``$UI_BAD_DAYS`` (comma-separated). ``slow``
(static partitions) takes ``$UI_SLOW`` seconds per partition: something to pause and cancel. ``regional``
is multi-partitioned (and takes ``**options``); ``nightly_report`` is scheduled, not partitioned, with
inputs; ``tiny`` has 2,100 partitions that do nothing (a grid of aggregated cells). The last workflow has a
hostile name and tags: every page must show them as text.
"""

from __future__ import annotations

import os
import time

import anachron as ac

DAILY = ac.DailyPartitions("2024-01-01", "2025-01-01")
HOSTILE = '<img src=x onerror="alert(1)">&amp;/x?y#z'


def bad_days() -> set[str]:
    return {d.strip() for d in os.environ.get("UI_BAD_DAYS", "").split(",") if d.strip()}


@ac.task
def extract(day: str) -> int:
    if day in bad_days():
        raise RuntimeError(f"upstream export for {day} is truncated (expected 24 files, found 17)")
    return len(day) * 100


@ac.workflow(partitions=DAILY, tags={"team": "analytics"})
def daily_sales(sleep: float | None = None):
    ctx = ac.context()
    time.sleep(float(os.environ.get("UI_SLEEP", "0.02")) if sleep is None else sleep)
    rows = extract(ctx.partition_key)
    ctx.log.info("loaded %d rows for %s", rows, ctx.partition_key)
    return rows


@ac.workflow(partitions=ac.StaticPartitions([f"shard-{i:03d}" for i in range(120)]))
def slow():
    ac.context().log.info("processing %s", ac.context().partition_key)
    time.sleep(float(os.environ.get("UI_SLOW", "0.5")))


@ac.workflow(partitions=ac.MultiPartitions({"date": ac.DailyPartitions("2024-01-01", "2024-03-01"),
                                            "region": ac.StaticPartitions(["us", "eu", "apac"])}))
def regional(limit: int = 100, **options):
    return ac.context().partition_keys


@ac.workflow(partitions=ac.StaticPartitions([f"k{i:04d}" for i in range(2100)]))
def tiny():
    return None


@ac.workflow(schedule=[ac.Schedule("0 2 * * *", id="nightly"), ac.Schedule("*/30 * * * *", id="half_hourly")])
def nightly_report(region: str = "us", full: bool = False):
    ac.context().log.info("report for %s (%s%s)", ac.now().isoformat(), region, ", full" if full else "")


@ac.workflow(name=HOSTILE, partitions=ac.StaticPartitions(["<b>k1</b>", "k2"]),
             tags={"<script>alert('t')</script>": "\"><svg onload=alert(2)>"})
def hostile():
    print("<script>alert('log')</script>")


repo = ac.CodeRepository([daily_sales, slow, regional, tiny, nightly_report, hostile],
                         executor=ac.InProcessExecutor(max_workers=4))
