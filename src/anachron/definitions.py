"""``@task``, ``@workflow`` and the registry of definitions."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any, overload

from .models import PRIORITY_TAG
from .partitions import PartitionsDefinition
from .schedules import Schedule
from .strategies import BackfillStrategy

if TYPE_CHECKING:
    from .graph import Dep
    from .plugins.base import TaskRuntime


def normalize_tags(tags: Mapping[str, Any] | Iterable[tuple[str, Any]] | None,
                   field_name: str = "tags") -> dict[str, str]:
    """Tags as a dict of strings; accepts a mapping or a list of ``(key, value)`` pairs."""
    if tags is None:
        return {}
    items = tags.items() if isinstance(tags, Mapping) else tags
    result: dict[str, str] = {}
    try:
        for item in items:
            key, value = item
            if not isinstance(key, str) or not key:
                raise ValueError(f"{field_name}: tag keys must be non-empty strings, got {key!r}")
            result[key] = str(value)
    except (TypeError, ValueError) as exc:
        if isinstance(exc, ValueError) and str(exc).startswith(field_name):
            raise
        raise ValueError(f"{field_name}: expected a mapping or a list of (key, value) pairs") from None
    return result


def priority_of(tags: Mapping[str, str], default: int) -> int:
    """A run's priority: the ``anachron/priority`` tag when given (an integer), else ``default``."""
    value = tags.get(PRIORITY_TAG)
    if value is None:
        return default
    try:
        priority = int(value)
    except ValueError:
        raise ValueError(f"tags: {PRIORITY_TAG} must be an integer, got {value!r}") from None
    if not -2**31 <= priority < 2**31:  # the column's range (a 4-byte integer on PostgreSQL)
        raise ValueError(f"tags: {PRIORITY_TAG} must be between {-2**31} and {2**31 - 1}, got {value!r}")
    return priority


