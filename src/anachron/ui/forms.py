"""The UI's forms: reading an urlencoded body, the backfill form → a ``BackfillRequest``, the run form, and
errors in the form's words.

A form says what a person typed; the engine says whether it is right. This module only reshapes the
fields into the request's JSON form (SPEC §6) and leaves every check to ``BackfillRequest.parse`` and the
repository, whose messages name the field by its API name (``partition_range.to``, ``max_concurrency``);
``in_form_words`` puts them in the form's labels ("To key", "Max concurrency") before they are shown.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from ..requests import BackfillRequest, RequestError
from .fields import EXTRA, PREFIX, ParamForm

#: The largest form body read (explicit key lists can be long; nothing else is).
MAX_FORM_BYTES = 1_000_000
#: The fields of the backfill form, in the order they are echoed from a preview to its launch (then the
#: parameter fields ``p.<name>`` and the per-dimension fields ``dim.<name>.from|to|keys``).
BACKFILL_FIELDS = ("workflow", "include", "schedule", "from_key", "to_key", "start", "end", "keys", "strategy",
                   "batch_size", "max_concurrency", "reprocess", "order", "failure_policy", "tags", EXTRA, "launch_key")
RUN_FIELDS = ("workflow", "partition_key", "tags", EXTRA, "launch_key")
DIM = "dim."
_LAUNCH_KEY = re.compile(r"^[0-9a-f]{32}$")

#: API field → the form's label for it
LABELS = {
    "partition_range.from": "From key", "partition_range.to": "To key", "partition_range": "Key range",
    "partition_keys": "Keys", "partition_key": "Partition", "start": "Start time", "end": "End time",
    "strategy.batched": "Batch size", "strategy": "Strategy", "max_concurrency": "Max concurrency",
    "reprocess": "Reprocess", "order": "Order", "failure_policy": "On failure", "tags": "Tags",
    "params": "Parameters", "inputs": "Inputs", "labels": "Labels", "trigger_id": "Schedule",
    "selection": "Partitions", "workflow": "Workflow", "idempotency_key": "Launch", "include": "Which workflows",
}
#: the engine's sentences about several fields, as the form says them
PHRASES = {
    "give exactly one of partition_keys, partition_range or start/end": "give a key range, a list of keys or a "
                                                                         "start and end time, not several",
    "a time range needs a start": "give a start time with an end time",
}
_FIELD = re.compile(r"^(?P<field>[A-Za-z_][\w.]*(?:\[[^\]]+\])*): ")
_PARAM = re.compile(r"^(?:params|inputs)\[(?P<q>['\"])(?P<name>.+?)(?P=q)\](?P<rest>.*)$")
_DIMENSION = re.compile(r"^partition_range\.dimensions\.(?P<name>.+?)(?:\.(?P<end>from|to))?$")


class FormTooLarge(ValueError):
    pass


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict: the last value of a repeated field wins,
    except a list (``dim.<name>.keys``, checkboxes), whose values are joined by newlines."""
    if len(body) > MAX_FORM_BYTES:
        raise FormTooLarge(f"form: larger than {MAX_FORM_BYTES:,} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("form: not UTF-8") from None
    found: dict[str, str] = {}
    for name, value in parse_qsl(text, keep_blank_values=True, max_num_fields=1000):
        if name.startswith(DIM) and name.endswith(".keys") and found.get(name):
            found[name] += "\n" + value
        else:
            found[name] = value
    return found


def in_form_words(message: str) -> str:
    """An engine or request message with the API's field names replaced by the form's labels:
    ``partition_range.to: give both ends`` → ``To key: give both ends``."""
    for api, words in PHRASES.items():
        message = message.replace(api, words)
    match = _FIELD.match(message)
    if match is None:
        return message
    field, rest = match["field"], message[match.end():]
    param = _PARAM.match(field)
    if param is not None:
        return f"Parameter {param['name']}{param['rest']}: {rest}"
    dimension = _DIMENSION.match(field)
    if dimension is not None:
        end = f" ({dimension['end']})" if dimension["end"] else ""
        return f"Dimension {dimension['name']}{end}: {rest}"
    label = LABELS.get(field) or LABELS.get(field.split(".", 1)[0])
    return f"{label}: {rest}" if label else message


@dataclass(frozen=True)
class BackfillForm:
    """The backfill form's fields as typed (blank ones are ``""``), for echoing back into the page."""

    values: Mapping[str, str]

    @classmethod
    def of(cls, form: Mapping[str, str]) -> BackfillForm:
        values = {name: form.get(name, "").strip() if name not in ("keys", EXTRA) else form.get(name, "")
                  for name in BACKFILL_FIELDS}
        values.update({name: value.strip() for name, value in form.items()
                       if name.startswith((PREFIX, DIM)) and len(name) <= 300})
        return cls(values)

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name) or default

    def chosen(self, dimension: str, key: str) -> bool:
        """Whether ``key`` is ticked among the keys of ``dimension``."""
        return key in re.split(r"[\n,]", self.values.get(f"{DIM}{dimension}.keys", ""))

    @property
    def schedule(self) -> str | None:
        return self.values.get("schedule") or None

    @property
    def launch_key(self) -> str | None:
        """A token a preview hands to its Launch button: launching twice (a double click, a resent form)
        creates one backfill (it becomes the idempotency key)."""
        key = self.values.get("launch_key", "")
        return key if _LAUNCH_KEY.match(key) else None

    @property
    def echo(self) -> dict[str, str]:
        """The fields a preview sends back unchanged with its Launch button (blank ones left out)."""
        return {name: value.replace("\n", ",") if name.startswith(DIM) else value
                for name, value in self.values.items() if value and name != "launch_key"}

    def request(self, params: ParamForm, *, dry_run: bool) -> BackfillRequest:
        """The request this form describes; ``RequestError`` naming the field when it does not validate."""
        return BackfillRequest.parse(self.request_data(params, dry_run=dry_run))

    def request_data(self, params: ParamForm, *, dry_run: bool) -> dict[str, Any]:
        v = self.values
        data: dict[str, Any] = {"workflow": v.get("workflow") or None, "dry_run": dry_run}
        if v.get("include") and v["include"] != "selection":  # a graph backfill: with downstream or upstream
            data["include"] = v["include"]
        if v.get("from_key") or v.get("to_key"):
            if not (v.get("from_key") and v.get("to_key")):
                missing = "To key" if v.get("from_key") else "From key"
                raise RequestError(f"{missing}: give both ends of the key range (or neither)")
            data["partition_range"] = {"from": v["from_key"], "to": v["to_key"]}
        dimensions = self.dimensions()
        if dimensions:
            if "partition_range" in data:
                raise RequestError("Key range: give the range per dimension or as keys, not both")
            data["partition_range"] = {"dimensions": dimensions}
        if v.get("start"):
            data["start"] = v["start"]
        if v.get("end"):
            data["end"] = v["end"]
        keys = [k.strip() for k in re.split(r"[\n,]", v.get("keys", "")) if k.strip()]
        if keys:
            data["partition_keys"] = keys
        strategy = v.get("strategy")
        if strategy == "batched":
            data["strategy"] = {"batched": _integer(v.get("batch_size", ""), "Batch size")}
        elif strategy:
            data["strategy"] = strategy
        if v.get("max_concurrency"):
            data["max_concurrency"] = _integer(v["max_concurrency"], "Max concurrency")
        for name in ("reprocess", "order", "failure_policy"):
            if v.get(name):
                data[name] = v[name]
        data["tags"] = [{"key": k, "value": val} for k, val in tags(v.get("tags", ""))]
        given = params.values(v)
        if given:
            data["params"] = given
        if self.launch_key is not None and not dry_run:
            data["idempotency_key"] = f"ui:{self.launch_key}"
        return data

    def dimensions(self) -> dict[str, Any]:
        """``partition_range.dimensions`` from the per-dimension fields: a range (``from`` and ``to``) or
        the keys ticked or listed; a dimension left blank is left out (all its keys)."""
        names = list(dict.fromkeys(name[len(DIM):].rsplit(".", 1)[0] for name in self.values
                                   if name.startswith(DIM)))
        found: dict[str, Any] = {}
        for name in names:
            first, last = self.get(f"{DIM}{name}.from"), self.get(f"{DIM}{name}.to")
            listed = [k.strip() for k in re.split(r"[\n,]", self.get(f"{DIM}{name}.keys")) if k.strip()]
            if listed and (first or last):
                raise RequestError(f"Dimension {name}: give a range or a list of keys, not both")
            if listed:
                found[name] = list(dict.fromkeys(listed))
            elif first or last:
                if not (first and last):
                    raise RequestError(f"Dimension {name}: give both ends of its range (or neither)")
                found[name] = {"from": first, "to": last}
        return found

    def schedule_options(self, params: ParamForm) -> dict[str, Any]:
        """``repo.backfill_schedule``'s options from the form (a schedule backfill: start/end, no keys;
        its parameters are the schedule's inputs and its tags its labels, as in Kestra)."""
        v = self.values
        for name, label in (("from_key", "From key"), ("to_key", "To key"), ("keys", "Keys")):
            if v.get(name, "").strip():
                raise RequestError(f"{label}: a schedule backfill replays ticks between start and end")
        if self.dimensions():
            raise RequestError("Key range: a schedule backfill replays ticks between start and end")
        options: dict[str, Any] = {"start": v.get("start") or None, "end": v.get("end") or None}
        data = self.request_data(params, dry_run=True)
        for name in ("strategy", "max_concurrency", "reprocess", "order", "failure_policy"):
            if name in data:
                options[name] = data[name]
        if "strategy" in options:
            from ..strategies import BackfillStrategy

            options["strategy"] = BackfillStrategy.from_dict(options["strategy"])
        options["labels"] = dict(tags(v.get("tags", "")))
        options["inputs"] = data.get("params")
        if self.launch_key is not None:
            options["idempotency_key"] = f"ui:{self.launch_key}"
        return options


