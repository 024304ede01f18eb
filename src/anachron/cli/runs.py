"""``anachron run``, ``anachron dev-run`` and ``anachron runs list | show | logs | cancel``."""

from __future__ import annotations

import json
import re
import sys
import traceback
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated, Any, Optional

import typer
from rich import box
from rich.markup import escape
from rich.prompt import Confirm
from rich.table import Table

import anachron as ac

from . import parsing, remote, signals
from . import target as targets
from .backend import Backend, open_backend, resolve
from .common import (
    FAILED,
    OK,
    CliError,
    DbOption,
    ModuleOption,
    Output,
    OutputOption,
    Positionals,
    ServerOption,
    check_statuses,
    example,
    note,
    stderr,
    stdout,
    usage,
)
from .config import load_config
from .hints import Hints
from .output import count, duration, first_line, jsonable, styled, when, write_json
from .progress import POLL_SECONDS, Hiccups
from .streams import echo, guard

ParamOption = Annotated[Optional[list[str]], typer.Option(
    "-p", "--param", metavar="K=V",
    help="A workflow parameter (repeatable). The value is read as JSON when it parses (3, true, null, [1,2], "
         "\"text\"), else taken as text; for a parameter annotated date or datetime, as an ISO date / datetime.")]
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
    start_at: Annotated[Optional[str], typer.Option(
        "--start-at", metavar="TIME", help="Start it no earlier than TIME (ISO-8601; no offset: UTC), which is also "
                                           "its logical time; it waits queued until then.")] = None,
    no_wait: Annotated[bool, typer.Option("--no-wait", help="Return at once with the run id (a daemon, or "
                                                            "`runs show --wait`, runs it).")] = False,
    logs: Annotated[bool, typer.Option("--logs", help="Print the run's log lines when it ends.")] = False,
    output: OutputOption = Output.text, db: DbOption = None, server: ServerOption = None,
) -> None:
    """Run WORKFLOW once through the repository and wait for it.

    The run is stored and queued like any other (limits apply). Prints the run id and status.

    Exit code 0 on success, 1 when the run failed or was canceled, 2 on bad input, 130/143 when interrupted
    (Ctrl-C / SIGTERM) and left unfinished.
    """
    guard()  # the run may print (or start programs that do): stdout carries the result only
    remote_server = remote.chosen(server)
    if remote_server is not None:
        (name,) = remote_server.args(positionals, ["WORKFLOW"], module=module, db=db)
        if env:
            raise CliError(f"--env: not available with {remote_server.named}: the server's API takes no run "
                           "environment (runs get the server's)")
        run_tags = parsing.pairs(tags, "--tag")
        values = parsing.params(params, "-p")  # JSON, else text: the server's API has no dates
        with remote.connect(remote_server) as client:
            info = client.workflow(name)
            submitted = client.run(info.name, partition_key=partition, params=values, tags=run_tags,
                                   run_name=run_name, idempotency_key=idempotency_key,
                                   scheduled_time=_start_at(start_at).isoformat() if start_at else None)
            code = _submitted(client, submitted, Hints.of_server(remote_server), no_wait=no_wait, logs=logs,
                              output=output)
        raise typer.Exit(code)
    config = load_config()
    target, (name,) = targets.pick(positionals, ["WORKFLOW"], module, config)
    target = targets.require(target, ["WORKFLOW"], positionals or [])
    environ, run_tags = parsing.environ(env), parsing.pairs(tags, "--tag")
    parsing.pairs(params, "-p")  # the K=V syntax, before anything is loaded
    hints = Hints.of(target, db, config)
    with targets.repository(target, db, config) as repo:
        wf = repo.workflow(name, "WORKFLOW")
        values = parsing.params(params, "-p", wf)
        try:  # --no-wait only stores it: this process exits at once, and a daemon or a waiter runs it
            submitted = repo.run(wf.name, partition_key=partition, params=values, tags=run_tags, run_name=run_name,
                                 scheduled_time=_start_at(start_at) if start_at else None,
                                 idempotency_key=idempotency_key, environ=environ, block=False, coordinate=not no_wait)
        except ValueError as exc:
            raise CliError(re.sub(r"^partition_key:", "--partition:", str(exc))) from None
        code = _submitted(repo, submitted, hints, no_wait=no_wait, logs=logs, output=output)
    raise typer.Exit(code)


def _start_at(text: str) -> datetime:
    """``--start-at``: an ISO-8601 date or datetime (no offset: UTC)."""
    from ..clock import to_datetime

    try:
        return to_datetime(text, "--start-at")
    except ValueError:
        raise CliError(f"--start-at: {text!r} is not an ISO-8601 date or datetime (e.g. 2026-01-01T06:00:00+00:00)"
                       ) from None


