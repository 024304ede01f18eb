"""``SparkTask()``: the task's body gets a SparkSession, ``ac.context().spark`` (extra ``anachron[spark]``).

``@ac.task(config=SparkTask(master="local[*]", conf={...}, app_name=None))``:

- **One session per process, reused.** The first call in a process starts the SparkSession (the JVM, for a
  ``local`` master); every later call with the same master, conf and app name reuses it, so a backfill of 365
  partitions on ``LocalExecutor(2)`` starts two JVMs, not 365. A call wanting a different master or conf stops
  the idle session and starts its own (a session in use by another call is never stopped: that call fails,
  naming both settings). The application's name is fixed when its session starts: ``app_name``, else
  ``anachron <workflow>`` of the first run.
- **Each run is marked.** The body runs in a helper thread whose Spark job group is the run id, with the
  description ``workflow · partition · run id · task`` (what the Spark UI shows for every job of the run).
- **Cancel and timeout cancel the job group** (``SparkContext.cancelJobGroup``, interrupting the tasks'
  threads): the run ends ``canceled`` (or its task ``TaskTimeout``) within about a second, and the session
  stays up for the next run. A body that keeps going in Python after its job was canceled gets
  ``stop_grace`` seconds before its worker process is killed.
- **A dead JVM is replaced.** When the session's JVM has died (the OOM killer, a crash), the next call starts
  a new session in the same worker process instead of failing on a dead gateway.
- **Errors are short.** A Spark error (a ``PySparkException`` or a ``Py4JJavaError``) fails the call with
  ``SparkTaskError`` carrying Spark's own message — the error class and message, the Python worker's last
  lines — never a JVM stack of hundreds of lines; the full text goes to the run's log.
- **Any master.** ``local[*]`` needs only a Java runtime (Spark 4: Java 17+). ``spark://host:7077``, ``yarn``
  or ``k8s://`` work by configuration (``conf`` takes any ``spark.*`` setting; ``HADOOP_CONF_DIR`` for
  YARN), as with ``spark-submit``'s client mode: the driver runs in the worker process.

pyspark is imported when the first call starts, never by ``import anachron``.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections.abc import Mapping
from typing import Any

from .base import RunningCall, TaskCall, TaskRuntime, ThreadedCall

#: at most this many lines of a Spark error go into the run's error (the whole of it goes to its log)
MAX_ERROR_LINES = 12
MAX_ERROR_CHARS = 2000
#: settings a SparkTask starts with unless its ``conf`` says otherwise: Spark's console progress bar would
#: fill the run's log (the worker's stderr is captured into it)
DEFAULT_CONF = {"spark.ui.showConsoleProgress": "false"}


class SparkTaskError(Exception):
    """A Spark job of a ``SparkTask`` failed; the message is Spark's, shortened (the full one is in the run's log)."""


class SparkTask(TaskRuntime):
    """Run the task's body with a SparkSession (``ac.context().spark``) reused across runs in this process; a
    cancel or timeout cancels the run's Spark job group."""

    def __init__(self, master: str = "local[*]", conf: Mapping[str, Any] | None = None, app_name: str | None = None,
                 stop_grace: float = 10.0):
        if not isinstance(master, str) or not master:
            raise ValueError(f"SparkTask.master: expected a Spark master URL such as 'local[*]', got {master!r}")
        if conf is not None and not isinstance(conf, Mapping):
            raise ValueError(f"SparkTask.conf: expected a mapping of Spark settings, got {type(conf).__name__}")
        for key in conf or {}:
            if not isinstance(key, str) or not key:
                raise ValueError(f"SparkTask.conf: setting names must be non-empty strings, got {key!r}")
        if app_name is not None and (not isinstance(app_name, str) or not app_name):
            raise ValueError(f"SparkTask.app_name: expected a non-empty string, got {app_name!r}")
        if not isinstance(stop_grace, (int, float)) or stop_grace < 0:
            raise ValueError(f"SparkTask.stop_grace: must be a number of seconds >= 0, got {stop_grace!r}")
        self.master = master
        self.conf = {**DEFAULT_CONF, **{k: str(v) for k, v in (conf or {}).items()}}
        self.app_name = app_name
        self.stop_grace = float(stop_grace)

    @property
    def settings(self) -> tuple[str, tuple[tuple[str, str], ...], str | None]:
        """What decides whether a running session can serve a call."""
        return self.master, tuple(sorted(self.conf.items())), self.app_name

    def start(self, call: TaskCall) -> RunningCall:
        session = _sessions.acquire(self, call)
        try:
            return _SparkCall(session, call)
        except BaseException:
            _sessions.release()
            raise

    def __repr__(self) -> str:
        return f"SparkTask(master={self.master!r}, conf={self.conf!r}, app_name={self.app_name!r})"


