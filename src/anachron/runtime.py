"""Executing one run, in whatever thread or process an executor chose.

``RunJob`` is what an executor ships to a worker (a picklable tuple); ``RunOutcome`` is what comes back.
Cross-cutting behaviour — retries, timeouts, pools, cancellation — lives in ``call_task``, the single hook
every task call goes through.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import threading
import time as _time
import traceback
from collections.abc import Callable, Iterator, Mapping
from datetime import datetime
from typing import Any, NamedTuple

from . import clock
from .capture import RunLog, bind_output, unbind_output
from .context import (
    CancelToken,
    RunCanceled,
    RunContext,
    TaskTimeout,
    bind_context,
    current_context,
    unbind_context,
)
from .models import CANCELED, FAILED, SUCCESS
from .records import Outcome, WorkflowRef

#: An executor's report that a job's execution was lost before it finished (its worker was fenced off
#: by the lease, or died after finishing without reporting): the coordinator queues it again.
LOST = "lost"


class RunJob(NamedTuple):
    run_id: str
    attempt: int
    workflow: WorkflowRef
    partition_keys: tuple[str, ...]
    partition_window: tuple[datetime, datetime] | None
    logical_time: datetime
    scheduled_time: datetime | None
    params: Mapping[str, Any]
    tags: Mapping[str, str]
    backfill_id: str | None
    environ: Mapping[str, str]
    log_limit: int

    @property
    def partition_key(self) -> str | None:
        return self.partition_keys[0] if len(self.partition_keys) == 1 else None


class RunOutcome(NamedTuple):
    run_id: str
    attempt: int
    status: str  # success | failed | canceled | lost
    error: str | None
    logs: tuple[tuple[float, str, str], ...]
    failed_partitions: Mapping[str, str]
    started_at: float
    ended_at: float
    result: Any = None  # in this process only (dev runs return it)
    exception: BaseException | None = None  # in this process only (dev runs re-raise it)

    def record(self) -> Outcome:
        """The outcome to store, its text made storable: what a run prints or raises (a file name decoded
        with ``surrogateescape``, a NUL byte) must not make the transaction recording it fail, for it
        would fail again on every retry and hold up every other run's outcome."""
        logs = self.logs
        if logs and not all(storable(message) is message for _, _, message in logs):
            logs = tuple((ts, level, storable(message)) for ts, level, message in logs)
        failed = self.failed_partitions
        if failed and not all(storable(v) is v for v in failed.values()):
            failed = {k: storable(v) for k, v in failed.items()}
        error = None if self.error is None else storable(self.error)
        return Outcome(self.run_id, self.status, error, self.attempt, self.started_at, self.ended_at, logs, failed)

    @classmethod
    def ended(cls, job: RunJob, status: str, error: str, started: float | None = None) -> RunOutcome:
        """An outcome for a job that ended without running to its end (canceled, lost, killed)."""
        now = _time.time()
        return cls(job.run_id, job.attempt, status, error, (), {}, started or now, now)


def execute(job: RunJob, workflow: Any, cancel_event: CancelToken | None = None, pools: Any = None,
            apply_environ: bool = False, on_deadline: Callable[[float | None], None] | None = None,
            capture_streams: bool = True, runlog: RunLog | None = None,
            before_end: Callable[[], object] | None = None,
            on_stoppable: Callable[[float | None], None] | None = None) -> RunOutcome:
    """Run ``workflow`` for ``job`` in the current thread and report how it went. Every exception the
    workflow raises — ``KeyboardInterrupt`` and ``SystemExit`` included — ends the run as failed.

    ``capture_streams``: what the run prints (``sys.stdout`` / ``sys.stderr``) goes to its logs (threads);
    ``before_end`` runs when the workflow has returned, before the log is read (a process's fd capture)."""
    runlog = runlog if runlog is not None else RunLog(job.log_limit)
    started = _time.time()
    ctx = RunContext(
        run_id=job.run_id, workflow=job.workflow.name, partition_key=job.partition_key,
        partition_keys=list(job.partition_keys), partition_window=job.partition_window,
        logical_time=job.logical_time, scheduled_time=job.scheduled_time, params=dict(job.params),
        tags=dict(job.tags), backfill_id=job.backfill_id, attempt=job.attempt, environ=dict(job.environ),
        _runlog=runlog, _cancel=cancel_event or CancelToken(), _pools=pools, _on_deadline=on_deadline,
        _on_stoppable=on_stoppable,
    )
    status, error, result, exception = SUCCESS, None, None, None
    ctx_token = bind_context(ctx)
    clock_token = clock.bind_clock(clock.RunClock(job.logical_time))
    output_token = bind_output(runlog) if capture_streams else None
    try:
        ctx.raise_if_canceled()  # canceled while it waited for a worker
        with _environ(job.environ if apply_environ else {}):
            result = workflow.fn(**job.params)
        ctx.raise_if_canceled()
    except RunCanceled as exc:
        status, error = CANCELED, str(exc)
    except BaseException as exc:  # noqa: BLE001 - a run reports every failure, SystemExit and Ctrl-C included
        status, error, exception = FAILED, describe(exc), exc
        ctx.log.error("run failed: %s", error)
    finally:
        if output_token is not None:
            unbind_output(output_token)
        if before_end is not None:
            before_end()
        clock.unbind_clock(clock_token)
        unbind_context(ctx_token)
    if status == SUCCESS and ctx.failed_partitions and len(ctx.failed_partitions) == len(set(ctx.partition_keys)):
        status, error = FAILED, "every partition of the run was marked failed"
    return RunOutcome(job.run_id, job.attempt, status, error, tuple(runlog.lines()), dict(ctx.failed_partitions),
                      started, _time.time(), result, exception)


