"""``CodeRepository``: the workflows plus the instance (storage, executor, limits) — the public façade.

It validates what users pass, builds one ``EngineContext`` and hands it to the coordinator and to the run
and backfill services, which do the work; every method here is a thin, typed door into them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

from .clock import Clock, as_clock
from .definitions import Workflow, WorkflowRegistry, normalize_tags
from .engine.backfills import BackfillService
from .engine.context import DEFAULT_LOG_LIMIT, EngineContext, StorageHandle, WorkerIdentity
from .engine.coordinator import Coordinator
from .engine.daemon import Daemon
from .engine.executors.base import Executor
from .engine.executors.local import LocalExecutor
from .engine.pools import tag_pools
from .engine.queue import QueueLimits
from .engine.runs import RunService
from .engine.scheduler import schedule_statuses, set_paused
from .graph import Graph
from .grid import BackfillGrid, BackfillSnapshot, PartitionGrid
from .limits import check_text
from .loading import unreachable_reason
from .models import (
    MISSING,
    OVERLAP_TAG,
    RUN_TRIGGERS,
    BackfillResult,
    BackfillStatus,
    NotFoundError,
    Run,
    RunQueueConfig,
    ScheduleStatus,
    TagConcurrencyLimit,
)
from .partitions import DynamicPartitions
from .records import RunFilter
from .storage import Storage, default_url, is_memory_url, normalize_url
from .strategies import BackfillStrategy

MIN_SHORT_ID = 4  # characters of a short id (a prefix or a suffix); the web UI shows a run id's last 8
CANDIDATES_SHOWN = 5
PRUNE_BATCH = 5_000  # runs deleted per transaction: a big prune never holds one long write transaction
COUNT_CAP = 10_000  # count_runs / count_backfills count at most this many by default


class CodeRepository:
    """Workflows plus where and how they run.

    >>> repo = ac.CodeRepository(workflows=[etl], storage="sqlite:///.anachron/anachron.db")
    >>> repo.backfill("etl", start="2024-01-01", end="2024-03-31")
    """

    def __init__(self, workflows: Iterable[Workflow] = (), storage: str | Storage | None = None,
                 executor: Executor | None = None, run_queue: RunQueueConfig | None = None,
                 lease_seconds: float = 30, clock: Clock | Callable[[], datetime] | None = None,
                 log_limit: int = DEFAULT_LOG_LIMIT):
        self.workflow_registry = WorkflowRegistry(workflows)
        if executor is not None and not isinstance(executor, Executor):
            raise ValueError("executor: expected ac.InProcessExecutor, ac.LocalExecutor or ac.DaskExecutor")
        if run_queue is not None and not isinstance(run_queue, RunQueueConfig):
            raise ValueError("run_queue: expected ac.RunQueueConfig")
        if isinstance(lease_seconds, bool) or not isinstance(lease_seconds, (int, float)) or not lease_seconds > 0:
            raise ValueError(f"lease_seconds: must be > 0, got {lease_seconds!r}")
        if isinstance(log_limit, bool) or not isinstance(log_limit, int) or log_limit < 1000:
            raise ValueError(f"log_limit: must be an integer >= 1000 (bytes per run), got {log_limit!r}")
        self.executor = executor or LocalExecutor(max_workers=4)
        engine_clock = as_clock(clock)
        if not self.executor.shares_memory and type(engine_clock).wall is not Clock.wall:
            raise ValueError("clock: a clock that drives leases (ManualClock) cannot be followed by worker "
                             "processes; use ac.InProcessExecutor with it")
        if not self.executor.shares_memory:
            for wf in self.workflow_registry.values():
                reason = unreachable_reason(wf)
                if reason is not None:
                    raise ValueError(f"workflows: {reason}")
        self.run_queue = run_queue or RunQueueConfig()
        self.lease_seconds = float(lease_seconds)
        self.storage_url = storage.url if isinstance(storage, Storage) else normalize_url(storage or default_url())
        if is_memory_url(self.storage_url) and self.run_queue.pools and not self.executor.shares_memory:
            raise ValueError("run_queue.pools: an in-memory database (sqlite://) cannot be shared with worker "
                             "processes; use a file or PostgreSQL, or InProcessExecutor")
        tag_limits = tuple(self.run_queue.tag_concurrency_limits)
        if any(s.overlap in ("buffer", "skip") for w in self.workflow_registry.values() for s in w.schedules):
            # one run at a time per buffered or skipping schedule: its next tick's run (or the ticks recovered
            # together after downtime) wait in the queue
            tag_limits += (TagConcurrencyLimit(OVERLAP_TAG, limit=1, per_unique_value=True),)
        limits = QueueLimits(self.run_queue.max_concurrent_runs,
                             {n: w.max_concurrent_runs for n, w in self.workflow_registry.items()
                              if w.max_concurrent_runs},
                             tag_limits, self.run_queue.priority_aging_seconds)
        self._engine = EngineContext(
            registry=self.workflow_registry,
            storage_handle=StorageHandle(self.storage_url, storage if isinstance(storage, Storage) else None),
            executor=self.executor, limits=limits, clock=engine_clock, identity=WorkerIdentity.new(),
            lease_seconds=self.lease_seconds, log_limit=log_limit,
            # task calls count against pools and, by their tags, against tag limits (slots in storage)
            pools={**self.run_queue.pools, **tag_pools(self.run_queue.tag_concurrency_limits)})
        self._coordinator = Coordinator(self._engine)
        self._runs = RunService(self._engine, self._coordinator)
        self._backfills = BackfillService(self._engine, self._coordinator)

    @property
    def storage(self) -> Storage:
        """The storage, opened (and migrated) on first use — not when the repository is defined, so a
        module that defines one can be imported anywhere (worker processes do) without touching it."""
        return self._engine.storage

    # -- definitions ----------------------------------------------------------------------------
    @property
    def workflows(self) -> list[Workflow]:
        return list(self.workflow_registry.values())

    def workflow(self, workflow: str | Workflow, field: str = "workflow") -> Workflow:
        """The workflow named (or given); ``ValueError`` naming it when unknown."""
        return self.workflow_registry.lookup(workflow, field)

    # -- runs -----------------------------------------------------------------------------------
    def run(self, workflow: str | Workflow, partition_key: str | None = None, params: Mapping[str, Any] | None = None,
            tags: Mapping[str, str] | Iterable[tuple[str, str]] | None = None, run_name: str | None = None,
            scheduled_time: datetime | None = None, idempotency_key: str | None = None,
            environ: Mapping[str, str] | None = None, block: bool = True, coordinate: bool = True) -> Run:
        """Submit one run (and by default wait for it). The same ``idempotency_key`` returns the same run.

        A ``scheduled_time`` in the future defers it (Prefect's ``--start-at``): it stays queued until then, and
        this process (or a daemon, or any process waiting on it) starts it then; its logical time is the
        scheduled time. With ``block=False`` it runs here while the repository lives; at exit (or ``close()``)
        an unfinished run is handed back, queued, with a line on stderr. ``coordinate=False`` (with
        ``block=False``) only stores it: a daemon or the next process waiting on it runs it."""
        record = self._runs.submit(self.workflow(workflow), partition_key, params, tags, run_name, scheduled_time,
                                   idempotency_key, environ, coordinate=coordinate or block)
        if block and record.status in ("queued", "running"):
            record = self._runs.wait(record.run_id)
        return record.to_run()

    def wait_run(self, run_id: str, timeout: float | None = None) -> Run:
        """Wait until a run has finished (taking it over if the process running it died)."""
        return self._runs.wait(check_text(run_id, "run_id"), timeout).to_run()

    def get_run(self, run_id: str) -> Run | None:
        record = self._runs.get(check_text(run_id, "run_id"))
        return record.to_run() if record is not None else None

    def resolve_run_id(self, run_id: str) -> str:
        """The full id of the run ``run_id`` names: the id itself, or a prefix or suffix of one run's id of at
        least ``MIN_SHORT_ID`` characters (the web UI shows a run id's last 8). ``NotFoundError`` when no run
        matches; ``ValueError`` naming the candidates when several do."""
        return self._resolve_id("run", run_id)

    def resolve_backfill_id(self, backfill_id: str) -> str:
        """As ``resolve_run_id``, for a backfill id."""
        return self._resolve_id("backfill", backfill_id)

    def _resolve_id(self, kind: str, given: str) -> str:
        def read(s: Any) -> list[str]:
            exact = s.get_run(given) if kind == "run" else s.get_backfill(given)
            if exact is not None:
                return [given]
            return s.ids_matching(kind, given, CANDIDATES_SHOWN + 1) if len(given) >= MIN_SHORT_ID else []

        return pick_id(kind, given, self.storage.run(read, write=False))

    def list_runs(self, workflow: str | Workflow | None = None, status: str | Sequence[str] | None = None,
                  backfill_id: str | None = None, tags: Mapping[str, str] | None = None,
                  limit: int | None = 100, offset: int = 0, *, partition_key: str | None = None,
                  trigger: str | None = None, created_after: datetime | None = None,
                  created_before: datetime | None = None) -> list[Run]:
        """Runs, newest first; every filter is applied by the database. A workflow named by a string need
        not be defined any more: its history stays listable. ``offset`` skips that many (paging).
        ``partition_key``: the runs that covered that key (alone, or among the keys of a batched run);
        ``trigger``: ``"backfill"``, ``"scheduled"`` (a schedule's tick) or ``"manual"`` (anything else);
        ``created_after`` (inclusive) / ``created_before`` (exclusive): when they were created."""
        where = self._run_filter(workflow, status, backfill_id, tags, partition_key, trigger, created_after,
                                 created_before, limit, offset)
        return [r.to_run() for r in self.storage.run(lambda s: s.list_runs(where), write=False)]

    def count_runs(self, workflow: str | Workflow | None = None, status: str | Sequence[str] | None = None,
                   backfill_id: str | None = None, tags: Mapping[str, str] | None = None, *,
                   partition_key: str | None = None, trigger: str | None = None,
                   created_after: datetime | None = None, created_before: datetime | None = None,
                   cap: int = COUNT_CAP) -> int:
        """How many runs ``list_runs`` with the same filters would list without a limit — counting at most
        ``cap`` (a paged list says "10,000+" instead of counting millions)."""
        where = self._run_filter(workflow, status, backfill_id, tags, partition_key, trigger, created_after,
                                 created_before, None, 0)
        return self.storage.run(lambda s: s.count_runs(where, _cap(cap)), write=False)

    @staticmethod
    def _run_filter(workflow: str | Workflow | None, status: str | Sequence[str] | None, backfill_id: str | None,
                    tags: Mapping[str, str] | None, partition_key: str | None, trigger: str | None,
                    created_after: datetime | None, created_before: datetime | None, limit: int | None,
                    offset: int) -> RunFilter:
        if trigger is not None and trigger not in RUN_TRIGGERS:
            raise ValueError(f"trigger: expected one of {', '.join(RUN_TRIGGERS)}, got {trigger!r}")
        return RunFilter(check_text(_name_of(workflow), "workflow"),
                         (status,) if isinstance(status, str) else tuple(status or ()),
                         check_text(backfill_id, "backfill_id"), normalize_tags(tags), limit, _offset(offset),
                         check_text(partition_key, "partition_key"), trigger,
                         _epoch(created_after, "created_after"), _epoch(created_before, "created_before"))

    def cancel_run(self, run_id: str) -> bool:
        """Cancel a queued or running run. ``False`` when it had already finished."""
        return self._runs.cancel(check_text(run_id, "run_id"))

    def run_logs(self, run_id: str) -> list[dict[str, Any]]:
        """The log lines of a run (every attempt), oldest first."""
        check_text(run_id, "run_id")

        def read(s: Any) -> list[Any] | None:
            return s.run_logs(run_id) if s.get_run(run_id) is not None else None

        lines = self.storage.run(read, write=False)
        if lines is None:
            raise NotFoundError(f"run {run_id!r} not found")
        return [{"attempt": line.attempt, "time": datetime.fromtimestamp(line.ts, timezone.utc), "level": line.level,
                 "message": line.message} for line in lines]

    def partition_status(self, workflow: str | Workflow, *, from_key: str | None = None, to_key: str | None = None,
                         limit: int | None = None) -> dict[str, str]:
        """key → ``missing`` | ``queued`` | ``running`` | ``success`` | ``failed``, in key order: every key, or
        the keys from ``from_key`` to ``to_key`` (inclusive), at most ``limit`` of them — a page of a big
        workflow without reading the rest. The database computes each key's latest run."""
        wf = self.workflow(workflow)
        if wf.partitions is None:
            return self.storage.run(lambda s: s.partition_statuses(wf.name), write=False)
        dynamic = self.storage.run(lambda s: s.dynamic_keys(), write=False)
        keys = wf.partitions.get_partition_keys(self._engine.now(), dynamic)
        first = self._key_index(wf, keys, "from_key", from_key) if from_key is not None else 0
        last = self._key_index(wf, keys, "to_key", to_key) + 1 if to_key is not None else len(keys)
        if limit is not None:
            if isinstance(limit, bool) or not isinstance(limit, int) or limit < 0:
                raise ValueError(f"limit: must be an integer >= 0, got {limit!r}")
            last = min(last, first + limit)
        page = keys[first:max(first, last)]
        paged = from_key is not None or to_key is not None or limit is not None
        known = self.storage.run(lambda s: s.partition_statuses(wf.name, list(page) if paged else None), write=False)
        return {k: known.get(k, MISSING) for k in page}

    def partition_grid(self, workflow: str | Workflow, max_cells: int = 2000) -> PartitionGrid:
        """The workflow's partition keys in key order as at most ``max_cells`` cells (``anachron.grid``), each
        counting its keys' ``partition_status`` (``missing`` for keys without runs). Cost: the database
        computes the latest run of every key that has runs (as ``partition_status(workflow)`` does), so it
        grows with the workflow's history — fine for thousands of keys, seconds for a million keys with runs;
        ``backfill_grid`` is the cheap one."""
        from .engine.grids import read_partition_grid

        return read_partition_grid(self._engine, self.workflow(workflow), max_cells)

    @staticmethod
    def _key_index(wf: Workflow, keys: Sequence[str], field: str, key: str) -> int:
        try:
            return keys.index(key)
        except ValueError:
            raise ValueError(f"{field}: {key!r} is not a partition key of workflow {wf.name!r}") from None

    def graph(self) -> Graph:
        """The workflows as nodes (upstreams first, with their partitions) and their dependencies as edges (with
        their mappings): SPEC §8."""
        return self.workflow_registry.graph.describe(self.workflow_registry)

    # -- dynamic partitions -----------------------------------------------------------------------
    def add_dynamic_partitions(self, name: str, keys: Sequence[str]) -> int:
        """Add keys to a ``DynamicPartitions`` set; returns how many were new."""
        if isinstance(keys, str):
            raise ValueError("keys: expected a list of keys, not one string")
        check_text(name, "name")
        checked = DynamicPartitions.validate_new_keys(keys)
        return self.storage.run(lambda s: s.add_dynamic_keys(name, checked))

    def delete_dynamic_partition(self, name: str, key: str) -> bool:
        check_text(name, "name")
        check_text(key, "key")
        return self.storage.run(lambda s: s.delete_dynamic_key(name, key))

    def get_dynamic_partitions(self, name: str) -> list[str]:
        check_text(name, "name")
        return self.storage.run(lambda s: s.dynamic_keys([name]), write=False).get(name, [])

    # -- backfills --------------------------------------------------------------------------------
    def backfill(self, workflow: str | Workflow | None = None, selection: Sequence[str | Workflow] | None = None,
                 partition_keys: Sequence[str] | None = None, partition_range: Any = None, start: Any = None,
                 end: Any = None, strategy: BackfillStrategy | None = None, failure_policy: str = "continue",
                 max_concurrency: int = 4, tags: Iterable[tuple[str, str]] | Mapping[str, str] | None = None,
                 config: Mapping[str, Mapping[str, Any]] | None = None, params: Mapping[str, Any] | None = None,
                 reprocess: str = "all", order: str = "oldest_first", idempotency_key: str | None = None,
                 block: bool = True, dry_run: bool = False, include: str = "selection",
                 coordinate: bool = True, cron: str | None = None, timezone: str | None = None) -> BackfillResult:
        """Run a workflow as if triggered over past partitions (or schedule ticks). See SPEC §2.

        ``include``: ``"selection"`` (the workflows named), ``"downstream"`` / ``"upstream"`` (plus every workflow
        downstream / upstream of them, for the keys mapped through the graph: SPEC §8).
        ``cron`` (with ``timezone``, default UTC): for a workflow without partitions, one run per tick of the
        cron in ``[start, end]``, each at its tick's logical time (an ``end`` after now ends at now).
        ``coordinate=False`` (with ``block=False``) only stores the backfill, ``requested``: the daemon or
        the next process that waits on it leads it."""
        from .requests import BackfillRequest

        asked = locals()  # this method's parameters are the request's fields (and block, coordinate)
        request = BackfillRequest.from_python(**{name: asked[name] for name in BackfillRequest.model_fields
                                                 if name in asked})
        return self._backfills.create(request, block=block, coordinate=coordinate)

    def create_backfill(self, request: Any, *, block: bool = True, coordinate: bool = True,
                        created_by: str | None = None) -> BackfillResult:
        """Submit a validated ``BackfillRequest`` (what the CLI and the HTTP API build). ``created_by``: who asks
        (the server passes its API token's name); by default the OS user of this process."""
        return self._backfills.create(request, block=block, coordinate=coordinate, created_by=created_by)

    def backfill_schedule(self, workflow: str | Workflow, trigger_id: str = "schedule", start: Any = None,
                          end: Any = None, inputs: Mapping[str, Any] | None = None, labels: Any = None,
                          block: bool = True, dry_run: bool = False, coordinate: bool = True,
                          created_by: str | None = None, **options: Any) -> BackfillResult:
        """Replay the cron ticks of one schedule in ``[start, end]`` (Kestra-style): a backfill like any other.
        Only past ticks: an ``end`` after now (or none) ends at now. A trigger has one active backfill at a
        time: a second is refused (``ConflictError``, naming the active one)."""
        from .requests import BackfillRequest

        wf = self.workflow(workflow)
        wf.get_schedule(trigger_id)
        request = BackfillRequest.for_schedule(wf, trigger_id, start=start, end=end, inputs=inputs, labels=labels,
                                               dry_run=dry_run, **options)
        return self._backfills.create(request, block=block, coordinate=coordinate, created_by=created_by)

    def rerun_backfill(self, backfill_id: str, block: bool = True, dry_run: bool = False,
                       coordinate: bool = True, created_by: str | None = None) -> BackfillResult:
        """A new backfill of only the failed and canceled partitions, tagged ``anachron/rerun_of``."""
        return self._backfills.rerun(check_text(backfill_id, "backfill_id"), block=block, dry_run=dry_run,
                                     coordinate=coordinate, created_by=created_by)

    def pause_backfill(self, backfill_id: str) -> BackfillStatus:
        """Stop starting new runs of the backfill; runs in flight finish."""
        return self._backfills.pause(check_text(backfill_id, "backfill_id"))

    def resume_backfill(self, backfill_id: str) -> BackfillStatus:
        """Continue a paused backfill where it stopped (the process leading it starts new runs again)."""
        return self._backfills.resume(check_text(backfill_id, "backfill_id"))

    def cancel_backfill(self, backfill_id: str) -> bool:
        """Cancel: queued runs at once, running runs stopped. ``True`` when this process leads the backfill
        and acted directly, ``False`` when the leader elsewhere acts on the marker written to storage."""
        return self._backfills.cancel(check_text(backfill_id, "backfill_id"))

    def wait_backfill(self, backfill_id: str, timeout: float | None = None) -> BackfillStatus:
        """Wait until a backfill has finished; takes over its coordination if its leader died."""
        return self._backfills.wait(check_text(backfill_id, "backfill_id"), timeout)

    def get_backfill(self, backfill_id: str, include_run_ids: bool = True) -> BackfillStatus | None:
        """The backfill's status, or ``None``. Pass ``include_run_ids=False`` when polling a big one."""
        return self._backfills.status(check_text(backfill_id, "backfill_id"), include_run_ids)

    def backfill_grid(self, backfill_id: str, max_cells: int = 2000) -> BackfillGrid:
        """The backfill's planned runs in plan order as at most ``max_cells`` cells for a status grid
        (``anachron.grid``): one cell per run (with its run id) while they fit, else cells of ``cell_size``
        runs counting each status — ``pending`` for runs not created yet (``canceled`` once the backfill has
        ended). Each cell carries the first and last partition key it covers when the plan can be rebuilt.
        Cheap for a million runs: storage counts only the runs that did not succeed. ``NotFoundError`` for
        an unknown id."""
        from .engine.grids import read_backfill_grid

        return read_backfill_grid(self._engine, check_text(backfill_id, "backfill_id"), max_cells)

    def list_backfills(self, status: str | Sequence[str] | None = None, workflow: str | Workflow | None = None,
                       include_run_ids: bool = False, limit: int | None = None, offset: int = 0,
                       tags: Mapping[str, str] | None = None) -> list[BackfillStatus]:
        """Backfills, newest first (filtered by the database). Their ``run_ids`` are left empty unless
        ``include_run_ids``: ``get_backfill`` gives one backfill's. ``workflow`` as in ``list_runs``;
        ``tags``: only backfills carrying every one of them (e.g. ``{"anachron/rerun_of": id}``)."""
        name = check_text(_name_of(workflow), "workflow")
        statuses = (status,) if isinstance(status, str) else tuple(status or ())
        return self._backfills.list(statuses, name, include_run_ids, limit, _offset(offset), normalize_tags(tags))

    def count_backfills(self, status: str | Sequence[str] | None = None, workflow: str | Workflow | None = None,
                        tags: Mapping[str, str] | None = None, cap: int = COUNT_CAP) -> int:
        """How many backfills ``list_backfills`` with the same filters would list, counting at most ``cap``."""
        name, found = _name_of(workflow), normalize_tags(tags)
        statuses = (status,) if isinstance(status, str) else tuple(status or ())
        return self.storage.run(lambda s: s.count_backfills(statuses, name, found, _cap(cap)), write=False)

    def backfill_snapshot(self, backfill_id: str, max_cells: int = 2000, zoom: int | None = None) -> BackfillSnapshot:
        """The backfill's status and its grid (as ``backfill_grid``) read in one transaction, so that the
        counters and the cells agree; ``zoom``: also the runs of that aggregated cell, one cell each.
        ``NotFoundError`` for an unknown id."""
        from .engine.grids import read_backfill_snapshot

        return read_backfill_snapshot(self._engine, backfill_id, max_cells, zoom)

    # -- schedules and the daemon -------------------------------------------------------------------
    def list_schedules(self, workflow: str | Workflow | None = None) -> list[ScheduleStatus]:
        """Every schedule (or one workflow's), with whether it is paused and its last and next tick."""
        return schedule_statuses(self._engine, _name_of(workflow))

    def pause_schedule(self, workflow: str | Workflow, schedule_id: str = "schedule") -> ScheduleStatus:
        """Stop a schedule's ticks from running (in every process); its ticks while paused are passed
        over, not recovered later. Backfills of the schedule still run."""
        return set_paused(self._engine, self.workflow(workflow).name, schedule_id, True)

    def resume_schedule(self, workflow: str | Workflow, schedule_id: str = "schedule") -> ScheduleStatus:
        return set_paused(self._engine, self.workflow(workflow).name, schedule_id, False)

    def daemon(self, scan_seconds: float = 1.0) -> Daemon:
        """The always-on loop for this repository: ``.run()`` (blocking, until ``.stop()``), ``.start()``
        (a background thread) or ``.step()`` (one evaluation, for tests). It fires schedules, leads the
        backfills nobody leads and adopts runs whose process is gone."""
        return Daemon(self._engine, self._coordinator, scan_seconds)

    # -- administration ---------------------------------------------------------------------------
    def prune(self, older_than: timedelta, *, dry_run: bool = False) -> int:
        """Delete the runs that finished more than ``older_than`` ago, with their logs, except each
        partition key's latest run (so ``partition_status`` stays true); queued and running runs stay.
        Returns how many were deleted (with ``dry_run``, how many would be, deleting nothing)."""
        if not isinstance(older_than, timedelta) or older_than <= timedelta(0):
            raise ValueError(f"older_than: must be a positive timedelta, got {older_than!r}")
        before = self._engine.now_ts() - older_than.total_seconds()
        if dry_run:
            return self.storage.run(lambda s: s.count_prunable(before), write=False)
        pruned = 0
        while True:
            batch = len(self.storage.run(lambda s: s.prune_runs(before, PRUNE_BATCH)))
            pruned += batch
            if batch < PRUNE_BATCH:
                return pruned

    # -- life cycle -----------------------------------------------------------------------------
    def close(self) -> None:
        """Stop coordinating (leases are released) and close storage."""
        self._coordinator.stop()
        self._engine.storage_handle.close()

    def __enter__(self) -> CodeRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _name_of(workflow: str | Workflow | None) -> str | None:
    return workflow.name if isinstance(workflow, Workflow) else workflow


def _cap(cap: int) -> int:
    if isinstance(cap, bool) or not isinstance(cap, int) or cap < 1:
        raise ValueError(f"cap: must be an integer >= 1, got {cap!r}")
    return cap


def _epoch(when: datetime | None, field: str) -> float | None:
    if when is None:
        return None
    if not isinstance(when, datetime):
        raise ValueError(f"{field}: expected a datetime, got {when!r}")
    return (when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)).timestamp()


def _offset(offset: int) -> int:
    if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
        raise ValueError(f"offset: must be an integer >= 0, got {offset!r}")
    return offset


def pick_id(kind: str, given: str, candidates: Sequence[str]) -> str:
    """The one id among ``candidates`` (the ids that ``given`` matches, at most ``CANDIDATES_SHOWN + 1``)."""
    if not candidates:
        short = f" (a short id needs at least {MIN_SHORT_ID} characters)" if len(given) < MIN_SHORT_ID else ""
        raise NotFoundError(f"{kind} {given!r} not found{short}")
    if len(candidates) > 1:
        shown = ", ".join(candidates[:CANDIDATES_SHOWN]) + (", …" if len(candidates) > CANDIDATES_SHOWN else "")
        raise ValueError(f"{kind} id {given!r} is ambiguous: it matches {shown}; give more characters")
    return candidates[0]
