"""The API's response shapes, derived from the Python API's records rather than copied.

``Run``, ``BackfillStatus`` and ``ScheduleStatus`` (``anachron.models``) are answered as they are.
``BackfillCreated`` is ``BackfillResult`` with its lazy key lists cut to a preview (a dry run of a million
partitions answers in a few kilobytes) plus where the preview stops; its fields are generated from the
dataclass, so a field added to ``BackfillResult`` appears in the API too.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, create_model

from ..definitions import Workflow
from ..grid import BackfillGrid, GridCell, PartitionGrid
from ..models import BackfillResult, BackfillStatus, ScheduleStatus
from ..partitions import MultiPartitions
from ..requests import model_type_hints

#: How many partition keys, run groups and run ids a backfill answer lists at most.
PREVIEW = 1000


def _from_dataclass(name: str, cls: type, overrides: dict[str, Any], extra: dict[str, Any]) -> type[BaseModel]:
    hints = model_type_hints(cls)
    fields_: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        kind = overrides.get(f.name, hints[f.name])
        if f.default is not dataclasses.MISSING:
            fields_[f.name] = (kind, f.default)
        elif f.default_factory is not dataclasses.MISSING:
            fields_[f.name] = (kind, Field(default_factory=f.default_factory))
        else:
            fields_[f.name] = (kind, ...)
    model: type[BaseModel] = create_model(name, __config__=ConfigDict(arbitrary_types_allowed=True),
                                          __doc__=cls.__doc__, **fields_, **extra)
    return model


BackfillCreated = _from_dataclass(
    "BackfillCreated", BackfillResult,
    {"partition_keys": list[str], "plan": list[list[str]], "run_ids": list[str]},
    {"first_key": (str | None, None), "last_key": (str | None, None),
     "last_run": (list[str] | None, Field(None, description="The keys of the last planned run (the plan's preview "
                                                          "may stop before it)")),
     "preview_truncated": (bool, Field(False, description=f"True when partition_keys, plan or run_ids list only "
                                                          f"the first {PREVIEW}"))})


#: ``BackfillStatus`` as answered (its ``request`` is the request's own model: the POST body's schema)
BackfillStatusOut = _from_dataclass("BackfillStatus", BackfillStatus, {}, {})


def backfill_created(result: BackfillResult) -> BaseModel:
    keys = result.partition_keys
    values = {f.name: getattr(result, f.name) for f in dataclasses.fields(result)}
    values["partition_keys"] = list(itertools.islice(keys, PREVIEW))
    values["plan"] = [list(group) for group in itertools.islice(result.plan, PREVIEW)]
    values["run_ids"] = list(itertools.islice(result.run_ids, PREVIEW))
    truncated = len(keys) > PREVIEW or len(result.plan) > PREVIEW or len(result.run_ids) > PREVIEW
    plan = result.plan
    return BackfillCreated(**values, first_key=keys[0] if len(keys) else None,
                           last_key=keys[len(keys) - 1] if len(keys) else None,
                           last_run=list(plan[len(plan) - 1]) if len(plan) else None, preview_truncated=truncated)


class WorkflowInfo(BaseModel):
    """A workflow as the API lists it."""

    model_config = ConfigDict(frozen=True)

    name: str
    namespace: str = Field(description="A YAML flow's namespace; a Python workflow's module, or 'default'")
    partitions: str | None = Field(description="The partitions definition, as Python would print it")
    partitioned: bool
    tags: dict[str, str]
    schedules: list[ScheduleStatus]
    dimensions: list[str] | None = Field(None, description="The dimensions of a multi-partitioned workflow, in order")
    backfill_strategy: Any = Field(None, description="The workflow's default backfill strategy in the request's "
                                                     "JSON form (null: multi_run)")

    @classmethod
    def of(cls, wf: Workflow, schedules: Sequence[ScheduleStatus]) -> WorkflowInfo:
        dimensions = wf.partitions.dimension_names if isinstance(wf.partitions, MultiPartitions) else None
        strategy = wf.backfill_strategy
        return cls(name=wf.name, namespace=namespace_of(wf), partitions=None if wf.partitions is None else
                   repr(wf.partitions), partitioned=wf.partitions is not None, tags=dict(wf.tags),
                   schedules=[s for s in schedules if s.workflow == wf.name],
                   dimensions=None if dimensions is None else list(dimensions),
                   backfill_strategy=None if strategy is None else strategy.to_dict())


def namespace_of(wf: Workflow) -> str:
    """Kestra's namespace of a workflow: a YAML flow's own, a Python workflow's module, else ``default``."""
    namespace = getattr(wf, "namespace", None)
    if isinstance(namespace, str) and namespace:
        return namespace
    module = wf.module
    if isinstance(module, str) and module and module != "__main__" and not module.startswith("_"):
        return module
    return "default"


class PartitionState(BaseModel):
    key: str
    status: str


class PartitionPage(BaseModel):
    """One page of a workflow's partitions, in key order; ``next_key`` starts the next page."""

    workflow: str
    partitions: list[PartitionState]
    next_key: str | None


class LogLine(BaseModel):
    attempt: int
    time: datetime
    level: str
    message: str


class RunLogs(BaseModel):
    run_id: str
    status: str
    lines: list[LogLine]
    next_offset: int = Field(description="Pass as ?offset= to read only the lines logged after these")


class Canceled(BaseModel):
    canceled: bool = Field(description="False when it had already finished")


class Health(BaseModel):
    status: str
    version: str


class Cell(BaseModel):
    """One cell of a status grid: runs (or keys) ``first_index``..``last_index`` and their counts."""

    first_index: int
    last_index: int
    status: str = Field(description="The cell's colour: failed first, then running, queued, ...")
    counts: dict[str, int]
    first_key: str | None = None
    last_key: str | None = None
    run_id: str | None = Field(None, description="Set when the cell is one run")
    workflow: str | None = Field(None, description="In a backfill of several workflows: the workflow of the cell's "
                                                   "runs (when they all belong to one)")

    @classmethod
    def of(cls, cell: GridCell) -> Cell:
        return cls(first_index=cell.first_index, last_index=cell.last_index, status=cell.status,
                   counts=dict(cell.counts), first_key=cell.first_key, last_key=cell.last_key, run_id=cell.run_id,
                   workflow=cell.workflow)


class BackfillGridOut(BaseModel):
    """A backfill's runs in plan order as at most ``max_cells`` cells (``pending``: not created yet)."""

    backfill_id: str
    status: str
    total: int
    created: int
    cell_size: int
    counts: dict[str, int]
    cells: list[Cell]

    @classmethod
    def of(cls, grid: BackfillGrid) -> BackfillGridOut:
        return cls(backfill_id=grid.backfill_id, status=grid.status, total=grid.total, created=grid.created,
                   cell_size=grid.cell_size, counts=dict(grid.counts), cells=[Cell.of(c) for c in grid.cells])


class PartitionGridOut(BaseModel):
    """A workflow's partition keys in key order as at most ``max_cells`` cells, counting statuses."""

    workflow: str
    total: int
    cell_size: int
    counts: dict[str, int]
    cells: list[Cell]

    @classmethod
    def of(cls, grid: PartitionGrid) -> PartitionGridOut:
        return cls(workflow=grid.workflow, total=grid.total, cell_size=grid.cell_size, counts=dict(grid.counts),
                   cells=[Cell.of(c) for c in grid.cells])
