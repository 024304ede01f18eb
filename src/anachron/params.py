"""Run parameters: checking them against a workflow's signature, and storing them as JSON text.

A run's ``params`` are stored as JSON and decoded later, in another thread or process, to call
``workflow.fn(**params)``. Only values that come back exactly as they were sent are accepted:

* ``None``, ``bool``, ``int``, finite ``float``, ``str``, ``list``, and ``dict`` with ``str`` keys, nested to
  any depth (up to ``MAX_DEPTH`` levels);
* ``datetime.date``, ``datetime.datetime`` (naive stays naive; aware keeps its UTC offset, as a fixed-offset
  ``datetime.timezone`` — the zone's *name* is not kept) and ``datetime.time``, stored as a tagged object
  ``{"__anachron_type__": "datetime", "value": "2024-01-01T00:00:00+00:00"}`` (user dicts may not use that key).

Everything else is refused with a ``ValueError`` naming the parameter's path, e.g.
``params['cfg']['keys'][2]: a set cannot be stored; use a list``. Types are matched exactly: a subclass of an
accepted type (an ``IntEnum``, a ``StrEnum``, ``OrderedDict``, ``pandas.Timestamp``) is refused too, since it
would come back as the plain base type. Tuples are refused because they would come back as lists;
``nan``/``inf`` because JSON has no such values (PostgreSQL's JSON types and most JSON readers reject them).

Plain values (no dates) are stored as the same compact text as ``json.dumps(value, separators=(",", ":"))``.
"""

from __future__ import annotations

import inspect
import json
import weakref
from collections.abc import Callable, Mapping
from datetime import date, datetime, time
from typing import Any, NamedTuple

__all__ = ["encode_params", "decode_params", "check_params", "TYPE_KEY", "MAX_DEPTH"]

TYPE_KEY = "__anachron_type__"
"""The reserved key of a tagged value; refused in user dicts."""

MAX_DEPTH = 200
"""How deeply lists and dicts may nest (a guard against circular references and the decoder's recursion limit)."""

_MAX_INT_DIGITS = 4300  # Python's default limit for int <-> str conversion (sys.get_int_max_str_digits)
_INT_BOUND = 10 ** _MAX_INT_DIGITS
_TAG_MARKER = f'"{TYPE_KEY}"'
_ACCEPTED = ("None, bool, int, float, str, list, dict with str keys, datetime.date, datetime.datetime, "
             "datetime.time")
_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False, check_circular=False)
_TAGGED = {datetime: "datetime", date: "date", time: "time"}
_PARSERS = {"datetime": datetime.fromisoformat, "date": date.fromisoformat, "time": time.fromisoformat}