def _submitted(repo: Backend, submitted: ac.Run, hints: Hints, *, no_wait: bool, logs: bool, output: Output) -> int:
    """A submitted run: waited for (unless --no-wait) and shown; returns the exit code."""
    result = submitted if no_wait else _wait_run(repo, submitted, hints)
    if result is None:
        return signals.interrupted_code()
    if output is Output.json:
        write_json(result)
    else:
        _print_run(result, repo if logs else None)
        if not result.is_finished:
            follow_it = hints.command("runs show", result.run_id, "--wait", code=True)
            if hints.remote:
                note(f"run {result.run_id} is {result.status}: the server runs it; follow it with `{follow_it}`.")
            else:
                note(f"run {result.run_id} is {result.status}: it runs while a process coordinates it, e.g. "
                     f"`{follow_it}` (or the daemon).")
    return FAILED if result.status in ("failed", "canceled") else OK


def _wait_run(repo: Backend, run: ac.Run, hints: Hints) -> ac.Run | None:
    """Wait for the run to end (storage hiccups are waited out). On Ctrl-C: ask (on a terminal) whether to
    cancel it; ``None`` when it is left unfinished (always so after SIGTERM)."""
    try:
        return _wait(repo, run.run_id)
    except KeyboardInterrupt:
        pass
    if not signals.terminated() and sys.stdin.isatty() and sys.stderr.isatty():
        try:
            cancel = Confirm.ask(f"\nCancel run {run.run_id}? (no: leave it)", default=False, console=stderr())
        except (KeyboardInterrupt, EOFError):
            cancel = False
        if cancel:
            repo.cancel_run(run.run_id)
            return repo.wait_run(run.run_id, timeout=30)
    if hints.remote:  # the server runs it: only the waiting stops
        note(f"\nstopped waiting for run {run.run_id}; it goes on on the server.\n"
             f"  {hints.command('runs show', run.run_id, '--wait')}\n  {hints.command('runs cancel', run.run_id)}")
        return None
    note(f"\nrun {run.run_id} left unfinished. Once this command exits it stops, and it is retried when a "
         f"process waits on it:\n  {hints.command('runs show', run.run_id, '--wait', code=True)}\n"
         f"  {hints.command('runs cancel', run.run_id)}")
    return None


def _wait(repo: Backend, run_id: str) -> ac.Run:
    hiccups = Hiccups()
    while True:
        try:
            return repo.wait_run(run_id, timeout=POLL_SECONDS * 4)
        except TimeoutError:
            continue
        except Exception as exc:  # noqa: BLE001 - a storage hiccup, or re-raised
            hiccups.absorb(exc)


