"""anachron — a backfill-first workflow orchestrator. Public names, flat.

What defines workflows (decorators, partitions, schedules, statuses, errors) is imported with the package; what
runs them (the repository, executors, the dev context, graphs and mappings) loads on first use (PEP 562), so a
module that only defines workflows, a worker process and the command line start fast."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .clock import LogicalTimeError, now, time
from .context import RunCanceled, RunContext, TaskTimeout, context
from .definitions import Task, Workflow, task, workflow
from .models import (
    BackfillResult,
    BackfillState,
    BackfillStatus,
    ConflictError,
    InvalidTransition,
    NotFoundError,
    Run,
    RunQueueConfig,
    RunStatus,
    ScheduleStatus,
    TagConcurrencyLimit,
)
from .partitions import (
    DailyPartitions,
    DynamicPartitions,
    HourlyPartitions,
    MonthlyPartitions,
    MultiPartitionKey,
    MultiPartitions,
    PartitionKeyRange,
    StaticPartitions,
    TimeWindow,
    TimeWindowPartitions,
    WeeklyPartitions,
)
from .schedules import Schedule
from .storage.errors import StorageError, StorageRejected, StorageUnavailable
from .strategies import BackfillStrategy

#: public name → the module (under ``anachron``) that defines it, loaded when the name is first used
_LAZY = {
    "CodeRepository": "repository",
    "DaskExecutor": "engine.executors.dask", "InProcessExecutor": "engine.executors.inprocess",
    "LocalExecutor": "engine.executors.local",
    "DevContext": "dev", "RunFailed": "dev", "create_context": "dev",
    "Estimate": "estimate", "ProcessTask": "plugins.process", "TaskRuntime": "plugins.base",
    "Dep": "graph", "Graph": "graph", "GraphEdge": "graph", "GraphNode": "graph",
    "AllPartitionsMapping": "mappings", "DimensionMapping": "mappings", "IdentityMapping": "mappings",
    "LastPartitionMapping": "mappings", "PartitionMapping": "mappings", "StaticMapping": "mappings",
    "TimeWindowMapping": "mappings",
}

if TYPE_CHECKING:
    from .dev import DevContext, RunFailed, create_context
    from .engine.executors.dask import DaskExecutor
    from .engine.executors.inprocess import InProcessExecutor
    from .engine.executors.local import LocalExecutor
    from .estimate import Estimate
    from .graph import Dep, Graph, GraphEdge, GraphNode
    from .mappings import (
        AllPartitionsMapping,
        DimensionMapping,
        IdentityMapping,
        LastPartitionMapping,
        PartitionMapping,
        StaticMapping,
        TimeWindowMapping,
    )
    from .plugins.base import TaskRuntime
    from .plugins.process import ProcessTask
    from .repository import CodeRepository


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'anachron' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value  # once: later uses are plain attribute reads
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__version__ = "0.1.0"

__all__ = [
    "AllPartitionsMapping", "BackfillResult", "BackfillState", "BackfillStatus", "BackfillStrategy", "CodeRepository",
    "ConflictError", "DailyPartitions", "DaskExecutor", "Dep", "DevContext", "DimensionMapping", "DynamicPartitions",
    "Estimate", "Graph", "GraphEdge", "GraphNode", "HourlyPartitions", "IdentityMapping", "InProcessExecutor",
    "InvalidTransition", "LastPartitionMapping", "LocalExecutor", "LogicalTimeError", "MonthlyPartitions",
    "MultiPartitionKey", "MultiPartitions", "NotFoundError", "PartitionKeyRange", "PartitionMapping", "ProcessTask",
    "Run", "RunCanceled", "RunContext", "RunFailed", "RunQueueConfig", "RunStatus", "Schedule", "ScheduleStatus",
    "StaticMapping", "StaticPartitions", "StorageError", "StorageRejected", "StorageUnavailable",
    "TagConcurrencyLimit", "Task", "TaskRuntime", "TaskTimeout", "TimeWindow", "TimeWindowMapping",
    "TimeWindowPartitions", "WeeklyPartitions", "Workflow", "context", "create_context", "now", "task", "time",
    "workflow",
]
