"""Scheduled workflows for the daemon command's tests (tests/test_cli_daemon.py).

``minutely`` fires every minute; each run appends ``<tick> <attempt> <pid>`` to ``$TICKS_DIR/ticks`` and
then sleeps ``$TICK_SLEEP`` seconds (so a test can kill its daemon mid-run). ``report`` is a half-hourly
schedule for the CLI's schedule commands. The repository's short lease lets a surviving daemon take over a
killed one's runs within seconds.

With ``$CLOCK_SPEED`` set, schedule time runs that many times faster than real time from the real instant
``$CLOCK_EPOCH`` on (when it was ``$CLOCK_START``), in every process alike (``clock_now``), so a test sees
``* * * * *`` tick every few seconds.
"""

from __future__ import annotations

import os
import time
from datetime import datetime, timedelta, timezone

import anachron as ac

SPEED = float(os.environ.get("CLOCK_SPEED", "0") or 0)
EPOCH = float(os.environ.get("CLOCK_EPOCH", "0") or time.time())
START = datetime.fromtimestamp(float(os.environ.get("CLOCK_START", "0") or EPOCH), timezone.utc)


def clock_now() -> datetime:
    """Schedule time: with ``$CLOCK_SPEED``, real time sped up from ``$CLOCK_EPOCH`` on."""
    return START + timedelta(seconds=(time.time() - EPOCH) * SPEED)


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


repo = ac.CodeRepository([minutely, report, daily], executor=ac.LocalExecutor(max_workers=2), lease_seconds=3,
                       clock=clock_now if SPEED else None)
