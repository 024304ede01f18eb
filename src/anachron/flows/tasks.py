"""The task types of a YAML flow: parsed (and their templates compiled) at load time, run inside a run.

=========  ===============================================================  ===================================
type       aliases (Kestra type names)                                      keys
=========  ===============================================================  ===================================
shell      ``io.kestra.plugin.scripts.shell.Commands``,                     ``commands`` (required),
           ``io.kestra.core.tasks.scripts.Bash``                            ``beforeCommands``, ``env``,
                                                                            ``workingDirectory`` (or ``cwd``),
                                                                            ``taskRunner`` (Process only)
python     —                                                                ``callable: pkg.mod:fn``, ``args``
log        ``io.kestra.plugin.core.log.Log``, ``io.kestra.core.tasks.log.Log``  ``message`` (text or list), ``level``
=========  ===============================================================  ===================================

Every task also takes ``id`` (required, unique in the flow), ``description``, ``disabled`` (skip it),
``pool`` (an anachron task pool), ``timeout`` (seconds, or an ISO-8601 duration such as ``PT30S``) and
``retry`` — a number of retries, or Kestra's ``{type: constant, maxAttempts: N, interval: PT10S}``
(``maxAttempts`` counts every attempt, the first included).

Each task runs through an ``anachron.Task``, so retries, pools and cancel checks are those of Python
tasks. Templates are rendered *before* the task is called: a template error fails the task once, naming
it, without retries. A shell task enforces its own ``timeout`` (it must stop the shell's processes; the
generic timeout of a task running in a thread could only abandon it); a python task uses ``Task``'s.

A python task's ``callable`` is imported when the task runs, with the flow file's directory appended to
``sys.path`` while it is imported. Loading the flow only checks that its module can be found (without
running it): a misspelled or missing module is refused with the file and line, not at the first run.
When it names an ``anachron`` task or workflow, its function is called, inside this run.
String ``args`` (at any depth) are rendered as templates — one that is a single expression alone
(``"{{ inputs.offset }}"``) passes the value with its type —; other YAML values are passed as written.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import logging
import os
import re
import sys
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..context import RunContext
from ..definitions import Task, Workflow
from ..runenv import run_environ
from .errors import FlowTaskError
from .shell import run_shell
from .templates import Template, TemplateRenderError, compile_template, compile_value, render_value
from .yamldoc import Field, describe

__all__ = ["TaskSpec", "ShellTask", "PythonTask", "LogTask", "RunScope", "parse_task", "parse_duration",
           "resolve_callable", "TYPE_NAMES"]

SHELL_TYPES = ("shell", "io.kestra.plugin.scripts.shell.Commands", "io.kestra.core.tasks.scripts.Bash")
PYTHON_TYPES = ("python",)
LOG_TYPES = ("log", "io.kestra.plugin.core.log.Log", "io.kestra.core.tasks.log.Log")
TYPE_NAMES = ", ".join(("shell", "python", "log")) + " (or " + ", ".join(SHELL_TYPES[1:] + LOG_TYPES[1:]) + ")"
_PROCESS_RUNNER = "io.kestra.plugin.core.runner.Process"
_COMMON_KEYS = ("id", "type", "description", "disabled", "pool", "timeout", "retry")
_TASK_ID = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
_CALLABLE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_DURATION = re.compile(r"^P(?:(?P<d>\d+(?:\.\d+)?)D)?(?:T(?:(?P<h>\d+(?:\.\d+)?)H)?(?:(?P<m>\d+(?:\.\d+)?)M)?"
                       r"(?:(?P<s>\d+(?:\.\d+)?)S)?)?$")
_LEVELS = {"TRACE": logging.DEBUG, "DEBUG": logging.DEBUG, "INFO": logging.INFO, "WARN": logging.WARNING,
           "WARNING": logging.WARNING, "ERROR": logging.ERROR}
_sys_path_lock = threading.Lock()


@dataclass(frozen=True)
class RunScope:
    """What a task needs while a run executes it."""

    ctx: RunContext
    variables: Mapping[str, Any]
    flow_dir: str


@dataclass(frozen=True)
class TaskSpec(ABC):
    """A task of the flow: the options every task type shares, and how a type renders and runs."""

    id: str
    retries: int = 0
    retry_delay: float = 0.0
    timeout: float | None = None
    pool: str | None = None
    disabled: bool = False

    @abstractmethod
    def render(self, scope: RunScope) -> Any:
        """The task's templates rendered for this run (what ``execute`` is called with)."""

    @abstractmethod
    def execute(self, rendered: Any, scope: RunScope) -> Any:
        """Do the work, inside the ``anachron.Task`` call (so retries, pool and cancel checks apply)."""

    def as_task(self) -> Task:
        """The ``anachron.Task`` that runs this spec (retries, pool and timeout applied by the runtime)."""
        def body(rendered: Any, scope: RunScope) -> Any:
            return self.execute(rendered, scope)

        body.__name__ = body.__qualname__ = self.id
        return Task(body, retries=self.retries, retry_delay=self.retry_delay, timeout=self._task_timeout(),
                    pool=self.pool, name=self.id)

    def _task_timeout(self) -> float | None:
        return self.timeout

    def run(self, task: Task, scope: RunScope) -> Any:
        try:
            rendered = self.render(scope)
        except TemplateRenderError as exc:
            raise FlowTaskError(f"task {self.id}: {exc}") from None
        return task(rendered, scope)


