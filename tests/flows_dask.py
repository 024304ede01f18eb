"""Workflows for tests/test_dask.py: Dask workers import this module (the tests folder is on the
cluster's ``sys.path``: the cluster runs on this machine)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import anachron as ac

DAILY = ac.DailyPartitions(start="2024-01-01", end="2024-12-31")


@ac.workflow(partitions=DAILY)
def where():
    """Says which process ran it, and that process's parent (the Dask worker)."""
    ac.context().log.info("pids %d %d", os.getpid(), os.getppid())


@ac.workflow(partitions=DAILY)
def beating(heart: str = "", seconds: float = 60.0):
    """Writes its pid to ``heart``, then touches it every 50 ms: a run whose code still goes."""
    path = Path(heart)
    path.write_text(str(os.getpid()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        os.utime(path)
        time.sleep(0.05)


@ac.task(timeout=0.5)
def too_slow():
    time.sleep(30)


@ac.workflow
def timing_out():
    too_slow()


@ac.workflow(partitions=DAILY)
def dies_once(marker: str = ""):
    """The first attempt writes its Dask worker's pid to ``marker`` and waits to be killed with it; later
    attempts succeed (and count themselves in ``marker + '.done'``)."""
    path = Path(marker)
    if not path.exists():
        path.write_text(str(os.getppid()))
        time.sleep(120)
    with open(marker + ".done", "a") as f:
        f.write(f"{ac.context().attempt}\n")


@ac.workflow
def environment(names: str = "ANACHRON_API_TOKEN,PGPASSWORD,ANACHRON_DATABASE_URL,RUN_GIVEN"):
    """Logs ``name=value`` (or ``name unset``) for each of ``names`` as the run's process sees them."""
    for name in names.split(","):
        value = os.environ.get(name)
        ac.context().log.info("%s", f"{name}={value}" if value is not None else f"{name} unset")
