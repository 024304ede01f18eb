"""``anachron partitions [TARGET] WORKFLOW``: counts by status and runs of consecutive keys, not a line per key."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Annotated, Optional, TypedDict

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from . import remote
from . import target as targets
from .common import CliError, DbOption, ModuleOption, Output, OutputOption, Positionals, ServerOption, stdout
from .config import load_config
from .output import count, styled, write_json
from .streams import guard

ORDER = ("success", "failed", "running", "queued", "missing")

#: A run of consecutive keys with one status, as shown and as written in JSON.
KeyRange = TypedDict("KeyRange", {"from": str, "to": str, "status": str, "count": int})


def partitions(
    positionals: Positionals = None, module: ModuleOption = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N",
                                       help="Show the first N ranges (0: all). JSON always has all of them.")] = 30,
    status: Annotated[Optional[list[str]], typer.Option("--status", metavar="STATUS",
                                                     help="Only ranges with this status (repeatable): success, "
                                                          "failed, running, queued, missing.")] = None,
    output: OutputOption = Output.text, db: DbOption = None, server: ServerOption = None,
) -> None:
    """Show the status of WORKFLOW's partitions: counts, then ranges of consecutive keys.

    A key's status is that of the latest run covering it: success, failed, running, queued, or missing.
    """
    if output is Output.json:
        guard()
    remote_server = remote.chosen(server)
    if remote_server is not None:
        (name,) = remote_server.args(positionals, ["WORKFLOW"], module=module, db=db)
    else:
        config = load_config()
        target, (name,) = targets.pick(positionals, ["WORKFLOW"], module, config)
        target = targets.require(target, ["WORKFLOW"], positionals or [])
    for s in status or ():
        if s not in ORDER:
            raise CliError(f"--status {s!r}: expected success, failed, running, queued or missing")
    if limit < 0:
        raise CliError(f"--limit {limit}: must be >= 0")
    if remote_server is not None:
        with remote.connect(remote_server) as client:
            workflow = client.workflow(name).name
            statuses = client.partition_status(workflow)
    else:
        with targets.repository(target, db, config) as repo:
            workflow = repo.workflow(name, "WORKFLOW").name
            statuses = repo.partition_status(workflow)
    counts = Counter(statuses.values())
    ranges = [r for r in key_ranges(statuses.items()) if not status or r["status"] in status]
    if output is Output.json:
        write_json({"workflow": workflow, "total": len(statuses),
                    "counts": {s: counts[s] for s in sorted(counts, key=_rank)}, "ranges": ranges})
        return
    out = stdout()
    out.print(f"[bold]{escape(workflow)}[/bold]: {count(len(statuses))} partitions")
    if not statuses:
        return
    summary = Table(box=None, show_header=False, pad_edge=False)
    summary.add_column(justify="left")
    summary.add_column(justify="right")
    for s in sorted(counts, key=_rank):
        summary.add_row("  " + styled(s), count(counts[s]))
    out.print(summary)
    shown = ranges if not limit else ranges[:limit]
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("FROM", "TO", "STATUS", "KEYS"):
        table.add_column(column, justify="right" if column == "KEYS" else "left", no_wrap=True)
    for r in shown:
        table.add_row(escape(r["from"]), escape(r["to"]) if r["to"] != r["from"] else "", styled(r["status"]),
                      count(r["count"]))
    out.print(table)
    if len(ranges) > len(shown):
        out.print(f"… {count(len(ranges) - len(shown))} more ranges (--limit 0 shows all, --status failed only "
                  "failures)")


def key_ranges(items: Iterable[tuple[str, str]]) -> list[KeyRange]:
    return list(_ranges(items))


def _ranges(items: Iterable[tuple[str, str]]) -> Iterator[KeyRange]:
    current: KeyRange | None = None
    for key, status in items:
        if current is not None and current["status"] == status:
            current["to"] = key
            current["count"] += 1
            continue
        if current is not None:
            yield current
        current = {"from": key, "to": key, "status": status, "count": 1}
    if current is not None:
        yield current


def _rank(status: str) -> int:
    return ORDER.index(status) if status in ORDER else len(ORDER)
