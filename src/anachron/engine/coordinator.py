"""The coordinator: one loop per process that turns plans and queues into running work.

A tick is read → decide → apply, in one write transaction: record what the executor reported (each outcome
guarded by its run's attempt), take over what was asked for (``takeover``), read storage as the tick needs
it (``snapshot.read``), decide everything the tick does (``tick.decide``: pure — pause, cancel, stop after a
failure, the next window of each led backfill, which runs start under every limit) and write that
(``apply.apply``). Once committed, memory follows and the started runs go to the executor. It wakes on
events (a run finished, a run was submitted) and otherwise checks storage every ``poll_seconds`` for what
other processes changed.

Failure rules:
- Outcomes stay pending in memory until the transaction that records them commits. Transactions are
  retried on transient errors (``Storage.run``); a tick that still fails is retried by the loop with
  backoff, its outcomes still pending. Memory (cursors, counts) is re-read from storage after a failure.
- The process's lease is renewed every ``lease_seconds / 3`` (on ``clock.wall()``). The executor is told the
  lease deadline and stops its work by then unless it is moved on. A renewal that finds the lease lapsed
  (the process stalled, or storage was out of reach) stops every run in the executor, records the outcomes
  it holds of runs that finished meanwhile (accepted unless a newer attempt has started), takes the rest
  back as new attempts, and carries on.
- An error while creating a backfill's runs (a changed definition, a key the database refuses) ends that
  backfill as ``failed`` with the error, once; other backfills are not affected.
"""

from __future__ import annotations

import atexit
import heapq
import logging
import sys
import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING

from .. import lifecycle
from ..loading import importing_in_worker
from ..records import InFlight, Recorded, RunRecord
from ..runtime import LOST, RunJob, RunOutcome
from ..storage import SavepointNeeded, StorageUnavailable, describe_error
from . import snapshot
from .apply import Applied, apply
from .context import EngineContext
from .host import EngineHost
from .jobs import job_from_record
from .lease import TICK_PATIENCE, LeaseLost, ProcessLease
from .led import LedBackfill
from .takeover import TakenOver, take_over
from .tick import Decisions, Snapshot, decide

if TYPE_CHECKING:
    from ..storage import Storage
    from ..storage.contract import StoreSession as Session

log = logging.getLogger("anachron.coordinator")
BATCH_WAIT_SECONDS = 0.002
GATHER_MIN_INFLIGHT = 16  # with fewer runs in flight, a tick does not wait for more results
IDLE_POLL_SECONDS = 1.0  # how often an idle coordinator looks at storage (runs in flight: poll_seconds)
CLAIM_RETRY_SECONDS = 0.003  # after another process held the claim lock: how soon to claim again


@dataclass
class _Tick:
    """What a tick's transaction did, to take effect in memory once it has committed."""

    recorded: list[Recorded]
    taken: TakenOver | None
    snapshot: Snapshot
    lost: list[str]  # led backfills another process leads now
    decisions: Decisions
    applied: Applied


