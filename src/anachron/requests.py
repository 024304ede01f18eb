"""``BackfillRequest``: a backfill request as one validated value.

The Python API (``repo.backfill``), the command line and the HTTP API all build this model and validate
it the same way, with the same messages — each names the field, e.g. ``max_concurrency: must be an integer
>= 1, got 0``. Its JSON form follows SPEC §6 (``"partition_range": {"from": k, "to": k}``, ``"strategy":
{"batched": 7}``, ``"tags": [{"key": k, "value": v}]``); ``BackfillRequest.model_json_schema()`` is what
the API publishes. What needs the repository (does the workflow exist, do the keys, do the parameters
fit its signature) is checked when the request is submitted.

Imported on first use (pydantic is not loaded by ``import anachron``).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, WithJsonSchema, field_validator, model_validator

from .definitions import Workflow, normalize_tags, priority_of
from .limits import check_params_size, check_tags, unstorable
from .models import BACKFILL_PRIORITY, TRIGGER_TAG
from .partitions import PartitionKeyRange
from .strategies import BackfillStrategy

MAX_CONCURRENCY = 1_000_000
MAX_IDEMPOTENCY_KEY = 1_000
#: ``start`` and ``end`` stay a day away from the calendar's edges, so no timezone takes them out of it.
EARLIEST_TIME = datetime(1, 1, 2)
LATEST_TIME = datetime(9999, 12, 30, 23, 59, 59)


#: The JSON forms ``BackfillStrategy.from_dict`` reads (validated by it; this is what the schema publishes).
STRATEGY_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"enum": ["multi_run", "single_run"]},
        {"type": "object", "properties": {"batched": {"type": "integer", "minimum": 1}},
         "required": ["batched"], "additionalProperties": False},
        {"type": "object", "additionalProperties": False, "required": ["per_dimension"],
         "properties": {"per_dimension": {
             "type": "object", "additionalProperties": False,
             "properties": {"multi_run": {"type": "array", "items": {"type": "string"}},
                            "single_run": {"type": "array", "items": {"type": "string"}}}}}},
        {"type": "null"},
    ],
    "default": None,
    "title": "Strategy",
}


class RequestError(ValueError):
    """A request that does not validate; the message names the field."""


def _storable(data: Any) -> Any:
    """Refuse a request holding text no database stores (NUL, a lone surrogate) anywhere, naming where."""
    found = unstorable(data)
    if found is not None:
        raise ValueError(f"{found[0]}: {found[1]}")
    return data


def _sized(params: dict[str, Any], config: dict[str, dict[str, Any]], tags: dict[str, str]) -> None:
    check_params_size(params)
    for name, values in config.items():
        check_params_size(values, f"config.{name}")
    check_tags(tags)


class Tag(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    key: str = Field(min_length=1)
    value: str


class KeyRange(BaseModel):
    """An inclusive range of partition keys: ``{"from": k, "to": k}``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)
    from_key: str = Field(alias="from", min_length=1)
    to_key: str = Field(alias="to", min_length=1)


