"""Scheduled workflows for the daemon command's tests (tests/test_cli_daemon.py).

``minutely`` fires every minute; each run appends ``<tick> <attempt> <pid>`` to ``$TICKS_DIR/ticks`` and
then sleeps ``$TICK_SLEEP`` seconds (so a test can kill its daemon mid-run). ``report`` is a half-hourly
schedule for the CLI's schedule commands. The repository's short lease lets a surviving daemon take over a
killed one's runs within seconds.
"""

from __future__ import annotations

import os
import time

import anachron as ac


@ac.workflow(schedule=ac.Schedule("* * * * *"))
def minutely():
    ctx = ac.context()
    directory = os.environ.get("TICKS_DIR")
    if directory:
        with open(os.path.join(directory, "ticks"), "a") as f:
            f.write(f"{ctx.scheduled_time.isoformat()} {ctx.attempt} {os.getpid()}\n")
    time.sleep(float(os.environ.get("TICK_SLEEP", "0")))


@ac.workflow(schedule=[ac.Schedule("*/30 * * * *"), ac.Schedule("0 6 * * *", timezone="Europe/Paris", id="morning")])
def report():
    return ac.now().isoformat()


@ac.workflow(partitions=ac.DailyPartitions("2024-01-01", "2024-02-01"))
def daily():
    pass


repo = ac.CodeRepository([minutely, report, daily], executor=ac.LocalExecutor(max_workers=2), lease_seconds=3)
