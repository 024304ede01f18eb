"""The executor contract: run jobs somewhere, report outcomes in batches through the host.

Executors are handed jobs in batches and report every job exactly once (``RunOutcome``), except the jobs
stopped by ``abandon()``. They are fenced by the coordinator's lease:
``set_lease_deadline(t)`` says execution must stop by wall-clock time ``t`` unless the deadline moves
on (the coordinator renews its lease and moves it), so a leader that stalls cannot keep running work
that another process is about to take over.

How many jobs an executor takes (``capacity``) adapts to how long runs take: enough queued behind each
worker that none idles between coordinator ticks, but never more than about ``QUEUE_TARGET_SECONDS`` of
work — a queued job is already ``running`` to the rest of the system.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from ...clock import Clock
    from ...definitions import Workflow
    from ...records import WorkflowRef
    from ...runtime import RunJob, RunOutcome
    from ..pools import PoolGate

#: how much work (in seconds of run time) an executor may hold beyond what its workers are running
QUEUE_TARGET_SECONDS = 0.005
#: the most jobs an executor holds per worker (beyond the one each is running)
MAX_PREFETCH_PER_WORKER = 32


class ExecutorHost(Protocol):
    """What an executor gets from the coordinator that starts it."""

    @property
    def pools(self) -> Mapping[str, int]: ...

    @property
    def storage_url(self) -> str: ...

    @property
    def log_limit(self) -> int: ...

    @property
    def clock(self) -> Clock:
        """The coordinator's clock (its lease deadline is on ``clock.wall()``)."""

    @property
    def worker_id(self) -> str:
        """The coordinator's identity: the owner of the runs it hands over."""

    @property
    def lease_seconds(self) -> float:
        """How long the coordinator's lease lasts when it is not renewed."""

    def resolve(self, ref: WorkflowRef) -> Workflow:
        """A workflow by name, in this process."""

    def pool_gate(self) -> PoolGate | None:
        """Task pools on this process's storage (``None`` without pools)."""

    def on_results(self, outcomes: list[RunOutcome]) -> None:
        """Called from executor threads with one or more finished jobs."""


class Executor(ABC):
    """Runs ``RunJob``s and reports each through ``host.on_results`` (never blocks the caller)."""

    max_workers: int
    #: jobs held beyond ``max_workers`` before the executor has seen how long runs take
    min_prefetch: int
    #: seconds of queued work to hold beyond what the workers run: about one round trip to them
    queue_target_seconds: float = QUEUE_TARGET_SECONDS
    max_prefetch_per_worker: int = MAX_PREFETCH_PER_WORKER

    def __init__(self, max_workers: int = 4):
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"{type(self).__name__}.max_workers: must be an integer >= 1, got {max_workers!r}")
        self.max_workers = max_workers
        self.min_prefetch = max_workers
        self._mean_seconds: float | None = None  # moving average of run durations
        self._stats_lock = threading.Lock()

    # -- the contract ----------------------------------------------------------------------------
    @abstractmethod
    def start(self, host: ExecutorHost) -> None: ...

    @abstractmethod
    def submit(self, jobs: Sequence[RunJob]) -> None: ...

    @abstractmethod
    def cancel(self, run_id: str) -> None:
        """Stop a job: dropped if it has not started; a running process is killed (threads stop at their
        next task call)."""

    @abstractmethod
    def abandon(self) -> None:
        """The coordinator lost its lease: stop every job now. Outcomes the executor already holds (runs that
        finished while the coordinator was frozen, not yet reported) are reported before it returns — the
        coordinator records them unless a newer attempt started —; nothing is reported after."""

    @abstractmethod
    def shutdown(self, wait: bool = True) -> None: ...

    def set_lease_deadline(self, deadline: float) -> None:  # noqa: B027 - optional: executors that can fence do
        """Execution must stop by this wall-clock time unless it is moved on (see the module docstring)."""

    # -- shared behaviour ------------------------------------------------------------------------
    def observe(self, seconds: float) -> None:
        """Feed one run's duration into the moving average that sizes ``capacity``."""
        with self._stats_lock:
            mean = self._mean_seconds
            self._mean_seconds = seconds if mean is None else mean + (seconds - mean) * 0.05

    @property
    def prefetch(self) -> int:
        mean = self._mean_seconds
        if mean is None:
            return self.min_prefetch
        ceiling = self.max_prefetch_per_worker * self.max_workers
        fit = int(self.max_workers * self.queue_target_seconds / max(mean, 1e-6))
        return max(self.min_prefetch, min(ceiling, fit))

    @property
    def capacity(self) -> int:
        """How many jobs the executor takes at once: its workers plus the queued ones."""
        return self.max_workers + self.prefetch

    @property
    def shares_memory(self) -> bool:
        """True when jobs run in this process (an in-memory database is reachable from them)."""
        return False


ResultCallback = Callable[["list[RunOutcome]"], None]
