"""``anachron check`` (wall-clock reads in tasks and workflows) and ``anachron db upgrade``."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..check import check_paths
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
    """Flag wall-clock reads inside tasks and workflows (use anachron.time() instead).

    Finds time.time(), datetime.now(), datetime.utcnow(), date.today() (under any import alias) inside
    @task and @workflow functions, which must use anachron.time() / anachron.now() (the logical clock) so
    backfills see the time of the partition they compute. Prints file:line: message for each.

    TARGET is one or more Python files or directories (walked for *.py); default: the configured target, else
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
        findings = check_paths(chosen)
    except FileNotFoundError as exc:
        raise CliError(f"TARGET: {exc}") from None
    if output is Output.json:
        write_json([{"path": f.path, "line": f.line, "col": f.col, "call": f.call, "function": f.function,
                     "message": f.message} for f in findings])
    else:
        for finding in findings:
            echo(finding.format())
        if findings:
            note(f"{len(findings)} wall-clock call(s) in tasks or workflows: use anachron.time() / anachron.now()")
        else:
            note("ok: no wall-clock calls in tasks or workflows")
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


db_app = typer.Typer(no_args_is_help=True, help="The database: schema migrations.", rich_markup_mode="rich",
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
    from ..storage.engine import HEAD_REVISION

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
        write_json({"database": shown, "revision": revision, "head": HEAD_REVISION})
    else:
        echo(f"{shown}: schema at revision {revision}" + (" (head)" if revision == HEAD_REVISION else ""))


def register(app: typer.Typer) -> None:
    app.command(cls=usage("[TARGET]..."), epilog=example(
        "anachron check flows.py", "anachron check src/  # every *.py below", "anachron check -m mypkg.flows",
        target=False))(check)
    app.add_typer(db_app, name="db")
