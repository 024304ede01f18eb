"""What an executor sees of the process that starts it (``executors.base.ExecutorHost``): workflows by name,
storage for pools, the log cap, the clock and lease its fence follows, and where outcomes go."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ..clock import Clock
from ..records import WorkflowRef
from ..runtime import RunOutcome
from .context import EngineContext

if TYPE_CHECKING:
    from ..definitions import Workflow
    from .pools import PoolGate


class EngineHost:
    def __init__(self, engine: EngineContext, on_results: Callable[[list[RunOutcome]], None]):
        self._engine = engine
        self._on_results = on_results
        self._gate: PoolGate | None = None

    @property
    def pools(self) -> dict[str, int]:
        return dict(self._engine.pools)

    @property
    def storage_url(self) -> str:
        return self._engine.storage_handle.url

    @property
    def log_limit(self) -> int:
        return self._engine.log_limit

    @property
    def clock(self) -> Clock:
        return self._engine.clock

    @property
    def worker_id(self) -> str:
        return self._engine.worker_id

    @property
    def lease_seconds(self) -> float:
        return self._engine.lease_seconds

    def resolve(self, ref: WorkflowRef) -> Workflow:
        return self._engine.registry[ref.name]

    def pool_gate(self) -> PoolGate | None:
        if self._gate is None and self._engine.pools:
            from .pools import PoolGate

            self._gate = PoolGate(self._engine.storage, self._engine.pools)
        return self._gate

    def on_results(self, outcomes: list[RunOutcome]) -> None:
        self._on_results(outcomes)