class DimensionRanges(BaseModel):
    """Per dimension of a multi-partitioned workflow: a range or a list of keys (left out: all keys)."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    dimensions: dict[str, KeyRange | list[str]]


class BackfillRequest(BaseModel):
    """What to backfill and how. See SPEC §2 (``repo.backfill``) for each field's meaning."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow: str | None = None
    selection: list[str] | None = None
    include: Literal["selection", "downstream", "upstream"] = "selection"
    partition_keys: list[str] | None = None
    partition_range: KeyRange | DimensionRanges | None = None
    start: str | None = None
    end: str | None = None
    trigger_id: str | None = None
    cron: str | None = Field(None, description="With start/end, for a workflow without partitions: one run per "
                                               "tick of this cron in [start, end], at the tick's logical time")
    timezone: str | None = Field(None, description="The cron's timezone (default UTC)")
    strategy: Annotated[Any, WithJsonSchema(STRATEGY_SCHEMA)] = None
    failure_policy: Literal["continue", "stop_on_failure"] = "continue"
    max_concurrency: int = 4
    tags: list[Tag] = Field(default_factory=list)
    config: dict[str, dict[str, Any]] = Field(default_factory=dict)
    params: dict[str, Any] = Field(default_factory=dict)
    reprocess: Literal["all", "failed_and_missing", "missing"] = "all"
    order: Literal["oldest_first", "newest_first"] = "oldest_first"
    idempotency_key: str | None = None
    dry_run: bool = False

    # -- field rules ------------------------------------------------------------------------------
    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        return _storable(data)

    @field_validator("max_concurrency", mode="before")
    @classmethod
    def _max_concurrency(cls, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_CONCURRENCY:
            raise ValueError(f"must be an integer >= 1 (at most {MAX_CONCURRENCY:,}), got {value!r}")
        return value

    @field_validator("partition_keys")
    @classmethod
    def _keys(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("the list is empty")
        return None if value is None else list(dict.fromkeys(value))

    @field_validator("selection")
    @classmethod
    def _selection(cls, value: list[str] | None) -> list[str] | None:
        if value is not None and not value:
            raise ValueError("the list is empty")
        return value

    @field_validator("start", "end", mode="before")
    @classmethod
    def _time(cls, value: Any, info: Any) -> str | None:
        if value is None:
            return None
        if isinstance(value, (datetime, date)):
            return value.isoformat()
        if not isinstance(value, str):
            raise ValueError(f"expected an ISO-8601 date or datetime, got {value!r}")
        text = value.strip()
        try:
            parsed = datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
        except ValueError:
            raise ValueError(f"{value!r} is not an ISO-8601 date or datetime") from None
        if not EARLIEST_TIME <= parsed.replace(tzinfo=None) <= LATEST_TIME:  # any timezone keeps it in range
            raise ValueError(f"{value!r} is out of range: times from {EARLIEST_TIME.date()} to "
                             f"{LATEST_TIME.date()} are accepted")
        return text

    @field_validator("cron")
    @classmethod
    def _cron(cls, value: str | None) -> str | None:
        if value is not None:
            from .partitions.time_grid import check_cron

            check_cron(value, "cron")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str | None) -> str | None:
        if value is not None:
            from .schedules import zone

            try:
                zone(value)
            except ValueError:
                raise ValueError(f"unknown timezone {value!r}") from None
        return value

    @field_validator("strategy", mode="before")
    @classmethod
    def _strategy(cls, value: Any) -> Any:
        if value is None:
            return None
        if isinstance(value, BackfillStrategy):
            return value.to_dict()
        return BackfillStrategy.from_dict(value).to_dict()  # ValueError names what is wrong

    @field_validator("idempotency_key")
    @classmethod
    def _idempotency_key(cls, value: str | None) -> str | None:
        if value is not None and not (0 < len(value) <= MAX_IDEMPOTENCY_KEY):
            raise ValueError(f"must be a non-empty string of at most {MAX_IDEMPOTENCY_KEY} characters")
        return value

    @model_validator(mode="after")
    def _one_selection(self) -> BackfillRequest:
        if self.workflow is not None and self.selection is not None:
            raise ValueError("selection: give a workflow or a selection, not both")
        given = [name for name, value in (("partition_keys", self.partition_keys),
                                          ("partition_range", self.partition_range)) if value is not None]
        if self.start is not None or self.end is not None:
            given.append("start/end")
        if len(given) > 1:
            raise ValueError("selection: give exactly one of partition_keys, partition_range or start/end, "
                             f"got {' and '.join(given)}")
        if self.end is not None and self.start is None:
            raise ValueError("start: a time range needs a start")
        if self.cron is not None:
            if self.trigger_id is not None:
                raise ValueError("cron: give a cron or a trigger_id (a schedule's ticks), not both")
            if self.start is None:
                raise ValueError("start: a backfill over the ticks of a cron needs a start (and an end, or now)")
        elif self.timezone is not None:
            raise ValueError("timezone: it is the cron's timezone; give a cron too")
        priority_of(self.tag_dict(), BACKFILL_PRIORITY)  # the priority tag must be an integer
        _sized(self.params, self.config, self.tag_dict())
        return self

    # -- domain values ----------------------------------------------------------------------------
    def tag_dict(self) -> dict[str, str]:
        return {t.key: t.value for t in self.tags}

    def key_range(self) -> PartitionKeyRange | None:
        r = self.partition_range
        if r is None:
            return None
        if isinstance(r, KeyRange):
            return PartitionKeyRange.single(r.from_key, r.to_key)
        return PartitionKeyRange.multi({name: (spec.from_key, spec.to_key) if isinstance(spec, KeyRange) else spec
                                        for name, spec in r.dimensions.items()})

    def backfill_strategy(self) -> BackfillStrategy | None:
        return None if self.strategy is None else BackfillStrategy.from_dict(self.strategy)

    # -- building ---------------------------------------------------------------------------------
    @classmethod
    def parse(cls, data: Mapping[str, Any]) -> BackfillRequest:
        """Validate a JSON-shaped request; ``RequestError`` naming the field."""
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            raise RequestError(_message(exc)) from None

    @classmethod
    def from_python(cls, workflow: Any = None, **fields: Any) -> BackfillRequest:
        """The request ``repo.backfill(...)`` describes: the model's fields by name, Python objects accepted
        where JSON forms would be (workflow objects, ``PartitionKeyRange``, ``BackfillStrategy``, tags as a
        mapping or pairs, mappings). Every door builds its request from these fields (``repo.backfill``'s
        parameters, the CLI's options and the UI's form map onto them: ``tests/test_requests.py`` checks it)."""
        fields["workflow"] = workflow
        unknown = sorted(set(fields) - set(cls.model_fields))
        if unknown:
            raise RequestError(f"{unknown[0]}: not a field of a backfill request")
        data = {name: _PYTHON_FORMS.get(name, _as_is)(value) for name, value in fields.items()
                if value is not None or name in ("workflow", "selection")}
        return cls.parse(data)

    @classmethod
    def for_schedule(cls, workflow: str | Workflow, trigger_id: str = "schedule", start: Any = None, end: Any = None,
                     inputs: Mapping[str, Any] | None = None, labels: Any = None, dry_run: bool = False,
                     **options: Any) -> BackfillRequest:
        """The request ``repo.backfill_schedule(...)`` describes: the ticks of schedule ``trigger_id`` in
        ``[start, end]``, tagged with it (``anachron/trigger``). ``options``: ``strategy``, ``failure_policy``,
        ``max_concurrency``, ``reprocess``, ``order``, ``idempotency_key``."""
        allowed = {"strategy", "failure_policy", "max_concurrency", "reprocess", "order", "idempotency_key"}
        for name in options:
            if name not in allowed:
                raise RequestError(f"{name}: unknown option")
        if start is None:
            raise RequestError("start: a schedule backfill needs a start")
        tags = {**check_tags(normalize_tags(labels, "labels"), "labels"), TRIGGER_TAG: trigger_id}
        return cls.from_python(workflow=workflow, start=start, end=end, params=inputs, tags=tags, dry_run=dry_run,
                               trigger_id=trigger_id, **options)


class RunRequest(BaseModel):
    """One run to submit (``repo.run``, ``POST /api/v1/runs``). The same ``idempotency_key`` gives the same run."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    workflow: str = Field(min_length=1)
    partition_key: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    tags: list[Tag] = Field(default_factory=list)
    run_name: str | None = None
    idempotency_key: str | None = None
    scheduled_time: str | None = Field(None, description="ISO-8601 (no offset: UTC). In the future, the run waits "
                                                         "queued until then (Prefect's --start-at); its logical time")

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        return _storable(data)

    @field_validator("idempotency_key")
    @classmethod
    def _idempotency_key(cls, value: str | None) -> str | None:
        return BackfillRequest._idempotency_key(value)

    @field_validator("scheduled_time", mode="before")
    @classmethod
    def _scheduled_time(cls, value: Any) -> str | None:
        return BackfillRequest._time(value, None)

    @model_validator(mode="after")
    def _sizes(self) -> RunRequest:
        _sized(self.params, {}, self.tag_dict())
        return self

    def tag_dict(self) -> dict[str, str]:
        return {t.key: t.value for t in self.tags}


def model_type_hints(cls: type) -> dict[str, Any]:
    """``typing.get_type_hints`` of a record of ``anachron.models`` (``BackfillStatus.request`` is a
    ``BackfillRequest``, named there only for type checkers: pydantic stays unloaded by ``import anachron``)."""
    import typing

    return typing.get_type_hints(cls, localns={"BackfillRequest": BackfillRequest})


# -- what was asked, as a backfill keeps it ------------------------------------------------------------------
def asked_json(request: BackfillRequest, created_by: str) -> dict[str, Any]:
    """What a backfill row keeps of its request (``BackfillStatus.request``, ``created_by``): the request's JSON,
    its params and config encoded as runs' are (dates and datetimes come back as such)."""
    from .params import encode_params

    data = request.model_dump(mode="json", by_alias=True, exclude={"params", "config"})
    data["params"] = encode_params(request.params)
    data["config"] = {name: encode_params(values) for name, values in request.config.items()}
    return {"asked": data, "created_by": created_by}


def asked_request(stored: Mapping[str, Any]) -> BackfillRequest | None:
    """The request a backfill row keeps (see ``asked_json``); for a row written before requests were kept, the
    request its frozen plan and rules say it was (``None`` if even that cannot be read)."""
    from .params import decode_params

    asked = stored.get("asked")
    try:
        data = dict(asked) if asked is not None else _asked_from_plan(stored)
        data["params"] = decode_params(data.get("params"))
        data["config"] = {name: decode_params(values) for name, values in (data.get("config") or {}).items()}
    except (KeyError, TypeError, ValueError):
        return None
    try:
        return BackfillRequest.model_validate(data)
    except ValidationError:  # kept under older rules: shown as it was kept
        return BackfillRequest.model_construct(**data)


def _asked_from_plan(stored: Mapping[str, Any]) -> dict[str, Any]:
    plan = stored["plan"]
    selection = plan["selection"]
    names = list(plan["workflows"])
    data: dict[str, Any] = {"workflow": names[0]} if len(names) == 1 else {"selection": names}
    kind = selection["kind"]
    if kind == "keys":
        data["partition_keys"] = list(selection["keys"])
    elif kind == "range":
        data["partition_range"] = _range_json(PartitionKeyRange.from_dict(selection["range"]))
    elif kind == "time":
        data.update({k: selection[k] for k in ("start", "end", "trigger_id", "cron", "timezone") if selection.get(k)})
    params = stored.get("params")
    data.update(strategy=plan.get("strategy"), reprocess=plan.get("reprocess", "all"),
                order=plan.get("order", "oldest_first"), failure_policy=stored.get("failure_policy", "continue"),
                max_concurrency=stored.get("max_concurrency", 4),
                tags=[{"key": k, "value": v} for k, v in (stored.get("tags") or {}).items()],
                params=params if isinstance(params, str) else None, config={
                    w: c for w, c in (stored.get("config") or {}).items() if isinstance(c, str)})
    return data


def describe_errors(errors: Sequence[Mapping[str, Any]]) -> str:
    """Pydantic's errors (a ``ValidationError``'s, or FastAPI's for a request body) as one line naming the
    field; the ``body`` FastAPI puts first in a location is left out."""
    err = dict(errors[0])
    if err.get("type") == "json_invalid":
        detail = (err.get("ctx") or {}).get("error")
        return "body: invalid JSON" + (f" ({detail})" if detail else "")
    loc = tuple(err.get("loc", ()))
    err["loc"] = loc[1:] if loc[:1] == ("body",) else loc
    if not err["loc"]:  # a rule across fields (its message names them), or the body is not an object
        cross_field = err.get("type") in ("value_error", "assertion_error")
        return _describe(err) if cross_field else "body: expected a JSON object"
    return _describe(err)


def _range_json(r: PartitionKeyRange) -> dict[str, Any]:
    data = r.to_dict()
    data.pop("kind", None)
    return data


def _message(exc: ValidationError) -> str:
    """The first error, as ``field: what is wrong`` in one line."""
    return _describe(exc.errors(include_url=False)[0])


def _describe(err: Mapping[str, Any]) -> str:
    loc = ".".join(str(p) for p in err["loc"])
    for union_member in ("KeyRange", "DimensionRanges", "list[str]", "function-before[_time(), str]"):
        loc = loc.replace(f".{union_member}", "")
    msg = str(err["msg"])
    for prefix in ("Value error, ", "Assertion failed, "):
        msg = msg.removeprefix(prefix)
    head = msg.split(":", 1)[0]
    if loc == "strategy" and head in ("batched", "per_dimension"):
        return f"strategy.{msg}"  # the strategy's own message names its part
    if not loc or head in ("selection", "start", "end", "tags", "strategy", loc):
        return msg
    text = msg[0].lower() + msg[1:]
    if err["type"] in ("literal_error", "string_type", "int_type", "dict_type", "list_type", "bool_type",
                       "extra_forbidden", "string_too_short", "model_attributes_type"):
        got = repr(err.get("input"))
        text += f", got {got if len(got) <= 120 else got[:117] + '...'}"
    return f"{loc}: {text}"


# -- Python values in their JSON forms (``BackfillRequest.from_python``) -------------------------------------------
def _as_is(value: Any) -> Any:
    return value


def _workflow_name(value: Any) -> Any:
    return value.name if isinstance(value, Workflow) else value


def _selection(value: Any) -> Any:
    if value is None:
        return None
    if isinstance(value, (str, Workflow)):
        value = [value]
    return [w.name if isinstance(w, Workflow) else w for w in value]


def _partition_keys(value: Any) -> list[Any]:
    if isinstance(value, str) or not isinstance(value, Sequence):
        raise RequestError("partition_keys: expected a list of partition keys")
    return list(value)


def _partition_range(value: Any) -> Any:
    if not isinstance(value, PartitionKeyRange):
        raise RequestError("partition_range: expected ac.PartitionKeyRange.single(...) or .multi(...)")
    return _range_json(value)


def _strategy(value: Any) -> Any:
    if not isinstance(value, BackfillStrategy):
        raise RequestError("strategy: expected ac.BackfillStrategy.multi_run(), .single_run(), "
                           ".per_dimension(...) or .batched(n)")
    return value


def _tags(value: Any) -> list[dict[str, Any]]:
    return [{"key": k, "value": v} for k, v in normalize_tags(value).items()]


def _mapping(name: str) -> Callable[[Any], dict[str, Any]]:
    def convert(value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise RequestError(f"{name}: expected a mapping")
        return {k: dict(v) if isinstance(v, Mapping) else v for k, v in value.items()}
    return convert


_PYTHON_FORMS: dict[str, Callable[[Any], Any]] = {
    "workflow": _workflow_name, "selection": _selection, "partition_keys": _partition_keys,
    "partition_range": _partition_range, "strategy": _strategy, "tags": _tags, "config": _mapping("config"),
    "params": _mapping("params"),
}
