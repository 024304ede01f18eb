"""Static check for wall-clock reads inside anachron tasks and workflows.

anachron runs every workflow at a *logical* time (the partition being
computed, which during a backfill may be months in the past).  Code inside a
task or workflow must therefore ask anachron for the time
(``anachron.time()`` / ``anachron.now()``) instead of reading the wall clock.
This module finds the wall-clock reads statically, with :mod:`ast`; it never
imports or executes the code being checked.

Public API::

    check_source(source, path="<string>") -> list[Finding]
    check_paths(paths) -> list[Finding]

Names are resolved through imports (module level and function level,
including ``as`` aliases), following Python's scoping rules closely enough
that ``self.time()`` or a parameter called ``datetime`` is not mistaken for
the stdlib.
"""

from __future__ import annotations

import ast
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Finding", "WALL_CLOCK_CALLS", "check_flow_paths", "check_paths", "check_source"]

_SPARK_CLOCK_FUNCTIONS = ("current_timestamp", "current_date", "now", "curdate", "localtimestamp")
_SPARK_FIX = "F.lit() of ac.context().partition_window or anachron.time()"

#: Canonical (fully qualified) callables that read the wall clock, mapped to
#: the anachron expression to use instead.
WALL_CLOCK_CALLS: dict[str, str] = {
    "time.time": "anachron.time()",
    "time.time_ns": "anachron.time()",
    "datetime.datetime.now": "anachron.now()",
    "datetime.datetime.utcnow": "anachron.now()",
    "datetime.datetime.today": "anachron.now()",
    "datetime.date.today": "anachron.now().date()",
    # Spark evaluates these when the job runs, so a backfilled partition would read "today": a task on
    # SparkTask() takes its window from the run (ac.context().partition_window, ac.time())
    **{f"pyspark.sql.functions.{name}": _SPARK_FIX for name in _SPARK_CLOCK_FUNCTIONS},
}

#: Spark SQL text that reads the wall clock (``unix_timestamp()`` with no argument is now)
_SQL_CLOCK = re.compile(r"\b(current_timestamp|current_date|localtimestamp|now\s*\(|curdate\s*\(|"
                        r"unix_timestamp\s*\(\s*\))", re.IGNORECASE)
_SQL_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'")  # a quoted SQL string: its words are text, not calls
#: DataFrame and session methods whose string arguments are Spark SQL
_SQL_METHODS = frozenset({"sql", "expr", "selectExpr", "where", "filter"})

#: Decorator names (final component) that mark a function as a task/workflow.
_TASK_DECORATORS = frozenset({"task", "workflow"})

#: Names bound by ``from <module> import *`` that matter to this check.
_STAR_EXPORTS: dict[str, tuple[str, ...]] = {
    "time": ("time", "time_ns"),
    "datetime": ("datetime", "date"),
}

_FLOW_SUFFIXES = (".yaml", ".yml")

#: Directory names never descended into by :func:`check_paths`.
_SKIP_DIRS = frozenset({".venv", "__pycache__"})

_FUNCTION_NODES = (ast.FunctionDef, ast.AsyncFunctionDef)
_COMPREHENSION_NODES = (ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp)
_SCOPE_NODES = (*_FUNCTION_NODES, ast.ClassDef, ast.Lambda, *_COMPREHENSION_NODES)


@dataclass(frozen=True)
class Finding:
    """One wall-clock call found inside a task or workflow."""

    path: str
    line: int  #: 1-based line of the call
    col: int  #: 1-based column of the call
    call: str  #: canonical name of the callee, e.g. ``"datetime.datetime.now"``
    function: str  #: name of the enclosing task/workflow function
    message: str

    def format(self) -> str:
        return f"{self.path}:{self.line}: {self.message}"


# --------------------------------------------------------------------------
# Scopes and name resolution
# --------------------------------------------------------------------------


