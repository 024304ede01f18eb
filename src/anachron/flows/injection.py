"""Shell commands that put values a user controls into the command line unquoted.

A shell task's commands are templates rendered into a ``/bin/sh`` script. A value the person *starting* a run
chooses — a ``STRING`` input (``-p``, the API's ``params``, Kestra's ``inputs``), a label (the run's tags), the
key of a dynamic partition — is text anyone allowed to start runs can make ``x; rm -rf ~`` or ``$(id)``.
Written into a command without ``| shell_quote``, it runs as shell code. (Typed inputs — ``INT``, ``FLOAT``,
``BOOLEAN``, ``DATE``, ``DATETIME`` — are validated before any run exists and cannot carry shell syntax;
``env`` values and the working directory are passed to the shell, not parsed by it.)

``unquoted_values(spec)`` finds every ``{{ ... }}`` of a shell command that reads such a value and does not end
in ``| shell_quote`` — also through a variable set from one (``{% set r = inputs.region %}{{ r }}``). The flow
loader logs each as a warning; ``anachron check`` reports them and exits 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..partitions import DynamicPartitions, MultiPartitions, PartitionsDefinition
from .spec import FlowSpec
from .tasks import ShellTask

__all__ = ["Unquoted", "unquoted_values"]


@dataclass(frozen=True)
class Unquoted:
    """One template expression that puts a user-controlled value into a shell command unquoted."""

    file: str
    line: int
    field: str  #: ``tasks[0].commands[1]``
    task: str
    value: str  #: what it reads: ``inputs.region``, ``labels.owner``, ``partition.key``
    expression: str  #: the expression as written, for the message

    @property
    def message(self) -> str:
        return (f"{self.field}: {{{{ {self.expression} }}}} puts {self.value}, which whoever starts a run chooses, "
                f"into a shell command unquoted; write {{{{ {self.expression} | shell_quote }}}}")

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


def _dynamic(partitions: PartitionsDefinition | None) -> bool:
    if isinstance(partitions, DynamicPartitions):
        return True
    if isinstance(partitions, MultiPartitions):
        return any(isinstance(d, DynamicPartitions) for d in partitions.dimensions.values())
    return False


def unquoted_values(spec: FlowSpec) -> list[Unquoted]:
    """Every unquoted use of a user-controlled value in the shell commands of ``spec``, in file order."""
    from .jinja_env import environment

    tainted_inputs = {i.id for i in spec.inputs if i.type_name == "STRING"}
    roots = {"labels"} | ({"partition"} if _dynamic(spec.partitions) else set())
    found: list[Unquoted] = []
    env = environment()
    for task in spec.tasks:
        if not isinstance(task, ShellTask):
            continue
        for template in task.commands:
            if template.compiled is None:
                continue
            ast = env.parse(template.source)
            for expression, value, lineno in _unquoted(ast, tainted_inputs, roots):
                # a block scalar's text starts on the line after its ``|``; a one-line value is on its own line
                line = template.line + (lineno + 1 if "\n" in template.source.rstrip("\n") else 0)
                found.append(Unquoted(spec.file, line, template.field, task.id, value, expression))
    return found


def _unquoted(ast: Any, inputs: set[str], roots: set[str]) -> list[tuple[str, str, int]]:
    """``(expression, value read, template line - 1)`` for each output expression not ending in ``shell_quote``
    that reads a tainted value."""
    from jinja2 import nodes

    local: dict[str, str] = {}  # names set in the template from a tainted value → that value
    for node in ast.find_all((nodes.Assign, nodes.For)):
        source = node.node if isinstance(node, nodes.Assign) else node.iter
        read = _reads(source, inputs, roots, local)
        if read is not None:
            for name in node.target.find_all(nodes.Name) if not isinstance(node.target, nodes.Name) else [node.target]:
                local[name.name] = read
    results: list[tuple[str, str, int]] = []
    for output in ast.find_all(nodes.Output):
        for expr in output.nodes:
            if isinstance(expr, nodes.TemplateData):
                continue
            if isinstance(expr, nodes.Filter) and expr.name == "shell_quote":
                continue
            read = _reads(expr, inputs, roots, local)
            if read is not None:
                results.append((_show(expr, read), read, (expr.lineno or 1) - 1))
    return results


def _reads(expr: Any, inputs: set[str], roots: set[str], local: dict[str, str]) -> str | None:
    """The first tainted value ``expr`` reads (``inputs.region``), or ``None``."""
    from jinja2 import nodes

    for node in [expr, *expr.find_all((nodes.Getattr, nodes.Getitem, nodes.Name))]:
        if isinstance(node, nodes.Name) and node.name in local:
            return local[node.name]
        if not isinstance(node, (nodes.Getattr, nodes.Getitem)) or not isinstance(node.node, nodes.Name):
            continue
        root = node.node.name
        if isinstance(node, nodes.Getattr):
            key: Any = node.attr
        elif isinstance(node.arg, nodes.Const):
            key = node.arg.value
        else:
            key = None
        if root == "inputs" and (key is None or key in inputs):
            return f"inputs.{key}" if key is not None else "an input"
        if root in roots:
            return f"{root}.{key}" if key is not None else root
    return None


def _show(expr: Any, fallback: str) -> str:
    """A short text form of an expression for messages (``inputs.region``, ``inputs.region | upper``); for
    other expressions (``a ?? b``, ``a ~ b``), ``fallback`` (the value it reads)."""
    from jinja2 import nodes

    if isinstance(expr, nodes.Name):
        return str(expr.name)
    if isinstance(expr, nodes.Getattr):
        return f"{_show(expr.node, fallback)}.{expr.attr}"
    if isinstance(expr, nodes.Getitem) and isinstance(expr.arg, nodes.Const):
        return f"{_show(expr.node, fallback)}[{expr.arg.value!r}]"
    if isinstance(expr, nodes.Filter) and expr.node is not None:
        return f"{_show(expr.node, fallback)} | {expr.name}"
    return fallback
