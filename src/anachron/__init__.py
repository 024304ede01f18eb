"""anachron — a backfill-first workflow orchestrator. Public names, flat."""

from .clock import LogicalTimeError, now, time
from .context import RunCanceled, RunContext, TaskTimeout, context
from .definitions import Task, Workflow, task, workflow
from .dev import DevContext, RunFailed, create_context
from .engine.executors.dask import DaskExecutor
from .engine.executors.inprocess import InProcessExecutor
from .engine.executors.local import LocalExecutor
from .estimate import Estimate
from .models import (
    BackfillResult,
    BackfillStatus,
    NotFoundError,
    Run,
    RunQueueConfig,
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
from .plugins.base import TaskRuntime
from .plugins.process import ProcessTask
from .repository import CodeRepository
from .schedules import Schedule
from .strategies import BackfillStrategy

__version__ = "0.1.0"

__all__ = [
    "BackfillResult", "BackfillStatus", "BackfillStrategy", "CodeRepository", "DailyPartitions", "DaskExecutor",
    "DevContext",
    "DynamicPartitions", "Estimate", "HourlyPartitions", "InProcessExecutor", "LocalExecutor", "LogicalTimeError",
    "MonthlyPartitions", "MultiPartitionKey", "MultiPartitions", "NotFoundError", "PartitionKeyRange",
    "ProcessTask", "Run",
    "RunCanceled", "RunContext", "RunFailed", "RunQueueConfig", "Schedule", "ScheduleStatus", "StaticPartitions",
    "TagConcurrencyLimit",
    "Task", "TaskRuntime", "TaskTimeout",
    "TimeWindow", "TimeWindowPartitions", "WeeklyPartitions", "Workflow", "context",
    "create_context", "now", "task", "time", "workflow",
]
