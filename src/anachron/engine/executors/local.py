"""``LocalExecutor``: long-lived worker processes, reused across runs.

Jobs go to workers in batches straight from the caller's thread (``submit``: as many per worker as it can
start within a few milliseconds; the rest wait here). One dispatcher thread receives outcomes in batches
from every worker, watches deadlines and replaces dead workers. Each job is a numbered token; when a worker
dies, its shared ``current`` / ``done`` counters say which job was running (its outcome follows from why
the worker died), which had finished (their outcome was lost: ``lost``, queued again by the coordinator)
and which had not started (sent to another worker).

A canceled run's worker is killed with its process group, and replaced — unless the run is inside a task
runtime's call (Spark, Dask, a subprocess; the worker says so): then its cancel flag is raised through shared
memory, the runtime stops its work and the run ends ``canceled`` with the worker (and its SparkSession) alive;
the kill follows if it has not within the runtime's grace. Workers die with their parent
(Linux ``PR_SET_PDEATHSIG``), and stop themselves when the lease deadline the coordinator sets passes
without being moved on (see ``worker.py``).
"""

from __future__ import annotations

import math
import multiprocessing
import os
import select
import signal
import socket
import sys
import threading
from collections import OrderedDict, deque
from collections.abc import Sequence
from typing import Any

from ...clock import SYSTEM_CLOCK
from ...models import CANCELED, FAILED
from ...runtime import LOST, RunJob, RunOutcome
from .base import Executor, ExecutorHost
from .worker import WorkerSettings, incoming, worker_main

KILL_GRACE_SECONDS = 2.0  # after a task's timeout (or a cancel), how long a worker gets before the parent kills it
IDLE_WAIT = 0.5
STARTUP_ATTEMPTS = 3  # workers dying before they are ready this many times in a row: the jobs fail


