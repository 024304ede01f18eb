"""The ``TaskRuntime`` contract: where a task's calls run, how a call is stopped, what it adds to the context.

A task declared ``@ac.task(config=runtime)`` is called like any task (retries, pool slot, cancellation
check around it, in ``runtime.call_task``), but the call itself goes to ``call_on_runtime``:

1. **Execute.** ``runtime.start(call)`` begins the call somewhere — a thread holding a SparkSession, a Dask
   future, a subprocess — and returns at once a ``RunningCall``.
2. **Watch.** The calling thread waits on it in slices of ``POLL_SECONDS``, looking at the run's cancel flag
   and the task's ``timeout`` (a runtime owns the timeout: no ``SIGALRM`` interrupts a thread blocked in
   Spark's gateway or a Dask wait).
3. **Stop.** On cancel or timeout it calls ``running.stop()`` (cancel the Spark job group, cancel the Dask
   future, kill the subprocess's process group), waits up to ``runtime.stop_grace`` seconds for the call to
   end, and raises ``RunCanceled`` / ``TaskTimeout``. In a worker process (``LocalExecutor``, ``DaskExecutor``)
   the executor is told a runtime call is in flight (``RunContext._on_stoppable``): a cancel then sets the
   run's cancel flag and gives the runtime ``stop_grace`` seconds before the worker process is killed, and a
   timeout's kill deadline moves on by as much — so a stopped Spark job leaves the worker, and its
   SparkSession, alive. Work that does not stop within the grace is ended by that kill (threads: left behind
   with a warning in the run's log).
4. **Context.** ``call.invoke(**extras)`` runs the task's function with ``extras`` added to
   ``ac.context()`` for the call (``ac.context().spark``). A runtime that runs the function in another
   process carries the run's context there as a ``ContextSnapshot`` and runs it with ``run_remote``: the
   other side sees the same ``ac.context()`` fields and the same logical clock (``ac.now()``), and its log
   lines and ``mark_partition_failed`` calls come back with the result (``RemoteResult.unwrap``).

Only the standard library is used here: ``import anachron`` imports this module.
"""

from __future__ import annotations

import contextvars
import dataclasses
import pickle
import threading
import time as _time
import traceback
from abc import ABC, abstractmethod
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import clock
from ..context import (
    CancelToken,
    RunCanceled,
    RunContext,
    TaskTimeout,
    bind_context,
    bind_extras,
    unbind_context,
    unbind_extras,
)

if TYPE_CHECKING:
    from ..definitions import Task

POLL_SECONDS = 0.05  # how often a waiting call looks at the cancel flag and the timeout
_in_call: contextvars.ContextVar[bool] = contextvars.ContextVar("anachron_in_runtime_call", default=False)


class TaskRuntime(ABC):
    """Where a task's calls run: ``@ac.task(config=runtime)``. Subclasses implement ``start``; see the module
    docstring for the contract."""

    #: seconds a call gets to stop after ``RunningCall.stop()`` before the process running it is killed
    stop_grace: float = 5.0

    def check(self, task: Task) -> None:  # noqa: B027 - optional: a runtime refuses a task it cannot run
        """Refuse, with ``ValueError`` naming ``task.config``, a task this runtime cannot run (called when
        the task is declared)."""

    @abstractmethod
    def start(self, call: TaskCall) -> RunningCall:
        """Begin ``call`` and return at once."""


class RunningCall(ABC):
    """One task call in flight on a runtime."""

    @abstractmethod
    def wait(self, timeout: float) -> bool:
        """Block up to ``timeout`` seconds; whether the call has ended (returned, raised or stopped)."""

    @abstractmethod
    def result(self) -> Any:
        """The call's return value, or raise its error (once ``wait`` said it ended)."""

    @abstractmethod
    def stop(self) -> str:
        """Stop the call's work now (returns quickly); what was done, for the run's log."""


