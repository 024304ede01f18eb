"""The backfill half of ``CodeRepository``: create, watch, pause, resume, cancel, rerun.

Creation validates everything and freezes the plan before a single row is written; the coordinator
of the process that leads the backfill then materialises its runs a window at a time.
"""

from __future__ import annotations

import time as _time
import uuid
from typing import Any, Iterable, Mapping, Sequence

from .definitions import Workflow, normalize_tags
from .models import (ACTIVE_BACKFILL_STATUSES, BACKFILL_PRIORITY, CANCELED, COMPLETED, FAILED, IN_PROGRESS,
                     PAUSED, QUEUED, REQUESTED, RERUN_OF_TAG, BackfillResult, BackfillStatus, NotFoundError)
from .planning import FAILURE_POLICIES, build_plan, freeze_plan, selection_spec
from .storage.codec import dumps, loads
from .strategies import BackfillStrategy

WAIT_SLICE = 0.5


def backfill(self, workflow: str | Workflow | None = None, selection: Sequence[str | Workflow] | None = None,
             partition_keys: Sequence[str] | None = None, partition_range=None, start=None, end=None,
             strategy: BackfillStrategy | None = None, failure_policy: str = "continue", max_concurrency: int = 4,
             tags: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
             config: Mapping[str, Mapping[str, Any]] | None = None, params: Mapping[str, Any] | None = None,
             reprocess: str = "all", order: str = "oldest_first", idempotency_key: str | None = None,
             block: bool = True, dry_run: bool = False, coordinate: bool = True) -> BackfillResult:
    """Run a workflow as if triggered over past partitions (or schedule ticks). See SPEC §2.

    ``coordinate=False`` (with ``block=False``) only stores the backfill, ``requested``: the daemon or
    the next process that waits on it leads it."""
    workflows = _targets(self, workflow, selection)
    selection_ = selection_spec(partition_keys, partition_range, start, end, now=self._now())
    return _create(self, workflows, selection_, strategy, failure_policy, max_concurrency, tags, config, params,
                   reprocess, order, idempotency_key, block, dry_run, coordinate=coordinate)


def backfill_schedule(self, workflow: str | Workflow, trigger_id: str = "schedule", start=None, end=None,
                      inputs: Mapping[str, Any] | None = None, labels=None, block: bool = True,
                      dry_run: bool = False, **options: Any) -> BackfillResult:
    """Replay the cron ticks of one schedule in ``[start, end]`` (Kestra-style): a backfill like any other."""
    wf = self.workflow(workflow)
    wf.get_schedule(trigger_id)
    if start is None:
        raise ValueError("start: a schedule backfill needs a start")
    selection_ = selection_spec(start=start, end=end, trigger_id=trigger_id, now=self._now())
    return _create(self, [wf], selection_, options.pop("strategy", None), options.pop("failure_policy", "continue"),
                   options.pop("max_concurrency", 4), labels, None, inputs, options.pop("reprocess", "all"),
                   options.pop("order", "oldest_first"), options.pop("idempotency_key", None), block, dry_run,
                   unknown=options)


def _targets(self, workflow, selection) -> list[Workflow]:
    if workflow is not None and selection is not None:
        raise ValueError("selection: give a workflow or a selection, not both")
    if workflow is not None:
        return [self.workflow(workflow)]
    if selection is not None:
        if isinstance(selection, (str, Workflow)):
            selection = [selection]
        chosen = [self.workflow(w, "selection") for w in selection]
        if not chosen:
            raise ValueError("selection: the list is empty")
        return list({w.name: w for w in chosen}.values())
    chosen = [w for w in self._workflows.values() if w.partitions is not None]
    if not chosen:
        raise ValueError("workflow: no workflow given and the repository has no partitioned workflow")
    return chosen


