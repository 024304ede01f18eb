"""What the command line prints: stdout is the result only (whatever runs print), ``| head`` harms nothing,
status JSON without every run id, worker deaths named, and a bad ANACHRON_PROGRESS_INTERVAL is one warning."""

from __future__ import annotations

import json
import subprocess
import sys

from test_cli import FLOWS, FLOWS_DIR, api, cli  # noqa: F401 - fixtures

LOUD = str(FLOWS_DIR / "loud.py")  # workflows only: the CLI builds a LocalExecutor (worker processes)
PRINTED = ("printed hello", "to stderr hello")


def one_json_value(proc: subprocess.CompletedProcess):
    assert "Traceback" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout)  # exactly one JSON value: anything else on stdout fails to parse


# -- 9. --output json is one JSON value even when runs print ------------------------------------
def test_json_output_stays_one_value_when_runs_print_in_threads(cli, api):
    proc = cli("run", FLOWS, "noisy", "--partition", "a", "--output", "json")
    run = one_json_value(proc)
    assert proc.returncode == 0 and run["status"] == "success", proc.stderr
    assert "from a child" in proc.stderr  # a child process of a thread's run: not capturable, kept off stdout
    logs = {(line["level"], line["message"]) for line in api.run_logs(run["run_id"])}
    assert {("STDOUT", "printed hello"), ("STDERR", "to stderr hello")} <= logs
    shown = cli("runs", "logs", run["run_id"])
    assert all(text in shown.stdout for text in PRINTED) and "STDOUT" in shown.stdout

    proc = cli("backfill", "create", FLOWS, "noisy", "--all", "--output", "json")
    result = one_json_value(proc)
    assert proc.returncode == 0 and result["completed"] == 3, proc.stderr


def test_json_output_stays_one_value_when_runs_print_in_worker_processes(cli, api):
    proc = cli("run", LOUD, "noisy", "--partition", "a", "-p", "word=there", "--output", "json")
    run = one_json_value(proc)
    assert proc.returncode == 0 and run["status"] == "success", proc.stderr
    logs = {(line["level"], line["message"]) for line in api.run_logs(run["run_id"])}
    assert {("STDOUT", "printed there"), ("STDERR", "to stderr there"), ("STDOUT", "from a child")} <= logs

    proc = cli("backfill", "create", LOUD, "noisy", "--all", "--output", "json")
    result = one_json_value(proc)
    assert proc.returncode == 0 and result["completed"] == 2, proc.stderr
    assert "printed" not in proc.stdout and "from a child" not in proc.stdout


def test_a_closed_stdout_does_not_fail_runs(cli, api):
    for n, reader in enumerate(("head -c 0", "head -c 10")):
        command = " ".join([sys.executable, "-m", "anachron.cli", "run", FLOWS, "noisy", "--partition", "b",
                            "--idempotency-key", f"pipe-{n}", "--output", "json", "|", reader])
        proc = subprocess.run(command, shell=True, cwd=cli.cwd, env=cli.env, capture_output=True, text=True,
                              timeout=60)
        assert "Traceback" not in proc.stderr and "Exception ignored" not in proc.stderr, proc.stderr
    runs = api.list_runs(workflow=None)
    assert sorted(r.idempotency_key for r in runs) == ["pipe-0", "pipe-1"]
    assert [r.status for r in runs] == ["success", "success"], [r.error for r in runs]


# -- 10. status / list JSON without every run id ---------------------------------------------------
def test_status_and_list_json_leave_run_ids_out_unless_asked(cli, api):
    created = cli.json("backfill", "create", FLOWS, "etl", "--from", "2024-11-01", "--to", "2024-11-05")
    assert len(created["run_ids"]) == 5  # create keeps the BackfillResult shape
    backfill_id = created["backfill_id"]
    status = cli.json("backfill", "status", backfill_id)
    assert "run_ids" not in status and status["total_runs"] == 5 and status["completed_partitions"] == 5
    assert sorted(cli.json("backfill", "status", backfill_id, "--run-ids")["run_ids"]) == sorted(created["run_ids"])
    listed = cli.json("backfill", "list")
    assert "run_ids" not in listed[0] and listed[0]["backfill_id"] == backfill_id
    assert sorted(cli.json("backfill", "list", "--run-ids")[0]["run_ids"]) == sorted(created["run_ids"])
    text = cli("backfill", "status", backfill_id)
    assert "runs       5: 0 running · 0 queued" in text.stdout and "created\n" not in text.stdout


def test_list_filters_by_workflow_in_the_database_even_without_its_code(cli, api):
    etl = cli.json("backfill", "create", FLOWS, "etl", "--from", "2024-10-01", "--to", "2024-10-02")["backfill_id"]
    hello = cli.json("backfill", "create", FLOWS, "noisy", "--all")["backfill_id"]
    cli.json("backfill", "create", FLOWS, "etl", "--from", "2024-10-03", "--to", "2024-10-03")
    listed = cli.json("backfill", "list", "--workflow", "noisy")  # no TARGET: the workflow's code is not loaded
    assert [b["backfill_id"] for b in listed] == [hello]
    assert len(cli.json("backfill", "list", "--workflow", "etl")) == 2
    assert len(cli.json("backfill", "list", "--workflow", "etl", "--limit", "1")) == 1
    assert cli.json("backfill", "list", "--workflow", "gone") == []
    runs = cli.json("runs", "list", "--workflow", "etl", "--limit", "2")
    assert len(runs) == 2 and {r["workflow"] for r in runs} == {"etl"}
    assert {r["partition_key"] for r in cli.json("runs", "list", "--workflow", "etl", "--backfill", etl)} == {
        "2024-10-01", "2024-10-02"}
    assert {r.workflow for r in api.list_runs(workflow="noisy")} == {"noisy"}  # a name, defined or not


# -- 11. worker deaths ---------------------------------------------------------------------------
def test_a_dead_worker_is_named_with_its_signal(cli):
    proc = cli("run", LOUD, "dies")
    assert proc.returncode == 1, proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and "worker process died" in errors[0] and "SIGKILL" in errors[0], proc.stderr
    run_id = proc.stdout.split()[1]
    shown = cli("runs", "show", run_id)
    assert "killed by signal 9 (SIGKILL)" in shown.stderr


# -- 6. ANACHRON_PROGRESS_INTERVAL --------------------------------------------------------------
def test_a_bad_progress_interval_is_one_warning_where_progress_shows(cli):
    for value in ("soon", "-1"):
        quiet = cli("backfill", "list", env={"ANACHRON_PROGRESS_INTERVAL": value})
        assert quiet.returncode == 0 and quiet.stderr == "", quiet.stderr
    watched = cli("backfill", "create", FLOWS, "etl", "--from", "2024-12-01", "--to", "2024-12-03",
                  env={"ANACHRON_PROGRESS_INTERVAL": "soon"})
    assert watched.returncode == 0 and "Traceback" not in watched.stderr, watched.stderr
    warnings = [line for line in watched.stderr.splitlines() if "ANACHRON_PROGRESS_INTERVAL" in line]
    assert len(warnings) == 1 and "'soon'" in warnings[0] and "seconds" in warnings[0], watched.stderr