@dataclass(frozen=True)
class ShellTask(TaskSpec):
    commands: tuple[Template, ...] = ()
    env: tuple[tuple[str, Template], ...] = ()
    cwd: Template | None = None

    def render(self, scope: RunScope) -> tuple[list[str], dict[str, str], str]:
        commands = [t.render(scope.variables) for t in self.commands]
        env = {name: t.render(scope.variables) for name, t in self.env}
        cwd = scope.flow_dir if self.cwd is None else os.path.join(scope.flow_dir, self.cwd.render(scope.variables))
        return commands, env, cwd

    def execute(self, rendered: tuple[list[str], dict[str, str], str], scope: RunScope) -> None:
        commands, env, cwd = rendered
        ctx = scope.ctx
        log = ctx.log

        def on_line(stream: str, line: str) -> None:
            (log.info if stream == "stdout" else log.warning)("%s", line)

        run_shell(self.id, commands, cwd=cwd, env={**run_environ(), **ctx.environ, **env}, on_line=on_line,
                  canceled=lambda: ctx.canceled, timeout=self.timeout)

    def _task_timeout(self) -> float | None:
        return None  # enforced by run_shell, which stops the shell's processes


@dataclass(frozen=True)
class PythonTask(TaskSpec):
    target: str = ""
    args: Mapping[str, Any] = field(default_factory=dict)

    def render(self, scope: RunScope) -> dict[str, Any]:
        rendered: dict[str, Any] = render_value(dict(self.args), scope.variables, typed=True)
        return rendered

    def execute(self, rendered: dict[str, Any], scope: RunScope) -> Any:
        return resolve_callable(self.target, scope.flow_dir, f"task {self.id}")(**rendered)


@dataclass(frozen=True)
class LogTask(TaskSpec):
    messages: tuple[Template, ...] = ()
    level: int = logging.INFO

    def render(self, scope: RunScope) -> list[str]:
        return [t.render(scope.variables) for t in self.messages]

    def execute(self, rendered: list[str], scope: RunScope) -> None:
        for message in rendered:
            scope.ctx.log.log(self.level, "%s", message)


# -- loading ------------------------------------------------------------------------------------------------

def parse_duration(field: Field) -> float:
    """Seconds from a number or an ISO-8601 duration (``PT30S``, ``PT1H30M``, ``P1D``, ``PT0.5S``); > 0."""
    value = field.value
    seconds: float | None = None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        seconds = float(value)
    elif isinstance(value, str):
        match = _DURATION.match(value.strip().upper())
        if match and any(match.groupdict().values()):
            parts = {k: float(v) for k, v in match.groupdict().items() if v}
            seconds = parts.get("d", 0) * 86400 + parts.get("h", 0) * 3600 + parts.get("m", 0) * 60 + parts.get("s", 0)
    if seconds is None:
        raise field.error(f"expected a number of seconds or an ISO-8601 duration such as PT30S, got {describe(value)}")
    if not seconds > 0:
        raise field.error(f"must be more than 0 seconds, got {describe(value)}")
    return seconds


