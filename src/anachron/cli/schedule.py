"""``anachron schedule list | pause | resume | backfill``: schedules as every process sees them.

Pausing and resuming write the schedule's shared state, so a daemon anywhere on the same database sees it
at its next evaluation. A backfill of a schedule replays its ticks in ``[--start, --end]`` as runs whose
logical time is the tick — also while the schedule is paused.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Annotated, Optional

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

import anachron as ac

from . import parsing, remote
from . import target as targets
from .backfill import follow, write_result
from .common import (
    OK,
    USAGE,
    CliError,
    DbOption,
    ModuleOption,
    Output,
    OutputOption,
    Positionals,
    QuietOption,
    ServerOption,
    example,
    note,
    stdout,
    usage,
)
from .config import load_config
from .hints import Hints
from .output import when, write_json
from .render import note_clipped, print_dry_run
from .streams import guard

app = typer.Typer(no_args_is_help=True, help="List, pause, resume and backfill schedules.", rich_markup_mode="rich",
                  epilog=example("anachron schedule list flows.py", "anachron schedule pause flows.py report",
                                 "anachron schedule backfill flows.py report --start 2026-01-01 --end 2026-01-31"))

ScheduleOption = Annotated[str, typer.Option("--schedule", "-s", metavar="ID",
                                             help="Which of the workflow's schedules (its id).")]


@app.command("list", cls=usage("[TARGET]"), epilog=example("anachron schedule list flows.py",
                                                            "anachron schedule list flows.py --output json"))
def list_(positionals: Positionals = None, module: ModuleOption = None, output: OutputOption = Output.text,
          db: DbOption = None, server: ServerOption = None) -> None:
    """List the schedules of TARGET's workflows: cron, timezone, paused or active, last and next tick."""
    if output is Output.json:
        guard()
    remote_server = remote.chosen(server)
    if remote_server is not None:
        remote_server.args(positionals, [], module=module, db=db)
        with remote.connect(remote_server) as client:
            found = client.list_schedules()
    else:
        config = load_config()
        target, _ = targets.pick(positionals, [], module, config)
        target = targets.require(target, [], positionals or [])
        with targets.repository(target, db, config) as repo:
            found = repo.list_schedules()
    if output is Output.json:
        write_json(found)
        return
    if not found:
        stdout().print("no schedules")
        return
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
    for column in ("WORKFLOW", "SCHEDULE", "CRON", "TIMEZONE", "STATE", "LAST TICK", "NEXT TICK"):
        table.add_column(column, no_wrap=True)
    for s in found:
        table.add_row(escape(s.workflow), escape(s.schedule_id), escape(s.cron), s.timezone,
                      "[yellow]paused[/yellow]" if s.paused else "[green]active[/green]", when(s.last_tick),
                      when(s.next_tick))
    stdout().print(table)


def _set_paused(positionals: list[str] | None, module: str | None, schedule: str, db: str | None,
                server: str | None, paused: bool) -> None:
    remote_server = remote.chosen(server)
    if remote_server is not None:
        (name,) = remote_server.args(positionals, ["WORKFLOW"], module=module, db=db)
        with remote.connect(remote_server) as client:
            info = _remote_schedule(client, name, schedule)
            status = (client.pause_schedule if paused else client.resume_schedule)(info.name, schedule)
    else:
        config = load_config()
        target, (name,) = targets.pick(positionals, ["WORKFLOW"], module, config)
        target = targets.require(target, ["WORKFLOW"], positionals or [])
        with targets.repository(target, db, config) as repo:
            wf = repo.workflow(name, "WORKFLOW")
            try:
                status = (repo.pause_schedule if paused else repo.resume_schedule)(wf.name, schedule)
            except ValueError as exc:
                raise CliError(f"--schedule: {exc}") from None
    stdout().print(f"schedule {escape(status.workflow)}/{escape(schedule)}: "
                   f"{'paused' if status.paused else 'active'}")
    if paused:
        note("its ticks are passed over while it is paused (not recovered later); "
             "`anachron schedule backfill` replays any of them")


def _remote_schedule(client: remote.Client, name: str, schedule: str) -> remote.RemoteWorkflow:
    """The workflow, which must have the schedule ``schedule`` (refused naming --schedule, as locally)."""
    info = client.workflow(name)
    if schedule not in info.schedules:
        raise CliError(f"--schedule: workflow {info.name!r} has no schedule {schedule!r} (its schedules: "
                       f"{', '.join(info.schedules) or 'none'})")
    return info


@app.command(cls=usage("[TARGET] WORKFLOW"), epilog=example("anachron schedule pause flows.py report",
                                                             "anachron schedule pause flows.py report -s nightly",
                                                             "anachron schedule pause report --server "
                                                             "http://anachron.internal:8080"))
def pause(positionals: Positionals = None, module: ModuleOption = None, schedule: ScheduleOption = "schedule",
          db: DbOption = None, server: ServerOption = None) -> None:
    """Pause a schedule in every process: its ticks stop running (backfills of it still run)."""
    _set_paused(positionals, module, schedule, db, server, True)


@app.command(cls=usage("[TARGET] WORKFLOW"), epilog=example("anachron schedule resume flows.py report"))
def resume(positionals: Positionals = None, module: ModuleOption = None, schedule: ScheduleOption = "schedule",
           db: DbOption = None, server: ServerOption = None) -> None:
    """Resume a paused schedule: its next tick runs."""
    _set_paused(positionals, module, schedule, db, server, False)


