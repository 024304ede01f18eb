"""``anachron daemon [TARGET]...``: the always-on process that makes time pass.

It fires the schedules of TARGET's workflows, leads every backfill that has no live leader (one created
with ``--no-wait``, or whose process died) and takes over runs whose process is gone. It logs one line per
decision on stderr and runs until Ctrl-C or SIGTERM, when it stops its runs and hands its leases back at
once (another daemon takes over without waiting for them to expire). Being stopped is how a daemon ends:
the exit code is 0.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated

import typer

from ..runenv import scrub_environ
from . import signals
from . import target as targets
from .common import CliError, DbOption, ModuleOption, Positionals, example, note, usage
from .config import load_config


class _Format(logging.Formatter):
    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802 - logging API
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(record.created))


def daemon(
    positionals: Positionals = None, module: ModuleOption = None,
    scan: Annotated[float, typer.Option("--scan", metavar="SECONDS", min=0.05,
                                        help="How often to look for backfills and runs nobody leads.")] = 1.0,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log the engine's details too.")] = False,
    db: DbOption = None,
) -> None:
    """Fire schedules, lead unled backfills and adopt orphaned runs, until stopped.

    TARGET (one or more Python files, YAML flows or folders of them, or -m MODULE) defines the workflows.
    Several daemons may share one database: each tick still runs once.
    """
    config = load_config()
    chosen = targets.pick_many(positionals, module, config)
    with log_to_stderr(verbose):
        with targets.repository_of(chosen, db, config) as repo:
            scrub_environ()  # the database URL is read: runs started from here on see no secret of the daemon
            try:
                loop = repo.daemon(scan_seconds=scan)
            except ValueError as exc:
                raise CliError(str(exc)) from None
            try:
                loop.run()
            except KeyboardInterrupt:
                why = "SIGTERM" if signals.terminated() else "Ctrl-C"
                note(f"daemon stopping ({why}): runs in flight are stopped and retried by the next process; "
                     "leases released")
    raise typer.Exit(0)


@contextmanager
def log_to_stderr(verbose: bool) -> Iterator[None]:
    """The ``anachron`` loggers' lines (one per decision) on stderr while the block runs."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Format("%(asctime)s %(levelname)s %(message)s"))
    root = logging.getLogger("anachron")
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if verbose else logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        yield
    finally:
        root.removeHandler(handler)


EPILOG = example("anachron daemon flows.py", "anachron daemon flows/ etl.py --db postgresql+psycopg://localhost/prod",
                 "anachron daemon -m mypkg.flows")
USAGE_LINE = usage("[TARGET]...")