class LocalExecutor(Executor):
    """Separate, long-lived worker processes. ``capture_output`` (default on) stores what runs write to
    stdout/stderr — ``print``, C extensions, child processes — in their logs instead of the terminal."""

    def __init__(self, max_workers: int = 4, capture_output: bool = True):
        super().__init__(max_workers)
        self.min_prefetch = 2 * max_workers  # a round trip to a worker costs more than a thread switch
        self.capture_output = capture_output
        self._commands: deque[tuple[Any, ...]] = deque()
        self._pending: deque[tuple[int, RunJob]] = deque()
        self._slots: list[_Slot] = []
        self._tokens = 0
        self._startup_failures = 0
        self._state = threading.RLock()  # slots, pending jobs: shared by the caller's and the dispatcher's threads
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._fence: Any = None
        self._poller = select.poll()  # the dispatcher's: the wake-up socket and the workers' pipes
        self._polled: dict[int, Any] = {}
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_r.setblocking(False)
        self._wake_w.setblocking(False)

    # -- called from the coordinator's threads ---------------------------------------------------
    def start(self, host: ExecutorHost) -> None:
        self._host = host
        self._ctx = multiprocessing.get_context("spawn")
        self._fence = self._ctx.Value("d", 0.0, lock=False)
        self._settings = WorkerSettings(list(sys.path), os.getpid(), dict(host.pools), host.storage_url or None,
                                        self.capture_output, host.worker_id, host.lease_seconds)
        self._slots = [_Slot(i) for i in range(self.max_workers)]
        for slot in self._slots:
            self._spawn(slot)
        self._thread = threading.Thread(target=self._dispatch, name="anachron-local-dispatch", daemon=True)
        self._thread.start()

    def submit(self, jobs: Sequence[RunJob]) -> None:
        with self._state:
            for job in jobs:
                self._tokens += 1
                self._pending.append((self._tokens, job))
            spawned = self._send_jobs()
        if spawned:  # the dispatcher must listen to the new worker's pipe
            self._command(("listen",))

    def cancel(self, run_id: str) -> None:
        with self._state:
            self._cancel(run_id)

    def abandon(self) -> None:
        # at once, under the state lock: a job submitted right after (the coordinator re-queues and starts
        # its runs again as soon as it has its lease back) must not be swept away by a late abandon
        results: list[RunOutcome] = []
        with self._state:
            for slot in self._slots:  # outcomes the workers sent while this process was frozen: still recordable
                if slot.conn is not None:
                    self._receive(slot, results)
            self._pending.clear()
            for slot in self._slots:
                if slot.inflight:
                    slot.inflight.clear()
                    slot.doomed = True  # nothing more is sent to it: the dispatcher reaps it and starts another
                    self._kill(slot, "abandon")
        if results:
            self._host.on_results(results)

    def set_lease_deadline(self, deadline: float) -> None:
        if self._fence is not None:
            self._fence.value = deadline

    def shutdown(self, wait: bool = True) -> None:
        self._command(("stop",))
        if wait and self._thread is not None:
            self._thread.join(timeout=5)

    def _command(self, command: tuple[Any, ...]) -> None:
        self._commands.append(command)
        try:
            self._wake_w.send(b"x")
        except (BlockingIOError, OSError):
            pass  # the buffer is full of wake-ups already

    # -- the dispatcher thread -------------------------------------------------------------------
    def _dispatch(self) -> None:
        try:
            while not self._stopping:
                readable = self._wait(self._next_timer())
                if self._wake_r in readable:
                    try:
                        while self._wake_r.recv(4096):
                            pass
                    except (BlockingIOError, OSError):
                        pass
                results: list[RunOutcome] = []
                with self._state:
                    self._run_commands()
                    for slot in self._slots:
                        if slot.conn is not None and slot.conn in readable:
                            self._receive(slot, results)
                    self._check_deadlines(results)
                    self._send_jobs()
                if results:
                    self._host.on_results(results)
        finally:
            for slot in self._slots:
                self._stop_slot(slot)

    def _wait(self, timeout: float) -> set[Any]:
        """The wake-up socket and the workers' pipes that have something to read (or were closed), waiting up
        to ``timeout`` seconds. One poll object, registered anew only when a worker was replaced: building a
        selector for every wait (``multiprocessing.connection.wait``) costs more than the wait."""
        ends = {self._wake_r.fileno(): self._wake_r}
        ends.update((s.conn.fileno(), s.conn) for s in self._slots if s.conn is not None)
        if ends.keys() != self._polled.keys():
            for fd in self._polled.keys() - ends.keys():
                self._poller.unregister(fd)
            for fd in ends.keys() - self._polled.keys():
                self._poller.register(fd, select.POLLIN)
        self._polled = ends
        return {ends[fd] for fd, _ in self._poller.poll(timeout * 1000)}

    def _run_commands(self) -> None:
        while self._commands:
            command = self._commands.popleft()
            kind = command[0]
            if kind == "stop":
                self._stopping = True

    def _cancel(self, run_id: str) -> None:
        for item in self._pending:
            if item[1].run_id == run_id:
                self._pending.remove(item)
                self._host.on_results([RunOutcome.ended(item[1], CANCELED, "canceled before it started")])
                return
        for slot in self._slots:
            for token, job in slot.inflight.items():
                if job.run_id == run_id and slot.conn is not None:
                    if slot.current.value == token:  # running: its process is killed
                        slot.cancel.value = token  # (the run's cancel flag: a task runtime stops its work)
                        if slot.stoppable is not None and slot.stoppable[0] == run_id:  # ... after a grace
                            slot.cancel_by[token] = SYSTEM_CLOCK.wall() + slot.stoppable[1]
                        else:
                            self._kill(slot, "cancel", token)
                    else:  # waiting in the worker: dropped there; if it starts meanwhile, killed then
                        self._send(slot, ("cancel", run_id))
                        slot.cancel_by[token] = SYSTEM_CLOCK.wall()
                    return

    def _receive(self, slot: _Slot, results: list[RunOutcome]) -> None:
        try:
            while slot.incoming is not None and slot.incoming.poll(0):  # set and cleared with ``conn``
                message = slot.conn.recv()
                kind = message[0]
                if kind == "results":
                    for outcome in message[1]:
                        self._forget(slot, outcome.run_id)
                        self.observe(outcome.ended_at - outcome.started_at)
                        results.append(outcome)
                elif kind == "deadline":
                    slot.deadline = None if message[2] is None else (message[1], message[2])
                elif kind == "stoppable":
                    slot.stoppable = None if message[2] is None else (message[1], message[2])
                elif kind == "killing":
                    slot.killing = (message[1], message[2])
                elif kind == "ready":
                    slot.ready = True
                    self._startup_failures = 0
        except (EOFError, OSError):
            self._on_death(slot, results)

    def _forget(self, slot: _Slot, run_id: str) -> None:
        for token, job in slot.inflight.items():
            if job.run_id == run_id:
                del slot.inflight[token]
                slot.cancel_by.pop(token, None)
                return

    def _on_death(self, slot: _Slot, results: list[RunOutcome]) -> None:
        """A worker is gone: account for every job it held."""
        process = slot.process
        if process is not None:
            process.join(timeout=1)
        code = process.exitcode if process is not None else None
        if not slot.ready and slot.kill_reason is None:
            self._startup_failed(slot, code, results)
            return
        running, finished = slot.current.value, slot.done.value
        reason = slot.killing[1] if slot.killing else slot.kill_reason
        if reason == "cancel" and slot.kill_token != running:
            reason = "bystander"  # the canceled job finished just before the kill: the next one was hit
        back = []
        for token, job in slot.inflight.items():
            if token == running:
                results.append(RunOutcome.ended(job, *_death_outcome(reason, code)))
            elif token <= finished:
                results.append(RunOutcome.ended(job, LOST, "finished, but its outcome was lost with its worker "
                                                           f"process ({describe_exit(code)})"))
            else:
                back.append((token, job))
        self._pending.extendleft(reversed(back))
        slot.reset()

    def _startup_failed(self, slot: _Slot, code: int | None, results: list[RunOutcome]) -> None:
        """A worker died before it was ready (its process could not start, or importing the code failed).
        Its jobs are sent again; after ``STARTUP_ATTEMPTS`` such deaths in a row they fail instead of
        respawning workers forever."""
        back = list(slot.inflight.items())
        slot.reset()
        self._startup_failures += 1
        if self._startup_failures < STARTUP_ATTEMPTS:
            self._pending.extendleft(reversed(back))
            return
        error = (f"worker processes die while starting ({describe_exit(code)}; their error is on this process's "
                 "stderr). A module that starts runs or backfills when imported must keep that code under "
                 "`if __name__ == \"__main__\":`")
        for _, job in back + list(self._pending):
            results.append(RunOutcome.ended(job, FAILED, error))
        self._pending.clear()
        self._startup_failures = 0  # new jobs may try again (the code may have been fixed)

    def _check_deadlines(self, results: list[RunOutcome]) -> None:
        now = SYSTEM_CLOCK.wall()
        fence = self._fence.value
        for slot in self._slots:
            if slot.conn is None or not slot.inflight:
                continue
            running = slot.current.value
            if 0 < fence < now - 0.5 and running:  # the worker should have stopped itself by now
                self._kill(slot, "fence")
            elif slot.deadline is not None and now > slot.deadline[1] + KILL_GRACE_SECONDS and running:
                self._kill(slot, "timeout")  # the task ignored its timeout alarm (stuck in C code?)
            elif running in slot.cancel_by and now >= slot.cancel_by[running]:
                self._kill(slot, "cancel", running)  # canceled while queued in the worker, started meanwhile
            else:
                continue
            self._receive(slot, results)  # what it sent before dying, then its death
            if slot.conn is not None:
                self._on_death(slot, results)

    def _send_jobs(self) -> bool:
        """Hand pending jobs to workers with room; whether a worker had to be started for them."""
        if not self._pending:
            return False
        spawned = False
        mean = self._mean_seconds
        depth = 1 if mean is None or mean > self.queue_target_seconds else \
            max(1, math.ceil(self.capacity / self.max_workers))
        for slot in sorted(self._slots, key=lambda s: len(s.inflight)):
            room = depth - len(slot.inflight)
            if room <= 0 or slot.doomed or not self._pending:
                continue
            if slot.conn is None:
                self._spawn(slot)
                spawned = True
            batch = [self._pending.popleft() for _ in range(min(room, len(self._pending)))]
            slot.inflight.update(batch)
            self._send(slot, ("jobs", batch))
        return spawned

    def _send(self, slot: _Slot, message: tuple[Any, ...]) -> None:
        try:
            slot.conn.send(message)
        except (OSError, BrokenPipeError):
            pass  # it died: its pipe reports EOF to the next receive

    def _next_timer(self) -> float:
        timeout = IDLE_WAIT
        now = SYSTEM_CLOCK.wall()
        fence = self._fence.value
        if fence > 0 and any(s.inflight for s in self._slots):
            timeout = min(timeout, max(0.0, fence + 0.5 - now))
        for slot in self._slots:
            if slot.deadline is not None:
                timeout = min(timeout, max(0.0, slot.deadline[1] + KILL_GRACE_SECONDS - now))
            for at in slot.cancel_by.values():
                timeout = min(timeout, max(0.0, at - now))
        return timeout

    # -- worker processes --------------------------------------------------------------------------
    def _spawn(self, slot: _Slot) -> None:
        parent_conn, child_conn = self._ctx.Pipe()
        slot.current = self._ctx.Value("q", 0, lock=False)
        slot.done = self._ctx.Value("q", 0, lock=False)
        slot.cancel = self._ctx.Value("q", 0, lock=False)
        slot.process = self._ctx.Process(target=worker_main, name="anachron-worker", daemon=True,
                                         args=(child_conn, self._settings, self._fence, slot.current, slot.done,
                                               slot.cancel))
        slot.process.start()
        child_conn.close()
        slot.conn = parent_conn
        slot.incoming = incoming(parent_conn)

    def _kill(self, slot: _Slot, reason: str, token: int | None = None) -> None:
        slot.kill_reason, slot.kill_token = reason, token
        if slot.process is not None and slot.process.pid is not None:
            _kill_group(slot.process.pid)

    def _stop_slot(self, slot: _Slot) -> None:
        if slot.process is None:
            return
        if slot.inflight:
            _kill_group(slot.process.pid)
        else:
            self._send(slot, ("stop",))
        slot.reset()


