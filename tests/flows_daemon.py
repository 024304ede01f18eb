"""Scheduled workflows for the daemon tests (importable by worker processes and daemon subprocesses)."""

from __future__ import annotations

import os
import threading
import time

import anachron as ac

#: in-process tests hold a run open with this, then let it finish
GATE = threading.Event()


@ac.workflow(schedule=ac.Schedule("*/5 * * * *"))
def every_five():
    return ac.now().isoformat()


@ac.workflow(schedule=[ac.Schedule("*/5 * * * *", id="all"),
                       ac.Schedule("*/5 * * * *", recover_missed="last", id="last"),
                       ac.Schedule("*/5 * * * *", recover_missed="none", id="none")])
def recovering():
    pass


@ac.workflow(schedule=[ac.Schedule("*/5 * * * *", overlap="skip", id="skip"),
                       ac.Schedule("*/5 * * * *", overlap="buffer", id="buffer"),
                       ac.Schedule("*/5 * * * *", overlap="allow", id="allow")])
def slow():
    GATE.wait(30)


@ac.workflow(partitions=ac.DailyPartitions("2024-01-01"), schedule=ac.Schedule("0 0 * * *"))
def nightly_partition():
    return ac.context().partition_key


@ac.workflow(schedule=ac.Schedule("* * * * *"))
def minutely(directory: str = ""):
    """Appends ``<scheduled time> <pid>`` to ``<directory>/ticks`` (the real-time daemon tests)."""
    if directory or os.environ.get("ANACHRON_TEST_TICKS"):
        path = os.path.join(directory or os.environ["ANACHRON_TEST_TICKS"], "ticks")
        with open(path, "a") as f:
            f.write(f"{ac.context().scheduled_time.isoformat()} {os.getpid()} {time.time()}\n")
