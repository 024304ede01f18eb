"""``anachron backfill create | list | status | pause | resume | cancel | rerun``."""

from __future__ import annotations

import dataclasses
from typing import Annotated, Optional

import typer

import anachron as ac

from . import parsing, target as targets
from .common import (FAILED, INTERRUPTED, OK, USAGE, CliError, DbOption, ModuleOption, Output, OutputOption,
                     Positionals, QuietOption, example, note, usage)
from .config import load_config
from .render import backfill_table, finish, print_dry_run, print_status, watch_backfill
from .output import write_json

app = typer.Typer(no_args_is_help=True, help="Create, watch and control backfills.", rich_markup_mode="rich",
                  epilog=example("anachron backfill create flows.py etl --from 2024-01-01 --to 2024-03-31",
                                 "anachron backfill list", "anachron backfill rerun flows.py 8115535659a443f9"))

SelectionPanel = "Which partitions (exactly one)"
RunPanel = "How it runs"


@app.command(cls=usage("[TARGET] WORKFLOW"), epilog=example(
    "anachron backfill create flows.py etl --from 2024-01-01 --to 2024-03-31",
    "anachron backfill create etl --start 2024-01-01 --end 2024-03-31 --max-concurrency 8"
    "  # target from pyproject.toml",
    "anachron backfill create flows.py regional --range date=2024-01-01..2024-01-07 --range region=us,eu "
    "--strategy date=single_run",
    "anachron backfill create flows.py etl --partitions 2024-01-05,2024-01-09 --dry-run --output json",
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
                                                             "the value is JSON when it parses, else text).")] = None,
    idempotency_key: Annotated[Optional[str], typer.Option("--idempotency-key", metavar="KEY", rich_help_panel=RunPanel,
                                                           help="The same key returns the existing backfill.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the plan; store nothing.")] = False,
    no_wait: Annotated[bool, typer.Option(
        "--no-wait", help="Return at once with the id. The backfill then progresses only while a process "
                          "coordinates it: `backfill status --wait` (or the daemon).")] = False,
    output: OutputOption = Output.text,
    quiet: QuietOption = False,
    db: DbOption = None,
) -> None:
    """Backfill WORKFLOW over past partitions and watch it.

    Waits with a live progress bar (a plain line every few seconds when not on a terminal). Ctrl-C asks
    whether to cancel the backfill or leave it unfinished.

    Exit code 0 when every partition succeeded, 1 when it failed or was canceled, 2 on bad input.
    """
    config = load_config()
    target, (workflow_name,) = targets.pick(positionals, ["WORKFLOW"], module, config)
    target = targets.require(target, ["WORKFLOW"], positionals or [])
    options = _options(from_key, to_key, partitions, ranges, start, end, all_keys, max_concurrency, on_failure,
                       reprocess, order, tags, params, idempotency_key)
    with targets.repository(target, db, config) as repo:
        wf = repo.workflow(workflow_name, "WORKFLOW")
        if isinstance(options.get("partition_range"), ac.PartitionKeyRange) and ranges and \
                options["partition_range"].kind == "multi" and not isinstance(wf.partitions, ac.MultiPartitions):
            raise CliError(f"--range: workflow {wf.name!r} is not multi-partitioned; use --from/--to or "
                           "--range FROM..TO")
        if strategy is not None:
            options["strategy"] = parsing.strategy(strategy, wf)
        if dry_run:
            result = repo.backfill(wf.name, dry_run=True, **options)
            if output is Output.json:
                write_json(result)
            else:
                print_dry_run(result, wf.name, options.get("strategy") or wf.backfill_strategy)
            return
        # --no-wait only stores the backfill: the daemon, or whoever waits on it, leads it
        result = repo.backfill(wf.name, block=False, coordinate=not no_wait, **options)
        code = _follow(repo, result, target, wait=not no_wait, output=output, quiet=quiet)
    raise typer.Exit(code)