def _retry(field: Field) -> tuple[int, float]:
    """``(retries, delay seconds)`` from ``retry: N`` or ``retry: {type: constant, maxAttempts, interval}``."""
    if not field.is_mapping():
        if isinstance(field.value, int) and not isinstance(field.value, bool):
            return field.integer(minimum=0), 0.0
        raise field.error(f"expected a number of retries or {{type: constant, maxAttempts: N, interval: PT10S}}, "
                          f"got {describe(field.value)}")
    keys = field.mapping(("type", "maxAttempts", "interval"), required=("maxAttempts",))
    if "type" in keys and keys["type"].text() != "constant":
        raise keys["type"].error(f"only the constant retry type is supported, got {keys['type'].value!r}")
    attempts = keys["maxAttempts"].integer(minimum=1)
    delay = parse_duration(keys["interval"]) if "interval" in keys else 0.0
    return attempts - 1, delay


def _common(fields: Mapping[str, Field], task_id: str) -> dict[str, Any]:
    options: dict[str, Any] = {"id": task_id}
    if "retry" in fields:
        options["retries"], options["retry_delay"] = _retry(fields["retry"])
    if "timeout" in fields:
        options["timeout"] = parse_duration(fields["timeout"])
    if "pool" in fields:
        options["pool"] = fields["pool"].text()
    if "disabled" in fields:
        options["disabled"] = fields["disabled"].boolean()
    if "description" in fields:
        fields["description"].text()
    return options


def _texts(field: Field, inputs: Iterable[str]) -> tuple[Template, ...]:
    """A string or a list of strings, compiled."""
    items = field.sequence() if isinstance(field.value, list) else [field]
    return tuple(compile_template(item, item.text("a command (a string)"), inputs) for item in items)


def parse_task(field: Field, inputs: Iterable[str]) -> TaskSpec:
    """One entry of ``tasks:``; ``FlowError`` naming the field for anything wrong."""
    raw = field.items("a task ({id, type, ...})")
    keys = dict(raw)
    if "type" not in keys:
        raise field.error(f"missing required key 'type' (one of {TYPE_NAMES})")
    if "id" not in keys:
        raise field.error("missing required key 'id'")
    task_type = keys["type"].text()
    task_id = keys["id"].text()
    if not _TASK_ID.match(task_id):
        raise keys["id"].error(f"{task_id!r} is not a valid task id (letters, digits, '_', '-', '.')")
    if task_type in SHELL_TYPES:
        return _shell(field, task_id, inputs)
    if task_type in PYTHON_TYPES:
        return _python(field, task_id, inputs)
    if task_type in LOG_TYPES:
        return _log(field, task_id, inputs)
    raise keys["type"].error(f"unknown task type {task_type!r}; expected {TYPE_NAMES}")


def _shell(field: Field, task_id: str, inputs: Iterable[str]) -> ShellTask:
    keys = field.mapping(_COMMON_KEYS + ("commands", "beforeCommands", "env", "workingDirectory", "cwd",
                                         "taskRunner"), required=("commands",))
    if "workingDirectory" in keys and "cwd" in keys:
        raise keys["cwd"].error("give workingDirectory or cwd, not both")
    if "taskRunner" in keys:
        runner = keys["taskRunner"].mapping(("type",), required=("type",))
        if runner["type"].text() != _PROCESS_RUNNER:
            raise runner["type"].error(f"anachron runs shell tasks as local processes: only the taskRunner type "
                                       f"{_PROCESS_RUNNER} is accepted, got {runner['type'].value!r}")
    commands = _texts(keys["beforeCommands"], inputs) if "beforeCommands" in keys else ()
    commands += _texts(keys["commands"], inputs)
    if not commands:
        raise keys["commands"].error("expected at least one command")
    env = tuple((name, compile_template(value, value.scalar_text("a string value"), inputs))
                for name, value in (keys["env"].items("a mapping of variable names to values") if "env" in keys
                                    else []))
    cwd_field = keys.get("workingDirectory") or keys.get("cwd")
    cwd = compile_template(cwd_field, cwd_field.text("a directory path"), inputs) if cwd_field else None
    return ShellTask(**_common(keys, task_id), commands=commands, env=env, cwd=cwd)


