"""Small helpers the tests share: waiting for a condition, and looking at processes."""

from __future__ import annotations

import subprocess
import time


def wait_for(predicate, timeout: float = 10.0, step: float = 0.02) -> bool:
    """Poll ``predicate`` until it is true (returns True) or ``timeout`` passes (returns False)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(step)
    return False


def wait_until(predicate, timeout: float = 10.0) -> None:
    """Like ``wait_for``, but a timeout fails the test."""
    if not wait_for(predicate, timeout):
        raise AssertionError("condition not reached in time")


def alive(pid: int) -> bool:
    """Whether a process exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone, or went while being read
        return False


def children(ppid: int, marker: str = "multiprocessing") -> list[int]:
    """The pids of ``ppid``'s child processes whose command line contains ``marker``."""
    out = subprocess.run(["ps", "-ww", "-o", "pid=,ppid=,args=", "-e"], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()
            if int(line.split()[1]) == ppid and marker in line]
