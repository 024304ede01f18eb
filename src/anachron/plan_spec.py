"""``PlanSpec``: a backfill's plan as it is frozen and stored, versioned and validated (pydantic).

A plan is decided once, when the backfill is created (``planning.freeze_plan``, ``graph_planning.
freeze_graph_plan``): which workflows, which selection, the ``reprocess`` filter evaluated then and kept as
index ranges, a check of the keys it resolved to, and — for a graph backfill — the graph. Any process rebuilds
the identical plan from it (``planning.build_plan``); a definition that no longer gives the planned keys is
``PlanChanged``. Stored as JSON in the backfill's row; a stored plan from before versions is version 1.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

PLAN_VERSION = 1


class PlanSpec(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    version: Literal[1] = 1
    #: the workflows planned, in plan order (a graph backfill's: upstreams first)
    workflows: list[str]
    #: how keys were picked (``planning.selection_spec``): keys, a range, a time range, ticks, all
    selection: dict[str, Any]
    #: the time the plan was made (ISO-8601): the "now" every key and tick is resolved at
    now: str
    strategy: Any = None  # ``BackfillStrategy.to_dict()``, or None: each workflow's own
    order: Literal["oldest_first", "newest_first"] = "oldest_first"
    reprocess: Literal["all", "failed_and_missing", "missing"] = "all"
    #: per workflow, the index ranges of its keys that run (``None``: all of them)
    kept: dict[str, Any] = Field(default_factory=dict)
    #: per workflow, what identifies the keys it resolved to (``planning.key_check``)
    checks: dict[str, dict[str, Any]] = Field(default_factory=dict)
    #: the dynamic partitions' keys at planning time, when a workflow uses them
    dynamic: dict[str, list[str]] | None = None
    #: per workflow replaying a schedule's ticks: the index ranges of ticks that had a run already
    taken: dict[str, list[list[int]]] | None = None
    #: a graph backfill's graph (``graph_planning``): include, the selected workflows, the edges
    graph: dict[str, Any] | None = None

    @classmethod
    def of(cls, data: PlanSpec | dict[str, Any]) -> PlanSpec:
        return data if isinstance(data, PlanSpec) else cls.model_validate(data)

    def to_json(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)