class _Refused(Exception):
    """A value that cannot be stored; ``keys`` is its path, innermost key first, filled in while unwinding."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self.keys: list[Any] = []

    def to_error(self, field: str) -> ValueError:
        path = field + "".join(f"[{k!r}]" for k in reversed(self.keys))
        return ValueError(f"{path}: {self.message}")


# -- encoding ---------------------------------------------------------------------------------------------

def _encode(value: Any, depth: int) -> Any:
    """``value`` as plain JSON data: the same object when it holds no dates (the fast, common case), else a
    copy with dates replaced by tagged dicts. Raises ``_Refused`` for anything that would not round-trip."""
    t = type(value)
    if t is str or t is bool or value is None:
        return value
    if t is int:
        if -_INT_BOUND < value < _INT_BOUND:
            return value
        raise _Refused(f"an int with more than {_MAX_INT_DIGITS} digits cannot be stored; use a str")
    if t is float:
        if value - value == 0.0:  # finite (inf - inf and nan - nan are nan)
            return value
        raise _Refused(f"float {value!r} cannot be stored (JSON has no NaN or Infinity); use None or a str")
    if t is dict:
        if depth >= MAX_DEPTH:
            raise _too_deep()
        out: dict[str, Any] | None = None
        for key, item in value.items():
            if type(key) is not str:
                raise _Refused(f"dict key {key!r} ({type(key).__name__}) cannot be stored; dict keys must be str")
            if key == TYPE_KEY:
                raise _Refused(f"the dict key {TYPE_KEY!r} is reserved by anachron")
            try:
                encoded = _encode(item, depth + 1)
            except _Refused as exc:
                exc.keys.append(key)
                raise
            if encoded is not item:
                if out is None:
                    out = dict(value)
                out[key] = encoded
        return value if out is None else out
    if t is list:
        if depth >= MAX_DEPTH:
            raise _too_deep()
        items: list[Any] | None = None
        for index, item in enumerate(value):
            try:
                encoded = _encode(item, depth + 1)
            except _Refused as exc:
                exc.keys.append(index)
                raise
            if encoded is not item:
                if items is None:
                    items = list(value)
                items[index] = encoded
        return value if items is None else items
    kind = _TAGGED.get(t)
    if kind is not None:
        if kind != "date" and value.tzinfo is not None and value.utcoffset() is None:
            raise _Refused(f"a {kind} whose tzinfo {value.tzinfo!r} gives no UTC offset cannot be stored; "
                           "use a naive value or a fixed offset")
        return {TYPE_KEY: kind, "value": value.isoformat()}
    raise _Refused(_unsupported(value, t))


def _too_deep() -> _Refused:
    return _Refused(f"lists and dicts nest deeper than {MAX_DEPTH} levels (is there a circular reference?)")


def _unsupported(value: Any, t: type) -> str:
    name = t.__name__
    if isinstance(value, tuple):
        return f"a {name} cannot be stored (it would come back as a list); use a list"
    if isinstance(value, (set, frozenset)):
        return f"a {name} cannot be stored; use a list"
    if isinstance(value, (bytes, bytearray, memoryview)):
        return f"{name} cannot be stored; use a str (e.g. decoded text or base64)"
    if name == "Decimal" and t.__module__ in ("decimal", "_decimal"):
        return "a Decimal cannot be stored; use a str (exact) or a float"
    if name == "timedelta" and t.__module__ == "datetime":
        return "a timedelta cannot be stored; use a number of seconds (timedelta.total_seconds())"
    for base in (int, float, str, dict, list, datetime, date, time):
        if isinstance(value, base):
            qual = "datetime." + base.__name__ if base in _TAGGED else base.__name__
            return (f"object of type {name} (a subclass of {qual}) cannot be stored: it would come back as a "
                    f"plain {qual}; convert it first")
    if isinstance(value, Mapping):
        return f"object of type {name} cannot be stored; use a dict"
    return f"object of type {name} cannot be stored (accepted: {_ACCEPTED})"


def _encode_top(params: Mapping[str, Any], field: str) -> dict[str, Any]:
    if type(params) is not dict:
        if not isinstance(params, Mapping):
            raise ValueError(f"{field}: expected a mapping of parameter names to values, got "
                             f"{type(params).__name__}")
        params = dict(params)
    try:
        encoded: dict[str, Any] = _encode(params, 0)  # a dict encodes to a dict
    except _Refused as exc:
        raise exc.to_error(field) from None
    return encoded


def encode_params(params: Mapping[str, Any], field: str = "params") -> str:
    """``params`` as JSON text that ``decode_params`` turns back into an equal dict of the same types.

    Raises ``ValueError`` naming the path of the first value that cannot be stored, e.g.
    ``params['when']: a set cannot be stored; use a list``."""
    return _ENCODER.encode(_encode_top(params, field))


# -- decoding ---------------------------------------------------------------------------------------------

def _revive(obj: dict[str, Any]) -> Any:
    if TYPE_KEY not in obj:
        return obj
    kind, value = obj[TYPE_KEY], obj.get("value")
    parse = _PARSERS.get(kind) if type(kind) is str else None
    if parse is not None and len(obj) == 2 and type(value) is str:
        try:
            return parse(value)
        except ValueError:
            pass
    raise ValueError(f"params: cannot decode the stored value {obj!r} (an unknown or malformed {TYPE_KEY!r} "
                     "tag; written by a newer anachron?)")


_DECODER = json.JSONDecoder(object_hook=_revive)


def decode_params(text: str | None) -> dict[str, Any]:
    """The inverse of ``encode_params``; ``None`` (no stored params) gives ``{}``."""
    if text is None:
        return {}
    result = _DECODER.decode(text) if _TAG_MARKER in text else json.loads(text)
    if type(result) is not dict:
        raise ValueError(f"params: stored params must be a JSON object, got {type(result).__name__}")
    return result


# -- checking against a signature -------------------------------------------------------------------------

class _Shape(NamedTuple):
    """What a function accepts as keyword arguments."""

    keywords: frozenset[str]          # names that can be passed as keywords
    var_keyword: bool                 # takes **kwargs
    required: tuple[str, ...]         # keyword-passable parameters without a default, in signature order
    positional_only: frozenset[str]   # positional-only parameter names
    unfillable: tuple[str, ...]       # positional-only parameters without a default: fn(**params) always fails


_shapes: weakref.WeakKeyDictionary[Callable[..., Any], _Shape] = weakref.WeakKeyDictionary()


def _shape(fn: Callable[..., Any]) -> _Shape | None:
    try:
        return _shapes[fn]
    except (KeyError, TypeError):  # not seen yet, or not weak-referenceable / hashable
        pass
    try:
        parameters = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):  # no introspectable signature (some builtins): accept any names
        return None
    p = inspect.Parameter
    shape = _Shape(
        keywords=frozenset(x.name for x in parameters if x.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)),
        var_keyword=any(x.kind is p.VAR_KEYWORD for x in parameters),
        required=tuple(x.name for x in parameters
                       if x.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and x.default is p.empty),
        positional_only=frozenset(x.name for x in parameters if x.kind is p.POSITIONAL_ONLY),
        unfillable=tuple(x.name for x in parameters if x.kind is p.POSITIONAL_ONLY and x.default is p.empty),
    )
    try:
        _shapes[fn] = shape
    except TypeError:
        pass
    return shape


def _names(names: tuple[str, ...] | list[str]) -> str:
    return ", ".join(repr(n) for n in names)


def check_params(fn: Callable[..., Any], params: Mapping[str, Any], *, workflow: str, field: str = "params",
                 require_all: bool = True) -> None:
    """Refuse ``params`` that ``fn(**params)`` could not take, or that could not be stored.

    In order: unknown names (unless ``fn`` takes ``**kwargs``), names of positional-only parameters,
    positional-only parameters without a default (the workflow can never be called by keyword, so this is
    reported whatever ``params`` is), then — when ``require_all`` — parameters without a default that are
    missing, then every value (as ``encode_params`` would). Pass ``require_all=False`` for one layer of
    several that are merged later (e.g. a backfill's ``params`` and a ``config`` override)."""
    shape = _shape(fn)
    if shape is not None:
        for name in params:
            if name in shape.positional_only:
                raise ValueError(f"{field}: parameter {name!r} of workflow {workflow!r} is positional-only and "
                                 "cannot be passed by name")
            if name not in shape.keywords and not shape.var_keyword:
                raise ValueError(f"{field}: workflow {workflow!r} has no parameter {name!r}")
        if shape.unfillable:
            several = len(shape.unfillable) > 1
            raise ValueError(f"{field}: workflow {workflow!r} cannot be run: its parameter"
                             f"{'s' if several else ''} {_names(shape.unfillable)} "
                             f"{'are' if several else 'is'} positional-only without a default, and run "
                             "parameters are passed by name (make them keyword parameters or give them defaults)")
        if require_all:
            missing = [name for name in shape.required if name not in params]
            if len(missing) == 1:
                raise ValueError(f"{field}: workflow {workflow!r} needs parameter {missing[0]!r} "
                                 "(it has no default)")
            if missing:
                raise ValueError(f"{field}: workflow {workflow!r} needs parameters {_names(missing)} "
                                 "(they have no default)")
    _encode_top(params, field)
