"""``anachron run``, ``anachron dev-run`` and ``anachron runs list | show | logs | cancel``."""

from __future__ import annotations

import json
import sys
import traceback
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich import box
from rich.markup import escape
from rich.prompt import Confirm
from rich.table import Table

import anachron as ac

from . import parsing, target as targets
from .common import (FAILED, INTERRUPTED, OK, CliError, DbOption, ModuleOption, Output, OutputOption, Positionals,
                     example, note, stderr, stdout, usage)
from .config import load_config
from .output import duration, first_line, jsonable, styled, when, write_json

ParamOption = Annotated[Optional[list[str]], typer.Option(
    "-p", "--param", metavar="K=V",
    help="A workflow parameter (repeatable). The value is read as JSON when it parses (3, true, null, [1,2], "
         "\"text\"), else taken as text.")]
EnvOption = Annotated[Optional[list[str]], typer.Option(
    "--env", "-e", metavar="K=V", help="An environment variable for the run (repeatable), e.g. "
                                       "ANACHRON_TIME=unix:1767225600.")]
PartitionOption = Annotated[Optional[str], typer.Option("--partition", metavar="KEY",
                                                        help="Run for one partition key.")]


def run(
    positionals: Positionals = None, module: ModuleOption = None, params: ParamOption = None,
    partition: PartitionOption = None, env: EnvOption = None,
    tags: Annotated[Optional[list[str]], typer.Option("--tag", metavar="K=V", help="Tag the run (repeatable).")] = None,
    idempotency_key: Annotated[Optional[str], typer.Option(
        "--idempotency-key", metavar="KEY", help="The same key returns the existing run instead of a new one.")] = None,
    run_name: Annotated[Optional[str], typer.Option("--name", metavar="NAME", help="A name for the run.")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return at once with the run id.")] = False,
    logs: Annotated[bool, typer.Option("--logs", help="Print the run's log lines when it ends.")] = False,
    output: OutputOption = Output.text, db: DbOption = None,
) -> None:
    """Run WORKFLOW once through the repository and wait for it.

    The run is stored and queued like any other (limits apply). Prints the run id and status.

    Exit code 0 on success, 1 when the run failed or was canceled, 2 on bad input.
    """
    config = load_config()
    target, (name,) = targets.pick(positionals, ["WORKFLOW"], module, config)
    target = targets.require(target, ["WORKFLOW"], positionals or [])
    values, environ, run_tags = parsing.params(params), parsing.environ(env), parsing.pairs(tags, "--tag")
    with targets.repository(target, db, config) as repo:
        wf = repo.workflow(name, "WORKFLOW")
        submitted = repo.run(wf.name, partition_key=partition, params=values, tags=run_tags, run_name=run_name,
                             idempotency_key=idempotency_key, environ=environ, block=False)
        result = submitted if no_wait else _wait_run(repo, submitted, target.argv())
        if result is None:
            raise typer.Exit(INTERRUPTED)
        if output is Output.json:
            write_json(result)
        else:
            _print_run(result, repo if logs else None)
            if not result.is_finished:
                target_text = f"{target.argv()} " if target.argv() else ""
                note(f"run {result.run_id} is {result.status}: it runs while a process coordinates it, e.g. "
                     f"`anachron runs show {target_text}{result.run_id} --wait` (or the daemon).")
    raise typer.Exit(FAILED if result.status in ("failed", "canceled") else OK)


def _wait_run(repo: ac.CodeRepository, run: ac.Run, prefix: str) -> ac.Run | None:
    try:
        return repo.wait_run(run.run_id)
    except KeyboardInterrupt:
        pass
    if sys.stdin.isatty() and sys.stderr.isatty():
        try:
            cancel = Confirm.ask(f"\nCancel run {run.run_id}? (no: leave it)", default=False, console=stderr())
        except (KeyboardInterrupt, EOFError):
            cancel = False
        if cancel:
            repo.cancel_run(run.run_id)
            return repo.wait_run(run.run_id, timeout=30)
    target = f"{prefix} " if prefix else ""
    note(f"\nrun {run.run_id} left unfinished. Once this command exits it stops, and it is retried when a "
         f"process waits on it:\n  anachron runs show {target}{run.run_id} --wait\n"
         f"  anachron runs cancel {run.run_id}")
    return None


def dev_run(
    positionals: Positionals = None, module: ModuleOption = None,
    flow_file: Annotated[Optional[Path], typer.Option("-f", "--file", metavar="PIPELINE.yaml",
                                                      help="A YAML flow (not supported yet).")] = None,
    env: EnvOption = None, params: ParamOption = None, partition: PartitionOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Run WORKFLOW once in this process, without storage: for development.

    Uses ac.create_context(): --env sets the run's environment (e.g. ANACHRON_TIME, the logical time).

    Prints the workflow's return value (JSON when it can be, else its repr) on stdout and its log lines on
    stderr. Exit code 0 on success, 1 when the run failed (the error and traceback on stderr; a malformed
    ANACHRON_TIME fails the run), 2 on bad input.
    """
    if flow_file is not None:
        raise CliError(f"-f {flow_file}: YAML flows are not supported yet; give a Python file and WORKFLOW")
    config = load_config()
    target, (name,) = targets.pick(positionals, ["WORKFLOW"], module, config)
    target = targets.require(target, ["WORKFLOW"], positionals or [])
    values, environ = parsing.params(params), parsing.environ(env)
    wf = targets.load(target, config).workflow(name)
    ctx = ac.create_context()
    ctx.environ.update(environ)
    error: BaseException | None = None
    result: Any = None
    try:
        _check_time_variables(environ)
        result = ctx.run(wf, partition_key=partition, **values)
    except ac.LogicalTimeError as exc:
        error = exc
    except (CliError, KeyboardInterrupt):
        raise
    except ValueError as exc:
        if ctx.last_run_id is None:  # refused before the run started: bad input
            raise CliError(str(exc)) from None
        error = exc
    except Exception as exc:  # noqa: BLE001 - the workflow's own failure
        error = exc
    log_lines = [{"time": datetime.fromtimestamp(ts, timezone.utc).isoformat(), "level": level, "message": message}
                 for ts, level, message in ctx.logs]
    if output is Output.json:
        write_json({"workflow": wf.name, "status": "failed" if error else "success", "result": jsonable(result),
                    "error": f"{type(error).__name__}: {error}" if error else None, "logs": log_lines})
    else:
        for line in log_lines:
            if error is not None and line["level"] == "ERROR" and line["message"].startswith("run failed: "):
                continue  # the engine's record of the failure: the traceback below says it better
            note(f"{line['level']:<8}{line['message']}")
        if error is None:
            typer.echo(_show_value(result))
        else:
            _print_error(error)
    raise typer.Exit(FAILED if error else OK)


def _check_time_variables(environ: dict[str, str]) -> None:
    """A malformed ANACHRON_TIME fails the run even when a partition sets the logical time."""
    from ..clock import time_from_environ

    time_from_environ(environ)


def _show_value(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


def _print_error(error: BaseException) -> None:
    if isinstance(error, (ac.LogicalTimeError, ac.RunFailed)) or error.__traceback__ is None:
        note(f"error: run failed: {error}")
        return
    package = str(Path(ac.__file__).parent)
    frames = [f for f in traceback.extract_tb(error.__traceback__) if not f.filename.startswith(package)]
    text = "Traceback (most recent call last):\n" + "".join(traceback.format_list(frames))
    text += "".join(traceback.format_exception_only(type(error), error))
    sys.stderr.write(text)
    note(f"error: run failed: {type(error).__name__}: {first_line(str(error))}")


def _print_run(run: ac.Run, repo: ac.CodeRepository | None) -> None:
    out = stdout()
    took = f" in {duration((run.ended_at - run.started_at).total_seconds())}" if run.ended_at and run.started_at else ""
    where = f" partition {escape(run.partition_key)}" if run.partition_key else ""
    out.print(f"run {run.run_id} {escape(run.workflow)}{where}: {styled(run.status)}{took}")
    if repo is not None:
        for line in repo.run_logs(run.run_id):
            out.print(f"  {line['level']:<8}{escape(line['message'])}", markup=True)
    if run.error:
        note(f"error: {first_line(run.error)}")


# -- runs list / show / logs / cancel -----------------------------------------------------------
runs_app = typer.Typer(no_args_is_help=True, help="Look at and cancel runs.", rich_markup_mode="rich",
                       epilog=example("anachron runs list --status failed", "anachron runs logs RUN_ID"))


@runs_app.command("list", cls=usage("[TARGET]"), epilog=example(
    "anachron runs list --workflow etl --status failed", "anachron runs list --backfill 8115535659a443f9 -o json"))
def list_runs(
    positionals: Positionals = None, module: ModuleOption = None,
    workflow: Annotated[Optional[str], typer.Option("--workflow", "-w", metavar="NAME")] = None,
    status: Annotated[Optional[list[str]], typer.Option("--status", metavar="STATUS",
                                                        help="queued, running, success, failed, canceled.")] = None,
    backfill: Annotated[Optional[str], typer.Option("--backfill", metavar="ID")] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N")] = 50,
    output: OutputOption = Output.text, db: DbOption = None,
) -> None:
    """List runs, newest first."""
    config = load_config()
    target, _ = targets.pick(positionals, [], module, config)
    for s in status or ():
        if s not in ("queued", "running", "success", "failed", "canceled"):
            raise CliError(f"--status {s!r}: expected queued, running, success, failed or canceled")
    if limit < 1:
        raise CliError(f"--limit {limit}: must be >= 1")
    with targets.repository(target, db, config, need_target=False) as repo:
        found = [r for r in repo.list_runs(status=status or None, backfill_id=backfill,
                                           limit=limit if workflow is None else max(limit, 1000))
                 if workflow is None or r.workflow == workflow][:limit]
        if output is Output.json:
            write_json(found)
            return
        if not found:
            stdout().print("no runs")
            return
        table = Table(box=box.SIMPLE_HEAD, pad_edge=False)
        for column in ("RUN", "WORKFLOW", "PARTITION", "STATUS", "ATTEMPT", "STARTED", "ERROR"):
            table.add_column(column, no_wrap=column != "ERROR")
        for r in found:
            table.add_row(r.run_id, escape(r.workflow), escape(r.partition_key or _keys(r.partition_keys)),
                          styled(r.status), str(r.attempt), when(r.started_at), escape(first_line(r.error)))
        stdout().print(table)


@runs_app.command(cls=usage("[TARGET] RUN_ID"), epilog=example("anachron runs show 4efefea85a2349388b16d9a14f905029"))
def show(
    positionals: Positionals = None, module: ModuleOption = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until it ends (taking it over if its process died); "
                                                       "needs TARGET. Exit 1 if it failed.")] = False,
    output: OutputOption = Output.text, db: DbOption = None,
) -> None:
    """Show one run."""
    config = load_config()
    target, (run_id,) = targets.pick(positionals, ["RUN_ID"], module, config)
    if wait and target is None:
        raise CliError("runs show --wait needs the workflow code: give TARGET or -m MODULE before the id")
    with targets.repository(target, db, config, need_target=False) as repo:
        run_ = _get_run(repo, run_id)
        if wait and not run_.is_finished:
            run_ = _wait_run(repo, run_, target.argv())
            if run_ is None:
                raise typer.Exit(INTERRUPTED)
        if output is Output.json:
            write_json(run_)
        else:
            _print_run(run_, None)
            for field in ("partition_keys", "params", "tags", "backfill_id", "logical_time", "created_at",
                          "started_at", "ended_at"):
                value = getattr(run_, field)
                stdout().print(f"  {field:<15}{escape(str(jsonable(value)))}")
    raise typer.Exit(FAILED if wait and run_.status in ("failed", "canceled") else OK)


@runs_app.command(cls=usage("[TARGET] RUN_ID"), epilog=example("anachron runs logs 4efefea85a2349388b16d9a14f905029"))
def logs(positionals: Positionals = None, module: ModuleOption = None, output: OutputOption = Output.text,
         db: DbOption = None) -> None:
    """Print a run's log lines (every attempt)."""
    config = load_config()
    target, (run_id,) = targets.pick(positionals, ["RUN_ID"], module, config)
    with targets.repository(target, db, config, need_target=False) as repo:
        lines = repo.run_logs(run_id)
        if output is Output.json:
            write_json(lines)
            return
        for line in lines:
            typer.echo(f"{when(line['time'])}  #{line['attempt']}  {line['level']:<8}{line['message']}")


@runs_app.command(cls=usage("[TARGET] RUN_ID"), epilog=example("anachron runs cancel 4efefea85a2349388b16d9a14f905029"))
def cancel(positionals: Positionals = None, module: ModuleOption = None, db: DbOption = None) -> None:
    """Cancel a queued or running run."""
    config = load_config()
    target, (run_id,) = targets.pick(positionals, ["RUN_ID"], module, config)
    with targets.repository(target, db, config, need_target=False) as repo:
        before = _get_run(repo, run_id)
        if not repo.cancel_run(run_id):
            raise CliError(f"run {run_id} is {before.status}; only a queued or running run can be canceled")
        typer.echo(f"run {run_id}: {before.status} → {_get_run(repo, run_id).status}")


def _get_run(repo: ac.CodeRepository, run_id: str) -> ac.Run:
    found = repo.get_run(run_id)
    if found is None:
        raise ac.NotFoundError(f"RUN_ID: run {run_id!r} not found in {targets.mask(repo.storage.url)}")
    return found


def _keys(keys) -> str:
    return "" if not keys else keys[0] if len(keys) == 1 else f"{keys[0]} … {keys[-1]} ({len(keys)})"
