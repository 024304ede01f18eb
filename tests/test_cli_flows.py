"""YAML flows on the command line: dev-run -f with a historical logical time, a flow file or a folder of
them as TARGET (runs in worker processes, backfills, schedules, the daemon), and broken files refused with
file, line and field (exit 2, no traceback)."""

from __future__ import annotations

import signal
from pathlib import Path

from helpers import wait_until
from test_cli import Cli, api, cli  # noqa: F401 - fixtures

FLOWS = Path(__file__).parent / "yaml_flows"
SCHEDULED = str(FLOWS / "scheduled_flow.yaml")


EXPORT = """\
id: export
namespace: company.team
inputs: [{id: region, type: STRING, defaults: us}]
tasks:
  - id: external_system_export
    type: io.kestra.plugin.scripts.shell.Commands
    commands:
      - echo "processing data for {{ trigger.date ?? execution.startDate }} in {{ inputs.region | shell_quote }}"
"""


def test_dev_run_renders_the_historical_date(cli, tmp_path):
    flow = tmp_path / "export.yaml"
    flow.write_text(EXPORT)
    for variable in ("ANACHRON_TIME", "STARLARK_TIME"):
        proc = cli("dev-run", "-f", str(flow), "--env", f"{variable}=unix:1767225600", "-p", "region=eu")
        assert proc.returncode == 0, proc.stderr
        assert "processing data for 2026-01-01T00:00:00+00:00 in eu" in proc.stderr, proc.stderr
    bad_time = cli("dev-run", "-f", str(flow), "--env", "ANACHRON_TIME=yesterday")
    assert bad_time.returncode == 1 and "ANACHRON_TIME" in bad_time.stderr


def test_dev_run_needs_the_workflow_when_the_file_has_several(cli, tmp_path):
    (tmp_path / "a.yaml").write_text("id: a\ntasks: [{id: t, type: log, message: hi}]\n")
    proc = cli("dev-run", "-f", str(tmp_path / "a.yaml"), "a")
    assert proc.returncode == 0 and "hi" in proc.stderr, proc.stderr
    too_many = cli("dev-run", "-f", str(tmp_path / "a.yaml"), "a", "b")
    assert too_many.returncode == 2 and "too many arguments" in too_many.stderr


def test_a_broken_flow_is_refused_with_file_line_and_field(cli, tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("id: broken\ntasks:\n  - id: a\n    type: shell\n    commands: ['echo {{ exection.id }}']\n"
                      "triggers:\n  - {id: s, type: schedule, cron: '61 * * * *'}\n")
    for argv in (["dev-run", "-f", str(broken)], ["run", str(broken), "broken"], ["schedule", "list", str(broken)],
                 ["daemon", str(tmp_path)]):
        proc = cli(*argv)
        assert proc.returncode == 2, (argv, proc.stderr)
        assert "broken.yaml:5: tasks[0].commands[0]: unknown template variable 'exection'" in proc.stderr, proc.stderr
        assert "broken.yaml:7: triggers[0].cron" in proc.stderr and "Traceback" not in proc.stderr


def test_a_flow_runs_in_worker_processes_and_backfills(cli, api):
    # the SPEC's flow, with Kestra's type names, replayed as schedule ticks (its python task reads trigger.date)
    ticks = cli.json("schedule", "backfill", SCHEDULED, "scheduled_flow", "--start", "2026-01-01T00:00:00+00:00",
                     "--end", "2026-01-01T00:30:00+00:00", "-p", "region=eu")
    assert ticks["status"] == "completed" and ticks["completed"] == 2, ticks
    first = next(r for r in api.list_runs(backfill_id=ticks["backfill_id"]) if r.scheduled_time.minute == 0)
    messages = [line["message"] for line in api.run_logs(first.run_id)]
    assert messages[:2] == ["processing data for 2026-01-01T00:00:00+00:00", "region eu"], messages
    assert "loading 2026-01-01T00:00:00+00:00 for eu" in messages
    result = cli.json("backfill", "create", str(FLOWS), "daily_report", "--from", "2024-01-02", "--to", "2024-01-04")
    assert result["status"] == "completed" and result["completed"] == 3
    run = next(r for r in api.list_runs(backfill_id=result["backfill_id"]) if r.partition_key == "2024-01-03")
    assert "key=2024-01-03 start=2024-01-03T00:00:00+01:00 end=2024-01-04T00:00:00+01:00" in [
        line["message"] for line in api.run_logs(run.run_id)]
    assert run.tags["team"] == "analytics" and run.tags["anachron/namespace"] == "company.reports"
    refused = cli("run", str(FLOWS), "scheduled_flow", "-p", "nope=1")
    assert refused.returncode == 2 and "nope" in refused.stderr and api.list_runs(workflow="scheduled_flow",
                                                                                  status="queued") == []


def test_a_folder_of_flows_has_schedules_and_a_daemon(cli, api):
    listed = cli.json("schedule", "list", str(FLOWS))
    assert [(s["workflow"], s["schedule_id"], s["cron"]) for s in listed] == [
        ("scheduled_flow", "schedule", "*/30 * * * *")]
    backfill_id = cli("backfill", "create", str(FLOWS), "daily_report", "--from", "2024-01-10", "--to",
                      "2024-01-12", "--no-wait").stdout.strip()
    daemon = cli.popen("daemon", str(FLOWS))
    try:
        wait_until(lambda: api.get_backfill(backfill_id, include_run_ids=False).status == "completed", timeout=60)
    finally:
        daemon.send_signal(signal.SIGTERM)
        _, err = daemon.communicate(timeout=30)
    assert daemon.returncode == 0, err
    assert "daemon: 1 schedule(s)" in err and f"backfill {backfill_id}: leading it" in err
