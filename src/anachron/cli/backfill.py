"""``anachron backfill create | list | status | pause | resume | cancel | rerun``."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Any, Optional

import typer

import anachron as ac

from . import remote, signals
from . import target as targets
from .backend import Backend, open_backend, resolve, where
from .common import (
    FAILED,
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
    check_statuses,
    example,
    note,
    usage,
)
from .config import load_config
from .hints import Hints
from .output import count, jsonable, write_json
from .render import backfill_table, finish, note_clipped, print_dry_run, print_status, watch_backfill
from .request import Options
from .streams import echo, guard

app = typer.Typer(no_args_is_help=True, help="Create, watch and control backfills.", rich_markup_mode="rich",
                  epilog=example("anachron backfill create flows.py etl --from 2024-01-01 --to 2024-03-31",
                                 "anachron backfill list", "anachron backfill rerun flows.py 8115535659a443f9"))

SelectionPanel = "Which partitions (exactly one)"
RunPanel = "How it runs"


@app.command(cls=usage("[TARGET] WORKFLOW [WORKFLOW...]"), epilog=example(
    "anachron backfill create flows.py etl --from 2024-01-01 --to 2024-03-31",
    "anachron backfill create flows.py raw_events --start 2024-01-01 --end 2024-01-31 --include downstream "
    "--reprocess missing --dry-run  # heal a gap and what depends on it",
    "anachron backfill create etl --start 2024-01-01 --end 2024-03-31 --max-concurrency 8"
    "  # target from pyproject.toml",
    "anachron backfill create flows.py regional --range date=2024-01-01..2024-01-07 --range region=us,eu "
    "--strategy date=single_run",
    "anachron backfill create flows.py etl --partitions 2024-01-05,2024-01-09 --dry-run --output json",
    "anachron backfill create etl --from 2024-01-01 --to 2024-03-31 --server http://anachron.internal:8080",
    "anachron backfill create flows.py export --start 2026-01-01 --end 2026-01-31 --cron \"0 2 * * *\"",
))
def create(
    positionals: Positionals = None,
    module: ModuleOption = None,
    from_key: Annotated[Optional[str], typer.Option("--from", metavar="KEY", rich_help_panel=SelectionPanel,
                                                    help="First partition key (inclusive); with --to.")] = None,
    to_key: Annotated[Optional[str], typer.Option("--to", metavar="KEY", rich_help_panel=SelectionPanel,
                                                  help="Last partition key (inclusive).")] = None,
    partitions: Annotated[Optional[str], typer.Option("--partitions", metavar="K1,K2", rich_help_panel=SelectionPanel,
                                                      help="Exactly these keys, comma-separated.")] = None,
    ranges: Annotated[Optional[list[str]], typer.Option(
        "--range", metavar="DIM=A..B|DIM=K1,K2", rich_help_panel=SelectionPanel,
        help="Per dimension of a multi-partitioned workflow (repeatable); a dimension left out means all "
             "its keys.")] = None,
    start: Annotated[Optional[str], typer.Option(
        "--start", metavar="TIME", rich_help_panel=SelectionPanel,
        help="Every window / schedule tick from TIME (ISO date or datetime).")] = None,
    end: Annotated[Optional[str], typer.Option("--end", metavar="TIME", rich_help_panel=SelectionPanel,
                                               help="... to TIME (inclusive; default: now).")] = None,
    all_keys: Annotated[bool, typer.Option("--all", rich_help_panel=SelectionPanel,
                                           help="Every partition of the workflow.")] = False,
    cron: Annotated[Optional[str], typer.Option(
        "--cron", metavar="EXPR", rich_help_panel=SelectionPanel,
        help="With --start/--end, for a workflow without partitions: one run per tick of this cron, at the "
             "tick's logical time (e.g. \"0 0 * * *\").")] = None,
    timezone: Annotated[Optional[str], typer.Option("--timezone", metavar="TZ", rich_help_panel=SelectionPanel,
                                                    help="The --cron's timezone (default UTC).")] = None,
    strategy: Annotated[Optional[str], typer.Option(
        "--strategy", metavar="MODE", rich_help_panel=RunPanel,
        help="multi_run (one run per key), single_run, batched=N, or per dimension: DIM=multi_run|single_run,... "
             "(default: the workflow's backfill_strategy, else multi_run).")] = None,
    max_concurrency: Annotated[str, typer.Option("--max-concurrency", metavar="N", rich_help_panel=RunPanel,
                                                 help="Runs of this backfill in flight at once.")] = "4",
    on_failure: Annotated[str, typer.Option(
        "--on-failure", metavar="continue|stop", rich_help_panel=RunPanel,
        help="stop: no new runs after a failure, the rest is canceled.")] = "continue",
    reprocess: Annotated[str, typer.Option("--reprocess", metavar="all|failed_and_missing|missing",
                                           rich_help_panel=RunPanel,
                                           help="Which of the selected keys to run, judged by their status.")] = "all",
    order: Annotated[str, typer.Option("--order", metavar="oldest_first|newest_first",
                                       rich_help_panel=RunPanel)] = "oldest_first",
    tags: Annotated[Optional[list[str]], typer.Option("--tag", metavar="K=V", rich_help_panel=RunPanel,
                                                      help="Tag the backfill and its runs (repeatable).")] = None,
    params: Annotated[Optional[list[str]], typer.Option("-p", "--param", metavar="K=V", rich_help_panel=RunPanel,
                                                        help="A workflow parameter for every run (repeatable; "
                                                             "parsed as for `anachron run`).")] = None,
    idempotency_key: Annotated[Optional[str], typer.Option("--idempotency-key", metavar="KEY", rich_help_panel=RunPanel,
                                                           help="The same key returns the existing backfill.")] = None,
    include: Annotated[str, typer.Option(
        "--include", metavar="selection|downstream|upstream", rich_help_panel="Which workflows",
        help="Also backfill the workflows downstream (or upstream) of WORKFLOW, for the keys mapped through "
             "their dependencies.")] = "selection",
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; store nothing.")] = False,
    no_wait: Annotated[bool, typer.Option(
        "--no-wait", help="Return at once with the id. The backfill then progresses only while a process "
                          "coordinates it: `backfill status --wait` (or the daemon).")] = False,
    output: OutputOption = Output.text,
    quiet: QuietOption = False,
    db: DbOption = None,
    server: ServerOption = None,
) -> None:
    """Backfill WORKFLOW (or several: a graph backfill) over past partitions and watch it.

    With several workflows, or --include downstream|upstream (a graph backfill), the keys are read as the first
    WORKFLOW's and mapped through the dependencies to the others; --dry-run shows what each workflow runs.

    Waits with a live progress bar (a plain line every few seconds when not on a terminal). Ctrl-C asks
    whether to cancel the backfill or leave it unfinished; SIGTERM leaves it unfinished.

    Exit code 0 when every partition succeeded, 1 when it failed or was canceled, 2 on bad input, 130/143
    when interrupted (Ctrl-C / SIGTERM) and left unfinished.
    """
    guard()  # this command runs work: stdout carries its result only
    given = Options(from_key, to_key, partitions, ranges, start, end, all_keys, strategy, max_concurrency, on_failure,
                    reprocess, order, tags, params, idempotency_key, dry_run, include=include, cron=cron,
                    timezone=timezone)
    remote_server = remote.chosen(server)
    if remote_server is not None:
        named = targets.workflow_names(list(positionals or []), remote_server.named)
        (first,) = remote_server.args(named[:1], ["WORKFLOW"], module=module, db=db)
        others = named[1:]
        options = given.check()
        with remote.connect(remote_server) as client:
            info = client.workflow(first)
            request = options.build(info.name, info.dimensions, others=others)
            try:  # the server leads it, whether or not this command waits
                result = client.create_backfill(request)
            except remote.ServerError as exc:  # refused by the server: its message names the field
                raise (options.error(exc) if exc.exit_code == USAGE else exc) from None
            code = _created(client, result, Hints.of_server(remote_server), info.name,
                            request.backfill_strategy() or info.backfill_strategy, wait=not no_wait, output=output,
                            quiet=quiet)
        raise typer.Exit(code)
    config = load_config()
    target, (workflow_name, *others) = targets.pick_workflows(positionals, module, config)
    target = targets.require(target, ["WORKFLOW"], positionals or [])
    options = given.check()
    hints = Hints.of(target, db, config)
    with targets.repository(target, db, config) as repo:
        wf = repo.workflow(workflow_name, "WORKFLOW")
        for other in others:
            repo.workflow(other, "WORKFLOW")
        request = options.request(wf, others)
        try:  # --no-wait only stores the backfill: the daemon, or whoever waits on it, leads it
            result = repo.create_backfill(request, block=False, coordinate=not no_wait)
        except ValueError as exc:  # refused when checked against the workflow (keys, parameters)
            raise options.error(exc) from None
        if cron is not None:
            note_clipped(end, result)
        code = _created(repo, result, hints, wf.name, request.backfill_strategy() or wf.backfill_strategy,
                        wait=not no_wait, output=output, quiet=quiet)
    raise typer.Exit(code)


def _created(repo: Backend, result: ac.BackfillResult, hints: Hints, workflow: str,
             strategy: ac.BackfillStrategy | None, *, wait: bool, output: Output, quiet: bool) -> int:
    """A created backfill (or a dry run's plan): shown, then followed; returns the exit code."""
    if result.is_dry_run:
        if output is Output.json:
            write_result(result)
        else:
            print_dry_run(result, workflow, strategy)
        return OK
    return follow(repo, result, hints, wait=wait, output=output, quiet=quiet)


def write_result(result: ac.BackfillResult) -> None:
    """A ``BackfillResult`` as JSON; when the server previewed its keys, a note says so (on stderr)."""
    if remote.is_preview(result):
        note(f"note: the server lists the first {count(len(list(result.partition_keys)))} of "
             f"{count(result.num_partitions)} partition keys and the first {count(len(list(result.plan)))} of "
             f"{count(result.num_runs)} runs")
    write_json(result)


def follow(repo: Backend, result: ac.BackfillResult, hints: Hints, *, wait: bool, output: Output,
           quiet: bool) -> int:
    """After creating (or rerunning): report the id, then watch unless --no-wait; returns the exit code."""
    backfill_id = result.backfill_id
    if backfill_id is None:  # only a dry run has no id, and a dry run is never followed
        raise AssertionError("a dry run's result has no backfill to follow")
    if not wait:
        if output is Output.json:
            write_result(result)
        else:
            echo(backfill_id)
            if result.status not in ("completed", "failed", "canceled"):
                watch = hints.command("backfill status", backfill_id, "--wait", code=True)
                runs = f"backfill {backfill_id} is {result.status}: {count(result.num_partitions)} partitions " \
                       f"in {count(result.num_runs)} runs."
                if hints.remote:
                    note(f"{runs} The server runs it; watch it with `{watch}`.")
                else:
                    note(f"{runs} It runs while a process coordinates it: `{watch}` (or the daemon).")
        return OK
    if output is Output.text and not quiet:
        note(f"backfill {backfill_id}: {count(result.num_partitions)} partitions in {count(result.num_runs)} runs")
    status = watch_backfill(repo, backfill_id, hints, quiet=quiet or output is Output.json)
    if status is None:  # interrupted and left running
        return signals.interrupted_code()
    if output is Output.json:  # the result's shape, with every run id (what repo.backfill(block=True) returns)
        with_ids = status if status.run_ids or not status.total_runs else _get(repo, backfill_id)
        write_result(dataclasses.replace(result, status=status.status, completed=status.completed_partitions,
                                         failed=status.failed_partitions, canceled=status.canceled_partitions,
                                         run_ids=with_ids.run_ids))
    else:
        finish(repo, status, hints)
    return OK if status.status == "completed" else FAILED


# -- list / status / pause / resume / cancel / rerun ---------------------------------------------
RunIdsOption = Annotated[bool, typer.Option(
    "--run-ids", help="Include every run id in --output json (left out by default: a big backfill has many).")]


@app.command("list", cls=usage("[TARGET]"), epilog=example(
    "anachron backfill list", "anachron backfill list --status in_progress --output json",
    "anachron backfill list flows.py --workflow etl", "anachron backfill list --server http://anachron.internal:8080"))
def list_(
    positionals: Positionals = None, module: ModuleOption = None,
    status: Annotated[Optional[list[str]], typer.Option("--status", metavar="STATUS",
                                                        help="requested, in_progress, paused, completed, failed or "
                                                             "canceled (repeatable).")] = None,
    workflow: Annotated[Optional[str], typer.Option("--workflow", "-w", metavar="NAME")] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="Newest N (0: all).")] = 50,
    run_ids: RunIdsOption = False, output: OutputOption = Output.text, db: DbOption = None,
    server: ServerOption = None,
) -> None:
    """List backfills, newest first. TARGET is optional: only the database is needed."""
    if output is Output.json:
        guard()
    opened, _, _ = open_backend(server, positionals, [], module, db)
    statuses = check_statuses(status, ("requested", "in_progress", "paused", "completed", "failed", "canceled"))
    if limit < 0:
        raise CliError(f"--limit {limit}: must be >= 0")
    with opened as repo:
        found = repo.list_backfills(status=statuses, workflow=workflow, limit=limit or None,
                                    include_run_ids=run_ids and output is Output.json)
        if output is Output.json:
            write_json([_status_json(b, run_ids) for b in found])
        else:
            backfill_table(found)