class _Scope:
    """A Python name scope with the bindings this check cares about.

    ``bindings`` maps a locally bound name to the canonical dotted name it was
    imported as (``"time"``, ``"datetime.datetime"``, ...) or to ``None`` when
    the name is bound locally by something other than an import (assignment,
    parameter, ``def``, ...), which shadows any outer import.
    """

    __slots__ = ("kind", "parent", "bindings", "global_names")

    def __init__(self, kind: str, parent: _Scope | None) -> None:
        self.kind = kind  # "module", "class", "function", "lambda", "comprehension"
        self.parent = parent
        self.bindings: dict[str, str | None] = {}
        self.global_names: set[str] = set()

    def module(self) -> _Scope:
        scope = self
        while scope.parent is not None:
            scope = scope.parent
        return scope

    def lookup(self, name: str) -> str | None:
        """Canonical name that ``name`` refers to here, or None if unknown."""
        scope: _Scope | None = self
        innermost = True
        while scope is not None:
            # Class bodies are only visible to code directly inside them, not
            # to functions/lambdas/comprehensions nested in the class.
            if innermost or scope.kind != "class":
                if name in scope.global_names:
                    return self.module().bindings.get(name)
                if name in scope.bindings:
                    return scope.bindings[name]
            innermost = False
            scope = scope.parent
        return None

    def qualname(self, expr: ast.expr) -> str | None:
        """Resolve ``a.b.c`` (a Name followed by attributes) to a canonical name."""
        attrs: list[str] = []
        while isinstance(expr, ast.Attribute):
            attrs.append(expr.attr)
            expr = expr.value
        if not isinstance(expr, ast.Name):
            return None
        base = self.lookup(expr.id)
        if base is None:
            return None
        return ".".join([base, *reversed(attrs)])


def _scope_nodes(nodes: Iterable[ast.AST]) -> Iterator[ast.AST]:
    """Yield ``nodes`` and their descendants in source order, without entering
    nested scopes (the def/class/lambda/comprehension node itself is yielded,
    so the name a def or class binds is still seen)."""
    for node in nodes:
        yield node
        if isinstance(node, _SCOPE_NODES):
            continue
        yield from _scope_nodes(ast.iter_child_nodes(node))


def _bind_arguments(scope: _Scope, args: ast.arguments) -> None:
    for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
        if arg is not None:
            scope.bindings[arg.arg] = None


def _collect_bindings(scope: _Scope, body: Iterable[ast.AST]) -> None:
    """Record in ``scope`` the names that ``body`` binds.

    Binding is flow-insensitive: a name imported anywhere in the scope counts
    as that import throughout the scope (the last import wins), and imports
    take precedence over other bindings of the same name in the same scope
    (e.g. ``try: from time import time`` / ``except ImportError: time = None``
    still resolves to ``time.time``).
    """
    imports: dict[str, str] = {}
    others: set[str] = set()
    nonlocal_names: set[str] = set()

    for node in _scope_nodes(body):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    imports[alias.asname] = alias.name
                else:  # ``import a.b.c`` binds ``a``
                    top = alias.name.split(".", 1)[0]
                    imports[top] = top
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if node.level or not node.module:  # relative import: a local module
                    if alias.name != "*":
                        others.add(alias.asname or alias.name)
                elif alias.name == "*":
                    for name in _STAR_EXPORTS.get(node.module, ()):
                        imports[name] = f"{node.module}.{name}"
                else:
                    imports[alias.asname or alias.name] = f"{node.module}.{alias.name}"
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            others.add(node.id)
        elif isinstance(node, (*_FUNCTION_NODES, ast.ClassDef)):
            others.add(node.name)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            others.add(node.name)
        elif isinstance(node, (ast.MatchAs, ast.MatchStar)) and node.name:
            others.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            others.add(node.rest)
        elif isinstance(node, ast.Global):
            scope.global_names.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            nonlocal_names.update(node.names)

    for name in others:
        scope.bindings[name] = None
    scope.bindings.update(imports)
    for name in nonlocal_names | scope.global_names:
        scope.bindings.pop(name, None)


# --------------------------------------------------------------------------
# The checker
# --------------------------------------------------------------------------


@dataclass(frozen=True)
class _TaskContext:
    kind: str  # "task" or "workflow"
    name: str


