"""The ``anachron`` command line (Typer + Rich).

Layout: one module per command family, each registering onto ``app``; ``main()`` runs the app and maps
every error to an exit code with one ``error:`` line on stderr (no traceback):

- 0 success; 1 a run or backfill that failed (or was canceled); 2 bad usage or bad input;
  130 interrupted (Ctrl-C) with the work left unfinished.

Commands for the daemon, the server, schedules and YAML flows slot in the same way: a module with its
commands (or a ``typer.Typer`` sub-app) and one line below.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Sequence

import typer

from . import admin, backfill, partitions, runs
from .common import FAILED, INTERRUPTED, USAGE, CliError, TARGET_HELP, example, usage

try:  # Typer >= 0.20 vendors Click as typer._click; older Typer uses Click itself
    from typer._click import exceptions as _click_exceptions
except ImportError:  # pragma: no cover
    from click import exceptions as _click_exceptions

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
                   "anachron partitions flows.py etl", "anachron check flows.py", target=False),
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
admin.register(app)
# Later: app.add_typer(schedule.app, name="schedule"); app.command("server")(server.serve);
#        app.command("daemon")(daemon.daemon) — each in its own module.


def run_cli(argv: Sequence[str] | None = None) -> int:
    """Run the app; returns the exit code instead of exiting (handy in tests)."""
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
        return _error(str(exc), exc.exit_code)
    except (ValueError, LookupError, FileNotFoundError) as exc:  # NotFoundError is a LookupError
        return _error(str(exc), USAGE)
    except _ABORTS:
        return _error("interrupted", INTERRUPTED)
    except BrokenPipeError:
        return FAILED
    except Exception as exc:  # noqa: BLE001 - a bug: one line, the traceback on request
        if os.environ.get("ANACHRON_DEBUG"):
            traceback.print_exc()
            return _error(f"internal error: {type(exc).__name__}: {exc}", FAILED)
        return _error(f"internal error: {type(exc).__name__}: {exc} (set ANACHRON_DEBUG=1 for the traceback)",
                      FAILED)
    return result if isinstance(result, int) else 0


def _error(message: str, code: int) -> int:
    lines = str(message).strip().splitlines() or ["failed"]
    sys.stderr.write(f"error: {lines[0]}\n")
    sys.stderr.flush()
    return code


def main(argv: Sequence[str] | None = None) -> None:
    """The ``anachron`` console script."""
    code = run_cli(argv)
    try:
        sys.stdout.flush()
    except BrokenPipeError:
        pass
    sys.exit(code)


__all__ = ["app", "main", "run_cli"]
