"""The coordinator: one loop per process that turns plans and queues into running work.

Each tick, in one write transaction: record what the executor reported, follow pause/cancel decisions,
create the next window of runs of each backfill it leads, and start queued runs under every limit (the
choice is ``queue.select_runs``'s). It wakes on events (a run finished, a run was submitted) and otherwise
checks storage every ``poll_seconds`` for what other processes changed.

Failure rules:
- Outcomes stay pending in memory until the transaction that records them commits. Transactions are
  retried on transient errors (``Storage.run``); a tick that still fails is retried by the loop with
  backoff, its outcomes still pending. Memory (cursors, counts) is re-read from storage after a failure.
- The process's lease is renewed every ``lease_seconds / 3``. Leases are about real time shared with other
  processes: they (and worker liveness) use the wall clock, not the engine's clock (which tests may drive).
  The executor is told the lease deadline
  and stops its work by then unless it is moved on. A renewal that finds the lease lapsed (the process
  stalled) abandons every run in the executor — their outcomes are never written — takes back its
  runs as new attempts, and carries on.
- An error while creating a backfill's runs (a changed definition, a key the database refuses) ends that
  backfill as ``failed`` with the error, once; other backfills are not affected.
"""

from __future__ import annotations

import atexit
import heapq
import logging
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..loading import importing_in_worker
from ..models import CANCELED, FAILED, PAUSED, RUNNING, SUCCESS
from ..planning import PlanChanged
from ..records import EMPTY_TAGS, InFlight, NewRun, Outcome, QueuedRun, RunRecord, WorkflowRef
from ..runtime import LOST, RunJob, RunOutcome
from ..schedules import SCHEDULE_KEY_PREFIX
from ..storage import SavepointNeeded, StorageRejected, StorageUnavailable, describe_error
from . import lifecycle
from .context import EngineContext
from .jobs import job_from_record
from .led import LedBackfill, rebuild_plan
from .queue import select_runs

if TYPE_CHECKING:
    from ..storage.session import Session

log = logging.getLogger("anachron.coordinator")
BATCH_WAIT_SECONDS = 0.002
GATHER_MIN_INFLIGHT = 16  # with fewer runs in flight, a tick does not wait for more results
QUEUE_SCAN_MIN = 64
IDLE_POLL_SECONDS = 1.0  # how often an idle coordinator looks at storage (runs in flight: poll_seconds)
CLAIM_RETRY_SECONDS = 0.003  # after another process held the claim lock: how soon to claim again
TICK_PATIENCE = 2.0  # seconds one tick's transaction is retried before the loop takes over


class LeaseLost(Exception):
    """The renewal found this process's lease lapsed: another process may have taken its work."""


@dataclass
class _Tick:
    """What a tick's transaction decided that takes effect only once it has committed."""

    changed: bool = False
    jobs: list[RunJob] = field(default_factory=list)  # to hand to the executor
    to_kill: list[str] = field(default_factory=list)  # to stop in the executor
    ended: list[str] = field(default_factory=list)  # backfills no longer led
    new: list[tuple[LedBackfill, list[NewRun]]] = field(default_factory=list)  # runs to create this tick
    adopted: set[str] = field(default_factory=set)  # adoption requests dealt with
    adopted_runs: set[str] = field(default_factory=set)
    claim_skipped: bool = False  # another process held the queue's claim lock