class TaskCall:
    """A task call handed to a runtime: the function, its arguments, and the run it belongs to (``None``
    when the task is called outside a run)."""

    def __init__(self, task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], context: RunContext | None):
        self.task_name = task.name
        self.fn = task.fn
        self.args, self.kwargs = args, kwargs
        self.context = context
        self._vars = contextvars.copy_context()  # the caller's: run context, logical clock, output capture

    @property
    def run_id(self) -> str | None:
        return self.context.run_id if self.context is not None else None

    def label(self) -> str:
        """``workflow · partition · run id · task`` (for job descriptions and logs)."""
        ctx = self.context
        if ctx is None:
            return f"task {self.task_name}"
        part = ctx.partition_key or (f"{len(ctx.partition_keys)} partitions" if ctx.partition_keys else None)
        return " · ".join(x for x in (ctx.workflow, part, f"run {ctx.run_id}", f"task {self.task_name}") if x)

    def invoke(self, **extras: Any) -> Any:
        """Run the function here with ``extras`` added to ``ac.context()``, in the caller's context (also
        from another thread)."""
        return self._vars.copy().run(self._invoke, extras)

    def _invoke(self, extras: dict[str, Any]) -> Any:
        token = bind_extras(extras) if extras else None
        try:
            return self.fn(*self.args, **self.kwargs)
        finally:
            if token is not None:
                unbind_extras(token)

    def log(self, level: str, message: str, *args: Any) -> None:
        if self.context is not None:
            getattr(self.context.log, level)(message, *args)

    def snapshot(self) -> ContextSnapshot | None:
        return snapshot_of(self.context) if self.context is not None else None


class ThreadedCall(RunningCall):
    """A call whose client API blocks (Spark's): ``target`` runs in a helper thread under the caller's context."""

    def __init__(self, target: Callable[[], Any], name: str):
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(target,), name=name, daemon=True)
        self._thread.start()

    def _run(self, target: Callable[[], Any]) -> None:
        try:
            self._value = target()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by result()
            self._error = exc

    def wait(self, timeout: float) -> bool:
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._value


def check_config(task: Task, config: object) -> None:
    """``@ac.task(config=...)``: a ``TaskRuntime`` that accepts the task, else ``ValueError``."""
    if not isinstance(config, TaskRuntime):
        raise ValueError(f"task.config: expected a task runtime (ac.ProcessTask(), "
                         f"anachron.plugins.spark.SparkTask(), anachron.plugins.dask.DaskTask()), "
                         f"got {type(config).__name__}")
    config.check(task)


def call_on_runtime(task: Task, args: tuple[Any, ...], kwargs: dict[str, Any], ctx: RunContext | None) -> Any:
    """One call of ``task`` on its runtime, watched for cancel and timeout (see the module docstring)."""
    runtime = task.config
    assert runtime is not None
    timeout = task.timeout
    grace = runtime.stop_grace
    on_stoppable = ctx._on_stoppable if ctx is not None else None
    on_deadline = ctx._on_deadline if ctx is not None else None
    deadline = None if timeout is None else _time.monotonic() + timeout
    if _in_call.get():  # a runtime call inside another's body: the outer call's announcements stand
        on_stoppable = on_deadline = None
    nested = _in_call.set(True)
    call = TaskCall(task, args, kwargs, ctx)
    if on_stoppable is not None:
        on_stoppable(grace)
    if timeout is not None and on_deadline is not None:  # the executor's kill, should the stop not work
        on_deadline(_time.time() + timeout + grace)
    try:
        running = runtime.start(call)
        why = None
        while not running.wait(POLL_SECONDS):
            if ctx is not None and ctx.canceled:
                why = "canceled"
                break
            if deadline is not None and _time.monotonic() >= deadline:
                why = "timeout"
                break
        if why is None:
            return running.result()
        what = running.stop()
        call.log("warning", "task %s %s: %s", task.name, "canceled" if why == "canceled" else "timed out", what)
        if not running.wait(grace):
            call.log("warning", "task %s: its work did not stop within %g s after %s", task.name, grace, what)
            if on_stoppable is not None:  # a worker process: its executor kills it (and the work) now
                while not running.wait(1.0):
                    pass
        if why == "canceled":
            assert ctx is not None
            raise RunCanceled(f"run {ctx.run_id} was canceled ({what})")
        raise TaskTimeout(f"task {task.name} timed out after {timeout:g} s ({what})")
    finally:
        _in_call.reset(nested)
        if on_stoppable is not None:
            on_stoppable(None)
        if timeout is not None and on_deadline is not None:
            on_deadline(None)


