"""``LocalExecutor``: long-lived worker processes, reused across runs.

Each worker has the workflow code loaded once and runs one job at a time, talking to this process
over a pipe. A canceled run's worker is killed (with its process group) and replaced. Workers die
with their parent: they ask the kernel for SIGKILL when the parent goes (Linux ``PR_SET_PDEATHSIG``)
and leave when their pipe closes.
"""

from __future__ import annotations

import multiprocessing
import os
import queue
import signal
import sys
import threading
import time
from datetime import datetime, timezone

from ...models import CANCELED, FAILED
from ...runtime import RunJob, RunOutcome
from .base import Executor

_STOP = None
KILL_GRACE_SECONDS = 2.0  # after a task's timeout, how long the worker's own alarm gets before a kill


class LocalExecutor(Executor):
    def __init__(self, max_workers: int = 4):
        super().__init__(max_workers)
        # Worker round trips are slower than threads': keep a deeper queue so each coordinator tick
        # hands over (and records) more runs at once.
        self.prefetch = 2 * max_workers
        self._jobs: queue.Queue = queue.Queue()
        self._slots: list[_Slot] = []
        self._canceled: set[str] = set()  # canceled before a worker picked them up

    def start(self, on_result, resolve, pools=None) -> None:
        self._on_result = on_result
        self._pool_config = pools.sizes if pools is not None else {}
        self._storage_url = pools.storage_url if pools is not None else None
        ctx = multiprocessing.get_context("spawn")
        self._slots = [_Slot(self, ctx, i) for i in range(self.max_workers)]
        for slot in self._slots:
            slot.thread.start()

    def submit(self, job: RunJob) -> None:
        if self._pool_config:
            job.pools, job.storage_url = dict(self._pool_config), self._storage_url
        self._jobs.put(job)

    def cancel(self, run_id: str) -> None:
        if not any(slot.kill_if_running(run_id) for slot in self._slots):
            self._canceled.add(run_id)

    def shutdown(self, wait: bool = True) -> None:
        for _ in self._slots:
            self._jobs.put(_STOP)
        for slot in self._slots:
            slot.stop()
        if wait:
            for slot in self._slots:
                slot.thread.join(timeout=5)


class _Slot:
    """One worker process and the thread that feeds it jobs."""

    def __init__(self, executor: LocalExecutor, ctx, index: int):
        self.executor, self.ctx = executor, ctx
        self.process = None
        self.conn = None
        self.current: RunJob | None = None
        self.killed_for: str | None = None
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self.loop, name=f"anachron-local-{index}", daemon=True)

    def spawn(self) -> None:
        parent_conn, child_conn = self.ctx.Pipe()
        self.process = self.ctx.Process(target=worker_main, args=(child_conn, list(sys.path), os.getpid()), daemon=True,
                                        name="anachron-worker")
        self.process.start()
        child_conn.close()
        self.conn = parent_conn

    def loop(self) -> None:
        while True:
            job = self.executor._jobs.get()
            if job is _STOP:
                return
            if job.run_id in self.executor._canceled:
                self.executor._canceled.discard(job.run_id)
                now = datetime.now(timezone.utc)
                self.executor._on_result(RunOutcome(job.run_id, job.attempt, CANCELED, "canceled before it started",
                                                    [], {}, now, now))
                continue
            with self.lock:
                self.current, self.killed_for = job, None
                if self.process is None or not self.process.is_alive():
                    self.spawn()
            outcome = self.run(job)
            with self.lock:
                self.current = None
            self.executor._on_result(outcome)

    def run(self, job: RunJob) -> RunOutcome:
        started = datetime.now(timezone.utc)
        deadline: float | None = None  # of the task running now, as the worker reported it
        try:
            self.conn.send(job)
            while True:
                wait = None if deadline is None else max(0.0, deadline + KILL_GRACE_SECONDS - time.time())
                if self.conn.poll(wait):
                    message = self.conn.recv()
                    if isinstance(message, tuple) and message[0] == "deadline":
                        deadline = message[1]
                        continue
                    return message
                with self.lock:  # the task outlived its timeout and the alarm did not stop it
                    self.killed_for = f"timeout:{job.run_id}"
                    _kill_group(self.process.pid)
        except (EOFError, OSError, BrokenPipeError):
            with self.lock:
                killed = self.killed_for
                self.process = None
            if killed == job.run_id:
                status, error = CANCELED, "canceled: worker process killed"
            elif killed == f"timeout:{job.run_id}":
                status, error = FAILED, "a task outlived its timeout; its worker process was killed"
            else:
                status, error = FAILED, "worker process died while running the run"
            return RunOutcome(job.run_id, job.attempt, status, error, [], {}, started, datetime.now(timezone.utc))

    def kill_if_running(self, run_id: str) -> bool:
        with self.lock:
            if self.current is None or self.current.run_id != run_id or self.process is None:
                return False
            self.killed_for = run_id
            _kill_group(self.process.pid)
            return True

    def stop(self) -> None:
        with self.lock:
            if self.process is not None and self.process.is_alive():
                if self.current is not None:
                    _kill_group(self.process.pid)
                else:
                    try:
                        self.conn.send(_STOP)
                    except OSError:
                        pass


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _die_with_parent(parent_pid: int) -> None:
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent_pid:  # the parent died before we asked: go now
        os._exit(1)


def worker_main(conn, sys_path: list[str], parent_pid: int) -> None:
    """The worker process: load workflows on demand, run jobs one at a time until told to stop."""
    os.setsid()  # own process group, so a kill takes the run's children too
    _die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    sys.path[:] = sys_path
    from ...runtime import execute, load_workflow
    from ..pools import PoolGate

    workflows: dict = {}
    gates: dict = {}
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is _STOP:
            return
        try:
            workflow = workflows.get(job.workflow_ref)
            if workflow is None:
                workflow = workflows[job.workflow_ref] = load_workflow(job.workflow_ref)
            gate = None
            if job.pools:
                gate = gates.get(job.storage_url)
                if gate is None:
                    gate = gates[job.storage_url] = PoolGate.connect(job.storage_url, job.pools)
            outcome = execute(job, workflow, None, gate, apply_environ=True,
                              on_deadline=lambda at: conn.send(("deadline", at)))
        except BaseException as exc:  # noqa: BLE001 - loading failures are the run's failure
            now = datetime.now(timezone.utc)
            outcome = RunOutcome(job.run_id, job.attempt, FAILED, f"{type(exc).__name__}: {exc}", [], {}, now, now)
        outcome.result = outcome.exception = None  # they stay in the worker: only dev runs use them
        conn.send(outcome)
