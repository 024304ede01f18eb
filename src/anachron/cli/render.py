"""Text output for backfills: watching (with Ctrl-C handling), summaries, dry-run plans, tables."""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from typing import Any

from rich import box
from rich.console import Console
from rich.markup import escape
from rich.padding import Padding
from rich.prompt import Confirm
from rich.table import Table

import anachron as ac

from ..estimate import describe
from . import signals
from .backend import Backend
from .common import note, stderr, stdout
from .hints import Hints
from .output import count, duration, first_line, styled, when
from .progress import Display, per_workflow, upstream_failed, watch

FAILED_SHOWN = 5


def watch_backfill(repo: Backend, backfill_id: str, hints: Hints,
                   quiet: bool = False) -> ac.BackfillStatus | None:
    """Watch until the end. On Ctrl-C: ask (on a terminal) whether to cancel; ``None`` when it is left unfinished
    (always so after SIGTERM: being told to stop is not a question)."""
    try:
        return watch(repo, backfill_id, Display(backfill_id, quiet=quiet))
    except KeyboardInterrupt:
        pass
    if not signals.terminated() and sys.stdin.isatty() and sys.stderr.isatty():
        try:
            cancel = Confirm.ask(f"\nCancel backfill {backfill_id}? (no: leave it to finish later)", default=False,
                                 console=stderr())
        except (KeyboardInterrupt, EOFError):
            cancel = False
        if cancel:
            repo.cancel_backfill(backfill_id)
            try:
                return repo.wait_backfill(backfill_id, timeout=30)
            except (TimeoutError, KeyboardInterrupt):
                return repo.get_backfill(backfill_id, include_run_ids=False)
    st = repo.get_backfill(backfill_id, include_run_ids=False)
    state = ""
    if st is not None:
        done = st.completed_partitions + st.failed_partitions + st.canceled_partitions
        state = f" ({st.status}, {count(done)}/{count(st.total_partitions)} partitions done)"
    watch_it = hints.command("backfill status", backfill_id, "--wait", code=True)
    if hints.remote:  # the server leads it: only the watching stops
        note(f"\nstopped watching backfill {backfill_id}{state}; it goes on on the server.\n"
             f"  watch it again:  {watch_it}\n"
             f"  cancel it:       {hints.command('backfill cancel', backfill_id)}")
        return None
    note(f"\nbackfill {backfill_id} left unfinished{state}. "
         "Once this command exits its runs in flight stop, and the backfill continues when a process "
         "coordinates it again:\n"
         f"  continue and watch it:  {watch_it}\n"
         f"  cancel it:              {hints.command('backfill cancel', backfill_id)}")
    return None


def finish(repo: Backend, st: ac.BackfillStatus, hints: Hints) -> None:
    """The summary printed when a watched backfill has ended."""
    out = stdout()
    took = _took(st)
    if st.status == "completed":
        out.print(f"[green]✔[/green] backfill {st.backfill_id} completed: {count(st.total_partitions)} partitions "
                  f"succeeded{took}")
        _by_workflow(out, st)
        return
    out.print(f"[red]✘[/red] backfill {st.backfill_id} {st.status}: {count(st.completed_partitions)} succeeded, "
              f"{_failed(st)}, {count(st.canceled_partitions)} canceled of "
              f"{count(st.total_partitions)} partitions{took}")
    _by_workflow(out, st)
    _failed_runs(repo, st, out, hints)
    if st.failed_partitions or st.canceled_partitions:
        out.print("rerun the failed and canceled partitions: "
                  + escape(hints.command("backfill rerun", st.backfill_id, code=True)))