@dataclass(frozen=True)
class RunForm:
    """The "Run now" form: a partition (for a partitioned workflow), parameters and tags."""

    values: Mapping[str, str]

    @classmethod
    def of(cls, form: Mapping[str, str]) -> RunForm:
        values = {name: form.get(name, "").strip() if name != EXTRA else form.get(name, "") for name in RUN_FIELDS}
        values.update({name: value.strip() for name, value in form.items()
                       if name.startswith(PREFIX) and len(name) <= 300})
        return cls(values)

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name) or default

    @property
    def idempotency_key(self) -> str | None:
        """The form's token (one per rendering of the form): submitting it twice makes one run."""
        key = self.values.get("launch_key", "")
        return f"ui:{key}" if _LAUNCH_KEY.match(key) else None


def tags(text: str) -> list[tuple[str, str]]:
    """``key=value`` lines (blank lines skipped)."""
    found = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            shown = line if len(line) <= 60 else line[:57] + "..."
            raise RequestError(f"Tags: expected key=value on each line, got {shown!r}")
        found.append((key.strip(), value.strip()))
    return found


def _integer(text: str, label: str) -> Any:
    try:
        return int(text.strip().replace("_", "").replace(",", ""))
    except ValueError:
        if not text.strip():
            raise RequestError(f"{label}: a number is required") from None
        raise RequestError(f"{label}: must be an integer, got {text.strip()!r}") from None
