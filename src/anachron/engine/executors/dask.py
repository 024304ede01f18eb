"""``DaskExecutor``: runs on a Dask cluster; anachron's queue stays the only judge of what runs when.

The coordinator chooses runs exactly as with any executor (priorities, ``max_concurrency``, pools, tag
limits, partition exclusion are applied before a job reaches Dask) and hands them here. They travel in
batches, each **one Dask task**: at most two tasks per cluster thread are in flight (one running, one ready
behind it) and the jobs waiting here are split evenly among the free ones — no-op runs go dozens to a
task, long runs one each. Each task has an explicit priority in submission order (Dask runs equal
priorities last-in-first-out).

On the Dask worker the task hands its jobs to that worker's runner for this executor (``dask_worker.py``):
long-lived child processes, the ``LocalExecutor``'s machinery, so a run can really be stopped — a cancel or
a timeout kills the child running it (Dask cannot stop a running task) — and its output is captured into
its logs. A worker's runners die with it.

What happens when…
- **a run is canceled**: a job not sent yet is dropped here; otherwise the cancel is broadcast to the workers
  (``client.run``, batched): a job waiting on a worker is dropped, a running one's process is killed; each
  worker also remembers the id, so a batch still in the scheduler's queue drops it when it arrives.
- **the coordinator's lease must be fenced**: every renewal's deadline is broadcast; a worker's runner kills
  a run still going when the deadline passes without being moved on (as ``LocalExecutor`` does).
- **a Dask worker dies mid-run**: its task fails with ``KilledWorker`` (the cluster must not re-run it
  silently: ``distributed.scheduler.allowed-failures: 0``, set for the cluster this executor makes and
  checked on a cluster it is given); every job of the batch is reported ``lost`` and the coordinator queues
  it again as a new attempt. An outcome is recorded once, for the current attempt: no duplicate success.

Workflow code reaches the workers the Dask way: installed in their environment, or a single module sent
with ``client.upload_file``; a cluster on this machine (``address=None``) also gets this process's
``sys.path``.
"""

from __future__ import annotations

import itertools
import logging
import math
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Sequence
from typing import Any

from ...clock import SYSTEM_CLOCK
from ...models import CANCELED, FAILED
from ...runtime import LOST, RunJob, RunOutcome
from .base import Executor, ExecutorHost
from .dask_worker import (
    RemoteSettings,
    abandon_on_worker,
    cancel_on_worker,
    close_on_worker,
    fence_on_worker,
    run_batch,
)

log = logging.getLogger("anachron.dask")
BROADCAST_EVERY = 0.002  # seconds cancels wait to share one broadcast
FENCE_EVERY = 1.0  # seconds between broadcasts of an unchanged-rhythm lease deadline
NTHREADS_EVERY = 5.0  # seconds between looks at the cluster's size (it may scale)
TASKS_PER_THREAD = 2