class Task:
    """A unit of work inside a workflow. Calling it runs it (with retries, timeout and pool)."""

    def __init__(self, fn: Callable[..., Any], retries: int = 0, retry_delay: float = 0, timeout: float | None = None,
                 pool: str | None = None, tags: Mapping[str, str] | None = None, name: str | None = None,
                 config: TaskRuntime | None = None):
        if not isinstance(retries, int) or retries < 0:
            raise ValueError(f"task.retries: must be an integer >= 0, got {retries!r}")
        if retry_delay < 0:
            raise ValueError(f"task.retry_delay: must be >= 0, got {retry_delay!r}")
        if timeout is not None and timeout <= 0:
            raise ValueError(f"task.timeout: must be > 0 seconds, got {timeout!r}")
        self.fn = fn
        self.name = name or fn.__name__
        self.retries = retries
        self.retry_delay = retry_delay
        self.timeout = timeout
        self.pool = pool
        self.tags = normalize_tags(tags)
        self.config = config  # where its calls run (a TaskRuntime; None: in the run's own thread)
        functools.update_wrapper(self, fn)
        if config is not None:
            from .plugins.base import check_config  # loaded for a task with a runtime only

            check_config(self, config)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .runtime import call_task  # loaded once a task runs (import anachron stays light)

        return call_task(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<task {self.name}>"


@overload
def task(fn: Callable[..., Any], *, retries: int = 0, retry_delay: float = 0, timeout: float | None = None,
         pool: str | None = None, tags: Mapping[str, str] | None = None, name: str | None = None,
         config: TaskRuntime | None = None) -> Task: ...


@overload
def task(fn: None = None, *, retries: int = 0, retry_delay: float = 0, timeout: float | None = None,
         pool: str | None = None, tags: Mapping[str, str] | None = None, name: str | None = None,
         config: TaskRuntime | None = None) -> Callable[[Callable[..., Any]], Task]: ...


def task(fn: Callable[..., Any] | None = None, *, retries: int = 0, retry_delay: float = 0,
         timeout: float | None = None, pool: str | None = None, tags: Mapping[str, str] | None = None,
         name: str | None = None, config: TaskRuntime | None = None) -> Task | Callable[[Callable[..., Any]], Task]:
    """Declare a task: ``@ac.task`` or ``@ac.task(retries=2, timeout=60, pool="warehouse")``; ``config`` says
    where its calls run (``ac.ProcessTask()``, ``SparkTask()``, ``DaskTask()``; see docs/task-runtimes.md)."""

    def wrap(f: Callable[..., Any]) -> Task:
        return Task(f, retries=retries, retry_delay=retry_delay, timeout=timeout, pool=pool, tags=tags, name=name,
                    config=config)

    return wrap(fn) if fn is not None else wrap


class Workflow:
    """A workflow: a function calling tasks, with its partitions, schedules and defaults."""

    def __init__(self, fn: Callable[..., Any], name: str | None = None, partitions: PartitionsDefinition | None = None,
                 schedule: Schedule | Sequence[Schedule] | None = None, tags: Mapping[str, str] | None = None,
                 backfill_strategy: BackfillStrategy | None = None, max_concurrent_runs: int | None = None,
                 deps: Iterable[Workflow | str | Dep] | None = None, depends_on_past: bool = False):
        if partitions is not None and not isinstance(partitions, PartitionsDefinition):
            raise ValueError(f"workflow.partitions: expected a partitions definition, got {type(partitions).__name__}")
        schedules = [] if schedule is None else [schedule] if isinstance(schedule, Schedule) else list(schedule)
        for s in schedules:
            if not isinstance(s, Schedule):
                raise ValueError(f"workflow.schedule: expected ac.Schedule, got {type(s).__name__}")
        if len({s.id for s in schedules}) != len(schedules):
            raise ValueError("workflow.schedule: schedule ids must be unique")
        if backfill_strategy is not None and not isinstance(backfill_strategy, BackfillStrategy):
            raise ValueError("workflow.backfill_strategy: expected an ac.BackfillStrategy")
        if max_concurrent_runs is not None and (not isinstance(max_concurrent_runs, int) or max_concurrent_runs < 1):
            raise ValueError(f"workflow.max_concurrent_runs: must be an integer >= 1, got {max_concurrent_runs!r}")
        if not isinstance(depends_on_past, bool):
            raise ValueError(f"workflow.depends_on_past: must be True or False, got {depends_on_past!r}")
        self.fn = fn
        self.name = name or fn.__name__
        self.deps: tuple[Dep, ...] = ()
        if deps is not None:
            from .graph import normalize_deps

            self.deps = normalize_deps(deps, self.name)
        self.depends_on_past = depends_on_past
        self.partitions = partitions
        self.schedules: list[Schedule] = schedules
        self.tags = normalize_tags(tags)
        self.backfill_strategy = backfill_strategy
        self.max_concurrent_runs = max_concurrent_runs
        self.module = getattr(fn, "__module__", None)
        self.qualname = getattr(fn, "__qualname__", self.name)
        self.source_file = inspect.getsourcefile(fn) if inspect.isfunction(fn) else None
        functools.update_wrapper(self, fn)

    @property
    def schedule(self) -> Schedule | None:
        return self.schedules[0] if self.schedules else None

    def get_schedule(self, schedule_id: str) -> Schedule:
        for s in self.schedules:
            if s.id == schedule_id:
                return s
        raise ValueError(f"trigger_id: workflow {self.name!r} has no schedule {schedule_id!r}")

    def check_partition_key(self, partition_key: str | None, field: str = "partition_key") -> None:
        """A run of a partitioned workflow needs a partition key; one without partitions takes none."""
        if partition_key is None and self.partitions is not None:
            raise ValueError(f"{field}: workflow {self.name!r} is partitioned ({self.partitions!r}); a run needs a "
                             "partition key")
        if partition_key is not None and self.partitions is None:
            raise ValueError(f"{field}: workflow {self.name!r} has no partitions")

    def accepts_param(self, name: str) -> bool:
        return name in self._params or self._var_kw

    @functools.cached_property
    def _signature(self) -> inspect.Signature:
        return inspect.signature(self.fn)

    @property
    def _params(self) -> Mapping[str, inspect.Parameter]:
        return self._signature.parameters

    @property
    def _var_kw(self) -> bool:
        return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in self._params.values())

    def validate_params(self, params: Mapping[str, Any], field_name: str = "params", complete: bool = False) -> None:
        """Refuse unknown parameters and values storage cannot round-trip, naming them; with ``complete``,
        also required parameters that are missing (``params`` is then everything a run will get)."""
        from .params import check_params

        check_params(self.fn, params, workflow=self.name, field=field_name, require_all=complete)
        # a function may check the values' types itself (a YAML flow's typed inputs)
        getattr(self.fn, "__anachron_validate__", lambda params, field: None)(params, field_name)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<workflow {self.name}>"


