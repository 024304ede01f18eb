"""The lifecycle of runs and backfills: every state change as a pure function.

A short list of allowed transitions per kind (after Prefect's orchestration rules), and one function per
decision the engine makes: pausing, resuming, canceling, stopping after a failure, how a backfill ends.
The façade, the coordinator (and later the daemon and the HTTP API) read the current state, ask here,
and write the answer; nothing here touches storage or the clock.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ..models import CANCELED, COMPLETED, FAILED, IN_PROGRESS, PAUSED, QUEUED, REQUESTED, RUNNING, SUCCESS
from ..records import BackfillRecord, RunRef

#: status → the statuses it may move to
RUN_TRANSITIONS: dict[str, frozenset[str]] = {
    QUEUED: frozenset({RUNNING, CANCELED, FAILED}),
    RUNNING: frozenset({SUCCESS, FAILED, CANCELED, QUEUED}),  # → queued: its execution was lost; a new attempt
    SUCCESS: frozenset(), FAILED: frozenset(), CANCELED: frozenset(),
}
BACKFILL_TRANSITIONS: dict[str, frozenset[str]] = {
    REQUESTED: frozenset({IN_PROGRESS, PAUSED, CANCELED, FAILED, COMPLETED}),
    IN_PROGRESS: frozenset({PAUSED, CANCELED, COMPLETED, FAILED}),
    PAUSED: frozenset({IN_PROGRESS, CANCELED, FAILED}),
    COMPLETED: frozenset(), FAILED: frozenset(), CANCELED: frozenset(),
}
ACTIVE_BACKFILL = (REQUESTED, IN_PROGRESS, PAUSED)
FINISHED_BACKFILL = (COMPLETED, FAILED, CANCELED)
ACTIVE_RUN = (QUEUED, RUNNING)
FAILURE_POLICIES = ("continue", "stop_on_failure")


def can_move(transitions: dict[str, frozenset[str]], current: str, new: str) -> bool:
    return current == new or new in transitions.get(current, frozenset())


# -- backfills ------------------------------------------------------------------------------------
def pause(backfill_id: str, status: str) -> str:
    """The status after a pause request: runs in flight finish; nothing new starts."""
    if status not in ACTIVE_BACKFILL:
        raise ValueError(f"backfill {backfill_id} is {status}; only an active backfill can be paused")
    return PAUSED


def resume(backfill_id: str, status: str) -> str:
    """The status after a resume request: new runs start again where it stopped."""
    if status not in ACTIVE_BACKFILL:
        raise ValueError(f"backfill {backfill_id} is {status}; only a paused backfill can be resumed")
    return IN_PROGRESS


def adopted(status: str) -> str:
    """The status of a backfill when a process starts leading it."""
    return IN_PROGRESS if status == REQUESTED else status


def stops(failure_policy: str, failed: int) -> bool:
    """Whether a backfill starts nothing new (and cancels what is queued) because of its failures."""
    return failure_policy == "stop_on_failure" and failed > 0


@dataclass(frozen=True)
class Ending:
    """How a backfill ends: its final status, canceled-partition count and error."""

    status: str
    canceled: int
    error: str | None


def ending(record: BackfillRecord, *, canceled: bool = False, stopped: bool = False,
           error: str | None = None) -> Ending:
    """The end of a backfill whose runs are all over. Partitions that never succeeded or failed count as
    canceled; it is ``completed`` only when every partition succeeded."""
    left = max(0, record.total_partitions - record.completed - record.failed)
    if error is not None:
        return Ending(FAILED, left, error)
    if canceled:
        return Ending(CANCELED, left, record.error)
    status = FAILED if record.failed or stopped else COMPLETED
    if status == COMPLETED and (record.canceled or left):
        status = CANCELED
    message = record.error
    if status == FAILED and not message:
        message = f"{record.failed} partition(s) failed"
    return Ending(status, left, message)


# -- canceling ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CancelPlan:
    """What a cancel does to active runs.

    ``finish_now``: recorded canceled at once — queued runs, runs of a process that is gone, and runs this
    process executes (which it stops itself). ``ask_owner``: running in another live process, which reads
    the request and stops them. ``stop_here``: the subset this process's executor must stop."""

    finish_now: tuple[str, ...]
    ask_owner: tuple[str, ...]
    stop_here: tuple[str, ...]


def plan_cancel(runs: Sequence[RunRef], live: frozenset[str], me: str) -> CancelPlan:
    finish, ask, here = [], [], []
    for run in runs:
        if run.status == QUEUED or run.owner == me or run.owner not in live:
            finish.append(run.run_id)
            if run.owner == me and run.status == RUNNING:
                here.append(run.run_id)
        else:
            ask.append(run.run_id)
    return CancelPlan(tuple(finish), tuple(ask), tuple(here))


def leader_alive(record: BackfillRecord, live: frozenset[str]) -> bool:
    return record.owner is not None and record.owner in live