class DaskExecutor(Executor):
    """Runs on Dask: ``address`` is a scheduler address (``"tcp://host:8786"``), a ``distributed.Client``,
    a cluster object (``LocalCluster``, ``KubeCluster``, …), or ``None`` for a ``LocalCluster`` of
    ``n_workers`` processes started here (and closed at shutdown). ``max_workers`` caps how many runs go
    at once; by default, the cluster's total threads."""

    # A round trip through the scheduler takes tens of milliseconds (a pipe to a local worker: one or
    # two): hold that much work ready, so short runs travel many to a task and no worker waits.
    queue_target_seconds = 0.05
    max_prefetch_per_worker = 256

    def __init__(self, address: Any = None, max_workers: int | None = None, *, n_workers: int = 2,
                 capture_output: bool = True):
        super().__init__(max_workers if max_workers is not None else 1)
        if isinstance(n_workers, bool) or not isinstance(n_workers, int) or n_workers < 1:
            raise ValueError(f"DaskExecutor.n_workers: must be an integer >= 1, got {n_workers!r}")
        self.address = address
        self.n_workers = n_workers
        self.capture_output = capture_output
        self._fixed_workers = max_workers is not None
        self.min_prefetch = self.max_workers
        self._id = uuid.uuid4().hex
        self._client: Any = None
        self._cluster: Any = None
        self._owns_client = False
        self._lock = threading.Lock()
        self._pending: deque[RunJob] = deque()  # taken from the coordinator, not sent to the cluster yet
        self._futures: dict[str, tuple[Any, list[RunJob]]] = {}
        self._batch_of: dict[str, str] = {}  # run id -> key of the batch that holds it
        self._seq = itertools.count(1)
        self._deadline = 0.0
        self._sent_deadline = 0.0
        self._sent_at = 0.0
        self._outbox: list[str] = []
        self._wake = threading.Event()
        self._stopping = False
        self._sender: threading.Thread | None = None
        self._nthreads_at = 0.0

    # -- lifecycle -----------------------------------------------------------------------------------
    def start(self, host: ExecutorHost) -> None:
        self._host = host
        self._client = self._connect()
        # storage reached from the cluster: for pools, and for its workers to record outcomes themselves
        # while this coordinator stalls — a SQLite file only when the cluster runs on this machine
        local = self._cluster is not None or not host.storage_url.startswith("sqlite")
        self._settings = RemoteSettings(self._id, list(sys.path) if self._cluster is not None else [],
                                        dict(host.pools), host.storage_url if host.pools or local else None,
                                        self.capture_output, host.worker_id, host.lease_seconds)
        self._check_cluster()
        self._sender = threading.Thread(target=self._send_loop, name="anachron-dask-broadcast", daemon=True)
        self._sender.start()

    def _connect(self) -> Any:
        import dask
        from distributed import Client, LocalCluster

        address = self.address
        if isinstance(address, Client):
            return address
        self._owns_client = True
        if address is None:
            with dask.config.set({"distributed.scheduler.allowed-failures": 0,
                                  "distributed.worker.daemon": False}):
                self._cluster = LocalCluster(n_workers=self.n_workers, threads_per_worker=1, processes=True,
                                             dashboard_address=":0", silence_logs=logging.WARNING)  # type: ignore[no-untyped-call]
            address = self._cluster
        return Client(address, set_as_default=False)  # type: ignore[no-untyped-call]

    def _check_cluster(self) -> None:
        self._refresh_nthreads(force=True)
        allowed = self._client.run_on_scheduler(_allowed_failures)
        if allowed:
            log.warning("DaskExecutor: the scheduler re-runs a task whose worker died (allowed-failures = %s): "
                        "a run whose worker dies may then run again under the same attempt. Set "
                        "distributed.scheduler.allowed-failures to 0 on the scheduler for exact retries.", allowed)

    def _refresh_nthreads(self, force: bool = False) -> None:
        if self._fixed_workers or (not force and SYSTEM_CLOCK.monotonic() - self._nthreads_at < NTHREADS_EVERY):
            return
        self._nthreads_at = SYSTEM_CLOCK.monotonic()
        total = sum(self._client.nthreads().values())
        if total:
            self.max_workers = total
            self.min_prefetch = total

    def shutdown(self, wait: bool = True) -> None:
        self._stopping = True
        self._wake.set()
        client = self._client
        if client is None:
            return
        try:
            client.run(close_on_worker, self._id, wait=False)
        except Exception:  # noqa: BLE001 - the cluster may be gone already
            pass
        if self._owns_client:
            client.close(timeout=5 if wait else 1)
            if self._cluster is not None:
                self._cluster.close(timeout=5 if wait else 1)
        self._client = self._cluster = None

    # -- jobs ----------------------------------------------------------------------------------------
    def submit(self, jobs: Sequence[RunJob]) -> None:
        with self._lock:
            self._pending.extend(jobs)
        self._dispatch()

    def _dispatch(self) -> None:
        """Send pending jobs as batch tasks: at most ``TASKS_PER_THREAD`` tasks per cluster thread in flight
        (one running, one ready behind it), the pending jobs split evenly among the free ones — short runs
        travel many to a task, long ones one each, so they spread over the workers."""
        self._refresh_nthreads()
        with self._lock:
            free = TASKS_PER_THREAD * self.max_workers - len(self._futures)
            if free <= 0 or not self._pending:
                return
            mean = self._mean_seconds
            short = mean is not None and mean <= self.queue_target_seconds
            size = max(1, math.ceil(len(self._pending) / free)) if short else 1
            batches: list[list[RunJob]] = []
            while self._pending and len(batches) < free:
                batches.append([self._pending.popleft() for _ in range(min(size, len(self._pending)))])
            seqs = [next(self._seq) for _ in batches]
            keys = [f"anachron-{self._id[:12]}-{seq}" for seq in seqs]
            deadline = self._deadline
            # Dask runs equal priorities LIFO: each batch one below the one before it (first in, first out)
            futures = [self._client.submit(run_batch, self._settings, deadline, batch, key=key, pure=False,
                                           retries=0, priority=-seq)
                       for seq, key, batch in zip(seqs, keys, batches)]
            for key, batch, future in zip(keys, batches, futures):
                self._futures[key] = (future, batch)
                for job in batch:
                    self._batch_of[job.run_id] = key
        for future in futures:
            future.add_done_callback(self._done)

    def _done(self, future: Any) -> None:
        with self._lock:
            entry = self._futures.pop(future.key, None)
            if entry is None:
                return
            jobs = entry[1]
            for job in jobs:
                self._batch_of.pop(job.run_id, None)
        if self._stopping:
            return
        status = future.status
        if status == "finished":
            try:
                outcomes: list[RunOutcome] = future.result()
            except Exception as exc:  # noqa: BLE001 - turned into the jobs' outcomes below
                outcomes = self._failed(jobs, exc)
            for outcome in outcomes:
                self.observe(outcome.ended_at - outcome.started_at)
        elif status == "cancelled":
            outcomes = [RunOutcome.ended(j, LOST, "its Dask task was cancelled before it reported") for j in jobs]
        else:
            outcomes = self._failed(jobs, future.exception())
        if outcomes:
            self._host.on_results(outcomes)
        self._dispatch()

    @staticmethod
    def _failed(jobs: list[RunJob], exc: BaseException | None) -> list[RunOutcome]:
        name = type(exc).__name__
        if name == "KilledWorker":  # its worker died while running it (the jobs' processes died with it)
            return [RunOutcome.ended(j, LOST, f"its Dask worker died ({exc})") for j in jobs]
        if name in ("CancelledError", "FutureCancelledError"):
            return [RunOutcome.ended(j, LOST, "its Dask task was cancelled before it reported") for j in jobs]
        return [RunOutcome.ended(j, FAILED, f"the Dask task failed: {name}: {exc}") for j in jobs]

    def cancel(self, run_id: str) -> None:
        with self._lock:
            queued = next((j for j in self._pending if j.run_id == run_id), None)
            if queued is not None:
                self._pending.remove(queued)
            elif run_id in self._batch_of:  # sent: stopped where it is, or dropped where it arrives
                self._outbox.append(run_id)
        if queued is not None:
            self._host.on_results([RunOutcome.ended(queued, CANCELED, "canceled before it started")])
        else:
            self._wake.set()

    def abandon(self) -> None:
        with self._lock:
            futures = [f for f, _ in self._futures.values()]
            self._futures.clear()
            self._batch_of.clear()
            self._pending.clear()
        if self._client is not None:
            try:
                self._client.cancel(futures)
                self._client.run(abandon_on_worker, self._id, wait=False)
            except Exception:  # noqa: BLE001 - a cluster that is gone has stopped its runs anyway
                pass

    def set_lease_deadline(self, deadline: float) -> None:
        self._deadline = deadline
        self._wake.set()

    # -- broadcasts: cancels and the lease deadline, from one thread --------------------------------
    def _send_loop(self) -> None:
        while not self._stopping:
            self._wake.wait(FENCE_EVERY)
            self._wake.clear()
            if self._stopping:
                return
            time.sleep(BROADCAST_EVERY)
            with self._lock:
                cancels, self._outbox = self._outbox, []
            client = self._client
            if client is None:
                return
            try:
                if cancels:
                    client.run(cancel_on_worker, self._id, cancels, wait=False)
                deadline = self._deadline
                if deadline != self._sent_deadline or SYSTEM_CLOCK.monotonic() - self._sent_at >= FENCE_EVERY:
                    if deadline > 0:
                        client.run(fence_on_worker, self._id, deadline, wait=False)
                    self._sent_deadline, self._sent_at = deadline, SYSTEM_CLOCK.monotonic()
            except Exception as exc:  # noqa: BLE001 - the cluster is unreachable: runs are fenced there
                log.warning("DaskExecutor: could not reach the cluster: %s", exc)


def _allowed_failures(dask_scheduler: Any) -> int:
    return int(getattr(dask_scheduler, "allowed_failures", 0))