def _create(self, workflows: list[Workflow], selection_: dict, strategy, failure_policy, max_concurrency, tags,
            config, params, reprocess, order, idempotency_key, block, dry_run, extra_tags=None,
            unknown: Mapping[str, Any] | None = None, coordinate: bool = True) -> BackfillResult:
    if unknown:
        raise ValueError(f"{next(iter(unknown))}: unknown option")
    if failure_policy not in FAILURE_POLICIES:
        raise ValueError(f"failure_policy: expected one of {FAILURE_POLICIES}, got {failure_policy!r}")
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int) or max_concurrency < 1:
        raise ValueError(f"max_concurrency: must be an integer >= 1, got {max_concurrency!r}")
    if strategy is not None and not isinstance(strategy, BackfillStrategy):
        raise ValueError("strategy: expected ac.BackfillStrategy.multi_run(), .single_run(), .per_dimension(...) "
                         "or .batched(n)")
    backfill_tags = {**normalize_tags(tags), **(extra_tags or {})}
    from .repository import _priority

    priority = _priority(backfill_tags, BACKFILL_PRIORITY)
    params = dict(params or {})
    config = {k: dict(v) for k, v in (config or {}).items()}
    names = {w.name for w in workflows}
    for name, overrides in config.items():
        if name not in names:
            raise ValueError(f"config: {name!r} is not a workflow of this backfill")
    for wf in workflows:
        wf.validate_params(params)
        wf.validate_params(config.get(wf.name, {}), f"config[{wf.name!r}]")
    if idempotency_key is not None:
        if not isinstance(idempotency_key, str) or not idempotency_key:
            raise ValueError("idempotency_key: must be a non-empty string")
        if not dry_run:
            with self.storage.read() as s:
                row = s.backfill_by_idempotency_key(idempotency_key)
            if row is not None:
                return _result(self, row.backfill_id, block)
    now = self._now()
    with self.storage.read() as s:
        dynamic = s.dynamic_keys()
        statuses = {w.name: s.partition_status(w.name) for w in workflows} if reprocess != "all" else {}
    spec = freeze_plan(workflows, selection_, strategy, order, reprocess, now, dynamic, statuses)
    plan = build_plan(spec, self._workflows, dynamic)
    if dry_run:
        return BackfillResult(None, plan.num_partitions, plan.num_runs, "dry_run", 0, 0, 0, [], True,
                              plan.partition_keys, plan.groups)
    backfill_id = uuid.uuid4().hex[:16]
    request = {"plan": spec, "failure_policy": failure_policy, "params": params, "config": config,
               "tags": backfill_tags, "priority": priority, "max_concurrency": max_concurrency}
    empty = plan.num_runs == 0
    row = {"backfill_id": backfill_id, "status": COMPLETED if empty else REQUESTED,
           "workflows": dumps([w.name for w in workflows]), "request": dumps(request),
           "total_partitions": plan.num_partitions, "total_runs": plan.num_runs, "cursor": 0, "completed": 0,
           "failed": 0, "canceled": 0, "max_concurrency": max_concurrency, "priority": priority,
           "tags": dumps(backfill_tags), "idempotency_key": idempotency_key, "owner": None,
           "cancel_requested": False, "created_at": now.timestamp(), "updated_at": now.timestamp(),
           "ended_at": now.timestamp() if empty else None}
    try:
        with self.storage.write() as s:
            existing = s.backfill_by_idempotency_key(idempotency_key) if idempotency_key else None
            if existing is not None:
                backfill_id = existing.backfill_id
            else:
                s.insert_backfill(row)
    except Exception as exc:  # the same idempotency key submitted concurrently
        if idempotency_key is None or "unique" not in str(exc).lower():
            raise
        with self.storage.read() as s:
            backfill_id = s.backfill_by_idempotency_key(idempotency_key).backfill_id
    if not empty and (coordinate or block):
        self._coordinator.lead(backfill_id)
    return _result(self, backfill_id, block, plan)


def _result(self, backfill_id: str, block: bool, plan=None) -> BackfillResult:
    status = self.wait_backfill(backfill_id) if block else self.get_backfill(backfill_id)
    if plan is None:
        with self.storage.read() as s:
            plan = self._build_plan(loads(s.backfill_row(backfill_id).request)["plan"])
    return BackfillResult(backfill_id, status.total_partitions, plan.num_runs, status.status,
                          status.completed_partitions, status.failed_partitions, status.canceled_partitions,
                          status.run_ids, False, plan.partition_keys, plan.groups)


def wait_backfill(self, backfill_id: str, timeout: float | None = None) -> BackfillStatus:
    """Wait until a backfill has finished; takes over its coordination if its leader died."""
    deadline = None if timeout is None else _time.monotonic() + timeout
    coordinator = self._coordinator
    version = coordinator.version
    while True:
        with self.storage.read() as s:
            row = s.backfill_row(backfill_id)
        if row is None:
            raise NotFoundError(f"backfill {backfill_id!r} not found")
        if row.status in (COMPLETED, FAILED, CANCELED) and row.owner is None:
            return self.get_backfill(backfill_id)
        if not coordinator.leads(backfill_id):
            coordinator.lead(backfill_id)
        remaining = WAIT_SLICE if deadline is None else min(WAIT_SLICE, deadline - _time.monotonic())
        if remaining <= 0:
            raise TimeoutError(f"backfill {backfill_id} still {row.status} after {timeout} s")
        version = coordinator.wait_for_change(version, remaining)


