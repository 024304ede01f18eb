"""anachron — a backfill-first workflow orchestrator. Public names, flat."""

from .clock import LogicalTimeError, now, time
from .context import RunCanceled, RunContext, context
from .definitions import Task, Workflow, task, workflow
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
from .models import (
    BackfillResult,
    BackfillState,
    BackfillStatus,
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
from .repository import CodeRepository
from .runtime import TaskTimeout
from .schedules import Schedule
from .storage.errors import StorageError, StorageRejected, StorageUnavailable
from .strategies import BackfillStrategy

__version__ = "0.1.0"

__all__ = [
    "AllPartitionsMapping", "BackfillResult", "BackfillState", "BackfillStatus", "BackfillStrategy", "CodeRepository",
    "DailyPartitions", "DaskExecutor", "Dep", "DevContext", "DimensionMapping", "DynamicPartitions", "Estimate",
    "Graph", "GraphEdge", "GraphNode", "HourlyPartitions", "IdentityMapping", "InProcessExecutor",
    "InvalidTransition", "LastPartitionMapping", "LocalExecutor", "LogicalTimeError", "MonthlyPartitions",
    "MultiPartitionKey", "MultiPartitions", "NotFoundError", "PartitionKeyRange", "PartitionMapping", "Run",
    "RunCanceled", "RunContext", "RunFailed", "RunQueueConfig", "RunStatus", "Schedule", "ScheduleStatus",
    "StaticMapping", "StaticPartitions", "StorageError", "StorageRejected", "StorageUnavailable",
    "TagConcurrencyLimit", "Task", "TaskTimeout", "TimeWindow", "TimeWindowMapping", "TimeWindowPartitions",
    "WeeklyPartitions", "Workflow", "context", "create_context", "now", "task", "time", "workflow",
]
