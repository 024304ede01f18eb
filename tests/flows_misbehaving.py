"""Workflows that misbehave, and workflows defined in unusual ways (importable by worker processes)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import date, datetime

import anachron as ac

DAYS = ac.DailyPartitions("2024-01-01", "2024-02-01")


@ac.workflow
def interrupts(kind: str = "keyboard"):
    if kind == "keyboard":
        raise KeyboardInterrupt("pressed Ctrl-C inside a workflow")
    raise SystemExit(3)


@ac.workflow
def talks(lines: int = 3, child: bool = False):
    for i in range(lines):
        print(f"line {i} on stdout")
    print("a warning on stderr", file=sys.stderr)
    if child:
        subprocess.run(["echo", "from a child process"], check=True)
    return lines


@ac.workflow
def dies():
    os.kill(os.getpid(), signal.SIGKILL)


@ac.workflow
def sleeps_without_tasks(seconds: float = 30.0):
    time.sleep(seconds)


@ac.workflow
def dated(day: date, at: datetime, note: str = ""):
    ac.context().log.info("day %s %s at %s %s %s", type(day).__name__, day.isoformat(), type(at).__name__,
                          at.isoformat(), at.tzinfo is not None)


@ac.workflow
def needs(source: str, rows: int = 1):
    return source


# defined in unusual ways: found by the name they were registered under, not by qualname
noop = ac.workflow(name="noop", partitions=DAYS)(lambda: None)


def _make(name: str) -> ac.Workflow:
    def body():
        ac.context().log.info("%s ran in pid %d", name, os.getpid())

    return ac.workflow(name=name, partitions=DAYS)(body)


MADE = [_make("made_a"), _make("made_b")]
repository = ac.CodeRepository([_make("only_in_repo")], storage="sqlite://", executor=ac.InProcessExecutor(1))


@ac.workflow
def unstorable(text: str = ""):
    """Prints and raises text no database stores as is (a lone surrogate, a NUL), written in ``text`` as escapes
    (``\\x00``): parameters themselves must be storable text, so the run makes it."""
    text = text.encode("ascii", "backslashreplace").decode("unicode_escape", "surrogatepass")
    print(f"got {text}")
    raise ValueError(text)
