"""The migrants' paths through the command line (issue 13), run as a user runs them: ``python -m anachron.cli``
in a subprocess against a real SQLite file (the Python and HTTP doors, on PostgreSQL too, are in
test_schedule_backfills.py, test_cron_backfills.py, test_deferred_runs.py and test_backfill_status.py).

Workflows: tests/cli_flows/migrants.py (runs write what they saw to ``$MARKERS``) and
tests/yaml_flows/typed_pipeline.yaml.
"""

from __future__ import annotations

import getpass
import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from test_cli import Cli

TESTS = Path(__file__).parent
MIGRANTS = str(TESTS / "cli_flows" / "migrants.py")
PIPELINE = str(TESTS / "yaml_flows" / "typed_pipeline.yaml")
UTC = timezone.utc


@pytest.fixture
def cli(tmp_path) -> Cli:
    cli = Cli(tmp_path, f"sqlite:///{tmp_path / 'anachron.db'}")
    (tmp_path / "markers").mkdir()
    cli.env["MARKERS"] = str(tmp_path / "markers")
    return cli


def seen(cli: Cli) -> list[dict]:
    found = [json.loads(p.read_text()) for p in Path(cli.env["MARKERS"]).glob("*.json")]
    return sorted(found, key=lambda r: r["now"])


def error_line(proc) -> str:
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    return lines[0]


def test_schedule_backfill_runs_partitions_up_to_now_once_per_trigger(cli):
    replayed = cli.json("schedule", "backfill", MIGRANTS, "daily_summary", "--start", "2025-12-10",
                        "--end", "2025-12-12T23:00:00+00:00")
    assert replayed["status"] == "completed" and replayed["num_runs"] == 3
    assert [r["partition_key"] for r in seen(cli)] == ["2025-12-09", "2025-12-10", "2025-12-11"]
    partitions = cli.json("partitions", MIGRANTS, "daily_summary")
    assert [(r["from"], r["to"], r["status"]) for r in partitions["ranges"] if r["status"] == "success"] == [
        ("2025-12-09", "2025-12-11", "success")]

    yesterday = (datetime.now(UTC) - timedelta(days=1)).date().isoformat()
    clipped = cli("schedule", "backfill", MIGRANTS, "nightly_export", "-s", "nightly", "--start", yesterday,
                  "--end", "2099-01-01", "--no-wait")
    assert clipped.returncode == 0, clipped.stderr
    assert "note: --end 2099-01-01 is in the future: only past ticks are replayed, up to " in clipped.stderr
    active = clipped.stdout.strip()
    second = cli("schedule", "backfill", MIGRANTS, "nightly_export", "-s", "nightly", "--start", "2025-01-01",
                 "--end", "2025-01-02")
    line = error_line(second)
    assert line.startswith("error: --schedule: schedule 'nightly' of workflow 'nightly_export' already has an "
                           "active backfill") and active in line


def test_a_cron_backfill_and_what_its_status_says(cli):
    result = cli.json("backfill", "create", MIGRANTS, "export_snapshot", "--start", "2026-01-01",
                      "--end", "2026-01-03T12:00:00+00:00", "--cron", "0 0 * * *", "-p", "region=eu")
    assert result["status"] == "completed" and result["num_runs"] == 3
    assert [(r["now"], r["region"]) for r in seen(cli)] == [(f"2026-01-0{d}T00:00:00+00:00", "eu") for d in (1, 2, 3)]

    status = cli.json("backfill", "status", MIGRANTS, result["backfill_id"])
    assert status["created_by"] == getpass.getuser() and status["tags"] == []
    assert status["request"]["cron"] == "0 0 * * *" and status["request"]["params"] == {"region": "eu"}
    assert status["request"]["start"] == "2026-01-01" and status["request"]["max_concurrency"] == 4
    text = cli("backfill", "status", MIGRANTS, result["backfill_id"])
    assert text.returncode == 0
    assert "asked      2026-01-01 … 2026-01-03T12:00:00+00:00 · ticks of cron '0 0 * * *' (UTC)" in text.stdout
    assert "rules      the workflow's strategy · reprocess all · oldest_first · continue · max_concurrency 4" \
        in text.stdout and 'params     {"region": "eu"}' in text.stdout
    assert f"by         {getpass.getuser()}" in text.stdout

    bad = cli("backfill", "create", MIGRANTS, "export_snapshot", "--start", "2026-01-01", "--cron", "every day")
    assert error_line(bad).startswith("error: --cron: ")
    orphan = cli("backfill", "create", MIGRANTS, "export_snapshot", "--partitions", "a", "--cron", "0 0 * * *")
    assert "--cron" in error_line(orphan)


def test_runs_start_at_a_time_and_need_their_partition(cli):
    at = (datetime.now(UTC) + timedelta(seconds=3)).replace(microsecond=0)
    started = time.monotonic()
    run = cli.json("run", MIGRANTS, "export_snapshot", "--start-at", at.isoformat())
    assert run["status"] == "success" and run["logical_time"] == at.isoformat()
    assert datetime.fromisoformat(run["started_at"]) >= at and time.monotonic() - started >= 2
    (marker,) = seen(cli)
    assert marker["now"] == at.isoformat()  # its logical clock: the time it was deferred to

    later = (datetime.now(UTC) + timedelta(seconds=2)).replace(microsecond=0)
    queued = cli("run", MIGRANTS, "export_snapshot", "--start-at", later.isoformat(), "--no-wait")
    assert queued.returncode == 0 and "handed back" not in queued.stderr, queued.stderr  # never started here
    run_id = queued.stdout.split()[1]
    shown = cli.json("runs", "show", MIGRANTS, run_id, "--wait")  # the next waiter starts it, at its time
    assert shown["status"] == "success" and datetime.fromisoformat(shown["started_at"]) >= later

    line = error_line(cli("run", MIGRANTS, "daily_summary"))
    assert line.startswith("error: --partition: workflow 'daily_summary' is partitioned")
    assert error_line(cli("run", MIGRANTS, "export_snapshot", "--start-at", "soon")).startswith("error: --start-at")


def test_typed_pipeline_inputs_reach_python_with_their_types(cli):
    dev = cli.json("dev-run", "-f", PIPELINE, "-p", "offset=2.25", "-p", "day=2025-02-03")
    assert dev["status"] == "success", dev
    assert dev["result"] == {"shifted": 2.75, "offset_type": "float", "day_type": "date", "weekday": 1,
                             "label": "day 2025-02-03", "many": True, "items": [3, "x"]}
    stored = cli.json("run", PIPELINE, "typed_pipeline", "-p", "offset=1.5")
    assert stored["status"] == "success" and stored["params"] == {"offset": 1.5}
