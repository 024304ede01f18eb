"""The executor contract: run jobs somewhere, report each outcome through a callback."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Callable

from ...runtime import RunJob, RunOutcome

ResultCallback = Callable[[RunOutcome], None]
WorkflowResolver = Callable[[str], object]


class Executor(ABC):
    """Runs ``RunJob``s. ``submit`` never blocks; each job ends in exactly one ``on_result`` call."""

    max_workers: int
    #: Jobs the coordinator may hand over beyond ``max_workers``, so workers never idle between
    #: coordinator ticks. A handed-over job that has not started yet is dropped by ``cancel``.
    prefetch: int


    def __init__(self, max_workers: int = 4):
        if isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1:
            raise ValueError(f"{type(self).__name__}.max_workers: must be an integer >= 1, got {max_workers!r}")
        self.max_workers = max_workers
        self.prefetch = max_workers

    @abstractmethod
    def start(self, on_result: ResultCallback, resolve: WorkflowResolver, pools=None) -> None:
        """Get ready; ``resolve(name)`` gives a workflow object, ``pools`` a PoolGate (or None)."""

    @abstractmethod
    def submit(self, job: RunJob) -> None: ...

    @abstractmethod
    def cancel(self, run_id: str) -> None:
        """Stop a job that is running: its process is killed (or, for threads, it stops at its next task)."""

    @abstractmethod
    def shutdown(self, wait: bool = True) -> None: ...

    @property
    def capacity(self) -> int:
        """How many jobs the executor takes at once: its workers plus the prefetched ones."""
        return self.max_workers + self.prefetch

    @property
    def shares_memory(self) -> bool:
        """True when jobs run in this process (an in-memory database is reachable from them)."""
        return False