class _Slot:
    """One worker process, as the dispatcher sees it."""

    def __init__(self, index: int):
        self.index = index
        self.process: Any = None
        self.conn: Any = None
        self.incoming: Any = None  # a poll object on ``conn`` (``worker.incoming``)
        self.current: Any = None
        self.done: Any = None
        self.cancel: Any = None  # the token of a running job canceled cooperatively
        self.inflight: OrderedDict[int, RunJob] = OrderedDict()
        self.deadline: tuple[str, float] | None = None
        self.stoppable: tuple[str, float] | None = None  # (run id, grace): inside a task runtime's call
        self.cancel_by: dict[int, float] = {}
        self.killing: tuple[str, str] | None = None
        self.kill_reason: str | None = None
        self.kill_token: int | None = None
        self.ready = False
        self.doomed = False  # killed by ``abandon``, not reaped yet

    def reset(self) -> None:
        if self.conn is not None:
            try:
                self.conn.close()
            except OSError:
                pass
        self.process = self.conn = self.incoming = None
        self.inflight = OrderedDict()
        self.deadline = self.stoppable = self.killing = self.kill_reason = self.kill_token = None
        self.cancel_by = {}
        self.ready = False
        self.doomed = False  # killed by ``abandon``, not reaped yet


def _death_outcome(reason: str | None, code: int | None) -> tuple[str, str]:
    if reason == "cancel":
        return CANCELED, "canceled: its worker process was killed"
    if reason == "timeout":
        return FAILED, "a task outlived its timeout; its worker process was killed"
    if reason in ("fence", "abandon"):
        return LOST, "stopped: the coordinator's lease lapsed before it finished"
    if reason == "bystander":
        return LOST, "stopped: its worker process was killed to cancel the run before it"
    return FAILED, f"worker process died while running the run ({describe_exit(code)})"


def describe_exit(code: int | None) -> str:
    """A process's end in words: ``killed by signal 9 (SIGKILL)``, ``exit code 3``."""
    if code is None:
        return "exit status unknown"
    if code < 0:
        try:
            name = signal.Signals(-code).name
        except ValueError:
            name = "unknown signal"
        return f"killed by signal {-code} ({name})"
    return f"exit code {code}"


def _kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