def print_status(repo: Backend, st: ac.BackfillStatus, hints: Hints) -> None:
    out = stdout()
    out.print(f"backfill [bold]{st.backfill_id}[/bold]  {styled(st.status)}")
    rows = [("workflows", escape(", ".join(st.workflows)) or "-"),
            ("partitions", f"{count(st.total_partitions)}: {count(st.completed_partitions)} succeeded · "
                           f"{_failed(st, ' · ')} · {count(st.canceled_partitions)} canceled"),
            ("runs", f"{count(st.total_runs)}: {count(st.running_runs)} running · {count(st.queued_runs)} queued"),
            ("created", when(st.created_at)),
            ("ended", when(st.ended_at) + _took(st) if st.ended_at else "-")]
    if st.request is not None:
        rows.extend((label, escape(text)) for label, text in describe_request(st.request))
    if st.created_by:
        rows.append(("by", escape(st.created_by)))
    if st.tags:
        rows.append(("tags", escape(", ".join(f"{k}={v}" for k, v in st.tags))))
    if st.error:
        rows.append(("error", escape(first_line(st.error))))
    for label, value in rows:
        out.print(f"  {label:<11}{value}")
    _by_workflow(out, st)
    _failed_runs(repo, st, out, hints)
    if st.status in ("failed", "canceled") and (st.failed_partitions or st.canceled_partitions):
        out.print(escape(hints.with_target("rerun the failed and canceled partitions: "
                                           + hints.command("backfill rerun", st.backfill_id, code=True))))
    elif st.status == "paused":  # nothing starts until it is resumed: say how
        out.print(escape("paused: runs in flight finished, nothing new starts. Resume it: "
                         + hints.command("backfill resume", st.backfill_id)))
    elif st.status in ("requested", "in_progress"):
        out.print(escape(hints.with_target(
            "watch it: " + hints.command("backfill status", st.backfill_id, "--wait", code=True))))


def print_dry_run(result: ac.BackfillResult, workflow: str, strategy: ac.BackfillStrategy | None) -> None:
    out = stdout()
    graph = len(result.workflows) > 1
    shown = ", ".join(result.workflows) if graph else workflow
    out.print(f"dry run of [bold]{escape(shown)}[/bold]: nothing was stored")
    keys, plan = result.partition_keys, result.plan
    if not result.num_runs:
        out.print("  nothing to run: the selection is empty")
        return
    out.print(f"  {'partitions':<11}{count(result.num_partitions)}"
              + ("" if graph else f"  {_span(keys, with_count=False)}"))
    kind = strategy.kind if strategy is not None else None
    out.print(f"  {'runs':<11}{count(result.num_runs)}" + (f"  ({kind})" if kind else ""))
    if graph:  # a graph backfill: what each workflow runs (upstreams first)
        width = max(len(name) for name in result.workflows)
        for name, counts in result.workflows.items():
            parts, runs = counts["num_partitions"], counts["num_runs"]
            out.print(f"    {escape(name):<{width}}  {count(parts):>9} partition{'s' if parts != 1 else ' '}  "
                      f"{count(runs):>9} run{'s' if runs != 1 else ''}")
    out.print(f"  {'first run':<11}{_span(plan[0])}")
    if result.num_runs > 1:
        out.print(f"  {'last run':<11}{_span(plan[-1])}")
    if result.estimate is not None:
        out.print(f"  {'estimate':<11}{escape(describe(result.estimate))}")


def backfill_table(found: Sequence[ac.BackfillStatus]) -> None:
    out = stdout()
    if not found:
        out.print("no backfills")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("ID", "STATUS", "WORKFLOWS", "DONE", "FAILED", "CANCELED", "TOTAL", "CREATED"):
        table.add_column(column, justify="right" if column in ("DONE", "FAILED", "CANCELED", "TOTAL") else "left",
                         no_wrap=True)
    for st in found:
        table.add_row(st.backfill_id, styled(st.status), escape(", ".join(st.workflows)),
                      count(st.completed_partitions), count(st.failed_partitions), count(st.canceled_partitions),
                      count(st.total_partitions), when(st.created_at))
    out.print(table)


def _failed(st: ac.BackfillStatus, sep: str = ", ") -> str:
    """``N failed``, and ``M upstream failed`` beside it when some partitions never ran because a key they need
    failed (both together are ``failed_partitions``)."""
    upstream = upstream_failed(st)
    if not upstream:
        return f"{count(st.failed_partitions)} failed"
    return f"{count(st.failed_partitions - upstream)} failed{sep}{count(upstream)} upstream failed"


