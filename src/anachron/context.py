"""``RunContext``: what a running workflow knows about itself, reachable as ``ac.context()``."""

from __future__ import annotations

import logging
import threading
import time as _time
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

_current: ContextVar["RunContext | None"] = ContextVar("anachron_run_context", default=None)


class RunCanceled(Exception):
    """Raised inside a run (at its next task boundary) once the run has been canceled."""


class _LogCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[tuple[float, str, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            if record.exc_info:
                message += "\n" + logging.Formatter().formatException(record.exc_info)
        except Exception:  # a broken log call must not break the run
            message = str(record.msg)
        self.lines.append((record.created, record.levelname, message))


def make_run_logger(run_id: str) -> tuple[logging.Logger, _LogCollector]:
    """A logger private to one run (not registered globally) and the collector of its lines."""
    logger = logging.Logger(f"anachron.run.{run_id}", logging.DEBUG)
    collector = _LogCollector()
    logger.addHandler(collector)
    return logger, collector


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
    log: logging.Logger
    environ: dict[str, str] = field(default_factory=dict)
    failed_partitions: dict[str, str] = field(default_factory=dict)
    _cancel: threading.Event = field(default_factory=threading.Event, repr=False)
    _pools: Any = field(default=None, repr=False)  # a PoolGate, when the instance has pools
    _on_deadline: Any = field(default=None, repr=False)  # tells a process executor when a task must end
    _started: float = field(default_factory=_time.monotonic, repr=False)

    def mark_partition_failed(self, key: str, error: str | BaseException) -> None:
        """Record one key of a multi-partition run as failed; the others still count as done."""
        if key not in self.partition_keys:
            raise ValueError(f"mark_partition_failed: {key!r} is not a partition of this run")
        self.failed_partitions[key] = str(error) or type(error).__name__

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


def bind_context(ctx: RunContext | None):
    return _current.set(ctx)


def unbind_context(token) -> None:
    _current.reset(token)
