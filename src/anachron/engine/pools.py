"""Task pools: at most N tasks of a pool run at once, across every process sharing the storage."""

from __future__ import annotations

import contextlib
import time as _time
from collections.abc import Iterator, Mapping
from typing import TYPE_CHECKING

from ..clock import SYSTEM_CLOCK
from ..context import CancelToken, RunCanceled

if TYPE_CHECKING:
    from ..storage import Storage

POLL_SECONDS = 0.05


class PoolGate:
    def __init__(self, storage: Storage, sizes: Mapping[str, int]) -> None:
        self.storage = storage
        self.sizes = dict(sizes)

    @property
    def storage_url(self) -> str:
        return str(self.storage.url)

    @classmethod
    def connect(cls, url: str, sizes: Mapping[str, int]) -> PoolGate:
        from ..storage import Storage

        return cls(Storage(url), sizes)

    @contextlib.contextmanager
    def slot(self, pool: str, run_id: str, cancel: CancelToken | None = None) -> Iterator[None]:
        """Hold one slot of ``pool`` (pools not configured are unlimited)."""
        size = self.sizes.get(pool)
        if size is None:
            yield
            return
        while True:
            slot = self.storage.run(lambda s: s.try_acquire_slot(pool, size, run_id, SYSTEM_CLOCK.wall()))
            if slot is not None:
                break
            if cancel is not None and cancel.wait(POLL_SECONDS):
                raise RunCanceled(f"run {run_id} was canceled while waiting for pool {pool!r}")
            if cancel is None:
                _time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            self.storage.run(lambda s: s.release_slot(pool, slot, run_id))
