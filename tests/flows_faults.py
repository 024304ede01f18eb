"""Workflows for the fault tests (importable by worker processes)."""

from __future__ import annotations

import os
import time

import anachron as ac

DAYS = ac.DailyPartitions("2024-01-01", "2024-03-01")


@ac.workflow(partitions=DAYS)
def quick(seconds: float = 0.0):
    if seconds:
        time.sleep(seconds)


@ac.workflow(partitions=DAYS)
def heartbeat(directory: str = "", seconds: float = 4.0):
    """Appends ``<pid> <unix time>`` to ``<directory>/<key>`` every 50 ms while it runs."""
    path = os.path.join(directory, ac.context().partition_key)
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with open(path, "a") as f:
            f.write(f"{os.getpid()} {time.time()}\n")
        time.sleep(0.05)


class BrokenWindows(ac.DailyPartitions):
    """Daily partitions whose window cannot be computed for one key (a bug in a definition)."""

    def time_window(self, key):
        if key == "2024-01-03":
            raise ValueError(f"no window for {key}: the calendar service is down")
        return super().time_window(key)

    def window_bounds(self, keys):
        for key in keys:
            if key == "2024-01-03":
                raise ValueError(f"no window for {key}: the calendar service is down")
        return super().window_bounds(keys)


@ac.workflow(partitions=BrokenWindows("2024-01-01", "2024-02-01"))
def broken_windows():
    pass


@ac.workflow(partitions=DAYS)
def marked(directory: str = "", seconds: float = 0.4):
    """Writes ``<directory>/<key>.<pid>.<attempt>.<start>-<end>.done`` when it has run to its end: executions
    counted by the runs themselves, whatever the database says."""
    ctx = ac.context()
    started = time.time()
    time.sleep(seconds)
    name = f"{ctx.partition_key}.{os.getpid()}.{ctx.attempt}.{started:.3f}-{time.time():.3f}.done"
    with open(os.path.join(directory, name), "w"):
        pass
