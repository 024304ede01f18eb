"""Cron schedules: the ``Schedule`` definition and pure tick math (cronsim, DST-correct)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterator
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim, CronSimError

RECOVER_MISSED = ("all", "last", "none")
OVERLAP = ("skip", "buffer", "allow")


def zone(name: str, field: str = "timezone") -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(f"{field}: unknown timezone {name!r}") from None


@dataclass(frozen=True)
class Schedule:
    """A cron trigger of a workflow."""

    cron: str
    timezone: str = "UTC"
    recover_missed: str = "all"
    overlap: str = "skip"
    id: str = "schedule"

    def __post_init__(self) -> None:
        zone(self.timezone)
        try:
            CronSim(self.cron, datetime(2000, 1, 1))
        except (CronSimError, TypeError) as exc:
            raise ValueError(f"Schedule.cron: {self.cron!r} is not a cron expression ({exc})") from None
        if self.recover_missed not in RECOVER_MISSED:
            raise ValueError(f"Schedule.recover_missed: expected one of {RECOVER_MISSED}, got {self.recover_missed!r}")
        if self.overlap not in OVERLAP:
            raise ValueError(f"Schedule.overlap: expected one of {OVERLAP}, got {self.overlap!r}")
        if not self.id or not isinstance(self.id, str):
            raise ValueError("Schedule.id: must be a non-empty string")

    def ticks(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Every tick in ``[start, end]`` (inclusive), as aware UTC datetimes, lazily."""
        tz = zone(self.timezone)
        local_start = start.astimezone(tz)
        # cronsim yields ticks strictly after its start; step back one second to include `start`.
        it = CronSim(self.cron, local_start.replace(microsecond=0) - timedelta(seconds=1))
        for tick in it:
            tick_utc = tick.astimezone(timezone.utc)
            if tick_utc < start:
                continue
            if tick_utc > end:
                return
            yield tick_utc


def tick_key(tick: datetime) -> str:
    """The text form of a schedule tick, used where a tick stands in for a partition key."""
    return tick.astimezone(timezone.utc).isoformat()
