"""What the pages show, computed from the repository's records: progress, rate, ETA, times and statuses.

Pure functions of their inputs and an explicit ``now``; the routes read the clock once per request.

**Rate.** A page is stateless, so a backfill's live fragment carries its last sample (time, partitions
done, rate) in the URL it polls next (``Sample``). The rate shown is then an exponential average of the
rate between polls, which follows a backfill that was paused, resumed or slowed down; without a sample
(the first render) it is the average since the backfill was created. Only ``in_progress`` backfills have
a rate and an ETA; a finished one shows its overall average.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone, tzinfo
from typing import NamedTuple

from ..estimate import approx_duration
from ..models import BackfillStatus, Run

#: A glyph per status, shown beside its label so a status never reads by colour alone.
GLYPHS = {
    "success": "✓", "completed": "✓", "failed": "✕", "canceled": "⊘", "running": "▶", "in_progress": "▶",
    "queued": "◷", "requested": "◷", "paused": "Ⅱ", "active": "●", "missing": "○", "pending": "◌", "dry_run": "◇",
    "partial": "◐", "upstream_failed": "↯",
}
LABELS = {"in_progress": "in progress", "dry_run": "dry run", "success": "succeeded"}
#: Statuses whose page keeps polling for changes.
ACTIVE = frozenset({"queued", "running", "requested", "in_progress", "paused"})
#: How much of the new sample the smoothed rate takes.
SMOOTHING = 0.5


def glyph(status: str) -> str:
    return GLYPHS.get(status, "•")


def label(status: str) -> str:
    return LABELS.get(status, status.replace("_", " "))


def is_active(status: str) -> bool:
    return status in ACTIVE


class Sample(NamedTuple):
    """One reading of a backfill's progress: when (epoch seconds), partitions done, the rate then."""

    at: float
    done: int
    rate: float | None

    def encode(self) -> str:
        return f"{self.at:.3f}:{self.done}:{'' if self.rate is None else f'{self.rate:.4g}'}"

    @classmethod
    def decode(cls, text: str | None) -> Sample | None:
        """The sample a fragment's URL carries; ``None`` for anything malformed (it is only a hint)."""
        if not text or len(text) > 80:
            return None
        parts = text.split(":")
        if len(parts) != 3:
            return None
        try:
            at, done = float(parts[0]), int(parts[1])
            rate = float(parts[2]) if parts[2] else None
        except ValueError:
            return None
        if not (math.isfinite(at) and done >= 0) or (rate is not None and not (math.isfinite(rate) and rate >= 0)):
            return None
        return cls(at, done, rate)


@dataclass(frozen=True)
class Tally:
    """Partitions by how they ended, as the bars and counters show them. *Done* partitions ran to an end, or
    never will because a key they need failed: succeeded, failed, upstream failed. Canceled partitions are not
    done (a backfill canceled at 46% says 46%, with its canceled partitions beside), and not left to do either."""

    total: int
    succeeded: int
    #: ran and failed
    failed: int
    #: never ran: a key they need in the same (graph) backfill failed or was canceled (SPEC §8)
    upstream_failed: int
    canceled: int

    @property
    def done(self) -> int:
        return self.succeeded + self.failed + self.upstream_failed

    @property
    def remaining(self) -> int:
        """Partitions still to run (neither done nor canceled)."""
        return max(0, self.total - self.done - self.canceled)

    def share(self, part: int) -> float:
        """``part`` as a percentage of the total (for bar widths), 0 for an empty backfill."""
        return 100.0 * part / self.total if self.total else 0.0

    @property
    def percent(self) -> float:
        return 100.0 if not self.total else self.share(self.done)


@dataclass(frozen=True)
class Progress(Tally):
    """A backfill's progress as the bar, the counters, the rate and the ETA show it."""

    running_runs: int = 0
    queued_runs: int = 0
    #: partitions per second (``None``: not known yet, or not moving: paused, requested)
    rate: float | None = None
    #: seconds until done at ``rate`` (``None`` when unknown or finished)
    eta: float | None = None
    #: seconds since creation (until the end, for a finished backfill)
    elapsed: float | None = None
    #: the sample the next poll carries
    sample: Sample = Sample(0.0, 0, None)


