"""Writing a tick's ``Decisions`` in its transaction. Every status change is a guarded storage method
(its guard comes from ``anachron.lifecycle``); what a guard or the database refuses is reported in
``Applied`` — data for the coordinator's memory and for the next tick — never retried here."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from ..models import CANCELED, FAILED, RUNNING, SUCCESS, UPSTREAM_FAILED
from ..records import NewRun, Outcome, RunRecord
from ..runtime import RunJob
from ..storage import StorageRejected
from .tick import Decisions, Window

if TYPE_CHECKING:
    from ..storage.contract import StoreSession as Session

log = logging.getLogger("anachron.coordinator")


@dataclass
class Created:
    """What became of a backfill's window: its runs inserted (``count``), or not (``refused``: the database
    refused them, the backfill fails next tick; ``moved``: its cursor moved meanwhile — paused, canceled or
    taken over — look again)."""

    count: int = 0
    waiting: dict[str, RunJob] = field(default_factory=dict)  # jobs of runs created and not started
    started: list[RunJob] = field(default_factory=list)  # jobs of runs created running
    refused: str | None = None
    moved: bool = False
    attached: bool = False  # tick runs the daemon had created joined the backfill: counts come from storage


@dataclass
class Applied:
    to_kill: list[str] = field(default_factory=list)  # runs canceled here that this process may be running
    dropped: dict[str, list[str]] = field(default_factory=dict)  # backfill → its queued runs canceled, or ended
    # upstream_failed (a graph backfill's runs an upstream failure blocks)
    started: set[str] = field(default_factory=set)
    created: dict[str, Created] = field(default_factory=dict)
    ended: list[str] = field(default_factory=list)
    jobs: list[RunJob] = field(default_factory=list)  # to hand to the executor once committed


def apply(d: Decisions, s: Session, owner: str, now: float, job_of: Callable[[RunRecord], RunJob]) -> Applied:
    """Write ``d``; ``job_of`` builds the job of a started run whose job was not in memory."""
    out = Applied()
    if d.cancel_asked:
        out.to_kill.extend(o.run_id for o in s.finish_runs([Outcome(r, CANCELED, "canceled")
                                                             for r in d.cancel_asked], now))
    for backfill_id, why in d.stop:
        out.to_kill.extend(s.cancel_runs_of_backfill(backfill_id, why, now))
    for backfill_id, why in d.drop_queued:
        dropped = s.cancel_runs_of_backfill(backfill_id, why, now, queued_only=True)
        if dropped:
            out.dropped[backfill_id] = dropped
    if d.upstream_failed:
        of = {run_id: backfill_id for run_id, _, backfill_id in d.upstream_failed}
        for o in s.finish_runs([Outcome(r, UPSTREAM_FAILED, why) for r, why, _ in d.upstream_failed], now):
            out.dropped.setdefault(of[o.run_id], []).append(o.run_id)
    if d.start:
        out.started = s.start_runs(d.start, owner, now)
        missing = [r for r in d.start if r in out.started and r not in d.jobs]
        out.jobs.extend(d.jobs[r] for r in d.start if r in out.started and r in d.jobs)
        if missing:
            records = s.runs_by_id(missing)
            out.jobs.extend(job_of(records[r]) for r in missing if r in records)
    for window in d.windows:
        created = _create(s, window, owner, now, d.careful)
        out.created[window.backfill_id] = created
        out.jobs.extend(created.started)
    for end in d.ends:
        e = end.ending
        if s.end_backfill(end.backfill_id, owner, e.status, e.canceled, e.error, now):
            out.ended.append(end.backfill_id)
    return out


def _create(s: Session, window: Window, owner: str, now: float, careful: bool) -> Created:
    """Insert a window's runs with its cursor moved — only if this process still leads the backfill, nobody
    moved the cursor meanwhile and it is still in progress. No savepoint is set (two statements fewer a tick)
    unless the tick is ``careful``: a refusal without one loses the transaction (``SavepointNeeded``), and
    the coordinator runs the tick again, careful."""
    rows = list(window.rows)
    try:
        with s.savepoint(lazy=not careful):
            if not s.advance_cursor(window.backfill_id, owner, window.cursor, window.cursor + len(rows), now):
                return Created(moved=True)
            attached = _insert_shared(s, window.backfill_id, rows, now) if window.shared else set()
            if not window.shared:
                s.insert_runs(rows)
    except StorageRejected as exc:
        return Created(refused=f"could not create runs {window.cursor + 1}..{window.cursor + len(rows)}: {exc}")
    waiting, started = {}, []
    for r in rows:
        if r.run_id in attached:
            continue
        if r.status == RUNNING:
            started.append(window.jobs[r.run_id])
        else:
            waiting[r.run_id] = window.jobs[r.run_id]
    return Created(len(rows), waiting, started, attached=bool(attached))


def _insert_shared(s: Session, backfill_id: str, rows: Sequence[NewRun], now: float) -> set[str]:
    """Insert a backfill's rows when some are schedule ticks whose run the daemon may have created since the
    plan was made (they share its key): those runs become the backfill's — a tick runs once — and one that
    has already finished counts at once. Returns the ids of the rows not inserted (their runs existed)."""
    shared = [r for r in rows if r.idempotency_key and r.idempotency_key.startswith("schedule:")]
    keys = {r.idempotency_key for r in shared}
    s.insert_runs([r for r in rows if r.idempotency_key not in keys])
    inserted = s.insert_runs_once(shared)
    taken = [r for r in shared if r.run_id not in inserted]
    if not taken:
        return set()
    by_workflow: dict[str, list[str]] = {}
    places: dict[str, dict[str, int]] = {}  # per workflow: idempotency key → the plan index the run takes
    for r in taken:
        by_workflow.setdefault(r.workflow, []).append(r.idempotency_key or "")
        if r.plan_index is not None:
            places.setdefault(r.workflow, {})[r.idempotency_key or ""] = r.plan_index
    done: dict[str, int] = {SUCCESS: 0, FAILED: 0, CANCELED: 0}
    for workflow, run_keys in by_workflow.items():
        for run_id, status in s.attach_runs(backfill_id, workflow, run_keys, places.get(workflow)):
            log.info("backfill %s: tick run %s already existed (the daemon ran it): counted as this backfill's",
                     backfill_id, run_id)
            if status in done:
                done[status] += 1
    if any(done.values()):
        s.count_outcomes(backfill_id, done[SUCCESS], done[FAILED], done[CANCELED], now)
    return {r.run_id for r in taken}
