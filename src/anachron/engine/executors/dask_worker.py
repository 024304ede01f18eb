"""The Dask worker's side of ``DaskExecutor`` (runs inside each Dask worker process).

A batch task (``run_batch``) hands its jobs to this worker's **runner** for the executor that sent it: a
``LocalExecutor`` sized to the worker's threads, whose host is the runner. Its child processes are started
once and reused; a cancel or a timeout kills the child running that run (and a fresh one replaces it), the
lease deadline fences them, and they die with the Dask worker. The task's thread waits until every job of
its batch has an outcome and returns them all.

The executor reaches runners by broadcast (``client.run``): ``cancel_on_worker`` (a run waiting or running
here is stopped; the id is remembered so a batch that arrives later drops it), ``fence_on_worker`` (the
lease deadline moved on), ``abandon_on_worker`` and ``close_on_worker``. A runner whose coordinator went
away without closing it (its deadline long passed, nothing waiting) is closed by the next batch.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any, NamedTuple

from ...clock import SYSTEM_CLOCK, Clock
from ...models import CANCELED
from ...runtime import LOST, RunJob, RunOutcome

REAP_AFTER = 60.0  # seconds past its lease deadline before an idle runner is closed
REMEMBER_CANCELS = 10_000


class RemoteSettings(NamedTuple):
    executor_id: str
    sys_path: list[str]  # the coordinator's, for a cluster on its machine (else empty)
    pools: dict[str, int]
    storage_url: str | None
    capture_output: bool
    owner: str | None = None  # the coordinator's worker id
    lease_seconds: float = 0.0


class _Batch:
    def __init__(self, jobs: list[RunJob]):
        self.jobs = {j.run_id: j for j in jobs}
        self.waiting = set(self.jobs)
        self.outcomes: list[RunOutcome] = []
        self.done = threading.Event()
        if not self.waiting:
            self.done.set()

    def add(self, outcome: RunOutcome) -> None:
        self.outcomes.append(outcome)
        self.waiting.discard(outcome.run_id)
        if not self.waiting:
            self.done.set()


class _Runner:
    """One coordinator's runs on this worker; the ``ExecutorHost`` of its ``LocalExecutor``."""

    def __init__(self, settings: RemoteSettings, nthreads: int):
        from .local import LocalExecutor

        self.settings = settings
        self.lock = threading.Lock()
        self.batches: dict[str, _Batch] = {}  # run id -> the batch waiting for it
        self.canceled: OrderedDict[str, None] = OrderedDict()
        self.deadline = 0.0
        self.executor = LocalExecutor(max_workers=nthreads, capture_output=settings.capture_output)
        _allow_children()
        _pass_scheduler_address()
        self.executor.start(self)

    # -- ExecutorHost ------------------------------------------------------------------------------
    @property
    def pools(self) -> Mapping[str, int]:
        return self.settings.pools

    @property
    def storage_url(self) -> str:
        return self.settings.storage_url or ""

    @property
    def log_limit(self) -> int:
        return 0  # each job carries its own

    @property
    def clock(self) -> Clock:
        return SYSTEM_CLOCK

    @property
    def worker_id(self) -> str:
        return self.settings.owner or ""

    @property
    def lease_seconds(self) -> float:
        return self.settings.lease_seconds

    def resolve(self, ref: Any) -> Any:
        raise NotImplementedError("jobs run in child processes")

    def pool_gate(self) -> None:
        return None

    def on_results(self, outcomes: list[RunOutcome]) -> None:
        with self.lock:
            for outcome in outcomes:
                batch = self.batches.pop(outcome.run_id, None)
                if batch is not None:
                    batch.add(outcome)

    # -- what the tasks and broadcasts do ---------------------------------------------------------
    def run(self, jobs: list[RunJob]) -> list[RunOutcome]:
        with self.lock:
            dropped = [j for j in jobs if j.run_id in self.canceled]
            batch = _Batch([j for j in jobs if j.run_id not in self.canceled])
            for run_id in batch.waiting:
                self.batches[run_id] = batch
        if batch.waiting:
            self.executor.submit([j for j in jobs if j.run_id in batch.waiting])
        batch.done.wait()
        return [RunOutcome.ended(j, CANCELED, "canceled before it started") for j in dropped] + batch.outcomes

    def fence(self, deadline: float) -> None:
        if deadline > self.deadline:
            self.deadline = deadline
            self.executor.set_lease_deadline(deadline)

    def cancel(self, run_ids: list[str]) -> None:
        for run_id in run_ids:
            with self.lock:
                self.canceled[run_id] = None
                if len(self.canceled) > REMEMBER_CANCELS:
                    self.canceled.popitem(last=False)
                here = run_id in self.batches
            if here:
                self.executor.cancel(run_id)

    def abandon(self, why: str) -> None:
        """Stop every job now; waiting tasks return them as lost."""
        self.executor.abandon()
        with self.lock:
            waiting, self.batches = self.batches, {}
        for run_id, batch in waiting.items():
            batch.add(RunOutcome.ended(batch.jobs[run_id], LOST, why))

    def idle_since(self, now: float) -> float | None:
        with self.lock:
            if self.batches or self.deadline <= 0:
                return None
        return now - self.deadline


