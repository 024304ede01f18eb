"""Typed flow inputs: the flow's run parameters.

``inputs: [{id: day, type: DATE}, {id: region, type: STRING, defaults: us}]`` gives the generated workflow
function a signature (``inspect.Signature``) with one keyword parameter per input — annotated with its
Python type, defaulted to its ``defaults`` or required — so the engine's usual checks (missing, unknown,
unstorable parameters) apply to YAML flows unchanged. The values' *types* are checked by ``validate``,
which the engine calls through the function's ``__anachron_validate__`` hook when a run or a backfill is
created, so a bad value is refused before anything is stored.

Accepted values per type — a value, or the text a command line gives (``-p day=2024-01-01``):

==========  ==============================================================  ======================
type        accepted                                                        given to the run as
==========  ==============================================================  ======================
STRING      text; a number is accepted as its text (``-p zip=75001``)       ``str``
INT         an integer, or its text (``"42"``)                              ``int``
FLOAT       a number, or its text (``"1.5"``; not NaN or infinity)           ``float``
BOOLEAN     true / false, or the text ``true`` / ``false`` (any case)       ``bool`` (alias BOOL)
DATE        a date, or ISO-8601 text (``2024-01-01``)                       ``datetime.date``
DATETIME    a datetime, or ISO-8601 text (``2024-01-01T06:00:00+02:00``)    ``datetime.datetime``
==========  ==============================================================  ======================

Runs store their parameters as given (JSON; dates tagged), and the conversion happens when the run
executes. ``null`` is accepted only for an input declared ``required: false``.
"""

from __future__ import annotations

import inspect
import keyword
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Optional

from .yamldoc import Field

__all__ = ["InputSpec", "TYPES", "parse_input", "coerce", "signature", "validator", "apply_inputs"]

TYPES: dict[str, type] = {
    "STRING": str, "INT": int, "FLOAT": float, "BOOLEAN": bool, "DATE": date, "DATETIME": datetime,
}
_ALIASES = {"BOOL": "BOOLEAN"}
_INTEGER = re.compile(r"^[+-]?[0-9]+$")
_INPUT_KEYS = ("id", "type", "defaults", "required", "description", "displayName")


@dataclass(frozen=True)
class InputSpec:
    id: str
    type_name: str  # a key of TYPES
    required: bool
    has_default: bool
    default: Any = None
    description: str | None = None

    @property
    def python_type(self) -> type:
        return TYPES[self.type_name]


class _Mismatch(ValueError):
    pass


def coerce(type_name: str, value: Any) -> Any:
    """``value`` as the Python value of an input of type ``type_name``; ``ValueError`` when it is not one."""
    kind = type(value)
    if type_name == "STRING":
        if kind is str:
            return value
        if kind is int or (kind is float and math.isfinite(value)):
            return str(value)
    elif type_name == "INT":
        if kind is int:
            return value
        if kind is str and _INTEGER.match(value.strip()):
            return int(value.strip())
    elif type_name == "FLOAT":
        if kind is int or kind is float:
            number = float(value)
            if math.isfinite(number):
                return number
        elif kind is str:
            try:
                number = float(value.strip())
            except ValueError:
                pass
            else:
                if math.isfinite(number):
                    return number
    elif type_name == "BOOLEAN":
        if kind is bool:
            return value
        if kind is str and value.strip().lower() in ("true", "false"):
            return value.strip().lower() == "true"
    elif type_name == "DATE":
        if kind is date:
            return value
        if kind is str:
            try:
                return date.fromisoformat(value.strip())
            except ValueError:
                pass
    elif type_name == "DATETIME":
        if kind is datetime:
            return value
        if kind is str:
            try:
                return datetime.fromisoformat(value.strip())
            except ValueError:
                pass
    raise _Mismatch(type_name)


def _expected(type_name: str) -> str:
    return f"{'an' if type_name[0] in 'AEIOU' else 'a'} {type_name}"


