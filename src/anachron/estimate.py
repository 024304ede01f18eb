"""How long a backfill would take: a pure estimate from a workflow's recent run durations.

The model, stated so a reader can judge the figure:

* **One run's time** is taken from the workflow's recent successful runs (``started_at`` → ``ended_at``,
  newest first, at most ``HISTORY_RUNS`` of them). That is the time a run spends executing: queueing
  behind other work, the coordinator's own overhead and a worker process's start are not in it.
* **Runs covering several partitions.** A planned run covers ``partitions / runs`` keys on average
  (one for ``multi_run`` and for schedule ticks, more for ``batched``, ``single_run`` and
  ``per_dimension``). When at least ``MIN_SAME_SIZE`` of the recent runs covered that many keys, only
  those runs are used, as they are. Otherwise every recent run is turned into a time per partition
  (its duration over the keys it covered; a run of no key — a tick, a manual run — counts as one) and
  scaled to the planned size. That assumes run time grows in proportion to the keys a run covers,
  which over-states a run whose time is mostly a fixed start-up cost; the ``basis`` says when it was done.
* **Waves.** At most ``concurrency`` runs are in flight at once: the backfill's ``max_concurrency``,
  lowered by any cap passed in ``caps`` (the executor's workers, the queue's ``max_concurrent_runs``, the
  workflow's ``max_concurrent_runs``). ``runs`` runs take ``ceil(runs / concurrency)`` waves.
* **The figures.** ``seconds`` = waves × the median run time: a typical backfill.
  ``upper_seconds`` = waves × the 90th-percentile run time (nearest rank): as if every wave were held up
  by a slow run — a pessimistic figure, not a bound. Both are ``None`` without history; the ``basis``
  then says so. The estimate ignores other work competing for the same workers and slots.
* **Several workflows** (``combine``): a backfill creates the runs of one workflow after another, so the
  estimates add up. Their last and first waves overlap a little, so the sum leans high.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple

#: how many recent successful runs of a workflow an estimate reads
HISTORY_RUNS = 200
#: runs of the planned size needed to use them as they are instead of scaling every run per partition
MIN_SAME_SIZE = 5


class RunDuration(NamedTuple):
    """One finished run, as an estimate reads it (``Session.recent_run_durations``)."""

    seconds: float
    #: the keys the run covered: 1 for a one-key run, more for a batch, 0 for a tick or a manual run
    partitions: int


@dataclass(frozen=True)
class Estimate:
    """How long a backfill would take (see the module docstring for the model)."""

    #: the typical total, waves × median run time; ``None`` without run history
    seconds: float | None
    #: the runs planned
    runs: int
    #: runs in flight at once: ``max_concurrency``, lowered by the tightest cap
    concurrency: int
    #: how many past runs the figures come from
    sample_size: int
    #: one planned run's median and 90th-percentile time (scaled per partition when ``basis`` says so)
    median_run_seconds: float | None
    p90_run_seconds: float | None
    #: where the figure comes from, in words: "median run 3.2 s over the last 200 runs", "no run history ..."
    basis: str
    #: a pessimistic total, waves × the 90th-percentile run time; ``None`` without run history
    upper_seconds: float | None
    #: what the backfill asked for
    max_concurrency: int
    #: the cap that lowered ``concurrency`` below ``max_concurrency`` ("the executor's 4 workers"), if any
    limited_by: str | None


def estimate_backfill(history: Sequence[RunDuration], runs: int, max_concurrency: int, *,
                      partitions: int | None = None, caps: Mapping[str, int] | None = None,
                      workflow: str | None = None) -> Estimate:
    """Estimate one workflow's share of a backfill: ``runs`` runs covering ``partitions`` keys (``None``:
    one key, or none, per run), at most ``max_concurrency`` at once and never more than any of ``caps``
    (a description → a limit, e.g. ``{"the executor's 4 workers": 4}``). ``history`` is the workflow's
    recent successful runs, newest first; ``workflow`` names it in the ``basis``."""
    _check_count("runs", runs, 0)
    _check_count("max_concurrency", max_concurrency, 1)
    if partitions is not None:
        _check_count("partitions", partitions, 0)
    concurrency, limited_by = max_concurrency, None
    for reason, cap in (caps or {}).items():
        _check_count(f"caps[{reason!r}]", cap, 1)
        if cap < concurrency:
            concurrency, limited_by = cap, reason
    if runs == 0:
        return Estimate(0.0, 0, concurrency, 0, None, None, "nothing to run", 0.0, max_concurrency, limited_by)
    if not history:
        basis = f"no run history for {workflow} yet" if workflow else "no run history yet"
        return Estimate(None, runs, concurrency, 0, None, None, basis, None, max_concurrency, limited_by)
    size = max(partitions / runs, 1.0) if partitions is not None else 1.0
    same = [h.seconds for h in history if max(h.partitions, 1) == size]
    if len(same) == len(history) or len(same) >= MIN_SAME_SIZE:
        durations = [max(0.0, s) for s in same]
        median, p90 = _median(durations), _percentile(durations, 0.9)
        basis = f"median run {_short(median)} {_over(len(durations), len(history))}"
        if len(durations) < len(history):
            basis += f" (those covering {_count(size, 'partition')})"
    else:
        durations = [max(0.0, h.seconds) / max(h.partitions, 1) for h in history]
        per_key, per_key_p90 = _median(durations), _percentile(durations, 0.9)
        median, p90 = per_key * size, per_key_p90 * size
        basis = (f"median {_short(per_key)} per partition {_over(len(durations), len(history))}, "
                 f"× {_count(size, 'partition')} per run (assumes run time grows with the partitions)")
    waves = math.ceil(runs / concurrency)
    return Estimate(waves * median, runs, concurrency, len(durations), median, p90, basis, waves * p90,
                    max_concurrency, limited_by)


def combine(parts: Mapping[str, Estimate]) -> Estimate:
    """One estimate for a backfill of several workflows (workflow name → its part): their runs go one
    workflow after another, so the times add up; unknown when any part with runs has no history."""
    if not parts:
        raise ValueError("parts: no workflow to estimate")
    if len(parts) == 1:
        return next(iter(parts.values()))
    estimates = list(parts.values())
    known = all(e.seconds is not None for e in estimates)
    seconds = sum(e.seconds or 0.0 for e in estimates) if known else None
    upper = sum(e.upper_seconds or 0.0 for e in estimates) if known else None
    bases = []
    for name, e in parts.items():
        if e.runs and e.seconds is None:
            bases.append(f"no run history for {name} yet")
        elif e.runs:
            bases.append(f"{name}: {e.basis}")
    limits = sorted({e.limited_by for e in estimates if e.limited_by is not None})
    return Estimate(seconds, sum(e.runs for e in estimates), max(e.concurrency for e in estimates),
                    sum(e.sample_size for e in estimates), None, None, "; ".join(bases) or "nothing to run", upper,
                    max(e.max_concurrency for e in estimates), ", ".join(limits) or None)


def describe(estimate: Estimate) -> str:
    """One human line: ``~12 min at max_concurrency 8 (median run 3.2 s over the last 200 runs)``,
    or the ``basis`` alone when there is no figure."""
    if estimate.runs == 0:
        return "nothing to run"
    if estimate.seconds is None:
        return estimate.basis
    figure = approx_duration(estimate.seconds)
    if estimate.upper_seconds is not None and approx_duration(estimate.upper_seconds) != figure:
        figure += f" (up to {approx_duration(estimate.upper_seconds)})"
    at = f"at max_concurrency {estimate.max_concurrency}"
    if estimate.limited_by is not None:
        at = f"at {estimate.concurrency} runs at once ({estimate.limited_by}; max_concurrency " \
             f"{estimate.max_concurrency})"
    return f"{figure} {at} ({estimate.basis})"


# -- helpers --------------------------------------------------------------------------------------------
def _check_count(name: str, value: int, least: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < least:
        raise ValueError(f"{name}: must be an integer >= {least}, got {value!r}")


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    n = len(ordered)
    mid = n // 2
    return ordered[mid] if n % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def _percentile(values: Sequence[float], q: float) -> float:
    """Nearest rank: the smallest value with at least ``q`` of the values at or below it."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(q * len(ordered)) - 1)]


def _over(used: int, read: int) -> str:
    if used < read:
        return f"over {used} of the last {read} runs"
    return "over the last run" if used == 1 else f"over the last {used} runs"


def _count(size: float, noun: str) -> str:
    text = f"{size:g}" if size == int(size) else f"{size:.1f}"
    return f"{text} {noun}" + ("" if size == 1 else "s")


def _short(seconds: float) -> str:
    """A run's time: ``850 ms``, ``3.2 s``, ``4.5 min``."""
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


def approx_duration(seconds: float) -> str:
    """A backfill's time, rounded as an estimate deserves: ``~40 s``, ``~12 min``, ``~3.5 h``, ``~2.1 days``."""
    if seconds < 1:
        return "under 1 s"
    if seconds < 59.5:
        return f"~{seconds:.0f} s"
    if seconds < 3570:
        return f"~{seconds / 60:.0f} min"
    hours = seconds / 3600
    if hours < 9.95:
        return f"~{hours:.1f} h"
    if hours < 47.5:
        return f"~{hours:.0f} h"
    return f"~{seconds / 86400:.1f} days"
