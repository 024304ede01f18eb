"""A graph backfill's readiness rule (SPEC §8), pure: a run starts only once every upstream run it needs in the
same backfill has succeeded; a run whose upstream failed (or was canceled, or was itself blocked) never runs —
it ends ``upstream_failed``, naming the key that blocked it.

The facts come from the plan and one read: ``GraphPlan.needs`` says, for each run of a window, which stretches
of upstream runs it needs (their plan indices and count); storage says which runs of the backfill in those
indices have not succeeded (``Session.unfinished_in_plan``: the runs in flight and the failures — few, whatever
the size of the backfill). Runs below the backfill's cursor exist; a need at or beyond it is not created yet.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from ..graph_order import RunNeeds
from ..models import CANCELED, FAILED, QUEUED, RUNNING, UPSTREAM_FAILED
from ..records import Unfinished

BLOCKING = (FAILED, CANCELED, UPSTREAM_FAILED)
BLOCKED_BECAUSE: dict[str, str] = {FAILED: "failed", CANCELED: "was canceled",
                                    UPSTREAM_FAILED: "did not run: its own upstream failed"}


@dataclass(frozen=True)
class GraphFacts:
    """What a tick knows of a graph backfill's runs that wait: their needs, and the runs of the backfill within
    those needs that have not succeeded."""

    needs: Sequence[RunNeeds]
    unfinished: Sequence[Unfinished]
    cursor: int  # runs below it exist

    def judge(self) -> Verdicts:
        return judge(self.needs, self.unfinished, self.cursor)


@dataclass(frozen=True)
class Verdicts:
    """Per plan index judged: ``ready`` to start, ``waiting`` for upstream runs, or ``blocked`` for good (the
    message names the upstream run that failed)."""

    ready: frozenset[int] = frozenset()
    waiting: frozenset[int] = frozenset()
    blocked: dict[int, str] = field(default_factory=dict)

    def may_start(self, index: int | None) -> bool:
        """Whether the run at ``index`` may start (one this tick did not judge may not)."""
        return index is not None and index in self.ready

    def knows(self, index: int | None) -> bool:
        return index is not None and (index in self.ready or index in self.waiting or index in self.blocked)


def judge(needs: Iterable[RunNeeds], unfinished: Sequence[Unfinished], cursor: int) -> Verdicts:
    by_workflow: dict[str, list[Unfinished]] = {}
    for u in unfinished:
        by_workflow.setdefault(u.workflow, []).append(u)
    for found in by_workflow.values():
        found.sort()
    ready, waiting, blocked = set(), set(), {}
    for run in needs:
        verdict = _verdict(run, by_workflow, cursor)
        if verdict is None:
            ready.add(run.index)
        elif verdict == "":
            waiting.add(run.index)
        else:
            blocked[run.index] = verdict
    return Verdicts(frozenset(ready), frozenset(waiting), blocked)


def _verdict(run: RunNeeds, by_workflow: dict[str, list[Unfinished]], cursor: int) -> str | None:
    """``None``: ready; ``""``: waiting; else why it is blocked."""
    wait = False
    for need in run.needs:
        if need.last_index >= cursor:
            wait = True  # some of it is not created yet
        for u in by_workflow.get(need.workflow, ()):
            if u.plan_index < need.first_index:
                continue
            if u.plan_index > need.last_index:
                break
            if u.status in BLOCKING:
                what = f"{need.workflow} {u.partition_key}" if u.partition_key is not None else need.workflow
                return f"upstream {what} {BLOCKED_BECAUSE[u.status]}"
            if u.status in (QUEUED, RUNNING):
                wait = True
    return "" if wait else None
