"""Task pools: at most N tasks of a pool run at once, across every process sharing the storage."""

from __future__ import annotations

import contextlib
import threading
import time as _time
from typing import Mapping

from ..context import RunCanceled

POLL_SECONDS = 0.05


class PoolGate:
    def __init__(self, storage, sizes: Mapping[str, int]):
        self.storage = storage
        self.sizes = dict(sizes)

    @property
    def storage_url(self) -> str:
        return self.storage.url

    @classmethod
    def connect(cls, url: str, sizes: Mapping[str, int]) -> "PoolGate":
        from ..storage import Storage

        return cls(Storage(url), sizes)

    @contextlib.contextmanager
    def slot(self, pool: str, run_id: str, cancel: threading.Event | None = None):
        """Hold one slot of ``pool`` (pools not configured are unlimited)."""
        size = self.sizes.get(pool)
        if size is None:
            yield
            return
        while True:
            with self.storage.write() as session:
                slot = session.try_acquire_slot(pool, size, run_id, _time.time())
            if slot is not None:
                break
            if cancel is not None and cancel.wait(POLL_SECONDS):
                raise RunCanceled(f"run {run_id} was canceled while waiting for pool {pool!r}")
            if cancel is None:
                _time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            with self.storage.write() as session:
                session.release_slot(pool, slot, run_id)
