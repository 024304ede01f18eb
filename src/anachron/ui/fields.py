"""A workflow's parameters as form fields, from its signature (types and defaults), and back to values.

``def daily_sales(sleep: float | None = None, region: str = "us", full: bool = False)`` gives a number
field, a text field and a true/false choice, each showing its default; a YAML flow's typed ``inputs`` give
the same (their signature is generated). A parameter whose type is not one of these (a list, a dict, a
class) gets a JSON field, and a workflow taking ``**kwargs`` a JSON box for the rest. A blank field means
"the default"; what the engine checks (a missing required parameter, an unknown one) it still checks, and
its message is shown in the form's words.
"""

from __future__ import annotations

import inspect
import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Union, get_args, get_origin

from ..definitions import Workflow

#: the kinds of field, by the Python type of the parameter
KINDS: dict[Any, str] = {int: "int", float: "float", str: "str", bool: "bool", date: "date", datetime: "datetime"}
_NAMES = {"int": "int", "float": "float", "str": "str", "bool": "bool", "date": "date", "datetime": "datetime",
          "datetime.date": "date", "datetime.datetime": "datetime", "dt.date": "date", "dt.datetime": "datetime"}
#: form field names: ``p.<parameter>``; the JSON box for the rest: ``params``
PREFIX = "p."
EXTRA = "params"


class ParamError(ValueError):
    """A parameter field that does not hold a value of its type; the message names the parameter."""


@dataclass(frozen=True)
class ParamField:
    name: str
    #: ``int``, ``float``, ``str``, ``bool``, ``date``, ``datetime``, ``json`` (any JSON value) or ``any``
    #: (no annotation: JSON when it reads as JSON, else the text)
    kind: str
    required: bool
    #: the default, as the field shows it ("" for none)
    default: str
    nullable: bool = False

    @property
    def field(self) -> str:
        return PREFIX + self.name

    @property
    def type_text(self) -> str:
        text = {"json": "JSON", "any": "any"}.get(self.kind, self.kind)
        return f"{text} or null" if self.nullable and self.kind not in ("json", "any") else text


@dataclass(frozen=True)
class ParamForm:
    """A workflow's parameter fields, and whether it takes more by name (``**kwargs``: a JSON box)."""

    fields: tuple[ParamField, ...]
    extra: bool

    @property
    def empty(self) -> bool:
        return not self.fields and not self.extra

    def values(self, form: Mapping[str, str]) -> dict[str, Any]:
        """The parameters the fields hold (blank fields left out: their defaults apply)."""
        params: dict[str, Any] = {}
        if self.extra and form.get(EXTRA, "").strip():
            params.update(json_object(form[EXTRA], "Other parameters"))
        for f in self.fields:
            text = form.get(f.field, "")
            if text.strip():
                params[f.name] = value_of(f, text.strip())
        return params

    def shown(self, params: Mapping[str, Any]) -> dict[str, str]:
        """Form values showing ``params`` (a run's, to run it again)."""
        known = {f.name: f for f in self.fields}
        values = {known[k].field: text_of(v, known[k].kind) for k, v in params.items() if k in known}
        rest = {k: v for k, v in params.items() if k not in known}
        if rest and self.extra:
            values[EXTRA] = json.dumps(rest, default=str)
        return values


def param_form(workflow: Workflow) -> ParamForm:
    try:
        parameters = inspect.signature(workflow.fn).parameters.values()
    except (TypeError, ValueError):  # no signature to read: a JSON box for everything
        return ParamForm((), True)
    p = inspect.Parameter
    fields = []
    for param in parameters:
        if param.kind not in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY):
            continue
        kind, nullable = _kind(param.annotation, param.default)
        required = param.default is p.empty
        default = "" if required else text_of(param.default, kind)
        fields.append(ParamField(param.name, kind, required, default, nullable or param.default is None))
    return ParamForm(tuple(fields), any(x.kind is p.VAR_KEYWORD for x in parameters))


def _kind(annotation: Any, default: Any) -> tuple[str, bool]:
    """The field kind for an annotation (a type, or its text under ``from __future__ import annotations``)
    and whether ``None`` is allowed."""
    if annotation is inspect.Parameter.empty:
        if default is inspect.Parameter.empty or default is None:
            return "any", default is None
        return KINDS.get(type(default), "json"), False
    if isinstance(annotation, str):
        parts = [part.strip() for part in re.sub(r"^Optional\[(.*)\]$", r"\1|None", annotation.strip()).split("|")]
        nullable = "None" in parts
        named = [part for part in parts if part != "None"]
        if len(named) == 1 and named[0] in _NAMES:
            return _NAMES[named[0]], nullable
        return "json", nullable
    if get_origin(annotation) in (Union, type(int | None)):
        args = get_args(annotation)
        nullable = type(None) in args
        named = [a for a in args if a is not type(None)]
        return (KINDS.get(named[0], "json") if len(named) == 1 else "json"), nullable
    return KINDS.get(annotation, "json"), False


def text_of(value: Any, kind: str) -> str:
    """A value as its field shows it."""
    if value is None:
        return "null" if kind in ("json", "any") else ""
    if kind == "bool":
        return "true" if value else "false"
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if kind in ("json", "any") and not isinstance(value, str):
        return json.dumps(value, default=str)
    return str(value)


def value_of(f: ParamField, text: str) -> Any:
    """The value a field's text means, as its type says; ``ParamError`` naming the parameter."""
    where = f"Parameter {f.name}"
    if f.nullable and text == "null":
        return None
    try:
        if f.kind == "int":
            return int(text.replace("_", "").replace(",", ""))
        if f.kind == "float":
            number = float(text.replace("_", "").replace(",", ""))
            if not math.isfinite(number):
                raise ValueError
            return number
        if f.kind == "bool":
            lowered = text.lower()
            if lowered not in ("true", "false"):
                raise ValueError
            return lowered == "true"
        if f.kind == "date":
            return date.fromisoformat(text)
        if f.kind == "datetime":
            return datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        if f.kind == "json":
            return json.loads(text)
        if f.kind == "any":
            try:
                return json.loads(text)
            except json.JSONDecodeError:
                return text
    except (ValueError, OverflowError):
        example = {"int": "an integer", "float": "a number", "bool": "true or false", "date": "a date (2024-01-13)",
                   "datetime": "a date and time (2024-01-13T09:30:00+00:00)", "json": "a JSON value"}[f.kind]
        raise ParamError(f"{where}: expected {example}, got {text[:60]!r}") from None
    return text


def json_object(text: str, label: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ParamError(f"{label}: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(value, dict):
        raise ParamError(f"{label}: expected a JSON object, e.g. {{\"sleep\": 0.5}}")
    return value