_runners: dict[str, _Runner] = {}
_early_cancels: dict[str, list[str]] = {}  # canceled before this worker had a runner for their executor
_lock = threading.Lock()


def _runner(settings: RemoteSettings) -> _Runner:
    with _lock:
        now = SYSTEM_CLOCK.wall()
        for key, stale in list(_runners.items()):
            idle = stale.idle_since(now)
            if key != settings.executor_id and idle is not None and idle > REAP_AFTER:
                del _runners[key]
                stale.executor.shutdown(wait=False)
        runner = _runners.get(settings.executor_id)
        if runner is None:
            for path in settings.sys_path:
                if path not in sys.path:
                    sys.path.append(path)
            runner = _runners[settings.executor_id] = _Runner(settings, _nthreads())
            early = _early_cancels.pop(settings.executor_id, None)
        else:
            early = None
    if early:
        runner.cancel(early)
    return runner


def _nthreads() -> int:
    from distributed import get_worker

    worker = get_worker()
    state = getattr(worker, "state", None)
    return int(getattr(state, "nthreads", None) or getattr(worker, "nthreads", 1) or 1)


def _pass_scheduler_address() -> None:
    """The runs' processes (started next) learn this cluster's scheduler the Dask way, so a ``DaskTask()`` with
    no address submits its calls here."""
    from distributed import get_worker

    os.environ.setdefault("DASK_SCHEDULER_ADDRESS", str(get_worker().scheduler.address))


def _allow_children() -> None:
    """Dask starts worker processes as daemons by default, and ``multiprocessing`` refuses to start
    children of a daemonic process. Ours are safe there: they die with this process (``PR_SET_PDEATHSIG``)
    and are killed with their process group when stopped."""
    process = multiprocessing.current_process()
    if process.daemon:
        process._config["daemon"] = False  # type: ignore[attr-defined]


# -- entry points (pickled by reference: this module must be importable on the workers) -------------
# The broadcasts are coroutines: ``client.run(..., wait=False)`` takes only those. They run on the worker's
# event loop and return at once (a kill, a flag, a lock held for microseconds).
def run_batch(settings: RemoteSettings, deadline: float, jobs: list[RunJob]) -> list[RunOutcome]:
    runner = _runner(settings)
    runner.fence(deadline)
    return runner.run(jobs)


async def cancel_on_worker(executor_id: str, run_ids: list[str]) -> None:
    with _lock:
        runner = _runners.get(executor_id)
        if runner is None:  # nothing of this executor here yet: remembered for a batch that may come
            early = _early_cancels.setdefault(executor_id, [])
            early.extend(run_ids)
            del early[:-REMEMBER_CANCELS]
            return
    runner.cancel(run_ids)


async def fence_on_worker(executor_id: str, deadline: float) -> None:
    runner = _runners.get(executor_id)
    if runner is not None:
        runner.fence(deadline)


async def abandon_on_worker(executor_id: str) -> None:
    runner = _runners.get(executor_id)
    if runner is not None:
        runner.abandon("stopped: its coordinator abandoned it (lease lost)")


async def close_on_worker(executor_id: str) -> None:
    with _lock:
        runner = _runners.pop(executor_id, None)
    if runner is not None:
        runner.abandon("stopped: its coordinator shut down")
        runner.executor.shutdown(wait=False)

