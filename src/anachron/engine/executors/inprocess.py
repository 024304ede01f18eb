"""``InProcessExecutor``: runs in a thread pool of this process (tests, debugging, no-op speed)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

from ...runtime import RunJob, execute
from .base import Executor


class InProcessExecutor(Executor):
    """Threads in this process. Canceling is cooperative: a canceled run stops at its next task call
    (it is recorded as canceled at once)."""

    def __init__(self, max_workers: int = 4):
        super().__init__(max_workers)
        self._pool: ThreadPoolExecutor | None = None
        self._cancel: dict[str, threading.Event] = {}

    def start(self, on_result, resolve, pools=None) -> None:
        self._on_result, self._resolve, self._pools = on_result, resolve, pools
        self._pool = ThreadPoolExecutor(self.max_workers, thread_name_prefix="anachron-run")

    def submit(self, job: RunJob) -> None:
        event = threading.Event()
        self._cancel[job.run_id] = event
        self._pool.submit(self._run, job, event)

    def _run(self, job: RunJob, event: threading.Event) -> None:
        try:
            outcome = execute(job, self._resolve(job.workflow), event, self._pools)
        finally:
            self._cancel.pop(job.run_id, None)
        self._on_result(outcome)

    def cancel(self, run_id: str) -> None:
        event = self._cancel.get(run_id)
        if event is not None:
            event.set()

    def shutdown(self, wait: bool = True) -> None:
        for event in list(self._cancel.values()):
            event.set()
        if self._pool is not None:
            self._pool.shutdown(wait=wait, cancel_futures=True)

    @property
    def shares_memory(self) -> bool:
        return True
