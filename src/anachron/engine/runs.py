"""Runs submitted one at a time: creating, waiting on and canceling them."""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from .. import lifecycle
from ..clock import LogicalTimeError, logical_time, to_datetime
from ..definitions import Workflow, normalize_tags, priority_of
from ..limits import check_params_size, check_tags, check_text, unstorable
from ..models import CANCELED, REGULAR_PRIORITY, NotFoundError
from ..params import encode_params
from ..records import Outcome, RunRecord, RunRef
from ..storage.codec import dumps
from .context import EngineContext
from .coordinator import Coordinator
from .jobs import new_run, partition_window
from .waiting import wait_until

if TYPE_CHECKING:
    from ..storage.contract import StoreSession as Session

MAX_IDEMPOTENCY_KEY = 1_000


class RunService:
    def __init__(self, engine: EngineContext, coordinator: Coordinator):
        self.engine = engine
        self.coordinator = coordinator

    def submit(self, workflow: Workflow, partition_key: str | None = None, params: Mapping[str, Any] | None = None,
               tags: Mapping[str, str] | Iterable[tuple[str, str]] | None = None, run_name: str | None = None,
               scheduled_time: datetime | str | None = None, idempotency_key: str | None = None,
               environ: Mapping[str, str] | None = None, coordinate: bool = True) -> RunRecord:
        """Store one run (queued, or failed at once when its logical time is malformed) and wake the
        coordinator (unless ``coordinate=False``: a daemon or the next waiter starts it). The same
        ``idempotency_key`` for the same workflow returns the existing run. A future ``scheduled_time`` defers
        it: it stays queued until then (its logical time)."""
        if scheduled_time is not None:
            scheduled_time = to_datetime(scheduled_time, "scheduled_time")  # naive: UTC
        values = dict(params or {})
        found = unstorable(values, "params")
        if found is not None:
            raise ValueError(f"{found[0]}: {found[1]}")
        check_params_size(values)
        workflow.validate_params(values, complete=True)
        run_tags = {**workflow.tags, **check_tags(normalize_tags(tags))}
        priority = priority_of(run_tags, REGULAR_PRIORITY)
        check_text(run_name, "run_name")
        check_text(idempotency_key, "idempotency_key")
        env = {str(k): str(v) for k, v in (environ or {}).items()}
        for name, value in env.items():
            check_text(name, "environ")
            check_text(value, f"environ.{name}")
        if idempotency_key is not None and (not isinstance(idempotency_key, str)
                                            or not 0 < len(idempotency_key) <= MAX_IDEMPOTENCY_KEY):
            raise ValueError(f"idempotency_key: must be a non-empty string of at most {MAX_IDEMPOTENCY_KEY} "
                             "characters")
        storage = self.engine.storage
        now = self.engine.now()
        keys: tuple[str, ...] = ()
        window = None
        workflow.check_partition_key(partition_key)
        if partition_key is not None and workflow.partitions is not None:
            dynamic = storage.run(lambda s: s.dynamic_keys(), write=False)
            workflow.partitions.validate_key(partition_key, now, dynamic)
            keys = (partition_key,)
            window = partition_window(workflow, keys)
        if idempotency_key is not None:
            existing = storage.run(lambda s: s.run_by_idempotency_key(workflow.name, idempotency_key), write=False)
            if existing is not None:
                return existing
        error = None
        try:  # a malformed ANACHRON_TIME in the run's environment fails the run, whatever decides its time
            logical = logical_time(submitted=now, window=window, scheduled=scheduled_time, environ=env,
                                   process=os.environ)
        except LogicalTimeError as exc:
            logical, error = now, str(exc)
        row = new_run(workflow=workflow.name, keys=keys, params=encode_params(values), tags=dumps(run_tags),
                      priority=priority, idempotency_key=idempotency_key, logical_time=logical.timestamp(),
                      window=(window[0].timestamp(), window[1].timestamp()) if window else None,
                      scheduled_time=scheduled_time.timestamp() if scheduled_time is not None else None,
                      created_at=now.timestamp(), run_name=run_name, environ=dumps(env), owner=self.engine.worker_id,
                      error=error)

        def store(s: Session) -> RunRecord:
            if idempotency_key is not None:
                return s.insert_run_once(row)
            s.insert_runs([row])
            stored = s.get_run(row.run_id)
            assert stored is not None
            return stored

        stored = storage.run(store)
        if not error and coordinate:
            self.coordinator.ensure_started()
            if scheduled_time is not None and scheduled_time > now:
                self.coordinator.wake_at(scheduled_time.timestamp())
            self.coordinator.wake()
        return stored

    def get(self, run_id: str) -> RunRecord | None:
        return self.engine.storage.run(lambda s: s.get_run(run_id), write=False)

    def wait(self, run_id: str, timeout: float | None = None) -> RunRecord:
        """Wait until a run has finished, taking it over if the process running it died."""
        coordinator = self.coordinator
        coordinator.ensure_started()
        last: list[RunRecord] = []

        def look() -> tuple[RunRecord | None, str]:
            run = self.get(run_id)
            if run is None:
                raise NotFoundError(f"run {run_id!r} not found")
            last[:] = [run]
            return (run if run.status not in lifecycle.ACTIVE_RUN else None), run.status

        def between() -> None:
            if last and last[0].workflow in self.engine.registry:  # we can finish it if its process died
                coordinator.adopt_run(run_id)

        return wait_until(coordinator, look, what=f"run {run_id}", timeout=timeout, runs=True, between=between)

    def cancel(self, run_id: str) -> bool:
        """Cancel a queued or running run. ``False`` when it had already finished."""
        now = self.engine.now_ts()
        me = self.engine.worker_id

        def cancel(s: Session) -> lifecycle.CancelPlan | None:
            run = s.get_run(run_id)
            if run is None:
                raise NotFoundError(f"run {run_id!r} not found")
            if run.status not in lifecycle.ACTIVE_RUN:
                return None
            ref = RunRef(run.run_id, run.status, run.owner, run.backfill_id, run.cancel_requested, run.attempt)
            plan = lifecycle.plan_cancel([ref], s.live_worker_ids(self.engine.wall()), me)  # leases: wall clock
            s.finish_runs([Outcome(r, CANCELED, "canceled") for r in plan.finish_now], now)
            s.request_cancel(plan.ask_owner)
            return plan

        plan = self.engine.storage.run(cancel)
        if plan is None:
            return False
        self.coordinator.cancel_local(plan.stop_here)
        self.coordinator.wake()
        return True
