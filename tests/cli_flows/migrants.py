"""The migrants' workflows for the command line's tests (tests/test_cli_migrants.py): a repository with an
InProcessExecutor (fast) on the database the CLI is given. Each run writes what it saw to ``$MARKERS``."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import anachron as ac


def _mark(**seen: object) -> None:
    ctx = ac.context()
    directory = os.environ.get("MARKERS")
    if directory:
        record = {"run_id": ctx.run_id, "partition_key": ctx.partition_key, "now": ac.now().isoformat(), **seen}
        Path(directory, f"{ctx.run_id}-{uuid.uuid4().hex[:6]}.json").write_text(json.dumps(record))


@ac.workflow(partitions=ac.DailyPartitions("2025-12-01"), schedule=ac.Schedule("0 6 * * *"))
def daily_summary():
    _mark()


@ac.workflow(schedule=ac.Schedule("0 0 * * *", id="nightly"))
def nightly_export():
    _mark()


@ac.workflow
def export_snapshot(region: str = "us"):
    _mark(region=region)


repo = ac.CodeRepository([daily_summary, nightly_export, export_snapshot], executor=ac.InProcessExecutor(2))
