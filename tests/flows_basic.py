"""Workflows used by the tests. Top-level, so LocalExecutor worker processes can import them."""

from __future__ import annotations

import os
import threading
import time

import anachron as ac

DAILY = ac.DailyPartitions("2024-01-01", "2025-01-01")
REGIONS = ac.StaticPartitions(["us", "eu", "asia"])
DAILY_BY_REGION = ac.MultiPartitions({"date": ac.DailyPartitions("2024-01-01", "2024-02-01"), "region": REGIONS})

FAILING: set[str] = set()  # keys that fail in-process (tests flip it between a backfill and its rerun)

# In-process observations (InProcessExecutor tests): what ran, with which context, how many at once.
SEEN: list[dict] = []
_lock = threading.Lock()
_running = 0
PEAK = {"value": 0}


def reset() -> None:
    global _running
    SEEN.clear()
    FAILING.clear()
    _running = 0
    PEAK["value"] = 0


def _observe(**extra) -> None:
    ctx = ac.context()
    with _lock:
        SEEN.append({"run_id": ctx.run_id, "key": ctx.partition_key, "keys": list(ctx.partition_keys),
                     "logical_time": ctx.logical_time, "now": ac.now(), "time": ac.time(), "wall": time.time(),
                     "window": ctx.partition_window, "params": dict(ctx.params), "tags": dict(ctx.tags),
                     "backfill_id": ctx.backfill_id, "attempt": ctx.attempt, **extra})


@ac.task
def record(key):
    ac.context().log.info("processing %s", key)
    return key


@ac.workflow(partitions=DAILY)
def daily_etl():
    _observe()
    return record(ac.context().partition_key)


@ac.workflow(partitions=DAILY)
def flaky(fail_keys: list | None = None, delay: float = 0.0):
    """Fails on the keys in ``fail_keys``; sleeps ``delay`` seconds first."""
    global _running
    with _lock:
        _running += 1
        PEAK["value"] = max(PEAK["value"], _running)
    try:
        if delay:
            time.sleep(delay)
        _observe()
        for key in ac.context().partition_keys:
            if key in (fail_keys or []) or key in FAILING:
                raise RuntimeError(f"boom on {key}")
    finally:
        with _lock:
            _running -= 1


@ac.workflow(partitions=DAILY)
def batch_marks(bad: list | None = None):
    """A batched run that marks some of its keys failed."""
    ctx = ac.context()
    _observe()
    for key in ctx.partition_keys:
        if key in (bad or []):
            ctx.mark_partition_failed(key, f"bad {key}")


@ac.workflow(partitions=DAILY_BY_REGION)
def regional():
    _observe()


@ac.workflow(schedule=ac.Schedule("0 6 * * *", timezone="UTC"))
def morning_report():
    _observe(scheduled=ac.context().scheduled_time)


@ac.workflow
def manual(x: int = 1):
    _observe()
    return {"x": x, "now": ac.now().isoformat(), "time": ac.time()}


_attempts: dict[str, int] = {}


@ac.task(retries=2)
def sometimes(key):
    _attempts[key] = _attempts.get(key, 0) + 1
    if _attempts[key] < 3:
        raise RuntimeError(f"attempt {_attempts[key]} fails")
    return _attempts[key]


@ac.workflow
def retrying(key: str = "k"):
    return sometimes(key)


@ac.task(timeout=0.3)
def too_slow():
    time.sleep(5)


@ac.workflow
def timing_out():
    too_slow()


@ac.workflow(partitions=DAILY)
def sleepy(seconds: float = 30.0):
    """Sleeps (in short steps, through tasks, so cancellation is noticed in threads too)."""
    ac.context().log.info("pid %d", os.getpid())
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        nap(0.05)


@ac.task
def nap(seconds):
    time.sleep(seconds)


@ac.workflow(partitions=DAILY)
def marked(marker: str = "", seconds: float = 30.0):
    """Writes its pid to ``marker`` once it is executing, then sleeps like ``sleepy``."""
    if marker:
        with open(marker, "w") as f:
            f.write(str(os.getpid()))
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        nap(0.05)


@ac.task(pool="warehouse")
def write_warehouse(key):
    global _running
    with _lock:
        _running += 1
        PEAK["value"] = max(PEAK["value"], _running)
    time.sleep(0.05)
    with _lock:
        _running -= 1


@ac.workflow(partitions=DAILY)
def pooled():
    write_warehouse(ac.context().partition_key)


@ac.workflow
def wall_clock_user():
    return {"now": ac.now(), "time": ac.time()}


@ac.task(timeout=0.3)
def deaf():
    """Ignores the timeout alarm, as a task stuck in C code would."""
    import signal

    signal.signal(signal.SIGALRM, signal.SIG_IGN)
    time.sleep(30)


@ac.workflow
def stuck():
    ac.context().log.info("pid %d", os.getpid())
    deaf()


@ac.workflow(partitions=ac.DynamicPartitions("customers"))
def per_customer():
    _observe()