@app.command(cls=usage("[TARGET] BACKFILL_ID"), epilog=example(
    "anachron backfill status 8115535659a443f9",
    "anachron backfill status 8115535659a443f9 --output json",
    "anachron backfill status flows.py 8115535659a443f9 --wait  # watch it, coordinating it if nobody does",
    "anachron backfill status 8115535659a443f9 --wait --server http://anachron.internal:8080"))
def status(
    positionals: Positionals = None, module: ModuleOption = None,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Watch until it ends (and coordinate it when no live process does); needs TARGET, or "
                       "--server (the server leads it). Exit code as for create.")] = False,
    run_ids: RunIdsOption = False, output: OutputOption = Output.text, quiet: QuietOption = False,
    db: DbOption = None, server: ServerOption = None,
) -> None:
    """Show a backfill: status, counts, and its failed partitions."""
    if output is Output.json or wait:
        guard()
    opened, (backfill_id,), hints = open_backend(server, positionals, ["BACKFILL_ID"], module, db,
                                                 needs_code=_needs_code("status --wait") if wait else None)
    with opened as repo:
        backfill_id = resolve(repo, "backfill", backfill_id)
        st = _get(repo, backfill_id, run_ids=run_ids and output is Output.json)
        if wait and not st.is_finished:
            _check_workflows(repo, st)
            watched = watch_backfill(repo, backfill_id, hints, quiet=quiet or output is Output.json)
            if watched is None:
                raise typer.Exit(signals.interrupted_code())
            st = watched
        if output is Output.json:
            if run_ids and not st.run_ids and st.total_runs:
                st = _get(repo, backfill_id)
            write_json(_status_json(st, run_ids))
        else:
            print_status(repo, st, hints)
    raise typer.Exit(OK if not wait or st.status == "completed" else FAILED)


