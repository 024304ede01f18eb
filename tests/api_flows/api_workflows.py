"""Workflows for the HTTP API tests (tests/test_api.py, test_api_triggers.py, test_api_fuzz.py).

Served alone, the module's repository is used (threads: fast); served with ``kestra_flow.yaml`` beside it,
the server builds one repository of both with a ``LocalExecutor`` (worker processes), as for any two targets.

- ``daily``: 60 daily partitions (January and February 2024); ``fail`` names keys whose run fails.
- ``grid``: 10 days x 3 regions (``date=2024-01-01|region=us``), for dimension selections and strategies.
- ``gated``: the grid's partitions; each run waits (up to 30 s) until the file ``gate`` names exists, so a test
  sees its backfill before any run can finish.
- ``slow``: the daily partitions, each run taking ``seconds`` (in short task calls, so a cancel stops it).
- ``hello``: no partitions; logs ``lines`` lines. ``sleepy``: no partitions, runs ``seconds``.
- ``hourly``: a Python workflow with two schedules (Kestra's namespace for it is this module's name).
"""

from __future__ import annotations

import os
import time

import anachron as ac

DAYS = ac.DailyPartitions("2024-01-01", "2024-03-01")
GRID = ac.MultiPartitions({"date": ac.DailyPartitions("2024-01-01", "2024-01-11"),
                           "region": ac.StaticPartitions(["us", "eu", "asia"])})


@ac.task
def nap(seconds: float) -> None:
    time.sleep(seconds)


def _sleep(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        nap(min(0.05, max(0.0, deadline - time.monotonic())))


@ac.workflow(partitions=DAYS, tags={"team": "api"})
def daily(fail: str = ""):
    ctx = ac.context()
    ctx.log.info("daily %s", ",".join(ctx.partition_keys))
    bad = [k for k in ctx.partition_keys if k in fail.split(",")]
    if bad:
        raise RuntimeError(f"asked to fail {bad[0]}")


@ac.workflow(partitions=GRID)
def grid():
    return ac.context().partition_keys


@ac.workflow(partitions=GRID)
def gated(gate: str):
    deadline = time.monotonic() + 30
    while not os.path.exists(gate) and time.monotonic() < deadline:
        nap(0.02)
    return ac.context().partition_keys


@ac.workflow(partitions=DAYS)
def slow(seconds: float = 0.2):
    _sleep(seconds)


@ac.workflow
def hello(name: str = "world", lines: int = 3):
    log = ac.context().log
    for i in range(lines):
        log.info("hello %s %d", name, i)
    return name


@ac.workflow
def sleepy(seconds: float = 60):
    _sleep(seconds)


@ac.workflow(schedule=[ac.Schedule("0 * * * *"), ac.Schedule("30 2 * * *", timezone="Europe/Paris", id="nightly")])
def hourly(region: str = "us"):
    ctx = ac.context()
    ctx.log.info("hourly %s at %s", region, ctx.scheduled_time.isoformat())
    return region


repo = ac.CodeRepository([daily, grid, gated, slow, hello, sleepy, hourly],
                         executor=ac.InProcessExecutor(max_workers=4))
