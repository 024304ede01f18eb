"""``RunContext``: what a running workflow knows about itself, reachable as ``ac.context()``."""

from __future__ import annotations

import logging
import time as _time
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .capture import RunLog

_current: ContextVar[RunContext | None] = ContextVar("anachron_run_context", default=None)
#: what a task runtime adds to ``ac.context()`` for the duration of one task call (``spark``)
_extras: ContextVar[dict[str, Any] | None] = ContextVar("anachron_task_extras", default=None)


class RunCanceled(Exception):
    """Raised inside a run (at its next task boundary) once the run has been canceled."""


class TaskTimeout(Exception):
    """A task ran longer than its ``timeout``."""


class CancelToken:
    """A run's cancel flag. Every run gets one, so it is a plain attribute rather than a
    ``threading.Event`` (which costs a lock and a condition to create); ``wait`` polls."""

    __slots__ = ("_set",)

    def __init__(self) -> None:
        self._set = False

    def set(self) -> None:
        self._set = True

    def is_set(self) -> bool:
        return self._set

    def wait(self, timeout: float) -> bool:
        """Sleep until canceled or ``timeout`` seconds have passed; whether it was canceled."""
        deadline = _time.monotonic() + timeout
        while not self.is_set():  # (a subclass may read its flag elsewhere)
            left = deadline - _time.monotonic()
            if left <= 0:
                return False
            _time.sleep(min(left, 0.01))
        return True


@dataclass
class RunContext:
    run_id: str
    workflow: str
    partition_key: str | None
    partition_keys: list[str]
    partition_window: tuple[datetime, datetime] | None
    logical_time: datetime
    scheduled_time: datetime | None
    params: dict[str, Any]
    tags: dict[str, str]
    backfill_id: str | None
    attempt: int
    environ: dict[str, str] = field(default_factory=dict)
    failed_partitions: dict[str, str] = field(default_factory=dict)
    _runlog: RunLog | None = field(default=None, repr=False)  # where log lines and output go
    _logger: logging.Logger | None = field(default=None, repr=False)
    _cancel: CancelToken = field(default_factory=CancelToken, repr=False)
    _pools: Any = field(default=None, repr=False)  # a PoolGate, when the instance has pools
    # tells a process executor when a task must end
    _on_deadline: Callable[[float | None], None] | None = field(default=None, repr=False)
    # tells a process executor that a task runtime is running a call and stops it on cancel within this many
    # seconds (``None``: the call ended); the executor then waits that long before it kills the process
    _on_stoppable: Callable[[float | None], None] | None = field(default=None, repr=False)
    _started: float = field(default_factory=_time.monotonic, repr=False)

    @property
    def log(self) -> logging.Logger:
        """A logger whose lines are stored with the run (created on first use: most runs never log)."""
        if self._logger is None:
            from .capture import RunLog

            if self._runlog is None:
                self._runlog = RunLog()
            self._logger = self._runlog.logger(self.run_id)
        return self._logger

    def mark_partition_failed(self, key: str, error: str | BaseException) -> None:
        """Record one key of a multi-partition run as failed; the others still count as done."""
        if key not in self.partition_keys:
            raise ValueError(f"mark_partition_failed: {key!r} is not a partition of this run")
        self.failed_partitions[key] = str(error) or type(error).__name__

    def __getattr__(self, name: str) -> Any:
        """What the task runtime of the current task call adds (``ac.context().spark`` in a ``SparkTask``)."""
        extras = _extras.get() if not name.startswith("__") else None
        if extras is not None and name in extras:
            return extras[name]
        hint = " (set inside a task whose config is SparkTask())" if name == "spark" else ""
        raise AttributeError(f"RunContext has no attribute {name!r}{hint}")

    @property
    def canceled(self) -> bool:
        return self._cancel.is_set()

    def raise_if_canceled(self) -> None:
        if self._cancel.is_set():
            raise RunCanceled(f"run {self.run_id} was canceled")


def context() -> RunContext:
    """The context of the run executing in this thread; ``RuntimeError`` outside a run."""
    ctx = _current.get()
    if ctx is None:
        raise RuntimeError("ac.context() is only available inside a run (use ac.create_context() to test)")
    return ctx


def current_context() -> RunContext | None:
    return _current.get()


def bind_context(ctx: RunContext | None) -> Token[RunContext | None]:
    return _current.set(ctx)


def unbind_context(token: Token[RunContext | None]) -> None:
    _current.reset(token)


def bind_extras(values: dict[str, Any]) -> Token[dict[str, Any] | None]:
    """Add ``values`` to ``ac.context()`` in this context (a task runtime's call); ``unbind_extras`` removes them."""
    return _extras.set({**(_extras.get() or {}), **values})


def unbind_extras(token: Token[dict[str, Any] | None]) -> None:
    _extras.reset(token)