def _control(action: str, positionals: list[str] | None, module: str | None, db: str | None,
             output: Output, server: str | None) -> None:
    if output is Output.json:
        guard()
    opened, (backfill_id,), hints = open_backend(server, positionals, ["BACKFILL_ID"], module, db)
    with opened as repo:
        backfill_id = resolve(repo, "backfill", backfill_id)
        before = _get(repo, backfill_id, run_ids=False)
        if action == "pause":
            st = repo.pause_backfill(backfill_id)
        elif action == "resume":
            st = repo.resume_backfill(backfill_id)
        else:
            if before.is_finished:
                raise CliError(f"backfill {backfill_id} is {before.status}; only an active backfill can be canceled")
            repo.cancel_backfill(backfill_id)
            st = _get(repo, backfill_id)
        if output is Output.json:
            write_json(st)
            return
        echo(f"backfill {backfill_id}: {before.status} → {st.status}")
        leader = "the server" if hints.remote else "the process coordinating it"
        if action == "pause":
            note("runs in flight finish; no new ones start. "
                 f"Continue with `{hints.command('backfill resume', backfill_id)}`.")
        elif action == "resume":
            watch = hints.command("backfill status", backfill_id, "--wait", code=True)
            if hints.remote:
                note(f"the server starts new runs again; watch it with `{watch}`.")
            else:
                note(hints.with_target("the process coordinating it starts new runs again; if none is (its create "
                                       f"command has exited), run `{watch}`."))
        else:
            rerun_ = hints.command("backfill rerun", backfill_id, code=True)
            if st.is_finished:
                note(hints.with_target("queued runs canceled, running runs stopped. Rerun what did not succeed "
                                       f"with `{rerun_}`."))
            else:
                note(hints.with_target(f"queued runs canceled; {leader} stops its running runs and ends it. Once "
                                       f"it has ended, rerun what did not succeed with `{rerun_}`."))