def _options(from_key, to_key, partitions, ranges, start, end, all_keys, max_concurrency, on_failure, reprocess,
             order, tags, params, idempotency_key) -> dict:
    chosen = [name for name, given in (("--from/--to", from_key is not None or to_key is not None),
                                       ("--partitions", partitions is not None), ("--range", bool(ranges)),
                                       ("--start/--end", start is not None or end is not None), ("--all", all_keys))
              if given]
    if len(chosen) != 1:
        what = "none" if not chosen else " and ".join(chosen)
        raise CliError(f"give exactly one of --from/--to, --partitions, --range, --start/--end or --all (got {what})")
    options: dict = {}
    if from_key is not None or to_key is not None:
        if from_key is None or to_key is None:
            raise CliError(f"{'--to' if from_key is None else '--from'} is missing: --from and --to go together")
        options["partition_range"] = ac.PartitionKeyRange.single(from_key, to_key)
    elif partitions is not None:
        options["partition_keys"] = parsing.csv(partitions, "--partitions")
    elif ranges:
        options["partition_range"] = parsing.key_range(ranges)
    elif start is not None or end is not None:
        if start is None:
            raise CliError("--start is missing: a time range needs a start (--end defaults to now)")
        options["start"] = parsing.time_value(start, "--start")
        if end is not None:
            options["end"] = parsing.time_value(end, "--end")
    text = max_concurrency
    try:
        max_concurrency = int(text)
    except ValueError:
        max_concurrency = 0
    if max_concurrency < 1:
        raise CliError(f"--max-concurrency {text!r}: must be an integer >= 1")
    policies = {"continue": "continue", "stop": "stop_on_failure", "stop_on_failure": "stop_on_failure"}
    if on_failure not in policies:
        raise CliError(f"--on-failure {on_failure!r}: expected continue or stop")
    if reprocess not in ("all", "failed_and_missing", "missing"):
        raise CliError(f"--reprocess {reprocess!r}: expected all, failed_and_missing or missing")
    if order not in ("oldest_first", "newest_first"):
        raise CliError(f"--order {order!r}: expected oldest_first or newest_first")
    options.update(max_concurrency=max_concurrency, failure_policy=policies[on_failure], reprocess=reprocess,
                   order=order, tags=parsing.pairs(tags, "--tag"), params=parsing.params(params))
    if idempotency_key is not None:
        options["idempotency_key"] = idempotency_key
    return options


def _follow(repo: ac.CodeRepository, result: ac.BackfillResult, target, *, wait: bool, output: Output,
            quiet: bool) -> int:
    """After creating (or rerunning): report the id, then watch unless --no-wait; returns the exit code."""
    prefix = target.argv() if target is not None else ""
    if not wait:
        if output is Output.json:
            write_json(result)
        else:
            typer.echo(result.backfill_id)
            if result.status not in ("completed", "failed", "canceled"):
                note(f"backfill {result.backfill_id} is {result.status}: {result.num_partitions} partitions in "
                     f"{result.num_runs} runs. It runs while a process coordinates it: "
                     f"`anachron backfill status {_join(prefix, result.backfill_id)} --wait` (or the daemon).")
        return OK
    if output is Output.text and not quiet:
        note(f"backfill {result.backfill_id}: {result.num_partitions} partitions in {result.num_runs} runs")
    status = watch_backfill(repo, result.backfill_id, prefix, quiet=quiet or output is Output.json)
    if status is None:  # interrupted and left running
        return INTERRUPTED
    final = dataclasses.replace(result, status=status.status, completed=status.completed_partitions,
                                failed=status.failed_partitions, canceled=status.canceled_partitions,
                                run_ids=status.run_ids)
    if output is Output.json:
        write_json(final)
    else:
        finish(repo, status, prefix)
    return OK if status.status == "completed" else FAILED


def _join(*parts: str) -> str:
    return " ".join(p for p in parts if p)


# -- list / status / pause / resume / cancel / rerun ---------------------------------------------
@app.command("list", cls=usage("[TARGET]"), epilog=example(
    "anachron backfill list", "anachron backfill list --status in_progress --output json",
    "anachron backfill list flows.py --workflow etl"))