def upstream_failed(st: BackfillStatus) -> int:
    """Partitions of the backfill that ended ``upstream_failed`` (counted in its ``failed_partitions``)."""
    counts = st.workflows.values() if isinstance(st.workflows, Mapping) else ()  # (a list of names in old records)
    return sum(c.get("upstream_failed", 0) for c in counts)


def workflow_tallies(st: BackfillStatus) -> list[tuple[str, Tally]]:
    """Each workflow's partitions of a graph backfill, in plan order (upstreams first), from ``st.workflows``."""
    counts = st.workflows if isinstance(st.workflows, Mapping) else {}
    return [(name, Tally(c.get("total", 0), c.get("completed", 0), c.get("failed", 0), c.get("upstream_failed", 0),
                         c.get("canceled", 0))) for name, c in counts.items()]


def progress(st: BackfillStatus, now: datetime, previous: Sample | None = None) -> Progress:
    done = st.completed_partitions + st.failed_partitions
    at = now.timestamp()
    elapsed = None
    if st.created_at is not None:
        elapsed = max(0.0, ((st.ended_at or now) - st.created_at).total_seconds())
    average = done / elapsed if elapsed else None
    rate: float | None
    if st.is_finished:
        rate = average
    elif st.status != "in_progress":
        rate = None
    elif previous is not None and 0.5 <= at - previous.at <= 60 and done >= previous.done:
        current = (done - previous.done) / (at - previous.at)
        rate = current if previous.rate is None else SMOOTHING * current + (1 - SMOOTHING) * previous.rate
    else:
        rate = average
    if previous is not None and at - previous.at < 0.5 and st.status == "in_progress":
        # polled again too soon to measure: keep the last reading (and its time) for the next poll
        sample, rate = previous, previous.rate if previous.rate is not None else rate
    else:
        sample = Sample(at, done, rate)
    remaining = max(0, st.total_partitions - done - st.canceled_partitions)
    eta = remaining / rate if rate and not st.is_finished and st.status == "in_progress" else None
    blocked = min(upstream_failed(st), st.failed_partitions)
    return Progress(st.total_partitions, st.completed_partitions, st.failed_partitions - blocked, blocked,
                    st.canceled_partitions, st.running_runs, st.queued_runs, rate, eta, elapsed, sample)


def outcome(st: BackfillStatus) -> tuple[str, str]:
    """The status a backfill shows (a CSS key and its words): its own, except for a ``failed`` backfill in
    which every partition ran and some succeeded — a ``continue`` backfill with a few failures says
    "completed with 8 failures" (``partial``), not the same as one where everything failed. Partitions an
    upstream failure kept from running are said apart: "completed with 1 failure, 24 upstream failed"."""
    if st.status == "failed" and st.completed_partitions and st.failed_partitions and not st.canceled_partitions:
        blocked = min(upstream_failed(st), st.failed_partitions)
        n = st.failed_partitions - blocked
        words = f"completed with {n:,} failure{'' if n == 1 else 's'}" if n else "completed"
        return "partial", f"{words}, {blocked:,} upstream failed" if blocked else words
    return st.status, label(st.status)


# -- formatting -----------------------------------------------------------------------------------------
def number(n: int | float | None) -> str:
    if n is None:
        return "–"
    return f"{n:,}" if isinstance(n, int) else f"{n:,.1f}"


def rate_text(rate: float | None) -> str:
    """``850 /s``, ``12.5 /s``, ``0.40 /s``, ``3.0 /min``."""
    if rate is None:
        return "–"
    if rate >= 100:
        return f"{rate:,.0f} /s"
    if rate >= 10:
        return f"{rate:.1f} /s"
    if rate >= 0.1:
        return f"{rate:.2f} /s"
    if rate > 0:
        return f"{rate * 60:.1f} /min"
    return "0 /s"


