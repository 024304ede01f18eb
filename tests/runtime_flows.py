"""Workflows whose tasks run on a task runtime: a subprocess (ProcessTask) or a Dask cluster (DaskTask).

Each run writes what it saw to files under the directory it is given (``out``): marker files the runs write
themselves, read by the tests. The Dask tasks submit to ``ANACHRON_TEST_DASK`` (a scheduler address the test
module sets before its worker processes start), else to the cluster of the executor running them.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path

import anachron as ac
from anachron.plugins.dask import DaskTask

DAYS = ac.DailyPartitions(start="2024-01-01", end="2024-02-01", timezone="UTC")
DASK = DaskTask(address=os.environ.get("ANACHRON_TEST_DASK"))


def _seen() -> dict:
    ctx = ac.context()
    window = ctx.partition_window
    return {"pid": os.getpid(), "run_id": ctx.run_id, "key": ctx.partition_key, "params": ctx.params,
            "now": ac.now().isoformat(), "time": ac.time(),
            "window": [w.isoformat() for w in window] if window else None}


# -- ProcessTask --------------------------------------------------------------------------------------
@ac.task(config=ac.ProcessTask())
def in_child(tag: str) -> dict:
    print(f"printed by the child {tag}")
    ac.context().log.info("logged by the child %s", tag)
    return {**_seen(), "tag": tag, "env_time": os.environ.get("ANACHRON_TIME")}


@ac.task(config=ac.ProcessTask(), timeout=4)
def child_sleeps(out: str) -> None:
    grandchild = subprocess.Popen(["sleep", "60"])  # goes with its parent's process group
    Path(out, "child.json").write_text(json.dumps({"pid": os.getpid(), "grandchild": grandchild.pid}))
    time.sleep(60)


@ac.task(config=ac.ProcessTask())
def child_fails(how: str) -> None:
    if how == "raise":
        raise ValueError("bad input in the child")
    os._exit(3)


@ac.workflow(partitions=DAYS)
def process_daily(out: str) -> dict:
    seen = in_child(ac.context().partition_key)
    Path(out, f"{ac.context().partition_key}.json").write_text(json.dumps({"parent": os.getpid(), "child": seen}))
    return seen


@ac.workflow()
def process_unpartitioned() -> dict:
    return in_child("dev")


@ac.workflow()
def process_sleeps(out: str) -> None:
    Path(out, "worker.json").write_text(json.dumps({"pid": os.getpid()}))
    child_sleeps(out)


@ac.workflow()
def process_fails(how: str) -> None:
    child_fails(how)


@ac.workflow()
def worker_pid(out: str) -> None:
    Path(out, "next.json").write_text(json.dumps({"pid": os.getpid()}))


# -- DaskTask -----------------------------------------------------------------------------------------
@ac.task(config=DASK)
def on_dask(tag: str) -> dict:
    from distributed import get_worker

    print(f"printed on dask {tag}")
    ac.context().log.info("logged on dask %s", tag)
    return {**_seen(), "dask_worker": get_worker().address}


def _spin(out: str, name: str) -> None:
    """Loops until the run is canceled (seen on the Dask worker as its future's cancellation)."""
    Path(out, f"{name}.started").write_text("")
    t = time.monotonic()
    while not ac.context().canceled and time.monotonic() - t < 60:
        time.sleep(0.02)
    Path(out, f"{name}.stopped").write_text(json.dumps({"canceled": ac.context().canceled,
                                                         "after": time.monotonic() - t}))


dask_spins = ac.task(config=DASK, name="dask_spins")(_spin)
dask_spins_briefly = ac.task(config=DASK, timeout=2, name="dask_spins_briefly")(_spin)


@ac.workflow(partitions=DAYS)
def dask_daily(out: str) -> dict:
    seen = on_dask(ac.context().partition_key)
    Path(out, f"{ac.context().partition_key}.json").write_text(json.dumps({"parent": os.getpid(), "task": seen}))
    return seen


@ac.workflow()
def dask_spinning(out: str, name: str, timeout: bool = False) -> None:
    (dask_spins_briefly if timeout else dask_spins)(out, name)


WORKFLOWS = [process_daily, process_unpartitioned, process_sleeps, process_fails, worker_pid, dask_daily,
             dask_spinning]


# -- a runtime of one's own, whose work ignores being stopped ---------------------------------------
class Stubborn(ac.TaskRuntime):
    """Runs the call in a thread and cannot stop it: the executor's kill must end it."""

    stop_grace = 0.5

    def start(self, call):
        from anachron.plugins.base import ThreadedCall

        class Running(ThreadedCall):
            def stop(self) -> str:
                return "nothing could be stopped"

        return Running(call.invoke, "stubborn")


@ac.task(config=Stubborn())
def stubborn_sleep(out: str) -> None:
    Path(out, "worker.json").write_text(json.dumps({"pid": os.getpid()}))
    time.sleep(60)


@ac.task(config=Stubborn(), timeout=1)
def stubborn_sleep_briefly(out: str) -> None:
    Path(out, "worker.json").write_text(json.dumps({"pid": os.getpid()}))
    time.sleep(60)


@ac.workflow()
def stubborn(out: str, timeout: bool = False) -> None:
    (stubborn_sleep_briefly if timeout else stubborn_sleep)(out)


WORKFLOWS.append(stubborn)
