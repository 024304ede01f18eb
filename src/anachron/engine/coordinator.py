"""The coordinator: one loop per process that turns plans and queues into running work.

Each tick it records finished runs, follows pause/cancel/stop decisions, materialises the next window
of each backfill it leads, claims queued runs under every limit and hands them to the executor —
all in one short write transaction. It wakes on events (a run finished, a run was submitted) and
otherwise checks storage every ``poll_seconds`` for what other processes changed.
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Callable

from ..models import CANCELED, COMPLETED, FAILED, IN_PROGRESS, PAUSED, QUEUED, REQUESTED, SUCCESS
from ..planning import BackfillPlan
from ..runtime import RunOutcome, importing_in_worker
from ..storage.codec import loads
from .runs import job_from_row, materialize_rows

log = logging.getLogger("anachron.coordinator")
BATCH_WAIT_SECONDS = 0.002


@dataclass
class LedBackfill:
    """A backfill this process leads: its rebuilt plan and its rules."""

    backfill_id: str
    plan: BackfillPlan
    request: dict
    max_concurrency: int  # the effective one: never above what our executor can take
    row: object = None  # the backfill's row as last read (cursor kept current in memory)
    window: int = field(init=False)

    def __post_init__(self) -> None:
        self.window = self.max_concurrency + 8  # runs materialised ahead: running + a short queue


class Coordinator:
    def __init__(self, repo, poll_seconds: float = 0.25):
        self.repo = repo
        self.executor = repo.executor
        self.clock: Callable[[], float] = repo._now_ts
        self.lease_seconds = repo.lease_seconds
        self.poll_seconds = min(poll_seconds, self.lease_seconds / 4)
        self.worker_id = f"{socket.gethostname()[:40]}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self._wake = threading.Event()
        self._changed = threading.Condition()
        self._results: deque[RunOutcome] = deque()
        self._in_executor: dict[str, int] = {}
        self._led: dict[str, LedBackfill] = {}
        self._adopt_backfills: set[str] = set()
        self._adopt_runs: set[str] = set()
        self._cancel_local: set[str] = set()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._next_renew = 0.0
        self._next_slow = 0.0
        self._next_reap = 0.0
        self._control_dirty = False
        self.run_version = 0
        self._backfills_changed = False
        self._lock = threading.Lock()
        self.version = 0

    @property
    def storage(self):
        return self.repo.storage

    # -- life cycle -----------------------------------------------------------------------------
    def ensure_started(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            if importing_in_worker():
                raise RuntimeError(
                    "a module that starts runs or backfills when it is imported was imported by a worker process "
                    "(to find its workflows); put that code under `if __name__ == \"__main__\":`")
            now = self.clock()
            with self.storage.write() as s:
                s.register_worker(self.worker_id, socket.gethostname(), os.getpid(), now, now + self.lease_seconds)
            self._next_renew = now + self.lease_seconds / 3
            self.executor.start(self._on_result, self.repo._workflow_for_job, self.repo._pool_gate())
            self._thread = threading.Thread(target=self._loop, name="anachron-coordinator", daemon=True)
            self._thread.start()
            # On a normal interpreter exit, hand our backfills back at once rather than after the lease.
            atexit.register(self.stop)

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stopping

    def stop(self) -> None:
        with self._lock:
            if self._thread is None:
                return
            self._stopping = True
        self._wake.set()
        self._thread.join(timeout=10)
        atexit.unregister(self.stop)
        self.executor.shutdown(wait=False)
        try:
            with self.storage.write() as s:
                s.release_backfills(self.worker_id)
                s.remove_worker(self.worker_id)
        except Exception:  # noqa: BLE001 - best effort at shutdown; the lease expires anyway
            log.debug("could not release leases", exc_info=True)

    def wake(self, control: bool = False) -> None:
        """Run a tick now; ``control=True`` after a pause/resume/cancel, so led backfills are re-read."""
        if control:
            self._control_dirty = True
        self._wake.set()

    def lead(self, backfill_id: str) -> None:
        """Ask to coordinate a backfill (taking it over if its leader is gone)."""
        self.ensure_started()
        self._adopt_backfills.add(backfill_id)
        self._wake.set()

    def adopt_run(self, run_id: str) -> None:
        self.ensure_started()
        self._adopt_runs.add(run_id)
        self._wake.set()

    def cancel_local(self, run_id: str) -> None:
        self.executor.cancel(run_id)

    def leads(self, backfill_id: str) -> bool:
        return backfill_id in self._led

    def wait_for_change(self, version: int, timeout: float, runs: bool = False) -> int:
        """Block until a backfill (or, with ``runs``, any run) changed state, or ``timeout``.

        Returns the new version number to pass next time."""
        with self._changed:
            if (self.run_version if runs else self.version) == version:
                self._changed.wait(timeout)
            return self.run_version if runs else self.version

    # -- the loop -------------------------------------------------------------------------------
    def _on_result(self, outcome: RunOutcome) -> None:
        self._results.append(outcome)
        self._wake.set()

    def _loop(self) -> None:
        failures = 0
        while not self._stopping:
            self._wake.clear()
            try:
                changed = self.tick(self.clock())
                failures = 0
            except Exception:  # noqa: BLE001 - a storage hiccup must not kill coordination
                failures += 1
                log.exception("coordinator tick failed (%d in a row)", failures)
                changed = True
                self._wake.wait(min(0.1 * 2 ** failures, 5))
            if changed or self._backfills_changed:
                with self._changed:
                    self.run_version += 1
                    if self._backfills_changed:
                        self.version += 1
                        self._backfills_changed = False
                    self._changed.notify_all()
            if not self._results:
                self._wake.wait(self.poll_seconds)
            if 0 < len(self._results) < len(self._in_executor) // 2:
                # More runs are about to finish: gather a few before the next transaction.
                time.sleep(BATCH_WAIT_SECONDS)

    def tick(self, now: float) -> bool:
        """One round; returns True when runs changed state (run waiters look again). Backfill-level
        changes set ``_backfills_changed`` for backfill waiters."""
        outcomes = []
        while self._results:
            outcome = self._results.popleft()
            self._in_executor.pop(outcome.run_id, None)
            outcomes.append({"run_id": outcome.run_id, "attempt": outcome.attempt, "status": outcome.status,
                             "error": outcome.error, "ended_at": outcome.ended_at.timestamp(),
                             "started_at": outcome.started_at.timestamp(),
                             "logs": outcome.logs, "failed_partitions": outcome.failed_partitions})
        changed = bool(outcomes)
        to_kill: list[str] = []
        slow = now >= self._next_slow
        with self.storage.write() as s:
            if now >= self._next_renew:
                if not s.renew_worker(self.worker_id, now + self.lease_seconds):
                    s.register_worker(self.worker_id, socket.gethostname(), os.getpid(), now, now + self.lease_seconds)
                self._next_renew = now + self.lease_seconds / 3
            s.finish_runs(outcomes, now)
            if self._adopt_backfills or self._adopt_runs:
                changed |= self._adopt(s, now)
            if slow:  # what other processes may have asked of us: checked every poll interval
                self._next_slow = now + self.poll_seconds
                to_kill.extend(s.cancel_requested_runs(self.worker_id))
                s.release_orphan_slots()
                if now >= self._next_reap:  # forget processes whose lease ran out long ago
                    s.expire_dead_workers(now - 10 * self.lease_seconds)
                    self._next_reap = now + self.lease_seconds
            if to_kill:
                s.finish_runs([{"run_id": r, "status": CANCELED, "error": "canceled"} for r in to_kill], now)
                changed = True
            if self._led:
                refresh = slow or self._control_dirty or any(o["status"] != SUCCESS for o in outcomes)
                self._control_dirty = False
                changed |= self._advance_backfills(s, now, to_kill, refresh)
            capacity = self.executor.capacity - len(self._in_executor)
            claimed = s.claim_runs(self.worker_id, now, self.repo._queue_limits(), capacity,
                                   self.repo._claimable) if capacity > 0 else []
        for run_id in to_kill:
            self.executor.cancel(run_id)
        for row in claimed:
            self._in_executor[row.run_id] = row.attempt
            self.executor.submit(job_from_row(self.repo, row))
        return changed or bool(claimed)

    def _adopt(self, s, now: float) -> bool:
        live = s.live_worker_ids(now)
        changed = False
        for backfill_id in list(self._adopt_backfills):
            row = s.backfill_row(backfill_id)
            self._adopt_backfills.discard(backfill_id)
            if row is None or row.status in (COMPLETED, FAILED, CANCELED) or backfill_id in self._led:
                continue
            if not set(loads(row.workflows)) <= self.repo._claimable:
                log.warning("not leading backfill %s: this repository does not define all its workflows",
                            backfill_id)
                continue
            if not s.acquire_backfill(backfill_id, self.worker_id, live, now):
                self._adopt_backfills.add(backfill_id)  # someone alive leads it; try again later
                continue
            s.adopt_runs(self.worker_id, now, live, backfill_ids=[backfill_id])
            request = loads(row.request)
            plan = self.repo._build_plan(request["plan"])
            self._led[backfill_id] = LedBackfill(backfill_id, plan, request,
                                                 min(row.max_concurrency, self.executor.capacity))
            if row.status == REQUESTED:
                s.update_backfill(backfill_id, status=IN_PROGRESS, updated_at=now)
            self._backfills_changed = changed = True
        if self._adopt_runs:
            runs = list(self._adopt_runs)
            self._adopt_runs.clear()
            changed |= s.adopt_runs(self.worker_id, now, live, run_ids=runs) > 0
        return changed

    def _advance_backfills(self, s, now: float, to_kill: list[str], refresh: bool) -> bool:
        changed = False
        if refresh or any(led.row is None or led.row.cursor >= led.row.total_runs for led in self._led.values()):
            rows = {r.backfill_id: r for r in s.backfills_owned_by(self.worker_id)}
            for backfill_id, led in list(self._led.items()):
                row = rows.get(backfill_id)
                led.row = SimpleNamespace(**row._mapping) if row is not None else None
                if led.row is None:  # someone else took it over (our lease had lapsed)
                    del self._led[backfill_id]
                    changed = True
        active = s.active_counts(self.worker_id)
        for backfill_id, led in list(self._led.items()):
            row = led.row
            n_active = active.get(backfill_id, 0)
            if row.status == CANCELED or row.cancel_requested:
                running = [r.run_id for r in s.active_runs_of(backfill_ids=[backfill_id])]
                s.finish_runs([{"run_id": r, "status": CANCELED, "error": "backfill canceled"} for r in running], now)
                to_kill.extend(running)
                self._finalize(s, led, CANCELED, now)
                changed = True
                continue
            if row.status == PAUSED:
                continue
            stop = request_stops(led.request, row)
            if stop:
                queued = [r.run_id for r in s.active_runs_of(backfill_ids=[backfill_id]) if r.status == QUEUED]
                if queued:
                    s.finish_runs([{"run_id": r, "status": CANCELED, "error": "stopped after a failure"}
                                   for r in queued], now)
                    n_active -= len(queued)
                    changed = True
            elif row.cursor < row.total_runs and n_active < led.window:
                count = min(led.window - n_active, row.total_runs - row.cursor)
                # Compare-and-set first: a leader that lost its lease writes nothing (the unique
                # idempotency key would stop a duplicate run anyway).
                if not s.advance_cursor(backfill_id, self.worker_id, row.cursor, row.cursor + count, now):
                    self._control_dirty = True  # paused, canceled or taken over meanwhile: look again
                    continue
                s.insert_runs(materialize_rows(self.repo, led, row, count, now))
                row.cursor += count
                changed = True
                continue
            if n_active == 0 and (stop or row.cursor >= row.total_runs):
                self._finalize(s, led, None, now, stopped=stop)
                changed = True
        return changed

    def _finalize(self, s, led: LedBackfill, status: str | None, now: float, stopped: bool = False) -> None:
        """End a backfill: its status (decided from its counters when ``None``), counts and leadership."""
        row = s.backfill_row(led.backfill_id)
        if status is None:
            status = FAILED if row.failed or stopped else COMPLETED
            if row.canceled and status == COMPLETED:
                status = CANCELED
        canceled = max(0, row.total_partitions - row.completed - row.failed)
        error = row.error
        if status == FAILED and not error:
            error = f"{row.failed} partition(s) failed"
        s.update_backfill(led.backfill_id, status=status, canceled=canceled, ended_at=now, updated_at=now,
                          owner=None, error=error)
        del self._led[led.backfill_id]
        self._backfills_changed = True


def request_stops(request: dict, row) -> bool:
    return request.get("failure_policy") == "stop_on_failure" and row.failed > 0

