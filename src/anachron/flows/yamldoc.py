"""YAML read with PyYAML's safe loader into a tree that remembers where everything was written.

``yaml.safe_load`` returns plain values and forgets their lines, so an error could only say *what* is
wrong, not *where*. Here the document is *composed* (nodes carry ``start_mark``), and each node becomes
a ``Node``: mappings and sequences hold child nodes, scalars hold the value the safe loader would have
built (``2024-01-01`` is a ``date``, ``3`` an ``int``). ``Field`` walks that tree with typed accessors
that raise ``FlowError`` naming the file, the line and the field path (``tasks[1].commands[0]``).

Mapping keys are taken as the text that was written (YAML 1.1 would read a key ``no`` or ``on`` as a
boolean); merge keys (``<<: *defaults``) and anchors work as with ``yaml.safe_load``. ``yaml`` is
imported on first use, so importing this module is cheap.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from .errors import FlowError

__all__ = ["Node", "Field", "compose", "describe"]

MAX_DEPTH = 100  # deeper nesting is refused (recursive aliases, hostile files)
#: The most values a document may hold with every alias expanded (a real flow has hundreds). Aliases are shared,
#: not copied, while the file is read; but whatever walks the values later (templates, parameters, ``plain``)
#: sees each alias as a full copy, so nested aliases ("a billion laughs": 400 bytes, billions of values) are
#: refused here, at the alias that goes past the budget, in milliseconds.
MAX_EXPANDED_VALUES = 100_000
_PLAIN_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*$")
_MAP_TAG, _SEQ_TAG = "tag:yaml.org,2002:map", "tag:yaml.org,2002:seq"


@dataclass(frozen=True, eq=False)
class Node:
    """A YAML value and the (1-based) line it starts on. ``value`` is ``dict[str, Node]`` for a mapping,
    ``list[Node]`` for a sequence, else the scalar's Python value. ``key_lines`` gives each key's line."""

    value: Any
    line: int
    key_lines: dict[str, int] = field(default_factory=dict)
    style: str | None = None  # a scalar's style: None (plain), "'", '"', "|" or ">"


def compose(text: str, file: str) -> Node | None:
    """The document in ``text`` as a ``Node`` tree (``None`` for an empty document).

    Raises ``FlowError`` for a YAML syntax error (at its line), more than one document, a recursive alias,
    or a scalar the safe loader refuses (``!!python/object``, an impossible date)."""
    import yaml

    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        if root is None:
            return None
        return _Converter(loader, file).convert(root, 0)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        reason = exc.problem or exc.context or "invalid YAML"
        if exc.problem and exc.context:
            started = exc.context_mark
            where = f" started on line {started.line + 1}" if started is not None and started is not mark else ""
            reason += f" ({exc.context}{where})"
        raise FlowError.at(file, mark.line + 1 if mark else 0, "", f"YAML syntax: {reason}") from None
    except yaml.YAMLError as exc:
        raise FlowError.at(file, 0, "", f"YAML syntax: {exc}") from None
    finally:
        loader.dispose()


class _Converter:
    def __init__(self, loader: Any, file: str):
        self.loader = loader
        self.file = file
        self.done: dict[int, Node] = {}  # aliases share their node
        self.sizes: dict[int, int] = {}  # a converted node's value count, its aliases expanded
        self.expanded = 0  # values in the document so far, every alias counted as a copy
        self.open: set[int] = set()

    def convert(self, node: Any, depth: int, written: int | None = None) -> Node:
        """``node`` as a ``Node``; ``written``: the line where the parent holds it (an alias's own line)."""
        import yaml

        key = id(node)
        line = node.start_mark.line + 1
        if key in self.done:  # an alias: its values count again, where the alias is written
            self._count(self.sizes[key], written or line)
            return self.done[key]
        before = self.expanded
        self._count(1, line)
        if key in self.open:
            raise FlowError.at(self.file, line, "", "YAML: a recursive alias (a value that contains itself)")
        if depth > MAX_DEPTH:
            raise FlowError.at(self.file, line, "", f"YAML: nested deeper than {MAX_DEPTH} levels")
        self.open.add(key)
        try:
            if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)) and node.tag not in (_MAP_TAG, _SEQ_TAG):
                raise FlowError.at(self.file, line, "", f"YAML: the tag {node.tag!r} is not supported here")
            if isinstance(node, yaml.MappingNode):
                result = self._mapping(node, line, depth)
            elif isinstance(node, yaml.SequenceNode):
                result = Node([self.convert(item, depth + 1, line) for item in node.value], line)
            else:
                result = Node(self._scalar(node, line), line, style=node.style)
        finally:
            self.open.discard(key)
        self.done[key] = result
        self.sizes[key] = self.expanded - before
        return result

    def _count(self, values: int, line: int) -> None:
        self.expanded += values
        if self.expanded > MAX_EXPANDED_VALUES:
            raise FlowError.at(self.file, line, "", f"YAML: more than {MAX_EXPANDED_VALUES:,} values once aliases "
                               "are expanded (nested aliases that multiply, as in an alias bomb); write the "
                               "values out, or use fewer aliases")

    def _mapping(self, node: Any, line: int, depth: int) -> Node:
        import yaml

        self.loader.flatten_mapping(node)  # resolves `<<` merge keys, as safe_load does
        values: dict[str, Node] = {}
        lines: dict[str, int] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if not isinstance(key_node, yaml.ScalarNode):
                raise FlowError.at(self.file, key_line, "", "YAML: mapping keys must be plain text")
            name = str(key_node.value)
            if name in values:
                raise FlowError.at(self.file, key_line, "", f"YAML: the key {name!r} appears twice in one mapping "
                                   f"(first on line {lines[name]})")
            values[name] = self.convert(value_node, depth + 1, key_line)
            lines[name] = key_line
        return Node(values, line, lines)

    def _scalar(self, node: Any, line: int) -> Any:
        try:
            return self.loader.construct_object(node, deep=True)
        except Exception as exc:  # noqa: BLE001 - the constructors raise ValueError, TypeError, ConstructorError...
            problem = getattr(exc, "problem", None) or str(exc)
            raise FlowError.at(self.file, line, "", f"YAML: cannot read the value {node.value!r}: {problem}") from None