def list_(
    positionals: Positionals = None, module: ModuleOption = None,
    status: Annotated[Optional[list[str]], typer.Option("--status", metavar="STATUS",
                                                        help="requested, in_progress, paused, completed, failed or "
                                                             "canceled (repeatable).")] = None,
    workflow: Annotated[Optional[str], typer.Option("--workflow", "-w", metavar="NAME")] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N", help="Newest N (0: all).")] = 50,
    output: OutputOption = Output.text, db: DbOption = None,
) -> None:
    """List backfills, newest first. TARGET is optional: only the database is needed."""
    config = load_config()
    target, _ = targets.pick(positionals, [], module, config)
    for s in status or ():
        if s not in ("requested", "in_progress", "paused", "completed", "failed", "canceled"):
            raise CliError(f"--status {s!r}: expected requested, in_progress, paused, completed, failed or canceled")
    if limit < 0:
        raise CliError(f"--limit {limit}: must be >= 0")
    with targets.repository(target, db, config, need_target=False) as repo:
        found = repo.list_backfills(status=status or None)
        if workflow is not None:
            found = [b for b in found if workflow in b.workflows]
        found = found[:limit] if limit else found
        if output is Output.json:
            write_json(found)
        else:
            backfill_table(found)


@app.command(cls=usage("[TARGET] BACKFILL_ID"), epilog=example(
    "anachron backfill status 8115535659a443f9",
    "anachron backfill status 8115535659a443f9 --output json",
    "anachron backfill status flows.py 8115535659a443f9 --wait  # watch it, coordinating it if nobody does"))
def status(
    positionals: Positionals = None, module: ModuleOption = None,
    wait: Annotated[bool, typer.Option(
        "--wait", help="Watch until it ends (and coordinate it when no live process does); needs TARGET. "
                       "Exit code as for create.")] = False,
    output: OutputOption = Output.text, quiet: QuietOption = False, db: DbOption = None,
) -> None:
    """Show a backfill: status, counts, and its failed partitions."""
    config = load_config()
    target, (backfill_id,) = targets.pick(positionals, ["BACKFILL_ID"], module, config)
    if wait:
        target = _need_code(target, "status --wait")
    with targets.repository(target, db, config, need_target=False) as repo:
        st = _get(repo, backfill_id)
        if wait and not st.is_finished:
            _check_workflows(repo, st)
            st = watch_backfill(repo, backfill_id, target.argv(), quiet=quiet or output is Output.json)
            if st is None:
                raise typer.Exit(INTERRUPTED)
        if output is Output.json:
            write_json(st)
        else:
            print_status(repo, st, target.argv() if target else "TARGET")
    raise typer.Exit(OK if not wait or st.status == "completed" else FAILED)


def _control(action: str, positionals, module, db, output) -> None:
    config = load_config()
    target, (backfill_id,) = targets.pick(positionals, ["BACKFILL_ID"], module, config)
    with targets.repository(target, db, config, need_target=False) as repo:
        before = _get(repo, backfill_id)
        if action == "pause":
            st = repo.pause_backfill(backfill_id)
        elif action == "resume":
            st = repo.resume_backfill(backfill_id)
        else:
            if before.is_finished:
                raise CliError(f"backfill {backfill_id} is {before.status}; only an active backfill can be canceled")
            repo.cancel_backfill(backfill_id)
            st = repo.get_backfill(backfill_id)
        if output is Output.json:
            write_json(st)
            return
        prefix = target.argv() if target else ""
        typer.echo(f"backfill {backfill_id}: {before.status} → {st.status}")
        if action == "pause":
            note("runs in flight finish; no new ones start. "
                 f"Continue with `anachron backfill resume {backfill_id}`.")
        elif action == "resume":
            note("the process coordinating it starts new runs again; if none is (its create command has "
                 f"exited), run `anachron backfill status {_join(prefix, backfill_id)} --wait`.")
        else:
            note(f"queued runs canceled, running runs stopped. Rerun what did not succeed with "
                 f"`anachron backfill rerun {_join(prefix, backfill_id)}`.")