def duration(seconds: float | None) -> str:
    """``420 ms``, ``3.2 s``, ``4 min 12 s``, ``2 h 05 min``, ``3 d 4 h``."""
    if seconds is None:
        return "–"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    minutes, secs = divmod(whole, 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    if hours < 48:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


def approx(seconds: float | None) -> str:
    """An estimate, rounded as an estimate deserves: ``under 1 s``, ``~40 s``, ``~12 min``, ``~3.5 h``."""
    return "unknown" if seconds is None else approx_duration(seconds)


def ago(when: datetime | None, now: datetime) -> str:
    """``just now``, ``12 s ago``, ``5 min ago``, ``3 h ago``, ``2 d ago`` (``in 5 min`` for the future)."""
    if when is None:
        return "–"
    delta = (now - _aware(when)).total_seconds()
    future = delta < 0
    delta = abs(delta)
    if delta < 2:
        return "just now"
    if delta < 60:
        text = f"{delta:.0f} s"
    elif delta < 3600:
        text = f"{delta // 60:.0f} min"
    elif delta < 86400 * 2:
        text = f"{delta // 3600:.0f} h"
    else:
        text = f"{delta // 86400:.0f} d"
    return f"in {text}" if future else f"{text} ago"


def stamp(when: datetime | None, zone: tzinfo = timezone.utc) -> str:
    """The exact time in ``zone`` (the page's time zone): ``2024-01-13 09:05:00 CET``."""
    if when is None:
        return ""
    return _aware(when).astimezone(zone).strftime("%Y-%m-%d %H:%M:%S %Z")


def clock(when: datetime, zone: tzinfo = timezone.utc) -> str:
    """The time of day to the millisecond in ``zone`` (a log line's): ``09:05:00.123``."""
    return _aware(when).astimezone(zone).strftime("%H:%M:%S.%f")[:12]


def window(start: datetime, end: datetime, zone: tzinfo = timezone.utc) -> str:
    """A partition window ``[start, end)`` in ``zone``: ``2024-01-13 00:00 → 2024-01-14 00:00 CET``."""
    a, b = _aware(start).astimezone(zone), _aware(end).astimezone(zone)
    if a.tzname() != b.tzname():  # a window across a DST change names both offsets
        return f"{a:%Y-%m-%d %H:%M %Z} → {b:%Y-%m-%d %H:%M %Z}"
    return f"{a:%Y-%m-%d %H:%M} → {b:%Y-%m-%d %H:%M %Z}"


def iso(when: datetime | None) -> str:
    return "" if when is None else _aware(when).isoformat()


def run_duration(run: Run, now: datetime) -> float | None:
    if run.started_at is None:
        return None
    return max(0.0, ((run.ended_at or now) - run.started_at).total_seconds())


def span(keys: Sequence[str]) -> str:
    """``a``, ``a … z (30 keys)``, or ``–`` for no key."""
    n = len(keys)
    if n == 0:
        return "–"
    if n == 1:
        return keys[0]
    return f"{keys[0]} … {keys[n - 1]} ({n:,} keys)"


def run_keys(run: Run) -> str:
    if run.partition_key is not None:
        return run.partition_key
    return span(run.partition_keys) if run.partition_keys else "–"


def first_line(text: str | None, limit: int = 300) -> str:
    if not text:
        return ""
    stripped = text.strip()
    line = stripped.splitlines()[-1] if stripped.startswith("Traceback") else stripped.splitlines()[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


def user_tags(tags: Mapping[str, str] | Sequence[tuple[str, str]]) -> list[tuple[str, str]]:
    """A run's tags (a mapping) or a backfill's (pairs), the user's first and anachron's own (``anachron/...``)
    after them."""
    pairs = tags.items() if isinstance(tags, Mapping) else tags
    return sorted(pairs, key=lambda kv: (kv[0].startswith("anachron/"), kv[0]))


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)
