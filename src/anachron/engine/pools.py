"""Task pools and task tag limits: slots in storage, exact across every process sharing it.

A pool (``RunQueueConfig.pools``) lets at most N calls of its tasks run at once. A ``TagConcurrencyLimit``
also counts task calls, as Prefect's tag limits count task runs: a call of a task whose ``tags`` match a limit
holds one of its slots (``tag_pools`` turns the limits into pools with reserved names). A call needing several
slots takes them in one order (by name), so two calls never wait on each other crosswise.
"""

from __future__ import annotations

import contextlib
import time as _time
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING

from ..clock import SYSTEM_CLOCK
from ..context import CancelToken, RunCanceled

if TYPE_CHECKING:
    from ..models import TagConcurrencyLimit
    from ..storage import Storage

POLL_SECONDS = 0.05
#: Reserved pool names of task tag limits: ``<TAG>key`` (any value), ``<TAG>key=value`` (that value), and
#: ``<EACH>key`` (each value apart: the slots are ``<EACH>key=value``'s).
TAG = "anachron/tag:"
EACH = "anachron/tag-each:"


def tag_pools(limits: Sequence[TagConcurrencyLimit]) -> dict[str, int]:
    """The pools that count task calls against ``limits`` (the strictest of two limits on one tag wins)."""
    sizes: dict[str, int] = {}
    for limit in limits:
        if limit.per_unique_value:
            name = EACH + limit.key
        else:
            name = TAG + limit.key + ("" if limit.value is None else f"={limit.value}")
        sizes[name] = min(limit.limit, sizes.get(name, limit.limit))
    return sizes


def slots_needed(sizes: Mapping[str, int], pool: str | None, tags: Mapping[str, str]) -> list[tuple[str, int]]:
    """``(pool, size)`` of every slot a call of a task with ``pool`` and ``tags`` holds, in the order taken."""
    needed: dict[str, int] = {}
    if pool is not None and pool in sizes:
        needed[pool] = sizes[pool]
    for key, value in tags.items():
        for name, slot in ((TAG + key, TAG + key), (f"{TAG}{key}={value}", f"{TAG}{key}={value}"),
                           (EACH + key, f"{EACH}{key}={value}")):
            if name in sizes:
                needed[slot] = sizes[name]
    return sorted(needed.items())


class PoolGate:
    def __init__(self, storage: Storage | None, sizes: Mapping[str, int], url: str | None = None) -> None:
        self._storage = storage
        self._url = url
        self.sizes = dict(sizes)

    @property
    def storage(self) -> Storage:
        """Opened on the first slot asked for: a worker whose tasks use no pool never connects."""
        if self._storage is None:
            from ..storage import Storage, is_memory_url

            assert self._url is not None
            if is_memory_url(self._url):
                raise RuntimeError("task pools and tag limits count task calls across processes through storage; an "
                                   "in-memory database (sqlite://) is not shared with worker processes: use a file "
                                   "or PostgreSQL, or InProcessExecutor")
            self._storage = Storage(self._url)
        return self._storage

    @property
    def storage_url(self) -> str:
        return self._url if self._storage is None and self._url is not None else str(self.storage.url)

    @classmethod
    def connect(cls, url: str, sizes: Mapping[str, int]) -> PoolGate:
        return cls(None, sizes, url)

    @contextlib.contextmanager
    def slot(self, pool: str, run_id: str, cancel: CancelToken | None = None) -> Iterator[None]:
        """Hold one slot of ``pool`` (pools not configured are unlimited)."""
        with self.slots(pool, {}, run_id, cancel):
            yield

    @contextlib.contextmanager
    def slots(self, pool: str | None, tags: Mapping[str, str], run_id: str,
              cancel: CancelToken | None = None) -> Iterator[None]:
        """Hold a slot of ``pool`` and one of every tag limit ``tags`` match, for the length of a task call."""
        with contextlib.ExitStack() as stack:
            for name, size in slots_needed(self.sizes, pool, tags):
                stack.enter_context(self._hold(name, size, run_id, cancel))
            yield

    @contextlib.contextmanager
    def _hold(self, pool: str, size: int, run_id: str, cancel: CancelToken | None) -> Iterator[None]:
        storage = self.storage
        while True:
            slot = storage.run(lambda s: s.try_acquire_slot(pool, size, run_id, SYSTEM_CLOCK.wall()))
            if slot is not None:
                break
            if cancel is not None and cancel.wait(POLL_SECONDS):
                raise RunCanceled(f"run {run_id} was canceled while waiting for a slot of {pool!r}")
            if cancel is None:
                _time.sleep(POLL_SECONDS)
        try:
            yield
        finally:
            storage.run(lambda s: s.release_slot(pool, slot, run_id))
