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

from collections.abc import Iterable, Mapping, Sequence
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
    partition_keys: list[str] | None = None
    partition_range: KeyRange | DimensionRanges | None = None
    start: str | None = None
    end: str | None = None
    trigger_id: str | None = None
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
    def from_python(cls, workflow: str | Workflow | None = None,
                    selection: Sequence[str | Workflow] | str | Workflow | None = None,
                    partition_keys: Sequence[str] | None = None, partition_range: PartitionKeyRange | None = None,
                    start: Any = None, end: Any = None, strategy: BackfillStrategy | None = None,
                    failure_policy: str = "continue", max_concurrency: int = 4,
                    tags: Mapping[str, Any] | Iterable[tuple[str, Any]] | None = None,
                    config: Mapping[str, Mapping[str, Any]] | None = None, params: Mapping[str, Any] | None = None,
                    reprocess: str = "all", order: str = "oldest_first", idempotency_key: str | None = None,
                    dry_run: bool = False, trigger_id: str | None = None) -> BackfillRequest:
        """The request ``repo.backfill(...)`` describes (workflow objects, ``PartitionKeyRange`` and
        ``BackfillStrategy`` accepted as well as their JSON forms)."""
        if strategy is not None and not isinstance(strategy, BackfillStrategy):
            raise RequestError("strategy: expected ac.BackfillStrategy.multi_run(), .single_run(), "
                               ".per_dimension(...) or .batched(n)")
        if partition_range is not None and not isinstance(partition_range, PartitionKeyRange):
            raise RequestError("partition_range: expected ac.PartitionKeyRange.single(...) or .multi(...)")
        if partition_keys is not None and (isinstance(partition_keys, str) or not isinstance(partition_keys, Sequence)):
            raise RequestError("partition_keys: expected a list of partition keys")
        if isinstance(selection, (str, Workflow)):
            selection = [selection]
        for field_name, value in (("config", config), ("params", params)):
            if value is not None and not isinstance(value, Mapping):
                raise RequestError(f"{field_name}: expected a mapping")
        data: dict[str, Any] = {
            "workflow": workflow.name if isinstance(workflow, Workflow) else workflow,
            "selection": None if selection is None else [w.name if isinstance(w, Workflow) else w for w in selection],
            "partition_keys": None if partition_keys is None else list(partition_keys),
            "partition_range": None if partition_range is None else _range_json(partition_range),
            "start": start, "end": end, "trigger_id": trigger_id, "strategy": strategy,
            "failure_policy": failure_policy, "max_concurrency": max_concurrency,
            "tags": [{"key": k, "value": v} for k, v in normalize_tags(tags).items()],
            "config": {k: dict(v) if isinstance(v, Mapping) else v for k, v in (config or {}).items()},
            "params": dict(params or {}), "reprocess": reprocess, "order": order,
            "idempotency_key": idempotency_key, "dry_run": dry_run,
        }
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
        return cls.from_python(workflow, start=start, end=end, params=inputs, tags=tags, dry_run=dry_run,
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

    @model_validator(mode="before")
    @classmethod
    def _text(cls, data: Any) -> Any:
        return _storable(data)

    @field_validator("idempotency_key")
    @classmethod
    def _idempotency_key(cls, value: str | None) -> str | None:
        return BackfillRequest._idempotency_key(value)

    @model_validator(mode="after")
    def _sizes(self) -> RunRequest:
        _sized(self.params, {}, self.tag_dict())
        return self

    def tag_dict(self) -> dict[str, str]:
        return {t.key: t.value for t in self.tags}


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
