"""Waiting for a run or a backfill to end: one loop for both.

The waiter wakes when the coordinator reports a change (or every ``WAIT_SLICE``), looks at storage, and
between looks may act (take over a backfill or run whose process died). A read that fails because storage
is unavailable for a while is not the end of the wait: it looks again at the next slice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from ..storage import StorageUnavailable
from .coordinator import Coordinator

T = TypeVar("T")
WAIT_SLICE = 0.5
log = logging.getLogger("anachron.wait")


def wait_until(coordinator: Coordinator, look: Callable[[], tuple[T | None, str]], *, what: str,
               timeout: float | None, runs: bool, between: Callable[[], None] | None = None) -> T:
    """Call ``look()`` → ``(final value or None, status text)`` until it returns a value; ``TimeoutError``
    naming ``what`` and its last status after ``timeout`` seconds."""
    clock = coordinator.engine.clock
    deadline = None if timeout is None else clock.monotonic() + timeout
    version = coordinator.run_version if runs else coordinator.version
    status = "unknown"
    while True:
        try:
            value, status = look()
        except StorageUnavailable as exc:
            log.warning("waiting for %s: %s; looking again", what, exc)
            value = None
        if value is not None:
            return value
        if between is not None:
            between()
        remaining = WAIT_SLICE if deadline is None else min(WAIT_SLICE, deadline - clock.monotonic())
        if remaining <= 0:
            raise TimeoutError(f"{what} still {status} after {timeout} s")
        version = coordinator.wait_for_change(version, remaining, runs=runs)
