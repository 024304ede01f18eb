"""Executing one run, in whatever thread or process an executor chose.

``RunJob`` is what an executor ships to a worker (picklable); ``RunOutcome`` is what comes back.
Cross-cutting behaviour — retries, timeouts, pools, cancellation — lives in ``call_task``, the
single hook every task call goes through.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import signal
import sys
import threading
import time as _time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from . import clock
from .context import RunCanceled, RunContext, bind_context, current_context, make_run_logger, unbind_context
from .models import CANCELED, FAILED, SUCCESS


class TaskTimeout(Exception):
    """A task ran longer than its ``timeout``."""


@dataclass
class RunJob:
    run_id: str
    attempt: int
    workflow: str
    workflow_ref: tuple[str | None, str, str | None]  # (module, qualname, source file)
    partition_key: str | None
    partition_keys: list[str]
    partition_window: tuple[datetime, datetime] | None
    logical_time: datetime
    scheduled_time: datetime | None
    params: dict[str, Any]
    tags: dict[str, str]
    backfill_id: str | None
    environ: dict[str, str] = field(default_factory=dict)
    storage_url: str | None = None
    pools: dict[str, int] = field(default_factory=dict)


@dataclass
class RunOutcome:
    run_id: str
    attempt: int
    status: str
    error: str | None
    logs: list[tuple[float, str, str]]
    failed_partitions: dict[str, str]
    started_at: datetime
    ended_at: datetime
    result: Any = None
    exception: BaseException | None = None  # in-process only (dev runs re-raise it)


_loading = threading.local()


def importing_in_worker() -> bool:
    """True while a worker process imports user code to find workflows (its own start-up included)."""
    import multiprocessing

    return bool(getattr(_loading, "active", False) or getattr(multiprocessing.current_process(), "_inheriting", False))


def load_workflow(ref: tuple[str | None, str, str | None]):
    """Find a workflow object from its (module, qualname, file) reference, in a worker process."""
    _loading.active = True
    try:
        return _load_workflow(ref)
    finally:
        _loading.active = False


def _load_workflow(ref: tuple[str | None, str, str | None]):
    module_name, qualname, source_file = ref
    if "<locals>" in qualname:
        raise RuntimeError(
            f"workflow {qualname!r} is defined inside a function; process executors need workflows "
            "defined at module top level"
        )
    module = None
    if module_name:
        try:
            module = importlib.import_module(module_name)
        except ImportError:
            module = None
    if module is None or not hasattr(module, qualname.split(".")[0]):
        if not source_file:
            raise RuntimeError(f"cannot import the module of workflow {qualname!r}")
        name = module_name if module_name and module_name != "__main__" else "__anachron_main__"
        module = sys.modules.get(name)
        if module is None or getattr(module, "__file__", None) != source_file:
            spec = importlib.util.spec_from_file_location(name, source_file)
            module = importlib.util.module_from_spec(spec)
            sys.modules[name] = module
            spec.loader.exec_module(module)
    obj: Any = module
    for part in qualname.split("."):
        obj = getattr(obj, part)
    return obj


def execute(job: RunJob, workflow, cancel_event: threading.Event | None = None, pools=None,
            apply_environ: bool = False, on_deadline: Callable[[float | None], None] | None = None) -> RunOutcome:
    """Run ``workflow`` for ``job`` in the current thread and report how it went."""
    logger, collector = make_run_logger(job.run_id)
    started = datetime.now(timezone.utc)
    ctx = RunContext(
        run_id=job.run_id, workflow=job.workflow, partition_key=job.partition_key,
        partition_keys=list(job.partition_keys), partition_window=job.partition_window,
        logical_time=job.logical_time, scheduled_time=job.scheduled_time, params=dict(job.params),
        tags=dict(job.tags), backfill_id=job.backfill_id, attempt=job.attempt, log=logger,
        environ=dict(job.environ), _cancel=cancel_event or threading.Event(), _pools=pools,
        _on_deadline=on_deadline,
    )
    status, error, result, exception = SUCCESS, None, None, None
    ctx_token = bind_context(ctx)
    clock_token = clock.bind_clock(clock.RunClock(job.logical_time, _time.monotonic()))
    try:
        ctx.raise_if_canceled()  # canceled while it waited for a worker
        with _environ(job.environ if apply_environ else {}):
            result = workflow.fn(**job.params)
        ctx.raise_if_canceled()
    except RunCanceled as exc:
        status, error = CANCELED, str(exc)
    except BaseException as exc:  # noqa: BLE001 - a run reports every failure, including SystemExit
        if isinstance(exc, KeyboardInterrupt):
            raise
        status, error, exception = FAILED, _describe(exc), exc
        logger.error("run failed: %s", error)
    finally:
        clock.unbind_clock(clock_token)
        unbind_context(ctx_token)
    if status == SUCCESS and ctx.failed_partitions and len(ctx.failed_partitions) == len(set(ctx.partition_keys)):
        status, error = FAILED, "every partition of the run was marked failed"
    return RunOutcome(job.run_id, job.attempt, status, error, collector.lines, dict(ctx.failed_partitions),
                      started, datetime.now(timezone.utc), result, exception)


def _describe(exc: BaseException) -> str:
    tb = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__, limit=8))
    return f"{type(exc).__name__}: {exc}\n{tb}".strip()


@contextlib.contextmanager
def _environ(values: dict[str, str]):
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


def call_task(task, args: tuple, kwargs: dict) -> Any:
    """Run one task call: cancellation check, pool slot, timeout and retries."""
    ctx = current_context()
    attempts = task.retries + 1
    for attempt in range(1, attempts + 1):
        if ctx is not None:
            ctx.raise_if_canceled()
        try:
            with _pool_slot(ctx, task):
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
def _pool_slot(ctx: RunContext | None, task):
    if task.pool is None or ctx is None or ctx._pools is None:
        yield
        return
    with ctx._pools.slot(task.pool, ctx.run_id, ctx._cancel):
        yield


def _with_timeout(fn: Callable, args: tuple, kwargs: dict, timeout: float | None, name: str,
                  on_deadline: Callable[[float | None], None] | None = None) -> Any:
    if timeout is None:
        return fn(*args, **kwargs)
    message = f"task {name} timed out after {timeout:g} s"
    if threading.current_thread() is threading.main_thread() and hasattr(signal, "setitimer"):
        def on_alarm(signum, frame):
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
