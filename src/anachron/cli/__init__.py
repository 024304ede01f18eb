"""The ``anachron`` command line (Typer + Rich).

Layout: one module per command family, each registering onto ``app``; ``main()`` runs the app and maps
every error to an exit code with one ``error:`` line on stderr (no traceback):

- 0 success; 1 a run or backfill that failed (or was canceled), or a storage error; 2 bad usage or bad
  input; 130 interrupted (Ctrl-C) and 143 terminated (SIGTERM), with the work left unfinished.

A storage error is one line, ``error: storage: <the database's message>`` — never SQL or parameters.

``--server URL`` (or ``ANACHRON_SERVER``) makes the commands with an API route drive an ``anachron server``
instead (``remote``): the same commands and renderers, over ``backend.Backend``.

Commands for the daemon, the server, schedules and YAML flows slot in the same way: a module with its
commands (or a ``typer.Typer`` sub-app) and one line below.
"""

from __future__ import annotations

import os
import sys
import traceback
from collections.abc import Sequence

import typer

from . import admin, backfill, daemon, partitions, runs, schedule, server, signals, streams
from .common import FAILED, TARGET_HELP, USAGE, CliError, example, usage

try:  # Typer >= 0.20 vendors Click as typer._click; older Typer uses Click itself
    from typer._click import exceptions as _click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as _click_exceptions  # type: ignore[no-redef]  # the same module, unvendored

_ABORTS = tuple({KeyboardInterrupt, typer.Abort, getattr(_click_exceptions, "Abort", typer.Abort)})

app = typer.Typer(
    name="anachron",
    help="anachron — a backfill-first workflow orchestrator. Run workflows, replay any window of history, "
         "watch and control backfills.\n\n" + TARGET_HELP,
    no_args_is_help=True, add_completion=False, rich_markup_mode="rich", pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
    epilog=example("anachron backfill create flows.py etl --from 2024-01-01 --to 2024-03-31",
                   "anachron run flows.py etl --partition 2024-01-01",
                   "anachron dev-run flows.py etl --env ANACHRON_TIME=unix:1767225600",
                   "anachron partitions flows.py etl", "anachron check flows.py",
                   "anachron backfill list --server http://anachron.internal:8080  # drive a shared server",
                   target=False),
)

app.command("run", cls=usage("[TARGET] WORKFLOW"), epilog=example(
    "anachron run flows.py etl --partition 2024-01-01",
    "anachron run flows.py hello -p name=ada -p n=3 --env ANACHRON_TIME=unix:1767225600",
    "anachron run -m mypkg.flows etl --partition 2024-01-01 --idempotency-key etl-2024-01-01 --output json",
))(runs.run)
app.command("dev-run", cls=usage("[TARGET] WORKFLOW"), epilog=example(
    "anachron dev-run flows.py hello --env ANACHRON_TIME=unix:1767225600 -p name=ada",
    "anachron dev-run flows.py etl --partition 2024-01-01",
))(runs.dev_run)
app.add_typer(backfill.app, name="backfill")
app.add_typer(runs.runs_app, name="runs")
app.command("partitions", cls=usage("[TARGET] WORKFLOW"), epilog=example(
    "anachron partitions flows.py etl", "anachron partitions etl --status failed  # target from pyproject.toml",
    "anachron partitions flows.py etl --output json",
))(partitions.partitions)
app.add_typer(schedule.app, name="schedule")
app.command("daemon", cls=daemon.USAGE_LINE, epilog=daemon.EPILOG)(daemon.daemon)
app.command("server", cls=server.USAGE_LINE, epilog=server.EPILOG)(server.server)
admin.register(app)


def _version(value: bool) -> None:
    if value:
        from .. import __version__

        typer.echo(f"anachron {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main(version: bool = typer.Option(False, "--version", "-V", is_eager=True, callback=_version,
                                       help="Print anachron's version and exit.")) -> None:
    """The options before any command."""


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Run the app; returns the exit code instead of exiting (handy in tests)."""
    restore_signals = signals.install()
    try:
        return _run(argv)
    finally:
        restore_signals()  # from here on, SIGTERM has its default effect: the work is over
        streams.restore()


def _run(argv: Sequence[str] | None) -> int:
    command = typer.main.get_command(app)
    try:
        result = command.main(args=list(argv) if argv is not None else None, prog_name="anachron",
                              standalone_mode=False)
    except _click_exceptions.UsageError as exc:
        path = exc.ctx.command_path if exc.ctx is not None else "anachron"
        return _error(f"{exc.format_message()} (see '{path} --help')", USAGE)
    except _click_exceptions.ClickException as exc:
        return _error(exc.format_message(), exc.exit_code)
    except CliError as exc:
        return _error(str(exc), exc.exit_code, every_line=exc.every_line)
    except (ValueError, LookupError, FileNotFoundError) as exc:  # NotFoundError is a LookupError
        return _error(str(exc), USAGE)
    except _ABORTS:
        return _error("terminated" if signals.terminated() else "interrupted", signals.interrupted_code())
    except BrokenPipeError:  # the reader of our output went away (| head): not worth a word
        streams.silence()
        return FAILED
    except Exception as exc:  # noqa: BLE001 - a storage error (one line), else a bug
        storage = _storage_error(exc)
        if storage is not None:
            return _error(f"storage: {storage}", FAILED)
        if os.environ.get("ANACHRON_DEBUG"):
            traceback.print_exc()
            return _error(f"internal error: {type(exc).__name__}: {exc}", FAILED)
        return _error(f"internal error: {type(exc).__name__}: {exc} (set ANACHRON_DEBUG=1 for the traceback)",
                      FAILED)
    return result if isinstance(result, int) else 0


def _storage_error(exc: BaseException) -> str | None:
    """The first line of the database's message for a ``StorageError`` (storage translates every driver error
    into one at its boundary: no SQL, no parameters); ``None`` for anything else."""
    from ..storage import StorageError, StorageUnavailable

    if isinstance(exc, StorageUnavailable):
        return "unavailable: " + _first(str(exc).removeprefix("storage unavailable: "))
    if isinstance(exc, StorageError):
        return _first(str(exc).removeprefix("storage: "))
    return None


def _first(text: str) -> str:
    lines = text.strip().splitlines()
    return lines[0].strip() if lines else "failed"


def _error(message: str, code: int, every_line: bool = False) -> int:
    lines = str(message).strip().splitlines() or ["failed"]
    sys.stderr.write("".join(f"error: {line}\n" for line in (lines if every_line else lines[:1])))
    sys.stderr.flush()
    return code


def main(argv: Sequence[str] | None = None) -> None:
    """The ``anachron`` console script."""
    code = run_cli(argv)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        streams.silence_fd(1)  # nothing more to say; and no "Exception ignored" at exit
    sys.exit(code)


__all__ = ["app", "main", "run_cli"]
