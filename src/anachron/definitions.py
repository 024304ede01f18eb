"""``@task``, ``@workflow`` and the registry of definitions."""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable, Iterable, Mapping, Sequence

from .partitions import PartitionsDefinition
from .schedules import Schedule
from .strategies import BackfillStrategy


def normalize_tags(tags: Mapping[str, Any] | Iterable[tuple[str, Any]] | None, field_name: str = "tags") -> dict[str, str]:
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


class Task:
    """A unit of work inside a workflow. Calling it runs it (with retries, timeout and pool)."""

    def __init__(self, fn: Callable, retries: int = 0, retry_delay: float = 0, timeout: float | None = None,
                 pool: str | None = None, tags: Mapping[str, str] | None = None, name: str | None = None):
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
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from .runtime import call_task

        return call_task(self, args, kwargs)

    def __repr__(self) -> str:
        return f"<task {self.name}>"


def task(fn: Callable | None = None, *, retries: int = 0, retry_delay: float = 0, timeout: float | None = None,
         pool: str | None = None, tags: Mapping[str, str] | None = None, name: str | None = None):
    """Declare a task: ``@ac.task`` or ``@ac.task(retries=2, timeout=60, pool="warehouse")``."""

    def wrap(f: Callable) -> Task:
        return Task(f, retries=retries, retry_delay=retry_delay, timeout=timeout, pool=pool, tags=tags, name=name)

    return wrap(fn) if fn is not None else wrap


class Workflow:
    """A workflow: a function calling tasks, with its partitions, schedules and defaults."""

    def __init__(self, fn: Callable, name: str | None = None, partitions: PartitionsDefinition | None = None,
                 schedule: Schedule | Sequence[Schedule] | None = None, tags: Mapping[str, str] | None = None,
                 backfill_strategy: BackfillStrategy | None = None, max_concurrent_runs: int | None = None):
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
        self.fn = fn
        self.name = name or fn.__name__
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

    def validate_params(self, params: Mapping[str, Any], field_name: str = "params") -> None:
        for key in params:
            if not self.accepts_param(key):
                raise ValueError(f"{field_name}: workflow {self.name!r} has no parameter {key!r}")

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<workflow {self.name}>"


def workflow(fn: Callable | None = None, *, name: str | None = None, partitions: PartitionsDefinition | None = None,
             schedule: Schedule | Sequence[Schedule] | None = None, tags: Mapping[str, str] | None = None,
             backfill_strategy: BackfillStrategy | None = None, max_concurrent_runs: int | None = None):
    """Declare a workflow: ``@ac.workflow`` or ``@ac.workflow(partitions=ac.DailyPartitions("2024-01-01"))``."""

    def wrap(f: Callable) -> Workflow:
        return Workflow(f, name=name, partitions=partitions, schedule=schedule, tags=tags,
                        backfill_strategy=backfill_strategy, max_concurrent_runs=max_concurrent_runs)

    return wrap(fn) if fn is not None else wrap

