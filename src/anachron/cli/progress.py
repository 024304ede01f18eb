"""Watching a backfill: a live Rich progress bar on a terminal, a plain line every few seconds otherwise.

Progress goes to stderr, so stdout stays clean for results (and for ``--output json``). A read that fails
because storage is unavailable for a while (locked, connection lost) does not end the wait: one note on
stderr, at most every ``NOTE_EVERY`` seconds, and it looks again (``Hiccups``).
"""

from __future__ import annotations

import os
import sys
import time
from dataclasses import dataclass
from types import TracebackType

from rich.console import Console, Group
from rich.live import Live
from rich.markup import escape
from rich.progress import BarColumn, Progress, SpinnerColumn, TaskID, TextColumn
from rich.text import Text

import anachron as ac

from .backend import Backend
from .common import note
from .output import count, duration, styled
from .remote import ServerUnavailable

#: Seconds between two plain progress lines when stderr is not a terminal (``ANACHRON_PROGRESS_INTERVAL``).
PLAIN_INTERVAL = 5.0
POLL_SECONDS = 0.25
#: At most one "storage unavailable" note per this many seconds.
NOTE_EVERY = 10.0


def plain_interval() -> float:
    """``ANACHRON_PROGRESS_INTERVAL``, read when a plain progress display needs it; a bad value is one warning
    line and the default."""
    text = os.environ.get("ANACHRON_PROGRESS_INTERVAL")
    if text is None or not text.strip():
        return PLAIN_INTERVAL
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value < float("inf"):
        note(f"warning: ANACHRON_PROGRESS_INTERVAL={text!r}: expected a number of seconds >= 0 (e.g. 5 or 0.5); "
             f"using {PLAIN_INTERVAL:g}")
        return PLAIN_INTERVAL
    return value


class Hiccups:
    """Tells storage hiccups (``StorageUnavailable``, a transient database error) from real errors while
    waiting: ``absorb(exc)`` returns after a note (at most one per ``NOTE_EVERY`` s) and a short pause, or
    re-raises what is not a hiccup."""

    def __init__(self, every: float = NOTE_EVERY, pause: float = POLL_SECONDS):
        self.every, self.pause = every, pause
        self._last: float | None = None

    def absorb(self, exc: BaseException) -> None:
        if not is_hiccup(exc):
            raise exc
        now = time.monotonic()
        if self._last is None or now - self._last >= self.every:
            self._last = now
            what = "server" if isinstance(exc, ServerUnavailable) else "storage"
            note(f"{what} unavailable, retrying: {_describe(exc)}")
        time.sleep(self.pause)


def is_hiccup(exc: BaseException) -> bool:
    """A storage error that may pass (``StorageUnavailable``), or, driving a server, no answer from it for now
    (``ServerUnavailable``)."""
    from ..storage import StorageUnavailable  # storage translates every driver error at its boundary

    return isinstance(exc, (ServerUnavailable, StorageUnavailable))


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ServerUnavailable):
        return str(exc)
    from ..storage import StorageUnavailable, describe_error

    if isinstance(exc, StorageUnavailable):
        return str(exc).removeprefix("storage unavailable: ")
    return describe_error(exc)


@dataclass(frozen=True)
class WorkflowProgress:
    """One workflow's part of a graph backfill: its partitions and how they ended so far."""

    name: str
    total: int
    done: int
    failed: int
    upstream_failed: int
    canceled: int

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.upstream_failed + self.canceled

    def counts(self) -> str:
        return " · ".join(ended_counts(self.done, self.failed, self.upstream_failed, self.canceled))


def ended_counts(done: int, failed: int, upstream_failed: int, canceled: int) -> list[str]:
    """``done N``, ``failed N`` (the failures themselves), then ``upstream failed N`` and ``canceled N`` when
    there are any."""
    parts = [f"done {count(done)}", f"failed {count(failed)}"]
    if upstream_failed:
        parts.append(f"upstream failed {count(upstream_failed)}")
    if canceled:
        parts.append(f"canceled {count(canceled)}")
    return parts