@app.command(cls=usage("[TARGET] BACKFILL_ID"), epilog=example("anachron backfill pause 8115535659a443f9"))
def pause(positionals: Positionals = None, module: ModuleOption = None, output: OutputOption = Output.text,
          db: DbOption = None, server: ServerOption = None) -> None:
    """Pause a backfill: no new runs start; runs in flight finish."""
    _control("pause", positionals, module, db, output, server)


@app.command(cls=usage("[TARGET] BACKFILL_ID"), epilog=example("anachron backfill resume 8115535659a443f9"))
def resume(positionals: Positionals = None, module: ModuleOption = None, output: OutputOption = Output.text,
           db: DbOption = None, server: ServerOption = None) -> None:
    """Resume a paused backfill where it stopped."""
    _control("resume", positionals, module, db, output, server)


@app.command(cls=usage("[TARGET] BACKFILL_ID"), epilog=example("anachron backfill cancel 8115535659a443f9"))
def cancel(positionals: Positionals = None, module: ModuleOption = None, output: OutputOption = Output.text,
           db: DbOption = None, server: ServerOption = None) -> None:
    """Cancel a backfill: queued runs are canceled at once, running runs are stopped."""
    _control("cancel", positionals, module, db, output, server)


@app.command(cls=usage("[TARGET] BACKFILL_ID"), epilog=example(
    "anachron backfill rerun flows.py 8115535659a443f9",
    "anachron backfill rerun 8115535659a443f9 --dry-run  # target from pyproject.toml",
    "anachron backfill rerun 8115535659a443f9 --server http://anachron.internal:8080"))
