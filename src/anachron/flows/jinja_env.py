"""The Jinja2 environment flow templates run in. Imported only when a flow is loaded (``import anachron``
never loads Jinja2).

- **Sandboxed** (``jinja2.sandbox.ImmutableSandboxedEnvironment``): a template cannot reach private
  attributes, call unsafe methods or modify the run's variables, so a flow file is data, not code.
- **Strict, but testable undefined values**: printing, comparing or iterating a value the run does not have
  raises (naming it: ``trigger.date is undefined in this run: ...``); testing it (``is defined``, ``??``)
  does not, and ``a.b.c`` on a missing ``a.b`` stays undefined instead of raising, so ``??`` can test it.
- **``??``** (see ``coalesce``), rewritten by an extension's ``preprocess`` before Jinja lexes the source.
- **Values as text**: ``None`` renders as an empty string, booleans as ``true`` / ``false`` (as in YAML and
  on a command line), dates and datetimes as ISO-8601 (``T`` between date and time).
- **Filters** ``shell_quote`` (``shlex.quote`` of the rendered text) and ``date`` (see ``dates``). Both let an
  undefined value through untouched, so ``trigger.date | date('yyyy-MM-dd') ?? 'manual'`` works.
- The variables' namespaces (``inputs``, ``trigger``, ...) are ``Scope`` mappings: ``inputs.values`` is the
  input named ``values``, never the dict method.
"""

from __future__ import annotations

import functools
import shlex
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

import jinja2
import jinja2.ext
import jinja2.sandbox

from .coalesce import CoalesceError, rewrite
from .dates import format_date
from .variables import Scope

__all__ = ["FlowUndefined", "environment", "to_text"]


class FlowUndefined(jinja2.StrictUndefined):
    """``StrictUndefined`` whose attributes and items are itself (so ``a.b.c is defined`` can be asked) and
    whose message names the variable's path."""

    __slots__ = ()

    def __getattr__(self, name: str) -> Any:
        if name[:2] == "__" and name[-2:] == "__":
            raise AttributeError(name)
        return self

    def __getitem__(self, key: Any) -> Any:
        return self

    @property
    def _undefined_message(self) -> str:
        obj = self._undefined_obj
        if isinstance(obj, Scope) and isinstance(self._undefined_name, str):
            path = f"{obj.scope_name}.{self._undefined_name}"
            why = f" ({obj.why})" if obj.why else ""
            return f"{path} is undefined in this run{why}; write `{path} ?? <fallback>` to give a default"
        message: str = super()._undefined_message
        return message


class _FlowEnvironment(jinja2.sandbox.ImmutableSandboxedEnvironment):
    def getattr(self, obj: Any, attribute: str) -> Any:
        if isinstance(obj, Scope):  # keys first: an input named `items` or `values` is the input
            if attribute in obj:
                return obj[attribute]
            return self.undefined(obj=obj, name=attribute)
        return super().getattr(obj, attribute)


class _CoalesceExtension(jinja2.ext.Extension):
    """``a ?? b``: rewritten into a conditional expression before Jinja lexes the template."""

    def preprocess(self, source: str, name: str | None, filename: str | None = None) -> str:
        try:
            return rewrite(source)
        except CoalesceError as exc:
            raise jinja2.TemplateSyntaxError(str(exc), exc.lineno, name, filename) from None


def to_text(value: Any) -> str:
    """A value as it is substituted into text (see the module docstring)."""
    if isinstance(value, str):
        return value
    if isinstance(value, jinja2.Undefined):
        return str(value)  # raises, naming the variable
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    return str(value)


def _undefined_passes(fn: Callable[..., str]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(value: Any, *args: Any, **kwargs: Any) -> Any:
        if isinstance(value, jinja2.Undefined):
            return value
        return fn(value, *args, **kwargs)

    return wrapper


@_undefined_passes
def _shell_quote(value: Any) -> str:
    return shlex.quote(to_text(value))


@_undefined_passes
def _date(value: Any, fmt: str | None = None, timezone: str | None = None) -> str:
    return format_date(value, fmt, timezone)


@functools.cache
def environment() -> jinja2.Environment:
    """The one (thread-safe, read-only after creation) environment every flow template is compiled in."""
    env = _FlowEnvironment(
        undefined=FlowUndefined, autoescape=False, keep_trailing_newline=True, finalize=to_text,
        extensions=[_CoalesceExtension, "jinja2.ext.loopcontrols"],
    )
    env.filters["shell_quote"] = _shell_quote
    env.filters["date"] = _date
    return env
