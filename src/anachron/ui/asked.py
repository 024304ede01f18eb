"""What a backfill's page says was asked: the stored request (``BackfillStatus.request``) and who asked
(``created_by``), in the words of the form that launches one. Pure: a request in, labelled lines out.

A schedule's tick backfill (a ``trigger_id``: the UI's tick form, the CLI's ``--schedule``, Kestra's backfill
of a trigger) names its schedule and its tick window, and calls its parameters and tags *inputs* and
*labels*, as Kestra does.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..requests import BackfillRequest, DimensionRanges, KeyRange
from ..strategies import BackfillStrategy

#: keys of a ``partition_keys`` request listed before "and N more"
KEYS_SHOWN = 12
#: characters of one parameter's JSON shown (the whole request is in the JSON view)
VALUE_SHOWN = 200

REPROCESS = {"all": "every partition in the selection",
             "failed_and_missing": "only partitions that failed or never ran",
             "missing": "only partitions that never ran"}
ORDER = {"oldest_first": "oldest first", "newest_first": "newest first"}
FAILURE = {"continue": "continue with the other partitions", "stop_on_failure": "stop the backfill"}
INCLUDE = {"downstream": "and every workflow downstream of {}", "upstream": "and every workflow upstream of {}"}


@dataclass(frozen=True)
class Line:
    """One labelled line of the panel: plain text, or ``(name, value)`` pairs (parameters, tags)."""

    label: str
    text: str = ""
    pairs: tuple[tuple[str, str], ...] = ()
    #: workflows named before the text (each a link to its page)
    workflows: tuple[str, ...] = ()
    #: ``(text, href)``: a link before the text (the schedule)
    link: tuple[str, str] | None = None


@dataclass(frozen=True)
class Asked:
    lines: tuple[Line, ...]
    #: the request as JSON (what ``POST /api/v1/backfills`` takes), defaults left out
    json: str = ""
    #: a schedule's tick backfill
    ticks: bool = False
    notes: tuple[str, ...] = field(default_factory=tuple)


def asked(request: BackfillRequest | None, created_by: str | None,
          defaults: Mapping[str, BackfillStrategy | None] | None = None) -> Asked:
    """``defaults``: the workflows' own strategies (``Workflow.backfill_strategy``), which a request without a
    strategy follows."""
    if request is None:  # a backfill stored before requests were
        who = (Line("Launched by", created_by),) if created_by else ()
        return Asked(who, notes=("This backfill was created before anachron stored what was asked.",))
    ticks = request.trigger_id is not None
    lines = [_what(request), _partitions(request)]
    if request.params:
        lines.append(Line("Inputs" if ticks else "Parameters", pairs=_values(request.params)))
    for name, values in sorted(request.config.items()):
        if values:
            lines.append(Line(f"Parameters of {name}", pairs=_values(values)))
    replay = ticks or request.cron is not None  # one run per tick: the strategy does not apply
    lines.append(Line("Runs", "one run per tick" if replay else _strategy(request.strategy, defaults or {})))
    reprocess = REPROCESS[request.reprocess]
    lines.append(Line("Reprocess", reprocess.replace("partition", "tick") if replay else reprocess))
    lines.append(Line("Order", ORDER[request.order]))
    lines.append(Line("On failure", FAILURE[request.failure_policy]))
    lines.append(Line("Max concurrency", f"{request.max_concurrency:,} run{'' if request.max_concurrency == 1 else 's'}"
                                         " at once"))
    tags = tuple((t.key, t.value) for t in request.tags if not t.key.startswith("anachron/"))
    if tags:
        lines.append(Line("Labels" if ticks else "Tags", pairs=tags))
    if request.idempotency_key:
        lines.append(Line("Idempotency key", request.idempotency_key))
    lines.append(Line("Launched by", created_by or "unknown"))
    shown = request.model_dump(mode="json", by_alias=True, exclude_defaults=True, exclude={"dry_run"})
    return Asked(tuple(lines), json.dumps(shown, indent=2, ensure_ascii=False, sort_keys=False), ticks)


def _what(request: BackfillRequest) -> Line:
    names = [request.workflow] if request.workflow else list(request.selection or ())
    text = ""
    if request.include in INCLUDE:
        text = INCLUDE[request.include].format("it" if len(names) == 1 else "them")
    return Line("Workflow" if len(names) == 1 else "Workflows", text, workflows=tuple(names))


def _partitions(request: BackfillRequest) -> Line:
    if request.trigger_id is not None:
        return Line("Schedule", f"its ticks from {_time(request.start)} to {_time(request.end)}",
                    link=(request.trigger_id, "/schedules"))
    if request.cron is not None:
        zone = request.timezone or "UTC"
        return Line("Ticks", f"of cron {request.cron} ({zone}) from {_time(request.start)} to {_time(request.end)}")
    if request.partition_keys is not None:
        keys = request.partition_keys
        more = f", and {len(keys) - KEYS_SHOWN:,} more" if len(keys) > KEYS_SHOWN else ""
        return Line("Partitions", f"{len(keys):,} key{'' if len(keys) == 1 else 's'}: "
                                  f"{', '.join(keys[:KEYS_SHOWN])}{more}")
    rng = request.partition_range
    if isinstance(rng, KeyRange):
        return Line("Partitions", f"from {rng.from_key} to {rng.to_key}")
    if isinstance(rng, DimensionRanges):
        return Line("Partitions", pairs=tuple((dim, _dimension(value)) for dim, value in rng.dimensions.items()))
    if request.start is not None:
        return Line("Partitions", f"the time from {_time(request.start)} to {_time(request.end)}")
    return Line("Partitions", "every partition (or one run, for a workflow without partitions)")


def _dimension(value: KeyRange | list[str]) -> str:
    if isinstance(value, KeyRange):
        return f"from {value.from_key} to {value.to_key}"
    more = f", and {len(value) - KEYS_SHOWN:,} more" if len(value) > KEYS_SHOWN else ""
    return ", ".join(value[:KEYS_SHOWN]) + more


def _strategy(data: Any, defaults: Mapping[str, BackfillStrategy | None]) -> str:
    if data is not None:
        return _in_words(BackfillStrategy.from_dict(data))
    if not defaults:
        return "as each workflow's default strategy says"
    own = {name: _in_words(strategy or BackfillStrategy.multi_run()) for name, strategy in defaults.items()}
    if len(own) == 1:
        return f"{next(iter(own.values()))} (the workflow's default)"
    if len(set(own.values())) == 1:
        return f"{next(iter(own.values()))} (each workflow's default)"
    return "each workflow's default: " + "; ".join(f"{name}: {text}" for name, text in own.items())


def _in_words(strategy: BackfillStrategy) -> str:
    if strategy.batch_size is not None:
        return f"batches of up to {strategy.batch_size:,} consecutive partitions"
    if strategy.multi_run_dimensions or strategy.single_run_dimensions:
        return (f"one run per {' × '.join(strategy.multi_run_dimensions)}, "
                f"each covering every {', '.join(strategy.single_run_dimensions)}")
    if strategy.kind == "single_run":
        return "one run for every partition"
    return "one run per partition"


def _time(text: str | None) -> str:
    return text if text else "now (the time of the request)"


def _values(values: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    out = []
    for name, value in values.items():
        text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
        out.append((name, text if len(text) <= VALUE_SHOWN else text[:VALUE_SHOWN] + "…"))
    return tuple(out)