class _Sessions:
    """This process's SparkSession: started by the first call, reused while the settings match."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.session: Any = None
        self.settings: Any = None
        self.in_use = 0
        self.started = 0  # how many sessions this process has started (the JVM starts with the first)
        self.start_seconds: float | None = None  # how long the last one took to start

    def acquire(self, runtime: SparkTask, call: TaskCall) -> Any:
        with self.lock:
            session = self.session
            if session is not None and self.settings != runtime.settings:
                if self.in_use:
                    raise RuntimeError(f"task {call.task_name}: this process's SparkSession runs other calls with "
                                       f"{_describe(self.settings)}; it cannot also serve "
                                       f"{_describe(runtime.settings)} at the same time (one SparkContext per "
                                       "process)")
                session.stop()
                session = self.session = None
            if session is not None and not _jvm_alive():  # killed (out of memory, say): start a new one
                call.log("warning", "the JVM of this process's SparkSession is gone (exit status %s); starting "
                         "a new session", _jvm_exit())
                _forget_jvm()
                session = self.session = None
            if session is None or session.sparkContext._jsc is None:  # not started, or stopped by the user
                began = time.monotonic()
                session = self.session = _build(runtime, call)
                self.start_seconds = time.monotonic() - began
                self.settings = runtime.settings
                self.started += 1
            self.in_use += 1
            return session

    def release(self) -> None:
        with self.lock:
            self.in_use -= 1


_sessions = _Sessions()


def _describe(settings: tuple[str, tuple[tuple[str, str], ...], str | None]) -> str:
    master, conf, app_name = settings
    return f"master={master!r}, conf={dict(conf)!r}, app_name={app_name!r}"


def _build(runtime: SparkTask, call: TaskCall) -> Any:
    from pyspark.sql import SparkSession

    workflow = call.context.workflow if call.context is not None else call.task_name
    builder = SparkSession.builder.master(runtime.master).appName(runtime.app_name or f"anachron {workflow}")
    for key, value in runtime.conf.items():
        builder = builder.config(key, value)
    call.log("info", "starting a SparkSession (master %s)", runtime.master)
    return builder.getOrCreate()


def _jvm_exit() -> int | None:
    from pyspark import SparkContext

    proc = getattr(SparkContext._gateway, "proc", None)  # the JVM pyspark launched (None: not ours to watch)
    return proc.poll() if proc is not None else None


def _jvm_alive() -> bool:
    return _jvm_exit() is None


def _forget_jvm() -> None:
    """Make pyspark launch a new JVM on the next ``getOrCreate`` (its own state still points at the dead one)."""
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    SparkContext._gateway = SparkContext._jvm = SparkContext._active_spark_context = None
    SparkSession._instantiatedSession = SparkSession._activeSession = None


def session_info() -> dict[str, Any]:
    """This process's Spark state: whether a session is up, its application id, how many were started."""
    session = _sessions.session
    sc = session.sparkContext if session is not None else None
    return {"running": sc is not None and sc._jsc is not None, "application_id": sc.applicationId if sc else None,
            "sessions_started": _sessions.started, "start_seconds": _sessions.start_seconds}


class _SparkCall(ThreadedCall):
    def __init__(self, session: Any, call: TaskCall):
        self.session, self.call = session, call
        self.group = call.run_id or f"anachron-{id(self):x}"
        super().__init__(self._body, name=f"anachron-spark-{call.task_name}")

    def _body(self) -> Any:
        sc = self.session.sparkContext
        sc.setJobGroup(self.group, self.call.label(), interruptOnCancel=True)
        try:
            return self.call.invoke(spark=self.session)
        finally:
            _sessions.release()

    def result(self) -> Any:
        try:
            return super().result()
        except Exception as exc:
            short = short_spark_error(exc)
            if short is None:
                raise
            full = "".join(traceback.format_exception(exc)).rstrip()
            jvm = getattr(exc, "_stackTrace", None)  # a captured exception's JVM stack (its str() may omit it)
            if isinstance(jvm, str) and jvm not in full:
                full += "\n\nJVM stacktrace:\n" + jvm.rstrip()
            self.call.log("error", "task %s: Spark failed:\n%s", self.call.task_name, full)
            raise SparkTaskError(short) from None

    def stop(self) -> str:
        sc = self.session.sparkContext
        sc.cancelJobGroup(self.group)
        return f"Spark job group {self.group} canceled"


def short_spark_error(exc: BaseException) -> str | None:
    """Spark's message of ``exc`` without the JVM stack, or ``None`` when ``exc`` is not a Spark error."""
    from py4j.protocol import Py4JJavaError
    from pyspark.errors import PySparkException

    if isinstance(exc, PySparkException):
        desc = getattr(exc, "_desc", None)  # a captured exception's message, without the JVM stack
        text = desc if isinstance(desc, str) and desc else str(exc).split("\n\nJVM stacktrace:", 1)[0]
    elif isinstance(exc, Py4JJavaError):
        text = str(exc)
        if text.startswith("An error occurred while calling"):
            text = text.split("\n", 1)[-1].lstrip(": ")
    else:
        return None
    lines = [line for line in text.strip().splitlines()
             if not line.lstrip().startswith("at ") and not (line.startswith("\t...") and "more" in line)]
    if len(lines) > MAX_ERROR_LINES:  # the first lines say what failed, the last ones why (a Python traceback)
        lines = lines[:3] + [f"... ({len(lines) - MAX_ERROR_LINES + 1} lines more in the run's log) ..."] + \
            lines[-(MAX_ERROR_LINES - 4):]
    short = "\n".join(lines).strip()
    if len(short) > MAX_ERROR_CHARS:
        short = short[:MAX_ERROR_CHARS] + " … (the rest in the run's log)"
    return f"{type(exc).__name__}: {short}"