_SURROGATE = re.compile("[\ud800-\udfff]")


def storable(text: str) -> str:
    """``text`` as both databases can store it (the same object when it already is): lone surrogates, which
    UTF-8 cannot encode, and NUL, which PostgreSQL text refuses, become U+FFFD."""
    if text.isascii():
        if "\x00" not in text:
            return text
    else:
        try:
            text.encode("utf-8")
            if "\x00" not in text:
                return text
        except UnicodeEncodeError:
            text = _SURROGATE.sub("\ufffd", text)
    return text.replace("\x00", "\ufffd")


def describe(exc: BaseException) -> str:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=8))
    return f"{type(exc).__name__}: {exc}\n{tb}".strip()


@contextlib.contextmanager
def _environ(values: Mapping[str, str]) -> Iterator[None]:
    if not values:
        yield
        return
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, old in saved.items():
            if old is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = old


def call_task(task: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    """Run one task call: cancellation check, pool slot, timeout and retries — here, or on the task's
    runtime (``config``), which then owns the timeout and the stop on cancel."""
    ctx = current_context()
    attempts = task.retries + 1
    for attempt in range(1, attempts + 1):
        if ctx is not None:
            ctx.raise_if_canceled()
        try:
            with _pool_slot(ctx, task):
                if task.config is not None:  # a task runtime: Spark, Dask, a subprocess
                    from .plugins.base import call_on_runtime

                    return call_on_runtime(task, args, kwargs, ctx)
                return _with_timeout(task.fn, args, kwargs, task.timeout, task.name,
                                     ctx._on_deadline if ctx is not None else None)
        except RunCanceled:
            raise
        except Exception as exc:
            if attempt >= attempts:
                raise
            if ctx is not None:
                ctx.log.warning("task %s failed (attempt %d/%d): %s; retrying", task.name, attempt, attempts, exc)
            if task.retry_delay:
                _time.sleep(task.retry_delay)
    raise AssertionError("unreachable")


@contextlib.contextmanager
def _pool_slot(ctx: RunContext | None, task: Any) -> Iterator[None]:
    """A slot of the task's pool and of every tag limit its tags match, held for the call."""
    if (task.pool is None and not task.tags) or ctx is None or ctx._pools is None:
        yield
        return
    with ctx._pools.slots(task.pool, task.tags, ctx.run_id, ctx._cancel):
        yield


def _with_timeout(fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any], timeout: float | None,
                  name: str, on_deadline: Callable[[float | None], None] | None = None) -> Any:
    if timeout is None:
        return fn(*args, **kwargs)
    message = f"task {name} timed out after {timeout:g} s"
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        def on_alarm(signum: int, frame: Any) -> None:
            raise TaskTimeout(message)

        previous = signal.signal(signal.SIGALRM, on_alarm)
        signal.setitimer(signal.ITIMER_REAL, timeout)
        if on_deadline is not None:  # a process executor kills us if the alarm cannot stop the task
            on_deadline(_time.time() + timeout)
        try:
            return fn(*args, **kwargs)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, previous)
            if on_deadline is not None:
                on_deadline(None)
    # In a worker thread a task cannot be interrupted: run it in a helper thread and stop waiting.
    import contextvars

    box: dict[str, Any] = {}
    run_ctx = contextvars.copy_context()

    def target() -> None:
        try:
            box["value"] = run_ctx.run(fn, *args, **kwargs)
        except BaseException as exc:  # noqa: BLE001
            box["error"] = exc

    helper = threading.Thread(target=target, name=f"anachron-task-{name}", daemon=True)
    helper.start()
    helper.join(timeout)
    if helper.is_alive():
        raise TaskTimeout(message + " (the task's thread was abandoned)")
    if "error" in box:
        raise box["error"]
    return box.get("value")