def per_workflow(st: ac.BackfillStatus) -> list[WorkflowProgress]:
    """Each workflow's progress, in plan order (upstreams first); empty for a backfill of one workflow."""
    if len(st.workflows) < 2:
        return []
    return [WorkflowProgress(name, c.get("total", 0), c.get("completed", 0), c.get("failed", 0),
                             c.get("upstream_failed", 0), c.get("canceled", 0))
            for name, c in st.workflows.items()]


def upstream_failed(st: ac.BackfillStatus) -> int:
    """Partitions of the backfill that never ran because a key they need failed (counted in ``failed``)."""
    return sum(c.get("upstream_failed", 0) for c in st.workflows.values())


@dataclass
class Snapshot:
    """What one progress line shows, computed from a ``BackfillStatus``."""

    status: str
    total: int
    done: int
    failed: int
    canceled: int
    running: int
    queued: int
    unit: str  # "" when running/queued count partitions, " runs" when they count runs
    rate: float | None  # finished partitions per second since watching began
    eta: float | None
    workflows: list[WorkflowProgress]  # a graph backfill's workflows, upstreams first (else empty)
    upstream_failed: int = 0  # counted in ``failed``: never ran, a key they need failed

    @property
    def finished(self) -> int:
        return self.done + self.failed + self.canceled

    def counts(self) -> str:
        parts = ended_counts(self.done, self.failed - self.upstream_failed, self.upstream_failed, self.canceled)
        parts += [f"running {count(self.running)}{self.unit}", f"queued {count(self.queued)}{self.unit}"]
        return " · ".join(parts)

    def speed(self) -> str:
        if self.rate is None:
            return "-/s"
        return f"{self.rate:.1f}/s" if self.rate < 100 else f"{self.rate:.0f}/s"

    def remaining(self) -> str:
        if self.status == "paused":
            return "ETA paused"
        return "ETA " + (duration(self.eta) if self.eta is not None else "?")


class Rate:
    """Finished partitions per second since the first observation."""

    def __init__(self) -> None:
        self.start: tuple[float, int] | None = None

    def snapshot(self, st: ac.BackfillStatus) -> Snapshot:
        finished = st.completed_partitions + st.failed_partitions + st.canceled_partitions
        now = time.monotonic()
        if self.start is None:
            self.start = (now, finished)
        t0, f0 = self.start
        elapsed = now - t0
        rate = (finished - f0) / elapsed if elapsed > 0.5 and finished > f0 else None
        left = max(0, st.total_partitions - finished)
        eta = left / rate if rate else (0.0 if left == 0 else None)
        one_to_one = st.total_runs == st.total_partitions
        if one_to_one:
            running = st.running_runs
            queued = max(0, left - running)
            unit = ""
        else:
            running, queued, unit = st.running_runs, st.queued_runs, " runs"
        return Snapshot(st.status, st.total_partitions, st.completed_partitions, st.failed_partitions,
                        st.canceled_partitions, running, queued, unit, rate, eta, per_workflow(st),
                        upstream_failed(st))


