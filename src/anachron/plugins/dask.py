"""``DaskTask()``: each call of the task is submitted to a Dask cluster (extra ``anachron[dask]``).

``@ac.task(config=DaskTask(address=None))``: the call becomes one Dask task (``client.submit``, its key
``anachron-task-<task>-<run id>-<n>``, never retried by the scheduler), and its result comes back to the run.

- **Which cluster.** ``address``: a scheduler address (``"tcp://host:8786"``), or ``None`` for the cluster of
  the ``DaskExecutor`` running the run (its workers pass their scheduler's address down, as Dask's
  ``DASK_SCHEDULER_ADDRESS``), else — under ``LocalExecutor``, ``InProcessExecutor`` or a dev run — a
  ``LocalCluster`` of this process, started by the first call and reused by the later ones. One ``Client`` per
  address and process, reused.
- **The run's context goes along.** On the Dask worker the function sees the run's ``ac.context()`` (partition
  window, params, ...) and logical clock (``ac.now()``); what it logs (``ctx.log``) and prints comes back to the
  run's log with the result.
- **Cancel and timeout cancel the future** (``Future.cancel``): the run ends at once. Dask cannot interrupt a
  task's thread; the function sees the cancel as ``ac.context().canceled`` (its Dask task's state there is
  ``cancelled``) and any task it calls raises ``RunCanceled``, so a long loop that looks at it stops.
- **With ``DaskExecutor`` on the same cluster**, the run itself holds one Dask thread while its ``DaskTask``
  call needs another: give the cluster more threads than the runs in flight (``DaskExecutor(max_workers=N)``
  below half the cluster's threads), or point ``address`` at another cluster.

Dask is imported when the first call starts, never by ``import anachron``.
"""

from __future__ import annotations

import atexit
import contextlib
import itertools
import logging
import multiprocessing
import threading
import time as _time
from typing import Any

from ..context import CancelToken
from .base import ContextSnapshot, RemoteResult, RunningCall, TaskCall, TaskRuntime, run_remote

_counter = itertools.count(1)


class DaskTask(TaskRuntime):
    """Submit each call of the task to a Dask cluster (``address``, else the ``DaskExecutor``'s, else a local one);
    a cancel or timeout cancels its future."""

    def __init__(self, address: str | None = None, stop_grace: float = 5.0):
        if address is not None and (not isinstance(address, str) or not address):
            raise ValueError(f"DaskTask.address: expected a scheduler address such as 'tcp://host:8786' or None, "
                             f"got {address!r}")
        if not isinstance(stop_grace, (int, float)) or stop_grace < 0:
            raise ValueError(f"DaskTask.stop_grace: must be a number of seconds >= 0, got {stop_grace!r}")
        self.address = address
        self.stop_grace = float(stop_grace)

    def start(self, call: TaskCall) -> RunningCall:
        client = _clients.get(self.address, call)
        key = f"anachron-task-{call.task_name}-{call.run_id or 'none'}-{next(_counter)}"
        future = client.submit(_on_worker, call.snapshot(), call.fn, call.args, call.kwargs, key=key, pure=False,
                               retries=0)
        return _DaskCall(future, call)

    def __repr__(self) -> str:
        return f"DaskTask(address={self.address!r})"


class _Clients:
    """This process's Dask clients, one per address; and its own LocalCluster when there is no address."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.clients: dict[str, Any] = {}
        self.cluster: Any = None

    def get(self, address: str | None, call: TaskCall) -> Any:
        import dask
        from distributed import Client

        with self.lock:
            address = address or dask.config.get("scheduler-address", None) or self._own_cluster(call)
            client = self.clients.get(address)
            if client is None or client.status in ("closed", "closing"):
                client = self.clients[address] = Client(address, set_as_default=False)  # type: ignore[no-untyped-call]
            return client

    def _own_cluster(self, call: TaskCall) -> str:
        if self.cluster is None:
            import dask
            from distributed import LocalCluster

            process = multiprocessing.current_process()
            if process.daemon:  # a LocalExecutor worker: its cluster's processes die with it (see dask_worker.py)
                process._config["daemon"] = False  # type: ignore[attr-defined]
            call.log("info", "starting a Dask LocalCluster for DaskTask calls")
            with dask.config.set({"distributed.scheduler.allowed-failures": 0, "distributed.worker.daemon": False}):
                self.cluster = LocalCluster(processes=True, dashboard_address=":0",  # type: ignore[no-untyped-call]
                                            silence_logs=logging.WARNING)
            atexit.register(self.close)
        return str(self.cluster.scheduler_address)

    def close(self) -> None:
        """Close the clients and this process's own cluster (at exit)."""
        with self.lock:
            clients, self.clients = list(self.clients.values()), {}
            cluster, self.cluster = self.cluster, None
        for client in clients:
            with contextlib.suppress(Exception):
                client.close(timeout=2)
        if cluster is not None:
            with contextlib.suppress(Exception):
                cluster.close(timeout=2)


_clients = _Clients()


class _DaskCall(RunningCall):
    def __init__(self, future: Any, call: TaskCall):
        self.future, self.call = future, call

    def wait(self, timeout: float) -> bool:
        deadline = _time.monotonic() + timeout
        while not self.future.done():
            left = deadline - _time.monotonic()
            if left <= 0:
                return False
            _time.sleep(min(left, 0.01))
        return True

    def result(self) -> Any:
        outcome: RemoteResult = self.future.result()
        return outcome.unwrap(self.call)

    def stop(self) -> str:
        self.future.cancel()
        return f"Dask future {self.future.key} canceled"


class _DaskCancel(CancelToken):
    """Canceled once the scheduler has canceled this Dask task (its state on this worker says so)."""

    __slots__ = ("state", "key")

    def __init__(self, state: Any, key: Any):
        super().__init__()
        self.state, self.key = state, key

    def is_set(self) -> bool:
        task = self.state.tasks.get(self.key)
        return bool(self._set or task is None or task.state == "cancelled")


def _on_worker(snapshot: ContextSnapshot | None, fn: Any, args: tuple[Any, ...],
               kwargs: dict[str, Any]) -> RemoteResult:
    """The Dask task: the call under the run's context, its log and prints collected for the run."""
    from distributed import get_worker
    from distributed.worker import thread_state  # type: ignore[attr-defined]

    cancel = _DaskCancel(get_worker().state, thread_state.key)
    return run_remote(snapshot, fn, args, kwargs, cancel=cancel, capture_print=True)
