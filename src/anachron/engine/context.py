"""``EngineContext``: everything the engine needs, built once by the repository and handed down.

The coordinator, the run and backfill services and the executors get their workflows, storage,
executor, limits, clock and identity from here — never from the façade's private fields.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING

from ..clock import Clock
from ..definitions import WorkflowRegistry
from .executors.base import Executor
from .queue import QueueLimits

if TYPE_CHECKING:
    from ..storage import Storage

#: Default cap on what one run's logs (and captured output) may store.
DEFAULT_LOG_LIMIT = 1_000_000


@dataclass(frozen=True)
class WorkerIdentity:
    """This process, as leases and run ownership name it."""

    worker_id: str
    hostname: str
    pid: int

    @classmethod
    def new(cls) -> WorkerIdentity:
        host = socket.gethostname()
        pid = os.getpid()
        return cls(f"{host[:40]}-{pid}-{uuid.uuid4().hex[:8]}", host, pid)


class StorageHandle:
    """Storage opened (and migrated) on first use, not when the repository is defined: a module that
    defines a repository can be imported anywhere (worker processes do) without touching the database."""

    def __init__(self, url: str, opened: Storage | None = None):
        self.url = url
        self._storage = opened
        self._lock = threading.Lock()

    def get(self) -> Storage:
        if self._storage is None:
            with self._lock:
                if self._storage is None:
                    from ..storage import Storage

                    self._storage = Storage(self.url)
        return self._storage

    @property
    def is_open(self) -> bool:
        return self._storage is not None

    def close(self) -> None:
        if self._storage is not None:
            self._storage.close()


@dataclass(frozen=True)
class EngineContext:
    registry: WorkflowRegistry
    storage_handle: StorageHandle
    executor: Executor
    limits: QueueLimits
    clock: Clock
    identity: WorkerIdentity
    lease_seconds: float
    pools: Mapping[str, int] = field(default_factory=dict)
    log_limit: int = DEFAULT_LOG_LIMIT

    @property
    def storage(self) -> Storage:
        return self.storage_handle.get()

    @property
    def worker_id(self) -> str:
        return self.identity.worker_id

    def now(self) -> datetime:
        """The engine's time: when runs are created, priorities age, schedules tick."""
        return self.clock.now()

    def now_ts(self) -> float:
        return self.clock.now().timestamp()

    def wall(self) -> float:
        """Unix seconds for leases and liveness (shared with other processes)."""
        return self.clock.wall()
