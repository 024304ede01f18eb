"""A ``LocalExecutor`` worker process: workflow code loaded once, jobs run one at a time.

The main thread owns the pipe's reading end: between jobs it takes whatever the parent sent (job
batches, cancels of queued jobs) without blocking, and when it has nothing to run it blocks on the pipe
itself — a job sent to an idle worker starts without a hand-off between threads. Outcomes are reported
in batches: sent when the worker runs out of work, after 1 ms, or every 64 outcomes.

A second thread, the watchman, never reads the pipe. It enforces the lease fence — when the parent's
lease deadline (shared memory, wall clock) passes with a job running, the worker reports what it has and
kills itself with its process group, so a stalled leader's work stops before another process may take it
over — and sends outcomes that would otherwise wait behind a long run. A running job is canceled by the
parent killing the worker; while the job is inside a task runtime's call (Spark, Dask, a subprocess), which
the worker announces (``stoppable``), the parent first sets the shared ``cancel`` integer to the job's token:
the run's cancel flag, which the runtime's watch loop sees and acts on (it cancels the Spark job group, say),
so the run ends ``canceled`` and the worker lives on — the kill follows only if it has not within the grace.

Two shared integers tell the parent, should this process die, which job was running (``current``) and
the last one that finished (``done``): jobs are tokens in increasing order.
"""

from __future__ import annotations

import os
import select
import signal
import sys
import threading
import time
from collections import deque
from typing import Any, NamedTuple

from ...capture import FdCapture, RunLog
from ...clock import SYSTEM_CLOCK
from ...context import CancelToken
from ...loading import load_workflow
from ...models import CANCELED
from ...runenv import scrub_environ
from ...runtime import LOST, RunJob, RunOutcome, execute
from .recorder import Recorder

FLUSH_AFTER = 0.001  # seconds an outcome may wait for others to share its message
FLUSH_COUNT = 64
WATCH_INTERVAL = 0.05
IDLE_WATCH = 1.0  # with no job running and nothing to send, the watchman sleeps until woken (or this long)


def incoming(conn: Any) -> Any:
    """A poll object on ``conn``: ``.poll(0)`` says whether the other end sent something (or hung up). The
    connection's own ``poll()`` builds a selector on every call, 3 µs, asked once a job or message."""
    poller = select.poll()
    poller.register(conn.fileno(), select.POLLIN)
    return poller


class WorkerSettings(NamedTuple):
    sys_path: list[str]
    parent_pid: int
    pools: dict[str, int]
    storage_url: str | None  # for pools, and for recording outcomes while the coordinator stalls
    capture_output: bool
    owner: str | None = None  # the coordinator's worker id: the owner of the runs sent here
    lease_seconds: float = 0.0


def worker_main(conn: Any, settings: WorkerSettings, fence: Any, current: Any, done: Any, cancel: Any) -> None:
    """The worker process's entry point."""
    os.setsid()  # its own process group, so a kill takes the run's children too
    scrub_environ()  # before any workflow code is imported: runs never see the server's secrets
    die_with_parent(settings.parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    sys.path[:] = settings.sys_path
    _Worker(conn, settings, fence, current, done, cancel).serve()


class SharedCancel(CancelToken):
    """The cancel flag of the job numbered ``token``: set when the parent writes that number to ``shared``."""

    __slots__ = ("shared", "token")

    def __init__(self, shared: Any, token: int):
        super().__init__()
        self.shared, self.token = shared, token

    def is_set(self) -> bool:
        return bool(self._set or self.shared.value == self.token)


class _Worker:
    def __init__(self, conn: Any, settings: WorkerSettings, fence: Any, current: Any, done: Any, cancel: Any):
        self.conn, self.settings = conn, settings
        self.incoming = incoming(conn)  # whether the parent sent something, asked between jobs
        self.fence, self.current, self.done, self.cancel = fence, current, done, cancel
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
        shared = settings.storage_url
        if shared is not None and (shared == "sqlite://" or ":memory:" in shared):
            shared = None  # an in-memory database cannot be reached from here
        self.recorder = Recorder(shared, settings.owner, settings.lease_seconds)

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
                while self.incoming.poll(0):  # between jobs: cancels and new batches first (or the parent gone)
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
            outcome = self.run(job, token)
            with self.lock:
                self.running = None
                self.done.value = token
                self.current.value = 0
            self.report(outcome)
            self.recorder.finished(job, outcome)

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

    def run(self, job: RunJob, token: int) -> RunOutcome:
        started = SYSTEM_CLOCK.wall()
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
        outcome = execute(job, workflow, SharedCancel(self.cancel, token), self.gate, apply_environ=True,
                          capture_streams=False, on_deadline=lambda at: self.tell(("deadline", job.run_id, at)),
                          runlog=runlog, before_end=(lambda: output.collect(runlog)) if output is not None else None,
                          on_stoppable=lambda grace: self.tell(("stoppable", job.run_id, grace)))
        return outcome._replace(result=None, exception=None)  # they stay here: only dev runs use them

    # -- outcomes -------------------------------------------------------------------------------
    def report(self, outcome: RunOutcome) -> None:
        with self.lock:
            if not self.outbox:
                self.first_unsent = SYSTEM_CLOCK.monotonic()
                if self.watch_idle:
                    self.wake.set()
            self.outbox.append(outcome)
            if len(self.outbox) >= FLUSH_COUNT or SYSTEM_CLOCK.monotonic() - self.first_unsent >= FLUSH_AFTER:
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
        return bool(0 < deadline < SYSTEM_CLOCK.wall())

    # -- the watchman thread: the fence, and outcomes held up by a long run ----------------------
    def watch(self) -> None:
        while True:
            self.wake.clear()  # before looking: a job that starts after the look sets it again
            with self.lock:
                self.watch_idle = self.running is None and not self.outbox and not self.recorder.watching
            if self.watch_idle:  # nothing to fence or send: sleep until there is (an idle worker costs nothing)
                self.wake.wait(IDLE_WATCH)
            else:
                deadline = self.fence.value
                wait = WATCH_INTERVAL if deadline <= 0 else max(0.0, min(WATCH_INTERVAL,
                                                                         deadline - SYSTEM_CLOCK.wall() + 0.001))
                time.sleep(wait)
            self.recorder.watch(self.fence.value)
            with self.lock:
                if self.running is not None and self.fenced():
                    self._flush_locked()
                    self.conn.send(("killing", self.running.run_id, "fence"))
                    os.killpg(os.getpid(), signal.SIGKILL)
                if self.outbox and SYSTEM_CLOCK.monotonic() - self.first_unsent >= FLUSH_AFTER:
                    self._flush_locked()


def die_with_parent(parent_pid: int) -> None:
    """This process is killed when the thread that started it ends (Linux), and ends now if its parent has."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            libc = ctypes.CDLL("libc.so.6", use_errno=True)
            libc.prctl(1, int(signal.SIGKILL))  # PR_SET_PDEATHSIG
        except OSError:
            pass
    if os.getppid() != parent_pid:  # the parent died before we asked: go now
        os._exit(1)
