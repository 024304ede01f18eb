"""Parsing option values: ``k=v`` pairs, ``-p`` parameters, ``--range``, ``--strategy``.

Every malformed value raises ``CliError`` naming the option and the value (exit code 2).
"""

from __future__ import annotations

import inspect
import json
import re
import types
import typing
from collections.abc import Sequence
from datetime import date, datetime
from typing import Any

import anachron as ac

from .common import CliError


def pairs(values: Sequence[str] | None, option: str) -> list[tuple[str, str]]:
    """``["k=v", ...]`` → ``[("k", "v"), ...]``; the value may be empty, the key may not."""
    result = []
    for value in values or ():
        key, sep, val = value.partition("=")
        if not sep or not key.strip():
            raise CliError(f"{option} {value!r}: expected KEY=VALUE")
        result.append((key.strip(), val))
    return result


def params(values: Sequence[str] | None, option: str = "-p", workflow: ac.Workflow | None = None) -> dict[str, Any]:
    """``-p k=v``: the value is read as JSON when it parses (``3``, ``true``, ``null``, ``["a"]``,
    ``{"a": 1}``, ``"quoted"``), else taken as a plain string — except for a parameter of ``workflow``
    annotated ``datetime.date`` or ``datetime.datetime``, whose text is read as an ISO date / datetime."""
    result: dict[str, Any] = {}
    kinds = date_parameters(workflow) if workflow is not None else {}
    for key, text in pairs(values, option):
        kind = kinds.get(key)
        if kind is not None and text.strip() != "null":
            result[key] = _iso(text, kind, f"{option} {key}")
            continue
        try:
            result[key] = json.loads(text)
        except ValueError:
            result[key] = text
    return result


def date_parameters(workflow: ac.Workflow) -> dict[str, type]:
    """The workflow's parameters annotated ``date`` or ``datetime`` (also ``Optional[...]``, ``X | None``)."""
    fn = getattr(workflow, "fn", None)
    if fn is None:
        return {}
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return {}
    try:
        hints = typing.get_type_hints(fn)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: read the text below
        hints = {}
    found: dict[str, type] = {}
    for name, parameter in signature.parameters.items():
        kind = _date_kind(hints.get(name, parameter.annotation))
        if kind is not None:
            found[name] = kind
    return found


def _date_kind(annotation: Any) -> type | None:
    if annotation is datetime or annotation is date:
        return annotation
    if isinstance(annotation, str):  # unresolved: go by the name
        text = annotation.replace(" ", "").strip("'\"")
        for part in text.replace("Optional[", "").rstrip("]").split("|"):
            if part in ("datetime", "datetime.datetime", "dt.datetime"):
                return datetime
            if part in ("date", "datetime.date", "dt.date"):
                return date
        return None
    members = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) in (typing.Union, types.UnionType) and len(members) == 1:
        return _date_kind(members[0])
    return None


def _iso(text: str, kind: type, option: str) -> date:
    value = text.strip()
    if len(value) >= 2 and value[0] == value[-1] == '"':  # -p 'day="2024-01-01"' (JSON-quoted) is fine too
        value = value[1:-1]
    try:
        if kind is datetime:
            return datetime.fromisoformat(value[:-1] + "+00:00" if value.endswith("Z") else value)
        return date.fromisoformat(value)
    except ValueError:
        example = "2024-01-01T06:00:00+00:00" if kind is datetime else "2024-01-01"
        raise CliError(f"{option}: {text!r} is not an ISO-8601 {kind.__name__} (e.g. {example})") from None


def environ(values: Sequence[str] | None, option: str = "--env") -> dict[str, str]:
    return dict(pairs(values, option))


def csv(text: str, option: str) -> list[str]:
    keys = [k.strip() for k in text.split(",")]
    if not text.strip() or any(not k for k in keys):
        raise CliError(f"{option} {text!r}: expected comma-separated keys, e.g. a,b,c")
    return keys


def key_range(values: Sequence[str]) -> dict[str, Any]:
    """``--range`` (repeatable) in the request's JSON form: ``dim=a..b`` (inclusive), ``dim=k1,k2`` (keys), or
    ``a..b`` (no dimension)."""
    dimensions: dict[str, Any] = {}
    for value in values:
        name, sep, spec = value.partition("=")
        if not sep:
            if ".." in value and len(values) == 1:
                start, _, end = value.partition("..")
                if start and end:
                    return {"from": start, "to": end}
            raise CliError(f"--range {value!r}: expected DIM=FROM..TO, DIM=K1,K2 or FROM..TO")
        name = name.strip()
        if not name or not spec:
            raise CliError(f"--range {value!r}: expected DIM=FROM..TO or DIM=K1,K2")
        if name in dimensions:
            raise CliError(f"--range {value!r}: dimension {name!r} is given twice")
        if ".." in spec:
            start, _, end = spec.partition("..")
            if not start or not end or ".." in end:
                raise CliError(f"--range {value!r}: expected {name}=FROM..TO")
            dimensions[name] = {"from": start, "to": end}
        else:
            dimensions[name] = csv(spec, f"--range {name}=")
    return {"dimensions": dimensions}


MODES = ("multi_run", "single_run")


def strategy(text: str, dims: Sequence[str] | None = None) -> str | dict[str, Any]:
    """``multi_run`` | ``single_run`` | ``batched=N`` | ``DIM=MODE,...`` (per dimension; of the workflow's
    dimensions ``dims``, those left out are multi_run), in the request's JSON form (the request validates the
    values)."""
    value = text.strip()
    if value in MODES:
        return value
    if value.startswith("batched"):
        _, sep, n = value.partition("=")
        if not sep or not re.fullmatch(r"\s*[+-]?\d{1,50}\s*", n):
            raise CliError(f"--strategy {text!r}: expected batched=N with N an integer >= 1")
        return {"batched": int(n)}
    multi: list[str] = []
    single: list[str] = []
    for part in value.split(","):
        dim, sep, mode = (s.strip() for s in part.partition("="))
        if not sep or not dim or mode not in MODES:
            raise CliError(f"--strategy {text!r}: expected multi_run, single_run, batched=N or "
                           "DIM=multi_run|single_run,... (e.g. date=single_run,region=multi_run)")
        if dim in multi or dim in single:
            raise CliError(f"--strategy {text!r}: dimension {dim!r} is given twice")
        (multi if mode == "multi_run" else single).append(dim)
    if dims is not None:
        for dim in multi + single:
            if dim not in dims:
                raise CliError(f"--strategy {text!r}: unknown dimension {dim!r} (dimensions: {', '.join(dims)})")
        multi += [d for d in dims if d not in multi and d not in single]
    if not single:
        raise CliError(f"--strategy {text!r}: name at least one dimension as single_run")
    if not multi:
        raise CliError(f"--strategy {text!r}: leave at least one dimension multi_run (or use single_run)")
    return {"per_dimension": {"multi_run": multi, "single_run": single}}


def dimensions(workflow: ac.Workflow | None) -> list[str] | None:
    """The dimension names of a multi-partitioned workflow; ``None`` for any other."""
    partitions = getattr(workflow, "partitions", None)
    if isinstance(partitions, ac.MultiPartitions):
        return list(partitions.dimension_names)
    return None
