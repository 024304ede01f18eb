"""The UI's forms: reading an urlencoded body, and a backfill form → a ``BackfillRequest``.

A form says what a person typed; the engine says whether it is right. This module only reshapes the
fields into the request's JSON form (SPEC §6) and leaves every check to ``BackfillRequest.parse`` and the
repository, whose messages name the field. The few messages of its own (a tag line without ``=``, params
that are not JSON) name their field the same way.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from ..requests import BackfillRequest, RequestError

#: The largest form body read (explicit key lists can be long; nothing else is).
MAX_FORM_BYTES = 1_000_000
#: The fields of the backfill form, in the order they are echoed from a preview to its launch.
BACKFILL_FIELDS = ("workflow", "schedule", "from_key", "to_key", "start", "end", "keys", "strategy", "batch_size",
                   "max_concurrency", "reprocess", "order", "failure_policy", "tags", "params", "launch_key")
_LAUNCH_KEY = re.compile(r"^[0-9a-f]{32}$")


class FormTooLarge(ValueError):
    pass


def parse_form(body: bytes) -> dict[str, str]:
    """An ``application/x-www-form-urlencoded`` body as a dict (the last value of a repeated field wins)."""
    if len(body) > MAX_FORM_BYTES:
        raise FormTooLarge(f"form: larger than {MAX_FORM_BYTES:,} bytes")
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError("form: not UTF-8") from None
    return dict(parse_qsl(text, keep_blank_values=True, max_num_fields=200))


@dataclass(frozen=True)
class BackfillForm:
    """The backfill form's fields as typed (blank ones are ``""``), for echoing back into the page."""

    values: Mapping[str, str]

    @classmethod
    def of(cls, form: Mapping[str, str]) -> BackfillForm:
        return cls({name: form.get(name, "").strip() if name != "keys" else form.get(name, "")
                    for name in BACKFILL_FIELDS})

    def get(self, name: str, default: str = "") -> str:
        return self.values.get(name) or default

    @property
    def schedule(self) -> str | None:
        return self.values.get("schedule") or None

    @property
    def launch_key(self) -> str | None:
        """A token a preview hands to its Launch button: launching twice (a double click, a resent form)
        creates one backfill (it becomes the idempotency key)."""
        key = self.values.get("launch_key", "")
        return key if _LAUNCH_KEY.match(key) else None

    def request(self, *, dry_run: bool) -> BackfillRequest:
        """The request this form describes; ``RequestError`` naming the field when it does not validate."""
        return BackfillRequest.parse(self.request_data(dry_run=dry_run))

    def request_data(self, *, dry_run: bool) -> dict[str, Any]:
        v = self.values
        data: dict[str, Any] = {"workflow": v.get("workflow") or None, "dry_run": dry_run}
        if v.get("from_key") or v.get("to_key"):
            if not (v.get("from_key") and v.get("to_key")):
                missing = "to" if v.get("from_key") else "from"
                raise RequestError(f"partition_range.{missing}: give both ends of the key range (or neither)")
            data["partition_range"] = {"from": v["from_key"], "to": v["to_key"]}
        if v.get("start"):
            data["start"] = v["start"]
        if v.get("end"):
            data["end"] = v["end"]
        keys = [k.strip() for k in re.split(r"[\n,]", v.get("keys", "")) if k.strip()]
        if keys:
            data["partition_keys"] = keys
        strategy = v.get("strategy")
        if strategy == "batched":
            data["strategy"] = {"batched": _integer(v.get("batch_size", ""), "strategy.batched")}
        elif strategy:
            data["strategy"] = strategy
        if v.get("max_concurrency"):
            data["max_concurrency"] = _integer(v["max_concurrency"], "max_concurrency")
        for name in ("reprocess", "order", "failure_policy"):
            if v.get(name):
                data[name] = v[name]
        data["tags"] = [{"key": k, "value": val} for k, val in tags(v.get("tags", ""))]
        if v.get("params"):
            data["params"] = _params(v["params"])
        if self.launch_key is not None and not dry_run:
            data["idempotency_key"] = f"ui:{self.launch_key}"
        return data

    def schedule_options(self) -> dict[str, Any]:
        """``repo.backfill_schedule``'s options from the form (a schedule backfill: start/end, no keys)."""
        v = self.values
        for name, label in (("from_key", "partition_range"), ("to_key", "partition_range"),
                            ("keys", "partition_keys")):
            if v.get(name, "").strip():
                raise RequestError(f"{label}: a schedule backfill replays ticks between start and end")
        options: dict[str, Any] = {"start": v.get("start") or None, "end": v.get("end") or None}
        data = self.request_data(dry_run=True)
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


def tags(text: str) -> list[tuple[str, str]]:
    """``key=value`` lines (blank lines skipped)."""
    found = []
    for line in text.splitlines():
        if not line.strip():
            continue
        key, sep, value = line.partition("=")
        if not sep or not key.strip():
            shown = line if len(line) <= 60 else line[:57] + "..."
            raise RequestError(f"tags: expected key=value on each line, got {shown!r}")
        found.append((key.strip(), value.strip()))
    return found


def _integer(text: str, field: str) -> Any:
    """An integer, or the text as typed for the request's own check to refuse (naming the field)."""
    try:
        return int(text.strip().replace("_", "").replace(",", ""))
    except ValueError:
        if not text.strip():
            raise RequestError(f"{field}: a number is required") from None
        raise RequestError(f"{field}: must be an integer, got {text.strip()!r}") from None


def _params(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RequestError(f"params: invalid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(value, dict):
        raise RequestError("params: expected a JSON object, e.g. {\"sleep\": 0.5}")
    return value
