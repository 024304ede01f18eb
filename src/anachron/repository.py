"""``CodeRepository``: the workflows plus the instance (storage, executor, limits) — the public façade."""

from __future__ import annotations

import os
import threading
import time as _time
from datetime import datetime, timezone
from typing import Any, Callable, Iterable, Mapping, Sequence

from . import backfills as _backfills
from .clock import LogicalTimeError, time_from_environ, wall_clock
from .definitions import Workflow, normalize_tags
from .engine.coordinator import Coordinator
from .engine.executors.base import Executor
from .engine.executors.local import LocalExecutor
from .engine.pools import PoolGate
from .engine.queue import QueueLimits
from .engine.runs import new_run_id, partition_window
from .models import (FAILED, MISSING, PRIORITY_TAG, QUEUED, REGULAR_PRIORITY, BackfillStatus,
                     NotFoundError, Run, RunQueueConfig)
from .partitions import DynamicPartitions
from .planning import BackfillPlan, build_plan
from .storage import Storage, default_url, is_memory_url, normalize_url
from .storage.codec import dumps, ts

WAIT_SLICE = 0.5


class CodeRepository:
    """Workflows plus where and how they run.

    >>> repo = ac.CodeRepository(workflows=[etl], storage="sqlite:///.anachron/anachron.db")
    >>> repo.backfill("etl", start="2024-01-01", end="2024-03-31")
    """

    def __init__(self, workflows: Iterable[Workflow] = (), storage: str | Storage | None = None,
                 executor: Executor | None = None, run_queue: RunQueueConfig | None = None,
                 lease_seconds: float = 30, clock: Callable[[], datetime] | None = None):
        self._workflows: dict[str, Workflow] = {}
        for wf in workflows:
            if not isinstance(wf, Workflow):
                raise ValueError(f"workflows: {wf!r} is not an @ac.workflow")
            if wf.name in self._workflows:
                raise ValueError(f"workflows: two workflows are named {wf.name!r}")
            self._workflows[wf.name] = wf
        self._claimable = set(self._workflows)
        if executor is not None and not isinstance(executor, Executor):
            raise ValueError("executor: expected ac.InProcessExecutor, ac.LocalExecutor or ac.DaskExecutor")
        if run_queue is not None and not isinstance(run_queue, RunQueueConfig):
            raise ValueError("run_queue: expected ac.RunQueueConfig")
        if not isinstance(lease_seconds, (int, float)) or lease_seconds <= 0:
            raise ValueError(f"lease_seconds: must be > 0, got {lease_seconds!r}")
        self.executor = executor or LocalExecutor(max_workers=4)
        self.run_queue = run_queue or RunQueueConfig()
        self.lease_seconds = float(lease_seconds)
        self._clock = clock or wall_clock
        self._storage = storage if isinstance(storage, Storage) else None
        self.storage_url = storage.url if isinstance(storage, Storage) else normalize_url(storage or default_url())
        if is_memory_url(self.storage_url) and self.run_queue.pools and not self.executor.shares_memory:
            raise ValueError("run_queue.pools: an in-memory database (sqlite://) cannot be shared with worker "
                             "processes; use a file or PostgreSQL, or InProcessExecutor")
        self._limits = QueueLimits(self.run_queue.max_concurrent_runs,
                                   {n: w.max_concurrent_runs for n, w in self._workflows.items()
                                    if w.max_concurrent_runs},
                                   tuple(self.run_queue.tag_concurrency_limits), self.run_queue.priority_aging_seconds)
        self._lock = threading.Lock()
        self._coordinator = Coordinator(self)
        self._gate: PoolGate | None = None

    @property
    def storage(self) -> Storage:
        """The storage, opened (and migrated) on first use — not when the repository is defined, so a
        module that defines one can be imported anywhere (worker processes do) without touching it."""
        if self._storage is None:
            with self._lock:
                if self._storage is None:
                    self._storage = Storage(self.storage_url)
        return self._storage

    # -- plumbing used by the engine ------------------------------------------------------------
    def _now(self) -> datetime:
        return self._clock()

    def _now_ts(self) -> float:
        return self._clock().timestamp()

    def _queue_limits(self) -> QueueLimits:
        return self._limits

    def _pool_gate(self) -> PoolGate | None:
        if self.run_queue.pools and self._gate is None:
            self._gate = PoolGate(self.storage, self.run_queue.pools)
        return self._gate

    def _workflow_for_job(self, name: str) -> Workflow:
        return self._workflows[name]

    def _build_plan(self, spec: Mapping[str, Any]) -> BackfillPlan:
        return build_plan(spec, self._workflows, spec.get("dynamic", {}))

    def _dynamic(self) -> dict[str, list[str]]:
        with self.storage.read() as s:
            return s.dynamic_keys()

    # -- definitions ----------------------------------------------------------------------------
    @property
    def workflows(self) -> list[Workflow]:
        return list(self._workflows.values())

    def workflow(self, workflow: str | Workflow, field: str = "workflow") -> Workflow:
        """The workflow named (or given); ``ValueError`` naming it when unknown."""
        name = workflow.name if isinstance(workflow, Workflow) else workflow
        if not isinstance(name, str) or name not in self._workflows:
            known = ", ".join(sorted(self._workflows)) or "none"
            raise ValueError(f"{field}: unknown workflow {name!r} (known: {known})")
        return self._workflows[name]

    # -- runs -----------------------------------------------------------------------------------
    def run(self, workflow: str | Workflow, partition_key: str | None = None, params: Mapping[str, Any] | None = None,
            tags: Mapping[str, str] | Iterable[tuple[str, str]] | None = None, run_name: str | None = None,
            scheduled_time: datetime | None = None, idempotency_key: str | None = None,
            environ: Mapping[str, str] | None = None, block: bool = True) -> Run:
        """Submit one run (and by default wait for it). The same ``idempotency_key`` returns the same run."""
        wf = self.workflow(workflow)
        params = dict(params or {})
        wf.validate_params(params)
        run_tags = {**wf.tags, **normalize_tags(tags)}
        priority = _priority(run_tags, REGULAR_PRIORITY)
        environ = {str(k): str(v) for k, v in (environ or {}).items()}
        now = self._now()
        keys: list[str] = []
        window = None
        if partition_key is not None:
            if wf.partitions is None:
                raise ValueError(f"partition_key: workflow {wf.name!r} has no partitions")
            wf.partitions.validate_key(partition_key, now, self._dynamic())
            keys = [partition_key]
            window = partition_window(wf, keys)
        if idempotency_key is not None:
            if not isinstance(idempotency_key, str) or not idempotency_key:
                raise ValueError("idempotency_key: must be a non-empty string")
            with self.storage.read() as s:
                existing = s.run_by_idempotency_key(wf.name, idempotency_key)
            if existing is not None:
                return self.wait_run(existing.run_id) if block and not existing.is_finished else existing
        error = None
        try:  # a malformed ANACHRON_TIME in the run's environment fails the run, whatever decides its time
            env_time = time_from_environ(environ)
            if window is not None:
                logical = window[1]
            elif scheduled_time is not None:
                logical = scheduled_time
            else:
                logical = env_time or time_from_environ(os.environ) or now
        except LogicalTimeError as exc:
            logical, error = now, str(exc)
        row = {
            "run_id": new_run_id(), "workflow": wf.name, "status": FAILED if error else QUEUED, "keys": keys,
            "params": dumps(params), "tags": dumps(run_tags), "priority": priority, "backfill_id": None,
            "idempotency_key": idempotency_key, "attempt": 1, "logical_time": logical.timestamp(),
            "scheduled_time": ts(scheduled_time), "created_at": now.timestamp(), "run_name": run_name,
            "environ": dumps(environ), "owner": self._coordinator.worker_id, "cancel_requested": False,
            "error": error, "ended_at": now.timestamp() if error else None,
        }
        run_id = row["run_id"]
        try:
            with self.storage.write() as s:
                existing = s.run_by_idempotency_key(wf.name, idempotency_key) if idempotency_key else None
                if existing is not None:
                    run_id = existing.run_id
                else:
                    s.insert_runs([row])
        except Exception as exc:  # a concurrent submit with the same idempotency key won the race
            if idempotency_key is None or "unique" not in str(exc).lower():
                raise
            with self.storage.read() as s:
                run_id = s.run_by_idempotency_key(wf.name, idempotency_key).run_id
        if not error:
            self._coordinator.ensure_started()
            self._coordinator.wake()
        return self.wait_run(run_id) if block else self.get_run(run_id)

    def wait_run(self, run_id: str, timeout: float | None = None) -> Run:
        """Wait until a run has finished (taking it over if the process running it died)."""
        deadline = None if timeout is None else _time.monotonic() + timeout
        coordinator = self._coordinator
        coordinator.ensure_started()
        version = coordinator.run_version
        while True:
            run = self.get_run(run_id)
            if run is None:
                raise NotFoundError(f"run {run_id!r} not found")
            if run.is_finished:
                return run
            if run.workflow in self._claimable:  # we can finish it if the process running it died
                coordinator.adopt_run(run_id)
            remaining = WAIT_SLICE if deadline is None else min(WAIT_SLICE, deadline - _time.monotonic())
            if remaining <= 0:
                raise TimeoutError(f"run {run_id} still {run.status} after {timeout} s")
            version = coordinator.wait_for_change(version, remaining, runs=True)

    def get_run(self, run_id: str) -> Run | None:
        with self.storage.read() as s:
            return s.get_run(run_id)

    def list_runs(self, workflow: str | Workflow | None = None, status: str | Sequence[str] | None = None,
                  backfill_id: str | None = None, tags: Mapping[str, str] | None = None, limit: int = 100) -> list[Run]:
        name = self.workflow(workflow).name if workflow is not None else None
        with self.storage.read() as s:
            return s.list_runs(name, status, backfill_id, normalize_tags(tags), limit)

    def cancel_run(self, run_id: str) -> bool:
        """Cancel a queued or running run. ``False`` when it had already finished."""
        now = self._now_ts()
        with self.storage.write() as s:
            run = s.get_run(run_id)
            if run is None:
                raise NotFoundError(f"run {run_id!r} not found")
            if run.is_finished:
                return False
            owner = s.run_owner(run_id)
            local = owner == self._coordinator.worker_id
            if run.status == QUEUED or local or owner not in s.live_worker_ids(now):
                s.finish_runs([{"run_id": run_id, "status": "canceled", "error": "canceled"}], now)
            else:
                s.request_cancel([run_id])
        if local:
            self._coordinator.cancel_local(run_id)
        self._coordinator.wake()
        return True

    def run_logs(self, run_id: str) -> list[dict[str, Any]]:
        """The log lines of a run (every attempt), oldest first."""
        with self.storage.read() as s:
            if s.get_run(run_id) is None:
                raise NotFoundError(f"run {run_id!r} not found")
            return [{"attempt": r.attempt, "time": datetime.fromtimestamp(r.ts, timezone.utc), "level": r.level,
                     "message": r.message} for r in s.run_logs(run_id)]

    def partition_status(self, workflow: str | Workflow) -> dict[str, str]:
        """key → ``missing`` | ``queued`` | ``running`` | ``success`` | ``failed`` for every existing key."""
        wf = self.workflow(workflow)
        with self.storage.read() as s:
            statuses = s.partition_status(wf.name)
            dynamic = s.dynamic_keys()
        if wf.partitions is None:
            return statuses
        return {k: statuses.get(k, MISSING) for k in wf.partitions.get_partition_keys(self._now(), dynamic)}

    # -- dynamic partitions -----------------------------------------------------------------------
    def add_dynamic_partitions(self, name: str, keys: Sequence[str]) -> int:
        """Add keys to a ``DynamicPartitions`` set; returns how many were new."""
        if isinstance(keys, str):
            raise ValueError("keys: expected a list of keys, not one string")
        checked = DynamicPartitions.validate_new_keys(keys)
        with self.storage.write() as s:
            return s.add_dynamic_keys(name, checked)

    def delete_dynamic_partition(self, name: str, key: str) -> bool:
        with self.storage.write() as s:
            return s.delete_dynamic_key(name, key)

    def get_dynamic_partitions(self, name: str) -> list[str]:
        with self.storage.read() as s:
            return s.dynamic_keys([name]).get(name, [])

    # -- backfills (see backfills.py) -----------------------------------------------------------
    backfill = _backfills.backfill
    backfill_schedule = _backfills.backfill_schedule
    rerun_backfill = _backfills.rerun_backfill
    pause_backfill = _backfills.pause_backfill
    resume_backfill = _backfills.resume_backfill
    cancel_backfill = _backfills.cancel_backfill
    wait_backfill = _backfills.wait_backfill

    def get_backfill(self, backfill_id: str, include_run_ids: bool = True) -> BackfillStatus | None:
        """The backfill's status, or ``None``. Pass ``include_run_ids=False`` when polling a big one."""
        with self.storage.read() as s:
            return s.backfill_status(backfill_id, include_run_ids)

    def list_backfills(self, status: str | Sequence[str] | None = None,
                       workflow: str | Workflow | None = None) -> list[BackfillStatus]:
        name = self.workflow(workflow).name if workflow is not None else None
        with self.storage.read() as s:
            rows = s.list_backfills(status, name)
            return [s.backfill_status(r.backfill_id) for r in rows]

    # -- life cycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop coordinating (leases are released) and close storage."""
        self._coordinator.stop()
        if self._storage is not None:
            self._storage.close()

    def __enter__(self) -> "CodeRepository":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _priority(tags: Mapping[str, str], default: int) -> int:
    value = tags.get(PRIORITY_TAG)
    if value is None:
        return default
    try:
        return int(value)
    except ValueError:
        raise ValueError(f"tags: {PRIORITY_TAG} must be an integer, got {value!r}") from None