def rerun(
    positionals: Positionals = None, module: ModuleOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would rerun; store nothing.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return at once with the new id.")] = False,
    output: OutputOption = Output.text, quiet: QuietOption = False, db: DbOption = None,
    server: ServerOption = None,
) -> None:
    """Backfill again only the failed and canceled partitions of an ended backfill (a new backfill, tagged
    anachron/rerun_of). Waits like create."""
    guard()  # this command runs work: stdout carries its result only
    opened, (backfill_id,), hints = open_backend(server, positionals, ["BACKFILL_ID"], module, db,
                                                 needs_code=_needs_code("rerun"))
    with opened as repo:
        backfill_id = resolve(repo, "backfill", backfill_id)
        st = _get(repo, backfill_id, run_ids=False)
        _check_workflows(repo, st)
        if st.is_finished and not (st.failed_partitions or st.canceled_partitions):
            if output is Output.json:  # what would rerun: nothing (a dry run's result; nothing is stored)
                write_json(repo.rerun_backfill(backfill_id, dry_run=True))
            else:
                echo(f"backfill {backfill_id} is {st.status}: every partition succeeded, nothing to rerun")
            return
        if dry_run:
            result = repo.rerun_backfill(backfill_id, dry_run=True)
            if output is Output.json:
                write_result(result)
            else:
                print_dry_run(result, ", ".join(st.workflows), None)
            return
        result = repo.rerun_backfill(backfill_id, block=False, coordinate=not no_wait)
        code = follow(repo, result, hints, wait=not no_wait, output=output, quiet=quiet)
    raise typer.Exit(code)


# -- helpers ------------------------------------------------------------------------------------
def _get(repo: Backend, backfill_id: str, run_ids: bool = True) -> ac.BackfillStatus:
    st = repo.get_backfill(backfill_id, include_run_ids=run_ids)
    if st is None:
        raise ac.NotFoundError(f"BACKFILL_ID: backfill {backfill_id!r} not found {where(repo)}")
    return st


def _status_json(st: ac.BackfillStatus, run_ids: bool) -> dict[str, Any]:
    """A ``BackfillStatus`` as JSON; ``run_ids`` only when asked for (``--run-ids``)."""
    data: dict[str, Any] = jsonable(st if run_ids else dataclasses.replace(st, run_ids=[]))  # a dataclass: a dict
    if not run_ids:
        del data["run_ids"]
    return data


def _needs_code(what: str) -> str:
    return (f"backfill {what} needs the workflow code: give TARGET (a Python file) or -m MODULE before the id, or "
            "set target in [tool.anachron] (or drive a server: --server URL)")


def _check_workflows(repo: Backend, st: ac.BackfillStatus) -> None:
    """Locally, the target must define the backfill's workflows to run them (a server knows its own)."""
    if not isinstance(repo, ac.CodeRepository):
        return
    known = {w.name for w in repo.workflows}
    missing = [w for w in st.workflows if w not in known]
    if missing:
        raise CliError(f"backfill {st.backfill_id} runs workflow {missing[0]!r}, which the target does not define")
