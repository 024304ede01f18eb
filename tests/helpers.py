"""Small helpers the tests share: waiting for a condition, looking at processes, loading a flows file."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import time
from pathlib import Path
from types import ModuleType


def load_module(path: Path, name: str) -> ModuleType:
    """The Python file ``path`` imported once as module ``name`` (a flows file of the tests, outside any package)."""
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


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
