"""A ``LocalExecutor`` worker process: workflow code loaded once, jobs run one at a time.

The main thread owns the pipe's reading end: between jobs it takes whatever the parent sent (job
batches, cancels of queued jobs) without blocking, and when it has nothing to run it blocks on the pipe
itself — a job sent to an idle worker starts without a hand-off between threads. Outcomes are reported
in batches: sent when the worker runs out of work, after 1 ms, or every 64 outcomes.

A second thread, the watchman, never reads the pipe. It enforces the lease fence — when the parent's
lease deadline (shared memory, wall clock) passes with a job running, the worker reports what it has and
kills itself with its process group, so a stalled leader's work stops before another process may take it
over — and sends outcomes that would otherwise wait behind a long run. A running job is canceled by the
parent killing the worker.

Two shared integers tell the parent, should this process die, which job was running (``current``) and
the last one that finished (``done``): jobs are tokens in increasing order.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections import deque
from typing import Any, NamedTuple

from ...capture import FdCapture, RunLog
from ...loading import load_workflow
from ...models import CANCELED
from ...runenv import scrub_environ
from ...runtime import LOST, RunJob, RunOutcome, execute

FLUSH_AFTER = 0.001  # seconds an outcome may wait for others to share its message
FLUSH_COUNT = 64
WATCH_INTERVAL = 0.05
IDLE_WATCH = 1.0  # with no job running and nothing to send, the watchman sleeps until woken (or this long)


class WorkerSettings(NamedTuple):
    sys_path: list[str]
    parent_pid: int
    pools: dict[str, int]
    storage_url: str | None
    capture_output: bool


def worker_main(conn: Any, settings: WorkerSettings, fence: Any, current: Any, done: Any) -> None:
    """The worker process's entry point."""
    os.setsid()  # its own process group, so a kill takes the run's children too
    scrub_environ()  # before any workflow code is imported: runs never see the server's secrets
    _die_with_parent(settings.parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    sys.path[:] = settings.sys_path
    _Worker(conn, settings, fence, current, done).serve()


class _Worker:
    def __init__(self, conn: Any, settings: WorkerSettings, fence: Any, current: Any, done: Any):
        self.conn, self.settings = conn, settings
        self.fence, self.current, self.done = fence, current, done
        self.inbox: deque[tuple[int, RunJob]] = deque()
        self.lock = threading.Lock()  # guards `running`, the outbox and sends
        self.running: RunJob | None = None
        self.wake = threading.Event()  # the watchman's: work to watch (a job started, an outcome to send)
        self.watch_idle = False
        self.outbox: list[RunOutcome] = []
        self.first_unsent = 0.0
        self.stopping = False
        self.workflows: dict[Any, Any] = {}
        self.gate: Any = None
        self.output: FdCapture | None = None

    # -- the main thread: take messages, run jobs -------------------------------------------------
    def serve(self) -> None:
        if self.settings.capture_output:
            self.output = FdCapture()
            self.output.start()
        threading.Thread(target=self.watch, name="anachron-worker-watchman", daemon=True).start()
        self.tell(("ready", os.getpid()))
        while True:
            try:
                if not self.inbox:
                    self.flush()  # idle: report what there is, then wait for the parent
                    self.handle(self.conn.recv())
                while self.conn.poll(0):  # between jobs: cancels and new batches first
                    self.handle(self.conn.recv())
            except (EOFError, OSError):  # the parent is gone
                os._exit(0)
            if self.stopping and not self.inbox:
                self.flush()
                return
            if not self.inbox:
                continue
            token, job = self.inbox.popleft()
            if self.fenced():
                self.report(RunOutcome.ended(job, LOST, "not started: its coordinator's lease lapsed"))
                continue
            with self.lock:
                self.running = job
                self.current.value = token
                if self.watch_idle:
                    self.wake.set()
            outcome = self.run(job)
            with self.lock:
                self.running = None
                self.done.value = token
                self.current.value = 0
            self.report(outcome)

    def handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "jobs":
            self.inbox.extend(message[1])
        elif kind == "cancel":  # of a job still waiting here (a running one is stopped by a kill)
            queued = next((item for item in self.inbox if item[1].run_id == message[1]), None)
            if queued is not None:
                self.inbox.remove(queued)
                self.report(RunOutcome.ended(queued[1], CANCELED, "canceled before it started"))
        elif kind == "stop":
            self.stopping = True

    def run(self, job: RunJob) -> RunOutcome:
        started = time.time()
        try:
            workflow = self.workflows.get(job.workflow)
            if workflow is None:
                workflow = self.workflows[job.workflow] = load_workflow(job.workflow)
        except BaseException as exc:  # noqa: BLE001 - a workflow that cannot be loaded fails its run
            return RunOutcome.ended(job, "failed", f"{type(exc).__name__}: {exc}", started)
        if self.gate is None and self.settings.pools and self.settings.storage_url:
            from ..pools import PoolGate  # opened on the first run, not while the worker starts

            self.gate = PoolGate.connect(self.settings.storage_url, self.settings.pools)
        runlog = RunLog(job.log_limit)
        output = self.output
        if output is not None:
            output.begin()
        outcome = execute(job, workflow, None, self.gate, apply_environ=True, capture_streams=False,
                          on_deadline=lambda at: self.tell(("deadline", job.run_id, at)), runlog=runlog,
                          before_end=(lambda: output.collect(runlog)) if output is not None else None)
        return outcome._replace(result=None, exception=None)  # they stay here: only dev runs use them

    # -- outcomes -------------------------------------------------------------------------------
    def report(self, outcome: RunOutcome) -> None:
        with self.lock:
            if not self.outbox:
                self.first_unsent = time.monotonic()
                if self.watch_idle:
                    self.wake.set()
            self.outbox.append(outcome)
            if len(self.outbox) >= FLUSH_COUNT or time.monotonic() - self.first_unsent >= FLUSH_AFTER:
                self._flush_locked()

    def flush(self) -> None:
        with self.lock:
            self._flush_locked()

    def _flush_locked(self) -> None:
        if self.outbox:
            batch, self.outbox = self.outbox, []
            self.conn.send(("results", batch))

    def tell(self, message: tuple[Any, ...]) -> None:
        """A message that must follow every outcome reported before it."""
        with self.lock:
            self._flush_locked()
            self.conn.send(message)

    def fenced(self) -> bool:
        deadline = self.fence.value
        return bool(0 < deadline < time.time())

    # -- the watchman thread: the fence, and outcomes held up by a long run ----------------------
    def watch(self) -> None:
        while True:
            self.wake.clear()  # before looking: a job that starts after the look sets it again
            with self.lock:
                self.watch_idle = self.running is None and not self.outbox
            if self.watch_idle:  # nothing to fence or send: sleep until there is (an idle worker costs nothing)
                self.wake.wait(IDLE_WATCH)
            else:
                deadline = self.fence.value
                wait = WATCH_INTERVAL if deadline <= 0 else max(0.0, min(WATCH_INTERVAL,
                                                                         deadline - time.time() + 0.001))
                time.sleep(wait)
            with self.lock:
                if self.running is not None and self.fenced():
                    self._flush_locked()
                    self.conn.send(("killing", self.running.run_id, "fence"))
                    os.killpg(os.getpid(), signal.SIGKILL)
                if self.outbox and time.monotonic() - self.first_unsent >= FLUSH_AFTER:
                    self._flush_locked()


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
