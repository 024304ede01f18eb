"""Backfills: create (from a validated ``BackfillRequest``), watch, pause, resume, cancel, rerun.

Creation checks everything against the repository and freezes the plan before a single row is written;
the coordinator of the process that leads the backfill then creates its runs a window at a time.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from .. import lifecycle
from ..clock import time_from_environ
from ..definitions import Workflow, priority_of
from ..estimate import Estimate, RunDuration, combine, estimate_backfill
from ..graph_order import NodePlan, workflow_counts
from ..graph_planning import (
    NODE_KEY,
    backfill_members,
    freeze_graph_plan,
    is_graph_backfill,
    ticks_not_available,
)
from ..models import (
    BACKFILL_PRIORITY,
    CANCELED,
    COMPLETED,
    REQUESTED,
    RERUN_OF_TAG,
    TRIGGER_TAG,
    BackfillResult,
    BackfillState,
    BackfillStatus,
    NotFoundError,
)
from ..params import encode_params
from ..planning import (
    BackfillPlan,
    build_plan,
    clip_to_now,
    freeze_plan,
    is_tick_selection,
    resolve_for,
    schedule_id_of,
    selection_spec,
    trigger_of,
)
from ..records import BackfillRecord, NewBackfill, Outcome, RunFilter
from ..schedules import run_key_prefix
from .context import EngineContext
from .coordinator import Coordinator
from .led import StoredRequest, rebuild_plan
from .triggers import local_user, refuse_second
from .waiting import wait_until

if TYPE_CHECKING:
    from ..requests import BackfillRequest
    from ..storage.contract import StoreSession as Session


class BackfillService:
    def __init__(self, engine: EngineContext, coordinator: Coordinator):
        self.engine = engine
        self.coordinator = coordinator

    # -- creating ---------------------------------------------------------------------------------
    def create(self, request: BackfillRequest, *, block: bool = True, coordinate: bool = True,
               created_by: str | None = None) -> BackfillResult:
        """Plan and store a backfill (or, for a dry run, only plan it). ``created_by``: who asked (an API
        token's name); by default the OS user of this process. A malformed ``ANACHRON_TIME`` in this process's
        environment refuses it (``LogicalTimeError`` names the variable), as it fails a run: never a silent
        fallback, even though a backfill's runs take their logical time from their partitions."""
        time_from_environ(os.environ)
        workflows = self._targets(request)
        if request.trigger_id is not None:
            workflows[0].get_schedule(request.trigger_id)
            if request.start is None:
                raise ValueError("start: a schedule backfill needs a start")
        now = self.engine.now()
        selection = selection_spec(request.partition_keys, request.key_range(), request.start, request.end,
                                   trigger_id=request.trigger_id, now=now, cron=request.cron,
                                   timezone_name=request.timezone)
        selection = clip_to_now(selection, workflows, now)  # only past ticks: the effective end is recorded
        if selection.get("end") != request.end and selection["kind"] == "time":
            request = request.model_copy(update={"end": selection["end"]})
        return self._create(request, workflows, selection, block=block, coordinate=coordinate,
                            created_by=created_by)

    def _targets(self, request: BackfillRequest) -> list[Workflow]:
        registry = self.engine.registry
        if request.workflow is not None:
            return [registry.lookup(request.workflow)]
        if request.selection is not None:
            chosen = [registry.lookup(w, "selection") for w in request.selection]
            return list({w.name: w for w in chosen}.values())
        chosen = [w for w in registry.values() if w.partitions is not None]
        if not chosen:
            raise ValueError("workflow: no workflow given and the repository has no partitioned workflow")
        return chosen

    def _create(self, request: BackfillRequest, workflows: list[Workflow], selection: Mapping[str, Any], *,
                block: bool, coordinate: bool, extra_tags: Mapping[str, str] | None = None,
                created_by: str | None = None) -> BackfillResult:
        from ..requests import Tag, asked_json

        registry = self.engine.registry
        selected = [w.name for w in workflows]
        ticking = [w.name for w in workflows if is_tick_selection(w, selection)]
        graphed = is_graph_backfill(registry.graph, selected, request.include, ticking)
        members = [registry[n] for n in backfill_members(registry.graph, selected, request.include)] if graphed \
            else workflows
        tags = {**request.tag_dict(), **(extra_tags or {})}
        trigger = trigger_of(workflows, selection, tags)
        if trigger is not None:  # every door's backfill of a schedule is that trigger's (Kestra's model)
            tags[TRIGGER_TAG] = trigger[1]
        priority = priority_of(tags, BACKFILL_PRIORITY)
        names = {w.name for w in members}
        for name in request.config:
            if name not in names:
                raise ValueError(f"config: {name!r} is not a workflow of this backfill")
        run_params: dict[str, str] = {}
        for wf in members:
            overrides = request.config.get(wf.name, {})
            wf.validate_params(request.params)
            wf.validate_params(overrides, f"config[{wf.name!r}]")
            merged = {**request.params, **overrides}
            wf.validate_params(merged, complete=True)
            run_params[wf.name] = encode_params(merged)
        storage = self.engine.storage
        key = request.idempotency_key
        if key is not None and not request.dry_run:
            existing = storage.run(lambda s: s.backfill_by_idempotency_key(key), write=False)
            if existing is not None:
                return self.result(existing.backfill_id, block)
        now = self.engine.now()
        reprocess = request.reprocess
        ticks = {} if graphed else {w.name: resolve_for(w, selection, now, {}, len(workflows) > 1)
                                     for w in workflows if is_tick_selection(w, selection)}
        shares = bool(ticks) and not selection.get("cron")  # a schedule's ticks share their runs with it

        history: dict[str, list[RunDuration]] = {}

        def read(s: Session) -> tuple[dict[str, list[str]], dict[str, dict[str, str]], dict[str, set[str]]]:
            if request.dry_run:  # a dry run says how long the backfill would take (anachron.estimate)
                history.update({w.name: s.recent_run_durations(w.name) for w in members})
            statuses = {}
            if reprocess != "all":
                statuses = {w.name: s.partition_statuses(w.name) for w in members
                            if w.name not in ticks and (w.partitions is not None or not graphed)}
                if graphed:  # an unpartitioned workflow of a graph is one node: its latest run decides
                    statuses.update({w.name: _node_status(s, w.name) for w in members if w.partitions is None})
                statuses.update({name: s.tick_statuses(name, keys[0], keys[len(keys) - 1])
                                 for name, keys in ticks.items() if len(keys)})
            taken = {}
            for name, keys in ticks.items():
                if len(keys) and shares:
                    prefix = run_key_prefix(schedule_id_of(self.engine.registry[name], selection))
                    found = s.taken_tick_keys(name, prefix + keys[0], prefix + keys[len(keys) - 1])
                    taken[name] = {k[len(prefix):] for k in found}
            if trigger is not None:
                refuse_second(s, trigger, key)
            return s.dynamic_keys(), statuses, taken

        dynamic, statuses, taken = storage.run(read, write=False)
        if graphed:
            spec = freeze_graph_plan(registry, workflows, request.include, selection, request.backfill_strategy(),
                                     request.order, reprocess, now, dynamic, statuses)
        else:
            spec = freeze_plan(workflows, selection, request.backfill_strategy(), request.order, reprocess, now,
                               dynamic, statuses, taken if shares else None, resolved=ticks)
        plan = build_plan(spec, registry, dynamic, resolved=ticks)
        asked = request.model_copy(update={"tags": [Tag(key=k, value=v) for k, v in tags.items()]})
        if request.dry_run:
            return BackfillResult(None, plan.num_partitions, plan.num_runs, "dry_run", 0, 0, 0, [], True,
                                  plan.partition_keys, plan.groups, self._estimate(plan, history, request),
                                  workflow_counts(plan), request=asked)
        if any(registry[name].depends_on_past for name in ticking):
            raise ValueError(ticks_not_available([n for n in ticking if registry[n].depends_on_past]))
        stored = StoredRequest(spec, request.failure_policy, encode_params(request.params),
                               {w: encode_params(c) for w, c in request.config.items()}, run_params, tags, priority,
                               request.max_concurrency,
                               {name: c["num_partitions"] for name, c in workflow_counts(plan).items()})
        empty = plan.num_runs == 0
        row = NewBackfill(uuid.uuid4().hex[:16], COMPLETED if empty else REQUESTED, tuple(w.name for w in members),
                          {**stored.to_json(), **asked_json(asked, created_by or local_user())},
                          plan.num_partitions, plan.num_runs, request.max_concurrency, priority, tags, key,
                          now.timestamp(), now.timestamp() if empty else None)

        def insert(s: Session) -> BackfillRecord:
            if trigger is not None and not empty:  # one active backfill per trigger, checked under its row lock
                s.lock_schedule(*trigger, now.timestamp())
                refuse_second(s, trigger, key)
            return s.insert_backfill(row)

        record = storage.run(insert)
        if record.backfill_id != row.backfill_id:  # the same idempotency key, submitted concurrently
            return self.result(record.backfill_id, block)
        if not empty and (coordinate or block):
            self.coordinator.lead(record.backfill_id)
        return self.result(record.backfill_id, block, plan)

    def _estimate(self, plan: BackfillPlan, history: Mapping[str, Sequence[RunDuration]],
                  request: BackfillRequest) -> Estimate:
        """How long the planned runs would take here, from each workflow's recent runs: at most
        ``max_concurrency`` at once, and no more than this process's executor and the queue limits allow."""
        engine = self.engine
        caps = {f"the executor's {engine.executor.max_workers} workers": engine.executor.max_workers}
        if engine.limits.max_concurrent_runs is not None:
            caps[f"max_concurrent_runs {engine.limits.max_concurrent_runs} of the run queue"] = \
                engine.limits.max_concurrent_runs
        parts = {}
        for wplan in plan.workflow_plans:
            name = wplan.workflow.name
            own = dict(caps)
            limit = engine.limits.workflow_limits.get(name)
            if limit is not None:
                own[f"max_concurrent_runs {limit} of workflow {name}"] = limit
            parts[name] = estimate_backfill(history.get(name, ()), wplan.num_runs, request.max_concurrency,
                                            partitions=len(wplan.keys), caps=own, workflow=name)
        return combine(parts) if parts else estimate_backfill((), 0, request.max_concurrency, caps=caps)

    def rerun(self, backfill_id: str, *, block: bool = True, dry_run: bool = False,
              coordinate: bool = True, created_by: str | None = None) -> BackfillResult:
        """A new backfill of only the failed and canceled partitions, tagged ``anachron/rerun_of``."""
        from ..requests import BackfillRequest

        record = self._record(backfill_id)
        lifecycle.rerun(backfill_id, record.status)
        stored, plan = rebuild_plan(record, self.engine.registry)
        succeeded = self.engine.storage.run(lambda s: s.succeeded_keys_of_backfill(backfill_id), write=False)
        keys: dict[str, list[str]] = {}
        ticks = False
        nodes: set[str] = set()  # unpartitioned workflows of a graph whose run did not succeed
        for wplan in plan.workflow_plans:
            name = wplan.workflow.name
            ticks = ticks or wplan.is_ticks
            keys[name] = [k for k in wplan.keys if (name, k) not in succeeded]
            if isinstance(wplan, NodePlan) and wplan.num_runs and (name, NODE_KEY) not in succeeded:
                nodes.add(name)
        workflows = [self.engine.registry[name] for name, k in keys.items() if k or name in nodes] or \
            [self.engine.registry[n] for n in keys][:1]
        selection = {"kind": "workflow_keys", "keys": {w.name: keys[w.name] for w in workflows}, "ticks": ticks,
                     **{k: v for k, v in stored.plan.selection.items() if k in ("trigger_id", "cron", "timezone")}}
        request = BackfillRequest.from_python(
            selection=[w.name for w in workflows], strategy=None, failure_policy=stored.failure_policy,
            max_concurrency=stored.max_concurrency,
            tags={k: v for k, v in stored.tags.items() if k != RERUN_OF_TAG}, config=stored.decoded_config(),
            params=stored.decoded_params(), order=stored.plan.order, dry_run=dry_run)
        if stored.plan.strategy:
            request = request.model_copy(update={"strategy": stored.plan.strategy})
        return self._create(request, workflows, selection, block=block, coordinate=coordinate,
                            extra_tags={RERUN_OF_TAG: backfill_id}, created_by=created_by)

    # -- reading ----------------------------------------------------------------------------------
    def _record(self, backfill_id: str) -> BackfillRecord:
        record = self.engine.storage.run(lambda s: s.get_backfill(backfill_id), write=False)
        if record is None:
            raise NotFoundError(f"backfill {backfill_id!r} not found")
        return record

    def status(self, backfill_id: str, include_run_ids: bool = True) -> BackfillStatus | None:
        from ..requests import asked_request

        def read(s: Session) -> BackfillStatus | None:
            record = s.get_backfill(backfill_id)
            if record is None:
                return None
            counts = s.run_counts([backfill_id]).get(backfill_id)
            run_ids = s.run_ids_of_backfill(backfill_id) if include_run_ids else []
            return record.to_status(run_ids, counts.queued if counts else 0, counts.running if counts else 0,
                                    read_workflow_counts(s, record), asked_request(record.request))

        return self.engine.storage.run(read, write=False)

    def list(self, statuses: Sequence[str] = (), workflow: str | None = None, include_run_ids: bool = False,
             limit: int | None = None, offset: int = 0, tags: Mapping[str, str] | None = None) -> list[BackfillStatus]:
        from ..requests import asked_request

        def read(s: Session) -> list[BackfillStatus]:
            records = s.list_backfills(statuses, workflow, limit, offset, tags)
            counts = s.run_counts([r.backfill_id for r in records])
            found = []
            for r in records:
                c = counts.get(r.backfill_id)
                run_ids = s.run_ids_of_backfill(r.backfill_id) if include_run_ids else []
                found.append(r.to_status(run_ids, c.queued if c else 0, c.running if c else 0,
                                         read_workflow_counts(s, r), asked_request(r.request)))
            return found

        return self.engine.storage.run(read, write=False)

    def result(self, backfill_id: str, block: bool, plan: BackfillPlan | None = None) -> BackfillResult:
        status = self.wait(backfill_id) if block else self.status(backfill_id)
        assert status is not None
        if plan is None:
            _, plan = rebuild_plan(self._record(backfill_id), self.engine.registry)
        return BackfillResult(backfill_id, status.total_partitions, plan.num_runs, status.status,
                              status.completed_partitions, status.failed_partitions, status.canceled_partitions,
                              status.run_ids, False, plan.partition_keys, plan.groups, workflows=workflow_counts(plan),
                              request=status.request)

    def wait(self, backfill_id: str, timeout: float | None = None) -> BackfillStatus:
        """Wait until a backfill has finished, taking over its coordination if its leader died."""
        coordinator = self.coordinator

        def look() -> tuple[BackfillStatus | None, str]:
            record = self._record(backfill_id)
            if record.status in lifecycle.FINISHED_BACKFILL and record.owner is None:
                return self.status(backfill_id), record.status
            return None, record.status

        def between() -> None:
            if not coordinator.leads(backfill_id):
                coordinator.lead(backfill_id)

        return wait_until(coordinator, look, what=f"backfill {backfill_id}", timeout=timeout, runs=False,
                          between=between)

    # -- control ----------------------------------------------------------------------------------
    def pause(self, backfill_id: str) -> BackfillStatus:
        """Stop starting new runs of the backfill; runs in flight finish."""
        self._set_status(backfill_id, lifecycle.pause)
        return self._status_or_raise(backfill_id)

    def resume(self, backfill_id: str) -> BackfillStatus:
        """Continue a paused backfill where it stopped."""
        self._set_status(backfill_id, lifecycle.resume)
        return self._status_or_raise(backfill_id)

    def _set_status(self, backfill_id: str, rule: Any) -> None:
        now = self.engine.now_ts()

        def change(s: Session) -> None:
            record = s.get_backfill(backfill_id, for_update=True)
            if record is None:
                raise NotFoundError(f"backfill {backfill_id!r} not found")
            s.move_backfill(backfill_id, rule(backfill_id, record.status), now)

        self.engine.storage.run(change)
        self.coordinator.wake(control=True)

    def _status_or_raise(self, backfill_id: str) -> BackfillStatus:
        status = self.status(backfill_id)
        if status is None:
            raise NotFoundError(f"backfill {backfill_id!r} not found")
        return status

    def cancel(self, backfill_id: str) -> bool:
        """Cancel: queued runs at once, running runs stopped. ``True`` when this process leads the backfill
        and acted directly, ``False`` when the leader elsewhere acts on the marker written to storage."""
        now = self.engine.now_ts()
        me = self.engine.worker_id
        leads = self.coordinator.leads(backfill_id)

        def cancel(s: Session) -> lifecycle.CancelPlan | None:
            record = s.get_backfill(backfill_id, for_update=True)
            if record is None:
                raise NotFoundError(f"backfill {backfill_id!r} not found")
            if record.status not in lifecycle.ACTIVE_BACKFILL:
                return None
            live = s.live_worker_ids(self.engine.wall())  # leases are wall-clock time
            plan = lifecycle.plan_cancel(s.active_runs(backfill_ids=[backfill_id]), live, me)
            s.finish_runs([Outcome(r, CANCELED, "backfill canceled") for r in plan.finish_now], now)
            s.request_cancel(plan.ask_owner)
            s.move_backfill(backfill_id, BackfillState.CANCELED, now, cancel_requested=True)
            if not lifecycle.leader_alive(record, live):  # nobody will end it: do it here
                fresh = s.get_backfill(backfill_id)
                assert fresh is not None
                end = lifecycle.ending(fresh, canceled=True)
                s.move_backfill(backfill_id, end.status, now, canceled=end.canceled, ended_at=now, owner=None)
            return plan

        plan = self.engine.storage.run(cancel)
        if plan is None:
            return False
        self.coordinator.cancel_local(plan.stop_here)
        self.coordinator.wake(control=True)
        return leads


def _node_status(s: Session, workflow: str) -> dict[str, str]:
    """The status of an unpartitioned workflow as a graph node: its latest run that was not canceled."""
    latest = s.list_runs(RunFilter(workflow, ("queued", "running", "success", "failed"), limit=1))
    return {NODE_KEY: latest[0].status} if latest else {}


def read_workflow_counts(s: Session, record: BackfillRecord) -> dict[str, dict[str, int]] | None:
    """Per workflow, partitions by status: read for a graph backfill (several workflows, or keys that wait for
    each other); a one-workflow backfill's come from its counters."""
    if len(record.workflows) > 1 or "graph" in record.request.get("plan", {}):
        return s.workflow_counts(record.backfill_id)
    return None
