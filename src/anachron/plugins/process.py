"""``ac.ProcessTask()``: each call of the task runs in a fresh Python subprocess.

For code that leaks memory, changes global state, or must not share a process with anything else. The
subprocess (``python -c``, this interpreter) imports the task's module, finds the task by name and calls its
function with the arguments (pickled), under the run's ``ac.context()`` and logical clock
(``plugins.base.run_remote``); ``ANACHRON_TIME`` in its environment is the run's logical time too, and the
run's ``environ`` is applied. What it prints (fds 1 and 2) goes to the run's log line by line, its
``ctx.log`` lines come back with the result, its return value or exception comes back pickled.

Stopping: the subprocess leads a process group of its own; a cancel or a timeout kills that group (SIGKILL),
so its own children go too. It dies with the thread that started it (Linux ``PR_SET_PDEATHSIG``): a killed
worker takes it along.
"""

from __future__ import annotations

import contextlib
import inspect
import os
import pickle
import signal
import subprocess
import sys
import tempfile
import threading
from typing import IO, TYPE_CHECKING, Any, NamedTuple

from .. import clock
from .base import ContextSnapshot, RemoteResult, RunningCall, TaskCall, TaskRuntime, run_remote

if TYPE_CHECKING:
    from ..definitions import Task

_CHILD = "from anachron.plugins.process import child_main; child_main()"


class ProcessTaskDied(Exception):
    """The subprocess of a ``ProcessTask`` call ended without a result (killed, crashed, ``os._exit``)."""


class ProcessTask(TaskRuntime):
    """Run each call of the task in a fresh Python subprocess, killed (with its process group) on cancel or
    timeout. Arguments and the return value must pickle; the task must be defined at module level."""

    def __init__(self, stop_grace: float = 5.0):
        if not isinstance(stop_grace, (int, float)) or stop_grace < 0:
            raise ValueError(f"ProcessTask.stop_grace: must be a number of seconds >= 0, got {stop_grace!r}")
        self.stop_grace = float(stop_grace)

    def check(self, task: Task) -> None:
        qualname = getattr(task.fn, "__qualname__", "")
        if "<locals>" in qualname or "<lambda>" in qualname or not getattr(task.fn, "__module__", None):
            raise ValueError(f"task.config: ProcessTask runs task {task.name!r} in a fresh process, which imports "
                             f"its module and finds it by name; {qualname or task.name!r} is not defined at module "
                             "level")

    def start(self, call: TaskCall) -> RunningCall:
        return _ProcessCall(call)

    def __repr__(self) -> str:
        return "ProcessTask()"


class _Payload(NamedTuple):
    module: str | None
    source_file: str | None
    qualname: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    snapshot: ContextSnapshot | None
    sys_path: list[str]
    parent_pid: int
    result_path: str


class _ProcessCall(RunningCall):
    def __init__(self, call: TaskCall):
        self.call = call
        fn = call.fn
        fd, self.result_path = tempfile.mkstemp(prefix="anachron-task-", suffix=".result")
        os.close(fd)
        payload = _Payload(fn.__module__, inspect.getsourcefile(fn), fn.__qualname__, call.args, call.kwargs,
                           call.snapshot(), list(sys.path), os.getpid(), self.result_path)
        try:
            data = pickle.dumps(payload)
        except Exception as exc:  # noqa: BLE001 - whatever pickling raises, said in one line
            os.unlink(self.result_path)
            raise TypeError(f"task {call.task_name}: ProcessTask sends its arguments to a subprocess, and they do "
                            f"not pickle: {exc}") from None
        env = dict(os.environ)
        ctx = call.context
        relay = ctx is not None
        if ctx is not None:
            env.update(ctx.environ)
            env["ANACHRON_TIME"] = f"unix:{clock.time()!r}"  # the logical time, for code that reads it there
        pipe = subprocess.PIPE if relay else None
        self.proc = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=pipe,
                                     stderr=pipe, env=env, start_new_session=True)
        self.relays = [threading.Thread(target=self._relay, args=(stream, level), daemon=True,
                                        name=f"anachron-relay-{self.proc.pid}")
                       for stream, level in ((self.proc.stdout, "STDOUT"), (self.proc.stderr, "STDERR"))
                       if stream is not None]
        for thread in self.relays:
            thread.start()
        assert self.proc.stdin is not None
        with contextlib.suppress(BrokenPipeError):  # it died before reading: its exit says why
            self.proc.stdin.write(data)
        with contextlib.suppress(BrokenPipeError):
            self.proc.stdin.close()
        self.stopped = False

    def _relay(self, stream: IO[bytes], level: str) -> None:
        ctx = self.call.context
        assert ctx is not None
        if ctx._runlog is None:
            ctx.log  # noqa: B018 - creates the run log
        runlog = ctx._runlog
        assert runlog is not None
        for raw in iter(stream.readline, b""):
            runlog.add(level, raw.decode("utf-8", "replace").rstrip("\r\n"))
        stream.close()

    def wait(self, timeout: float) -> bool:
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        for thread in self.relays:  # the output up to its end is in the log before anyone reads it
            thread.join(1.0)
        return True

    def result(self) -> Any:
        try:
            with open(self.result_path, "rb") as f:
                data = f.read()
        finally:
            os.unlink(self.result_path)
        if not data:
            from ..engine.executors.local import describe_exit

            raise ProcessTaskDied(f"task {self.call.task_name}: its process (pid {self.proc.pid}) ended without a "
                                  f"result ({describe_exit(self.proc.returncode)})")
        result: RemoteResult = pickle.loads(data)
        return result.unwrap(self.call)

    def stop(self) -> str:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.result_path)
        return f"its process {self.proc.pid} was killed"


def child_main() -> None:
    """The subprocess: read the call, run it under the run's context, write the result, exit."""
    from ..engine.executors.worker import die_with_parent
    from ..loading import load_task

    payload: _Payload = pickle.load(sys.stdin.buffer)
    die_with_parent(payload.parent_pid)
    sys.path[:] = payload.sys_path
    try:
        task = load_task(payload.module, payload.source_file, payload.qualname)
    except BaseException as exc:  # noqa: BLE001 - reported as the call's error
        result = RemoteResult(False, RuntimeError(f"{type(exc).__name__}: {exc}"), "", [], {})
    else:
        result = run_remote(payload.snapshot, task.fn, payload.args, payload.kwargs)
    try:
        data = pickle.dumps(result)
    except Exception as exc:  # noqa: BLE001 - an unpicklable return value fails the call, saying so
        data = pickle.dumps(result._replace(ok=False, value=TypeError(
            f"task {payload.qualname}: its return value does not pickle, so it cannot leave its process: {exc}")))
    sys.stdout.flush()
    sys.stderr.flush()
    with open(payload.result_path, "wb") as f:
        f.write(data)
