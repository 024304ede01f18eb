"""Parsing option values: ``k=v`` pairs, ``-p`` parameters, ``--range``, ``--strategy``, times.

Every malformed value raises ``CliError`` naming the option and the value (exit code 2).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Sequence

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


def params(values: Sequence[str] | None, option: str = "-p") -> dict[str, Any]:
    """``-p k=v``: the value is read as JSON when it parses (``3``, ``true``, ``null``, ``["a"]``,
    ``{"a": 1}``, ``"quoted"``), else taken as a plain string."""
    result: dict[str, Any] = {}
    for key, text in pairs(values, option):
        try:
            result[key] = json.loads(text)
        except ValueError:
            result[key] = text
    return result


def environ(values: Sequence[str] | None, option: str = "--env") -> dict[str, str]:
    return dict(pairs(values, option))


def csv(text: str, option: str) -> list[str]:
    keys = [k.strip() for k in text.split(",")]
    if not text.strip() or any(not k for k in keys):
        raise CliError(f"{option} {text!r}: expected comma-separated keys, e.g. a,b,c")
    return keys


def time_value(text: str, option: str) -> str:
    """An ISO-8601 date or datetime (validated here, passed on as text)."""
    candidate = text.strip()
    try:
        datetime.fromisoformat(candidate[:-1] + "+00:00" if candidate.endswith("Z") else candidate)
    except ValueError:
        raise CliError(f"{option} {text!r}: not an ISO-8601 date or datetime (e.g. 2024-01-01 or "
                       "2024-01-01T06:00:00+00:00)") from None
    return candidate


def key_range(values: Sequence[str]) -> ac.PartitionKeyRange:
    """``--range`` (repeatable): ``dim=a..b`` (inclusive), ``dim=k1,k2`` (keys), or ``a..b`` (no dimension)."""
    dimensions: dict[str, Any] = {}
    for value in values:
        name, sep, spec = value.partition("=")
        if not sep:
            if ".." in value and len(values) == 1:
                start, _, end = value.partition("..")
                if start and end:
                    return ac.PartitionKeyRange.single(start, end)
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
            dimensions[name] = (start, end)
        else:
            dimensions[name] = csv(spec, f"--range {name}=")
    return ac.PartitionKeyRange.multi(dimensions)


MODES = ("multi_run", "single_run")


def strategy(text: str, workflow: ac.Workflow | None = None) -> ac.BackfillStrategy:
    """``multi_run`` | ``single_run`` | ``batched=N`` | ``DIM=MODE,...`` (per dimension; dimensions of the
    workflow left out are multi_run)."""
    value = text.strip()
    if value in MODES:
        return ac.BackfillStrategy.from_dict(value)
    if value.startswith("batched"):
        _, sep, n = value.partition("=")
        try:
            size = int(n) if sep else None
        except ValueError:
            size = None
        if size is None or size < 1:
            raise CliError(f"--strategy {text!r}: expected batched=N with N an integer >= 1")
        return ac.BackfillStrategy.batched(size)
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
    dims = _dimensions(workflow)
    if dims is not None:
        for dim in multi + single:
            if dim not in dims:
                raise CliError(f"--strategy {text!r}: unknown dimension {dim!r} (dimensions: {', '.join(dims)})")
        multi += [d for d in dims if d not in multi and d not in single]
    if not single:
        raise CliError(f"--strategy {text!r}: name at least one dimension as single_run")
    if not multi:
        raise CliError(f"--strategy {text!r}: leave at least one dimension multi_run (or use single_run)")
    return ac.BackfillStrategy.per_dimension(multi_run=multi, single_run=single)


def _dimensions(workflow: ac.Workflow | None) -> list[str] | None:
    partitions = getattr(workflow, "partitions", None)
    if isinstance(partitions, ac.MultiPartitions):
        return list(partitions.dimension_names)
    return None
