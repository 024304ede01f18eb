"""Workflows for the command-line tests (tests/test_cli.py) and the docs' worked example.

``etl`` is a daily workflow over 2024. A partition fails while its key is listed in the file named by
``ETL_BAD_DAYS`` (default ``bad_days.txt`` in the current directory) — bad upstream data you can fix
and rerun. ``-p sleep=SECONDS`` slows each partition down, to watch progress, pause and cancel.
``noisy`` prints (``print``, ``sys.stderr``, a child process); ``dated`` takes a date and a datetime.
(Annotations are strings here, on purpose: the CLI resolves them to read ``-p day=2024-01-01`` as a date.)
"""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys
import time
from pathlib import Path

import anachron as ac

DAILY = ac.DailyPartitions("2024-01-01", "2025-01-01")
REGIONS = ac.StaticPartitions(["us", "eu", "asia"])


def bad_days() -> set[str]:
    path = Path(os.environ.get("ETL_BAD_DAYS", "bad_days.txt"))
    return set(path.read_text().split()) if path.exists() else set()


@ac.task
def extract(day: str) -> int:
    if day in bad_days():
        raise RuntimeError(f"bad upstream data for {day}")
    return len(day)


@ac.task
def load(day: str, rows: int) -> str:
    ac.context().log.info("loaded %d rows for %s", rows, day)
    return day


@ac.workflow(partitions=DAILY)
def etl(sleep: float = 0.0):
    for day in ac.context().partition_keys:
        if sleep:
            time.sleep(sleep)
        load(day, extract(day))
    return ac.context().partition_keys


@ac.workflow(partitions=ac.MultiPartitions({"date": DAILY, "region": REGIONS}))
def regional():
    return ac.context().partition_keys


@ac.workflow
def hello(name: str = "world", n: int = 1, fail: bool = False):
    if fail:
        raise ValueError(f"asked to fail for {name}")
    ac.context().log.info("hello %s", name)
    return {"greeting": f"hello {name}", "n": n, "time": ac.time()}


@ac.workflow(partitions=ac.StaticPartitions(["a", "b", "c"]))
def noisy(word: str = "hello"):
    print(f"printed {word}")
    sys.stderr.write(f"to stderr {word}\n")
    subprocess.run(["echo", "from a child"], check=True)
    return word


@ac.workflow
def dated(day: dt.date, at: dt.datetime | None = None):
    if type(day) is not dt.date or not (at is None or isinstance(at, dt.datetime)):
        raise TypeError(f"expected a date and a datetime, got {day!r} and {at!r}")
    ac.context().log.info("day %s at %s", day.isoformat(), at.isoformat() if at else "-")
    return day.isoformat()


repo = ac.CodeRepository([etl, regional, hello, noisy, dated], executor=ac.InProcessExecutor(max_workers=4))