def dev_run(
    positionals: Positionals = None, module: ModuleOption = None,
    flow_file: Annotated[Optional[Path], typer.Option(
        "-f", "--file", metavar="PIPELINE.yaml",
        help="A YAML flow file (then WORKFLOW may be left out when it holds one flow).")] = None,
    env: EnvOption = None, params: ParamOption = None, partition: PartitionOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Run WORKFLOW once in this process, without storage: for development.

    Uses ac.create_context(): --env sets the run's environment (e.g. ANACHRON_TIME, the logical time).

    Prints the workflow's return value (JSON when it can be, else its repr) on stdout and its log lines on
    stderr. Exit code 0 on success, 1 when the run failed (the error and traceback on stderr; a malformed
    ANACHRON_TIME fails the run), 2 on bad input.
    """
    guard()  # the run may print: stdout carries its result only
    config = load_config()
    if flow_file is not None:
        if module:
            raise CliError(f"give -f {flow_file} or -m {module}, not both")
        given = list(positionals or [])
        if len(given) > 1:
            raise CliError(f"too many arguments: {' '.join(given[1:])!r} (usage: -f PIPELINE.yaml [WORKFLOW])")
        target = targets.Target.parse(str(flow_file))
        loaded = targets.load(target, config)
        if not given and len(loaded.workflows) > 1:
            names = ", ".join(w.name for w in loaded.workflows)
            raise CliError(f"missing WORKFLOW: {flow_file} holds {len(loaded.workflows)} flows ({names})")
        name = given[0] if given else loaded.workflows[0].name
    else:
        picked, (name,) = targets.pick(positionals, ["WORKFLOW"], module, config)
        loaded = targets.load(targets.require(picked, ["WORKFLOW"], positionals or []), config)
    environ = parsing.environ(env)
    parsing.pairs(params, "-p")
    wf = loaded.workflow(name)
    values = parsing.params(params, "-p", wf)
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
            echo(_show_value(result))
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


def _print_run(run: ac.Run, repo: Backend | None) -> None:
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
    "anachron runs list --workflow etl --status failed", "anachron runs list --backfill 8115535659a443f9 -o json",
    "anachron runs list --partition 2024-01-13  # every run that covered that key",
    "anachron runs list --tag team=data --tag anachron/trigger=schedule"))
def list_runs(
    positionals: Positionals = None, module: ModuleOption = None,
    workflow: Annotated[Optional[str], typer.Option("--workflow", "-w", metavar="NAME")] = None,
    status: Annotated[Optional[list[str]], typer.Option("--status", metavar="STATUS",
                                                        help="queued, running, success, failed, canceled.")] = None,
    backfill: Annotated[Optional[str], typer.Option("--backfill", metavar="ID",
                                                    help="The runs of this backfill (a short id will do).")] = None,
    partition: Annotated[Optional[str], typer.Option(
        "--partition", metavar="KEY", help="The runs that covered this partition key (alone or in a batch).")] = None,
    tags: Annotated[Optional[list[str]], typer.Option("--tag", metavar="K=V",
                                                      help="Runs with this tag (repeatable: all of them).")] = None,
    limit: Annotated[int, typer.Option("--limit", metavar="N")] = 50,
    output: OutputOption = Output.text, db: DbOption = None, server: ServerOption = None,
) -> None:
    """List runs, newest first."""
    if output is Output.json:
        guard()
    opened, _, _ = open_backend(server, positionals, [], module, db)
    statuses = check_statuses(status, ("queued", "running", "success", "failed", "canceled"))
    wanted_tags = dict(parsing.pairs(tags, "--tag"))
    if limit < 1:
        raise CliError(f"--limit {limit}: must be >= 1")
    with opened as repo:
        backfill_id = resolve(repo, "backfill", backfill) if backfill is not None else None
        found = repo.list_runs(workflow=workflow, status=statuses, backfill_id=backfill_id, tags=wanted_tags or None,
                               limit=limit, partition_key=partition)
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
                                                       "needs TARGET, or --server (the server runs it). Exit 1 "
                                                       "if it failed.")] = False,
    output: OutputOption = Output.text, db: DbOption = None, server: ServerOption = None,
) -> None:
    """Show one run."""
    if output is Output.json or wait:
        guard()
    opened, (run_id,), hints = open_backend(
        server, positionals, ["RUN_ID"], module, db, needs_code="runs show --wait needs the workflow code: give "
        "TARGET or -m MODULE before the id (or --server URL)" if wait else None)
    with opened as repo:
        run_ = _get_run(repo, run_id)
        if wait and not run_.is_finished:
            waited = _wait_run(repo, run_, hints)
            if waited is None:
                raise typer.Exit(signals.interrupted_code())
            run_ = waited
        if output is Output.json:
            write_json(run_)
        else:
            _print_run(run_, None)
            out = stdout()
            for label, value in _run_fields(run_):
                out.print(f"  {label:<15}{escape(value)}")
    raise typer.Exit(FAILED if wait and run_.status in ("failed", "canceled") else OK)


@runs_app.command(cls=usage("[TARGET] RUN_ID"), epilog=example("anachron runs logs 4efefea85a2349388b16d9a14f905029"))
def logs(positionals: Positionals = None, module: ModuleOption = None, output: OutputOption = Output.text,
         db: DbOption = None, server: ServerOption = None) -> None:
    """Print a run's log lines (every attempt)."""
    if output is Output.json:
        guard()
    opened, (run_id,), _ = open_backend(server, positionals, ["RUN_ID"], module, db)
    with opened as repo:
        lines = repo.run_logs(resolve(repo, "run", run_id))
        if output is Output.json:
            write_json(lines)
            return
        for line in lines:
            echo(f"{when(line['time'])}  #{line['attempt']}  {line['level']:<8}{line['message']}")


@runs_app.command(cls=usage("[TARGET] RUN_ID"), epilog=example("anachron runs cancel 4efefea85a2349388b16d9a14f905029"))
def cancel(positionals: Positionals = None, module: ModuleOption = None, db: DbOption = None,
           server: ServerOption = None) -> None:
    """Cancel a queued or running run."""
    opened, (run_id,), _ = open_backend(server, positionals, ["RUN_ID"], module, db)
    with opened as repo:
        before = _get_run(repo, run_id)
        run_id = before.run_id
        if not repo.cancel_run(run_id):
            raise CliError(f"run {run_id} is {before.status}; only a queued or running run can be canceled")
        echo(f"run {run_id}: {before.status} → {_get_run(repo, run_id).status}")


def _get_run(repo: Backend, run_id: str) -> ac.Run:
    """The run a RUN_ID argument names (its full id, or a unique prefix or suffix)."""
    full = resolve(repo, "run", run_id)
    found = repo.get_run(full)
    if found is None:  # deleted (pruned) between the two reads
        raise ac.NotFoundError(f"RUN_ID: run {run_id!r} not found")
    return found


def _run_fields(run: ac.Run) -> list[tuple[str, str]]:
    """``runs show``'s lines as a person reads them: keys and tags as text, parameters as JSON, times in the
    local zone like every other time the CLI prints; ``-`` for what is not set."""
    fields = [("partitions", _keys(run.partition_keys))] if len(run.partition_keys) > 1 else []
    fields += [
        ("params", json.dumps(jsonable(run.params), ensure_ascii=False) if run.params else "-"),
        ("tags", ", ".join(f"{k}={v}" for k, v in run.tags.items()) or "-"),
        ("backfill", run.backfill_id or "-"),
        ("attempt", str(run.attempt)),
        ("logical time", run.logical_time.isoformat() if run.logical_time else "-"),
        ("created", when(run.created_at)),
        ("started", when(run.started_at)),
        ("ended", when(run.ended_at)),
    ]
    return fields


def _keys(keys: Sequence[str]) -> str:
    return "" if not keys else keys[0] if len(keys) == 1 else f"{keys[0]} … {keys[-1]} ({count(len(keys))})"