def _check(spec: InputSpec, value: Any) -> Any:
    """The converted value; ``ValueError`` with the reason (no path) when it does not fit."""
    if value is None:
        if not spec.required:
            return None
        raise ValueError(f"expected {_expected(spec.type_name)}, got None (the input is required; declare it "
                         "`required: false` to accept null)")
    try:
        return coerce(spec.type_name, value)
    except _Mismatch:
        raise ValueError(f"expected {_expected(spec.type_name)}, got {value!r}") from None


def parse_input(item: Field) -> InputSpec:
    """One entry of ``inputs:``: a Python-identifier id, a known type, a default that fits the type."""
    keys = item.mapping(_INPUT_KEYS, required=("id", "type"), what="an input ({id, type, ...})")
    input_id = keys["id"].text()
    if not input_id.isidentifier() or keyword.iskeyword(input_id):
        raise keys["id"].error(f"{input_id!r} is not a valid input id: it becomes a run parameter, so it must be "
                               "a Python identifier (letters, digits and _, not starting with a digit)")
    raw_type = keys["type"].text().strip().upper()
    type_name = _ALIASES.get(raw_type, raw_type)
    if type_name not in TYPES:
        raise keys["type"].error(f"unknown input type {keys['type'].value!r}; expected one of {', '.join(TYPES)}")
    required = keys["required"].boolean() if "required" in keys else True
    description = keys["description"].text() if "description" in keys else None
    if "displayName" in keys:
        keys["displayName"].text()
    if "defaults" not in keys:
        # an optional input without a default is null
        return InputSpec(input_id, type_name, required, not required, None, description)
    try:
        default = _check(InputSpec(input_id, type_name, required, True), keys["defaults"].value)
    except ValueError as exc:
        raise keys["defaults"].error(f"the default of input {input_id!r} does not fit its type: {exc}") from None
    return InputSpec(input_id, type_name, required, True, default, description)


def signature(specs: Sequence[InputSpec]) -> inspect.Signature:
    """One keyword-only parameter per input, annotated with its Python type (``T | None`` when it may be null)."""
    parameters = []
    for spec in specs:
        annotation: Any = spec.python_type if spec.required else Optional[spec.python_type]  # noqa: UP007
        default = spec.default if spec.has_default else inspect.Parameter.empty
        parameters.append(inspect.Parameter(spec.id, inspect.Parameter.KEYWORD_ONLY, default=default,
                                            annotation=annotation))
    return inspect.Signature(parameters)


def validator(specs: Sequence[InputSpec]) -> Callable[[Mapping[str, Any], str], None]:
    """The ``__anachron_validate__(params, field)`` hook: refuses a value that does not fit its input's type,
    e.g. ``ValueError("params['region']: expected an INT, got 'abc'")``. Names that are not inputs are left to
    the engine's signature check."""
    by_id = {spec.id: spec for spec in specs}

    def validate(params: Mapping[str, Any], field: str = "params") -> None:
        for name, value in params.items():
            spec = by_id.get(name)
            if spec is None:
                continue
            try:
                _check(spec, value)
            except ValueError as exc:
                raise ValueError(f"{field}[{name!r}]: {exc}") from None

    return validate


def apply_inputs(specs: Sequence[InputSpec], params: Mapping[str, Any], flow_id: str) -> dict[str, Any]:
    """The run's typed inputs: every declared input, converted, defaults filled in. Raises ``ValueError`` for
    a missing required input or a value that does not fit (a run created before the engine checked them)."""
    values: dict[str, Any] = {}
    for spec in specs:
        if spec.id in params:
            try:
                values[spec.id] = _check(spec, params[spec.id])
            except ValueError as exc:
                raise ValueError(f"params[{spec.id!r}]: {exc}") from None
        elif spec.has_default:
            values[spec.id] = spec.default
        else:
            raise ValueError(f"params: flow {flow_id!r} needs input {spec.id!r} (it has no default)")
    return values