class Coordinator:
    def __init__(self, engine: EngineContext, poll_seconds: float = 0.25):
        self.engine = engine
        self.executor = engine.executor
        self.worker_id = engine.identity.worker_id
        self.lease_seconds = engine.lease_seconds
        self.poll_seconds = min(poll_seconds, self.lease_seconds / 4)
        self.lease = ProcessLease(engine, engine.executor)
        self.grace = lifecycle.takeover_grace(self.lease_seconds)
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
        self._next_slow = 0.0
        self._next_reap = 0.0
        self._refresh = False  # re-read led backfills from storage on the next tick
        self._careful = False  # insert new runs under a savepoint (an attempt of this tick was refused without)
        self._refused: dict[str, str] = {}  # led backfills whose new runs the database refused: the error
        self._failures = 0
        self._last_error = ""
        self.run_version = 0
        self.version = 0
        self._backfills_changed = False

    @property
    def storage(self) -> Storage:
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
            at = self.engine.wall()
            self.storage.run(lambda s: self.lease.register(s, at))
            self.executor.start(EngineHost(self.engine, self._on_results))
            self.lease.held(at)
            self._thread = threading.Thread(target=self._loop, name="anachron-coordinator", daemon=True)
            self._thread.start()
            # On a normal interpreter exit, hand our backfills back at once rather than after the lease.
            atexit.register(self.stop)

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
        deadline = self.engine.clock.monotonic() + timeout
        with self._changed:
            while (self.run_version if runs else self.version) == version:
                left = deadline - self.engine.clock.monotonic()
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
        deadline = self.engine.clock.monotonic() + BATCH_WAIT_SECONDS
        while not self._stopping and 0 < len(self._results) < len(self._inflight) // 2:
            remaining = deadline - self.engine.clock.monotonic()
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
        if self.lease.due(self.engine.wall()):
            self.lease.renew(self.storage.run)
        with self._results_lock:
            pending = list(self._results)
        outcomes = [o for o in pending if self._inflight.get(o.run_id, _NONE).attempt == o.attempt]
        finished = [o.record() for o in outcomes if o.status != LOST]
        lost = [o for o in outcomes if o.status == LOST]
        capacity = self.executor.capacity - len(self._inflight) + len(outcomes)
        poll = self.engine.clock.monotonic() >= self._next_slow  # what other processes asked of us (real time)
        if poll:
            self._next_slow = self.engine.clock.monotonic() + self.poll_seconds
            self._refresh = True
        with self._lock:
            wanted, wanted_runs = set(self._adopt_backfills), set(self._adopt_runs)
        attempts = 0

        def transaction(s: Session) -> _Tick:
            nonlocal attempts
            attempts += 1
            if attempts > 1:  # a previous attempt rolled back: what memory says may not have happened
                self._refresh = True
            refresh, self._refresh = self._refresh, False
            recorded = s.record_outcomes(finished, self.worker_id, self._inflight, now)
            if lost:
                s.requeue([o.run_id for o in lost], {o.run_id: o.attempt for o in lost}, self.worker_id)
            if poll:
                self._housekeeping(s)
            led = dict(self._led)
            taken = None
            if wanted or wanted_runs:
                taken = take_over(s, owner=self.worker_id, registry=self.engine.registry, backfills=wanted,
                                  runs=wanted_runs, leading=led, live=s.live_worker_ids(self.engine.wall()),
                                  now=now, grace=self.grace)
                led.update(taken.led)
                # what it newly leads was counted after this tick's outcomes were recorded, which the tick
                # subtracts again: read counts as a refresh does (it adds them back), or a run is counted out twice
                refresh = refresh or bool(taken.led)
            snap, gone = snapshot.read(
                s, owner=self.worker_id, registry=self.engine.registry, log_limit=self.engine.log_limit, led=led,
                outcomes=recorded, refresh=refresh, cancel_poll=poll, capacity=capacity,
                executor_capacity=self.executor.capacity, limits=self.engine.limits, now=now,
                refused=self._refused, careful=self._careful)
            decisions = decide(snap, recorded, self.engine.limits, now)
            applied = apply(decisions, s, self.worker_id, now, self._job)
            return _Tick(recorded, taken, snap, gone, decisions, applied)

        try:
            result = self.storage.run(transaction, patience=TICK_PATIENCE, pinned=True)
        except SavepointNeeded:  # new runs were refused: again, each backfill's under a savepoint
            self._careful = True
            try:
                result = self.storage.run(transaction, patience=TICK_PATIENCE, pinned=True)
            finally:
                self._careful = False
        self._forget(pending)
        jobs = self._follow(result)
        if jobs and self.lease.fenced(self.engine.wall()):
            # This process stalled inside the tick and its lease may be gone: do not start these runs.
            # They go back to the queue (if the lease is gone, another process or our lease recovery does
            # that), and the next tick renews the lease first.
            dropped, jobs = jobs, []
            self.lease.next_renew = 0.0
            try:
                self.storage.run(lambda s: s.requeue([j.run_id for j in dropped],
                                                     {j.run_id: j.attempt for j in dropped}, self.worker_id),
                                 patience=TICK_PATIENCE)
            except Exception as exc:  # noqa: BLE001 - the lease recovery takes them back
                self._failed(exc)
        if result.snapshot.claim_skipped or result.decisions.again:
            self._claim_again = True
        if jobs:
            for job in jobs:
                self._inflight[job.run_id] = InFlight(job.attempt, job.backfill_id, max(1, len(job.partition_keys)))
            self.executor.submit(jobs)
        taken = result.taken
        return (bool(pending) or bool(jobs) or result.decisions.writes or bool(result.lost)
                or (taken is not None and bool(taken.led or taken.failed or taken.requeued)))

    def _housekeeping(self, s: Session) -> None:
        """Slots held by runs that are over, and processes whose lease ran out long ago (every poll)."""
        s.release_orphan_slots()
        wall = self.engine.wall()
        if wall >= self._next_reap:
            s.expire_dead_workers(wall - 10 * self.lease_seconds)
            self._next_reap = wall + self.lease_seconds

    def _forget(self, pending: list[RunOutcome]) -> None:
        """Outcomes the committed tick recorded (or refused for good) are no longer pending."""
        with self._results_lock:
            n = len(pending)
            if n and len(self._results) >= n and self._results[0] is pending[0] and self._results[n - 1] is pending[-1]:
                del self._results[:n]  # the usual case: what the tick took is still the list's head
            elif n:
                done = {id(o) for o in pending}
                self._results = [o for o in self._results if id(o) not in done]
        for o in pending:
            current = self._inflight.get(o.run_id)
            if current is not None and current.attempt == o.attempt:
                del self._inflight[o.run_id]

    def _follow(self, t: _Tick) -> list[RunJob]:
        """Bring memory in line with what the committed tick did; the jobs to start."""
        d, a = t.decisions, t.applied
        for backfill_id in t.lost:  # another process leads it now (our lease had lapsed)
            self._led.pop(backfill_id, None)
            self._backfills_changed = True
        if t.taken is not None:
            self._took_over(t.taken)
        finished = {led.backfill_id: 0 for led in t.snapshot.led}
        for o in t.recorded:
            if o.backfill_id in finished:
                finished[o.backfill_id] += 1
        for view in t.snapshot.led:  # what storage said, then what this tick changed
            memory = self._led.get(view.backfill_id)
            if memory is not None:
                memory.record, memory.cursor = view.record, view.cursor
                memory.active = view.active - finished[view.backfill_id]
        for backfill_id, dropped in a.dropped.items():
            memory = self._led.get(backfill_id)
            if memory is not None:
                memory.active -= len(dropped)
                for run_id in dropped:
                    memory.jobs.pop(run_id, None)
            self._refresh = True
        if a.started:
            for memory in self._led.values():
                for run_id in a.started:
                    memory.jobs.pop(run_id, None)
        for backfill_id, created in a.created.items():
            memory = self._led.get(backfill_id)
            if memory is None:
                continue
            if created.refused is not None:
                self._refused[backfill_id] = created.refused
            if created.moved or created.attached or created.refused is not None:
                self._refresh = True  # paused, canceled, taken over, or counts from storage: look again
            if created.count:
                memory.cursor += created.count
                memory.active += created.count
                memory.jobs.update(created.waiting)
        for backfill_id in a.ended:
            self._led.pop(backfill_id, None)
            self._refused.pop(backfill_id, None)
            self._backfills_changed = True
        if len(a.ended) < len(d.ends):
            self._refresh = True  # an end the guard refused (a takeover meanwhile): look again
        for run_id in a.to_kill:
            self.executor.cancel(run_id)
        return a.jobs

    def _took_over(self, taken: TakenOver) -> None:
        for backfill_id in taken.unknown:
            if backfill_id not in self._warned:
                self._warned.add(backfill_id)
                log.warning("not leading backfill %s: this repository does not define all its workflows",
                            backfill_id)
        self._led.update(taken.led)
        if taken.led or taken.failed:
            self._backfills_changed = True
            self._refresh = True
        with self._lock:
            self._adopt_backfills -= taken.handled
            self._adopt_runs -= taken.handled_runs

    def _job(self, run: RunRecord) -> RunJob:
        return job_from_record(self.engine.registry[run.workflow], run, self.engine.log_limit)

    # -- the lease --------------------------------------------------------------------------------
    def _recover_lease(self) -> bool:
        """Our lease lapsed (this process stalled, or storage was out of reach): stop everything in flight,
        record the outcomes we hold of runs that finished meanwhile (accepted unless another process started
        a newer attempt), take the rest of our runs back as new attempts, and carry on leading what is
        still ours."""
        self.executor.abandon()  # no outcome is reported after this
        with self._results_lock:
            held, self._results = self._results, []
        finished = [o for o in held if o.status != LOST and
                    self._inflight.get(o.run_id, _NONE).attempt == o.attempt]
        log.warning("coordinator: this process's lease lapsed (it stalled, or storage was unreachable, for over "
                    "%g s); %d finished run(s) are recorded if nobody started them again, %d running run(s) were "
                    "stopped and are queued again as new attempts", self.lease_seconds, len(finished),
                    len(self._inflight) - len(finished))
        inflight, self._inflight = self._inflight, {}
        for led in self._led.values():
            led.jobs.clear()
        now = self.engine.wall()
        engine_now = self.engine.now_ts()

        def recover(s: Session) -> None:
            self.lease.register(s, now)
            s.record_outcomes([o.record() for o in finished], self.worker_id, inflight, engine_now)
            s.reclaim_runs(self.worker_id, engine_now, self.grace)

        try:
            self.storage.run(recover, patience=TICK_PATIENCE)
        except Exception as exc:  # noqa: BLE001 - the next tick's renewal tries again
            with self._results_lock:  # what we hold is recorded at the next try
                self._results = held + self._results
            self._inflight = {**inflight, **self._inflight}
            self._failed(exc)
            return False
        self.lease.held(now)
        self._refresh = True
        return True


class _None:
    attempt = -1


_NONE = _None()
