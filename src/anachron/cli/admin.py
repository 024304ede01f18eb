"""``anachron check`` (wall-clock reads in tasks and workflows), ``anachron db upgrade`` and ``db prune``."""

from __future__ import annotations

import importlib.util
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..check import check_flow_paths, check_paths
from . import target as targets
from .common import FAILED, OK, CliError, DbOption, ModuleOption, Output, OutputOption, example, note, usage
from .config import load_config, split_attr
from .output import write_json
from .streams import echo, guard


def check(
    paths: Annotated[Optional[list[str]], typer.Argument(hidden=True, show_default=False)] = None,
    module: ModuleOption = None,
    output: OutputOption = Output.text,
) -> None:
    """Flag wall-clock reads inside tasks and workflows, and unquoted user values in YAML flows' shell commands.

    Finds time.time(), datetime.now(), datetime.utcnow(), date.today() (under any import alias) inside
    @task and @workflow functions, which must use anachron.time() / anachron.now() (the logical clock) so
    backfills see the time of the partition they compute. In YAML flows, flags shell commands that put a
    value whoever starts a run chooses (a STRING input, a label, a dynamic partition key) in unquoted: write
    {{ inputs.x | shell_quote }}. Prints file:line: message for each.

    TARGET is one or more Python files, YAML flows or directories (walked for *.py, and for *.yaml / *.yml
    files with a top-level tasks: key); default: the configured target, else
    the current directory. The code is read, never imported or run. Exit code 1 when anything is found, 0 when
    clean, 2 when a file does not exist or does not parse.
    """
    if output is Output.json:
        guard()
    config = load_config()
    chosen = list(paths or [])
    if module:
        chosen.append(_module_path(module))
    if not chosen:
        if config.target:
            chosen = [split_attr(config.target)[0]]
        elif config.module:
            chosen = [_module_path(config.module)]
        else:
            chosen = ["."]
    try:
        clock_findings = check_paths(chosen)
        shell_findings = check_flow_paths(chosen)
    except FileNotFoundError as exc:
        raise CliError(f"TARGET: {exc}") from None
    findings = clock_findings + shell_findings
    if output is Output.json:
        write_json([{"path": f.path, "line": f.line, "col": f.col, "call": f.call, "function": f.function,
                     "message": f.message} for f in findings])
    else:
        for finding in findings:
            echo(finding.format())
        if clock_findings:
            note(f"{len(clock_findings)} wall-clock call(s) in tasks or workflows: use anachron.time() / "
                 "anachron.now()")
        if shell_findings:
            note(f"{len(shell_findings)} unquoted value(s) in shell commands of YAML flows: add | shell_quote")
        if not findings:
            note("ok: no wall-clock calls in tasks or workflows, no unquoted values in shell commands")
    raise typer.Exit(FAILED if findings else OK)


def _module_path(name: str) -> str:
    """The file or package directory of a module, found without importing it."""
    import os
    import sys

    name = split_attr(name)[0]
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        spec = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin:
        raise CliError(f"-m {name}: no module named {name!r}")
    origin = Path(spec.origin)
    return str(origin.parent if origin.name == "__init__.py" else origin)


db_app = typer.Typer(no_args_is_help=True, help="The database: schema migrations, pruning old runs.",
                     rich_markup_mode="rich",
                     epilog=example("anachron db upgrade --db sqlite:///.anachron/anachron.db", target=False))


@db_app.command(cls=usage(""), epilog=example(
    "anachron db upgrade --db sqlite:///.anachron/anachron.db",
    "ANACHRON_DATABASE_URL=postgresql+psycopg://me@db/anachron anachron db upgrade", target=False))
def upgrade(db: DbOption = None, output: OutputOption = Output.text) -> None:
    """Bring the database schema to the newest revision (creating it if needed) and print the revision.

    Opening a database from any command migrates it too; this command does it explicitly, e.g. before
    deploying a new version. The database comes from --db, else ANACHRON_DATABASE_URL, else
    \\[tool.anachron] database, else sqlite:///.anachron/anachron.db.
    """
    from ..storage import DEFAULT_URL
    from ..storage.engine import head_revision

    if output is Output.json:
        guard()
    config = load_config()
    chosen = targets.database(db, config)
    url = chosen.url or DEFAULT_URL
    storage = targets.open_storage(url, chosen.source)
    try:
        revision = storage.run(lambda s: s.schema_revision(), write=False)
    finally:
        storage.close()
    shown = targets.mask(url)
    if output is Output.json:
        write_json({"database": shown, "revision": revision, "head": head_revision()})
    else:
        echo(f"{shown}: schema at revision {revision}" + (" (head)" if revision == head_revision() else ""))


@db_app.command(cls=usage(""), epilog=example(
    "anachron db prune --older-than 90d --dry-run  # count what would go",
    "anachron db prune --older-than 12w --db postgresql+psycopg://me@db/anachron", target=False))
def prune(
    older_than: Annotated[Optional[str], typer.Option(
        "--older-than", metavar="AGE", show_default=False,
        help="Prune runs that finished longer ago than this: Nd, Nh, Nm or Nw (days, hours, minutes, weeks); "
             "required.")] = None,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Count the runs that would go; delete nothing.")] = False,
    db: DbOption = None, output: OutputOption = Output.text,
) -> None:
    """Delete finished runs older than --older-than, with their logs, keeping each partition's latest run.

    A partition key's latest run (the newest that finished and was not canceled) stays however old it is,
    so partition status stays true; queued and running runs are never touched. Runs without partitions and
    canceled runs go once old. Deletes in batches of 5,000 runs per transaction. The database as for
    `db upgrade`.
    """
    from ..repository import CodeRepository
    from ..storage import DEFAULT_URL

    if output is Output.json:
        guard()
    age = _age(older_than)
    now = datetime.now(timezone.utc)
    try:
        before = now - age
    except OverflowError:
        raise CliError(f"--older-than {older_than!r}: reaches back before year 1") from None
    config = load_config()
    chosen = targets.database(db, config)
    url = chosen.url or DEFAULT_URL
    repo = CodeRepository(storage=targets.open_storage(url, chosen.source), clock=lambda: now)
    try:
        pruned = repo.prune(age, dry_run=dry_run)
    finally:
        repo.close()
    if output is Output.json:
        write_json({"database": targets.mask(url), "before": before, "dry_run": dry_run, "runs": pruned})
    else:
        echo(f"{'would prune' if dry_run else 'pruned'} {pruned:,} run{'' if pruned == 1 else 's'} finished before "
             f"{before:%Y-%m-%d %H:%M} UTC")


_AGE_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}


def _age(text: str | None) -> timedelta:
    """``--older-than``: ``90d``, ``12h``, ``30m`` or ``2w`` as a positive duration."""
    if text is None:
        raise CliError("--older-than: required, e.g. --older-than 90d")
    number, unit = text.strip()[:-1], text.strip()[-1:]
    if not (number.isascii() and number.isdigit()) or unit not in _AGE_UNITS or int(number) == 0:
        raise CliError(f"--older-than {text!r}: expected a positive age such as 90d, 12h, 30m or 2w")
    try:
        return timedelta(**{_AGE_UNITS[unit]: int(number)})
    except OverflowError:
        raise CliError(f"--older-than {text!r}: too large") from None


def register(app: typer.Typer) -> None:
    app.command(cls=usage("[TARGET]..."), epilog=example(
        "anachron check flows.py", "anachron check src/  # every *.py below", "anachron check -m mypkg.flows",
        target=False))(check)
    app.add_typer(db_app, name="db")