def _python(field: Field, task_id: str, inputs: Iterable[str]) -> PythonTask:
    keys = field.mapping(_COMMON_KEYS + ("callable", "args"), required=("callable",))
    target = keys["callable"].text("a callable reference such as mypkg.jobs:load")
    if not _CALLABLE.match(target):
        raise keys["callable"].error(f"expected 'package.module:function', got {target!r}")
    flow_dir = os.path.dirname(os.path.abspath(field.file))
    module_name = target.split(":")[0]
    if not module_findable(module_name, flow_dir):
        raise keys["callable"].error(f"no module named {module_name!r} (looked beside the flow file and on "
                                     "sys.path): install it, or put it beside the flow file")
    args: dict[str, Any] = {}
    if "args" in keys:
        for name, value in keys["args"].items("a mapping of argument names to values"):
            if not name.isidentifier():
                raise value.error(f"{name!r} is not a valid keyword argument name")
            args[name] = compile_value(value, inputs)
    return PythonTask(**_common(keys, task_id), target=target, args=args)


def _log(field: Field, task_id: str, inputs: Iterable[str]) -> LogTask:
    keys = field.mapping(_COMMON_KEYS + ("message", "level"), required=("message",))
    level = logging.INFO
    if "level" in keys:
        name = keys["level"].text().upper()
        if name not in _LEVELS:
            raise keys["level"].error(f"unknown log level {keys['level'].value!r}; expected one of "
                                      "TRACE, DEBUG, INFO, WARN, ERROR")
        level = _LEVELS[name]
    return LogTask(**_common(keys, task_id), messages=_texts(keys["message"], inputs), level=level)


# -- python callables ---------------------------------------------------------------------------------------

@contextlib.contextmanager
def _flow_dir_on_path(flow_dir: str) -> Iterator[None]:
    """The flow file's directory appended to ``sys.path`` (unless there already) while a module is looked up
    or imported; one lookup at a time, since ``sys.path`` is the process's."""
    with _sys_path_lock:
        added = flow_dir not in sys.path
        if added:
            sys.path.append(flow_dir)
        try:
            yield
        finally:
            if added:
                try:
                    sys.path.remove(flow_dir)
                except ValueError:
                    pass


def module_findable(module_name: str, flow_dir: str) -> bool:
    """Whether ``module_name`` can be imported here (the flow's directory on ``sys.path`` meanwhile), found
    without running it — only the packages above it are imported, as any import would."""
    with _flow_dir_on_path(flow_dir):
        try:
            return importlib.util.find_spec(module_name) is not None
        except (ImportError, ValueError):
            return False
        except Exception:  # noqa: BLE001 - a parent package that fails to import: its module cannot be found
            return False


def resolve_callable(target: str, flow_dir: str, label: str) -> Callable[..., Any]:
    """Import ``package.module:attr`` (the flow's directory appended to ``sys.path`` meanwhile); an anachron task
    or workflow gives its function. ``FlowTaskError`` starting with ``label`` (``task load``) when that fails."""
    module_name, attribute = target.split(":")
    with _flow_dir_on_path(flow_dir):
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:  # noqa: BLE001 - whatever the module raises while importing
            raise FlowTaskError(f"{label}: cannot import module {module_name!r} for callable {target!r}: "
                                f"{type(exc).__name__}: {exc}") from exc
    obj: Any = module
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise FlowTaskError(f"{label}: {module_name!r} has no attribute {attribute!r} "
                                f"(callable {target!r})") from None
    if isinstance(obj, (Task, Workflow)):
        obj = obj.fn
    if not callable(obj):
        raise FlowTaskError(f"{label}: {target!r} is not callable (it is {describe(obj)})")
    function: Callable[..., Any] = obj
    return function