# -- the run's context in another process --------------------------------------------------------------
class ContextSnapshot(NamedTuple):
    """What another process needs to show a task call its run's ``ac.context()`` and logical clock."""

    context: RunContext  # a copy without what stays here (log, cancel flag, pools, executor hooks)
    clock_reading: float  # the caller's ac.time() when the call started: the other side's clock goes on from it
    log_limit: int


def snapshot_of(ctx: RunContext) -> ContextSnapshot:
    from ..capture import DEFAULT_MAX_BYTES

    limit = ctx._runlog.max_bytes if ctx._runlog is not None else DEFAULT_MAX_BYTES
    portable = dataclasses.replace(ctx, params=dict(ctx.params), failed_partitions={}, _runlog=None, _logger=None,
                                   _cancel=CancelToken(), _pools=None, _on_deadline=None, _on_stoppable=None)
    return ContextSnapshot(portable, clock.time(), limit)


class RemoteResult(NamedTuple):
    """What a call run in another process sends back."""

    ok: bool
    value: Any  # the return value, or the exception (itself when it pickles, else a RuntimeError with its text)
    trace: str  # the other side's traceback when it failed
    logs: list[tuple[float, str, str]]
    failed_partitions: dict[str, str]

    def unwrap(self, call: TaskCall) -> Any:
        """Add the other side's log lines and failed partitions to the caller's run; return or raise."""
        ctx = call.context
        if ctx is not None:
            if self.logs:
                if ctx._runlog is None:
                    ctx.log  # noqa: B018 - creates the run log
                assert ctx._runlog is not None
                for t, level, message in self.logs:
                    ctx._runlog.add(level, message, t)
            ctx.failed_partitions.update(self.failed_partitions)
        if self.ok:
            return self.value
        error: BaseException = self.value
        if self.trace:
            error.add_note(f"(raised in task {call.task_name}'s runtime)\n{self.trace.rstrip()}")
        raise error


def run_remote(snapshot: ContextSnapshot | None, fn: Callable[..., Any], args: tuple[Any, ...],
               kwargs: dict[str, Any], cancel: CancelToken | None = None, capture_print: bool = False) -> RemoteResult:
    """Run ``fn`` in this (other) process under the caller's run context and logical clock; never raises."""
    from ..capture import RunLog, bind_output, unbind_output

    if snapshot is None:  # called outside a run: no context to show
        try:
            return RemoteResult(True, fn(*args, **kwargs), "", [], {})
        except BaseException as exc:  # noqa: BLE001 - sent back to the caller
            return RemoteResult(False, _portable(exc), traceback.format_exc(), [], {})
    runlog = RunLog(snapshot.log_limit)
    ctx = dataclasses.replace(snapshot.context, _runlog=runlog, _cancel=cancel or CancelToken())
    started = datetime.fromtimestamp(snapshot.clock_reading, timezone.utc)
    tokens = (bind_context(ctx), clock.bind_clock(clock.RunClock(started)))
    output = bind_output(runlog) if capture_print else None
    try:
        result = RemoteResult(True, fn(*args, **kwargs), "", [], {})
    except BaseException as exc:  # noqa: BLE001 - sent back to the caller
        result = RemoteResult(False, _portable(exc), traceback.format_exc(), [], {})
    finally:
        if output is not None:
            unbind_output(output)
        clock.unbind_clock(tokens[1])
        unbind_context(tokens[0])
    return result._replace(logs=runlog.lines(), failed_partitions=dict(ctx.failed_partitions))


def _portable(exc: BaseException) -> BaseException:
    """``exc`` when it survives pickling, else a ``RuntimeError`` with its type and message."""
    try:
        pickle.loads(pickle.dumps(exc))
        return exc
    except Exception:  # noqa: BLE001 - any pickling failure
        return RuntimeError(f"{type(exc).__name__}: {exc}")