class _Checker:
    def __init__(self, path: str) -> None:
        self.path = path
        self.findings: list[Finding] = []

    def run(self, tree: ast.Module) -> list[Finding]:
        module = _Scope("module", None)
        _collect_bindings(module, tree.body)
        for stmt in tree.body:
            self.visit(stmt, module, None)
        self.findings.sort(key=lambda f: (f.line, f.col))
        return self.findings

    # -- traversal ---------------------------------------------------------

    def visit(self, node: ast.AST, scope: _Scope, ctx: _TaskContext | None) -> None:
        if isinstance(node, _FUNCTION_NODES):
            self._visit_function(node, scope, ctx)
        elif isinstance(node, ast.Lambda):
            self._visit_all(node.args.defaults, scope, ctx)
            self._visit_all([d for d in node.args.kw_defaults if d is not None], scope, ctx)
            inner = _Scope("lambda", scope)
            _bind_arguments(inner, node.args)
            self.visit(node.body, inner, ctx)
        elif isinstance(node, ast.ClassDef):
            self._visit_all(node.decorator_list, scope, ctx)
            self._visit_all(node.bases, scope, ctx)
            self._visit_all(node.keywords, scope, ctx)
            inner = _Scope("class", scope)
            _collect_bindings(inner, node.body)
            self._visit_all(node.body, inner, ctx)
        elif isinstance(node, _COMPREHENSION_NODES):
            self._visit_comprehension(node, scope, ctx)
        else:
            if isinstance(node, ast.Call):
                self._check_call(node, scope, ctx)
            self._visit_all(ast.iter_child_nodes(node), scope, ctx)

    def _visit_all(self, nodes: Iterable[ast.AST], scope: _Scope, ctx: _TaskContext | None) -> None:
        for node in nodes:
            self.visit(node, scope, ctx)

    def _visit_function(self, node: ast.FunctionDef | ast.AsyncFunctionDef, scope: _Scope,
                        ctx: _TaskContext | None) -> None:
        # Decorators, defaults and annotations are evaluated when the ``def``
        # statement runs, i.e. in the enclosing scope and context.
        self._visit_all(node.decorator_list, scope, ctx)
        args = node.args
        self._visit_all(args.defaults, scope, ctx)
        self._visit_all([d for d in args.kw_defaults if d is not None], scope, ctx)
        for arg in (*args.posonlyargs, *args.args, *args.kwonlyargs, args.vararg, args.kwarg):
            if arg is not None and arg.annotation is not None:
                self.visit(arg.annotation, scope, ctx)
        if node.returns is not None:
            self.visit(node.returns, scope, ctx)

        kind = self._task_kind(node, scope)
        inner_ctx = _TaskContext(kind, node.name) if kind else ctx
        inner = _Scope("function", scope)
        _bind_arguments(inner, args)
        _collect_bindings(inner, node.body)
        self._visit_all(node.body, inner, inner_ctx)

    def _visit_comprehension(self, node: ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp,
                     scope: _Scope, ctx: _TaskContext | None) -> None:
        generators = node.generators
        # The first iterable is evaluated in the enclosing scope.
        self.visit(generators[0].iter, scope, ctx)
        inner = _Scope("comprehension", scope)
        for gen in generators:
            for target in ast.walk(gen.target):
                if isinstance(target, ast.Name):
                    inner.bindings[target.id] = None
        for i, gen in enumerate(generators):
            if i:
                self.visit(gen.iter, inner, ctx)
            self._visit_all(gen.ifs, inner, ctx)
        if isinstance(node, ast.DictComp):
            self.visit(node.key, inner, ctx)
            self.visit(node.value, inner, ctx)
        else:
            self.visit(node.elt, inner, ctx)

    # -- rules -------------------------------------------------------------

    @staticmethod
    def _task_kind(node: ast.FunctionDef | ast.AsyncFunctionDef, scope: _Scope) -> str | None:
        """``"task"``/``"workflow"`` if ``node`` is decorated as one, else None."""
        for decorator in node.decorator_list:
            target = decorator.func if isinstance(decorator, ast.Call) else decorator
            if isinstance(target, ast.Attribute):
                name = target.attr
            elif isinstance(target, ast.Name):
                # Follow ``from anachron import task as t``.
                resolved = scope.lookup(target.id)
                name = resolved.rsplit(".", 1)[-1] if resolved else target.id
            else:
                continue
            if name in _TASK_DECORATORS:
                return name
        return None

    def _check_call(self, node: ast.Call, scope: _Scope, ctx: _TaskContext | None) -> None:
        if ctx is None:
            return
        if isinstance(node.func, ast.Attribute) and node.func.attr in _SQL_METHODS:
            self._check_sql(node, node.func.attr, ctx)
        call = scope.qualname(node.func)
        if call is None or call not in WALL_CLOCK_CALLS:
            return
        replacement = WALL_CLOCK_CALLS[call]
        message = (
            f"{call}() reads the wall clock inside {ctx.kind} '{ctx.name}'; "
            f"use {replacement} (logical time) instead"
        )
        self.findings.append(
            Finding(
                path=self.path,
                line=node.lineno,
                col=node.col_offset + 1,
                call=call,
                function=ctx.name,
                message=message,
            )
        )


    def _check_sql(self, node: ast.Call, method: str, ctx: _TaskContext) -> None:
        """Spark SQL text (``spark.sql("... current_date() ...")``) that reads the wall clock."""
        for arg in node.args:
            text = arg.value if isinstance(arg, ast.Constant) and isinstance(arg.value, str) else None
            match = _SQL_CLOCK.search(_SQL_QUOTED.sub("''", text)) if text is not None else None
            if match is None:
                continue
            word = match.group(1).rstrip("( ").lower()
            message = (f"{word} in Spark SQL ({method}) reads the wall clock inside {ctx.kind} '{ctx.name}'; "
                       f"use {_SPARK_FIX} (logical time) instead")
            self.findings.append(Finding(path=self.path, line=arg.lineno, col=arg.col_offset + 1,
                                         call=f"sql:{word}", function=ctx.name, message=message))