@app.command(cls=usage("[TARGET] WORKFLOW"), epilog=example(
    "anachron schedule backfill flows.py report --start 2026-01-01 --end 2026-01-31",
    "anachron schedule backfill flows.py report -s nightly --start 2026-01-01 --dry-run",
))
def backfill(
    positionals: Positionals = None, module: ModuleOption = None, schedule: ScheduleOption = "schedule",
    start: Annotated[Optional[str], typer.Option("--start", metavar="TIME",
                                                 help="First tick time (ISO date or datetime; required).")] = None,
    end: Annotated[Optional[str], typer.Option("--end", metavar="TIME",
                                               help="Last tick time (inclusive; default: now).")] = None,
    max_concurrency: Annotated[int, typer.Option("--max-concurrency", metavar="N")] = 4,
    params: Annotated[Optional[list[str]], typer.Option("-p", "--param", metavar="K=V",
                                                        help="A parameter for every run (repeatable).")] = None,
    tags: Annotated[Optional[list[str]], typer.Option("--tag", metavar="K=V", help="Tag the backfill and its runs "
                                                                                   "(repeatable).")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the ticks; store nothing.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return at once; the daemon (or a waiter) "
                                                            "leads it.")] = False,
    output: OutputOption = Output.text, quiet: QuietOption = False, db: DbOption = None,
    server: ServerOption = None,
) -> None:
    """Replay a schedule's ticks in [--start, --end]: one run per tick, at the tick's logical time.

    A tick that never ran shares its run with the live schedule (it runs once, whoever gets there first);
    a tick that ran is run again. Exit codes as for `backfill create`.

    Only past ticks run: an --end after now ends at now (a note says so). A schedule has one active
    backfill at a time, whoever created it: a second is refused, naming the active one.

    With --server it goes through the server's Kestra-compatible trigger API (PUT /api/v1/triggers).
    """
    guard()
    if start is None:
        raise CliError("--start: a schedule backfill needs a start (ISO date or datetime)")
    remote_server = remote.chosen(server)
    if remote_server is not None:
        (name,) = remote_server.args(positionals, ["WORKFLOW"], module=module, db=db)
        code = _remote_backfill(remote_server, name, schedule, start, end, max_concurrency, params, tags,
                                dry_run=dry_run, no_wait=no_wait, output=output, quiet=quiet)
        raise typer.Exit(code)
    config = load_config()
    target, (name,) = targets.pick(positionals, ["WORKFLOW"], module, config)
    target = targets.require(target, ["WORKFLOW"], positionals or [])
    run_tags = parsing.pairs(tags, "--tag")
    parsing.pairs(params, "-p")
    hints = Hints.of(target, db, config)
    with targets.repository(target, db, config) as repo:
        wf = repo.workflow(name, "WORKFLOW")
        values = parsing.params(params, "-p", wf)
        try:
            result = repo.backfill_schedule(wf.name, trigger_id=schedule, start=start, end=end, inputs=values,
                                            labels=run_tags, block=False, dry_run=dry_run, coordinate=not no_wait,
                                            max_concurrency=max_concurrency)
        except ValueError as exc:
            raise CliError(_options_named(str(exc))) from None
        note_clipped(end, result)
        if dry_run:
            if output is Output.json:
                write_json(result)
            else:
                print_dry_run(result, wf.name, None)
            return
        code = follow(repo, result, hints, wait=not no_wait, output=output, quiet=quiet)
    raise typer.Exit(code)


def _options_named(message: str) -> str:
    """An error message naming a field of the request (``start: ...``) → naming the option behind it."""
    return re.sub(r"^(trigger_id|start|end):", lambda m: f"--{SCHEDULE_OPTIONS[m.group(1)]}:", message)


SCHEDULE_OPTIONS = {"trigger_id": "schedule", "start": "start", "end": "end"}


def _remote_backfill(server: remote.Server, name: str, schedule: str, start: str, end: str | None,
                     max_concurrency: int, params: list[str] | None, tags: list[str] | None, *, dry_run: bool,
                     no_wait: bool, output: Output, quiet: bool) -> int:
    """``schedule backfill --server``: the plan from a dry run of the very request ``repo.backfill_schedule``
    makes (``POST /backfills``, nothing stored), then — unless ``--dry-run`` — the backfill through Kestra's
    ``PUT /api/v1/triggers`` (the flow found by the workflow's namespace), followed like ``backfill create``."""
    from ..requests import BackfillRequest, RequestError

    labels = parsing.pairs(tags, "--tag")
    values = parsing.params(params, "-p")  # JSON, else text: the server's API has no dates
    with remote.connect(server) as client:
        info = _remote_schedule(client, name, schedule)
        try:
            request = BackfillRequest.for_schedule(info.name, schedule, start=start, end=end, inputs=values,
                                                   labels=labels, dry_run=True, max_concurrency=max_concurrency)
            plan = client.create_backfill(request)
        except RequestError as exc:
            raise CliError(_options_named(str(exc))) from None
        except remote.ServerError as exc:
            raise (CliError(_options_named(str(exc))) if exc.exit_code == USAGE else exc) from None
        note_clipped(end, plan)
        if dry_run:
            if output is Output.json:
                write_result(plan)
            else:
                print_dry_run(plan, info.name, None)
            return OK
        try:
            backfill_id = client.backfill_trigger(info, schedule, start, end, values, labels, max_concurrency)
        except remote.ServerError as exc:
            raise (CliError(_options_named(str(exc))) if exc.exit_code == USAGE else exc) from None
        status = client.get_backfill(backfill_id, include_run_ids=False)
        if status is None:
            raise ac.NotFoundError(f"backfill {backfill_id!r} not found on {client.url}")
        result = dataclasses.replace(plan, backfill_id=backfill_id, num_partitions=status.total_partitions,
                                     num_runs=status.total_runs, status=status.status, is_dry_run=False,
                                     estimate=None)
        return follow(client, result, Hints.of_server(server), wait=not no_wait, output=output, quiet=quiet)
