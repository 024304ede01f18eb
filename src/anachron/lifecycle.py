"""The lifecycle of runs and backfills: the allowed moves, and every state decision as a pure function.

A short table of allowed transitions per kind (after Prefect's orchestration rules) is the one source of
the rules: storage derives the guard of every status change from it (``sources``: an ``UPDATE`` changes a
row only from a status that may move to the new one, so the database refuses an illegal move, as
Procrastinate's does), and the façade checks a user's request against it (``check``: ``InvalidTransition``).
One function per decision the engine makes: pausing, resuming, canceling, stopping after a failure, how a
backfill ends. Nothing here touches storage or the clock.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from .models import BackfillState, InvalidTransition, RunStatus
from .records import BackfillRecord, RunRef

Q, R, S, F, C, U = (RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.SUCCESS, RunStatus.FAILED,
                    RunStatus.CANCELED, RunStatus.UPSTREAM_FAILED)

#: status → the statuses a run may move to
RUN_TRANSITIONS: Mapping[str, frozenset[str]] = {
    Q: frozenset({R, C, F, U, S}),  # → success / failed: an outcome of an earlier attempt that ran (see below)
    R: frozenset({S, F, C, Q}),  # → queued: its execution was lost; a new attempt
    S: frozenset(), F: frozenset(), C: frozenset(), U: frozenset(),
}
BACKFILL_TRANSITIONS: Mapping[str, frozenset[str]] = {
    BackfillState.REQUESTED: frozenset({BackfillState.IN_PROGRESS, BackfillState.PAUSED, BackfillState.CANCELED,
                                        BackfillState.FAILED, BackfillState.COMPLETED}),
    BackfillState.IN_PROGRESS: frozenset({BackfillState.PAUSED, BackfillState.CANCELED, BackfillState.COMPLETED,
                                          BackfillState.FAILED}),
    BackfillState.PAUSED: frozenset({BackfillState.IN_PROGRESS, BackfillState.CANCELED, BackfillState.FAILED}),
    BackfillState.COMPLETED: frozenset(), BackfillState.FAILED: frozenset(), BackfillState.CANCELED: frozenset(),
}
ACTIVE_BACKFILL = (BackfillState.REQUESTED, BackfillState.IN_PROGRESS, BackfillState.PAUSED)
FINISHED_BACKFILL = (BackfillState.COMPLETED, BackfillState.FAILED, BackfillState.CANCELED)
ACTIVE_RUN = (Q, R)
FINISHED_RUN = (S, F, C, U)
FAILURE_POLICIES = ("continue", "stop_on_failure")


def can_move(transitions: Mapping[str, frozenset[str]], current: str, new: str) -> bool:
    """Whether a status may become ``new`` (staying as it is always may)."""
    return current == new or new in transitions.get(current, frozenset())


def sources(transitions: Mapping[str, frozenset[str]], *targets: str) -> tuple[str, ...]:
    """The statuses from which a row may move to every one of ``targets``: the guard of the storage
    statement that makes that move (``status IN (...)``)."""
    return tuple(s for s, allowed in transitions.items() if all(t in allowed for t in targets))


def check(kind: str, ident: str, current: str, new: str, why: str = "") -> None:
    """Raise ``InvalidTransition`` naming the object unless ``current`` may move to ``new``."""
    table: Mapping[str, frozenset[str]] = BACKFILL_TRANSITIONS if kind == "backfill" else RUN_TRANSITIONS
    if not can_move(table, current, new):
        raise InvalidTransition(f"{kind} {ident} is {current}{why}")


# -- backfills ------------------------------------------------------------------------------------
def pause(backfill_id: str, status: str) -> BackfillState:
    """The status after a pause request: runs in flight finish; nothing new starts."""
    check("backfill", backfill_id, status, BackfillState.PAUSED, "; only an active backfill can be paused")
    return BackfillState.PAUSED


def resume(backfill_id: str, status: str) -> BackfillState:
    """The status after a resume request: new runs start again where it stopped."""
    check("backfill", backfill_id, status, BackfillState.IN_PROGRESS, "; only a paused backfill can be resumed")
    return BackfillState.IN_PROGRESS


def rerun(backfill_id: str, status: str) -> None:
    """A backfill may be rerun once it has ended."""
    if status not in FINISHED_BACKFILL:
        raise InvalidTransition(f"backfill {backfill_id} is {status}; rerun it once it has ended (or cancel it)")


def adopted(status: str) -> BackfillState:
    """The status of a backfill when a process starts leading it."""
    return BackfillState.IN_PROGRESS if status == BackfillState.REQUESTED else BackfillState(status)


def stops(failure_policy: str, failed: int) -> bool:
    """Whether a backfill starts nothing new (and cancels what is queued) because of its failures."""
    return failure_policy == "stop_on_failure" and failed > 0


@dataclass(frozen=True)
class Ending:
    """How a backfill ends: its final status, canceled-partition count and error."""

    status: BackfillState
    canceled: int
    error: str | None


def ending(record: BackfillRecord, *, canceled: bool = False, stopped: bool = False,
           error: str | None = None) -> Ending:
    """The end of a backfill whose runs are all over. Partitions that never succeeded or failed count as
    canceled; it is ``completed`` only when every partition succeeded."""
    left = max(0, record.total_partitions - record.completed - record.failed)
    if error is not None:
        return Ending(BackfillState.FAILED, left, error)
    if canceled:
        return Ending(BackfillState.CANCELED, left, record.error)
    status = BackfillState.FAILED if record.failed or stopped else BackfillState.COMPLETED
    if status == BackfillState.COMPLETED and (record.canceled or left):
        status = BackfillState.CANCELED
    message = record.error
    if status == BackfillState.FAILED and not message:
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
        if run.status == Q or run.owner == me or run.owner not in live:
            finish.append(run.run_id)
            if run.owner == me and run.status == R:
                here.append(run.run_id)
        else:
            ask.append(run.run_id)
    return CancelPlan(tuple(finish), tuple(ask), tuple(here))


# -- taking over ----------------------------------------------------------------------------------
#: the most a taken-over run waits before its new attempt may start (see ``takeover_grace``)
MAX_TAKEOVER_GRACE = 5.0


def takeover_grace(lease_seconds: float) -> float:
    """How long a run taken over from a process whose lease lapsed waits before its new attempt starts.

    That process may not be dead: frozen (SIGSTOP, a long GC pause) or cut off from storage, it may hold the
    run's finished outcome, and it records what it holds as soon as it can write again. Until the new attempt
    starts, that late outcome is accepted instead (``RUN_TRANSITIONS``: queued → success), so the run's code
    does not run twice. The wait is short next to the lease the takeover already waited for."""
    return min(0.75 * lease_seconds, MAX_TAKEOVER_GRACE)


def leader_alive(record: BackfillRecord, live: frozenset[str]) -> bool:
    return record.owner is not None and record.owner in live
