"""Shared pieces of the command line: errors, consoles, option types, usage lines."""

from __future__ import annotations

import sys
from enum import Enum
from typing import Annotated, Optional

import typer
from rich.console import Console
from typer.core import TyperCommand

# Exit codes
OK, FAILED, USAGE, INTERRUPTED = 0, 1, 2, 130


class CliError(Exception):
    """A problem with what the user asked for: printed as one ``error:`` line, exit code 2 by default."""

    def __init__(self, message: str, exit_code: int = USAGE):
        super().__init__(message)
        self.exit_code = exit_code


class Output(str, Enum):
    text = "text"
    json = "json"


def stdout() -> Console:
    """The console for results (stdout). Piped output is not wrapped or squeezed to 80 columns."""
    console = Console(highlight=False, soft_wrap=True)
    if not console.is_terminal:
        console = Console(highlight=False, soft_wrap=True, width=200)
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
        def collect_usage_pieces(self, ctx):  # noqa: D401 - click hook
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
         "(default: $ANACHRON_DATABASE_URL, then \\[tool.anachron] database, then the target's repository).")]
ModuleOption = Annotated[Optional[str], typer.Option(
    "-m", "--module", metavar="MODULE", show_default=False,
    help="Load the target as an importable module (pkg.mod, or pkg.mod:repo to pick one repository).")]
OutputOption = Annotated[Output, typer.Option(
    "--output", "-o", help="text for people, json for scripts (one JSON value on stdout, nothing else).")]
QuietOption = Annotated[bool, typer.Option("--quiet", "-q", help="No progress display.")]

TARGET_HELP = (
    "TARGET is a Python file (flows.py, or flows.py:repo to pick one of several repositories) or, with "
    "-m, a module. It may be left out when \\[tool.anachron] in pyproject.toml (or anachron.toml) names a "
    "target: with one positional fewer, the first positional is taken as the next argument."
)
TARGET_NOTE = ("[dim]TARGET: a Python file (or -m MODULE); leave it out when \\[tool.anachron] in pyproject.toml "
               "names one.[/dim]")