class Display:
    """Either a Rich live bar or plain lines; ``quiet`` shows nothing."""

    def __init__(self, backfill_id: str, quiet: bool = False, console: Console | None = None,
                 interval: float | None = None):
        self.backfill_id = backfill_id
        self.console = console or Console(stderr=True, highlight=False)
        self.quiet = quiet
        self.live = not quiet and self.console.is_terminal and not self.console.is_dumb_terminal
        if interval is None and not quiet and not self.live:  # only plain lines need it
            interval = plain_interval()
        self.interval = PLAIN_INTERVAL if interval is None else interval
        self.rate = Rate()
        self._last_line = 0.0
        self._progress: Progress | None = None
        self._live: Live | None = None
        self._counts = Text("")
        self._task: TaskID | None = None

    def __enter__(self) -> Display:
        if self.live:
            self._progress = Progress(
                SpinnerColumn(), TextColumn("{task.description}"), BarColumn(bar_width=30),
                TextColumn("{task.fields[done]}"),
                TextColumn("{task.percentage:>3.0f}%"), TextColumn("{task.fields[speed]}"),
                TextColumn("{task.fields[eta]}"), console=self.console)
            self._task = self._progress.add_task("", total=None, speed="", eta="", done="")
            self._counts = Text("")
            self._live = Live(Group(self._progress, _Line(self)), console=self.console, refresh_per_second=8,
                              transient=False)
            self._live.__enter__()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self._live is not None:
            self._live.__exit__(exc_type, exc, tb)
            self._live = None
            self._progress = None

    def update(self, st: ac.BackfillStatus, final: bool = False) -> None:
        snap = self.rate.snapshot(st)
        if self.quiet:
            return
        if self._progress is not None and self._task is not None:  # a live bar (both set by __enter__)
            self._progress.update(self._task, description=styled(snap.status), total=snap.total,
                                  completed=snap.finished, speed=snap.speed(), eta="" if final else snap.remaining(),
                                  done=f"{count(snap.finished)}/{count(snap.total)}")
            upstream = f" · [red]upstream failed {count(snap.upstream_failed)}[/red]" if snap.upstream_failed else ""
            self._counts = Text.from_markup(
                f"  [green]done {count(snap.done)}[/green] · "
                f"[red]failed {count(snap.failed - snap.upstream_failed)}[/red]{upstream}"
                + (f" · [yellow]canceled {count(snap.canceled)}[/yellow]" if snap.canceled else "")
                + f" · [cyan]running {count(snap.running)}{snap.unit}[/cyan]"
                + f" · [blue]queued {count(snap.queued)}{snap.unit}[/blue]")
            if snap.workflows:  # a graph backfill: one line per workflow, upstreams first
                width = max(len(w.name) for w in snap.workflows)
                for w in snap.workflows:
                    self._counts.append("\n")
                    self._counts.append_text(Text.from_markup(
                        f"  {escape(w.name):<{width}}  {_mini_bar(w)} {count(w.finished):>7}/{count(w.total):<7} "
                        f"[dim]{w.counts()}[/dim]"))
            return
        now = time.monotonic()
        if final or (self._last_line and now - self._last_line < self.interval):
            return
        self._last_line = now
        pct = f"{100 * snap.finished / snap.total:.0f}%" if snap.total else "-"
        line = (f"progress {self.backfill_id}: {snap.status} {count(snap.finished)}/{count(snap.total)} partitions "
                f"({pct}) · "
                f"{snap.counts()} · {snap.speed()} · {snap.remaining()}")
        if snap.workflows:  # a graph backfill: how far each workflow is, upstreams first
            line += "\n" + "\n".join(f"  {w.name}: {count(w.finished)}/{count(w.total)} · {w.counts()}"
                                      for w in snap.workflows)
        sys.stderr.write(line + "\n")
        sys.stderr.flush()


def _mini_bar(w: WorkflowProgress, width: int = 12) -> str:
    """A small bar for a workflow's line: green succeeded, red failed (upstream failed included), dim the rest."""
    if not w.total:
        return "[dim]" + "·" * width + "[/dim]"
    green = round(width * w.done / w.total)
    red = min(width - green, round(width * (w.failed + w.upstream_failed) / w.total))
    yellow = min(width - green - red, round(width * w.canceled / w.total))
    rest = width - green - red - yellow
    return (f"[green]{'━' * green}[/green][red]{'━' * red}[/red][yellow]{'━' * yellow}[/yellow]"
            f"[dim]{'━' * rest}[/dim]")


class _Line:
    """The counts line under the bar (re-read on every refresh)."""

    def __init__(self, display: Display):
        self.display = display

    def __rich__(self) -> Text:
        return self.display._counts


def watch(repo: Backend, backfill_id: str, display: Display,
          hiccups: Hiccups | None = None) -> ac.BackfillStatus:
    """Wait for the backfill to end (taking over its coordination if its leader is gone), showing progress.

    Storage hiccups are waited out (see ``Hiccups``). ``KeyboardInterrupt`` propagates to the caller, which
    decides what to do with the backfill."""
    hiccups = hiccups or Hiccups()
    with display:
        while True:
            try:
                final = repo.wait_backfill(backfill_id, timeout=POLL_SECONDS)
            except TimeoutError:
                try:
                    st = repo.get_backfill(backfill_id, include_run_ids=False)
                except Exception as exc:  # noqa: BLE001 - a hiccup, or re-raised
                    hiccups.absorb(exc)
                    continue
                if st is not None:
                    display.update(st)
                continue
            except Exception as exc:  # noqa: BLE001 - a hiccup, or re-raised
                hiccups.absorb(exc)
                continue
            display.update(final, final=True)
            return final