def describe(value: Any) -> str:
    """A short description of a plain value, for messages: ``'abc'``, ``the number 3``, ``a list``."""
    if isinstance(value, Node):
        value = value.value
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, datetime):
        return f"the datetime {value.isoformat()}"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    if isinstance(value, str):
        return repr(value)
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"a {type(value).__name__}"


class Field:
    """A node of a flow file with its path; accessors check the type and raise ``FlowError`` naming the path."""

    __slots__ = ("node", "path", "file")

    def __init__(self, node: Node, path: str, file: str):
        self.node = node
        self.path = path
        self.file = file

    @property
    def line(self) -> int:
        return self.node.line

    @property
    def value(self) -> Any:
        return self.node.value

    def error(self, reason: str, line: int | None = None) -> FlowError:
        return FlowError.at(self.file, self.line if line is None else line, self.path, reason)

    def _key_path(self, key: str) -> str:
        part = f".{key}" if _PLAIN_KEY.match(key) else f"[{key!r}]"
        return (self.path + part) if self.path else part.lstrip(".")

    # -- containers -------------------------------------------------------------------------------------

    def is_mapping(self) -> bool:
        return isinstance(self.node.value, dict)

    def is_null(self) -> bool:
        return self.node.value is None

    def items(self, what: str = "a mapping") -> list[tuple[str, Field]]:
        """Every key and its value, in file order (any keys)."""
        if not isinstance(self.node.value, dict):
            raise self.error(f"expected {what}, got {describe(self.node)}")
        return [(key, Field(node, self._key_path(key), self.file)) for key, node in self.node.value.items()]

    def mapping(self, accepted: Sequence[str], required: Sequence[str] = (), what: str = "a mapping",
                hint: str = "") -> dict[str, Field]:
        """The mapping's fields; unknown keys (listing the accepted ones) and missing required keys refused."""
        fields = dict(self.items(what))
        for key in fields:
            if key not in accepted:
                raise self.error(f"unknown key {key!r}{hint}; accepted: {', '.join(accepted)}",
                                 line=self.node.key_lines.get(key))
        for key in required:
            if key not in fields:
                raise self.error(f"missing required key {key!r}")
        return fields

    def sequence(self, what: str = "a list") -> list[Field]:
        if not isinstance(self.node.value, list):
            raise self.error(f"expected {what}, got {describe(self.node)}")
        return [Field(node, f"{self.path}[{i}]", self.file) for i, node in enumerate(self.node.value)]

    def key_line(self, key: str) -> int:
        return self.node.key_lines.get(key, self.line)

    # -- scalars ----------------------------------------------------------------------------------------

    def text(self, what: str = "a string") -> str:
        value = self.node.value
        if isinstance(value, str):
            return value
        hint = " (quote it to keep it as text)" if isinstance(value, (bool, int, float, date)) else ""
        raise self.error(f"expected {what}, got {describe(value)}{hint}")

    def scalar_text(self, what: str = "a string") -> str:
        """A string; numbers and booleans are accepted and written as text (``8080`` → ``"8080"``)."""
        value = self.node.value
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, (int, float)):
            return str(value)
        return self.text(what)

    def integer(self, minimum: int | None = None) -> int:
        value = self.node.value
        if not isinstance(value, int) or isinstance(value, bool):
            raise self.error(f"expected an integer, got {describe(value)}")
        if minimum is not None and value < minimum:
            raise self.error(f"must be at least {minimum}, got {value}")
        return value

    def boolean(self) -> bool:
        value = self.node.value
        if not isinstance(value, bool):
            raise self.error(f"expected true or false, got {describe(value)}")
        return value

    def type_of(self, types: Sequence[str], what: str, shape: str,
                refused: tuple[str, str] | None = None) -> str:
        """The ``type:`` key of a typed mapping (``{type: daily, ...}``), lower-cased and one of ``types``;
        ``refused``: a type not allowed here, and why (``multi`` inside ``multi``)."""
        keys = dict(self.items(shape))
        allowed = [t for t in types if refused is None or t != refused[0]]
        if "type" not in keys:
            raise self.error(f"missing required key 'type' (one of {', '.join(allowed)})")
        kind = keys["type"].text().lower()
        if kind not in allowed:
            extra = f" ({refused[1]})" if refused is not None and kind == refused[0] else ""
            raise keys["type"].error(f"unknown {what} type {keys['type'].value!r}{extra}; expected one of "
                                     f"{', '.join(allowed)}")
        return kind

    def plain(self) -> Any:
        """The value as ``yaml.safe_load`` would give it (dicts, lists, scalars)."""
        return _plain(self.node)


def _plain(node: Node) -> Any:
    if isinstance(node.value, dict):
        return {key: _plain(child) for key, child in node.value.items()}
    if isinstance(node.value, list):
        return [_plain(child) for child in node.value]
    return node.value
