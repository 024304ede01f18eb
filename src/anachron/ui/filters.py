"""The filters of the runs and backfills lists, read from a page's query string.

A filter is part of the URL (``/runs?workflow=etl&tag=team=ads&trigger=scheduled&since=2024-01-01``), so
a filtered list can be bookmarked and shared, and every link that filters (a tag chip, a workflow's
"Runs" button) is a plain link. Bad values are refused with a message naming the filter as the page labels
it; nothing here reads storage.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, tzinfo
from typing import Any

from ..models import ACTIVE_BACKFILL_STATUSES, ACTIVE_RUN_STATUSES, RUN_TRIGGERS

BACKFILL_TABS: dict[str, tuple[str, tuple[str, ...]]] = {
    "all": ("All", ()), "active": ("Active", ACTIVE_BACKFILL_STATUSES), "paused": ("Paused", ("paused",)),
    "completed": ("Completed", ("completed",)), "failed": ("Failed", ("failed",)),
    "canceled": ("Canceled", ("canceled",)),
}
RUN_TABS: dict[str, tuple[str, tuple[str, ...]]] = {
    "all": ("All", ()), "active": ("Running & queued", ACTIVE_RUN_STATUSES), "failed": ("Failed", ("failed",)),
    "success": ("Succeeded", ("success",)), "canceled": ("Canceled", ("canceled",)),
    "upstream_failed": ("Upstream failed", ("upstream_failed",)),
}
TRIGGER_LABELS = {"backfill": "backfill", "scheduled": "schedule", "manual": "manual"}
#: the longest text a filter field takes (a key or a tag is rarely longer)
MAX_FILTER = 1_000


class FilterError(ValueError):
    """A filter the page cannot apply; the message names it as the page labels it."""


def tag_pairs(given: Sequence[str] | None, label: str = "Tag") -> dict[str, str]:
    """``key=value`` texts as a mapping (the last value of a key repeated wins)."""
    tags: dict[str, str] = {}
    for item in given or ():
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise FilterError(f"{label}: expected key=value, got {_shown(item)}")
        tags[key.strip()] = value.strip()
    return tags


def _shown(text: str) -> str:
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _text(value: str | None, label: str) -> str | None:
    if value is None or not value.strip():
        return None
    if len(value) > MAX_FILTER:
        raise FilterError(f"{label}: longer than {MAX_FILTER:,} characters")
    return value.strip()


def day_or_time(text: str | None, label: str, zone: tzinfo, end: bool) -> datetime | None:
    """A date (``2024-01-13``: the day's start, or the next day's for an ``end``) or a date and time
    (``2024-01-13T09:30``), read in ``zone`` unless it says its offset."""
    if text is None:
        return None
    try:
        if len(text) == 10:
            day = date.fromisoformat(text)
            start = datetime.combine(day + timedelta(days=1) if end else day, time(0))
            return start.replace(tzinfo=zone)
        parsed = datetime.fromisoformat(text)
    except (ValueError, OverflowError):
        raise FilterError(f"{label}: expected a date (2024-01-13) or a date and time (2024-01-13T09:30), "
                          f"got {_shown(text)}") from None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=zone)


@dataclass(frozen=True)
class RunFilters:
    """What the runs list shows: a status tab and the filters beside it."""

    tab: str = "all"
    workflow: str | None = None
    backfill: str | None = None
    partition: str | None = None
    tags: Mapping[str, str] | None = None
    trigger: str | None = None
    since: str | None = None
    until: str | None = None

    @classmethod
    def read(cls, status: str, workflow: str | None, backfill: str | None, partition: str | None,
             tag: Sequence[str] | None, trigger: str | None, since: str | None, until: str | None) -> RunFilters:
        if status not in RUN_TABS:
            raise FilterError(f"Status: expected one of {', '.join(RUN_TABS)}, got {_shown(status)}")
        trigger = _text(trigger, "Trigger")
        if trigger is not None and trigger not in RUN_TRIGGERS:
            raise FilterError(f"Trigger: expected one of {', '.join(RUN_TRIGGERS)}, got {_shown(trigger)}")
        return cls(status, _text(workflow, "Workflow"), _text(backfill, "Backfill"), _text(partition, "Partition"),
                   tag_pairs([t for t in tag or () if t.strip()]) or None, trigger, _text(since, "From"),
                   _text(until, "To"))

    def query(self, zone: tzinfo) -> dict[str, Any]:
        """``repo.list_runs`` / ``count_runs`` keyword arguments."""
        return dict(workflow=self.workflow, status=RUN_TABS[self.tab][1], backfill_id=self.backfill,
                    tags=dict(self.tags or {}), partition_key=self.partition, trigger=self.trigger,
                    created_after=day_or_time(self.since, "From", zone, end=False),
                    created_before=day_or_time(self.until, "To", zone, end=True))

    def params(self, **changes: Any) -> dict[str, Any]:
        """The query-string parameters of this view (``None`` left out by ``render.query``), with changes."""
        values: dict[str, Any] = dict(status=None if self.tab == "all" else self.tab, workflow=self.workflow,
                                      backfill=self.backfill, partition=self.partition,
                                      tag=[f"{k}={v}" for k, v in (self.tags or {}).items()] or None,
                                      trigger=self.trigger, since=self.since, until=self.until)
        values.update(changes)
        return values

    @property
    def narrowed(self) -> bool:
        """Whether anything besides the status tab filters the list."""
        return any(v for k, v in self.params().items() if k != "status")


@dataclass(frozen=True)
class BackfillFilters:
    tab: str = "all"
    workflow: str | None = None
    tags: Mapping[str, str] | None = None

    @classmethod
    def read(cls, status: str, workflow: str | None, tag: Sequence[str] | None) -> BackfillFilters:
        if status not in BACKFILL_TABS:
            raise FilterError(f"Status: expected one of {', '.join(BACKFILL_TABS)}, got {_shown(status)}")
        return cls(status, _text(workflow, "Workflow"), tag_pairs([t for t in tag or () if t.strip()]) or None)

    def query(self) -> dict[str, Any]:
        return dict(status=BACKFILL_TABS[self.tab][1], workflow=self.workflow, tags=dict(self.tags or {}))

    def params(self, **changes: Any) -> dict[str, Any]:
        values: dict[str, Any] = dict(status=None if self.tab == "all" else self.tab, workflow=self.workflow,
                                      tag=[f"{k}={v}" for k, v in (self.tags or {}).items()] or None)
        values.update(changes)
        return values

    @property
    def narrowed(self) -> bool:
        return bool(self.workflow or self.tags)