def _row_or_raise(s, backfill_id: str):
    row = s.backfill_row(backfill_id)
    if row is None:
        raise NotFoundError(f"backfill {backfill_id!r} not found")
    return row


def pause_backfill(self, backfill_id: str) -> BackfillStatus:
    """Stop starting new runs of the backfill; runs in flight finish."""
    with self.storage.write() as s:
        row = _row_or_raise(s, backfill_id)
        if row.status not in (REQUESTED, IN_PROGRESS, PAUSED):
            raise ValueError(f"backfill {backfill_id} is {row.status}; only an active backfill can be paused")
        s.update_backfill(backfill_id, status=PAUSED, updated_at=self._now_ts())
    self._coordinator.wake(control=True)
    return self.get_backfill(backfill_id)


def resume_backfill(self, backfill_id: str) -> BackfillStatus:
    """Continue a paused backfill where it stopped (this process leads it if its leader is gone)."""
    with self.storage.write() as s:
        row = _row_or_raise(s, backfill_id)
        if row.status not in (PAUSED, REQUESTED, IN_PROGRESS):
            raise ValueError(f"backfill {backfill_id} is {row.status}; only a paused backfill can be resumed")
        s.update_backfill(backfill_id, status=IN_PROGRESS, updated_at=self._now_ts())
    self._coordinator.wake(control=True)
    return self.get_backfill(backfill_id)


def cancel_backfill(self, backfill_id: str) -> bool:
    """Cancel: queued runs at once, running runs stopped. ``True`` when this process leads the backfill
    and acted directly, ``False`` when the leader elsewhere acts on the marker written to storage."""
    now = self._now_ts()
    leads = self._coordinator.leads(backfill_id)
    with self.storage.write() as s:
        row = _row_or_raise(s, backfill_id)
        if row.status not in ACTIVE_BACKFILL_STATUSES:
            return False
        active = s.active_runs_of(backfill_ids=[backfill_id])
        live = s.live_worker_ids(now)
        leader_alive = row.owner is not None and row.owner in live
        done_now = [r.run_id for r in active
                    if r.status == QUEUED or r.owner not in live or r.owner == self._coordinator.worker_id]
        s.finish_runs([{"run_id": r, "status": CANCELED, "error": "backfill canceled"} for r in done_now], now)
        s.request_cancel([r.run_id for r in active if r.run_id not in set(done_now)])
        s.update_backfill(backfill_id, status=CANCELED, cancel_requested=True, updated_at=now)
        if not leader_alive:  # nobody will finalise it: do it here
            row = s.backfill_row(backfill_id)
            s.update_backfill(backfill_id, canceled=max(0, row.total_partitions - row.completed - row.failed),
                              ended_at=now, owner=None)
    for run in done_now:
        self._coordinator.cancel_local(run)
    self._coordinator.wake(control=True)
    return leads


def rerun_backfill(self, backfill_id: str, block: bool = True, dry_run: bool = False,
                   coordinate: bool = True) -> BackfillResult:
    """A new backfill of only the failed and canceled partitions, tagged ``anachron/rerun_of``."""
    with self.storage.read() as s:
        row = _row_or_raise(s, backfill_id)
        if row.status not in (COMPLETED, FAILED, CANCELED):
            raise ValueError(f"backfill {backfill_id} is {row.status}; rerun it once it has ended (or cancel it)")
        request = loads(row.request)
        succeeded = s.succeeded_keys_of_backfill(backfill_id)
    plan = self._build_plan(request["plan"])
    keys: dict[str, list[str]] = {}
    ticks = False
    for wplan in plan.workflow_plans:
        ticks = ticks or wplan.is_ticks
        keys[wplan.workflow.name] = [k for k in wplan.keys if (wplan.workflow.name, k) not in succeeded]
    workflows = [self.workflow(name) for name, k in keys.items() if k]
    if not workflows:
        workflows = [self.workflow(n) for n in keys][:1]
    selection_ = {"kind": "workflow_keys", "keys": {w.name: keys[w.name] for w in workflows}, "ticks": ticks}
    spec_strategy = request["plan"].get("strategy")
    tags = {k: v for k, v in request["tags"].items() if k != RERUN_OF_TAG}
    return _create(self, workflows, selection_, BackfillStrategy.from_dict(spec_strategy) if spec_strategy else None,
                   request["failure_policy"], request["max_concurrency"], tags, request["config"],
                   request["params"], "all", request["plan"]["order"], None, block, dry_run,
                   extra_tags={RERUN_OF_TAG: backfill_id}, coordinate=coordinate)
