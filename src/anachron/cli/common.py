"""Shared pieces of the command line: errors, consoles, option types, usage lines."""

from __future__ import annotations

import sys
from enum import Enum
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console
from typer.core import TyperCommand

if TYPE_CHECKING:
    from typer._click import Context

# Exit codes
OK, FAILED, USAGE, INTERRUPTED, TERMINATED = 0, 1, 2, 130, 143


class CliError(Exception):
    """A problem with what the user asked for: printed as one ``error:`` line, exit code 2 by default."""

    def __init__(self, message: str, exit_code: int = USAGE, every_line: bool = False):
        super().__init__(message)
        self.exit_code = exit_code
        self.every_line = every_line  #: one ``error:`` line per line of the message (a flow's problems)


class Output(str, Enum):
    text = "text"
    json = "json"


def stdout() -> Console:
    """The console for results (stdout, see ``streams``). Piped output is not wrapped or squeezed to 80 columns."""
    from .streams import results

    console = Console(file=results(), highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(file=results(), highlight=False, soft_wrap=True, width=200)
    return console


def stderr() -> Console:
    """The console for progress, hints and errors (stderr)."""
    return Console(stderr=True, highlight=False, soft_wrap=True)


def note(message: str) -> None:
    """A plain line on stderr (hints, notices): never markup-interpreted."""
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def usage(pieces: str) -> type[TyperCommand]:
    """A command class whose usage line reads ``PIECES [OPTIONS]`` (e.g. ``[TARGET] WORKFLOW``)."""

    class Command(TyperCommand):
        def collect_usage_pieces(self, ctx: Context) -> list[str]:  # noqa: D401 - click hook
            return [pieces, "[OPTIONS]"] if pieces else ["[OPTIONS]"]

    return Command


def example(*lines: str, target: bool = True) -> str:
    """An ``Examples`` epilog for ``--help``: one command per line, ``# comment`` dimmed; then a TARGET note."""
    rendered = []
    for line in lines:
        code, sep, comment = line.partition("  # ")
        text = "  $ " + typer_escape(code)
        if sep:
            text += f"  [dim]# {typer_escape(comment)}[/dim]"
        rendered.append(text)
    text = "[bold]Examples[/bold]\n\n" + "\n\n".join(rendered)
    return text + ("\n\n" + TARGET_NOTE if target else "")


def typer_escape(text: str) -> str:
    from rich.markup import escape

    return escape(text)


# -- option types shared by several commands -----------------------------------------------------
Positionals = Annotated[Optional[list[str]], typer.Argument(hidden=True, show_default=False)]
DbOption = Annotated[Optional[str], typer.Option(
    "--db", metavar="URL", show_default=False,
    help="Database URL, e.g. sqlite:///path/to.db or postgresql+psycopg://... "
         "(default: $ANACHRON_DATABASE_URL, then \\[tool.anachron] database, then the target's repository; "
         "without a target, .anachron/anachron.db if it exists).")]
ModuleOption = Annotated[Optional[str], typer.Option(
    "-m", "--module", metavar="MODULE", show_default=False,
    help="Load the target as an importable module (pkg.mod, or pkg.mod:repo to pick one repository).")]
OutputOption = Annotated[Output, typer.Option(
    "--output", "-o", help="text for people, json for scripts (one JSON value on stdout, nothing else).")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]
ServerOption = Annotated[Optional[str], typer.Option(
    "--server", metavar="URL", show_default=False,
    help="Drive the anachron server at URL (e.g. http://host:8080) over its HTTP API instead of a local "
         "database: no TARGET, the server has the workflows (default: $ANACHRON_SERVER; the token, if the "
         "server needs one: $ANACHRON_API_TOKEN).")]

TARGET_HELP = (
    "TARGET is a Python file (flows.py, or flows.py:repo to pick one of several repositories), a YAML flow "
    "(pipeline.yaml) or a folder of them, or, with -m, a module. It may be left out when \\[tool.anachron] in "
    "pyproject.toml (or anachron.toml) names a target: with one positional fewer, the first positional is "
    "taken as the next argument."
)
TARGET_NOTE = ("[dim]TARGET: a Python file, a YAML flow or a folder of them (or -m MODULE); leave it out when "
               "\\[tool.anachron] in pyproject.toml names one.[/dim]")


def check_statuses(given: list[str] | None, allowed: tuple[str, ...]) -> list[str] | None:
    """The ``--status`` values, each one of ``allowed`` (``CliError`` naming the first that is not)."""
    for value in given or ():
        if value not in allowed:
            raise CliError(f"--status {value!r}: expected {', '.join(allowed[:-1])} or {allowed[-1]}")
    return given or None
