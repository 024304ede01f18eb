"""The daemon: the always-on loop that makes time pass (``anachron daemon``, and inside ``anachron server``).

Each step it evaluates the schedules that are due (``scheduler.ScheduleEvaluator``) and, every
``scan_seconds``, looks for work nobody alive is looking after: backfills waiting for a leader (created
with ``--no-wait``, or whose leader's lease ran out) and runs whose process is gone. It hands those to this
process's coordinator, which takes them over under the same leases as any waiter would. Between steps it
sleeps until the next tick is due or the next look-out, whichever comes first — an idle daemon costs a
couple of small queries a second.

Several daemons may share one database (SPEC §7). One of them leads schedule evaluation: it holds the
``anachron_leaders`` row for its set of schedules for as long as its process lease lives; the others ask
for it at every step and take it over once that lease has lapsed — the leader was killed, or froze — so
within ``lease_seconds`` plus a step. A tick's run is keyed by its tick, so even two evaluators at once
(a frozen leader waking up) never run a tick twice. Backfills and orphaned runs are spread by their own
leases: whichever daemon asks first leads them.

Every decision is one log line on the ``anachron.daemon`` logger: a tick fired, a tick skipped and why, a
backfill or run taken over, schedule leadership won or lost.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from datetime import datetime
from typing import TYPE_CHECKING

from ..storage import StorageError, describe_error
from .context import EngineContext
from .coordinator import Coordinator
from .scheduler import Evaluation, ScheduleEvaluator

if TYPE_CHECKING:
    from ..storage.contract import StoreSession as Session

log = logging.getLogger("anachron.daemon")
SCAN_SECONDS = 1.0
RETRY_SECONDS = 2.0  # after a failed step (storage unavailable for longer than a transaction's patience)


class Daemon:
    def __init__(self, engine: EngineContext, coordinator: Coordinator, scan_seconds: float = SCAN_SECONDS):
        if not scan_seconds > 0:
            raise ValueError(f"scan_seconds: must be > 0, got {scan_seconds!r}")
        self.engine = engine
        self.coordinator = coordinator
        self.scan_seconds = scan_seconds
        self.evaluator = ScheduleEvaluator(engine)  # refuses a schedule whose workflow cannot run unattended
        self._next_scan = 0.0
        self._asked: dict[str, float] = {}  # backfills and runs handed to the coordinator, and when
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.failures = 0
        keys = sorted(f"{e.key[0]}\x00{e.key[1]}" for e in self.evaluator.entries)
        #: the duty this daemon's schedules share with daemons running the same code
        self.duty = "schedules:" + hashlib.sha256("\x01".join(keys).encode()).hexdigest()[:32]
        self.leading = False

    # -- one step ---------------------------------------------------------------------------------
    def step(self, now: datetime | None = None) -> float:
        """Evaluate what is due now; returns the seconds until the next step is due."""
        self.coordinator.ensure_started()
        now = now or self.engine.now()
        evaluation = self.evaluator.evaluate(now) if self._lead() else Evaluation()
        self._report(evaluation)
        if any(f.run_id for f in evaluation.fired):
            self.coordinator.wake()
        wall = self.engine.clock.monotonic()
        if wall >= self._next_scan:
            self._next_scan = wall + self.scan_seconds
            self._look_out()
        until_scan = max(0.0, self._next_scan - self.engine.clock.monotonic())
        if evaluation.due_again is None:
            return until_scan
        return max(0.0, min(until_scan, (evaluation.due_again - self.engine.now()).total_seconds()))

    def _lead(self) -> bool:
        """Whether this daemon leads its schedules' evaluation now (asked at every step)."""
        if not len(self.evaluator):
            return False
        worker_id = self.engine.worker_id
        leading = self.engine.storage.run(lambda s: s.lead(self.duty, worker_id, self.engine.wall()))
        if leading != self.leading:
            self.leading = leading
            if leading:
                log.info("daemon: leading schedule evaluation (%d schedule(s))", len(self.evaluator))
            else:
                self.evaluator.forget()  # the leader moves the cursors now: read them again if we lead again
                log.info("daemon: another daemon leads schedule evaluation; standing by")
        return leading

    def _report(self, evaluation: Evaluation) -> None:
        for f in evaluation.fired:
            if f.run_id is not None:
                log.info("tick fired: %s/%s at %s → run %s", f.workflow, f.schedule_id, f.tick.isoformat(), f.run_id)
            else:
                log.info("tick already run: %s/%s at %s (another process created its run)", f.workflow,
                         f.schedule_id, f.tick.isoformat())
        for k in evaluation.skipped:
            span = k.first.isoformat() if k.first == k.last else f"{k.first.isoformat()} … {k.last.isoformat()}"
            log.info("tick skipped: %s/%s at %s: %s", k.workflow, k.schedule_id, span, k.why)

    def _look_out(self) -> None:
        """Hand the coordinator the backfills and runs that no live process looks after."""
        registry = self.engine.registry
        wall = self.engine.wall()

        def look(s: Session) -> tuple[list[tuple[str, tuple[str, ...], str]], list[tuple[str, str]]]:
            backfill_ids = s.unled_backfills(wall)
            records = [s.get_backfill(b) for b in backfill_ids]
            orphans = s.runs_by_id(s.orphan_runs(wall))
            return ([(r.backfill_id, r.workflows, r.status) for r in records if r is not None],
                    [(r.run_id, r.workflow) for r in orphans.values()])

        backfills, runs = self.engine.storage.run(look, write=False)
        soon = self.engine.clock.monotonic() - self.engine.lease_seconds  # ask again only after a while
        for backfill_id, workflows, status in backfills:
            if not registry.defines(workflows) or self._asked.get(backfill_id, -1e18) > soon:
                continue
            self._asked[backfill_id] = self.engine.clock.monotonic()
            why = "created without a leader" if status == "requested" else "its leader is gone"
            log.info("backfill %s: leading it (%s)", backfill_id, why)
            self.coordinator.lead(backfill_id)
        for run_id, workflow in runs:
            if workflow not in registry or self._asked.get(run_id, -1e18) > soon:
                continue
            self._asked[run_id] = self.engine.clock.monotonic()
            log.info("run %s (%s): taking it over (its process is gone)", run_id, workflow)
            self.coordinator.adopt_run(run_id)
        if len(self._asked) > 10_000:
            self._asked = {k: v for k, v in self._asked.items() if v > soon}

    # -- running ------------------------------------------------------------------------------------
    def run(self, stop: threading.Event | None = None) -> None:
        """Step until ``stop`` is set (or ``stop()`` is called). A step that fails (storage unavailable for
        longer than a transaction waits) is logged and tried again; nothing is lost meanwhile."""
        if stop is not None:
            self._stop = stop
        stop = self._stop
        log.info("daemon: %d schedule(s); leading backfills and runs nobody alive looks after",
                 len(self.evaluator))
        try:
            while not stop.is_set():
                try:
                    delay = self.step()
                    if self.failures:
                        log.warning("daemon: storage works again after %d failed step(s)", self.failures)
                    self.failures = 0
                except StorageError as exc:
                    self.failures += 1
                    self.evaluator.forget()
                    log.warning("daemon: a step failed (%d in a row), retrying in %g s: %s", self.failures,
                                RETRY_SECONDS, describe_error(exc))
                    delay = RETRY_SECONDS
                stop.wait(delay)
        finally:
            self.resign()

    def start(self) -> None:
        """Run in a background thread (the server does)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self.run, name="anachron-daemon", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        self.resign()

    def resign(self) -> None:
        """Hand schedule leadership over at a clean exit, so another daemon takes it at its next step."""
        if self.leading:
            self.leading = False
            worker_id = self.engine.worker_id
            try:
                self.engine.storage.run(lambda s: s.resign(self.duty, worker_id))
            except StorageError as exc:
                log.warning("daemon: could not hand leadership over (it lapses with this process's lease): %s",
                            describe_error(exc))