@app.command(cls=usage("[TARGET] BACKFILL_ID"), epilog=example("anachron backfill pause 8115535659a443f9"))
def pause(positionals: Positionals = None, module: ModuleOption = None, output: OutputOption = Output.text,
          db: DbOption = None) -> None:
    """Pause a backfill: no new runs start; runs in flight finish."""
    _control("pause", positionals, module, db, output)


@app.command(cls=usage("[TARGET] BACKFILL_ID"), epilog=example("anachron backfill resume 8115535659a443f9"))
def resume(positionals: Positionals = None, module: ModuleOption = None, output: OutputOption = Output.text,
           db: DbOption = None) -> None:
    """Resume a paused backfill where it stopped."""
    _control("resume", positionals, module, db, output)


@app.command(cls=usage("[TARGET] BACKFILL_ID"), epilog=example("anachron backfill cancel 8115535659a443f9"))
def cancel(positionals: Positionals = None, module: ModuleOption = None, output: OutputOption = Output.text,
           db: DbOption = None) -> None:
    """Cancel a backfill: queued runs are canceled at once, running runs are stopped."""
    _control("cancel", positionals, module, db, output)


@app.command(cls=usage("[TARGET] BACKFILL_ID"), epilog=example(
    "anachron backfill rerun flows.py 8115535659a443f9",
    "anachron backfill rerun 8115535659a443f9 --dry-run  # target from pyproject.toml"))
def rerun(
    positionals: Positionals = None, module: ModuleOption = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show what would rerun; store nothing.")] = False,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return at once with the new id.")] = False,
    output: OutputOption = Output.text, quiet: QuietOption = False, db: DbOption = None,
) -> None:
    """Backfill again only the failed and canceled partitions of an ended backfill (a new backfill, tagged
    anachron/rerun_of). Waits like create."""
    config = load_config()
    target, (backfill_id,) = targets.pick(positionals, ["BACKFILL_ID"], module, config)
    target = _need_code(target, "rerun")
    with targets.repository(target, db, config) as repo:
        st = _get(repo, backfill_id)
        _check_workflows(repo, st)
        if st.is_finished and not (st.failed_partitions or st.canceled_partitions):
            if output is Output.json:  # what would rerun: nothing (a dry run's result; nothing is stored)
                write_json(repo.rerun_backfill(backfill_id, dry_run=True))
            else:
                typer.echo(f"backfill {backfill_id} is {st.status}: every partition succeeded, nothing to rerun")
            return
        if dry_run:
            result = repo.rerun_backfill(backfill_id, dry_run=True)
            if output is Output.json:
                write_json(result)
            else:
                print_dry_run(result, ", ".join(st.workflows), None)
            return
        result = repo.rerun_backfill(backfill_id, block=False, coordinate=not no_wait)
        code = _follow(repo, result, target, wait=not no_wait, output=output, quiet=quiet)
    raise typer.Exit(code)


# -- helpers ------------------------------------------------------------------------------------
def _get(repo: ac.CodeRepository, backfill_id: str) -> ac.BackfillStatus:
    st = repo.get_backfill(backfill_id)
    if st is None:
        raise ac.NotFoundError(f"BACKFILL_ID: backfill {backfill_id!r} not found in {targets.mask(repo.storage.url)}")
    return st


def _need_code(target, what: str):
    if target is None:
        raise CliError(f"backfill {what} needs the workflow code: give TARGET (a Python file) or -m MODULE before "
                       "the id, or set target in [tool.anachron]", USAGE)
    return target


def _check_workflows(repo: ac.CodeRepository, st: ac.BackfillStatus) -> None:
    known = {w.name for w in repo.workflows}
    missing = [w for w in st.workflows if w not in known]
    if missing:
        raise CliError(f"backfill {st.backfill_id} runs workflow {missing[0]!r}, which the target does not define")