@overload
def workflow(fn: Callable[..., Any], *, name: str | None = None, partitions: PartitionsDefinition | None = None,
             schedule: Schedule | Sequence[Schedule] | None = None, tags: Mapping[str, str] | None = None,
             backfill_strategy: BackfillStrategy | None = None, max_concurrent_runs: int | None = None,
             deps: Iterable[Workflow | str | Dep] | None = None, depends_on_past: bool = False) -> Workflow: ...


@overload
def workflow(fn: None = None, *, name: str | None = None, partitions: PartitionsDefinition | None = None,
             schedule: Schedule | Sequence[Schedule] | None = None, tags: Mapping[str, str] | None = None,
             backfill_strategy: BackfillStrategy | None = None, max_concurrent_runs: int | None = None,
             deps: Iterable[Workflow | str | Dep] | None = None,
             depends_on_past: bool = False) -> Callable[[Callable[..., Any]], Workflow]: ...


def workflow(fn: Callable[..., Any] | None = None, *, name: str | None = None,
             partitions: PartitionsDefinition | None = None, schedule: Schedule | Sequence[Schedule] | None = None,
             tags: Mapping[str, str] | None = None, backfill_strategy: BackfillStrategy | None = None,
             max_concurrent_runs: int | None = None, deps: Iterable[Workflow | str | Dep] | None = None,
             depends_on_past: bool = False) -> Workflow | Callable[[Callable[..., Any]], Workflow]:
    """Declare a workflow: ``@ac.workflow`` or ``@ac.workflow(partitions=ac.DailyPartitions("2024-01-01"))``.
    ``deps``: the workflows whose partitions this one reads (``ac.Dep(upstream, mapping=...)`` to say which);
    ``depends_on_past``: each key waits for the key before it (SPEC §8)."""

    def wrap(f: Callable[..., Any]) -> Workflow:
        return Workflow(f, name=name, partitions=partitions, schedule=schedule, tags=tags,
                        backfill_strategy=backfill_strategy, max_concurrent_runs=max_concurrent_runs, deps=deps,
                        depends_on_past=depends_on_past)

    return wrap(fn) if fn is not None else wrap



class WorkflowRegistry(Mapping[str, Workflow]):
    """The workflows of a repository, by name."""

    def __init__(self, workflows: Iterable[Workflow] = ()):
        self._by_name: dict[str, Workflow] = {}
        for wf in workflows:
            if not isinstance(wf, Workflow):
                raise ValueError(f"workflows: {wf!r} is not an @ac.workflow")
            if wf.name in self._by_name:
                raise ValueError(f"workflows: two workflows are named {wf.name!r}")
            self._by_name[wf.name] = wf
        from .graph import WorkflowGraph

        #: the dependencies between these workflows, checked (``ValueError`` naming both workflows otherwise)
        self.graph = WorkflowGraph(self._by_name)

    def __getitem__(self, name: str) -> Workflow:
        return self._by_name[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._by_name)

    def __len__(self) -> int:
        return len(self._by_name)

    def lookup(self, workflow: str | Workflow, field: str = "workflow") -> Workflow:
        """The workflow named (or given); ``ValueError`` naming ``field`` when it is not registered."""
        name = workflow.name if isinstance(workflow, Workflow) else workflow
        if not isinstance(name, str) or name not in self._by_name:
            known = ", ".join(sorted(self._by_name)) or "none"
            raise ValueError(f"{field}: unknown workflow {name!r} (known: {known})")
        return self._by_name[name]

    def defines(self, names: Iterable[str]) -> bool:
        return all(n in self._by_name for n in names)
