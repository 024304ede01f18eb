"""Taking work over: leading a backfill that has no live leader, and adopting runs whose process is gone
(the lease vocabulary of APScheduler 4: a lease is acquired while its holder's has lapsed).

Runs a dead (or stalled) process was running are queued again as a new attempt that waits
``lifecycle.takeover_grace`` before it starts: if that process was only frozen or cut off from storage, the
outcome it still holds is recorded instead, and the run's code does not run twice."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from .. import lifecycle
from ..definitions import WorkflowRegistry
from ..planning import PlanChanged
from .led import LedBackfill, rebuild_plan

if TYPE_CHECKING:
    from ..storage.contract import StoreSession as Session

log = logging.getLogger("anachron.coordinator")


@dataclass
class TakenOver:
    led: dict[str, LedBackfill] = field(default_factory=dict)  # backfills this process leads from now on
    handled: set[str] = field(default_factory=set)  # backfill requests answered (led, done, or not ours)
    handled_runs: set[str] = field(default_factory=set)
    requeued: int = 0  # runs queued again (a new attempt)
    failed: list[str] = field(default_factory=list)  # backfills ended because their plan cannot be rebuilt
    unknown: list[str] = field(default_factory=list)  # backfills whose workflows this repository lacks


def take_over(s: Session, *, owner: str, registry: WorkflowRegistry, backfills: Collection[str],
              runs: Collection[str], leading: Collection[str], live: frozenset[str], now: float,
              grace: float) -> TakenOver:
    """Lead the ``backfills`` asked for that have no live leader (``leading``: those this process leads
    already), and adopt the ``runs`` whose process is gone."""
    out = TakenOver()
    for backfill_id in backfills:
        record = s.get_backfill(backfill_id)
        if record is not None and not registry.defines(record.workflows):
            out.unknown.append(backfill_id)
            record = None
        if record is None or record.status in lifecycle.FINISHED_BACKFILL or (
                backfill_id in leading and record.owner == owner):
            out.handled.add(backfill_id)
            continue
        if not s.acquire_backfill(backfill_id, owner, live, now):
            continue  # someone alive leads it: asked again later
        # read it again now that its row is ours (locked until the tick commits): a pause or cancel that
        # committed after the first read must not be undone by moving the status read before it
        previous, record = record.owner, s.get_backfill(backfill_id) or record
        out.handled.add(backfill_id)
        adopted = s.adopt_runs(owner, now, live, backfill_ids=[backfill_id], grace=grace)
        out.requeued += len(adopted.requeued)
        if previous is not None and previous != owner:
            log.info("took backfill %s over from %s (its lease lapsed): %d running run(s) queued again as a new "
                     "attempt after %.1f s, %d queued run(s) moved here", backfill_id, previous,
                     len(adopted.requeued), grace, len(adopted.moved))
        try:
            stored, plan = rebuild_plan(record, registry, None)
        except (PlanChanged, ValueError, LookupError) as exc:
            s.cancel_runs_of_backfill(backfill_id, "backfill failed", now)
            end = lifecycle.ending(record, error=f"its plan cannot be rebuilt: {exc}")
            s.end_backfill(backfill_id, owner, end.status, end.canceled, end.error, now)
            out.failed.append(backfill_id)
            continue
        status = lifecycle.adopted(record.status)
        if status != record.status:
            s.move_backfill(backfill_id, status, now, expect_owner=owner)
        active = s.active_counts(owner).get(backfill_id, 0)
        out.led[backfill_id] = LedBackfill(record, stored, plan, record.cursor, active)
    if runs:
        out.handled_runs.update(runs)
        out.requeued += len(s.adopt_runs(owner, now, live, run_ids=list(runs), grace=grace).requeued)
    return out
