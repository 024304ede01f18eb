"""Cron schedules: the ``Schedule`` definition and pure tick math (cronsim, DST-correct).

``Schedule.cron`` takes a 5-field cron expression (minute hour day month weekday) or a macro
(``@daily``, ``@hourly``...). It keeps what the user wrote, for display; ``cron_expression`` is
the 5-field form that is evaluated, so code that needs cron semantics should use it (or
``ticks``), never ``cron`` directly.

Ticks are evaluated in the schedule's timezone as classic cron (Debian's) does it, which is what
cronsim implements: on a spring-forward day a job whose time does not exist runs at the first minute
after the gap; on a fall-back day a job at a fixed time runs once (the first occurrence), while a job
with a wildcard or stepped hour runs in both repeated hours.

``plan_ticks`` is the daemon's decision for one schedule — which ticks to run now and how far the
schedule's cursor moves — as a pure function of the schedule, its cursor (the last tick evaluated) and
an explicit ``now``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cronsim import CronSim

from .partitions.time_grid import EPOCH, check_cron, expand_cron, make_grid

RECOVER_MISSED = ("all", "last", "none")
OVERLAP = ("skip", "buffer", "allow")
#: A tick evaluated at most this late is on time; older ones that were not evaluated are missed ticks.
MISFIRE_GRACE = timedelta(seconds=60)
#: The most ticks of one schedule run in one evaluation (recovering a long outage goes on at once after).
MAX_TICKS_PER_EVALUATION = 1000
SCHEDULE_KEY_PREFIX = "schedule:"
#: Ticks exist between these instants: within two days of the calendar's edge (years 1 and 9999) the grid's
#: arithmetic (a day before, a timezone's offset) would leave Python's datetime.
EARLIEST_TICK = datetime(1, 1, 3, tzinfo=timezone.utc)
LATEST_TICK = datetime(9999, 12, 29, tzinfo=timezone.utc)


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
        check_cron(self.cron, "Schedule.cron")
        if self.recover_missed not in RECOVER_MISSED:
            raise ValueError(f"Schedule.recover_missed: expected one of {RECOVER_MISSED}, got {self.recover_missed!r}")
        if self.overlap not in OVERLAP:
            raise ValueError(f"Schedule.overlap: expected one of {OVERLAP}, got {self.overlap!r}")
        if not self.id or not isinstance(self.id, str):
            raise ValueError("Schedule.id: must be a non-empty string")

    @property
    def cron_expression(self) -> str:
        """The 5-field cron expression that is evaluated (a macro such as ``@daily`` expanded)."""
        return expand_cron(self.cron).strip()

    def ticks(self, start: datetime, end: datetime) -> Iterator[datetime]:
        """Every tick in ``[start, end]`` (inclusive), as aware UTC datetimes, lazily."""
        for run in self._tick_runs(start, end):
            for us in run:
                yield EPOCH + timedelta(microseconds=us)

    def tick_keys(self, start: datetime, end: datetime) -> list[str]:
        """``tick_key`` of every tick in ``[start, end]``, computed in bulk: the partition grids' arithmetic
        for regular crons (100,000 minute ticks in a fraction of a second), cronsim for the rest."""
        keys: list[str] = []
        for run in self._tick_runs(start, end):
            if isinstance(run, range) and run.step % 1_000_000 == 0 and len(run) > 1:
                keys.extend(_utc_keys(run))
            else:
                keys.extend(tick_key(EPOCH + timedelta(microseconds=us)) for us in run)
        return keys

    def _tick_runs(self, start: datetime, end: datetime) -> list[Sequence[int]]:
        start, end = start.astimezone(timezone.utc), end.astimezone(timezone.utc)
        start, end = max(start, EARLIEST_TICK), min(end, LATEST_TICK)  # the calendar's edge: no tick there
        if end < start:
            return []
        grid = make_grid(self.cron_expression, zone(self.timezone), start, end)
        n = grid.count(end, False)
        return list(grid.tick_runs(0, n)) if n > 0 else []


    def next_tick(self, after: datetime) -> datetime | None:
        """The first tick strictly after ``after`` (aware UTC), or ``None`` when there is none."""
        return _next_tick(self.cron_expression, self.timezone, after.replace(microsecond=0), False)

    def latest_tick(self, at: datetime) -> datetime | None:
        """The last tick at or before ``at`` (aware UTC), or ``None``."""
        return _next_tick(self.cron_expression, self.timezone, at.replace(microsecond=0) + timedelta(seconds=1), True)


@functools.lru_cache(maxsize=8192)
def _next_tick(expression: str, tz: str, start: datetime, reverse: bool) -> datetime | None:
    """The first tick after (or, ``reverse``, before) ``start``. Cached: many schedules share a cron and a
    timezone, and a daemon asks about the same instants for all of them (the tick that just passed)."""
    try:
        return next(CronSim(expression, start.astimezone(zone(tz)), reverse=reverse)).astimezone(timezone.utc)
    except StopIteration:
        return None


def _utc_keys(run: range) -> Iterator[str]:
    """``tick_key`` of evenly spaced whole-second instants (microseconds), a day's text built once."""
    day_us = 86_400_000_000
    prefix_day, prefix = -1, ""
    for us in run:
        day, rest = divmod(us, day_us)
        if day != prefix_day:
            prefix_day, prefix = day, (EPOCH + timedelta(days=day)).strftime("%Y-%m-%dT")
        seconds = rest // 1_000_000
        yield f"{prefix}{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}+00:00"