class Coordinator:
    def __init__(self, engine: EngineContext, poll_seconds: float = 0.25):
        self.engine = engine
        self.executor = engine.executor
        self.worker_id = engine.identity.worker_id
        self.lease_seconds = engine.lease_seconds
        self.poll_seconds = min(poll_seconds, self.lease_seconds / 4)
        self.fence_margin = min(2.0, self.lease_seconds * 0.1)
        self._wake = threading.Event()
        self._due: list[float] = []  # engine-clock times at which a deferred run becomes startable (a heap)
        self._changed = threading.Condition()
        self._lock = threading.Lock()
        self._results: list[RunOutcome] = []
        self._results_lock = threading.Lock()
        self._claim_again = False
        self._inflight: dict[str, InFlight] = {}
        self._led: dict[str, LedBackfill] = {}
        self._adopt_backfills: set[str] = set()
        self._adopt_runs: set[str] = set()
        self._warned: set[str] = set()
        self._thread: threading.Thread | None = None
        self._stopping = False
        self._lease_expires = 0.0
        self._next_renew = 0.0
        self._next_slow = 0.0
        self._next_reap = 0.0
        self._refresh = False  # re-read led backfills from storage on the next tick
        self._careful = False  # set a savepoint per backfill whose runs are created (after a refusal)
        self._failures = 0
        self._last_error = ""
        self.run_version = 0
        self.version = 0
        self._backfills_changed = False

    @property
    def storage(self) -> Any:
        return self.engine.storage

    # -- life cycle -----------------------------------------------------------------------------
    def ensure_started(self) -> None:
        with self._lock:
            if self._thread is not None:
                return
            if importing_in_worker():
                raise RuntimeError(
                    "a module that starts runs or backfills when it is imported was imported by a worker process "
                    "(to find its workflows); put that code under `if __name__ == \"__main__\":`")
            self._register(time.time())
            self.executor.start(_Host(self))
            self.executor.set_lease_deadline(self._lease_expires - self.fence_margin)
            self._thread = threading.Thread(target=self._loop, name="anachron-coordinator", daemon=True)
            self._thread.start()
            # On a normal interpreter exit, hand our backfills back at once rather than after the lease.
            atexit.register(self.stop)

    def _register(self, now: float) -> None:
        ident = self.engine.identity
        expires = now + self.lease_seconds
        self.storage.run(lambda s: s.register_worker(ident.worker_id, ident.hostname, ident.pid, now, expires))
        self._lease_expires = expires
        self._next_renew = now + self.lease_seconds / 3

    @property
    def running(self) -> bool:
        return self._thread is not None and not self._stopping

    def stop(self) -> None:
        with self._lock:
            if self._thread is None or self._stopping:
                return
            self._stopping = True
        self._wake.set()
        self._thread.join(timeout=10)
        atexit.unregister(self.stop)
        with self._results_lock:  # what ran to its end by itself (not what the shutdown below stops)
            reported = [o for o in self._results if o.status != LOST
                        and self._inflight.get(o.run_id, _NONE).attempt == o.attempt]
        self.executor.shutdown(wait=bool(self._inflight))  # in-flight work stopped before it is handed back
        try:
            handed = self.storage.run(lambda s: self._release(s, reported), patience=1.0)
        except Exception:  # noqa: BLE001 - best effort at shutdown; the lease expires anyway
            log.debug("could not release leases", exc_info=True)
            return
        solo = [run_id for run_id, backfill_id in handed if backfill_id is None]
        if solo:  # runs submitted with block=False (or taken over) that had not finished
            sys.stderr.write(f"anachron: {len(solo)} unfinished run(s) handed back, queued for a daemon or the next "
                             f"process waiting on them: {', '.join(solo)}\n")

    def _release(self, s: Session, reported: list[RunOutcome]) -> list[tuple[str, str | None]]:
        """At a clean stop: record what the executor had reported, hand every unfinished run back to the
        queue (no owner), let go of the backfills and of this process's lease."""
        now = self.engine.now_ts()
        s.record_outcomes([o.record() for o in reported], self.worker_id, self._inflight, now)
        handed = s.hand_back(self.worker_id, now)
        s.release_backfills(self.worker_id)
        s.remove_worker(self.worker_id)
        return handed

    def wake(self, control: bool = False) -> None:
        """Run a tick now; ``control=True`` after a pause/resume/cancel, so led backfills are re-read."""
        if control:
            self._refresh = True
        self._wake.set()

    def wake_at(self, when: float) -> None:
        """Tick at ``when`` (engine-clock seconds) too: a run deferred until then may start (``repo.run`` with a
        future ``scheduled_time``)."""
        with self._lock:
            heapq.heappush(self._due, when)
        self._wake.set()

    def _until_due(self, wait: float) -> float:
        """``wait``, shortened to the next deferred run's time (those passed are forgotten)."""
        now = self.engine.now_ts()
        with self._lock:
            while self._due and self._due[0] <= now:
                heapq.heappop(self._due)
            return min(wait, self._due[0] - now) if self._due else wait

    def lead(self, backfill_id: str) -> None:
        """Ask to coordinate a backfill (taking it over if its leader is gone)."""
        self.ensure_started()
        with self._lock:
            self._adopt_backfills.add(backfill_id)
        self._wake.set()

    def adopt_run(self, run_id: str) -> None:
        self.ensure_started()
        with self._lock:
            self._adopt_runs.add(run_id)
        self._wake.set()

    def cancel_local(self, run_ids: list[str] | tuple[str, ...]) -> None:
        for run_id in run_ids:
            self.executor.cancel(run_id)

    def leads(self, backfill_id: str) -> bool:
        return backfill_id in self._led

    def wait_for_change(self, version: int, timeout: float, runs: bool = False) -> int:
        """Block until a backfill (or, with ``runs``, any run) changed state, or ``timeout``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while (self.run_version if runs else self.version) == version:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._changed.wait(left)  # woken for any change: only a change of ours ends the wait
            return self.run_version if runs else self.version

    # -- the loop -------------------------------------------------------------------------------
    def _on_results(self, outcomes: list[RunOutcome]) -> None:
        with self._results_lock:
            self._results.extend(outcomes)
        self._wake.set()

    def _loop(self) -> None:
        while not self._stopping:
            self._wake.clear()
            try:
                changed = self.tick(self.engine.now_ts())
                if self._failures:
                    log.warning("coordinator: storage works again after %d failed attempt(s)", self._failures)
                self._failures = 0
            except LeaseLost:
                changed = self._recover_lease()
            except Exception as exc:  # noqa: BLE001 - a storage hiccup must not kill coordination
                self._failed(exc)
                self._wake.wait(min(0.05 * 2 ** self._failures, 2.0))
                continue
            if changed or self._backfills_changed:
                with self._changed:
                    self.run_version += 1
                    if self._backfills_changed:
                        self.version += 1
                        self._backfills_changed = False
                    self._changed.notify_all()
            self._gather()

    def _gather(self) -> None:
        """Wait for something to do: a result, a request, or the poll interval. While fewer than half the
        runs in flight have reported, wait up to ``BATCH_WAIT_SECONDS`` more, so one transaction records
        many outcomes (and starts as many runs) instead of one each."""
        if self._claim_again:  # another process held the claim lock: claim again in a moment
            self._claim_again = False
            self._wake.wait(CLAIM_RETRY_SECONDS)
            return
        if not self._results:  # idle (nothing in flight, nothing led): look at storage less often
            self._wake.wait(self._until_due(self.poll_seconds if self._inflight or self._led else IDLE_POLL_SECONDS))
        if len(self._inflight) < GATHER_MIN_INFLIGHT:
            return  # few runs in flight: each result is worth a tick at once (latency is the cost here)
        deadline = time.monotonic() + BATCH_WAIT_SECONDS
        while not self._stopping and 0 < len(self._results) < len(self._inflight) // 2:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._wake.clear()
            self._wake.wait(remaining)

    def _failed(self, exc: Exception) -> None:
        """Log a failed tick: the first with its traceback, repeats once in a while (never a flood)."""
        self._failures += 1
        self._refresh = True
        text = describe_error(exc) if not isinstance(exc, StorageUnavailable) else str(exc)
        if text != self._last_error or self._failures in (1, 10) or self._failures % 100 == 0:
            log.warning("coordinator: a tick failed (%d in a row), retrying: %s", self._failures, text,
                        exc_info=self._failures == 1 or text != self._last_error)
        self._last_error = text

    # -- one tick -------------------------------------------------------------------------------
    def tick(self, now: float) -> bool:
        """One round; returns True when runs changed state (run waiters look again). Backfill-level
        changes set ``_backfills_changed`` for backfill waiters."""
        wall = time.time()
        if wall >= self._next_renew:
            self._renew(wall)
        with self._results_lock:
            pending = list(self._results)
        outcomes = [o for o in pending if self._inflight.get(o.run_id, _NONE).attempt == o.attempt]
        finished = [o for o in outcomes if o.status != LOST]
        lost = [o for o in outcomes if o.status == LOST]
        capacity = self.executor.capacity - len(self._inflight) + len(outcomes)
        attempts = 0

        def transaction(s: Session) -> _Tick:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # a previous attempt rolled back: what memory says may not have happened
                self._refresh = True
            return self._tick(s, now, finished, lost, capacity)

        try:
            result = self.storage.run(transaction, patience=TICK_PATIENCE, pinned=True)
        except SavepointNeeded:  # a backfill's runs were refused: again, with a savepoint per backfill
            self._careful = True
            try:
                result = self.storage.run(transaction, patience=TICK_PATIENCE, pinned=True)
            finally:
                self._careful = False
        # committed: forget what was recorded, drop what ended, hand over what was started
        with self._results_lock:
            done = {id(o) for o in pending}
            self._results = [o for o in self._results if id(o) not in done]
        for o in pending:
            current = self._inflight.get(o.run_id)
            if current is not None and current.attempt == o.attempt:
                del self._inflight[o.run_id]
        for backfill_id in result.ended:
            self._led.pop(backfill_id, None)
        with self._lock:
            self._adopt_backfills -= result.adopted
            self._adopt_runs -= result.adopted_runs
        for run_id in result.to_kill:
            self.executor.cancel(run_id)
        if result.jobs and time.time() >= self._lease_expires - self.fence_margin:
            # This process stalled inside the tick and its lease may be gone: do not start these runs.
            # They go back to the queue (if the lease is gone, another process or our lease recovery does
            # that), and the next tick renews the lease first.
            dropped, result.jobs = result.jobs, []
            self._next_renew = 0.0
            try:
                self.storage.run(lambda s: s.requeue([j.run_id for j in dropped],
                                                     {j.run_id: j.attempt for j in dropped}, self.worker_id),
                                 patience=TICK_PATIENCE)
            except Exception as exc:  # noqa: BLE001 - the lease recovery takes them back
                self._failed(exc)
        if result.claim_skipped:
            self._claim_again = True
        if result.jobs:
            for job in result.jobs:
                self._inflight[job.run_id] = InFlight(job.attempt, job.backfill_id, max(1, len(job.partition_keys)))
            self.executor.submit(result.jobs)
        return result.changed or bool(pending) or bool(result.jobs)

    def _tick(self, s: Session, now: float, finished: list[RunOutcome], lost: list[RunOutcome],
              capacity: int) -> _Tick:
        tick = _Tick()
        recorded = s.record_outcomes([o.record() for o in finished], self.worker_id, self._inflight, now)
        if lost:
            s.requeue([o.run_id for o in lost], {o.run_id: o.attempt for o in lost}, self.worker_id)
        for o in recorded:
            led = self._led.get(self._inflight[o.run_id].backfill_id or "")
            if led is not None:
                led.active -= 1
        if time.monotonic() >= self._next_slow:  # what other processes may have asked of us (real time)
            self._next_slow = time.monotonic() + self.poll_seconds
            self._refresh = True
            asked = s.cancel_requested_runs(self.worker_id)
            if asked:
                s.finish_runs([Outcome(r, CANCELED, "canceled") for r in asked], now)
                tick.to_kill.extend(asked)
                tick.changed = True
            s.release_orphan_slots()
            wall = time.time()
            if wall >= self._next_reap:  # forget processes whose lease ran out long ago
                s.expire_dead_workers(wall - 10 * self.lease_seconds)
                self._next_reap = wall + self.lease_seconds
        if self._led and (self._refresh or any(o.status != SUCCESS for o in recorded)):
            self._reread(s, tick)
        if self._adopt_backfills or self._adopt_runs:
            self._adopt(s, now, tick)
        if self._led:
            self._advance(s, now, tick)
        started = self._claim(s, now, capacity, tick) if capacity > 0 else set()
        self._create_runs(s, now, tick, started)
        return tick

    # -- leading backfills ----------------------------------------------------------------------
    def _reread(self, s: Session, tick: _Tick) -> None:
        """Bring led backfills up to date with storage (pauses, cancels, takeovers, counts)."""
        self._refresh = False
        owned = {r.backfill_id: r for r in s.backfills_owned_by(self.worker_id)}
        active = s.active_counts(self.worker_id)
        for backfill_id, led in self._led.items():
            record = owned.get(backfill_id)
            if record is None:  # someone else took it over (our lease had lapsed)
                tick.ended.append(backfill_id)
                self._backfills_changed = tick.changed = True
                continue
            led.record, led.cursor, led.active = record, record.cursor, active.get(backfill_id, 0)

    def _advance(self, s: Session, now: float, tick: _Tick) -> None:
        capacity = self.executor.capacity
        for backfill_id, led in self._led.items():
            record = led.record
            if backfill_id in tick.ended:
                continue
            if record.status == CANCELED or record.cancel_requested:
                self._stop_all(s, backfill_id, "backfill canceled", now, tick)
                self._end(s, led, lifecycle.ending(self._fresh(s, led), canceled=True), now, tick)
                continue
            if record.status == PAUSED:
                continue
            stop = lifecycle.stops(led.stored.failure_policy, record.failed)
            if stop:
                queued = [r.run_id for r in s.active_runs(backfill_ids=[backfill_id]) if r.status != RUNNING]
                if queued:
                    s.finish_runs([Outcome(r, CANCELED, "stopped after a failure") for r in queued], now)
                    led.active -= len(queued)
                    for run_id in queued:
                        led.jobs.pop(run_id, None)
                    tick.changed = True
            elif led.cursor < record.total_runs and led.refill(capacity):
                count = led.refill(capacity)
                try:  # written (and maybe started) by _create_runs, once the queue has had its say
                    rows = led.next_runs(count, self.engine.registry, self.worker_id, now, self.engine.log_limit)
                except (ValueError, LookupError, TypeError) as exc:  # the plan (a changed definition) or a key
                    self._fail(s, led, f"could not create runs {led.cursor + 1}..{led.cursor + count} of "
                                       f"{record.total_runs}: {exc}", now, tick)
                    continue
                tick.new.append((led, rows))
                tick.changed = True
                continue
            if led.active <= 0 and (stop or led.cursor >= record.total_runs):
                self._end(s, led, lifecycle.ending(self._fresh(s, led), stopped=stop), now, tick)

    def _stop_all(self, s: Session, backfill_id: str, why: str, now: float, tick: _Tick) -> None:
        active = s.active_runs(backfill_ids=[backfill_id])
        s.finish_runs([Outcome(r.run_id, CANCELED, why) for r in active], now)
        tick.to_kill.extend(r.run_id for r in active)

    def _create_runs(self, s: Session, now: float, tick: _Tick, started: set[str]) -> None:
        """Write the runs ``_advance`` built, each backfill's together: its cursor moved (only if this
        process still leads it and it is still in progress) and its rows inserted — those the queue chose
        (``started``) as running. An error a retry cannot cure ends that backfill as failed. No savepoint
        is set (two statements a tick) until a refusal happens: the tick is then run again with one per
        backfill, so only the backfill at fault fails."""
        for led, rows in tick.new:
            old, count = led.cursor, len(rows)
            rows = [r._replace(status=RUNNING, started_at=now) if r.run_id in started else r for r in rows]
            shared = [r for r in rows if r.idempotency_key and r.idempotency_key.startswith(SCHEDULE_KEY_PREFIX)]
            try:
                with s.savepoint(lazy=not self._careful):
                    if not s.advance_cursor(led.backfill_id, self.worker_id, old, old + count, now):
                        self._refresh = True  # paused, canceled or taken over meanwhile: look again
                        self._forget_rows(led, rows, tick)
                        continue
                    if shared:
                        self._insert_shared(s, led, rows, shared, now, tick)
                    else:
                        s.insert_runs(rows)
            except StorageRejected as exc:
                self._forget_rows(led, rows, tick)
                self._fail(s, led, f"could not create runs {old + 1}..{old + count} of {led.record.total_runs}: "
                                   f"{exc}", now, tick)
                continue
            led.cursor = old + count
            led.active += count

    def _insert_shared(self, s: Session, led: LedBackfill, rows: list[NewRun], shared: list[NewRun], now: float,
                       tick: _Tick) -> None:
        """Insert a backfill's rows when some are schedule ticks whose run the daemon may have created since
        the plan was made (they share its key): those runs become the backfill's — a tick runs once — and
        one that has already finished counts at once."""
        keys = {r.idempotency_key for r in shared}
        s.insert_runs([r for r in rows if r.idempotency_key not in keys])
        inserted = s.insert_runs_once(shared)
        taken = [r for r in shared if r.run_id not in inserted]
        if not taken:
            return
        self._forget_rows(led, taken, tick)
        by_workflow: dict[str, list[str]] = {}
        places: dict[str, dict[str, int]] = {}  # per workflow: idempotency key → the plan index the run takes
        for r in taken:
            by_workflow.setdefault(r.workflow, []).append(r.idempotency_key or "")
            if r.plan_index is not None:
                places.setdefault(r.workflow, {})[r.idempotency_key or ""] = r.plan_index
        done = {SUCCESS: 0, FAILED: 0, CANCELED: 0}
        for workflow, run_keys in by_workflow.items():
            for run_id, status in s.attach_runs(led.backfill_id, workflow, run_keys, places.get(workflow)):
                log.info("backfill %s: tick run %s already existed (the daemon ran it): counted as this "
                         "backfill's", led.backfill_id, run_id)
                if status in done:
                    done[status] += 1
        if any(done.values()):
            s.count_outcomes(led.backfill_id, done[SUCCESS], done[FAILED], done[CANCELED], now)
        self._refresh = tick.changed = True  # its count of active runs comes from storage next tick

    def _forget_rows(self, led: LedBackfill, rows: list[NewRun], tick: _Tick) -> None:
        """Rows that were not written: their jobs are not started, nor kept."""
        ids = {r.run_id for r in rows}
        for run_id in ids:
            led.jobs.pop(run_id, None)
        tick.jobs = [j for j in tick.jobs if j.run_id not in ids]

    def _fail(self, s: Session, led: LedBackfill, error: str, now: float, tick: _Tick) -> None:
        self._stop_all(s, led.backfill_id, "backfill failed", now, tick)
        self._end(s, led, lifecycle.ending(self._fresh(s, led), error=error), now, tick)
        tick.changed = True

    def _fresh(self, s: Session, led: LedBackfill) -> Any:
        record = s.get_backfill(led.backfill_id)
        return record if record is not None else led.record

    def _end(self, s: Session, led: LedBackfill, end: lifecycle.Ending, now: float, tick: _Tick) -> None:
        s.update_backfill(led.backfill_id, now=now, status=end.status, canceled=end.canceled, error=end.error,
                          ended_at=now, owner=None)
        tick.ended.append(led.backfill_id)
        self._backfills_changed = tick.changed = True

    def _adopt(self, s: Session, now: float, tick: _Tick) -> None:
        live = s.live_worker_ids(time.time())
        with self._lock:
            wanted, runs = set(self._adopt_backfills), list(self._adopt_runs)
        for backfill_id in wanted:
            record = s.get_backfill(backfill_id)
            if record is not None and not self.engine.registry.defines(record.workflows):
                if backfill_id not in self._warned:
                    self._warned.add(backfill_id)
                    log.warning("not leading backfill %s: this repository does not define all its workflows",
                                backfill_id)
                record = None
            led_here = backfill_id in self._led and backfill_id not in tick.ended
            if record is None or record.status in lifecycle.FINISHED_BACKFILL or (
                    led_here and record.owner == self.worker_id):
                tick.adopted.add(backfill_id)
                continue
            if not s.acquire_backfill(backfill_id, self.worker_id, live, now):
                continue  # someone alive leads it: asked again later
            tick.adopted.add(backfill_id)
            if backfill_id in tick.ended:
                tick.ended.remove(backfill_id)
            s.adopt_runs(self.worker_id, now, live, backfill_ids=[backfill_id])
            try:
                stored, plan = rebuild_plan(record, self.engine.registry, None)
            except (PlanChanged, ValueError, LookupError) as exc:
                self._stop_all(s, backfill_id, "backfill failed", now, tick)
                end = lifecycle.ending(record, error=f"its plan cannot be rebuilt: {exc}")
                s.update_backfill(backfill_id, now=now, status=end.status, canceled=end.canceled, error=end.error,
                                  ended_at=now, owner=None)
                self._backfills_changed = tick.changed = True
                continue
            led = LedBackfill(record, stored, plan, record.cursor, s.active_counts(self.worker_id).get(backfill_id, 0))
            status = lifecycle.adopted(record.status)
            if status != record.status:
                s.update_backfill(backfill_id, now=now, status=status, expect_status=[record.status])
                self._refresh = True
            self._led[backfill_id] = led
            self._backfills_changed = tick.changed = True
        if runs:
            tick.adopted_runs.update(runs)
            tick.changed |= bool(s.adopt_runs(self.worker_id, now, live, run_ids=runs).requeued)

    # -- starting runs --------------------------------------------------------------------------
    def _claim(self, s: Session, now: float, capacity: int, tick: _Tick) -> set[str]:
        """Choose the runs to start now (``queue.select_runs``) among the queued ones and those this tick
        is about to create (behind every queued one, as if they had just been inserted). Queued ones are
        started here; the ids of new ones to create running are returned. Jobs go to ``tick.jobs``."""
        limits = self.engine.limits
        with_tags = bool(limits.tag_limits)
        if not s.lock_queue():  # another process is claiming: this tick creates its runs queued, and
            tick.claim_skipped = True  # the next one (in a moment) claims
            return set()
        queued = s.queued_runs(max(QUEUE_SCAN_MIN, 2 * capacity), with_tags, now)
        seq = (queued[-1].seq if queued else 0) + 1_000_000_000  # after any queued run, in creation order
        fresh: dict[str, LedBackfill] = {}
        for led, rows in tick.new:
            for row in rows:
                tags = led.tags_of(row.workflow) if with_tags else EMPTY_TAGS
                queued.append(QueuedRun(row.run_id, row.workflow, row.priority, now, seq, self.worker_id,
                                        led.backfill_id, led.record.max_concurrency, tags, row.keys))
                fresh[row.run_id] = led
                seq += 1
        names = self.engine.registry
        if not any(q.owner == self.worker_id and q.workflow in names for q in queued):
            return set()
        chosen = select_runs(queued, s.running_runs(with_tags), limits, now, self.worker_id, capacity, names)
        if not chosen:
            return set()
        s.start_runs([c.run_id for c in chosen if c.run_id not in fresh], now)
        missing = []
        for c in chosen:
            owner = fresh.get(c.run_id) or self._led.get(c.backfill_id or "")
            job = owner.jobs.pop(c.run_id, None) if owner is not None else None
            if job is None:
                missing.append(c.run_id)
            else:
                tick.jobs.append(job)
        if missing:
            records = s.runs_by_id(missing)
            tick.jobs.extend(self._job(records[r]) for r in missing if r in records)
        return {c.run_id for c in chosen if c.run_id in fresh}

    def _job(self, run: RunRecord) -> RunJob:
        return job_from_record(self.engine.registry[run.workflow], run, self.engine.log_limit)

    # -- the lease --------------------------------------------------------------------------------
    def _renew(self, now: float) -> None:
        expires = now + self.lease_seconds
        if not self.storage.run(lambda s: s.renew_lease(self.worker_id, now, expires), patience=TICK_PATIENCE):
            raise LeaseLost()
        self._lease_expires = expires
        self._next_renew = now + self.lease_seconds / 3
        self.executor.set_lease_deadline(expires - self.fence_margin)

    def _recover_lease(self) -> bool:
        """Our lease lapsed (this process stalled): stop everything in flight without recording it, take
        our runs back as new attempts, and carry on leading what is still ours."""
        log.warning("coordinator: this process's lease lapsed (it stalled for over %g s); its %d running run(s) "
                    "were stopped and are queued again as new attempts", self.lease_seconds, len(self._inflight))
        self.executor.abandon()
        self._inflight.clear()
        with self._results_lock:
            self._results.clear()
        for led in self._led.values():
            led.jobs.clear()
        now = time.time()
        ident = self.engine.identity
        expires = now + self.lease_seconds

        def recover(s: Session) -> None:
            s.register_worker(ident.worker_id, ident.hostname, ident.pid, now, expires)
            s.reclaim_runs(self.worker_id, self.engine.now_ts())

        try:
            self.storage.run(recover, patience=TICK_PATIENCE)
        except Exception as exc:  # noqa: BLE001 - the next tick's renewal tries again
            self._failed(exc)
            return False
        self._lease_expires = expires
        self._next_renew = now + self.lease_seconds / 3
        self.executor.set_lease_deadline(expires - self.fence_margin)
        self._refresh = True
        return True


class _None:
    attempt = -1


_NONE = _None()


class _Host:
    """What the executor sees of the coordinator."""

    def __init__(self, coordinator: Coordinator):
        self._c = coordinator
        self._gate: Any = None

    @property
    def pools(self) -> dict[str, int]:
        return dict(self._c.engine.pools)

    @property
    def storage_url(self) -> str:
        return self._c.engine.storage_handle.url

    @property
    def log_limit(self) -> int:
        return self._c.engine.log_limit

    def resolve(self, ref: WorkflowRef) -> Any:
        return self._c.engine.registry[ref.name]

    def pool_gate(self) -> Any:
        if self._gate is None and self._c.engine.pools:
            from .pools import PoolGate

            self._gate = PoolGate(self._c.engine.storage, self._c.engine.pools)
        return self._gate

    def on_results(self, outcomes: list[RunOutcome]) -> None:
        self._c._on_results(outcomes)

