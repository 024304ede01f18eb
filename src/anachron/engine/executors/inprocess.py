"""``InProcessExecutor``: runs in threads of this process (tests, debugging, no-op speed).

Threads cannot be killed. Canceling is cooperative: a canceled run is recorded ``canceled`` at once and its
thread stops at its next task call; a run that never calls a task keeps its thread until it returns. The
same holds for lease fencing: when this process loses its lease, its runs are told to stop and their
outcomes are ignored, but code already running in a thread runs on. The threads are daemons, so a
process never waits for an abandoned run at exit.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence

from ...context import CancelToken
from ...models import CANCELED
from ...runtime import LOST, RunJob, RunOutcome, execute
from .base import Executor, ExecutorHost

REPORT_EVERY = 16
REPORT_AFTER = 0.001


class InProcessExecutor(Executor):
    """Threads in this process; see the module docstring for what cancellation can and cannot do."""

    def __init__(self, max_workers: int = 4):
        super().__init__(max_workers)
        self._jobs: deque[RunJob] = deque()
        self._ready = threading.Condition()
        self._cancel: dict[str, CancelToken] = {}
        self._threads: list[threading.Thread] = []
        self._stopping = False
        self._host: ExecutorHost | None = None
        self._deadline = 0.0  # the lease: no job starts after it

    def start(self, host: ExecutorHost) -> None:
        self._host = host
        self._pools = host.pool_gate()
        self._threads = [threading.Thread(target=self._work, name=f"anachron-run-{i}", daemon=True)
                         for i in range(self.max_workers)]
        for thread in self._threads:
            thread.start()

    def submit(self, jobs: Sequence[RunJob]) -> None:
        with self._ready:
            for job in jobs:
                self._cancel[job.run_id] = CancelToken()
            self._jobs.extend(jobs)
            self._ready.notify(len(jobs))

    def _work(self) -> None:
        """Run jobs until stopped. Outcomes are reported in small batches: when this thread finds no more
        work, after ``REPORT_EVERY`` outcomes, or after a run that took ``REPORT_AFTER`` seconds or more."""
        host = self._host
        assert host is not None
        jobs, tokens = self._jobs, self._cancel
        done: list[RunOutcome] = []
        while True:
            try:
                job = jobs.popleft()  # a deque pops safely without the lock
            except IndexError:
                if done:
                    host.on_results(done)
                    done = []
                with self._ready:
                    while not jobs and not self._stopping:
                        self._ready.wait()
                    if self._stopping:
                        return
                continue
            token = tokens.get(job.run_id)
            if token is None:  # canceled or abandoned before it started
                continue
            if 0 < self._deadline < host.clock.wall():
                tokens.pop(job.run_id, None)
                done.append(RunOutcome.ended(job, LOST, "not started: its coordinator's lease lapsed"))
                continue
            try:
                outcome = execute(job, host.resolve(job.workflow), token, self._pools)
            except BaseException as exc:  # noqa: BLE001 - resolving failed: the run's failure, not the thread's
                outcome = RunOutcome.ended(job, "failed", f"{type(exc).__name__}: {exc}")
            finally:
                tokens.pop(job.run_id, None)
            took = outcome.ended_at - outcome.started_at
            self.observe(took)
            done.append(outcome)
            if len(done) >= REPORT_EVERY or took >= REPORT_AFTER:
                host.on_results(done)
                done = []

    def cancel(self, run_id: str) -> None:
        with self._ready:
            event = self._cancel.get(run_id)
            if event is None:
                return
            event.set()
            queued = next((j for j in self._jobs if j.run_id == run_id), None)
            if queued is not None:
                self._jobs.remove(queued)
                self._cancel.pop(run_id, None)
        if queued is not None and self._host is not None:
            self._host.on_results([RunOutcome.ended(queued, CANCELED, "canceled before it started")])

    def set_lease_deadline(self, deadline: float) -> None:
        self._deadline = deadline

    def abandon(self) -> None:
        with self._ready:
            for event in self._cancel.values():
                event.set()
            self._cancel.clear()
            self._jobs.clear()

    def shutdown(self, wait: bool = True) -> None:
        self.abandon()
        with self._ready:
            self._stopping = True
            self._ready.notify_all()
        if wait:  # only idle threads are joined; a thread still inside a run is a daemon and left behind
            for thread in self._threads:
                thread.join(timeout=0.2)

    @property
    def shares_memory(self) -> bool:
        return True