def _by_workflow(out: Console, st: ac.BackfillStatus) -> None:
    """A graph backfill's partitions per workflow, upstreams first: a table of what succeeded and failed."""
    rows = per_workflow(st)
    if not rows:
        return
    table = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    for column in ("WORKFLOW", "DONE", "FAILED", "UPSTREAM FAILED", "CANCELED", "TOTAL"):
        table.add_column(column, justify="left" if column == "WORKFLOW" else "right", no_wrap=True)
    for w in rows:
        table.add_row(escape(w.name), count(w.done), count(w.failed), count(w.upstream_failed), count(w.canceled),
                      count(w.total))
    out.print(Padding(table, (0, 0, 0, 2), expand=False))


def _failed_runs(repo: Backend, st: ac.BackfillStatus, out: Console, hints: Hints) -> None:
    if not st.failed_partitions:
        return
    runs = repo.list_runs(backfill_id=st.backfill_id, status="failed", limit=FAILED_SHOWN + 1)
    for run in runs[:FAILED_SHOWN]:
        keys = run.partition_key or _span(run.partition_keys)
        out.print(f"  [red]failed[/red]  {escape(keys)}  {escape(first_line(run.error))}  "
                  f"[dim](run {run.run_id})[/dim]")
    if len(runs) > FAILED_SHOWN:
        more = hints.command("runs list", "--backfill", st.backfill_id, "--status", "failed")
        out.print(f"  … more failed runs: {escape(more)}")


def _span(keys: Sequence[str], with_count: bool = True) -> str:
    n = len(keys)
    if n == 0:
        return "-"
    if n == 1:
        return keys[0]
    return f"{keys[0]} … {keys[n - 1]}" + (f" ({count(n)} keys)" if with_count else "")


def _took(st: ac.BackfillStatus) -> str:
    if st.created_at and st.ended_at:
        return f" in {duration((st.ended_at - st.created_at).total_seconds())}"
    return ""


def note_clipped(end: str | None, result: ac.BackfillResult) -> None:
    """Say so when a backfill of ticks ends earlier than asked: only past ticks are replayed."""
    effective = result.request.end if result.request is not None else None
    if end is not None and effective is not None and effective != end.strip():
        note(f"note: --end {end} is in the future: only past ticks are replayed, up to {effective}")


def describe_request(request: Any) -> list[tuple[str, str]]:
    """What a backfill was asked, as ``backfill status`` rows: what it selects, the rules it runs by, and its
    params and config when it has any."""
    if request.partition_keys is not None:
        keys = request.partition_keys
        what = f"partitions {', '.join(keys[:3])}" + (f" … ({len(keys)} keys)" if len(keys) > 3 else "")
    elif request.partition_range is not None:
        what = "range " + json.dumps(request.partition_range.model_dump(mode="json", by_alias=True))
    elif request.start is not None:
        what = f"{request.start} … {request.end or 'now'}"
        if request.trigger_id is not None:
            what += f" · ticks of schedule {request.trigger_id}"
        elif request.cron is not None:
            what += f" · ticks of cron {request.cron!r} ({request.timezone or 'UTC'})"
    else:
        what = "every partition"
    strategy = request.strategy
    shown = "the workflow's strategy" if strategy is None else strategy if isinstance(strategy, str) else \
        json.dumps(strategy)
    picked = request.selection or ([request.workflow] if request.workflow else [])
    include = getattr(request, "include", "selection")
    rows = [("selected", ", ".join(picked) + ("" if include == "selection" else f" · with {include}"))] \
        if request.selection is not None or include != "selection" else []
    rows += [("asked", what), ("rules", f"{shown} · reprocess {request.reprocess} · {request.order} · "
                                       f"{request.failure_policy} · max_concurrency {request.max_concurrency}")]
    for name in ("params", "config"):
        if getattr(request, name):
            rows.append((name, json.dumps(getattr(request, name), default=str)))
    return rows