# --------------------------------------------------------------------------
# Public entry points
# --------------------------------------------------------------------------


def _parse(source: str | bytes, path: str) -> ast.Module:
    try:
        return ast.parse(source, filename=path)
    except SyntaxError as exc:
        raise ValueError(f"{path}:{exc.lineno or 1}: syntax error: {exc.msg}") from exc
    except ValueError as exc:  # e.g. null bytes on some Python versions
        raise ValueError(f"{path}:1: syntax error: {exc}") from exc


def check_source(source: str, path: str = "<string>") -> list[Finding]:
    """Return the wall-clock calls inside tasks/workflows of ``source``, in
    line order.  Raises ValueError (``"path:line: syntax error: ..."``) if
    ``source`` does not parse."""
    return _Checker(path).run(_parse(source, path))


def _iter_python_files(path: Path) -> Iterator[Path]:
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if not path.is_dir():
        if path.suffix.lower() not in _FLOW_SUFFIXES:
            yield path  # explicitly named files are checked whatever their suffix (but flows: check_flow_paths)
        return
    for root, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for filename in sorted(filenames):
            if filename.endswith(".py"):
                yield Path(root, filename)


def check_paths(paths: Iterable[str | Path]) -> list[Finding]:
    """Check Python files and directories (walked recursively for ``*.py``,
    skipping ``.venv``, hidden directories and ``__pycache__``).

    Findings are returned sorted by file path, then line.  Raises
    FileNotFoundError for a path that does not exist and ValueError for a
    file that does not parse.
    """
    seen: set[Path] = set()
    findings: list[Finding] = []
    for given in paths:
        for file in _iter_python_files(Path(given)):
            key = file.resolve()
            if key in seen:
                continue
            seen.add(key)
            # Parse bytes so PEP 263 encoding declarations are honoured.
            findings.extend(_Checker(str(file)).run(_parse(file.read_bytes(), str(file))))
    findings.sort(key=lambda f: (f.path, f.line, f.col))
    return findings


def _iter_flow_files(path: Path) -> Iterator[Path]:
    """YAML flow files: each one named, and in folders each ``*.yaml`` / ``*.yml`` with a top-level ``tasks:``
    (other YAML files, such as CI configuration, are left alone)."""
    if not path.exists():
        raise FileNotFoundError(f"{path}: no such file or directory")
    if not path.is_dir():
        if path.suffix.lower() in _FLOW_SUFFIXES:
            yield path
        return
    for root, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if d not in _SKIP_DIRS and not d.startswith("."))
        for filename in sorted(filenames):
            file = Path(root, filename)
            if file.suffix.lower() in _FLOW_SUFFIXES and _looks_like_flow(file):
                yield file


def _looks_like_flow(file: Path) -> bool:
    try:
        text = file.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    return any(line.startswith("tasks:") for line in text.splitlines())


def check_flow_paths(paths: Iterable[str | Path]) -> list[Finding]:
    """YAML flows whose shell commands put a value the run's starter chooses (a ``STRING`` input, a label, a
    dynamic partition key) into the command unquoted — without ``| shell_quote`` (``flows.injection``).

    Raises FileNotFoundError for a path that does not exist and ValueError (``file:line: reason``) for a
    flow file with errors."""
    from .flows.errors import FlowError
    from .flows.injection import unquoted_values
    from .flows.loader import read_flow

    findings: list[Finding] = []
    seen: set[Path] = set()
    for given in paths:
        for file in _iter_flow_files(Path(given)):
            if file.resolve() in seen:
                continue
            seen.add(file.resolve())
            try:
                spec = read_flow(file)
            except FlowError as exc:
                raise ValueError(str(exc).splitlines()[0]) from None
            findings.extend(Finding(str(file), u.line, 1, f"shell:{u.value}", u.task, u.message)
                            for u in unquoted_values(spec))
    findings.sort(key=lambda f: (f.path, f.line, f.col))
    return findings
