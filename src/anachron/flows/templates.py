"""Flow templates: compiled and checked when the flow is loaded, rendered when a run executes.

Every string a flow renders (shell commands, ``env`` values, a working directory, Python ``args`` and
``parameters``, log messages) is a Jinja2 template (see ``jinja_env`` for the environment). Loading a flow
compiles each one, so a syntax error is refused with its file and line, and checks the variables it
reads against what a run will have:

=============  =========================================================================================
``trigger``    ``date`` — the schedule tick (undefined unless the run stands for a tick)
``execution``  ``id`` (the run id), ``startDate`` (the run's *logical* start time)
``partition``  ``key``, ``keys``, ``start``, ``end`` (undefined when the run has no partition)
``inputs``     one entry per declared input (typed: numbers, booleans, dates)
``labels``     the flow's labels merged with the run's tags (any key)
``flow``       ``id``, ``namespace`` (an anachron addition, as in Kestra)
=============  =========================================================================================

Where a value reaches Python (a ``python`` task's ``args``, a pipeline's ``parameters``), a string that is
one expression alone — ``"{{ inputs.offset }}"`` — gives the expression's value with its type (a FLOAT input
a float, a DATE a date, ``inputs.n > 2`` a boolean; ``trigger.date`` is ISO-8601 text, as in Kestra); text
around an expression (``"day {{ trigger.date }}"``) makes text, as in commands.

An unknown name (``exection``), an undeclared input or a key that namespace never has (``trigger.dat``) is
refused at load time; a known value missing at run time (``trigger.date`` in a manual run) fails the task
that renders it, naming it — unless the template tests it, as ``trigger.date ?? 'manual'`` does.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from .errors import FlowTaskError
from .yamldoc import Field

__all__ = ["ROOTS", "Template", "TemplateRenderError", "compile_template", "compile_value", "render_value"]

#: The template variables and the keys each has (``None``: any key).
ROOTS: dict[str, tuple[str, ...] | None] = {
    "trigger": ("date",),
    "execution": ("id", "startDate"),
    "partition": ("key", "keys", "start", "end"),
    "inputs": (),  # the flow's declared inputs, filled in per flow
    "labels": None,
    "flow": ("id", "namespace"),
}
_MARKERS = ("{{", "{%", "{#")


class TemplateRenderError(FlowTaskError):
    """A template failed while a run rendered it; the message starts with the field path."""


@dataclass(frozen=True)
class Template:
    """One compiled template and where it came from. Plain text (no ``{{``, ``{%`` or ``{#``) is kept as is."""

    source: str
    field: str
    line: int
    compiled: Any = None  # a jinja2.Template, or None for plain text
    #: for a template that is one expression alone: a template setting ``_VALUE`` to it (its value, typed)
    expression: Any = None

    def render(self, variables: Mapping[str, Any]) -> str:
        if self.compiled is None:
            return self.source
        text: str = self._run(lambda: self.compiled.render(variables))
        return text

    def value(self, variables: Mapping[str, Any]) -> Any:
        """The expression's value with its type when the template is one expression alone, else the text."""
        if self.expression is None:
            return self.render(variables)
        import jinja2

        def evaluate() -> Any:
            found = getattr(self.expression.make_module(dict(variables)), _VALUE)
            if isinstance(found, jinja2.Undefined):
                str(found)  # raises, naming the variable
            return found

        return self._run(evaluate)

    def _run(self, fn: Any) -> Any:
        import jinja2

        try:
            return fn()
        except jinja2.UndefinedError as exc:
            raise TemplateRenderError(f"{self.field}: {exc.message}") from None
        except jinja2.TemplateError as exc:
            raise TemplateRenderError(f"{self.field}: {exc.message or type(exc).__name__}") from None
        except Exception as exc:  # noqa: BLE001 - a filter's error (a bad date) is the template's error
            raise TemplateRenderError(f"{self.field}: {exc}") from None


def compile_template(field: Field, source: str, inputs: Iterable[str]) -> Template:
    """``source`` (the text of ``field``) compiled and checked; ``FlowError`` at the field's line otherwise."""
    if not any(marker in source for marker in _MARKERS):
        return Template(source, field.path, field.line)
    import jinja2

    from .jinja_env import environment

    env = environment()
    try:
        compiled = env.from_string(source)  # also refuses filters and tests that do not exist
        ast = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        raise field.error(f"template syntax error: {exc.message}", line=_line(field, exc.lineno)) from None
    _check_variables(field, ast, frozenset(inputs), frozenset(env.globals))
    return Template(source, field.path, field.line, compiled, _expression(env, source, ast))


_VALUE = "anachron_value"


def _expression(env: Any, source: str, ast: Any) -> Any:
    """For a template that is exactly one ``{{ expression }}``: a template whose module holds the expression's
    value (``{% set anachron_value = (expression) %}``), so its type survives; else ``None``."""
    from jinja2 import nodes

    body = ast.body
    if not (len(body) == 1 and isinstance(body[0], nodes.Output) and len(body[0].nodes) == 1
            and not isinstance(body[0].nodes[0], nodes.TemplateData)):
        return None
    if not (source.startswith("{{") and source.endswith("}}")):
        return None  # a comment or a raw block beside it: text
    inner = source[2:-2].removeprefix("-").removeprefix("+").removesuffix("-").removesuffix("+")
    return env.from_string("{% set " + _VALUE + " = (" + inner + ") %}")


def _line(field: Field, lineno: int | None) -> int:
    """The file line of a template's line: a block scalar (``|``, ``>``) starts on the line after its
    indicator; a quoted or plain scalar is folded onto its first line."""
    if field.node.style in ("|", ">") and lineno:
        return field.line + lineno
    return field.line


def _suggest(name: str, known: Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    return f"; did you mean {close[0]!r}?" if close else ""


def _check_variables(field: Field, ast: Any, inputs: frozenset[str], globals_: frozenset[str]) -> None:
    from jinja2 import meta, nodes

    free = meta.find_undeclared_variables(ast)
    for name in sorted(free):
        if name not in ROOTS and name not in globals_:
            raise field.error(f"unknown template variable {name!r}{_suggest(name, ROOTS)} "
                              f"(variables: {', '.join(ROOTS)})")
    for node in ast.find_all((nodes.Getattr, nodes.Getitem)):
        target = node.node
        if not isinstance(target, nodes.Name) or target.name not in free or target.name not in ROOTS:
            continue
        if isinstance(node, nodes.Getattr):
            key = node.attr
        elif isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
            key = node.arg.value
        else:
            continue
        line = _line(field, node.lineno)
        if target.name == "inputs":
            if key not in inputs:
                declared = ", ".join(sorted(inputs)) or "none"
                raise field.error(f"unknown input {key!r} in inputs.{key}{_suggest(key, inputs)} "
                                  f"(declared inputs: {declared})", line=line)
            continue
        allowed = ROOTS[target.name]
        if allowed is not None and key not in allowed:
            raise field.error(f"unknown template variable '{target.name}.{key}'{_suggest(key, allowed)} "
                              f"({target.name} has: {', '.join(allowed)})", line=line)


def compile_value(field: Field, inputs: Iterable[str]) -> Any:
    """A YAML value whose strings (at any depth in lists and mappings) become templates; other values stay."""
    inputs = frozenset(inputs)
    value = field.value
    if isinstance(value, str):
        return compile_template(field, value, inputs)
    if isinstance(value, dict):
        return {key: compile_value(child, inputs) for key, child in field.items()}
    if isinstance(value, list):
        return [compile_value(child, inputs) for child in field.sequence()]
    return value


def render_value(value: Any, variables: Mapping[str, Any], typed: bool = False) -> Any:
    """The inverse of ``compile_value`` at run time: templates rendered to text, everything else as it was.
    ``typed``: a template that is one expression alone gives the expression's value with its type."""
    if isinstance(value, Template):
        return value.value(variables) if typed else value.render(variables)
    if isinstance(value, dict):
        return {key: render_value(item, variables, typed) for key, item in value.items()}
    if isinstance(value, list):
        return [render_value(item, variables, typed) for item in value]
    return value