def tick_key(tick: datetime) -> str:
    """The text form of a schedule tick, used where a tick stands in for a partition key."""
    return tick.astimezone(timezone.utc).isoformat()


def run_key(schedule_id: str, tick: datetime) -> str:
    """The idempotency key of the run of one tick — ``schedule:<id>:<tick>``, unique per workflow — shared
    by the daemon and by schedule backfills, so a tick runs once whoever gets to it first."""
    return run_key_prefix(schedule_id) + tick_key(tick)


def run_key_prefix(schedule_id: str) -> str:
    """What the idempotency keys of one schedule's tick runs start with."""
    return f"{SCHEDULE_KEY_PREFIX}{schedule_id}:"


def schedule_of_key(idempotency_key: str | None) -> str | None:
    """The schedule id in a tick run's idempotency key (``None`` for any other key)."""
    if not idempotency_key or not idempotency_key.startswith(SCHEDULE_KEY_PREFIX):
        return None
    rest = idempotency_key[len(SCHEDULE_KEY_PREFIX):]
    # "<id>:<tick>", and a tick (``tick_key``) always has the length of "2000-01-01T00:00:00+00:00"
    if len(rest) <= _TICK_KEY_LENGTH or rest[-_TICK_KEY_LENGTH - 1] != ":":
        return None
    return rest[:-_TICK_KEY_LENGTH - 1]


_TICK_KEY_LENGTH = len("2000-01-01T00:00:00+00:00")


@dataclass(frozen=True)
class TickPlan:
    """What one evaluation of a schedule decided.

    ``fire``: ticks to run, oldest first. ``skipped``: the first and last tick passed over because of
    ``recover_missed`` (``None`` when none was). ``cursor``: the last tick evaluated, to store. ``due_again``:
    when to evaluate next — the next tick, or at once (``now``) when a long recovery is not finished."""

    fire: tuple[datetime, ...]
    skipped: tuple[datetime, datetime] | None
    cursor: datetime
    due_again: datetime | None


def plan_ticks(schedule: Schedule, cursor: datetime | None, now: datetime, *,
               limit: int = MAX_TICKS_PER_EVALUATION, grace: timedelta = MISFIRE_GRACE) -> TickPlan:
    """The ticks of ``schedule`` to run at ``now``, given ``cursor``, the last tick already evaluated.

    A schedule never evaluated before (``cursor`` is ``None``) starts at ``now``: nothing before it is due.
    Ticks in ``(cursor, now]`` are due. When the latest of them is at most ``grace`` old and the only one,
    it is simply on time. Older ones were missed (no daemon evaluated them) and follow
    ``recover_missed``: ``all`` runs every one, oldest first (at most ``limit`` per evaluation; the rest
    at once after), ``last`` runs only the latest due tick, ``none`` runs the latest only if it is on time.
    """
    if cursor is None:
        return TickPlan((), None, now, schedule.next_tick(now))
    first = schedule.next_tick(cursor)
    if first is None or first > now:
        return TickPlan((), None, cursor, first)
    if schedule.recover_missed == "all":
        fire: list[datetime] = []
        tick: datetime | None = first
        while tick is not None and tick <= now and len(fire) < limit:
            fire.append(tick)
            tick = schedule.next_tick(tick)
        due_again = now if tick is not None and tick <= now else tick
        return TickPlan(tuple(fire), None, fire[-1], due_again)
    latest = schedule.latest_tick(now)
    assert latest is not None and latest >= first  # first <= now is a tick, so one exists at or before now
    on_time = now - latest <= grace
    run = (latest,) if schedule.recover_missed == "last" or on_time else ()
    skipped_last = latest if not run else schedule.latest_tick(latest - timedelta(seconds=1))
    skipped = (first, skipped_last) if skipped_last is not None and skipped_last >= first else None
    return TickPlan(run, skipped, latest, schedule.next_tick(latest))


def overlap_allows(overlap: str, previous_active: bool) -> bool:
    """Whether a due tick runs while a run of an earlier tick of the same schedule is still active:
    ``skip`` passes over it; ``buffer`` and ``allow`` run it (``buffer`` runs wait in line for the active
    one — the queue runs at most one run per buffered schedule at a time). Ticks that fall due together (the
    ticks ``recover_missed="all"`` recovers after downtime) all run under ``skip`` too, but one at a time,
    oldest first: ``skip``'s runs wait in line like ``buffer``'s, so a schedule never has two runs executing."""
    return overlap != "skip" or not previous_active
