"""This process's lease (a row of ``anachron_workers``): registered when the coordinator starts, renewed every
third of ``lease_seconds`` (on ``clock.wall()``), and the fence its executor follows — execution stops by the
lease deadline minus a margin unless a renewal moves it on. A renewal that finds the lease lapsed raises
``LeaseLost``: another process may have taken this one's work."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from .context import EngineContext
from .executors.base import Executor

if TYPE_CHECKING:
    from ..storage.contract import StoreSession as Session

TICK_PATIENCE = 2.0  # seconds one tick's transaction is retried before the loop takes over


class LeaseLost(Exception):
    """The renewal found this process's lease lapsed: another process may have taken its work."""


class ProcessLease:
    def __init__(self, engine: EngineContext, executor: Executor):
        self.engine = engine
        self.executor = executor
        self.seconds = engine.lease_seconds
        self.fence_margin = min(2.0, self.seconds * 0.1)
        self.expires = 0.0
        self.next_renew = 0.0

    def register(self, s: Session, at: float) -> None:
        """(In a transaction) this process's lease from ``at``, replacing a lapsed one."""
        ident = self.engine.identity
        s.register_worker(ident.worker_id, ident.hostname, ident.pid, at, at + self.seconds)

    def held(self, at: float) -> None:
        """The lease (registered or renewed at ``at``) is ours: the next renewal, and the executor's fence."""
        self.expires = at + self.seconds
        self.next_renew = at + self.seconds / 3
        self.executor.set_lease_deadline(self.expires - self.fence_margin)

    def due(self, wall: float) -> bool:
        return wall >= self.next_renew

    def renew(self, run: Callable[..., float | None]) -> None:
        """Renew it (``run`` is ``Storage.run``); ``LeaseLost`` when it had lapsed."""
        def renew(s: Session) -> float | None:
            at = self.engine.wall()  # read in the transaction: one that waited for a lock past the lease fails
            return at if s.renew_lease(self.engine.worker_id, at, at + self.seconds) else None

        renewed = run(renew, patience=TICK_PATIENCE)
        if renewed is None:
            raise LeaseLost()
        self.held(renewed)

    def fenced(self, wall: float) -> bool:
        """Whether work started now could outlive the fence (the process stalled: renew first)."""
        return wall >= self.expires - self.fence_margin
