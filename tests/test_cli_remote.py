"""``--server URL``: the command line driving a real ``anachron server`` over HTTP, as a user runs it.

One server for the module (tests/cli_flows/served.py on a SQLite file, with ANACHRON_API_TOKEN set, so every
call here also proves the token is sent). The CLI runs as a subprocess with no TARGET. Its JSON is compared
with the local command's on the server's own database file, so "the same output" is checked, not assumed.
Each test uses its own partitions, so the shared server's history from one test never decides another's.
Independent calls run side by side (``Cli.many``) to keep the file fast.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import pytest

import anachron as ac
from anachron.cli import remote
from anachron.cli.request import Options
from anachron.requests import BackfillRequest
from server_process import free_port, running_server

FLOWS_DIR = Path(__file__).parent / "cli_flows"
SERVED = str(FLOWS_DIR / "served.py")
TOKEN = "t0ken-for-the-cli"
RESULT_FIELDS = {f.name for f in dataclasses.fields(ac.BackfillResult)}
STATUS_FIELDS = {f.name for f in dataclasses.fields(ac.BackfillStatus)}
RUN_FIELDS = {f.name for f in dataclasses.fields(ac.Run)}


class Cli:
    """``python -m anachron.cli ARGS`` with the token in the environment (and no other ANACHRON_ variable)."""

    def __init__(self, cwd: Path, url: str, db_url: str):
        self.cwd, self.url, self.db_url = cwd, url, db_url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ANACHRON_")}
        self.env.update(ANACHRON_API_TOKEN=TOKEN, PYTHONUNBUFFERED="1", ANACHRON_PROGRESS_INTERVAL="0")

    def __call__(self, *args: str, env: dict[str, str] | None = None, timeout: float = 60):
        return subprocess.run([sys.executable, "-m", "anachron.cli", *args], cwd=self.cwd,
                              env={**self.env, **(env or {})}, capture_output=True, text=True, timeout=timeout)

    def remote(self, *args: str, **kwargs):
        return self(*args, "--server", self.url, **kwargs)

    def local(self, *args: str):
        """The same command on the server's database, without the server."""
        return self(*args, "--db", self.db_url)

    def many(self, *calls: tuple):
        """Several independent calls at once: each a tuple of arguments, run as given (a dict last: more
        environment)."""
        def call(args: tuple):
            env = args[-1] if args and isinstance(args[-1], dict) else None
            return self(*(args[:-1] if env is not None else args), env=env)

        with ThreadPoolExecutor(len(calls)) as pool:
            return list(pool.map(call, calls))


def ok_json(proc, code: int = 0):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    assert len(proc.stdout.strip().splitlines()) == 1, proc.stdout  # one JSON value, nothing else
    return json.loads(proc.stdout)


def one_error(proc, code: int, *fragments: str) -> str:
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    home = tmp_path_factory.mktemp("served")
    db_url = f"sqlite:///{home / 'anachron.db'}"
    with running_server([SERVED], db_url, home, cwd=str(home), env={"ANACHRON_API_TOKEN": TOKEN}) as server:
        yield server, db_url, home


@pytest.fixture
def cli(served, tmp_path) -> Cli:
    server, db_url, _ = served
    return Cli(tmp_path, server.url, db_url)


# -- backfills ------------------------------------------------------------------------------------
def test_create_waits_to_the_end_and_answers_as_the_local_command_does(cli):
    created = ok_json(cli.remote("backfill", "create", "etl", "--from", "2024-01-01", "--to", "2024-01-05",
                                 "--tag", "team=remote", "--output", "json"))
    days = [f"2024-01-0{d}" for d in range(1, 6)]
    assert set(created) == RESULT_FIELDS
    assert created["status"] == "completed" and created["completed"] == 5 and len(created["run_ids"]) == 5
    assert created["partition_keys"] == days and created["plan"] == [[d] for d in days]
    backfill_id = created["backfill_id"]

    text, status, local_status, runs, local_runs = cli.many(  # reads of a backfill that has ended
        ("backfill", "create", "etl", "--from", "2024-01-06", "--to", "2024-01-08", "-p", "sleep=0.3",
         "--server", cli.url),
        ("backfill", "status", backfill_id, "--run-ids", "-o", "json", "--server", cli.url),
        ("backfill", "status", backfill_id, "--run-ids", "-o", "json", "--db", cli.db_url),
        ("runs", "list", "--backfill", backfill_id, "-o", "json", "--server", cli.url),
        ("runs", "list", "--backfill", backfill_id, "-o", "json", "--db", cli.db_url))
    assert text.returncode == 0, text.stderr
    assert "✔ backfill" in text.stdout and "completed: 3 partitions succeeded" in text.stdout
    assert "partitions in 3 runs" in text.stderr and "ETA" in text.stderr  # the progress lines while it waited
    remote_status = ok_json(status)
    assert set(remote_status) == STATUS_FIELDS and remote_status["tags"] == [["team", "remote"]]
    assert remote_status == ok_json(local_status)
    remote_runs = ok_json(runs)
    assert len(remote_runs) == 5 and set(remote_runs[0]) == RUN_FIELDS
    assert remote_runs == ok_json(local_runs)
    parts, local_parts = cli.many(  # etl's partitions, now that nothing runs
        ("partitions", "etl", "--status", "success", "-o", "json", "--server", cli.url),
        ("partitions", SERVED, "etl", "--status", "success", "-o", "json", "--db", cli.db_url))
    assert ok_json(parts) == ok_json(local_parts)
    assert ok_json(parts)["ranges"] == [{"from": "2024-01-01", "to": "2024-01-08", "status": "success", "count": 8}]


def test_a_failed_backfill_its_rerun_and_the_controls(cli, served):
    _, _, home = served
    bad_days = home / "bad_days.txt"
    bad_days.write_text("2024-02-03\n")
    try:
        failed = cli.remote("backfill", "create", "etl", "--from", "2024-02-01", "--to", "2024-02-04")
    finally:
        bad_days.unlink()
    assert failed.returncode == 1, failed.stderr
    assert "✘ backfill" in failed.stdout and "bad upstream data for 2024-02-03" in failed.stdout
    backfill_id = failed.stdout.split()[2]
    assert f"anachron backfill rerun {backfill_id} --server {cli.url}" in failed.stdout  # a hint that works

    slow = cli.remote("backfill", "create", "etl", "--from", "2024-02-10", "--to", "2024-02-20", "-p", "sleep=1",
                      "--max-concurrency", "1", "--no-wait")
    assert slow.returncode == 0, slow.stderr
    slow_id = slow.stdout.strip()
    assert "The server runs it" in slow.stderr and f"--server {cli.url}" in slow.stderr

    rerun, paused, unknown, again = cli.many(
        ("backfill", "rerun", backfill_id, "-o", "json", "--server", cli.url),
        ("backfill", "pause", slow_id, "--server", cli.url),
        ("backfill", "status", "nope", "--server", cli.url),
        ("backfill", "pause", backfill_id, "--server", cli.url))
    rerun_result = ok_json(rerun)
    assert rerun_result["status"] == "completed" and rerun_result["partition_keys"] == ["2024-02-03"]
    assert paused.returncode == 0 and f"backfill {slow_id}: " in paused.stdout and "→ paused" in paused.stdout
    one_error(unknown, 2, "BACKFILL_ID: backfill 'nope' not found on", cli.url)
    one_error(again, 2, "is failed", "only an active backfill can be paused")  # the server's 409, as locally

    resumed = cli.remote("backfill", "resume", slow_id, "-o", "json")
    assert ok_json(resumed)["status"] != "paused"
    canceled = cli.remote("backfill", "cancel", slow_id)
    assert canceled.returncode == 0 and "queued runs canceled" in canceled.stderr, canceled.stderr
    watched = cli.remote("backfill", "status", slow_id, "--wait", "-o", "json")  # no TARGET: the server leads it
    final = ok_json(watched, code=1)
    assert final["status"] == "canceled" and final["completed_partitions"] < 11


def test_a_dry_run_longer_than_the_api_preview_reads_as_the_local_one(cli):
    remote_text, local_text, remote_json = cli.many(
        ("backfill", "create", "regional", "--all", "--strategy", "date=single_run", "--dry-run", "--server",
         cli.url),
        ("backfill", "create", SERVED, "regional", "--all", "--strategy", "date=single_run", "--dry-run", "--db",
         cli.db_url),
        ("backfill", "create", "regional", "--all", "--dry-run", "-o", "json", "--server", cli.url))

    def summary(proc):
        assert proc.returncode == 0, proc.stderr
        return [line for line in proc.stdout.splitlines() if "estimate" not in line]

    assert summary(remote_text) == summary(local_text)
    assert "last run   date=2024-01-01|region=asia … date=2024-12-31|region=asia" in remote_text.stdout
    plan = ok_json(remote_json)
    assert plan["num_partitions"] == 366 * 3 and len(plan["partition_keys"]) == 1000 and plan["backfill_id"] is None
    assert "the server lists the first 1,000 of 1,098 partition keys" in remote_json.stderr


# -- runs -----------------------------------------------------------------------------------------
def test_run_waits_and_an_idempotency_key_gives_the_same_run(cli):
    first = ok_json(cli.remote("run", "hello", "-p", "name=ada", "--idempotency-key", "remote-ada", "-o", "json"))
    assert set(first) == RUN_FIELDS and first["status"] == "success" and first["params"] == {"name": "ada"}
    again, failing, logs, shown, local_shown = cli.many(
        ("run", "hello", "-p", "name=ada", "--idempotency-key", "remote-ada", "-o", "json", "--server", cli.url),
        ("run", "hello", "-p", "fail=true", "--server", cli.url),
        ("runs", "logs", first["run_id"], "--server", cli.url),
        ("runs", "show", first["run_id"], "-o", "json", "--server", cli.url),
        ("runs", "show", first["run_id"], "-o", "json", "--db", cli.db_url))
    assert ok_json(again)["run_id"] == first["run_id"]
    assert failing.returncode == 1 and "hello: failed" in failing.stdout
    assert "error: ValueError: asked to fail for world" in failing.stderr
    assert logs.returncode == 0 and "INFO    hello ada" in logs.stdout
    assert ok_json(shown) == ok_json(local_shown) == first


# -- schedules and partitions ---------------------------------------------------------------------
def test_schedules_list_pause_and_backfill_through_the_trigger_api(cli, served):
    listed = ok_json(cli.remote("schedule", "list", "-o", "json"))
    assert [(s["workflow"], s["schedule_id"], s["paused"]) for s in listed] == [
        ("report", "schedule", False), ("report", "morning", False)]
    assert listed == ok_json(cli.local("schedule", "list", SERVED, "-o", "json"))

    paused, wrong = cli.many(
        ("schedule", "pause", "report", "-s", "morning", "--server", cli.url),
        ("schedule", "pause", "report", "-s", "nightly", "--server", cli.url))
    assert paused.returncode == 0 and "schedule report/morning: paused" in paused.stdout, paused.stderr
    one_error(wrong, 2, "--schedule", "'nightly'")

    replayed = ok_json(cli.remote("schedule", "backfill", "report", "-s", "morning", "--start", "2026-01-10",
                                  "--end", "2026-01-12T23:00:00+01:00", "--max-concurrency", "8", "-o", "json"))
    assert replayed["status"] == "completed" and replayed["completed"] == 3  # while the schedule is paused
    assert replayed["partition_keys"] == [f"2026-01-{d}T05:00:00+00:00" for d in (10, 11, 12)]
    repo = ac.CodeRepository([], storage=cli.db_url, executor=ac.InProcessExecutor(max_workers=1))
    try:
        status = repo.get_backfill(replayed["backfill_id"])
        runs = repo.list_runs(backfill_id=replayed["backfill_id"])
    finally:
        repo.close()
    assert status.tags == [("anachron/trigger", "morning")]  # the Kestra trigger's backfill
    assert status.request.max_concurrency == 8 and status.created_by == "api-token"  # its token's name
    assert sorted(r.logical_time for r in runs) == [datetime(2026, 1, d, 5, tzinfo=UTC) for d in (10, 11, 12)]
    with served[0].client(TOKEN) as api:  # the pause reached the server
        assert [s["paused"] for s in api.get("/api/v1/schedules").json()] == [False, True]
    resumed = cli.remote("schedule", "resume", "report", "-s", "morning")
    assert resumed.returncode == 0 and "schedule report/morning: active" in resumed.stdout


# -- errors ---------------------------------------------------------------------------------------
def test_bad_input_unreachable_servers_and_the_token(cli):
    down = f"http://127.0.0.1:{free_port()}"
    calls = cli.many(
        ("backfill", "create", "etl", "--from", "2024-01-01", "--to", "2099-01-01", "--server", cli.url),
        ("backfill", "create", "ghost", "--all", "--server", cli.url),
        ("backfill", "create", SERVED, "etl", "--all", "--server", cli.url),
        ("run", "hello", "-p", "nope=1", "--server", cli.url),
        ("backfill", "list", "--server", down),
        ("backfill", "list", "--server", "localhost:8080"))
    unknown_key, ghost, with_target, bad_param, unreachable, not_a_url = calls
    one_error(unknown_key, 2, "unknown partition key '2099-01-01'")  # the server's message
    one_error(ghost, 2, "WORKFLOW: unknown workflow 'ghost' on", "known: etl, hello, regional, report")
    one_error(with_target, 2, f"TARGET {SERVED}: not used with --server {cli.url}")
    one_error(bad_param, 2, "params: workflow 'hello' has no parameter 'nope'")
    assert one_error(unreachable, 1) == f"error: server {down}: cannot connect: connection refused"
    one_error(not_a_url, 2, "--server 'localhost:8080'", "http://")
    for proc in calls:
        assert "Traceback" not in proc.stderr and proc.stdout == ""

    cli.env.pop("ANACHRON_API_TOKEN")
    no_token, wrong, by_variable = cli.many(
        ("backfill", "list", "--server", cli.url),
        ("backfill", "list", "--server", cli.url, {"ANACHRON_API_TOKEN": "guess"}),
        ("backfill", "list", "--workflow", "etl", "--limit", "1", "-o", "json",
         {"ANACHRON_SERVER": cli.url, "ANACHRON_API_TOKEN": TOKEN}))
    one_error(no_token, 2, f"server {cli.url}: unauthorized (no token sent): set ANACHRON_API_TOKEN")
    one_error(wrong, 2, "the token in ANACHRON_API_TOKEN was refused")
    assert [set(b) for b in ok_json(by_variable)] == [STATUS_FIELDS - {"run_ids"}]  # ANACHRON_SERVER: no --server


# -- the client, without a server -----------------------------------------------------------------
@pytest.mark.parametrize("options, dims", [
    (Options(from_key="2024-01-01", to_key="2024-01-31", strategy="batched=7", max_concurrency="8",
             on_failure="stop", reprocess="failed_and_missing", order="newest_first", tags=["team=data"],
             params=["sleep=0.5", 'regions=["us"]'], idempotency_key="k-1"), None),
    (Options(ranges=["date=2024-01-01..2024-01-03", "region=us,eu"], strategy="date=single_run"),
     ["date", "region"]),
    (Options(partitions="2024-01-05,2024-01-09", dry_run=True, strategy="single_run"), None),
    (Options(start="2024-01-01", end="2024-03-31T12:00:00+00:00"), None),
    (Options(all_keys=True), None),
])
def test_the_request_sent_reads_back_as_the_request_built(options, dims):
    request = options.build("etl", dims)
    body = remote.request_json(request)
    assert json.loads(json.dumps(body)) == body  # plain JSON
    assert BackfillRequest.parse(body) == request  # what POST /api/v1/backfills builds from it
    assert "max_concurrency" not in body or body["max_concurrency"] != 4  # defaults are the server's own


def test_records_and_previews_from_the_api_json():
    run = remote.record(ac.Run, {
        "run_id": "r1", "workflow": "etl", "status": "success", "partition_key": "2024-01-01",
        "partition_keys": ["2024-01-01"], "params": {}, "tags": {}, "priority": 0, "backfill_id": None,
        "idempotency_key": None, "attempt": 1, "logical_time": "2024-01-01T00:00:00Z", "scheduled_time": None,
        "created_at": "2026-01-01T10:00:00.5+00:00", "started_at": None, "ended_at": None, "error": None,
        "extra_field_from_a_newer_server": 1})
    assert run.logical_time == datetime(2024, 1, 1, tzinfo=UTC) and run.run_name is None
    with pytest.raises(ValueError):
        remote.record(ac.Run, {"run_id": "r1"})
    keys = [f"k{i:04d}" for i in range(1000)]
    result = remote.backfill_result({
        "backfill_id": None, "num_partitions": 1500, "num_runs": 750, "status": "dry_run", "completed": 0,
        "failed": 0, "canceled": 0, "run_ids": [], "is_dry_run": True, "partition_keys": keys,
        "plan": [keys[i:i + 2] for i in range(0, 1000, 2)], "first_key": "k0000", "last_key": "k1499",
        "last_run": ["k1498", "k1499"], "preview_truncated": True, "estimate": None})
    assert remote.is_preview(result)
    assert len(result.partition_keys) == 1500 and result.partition_keys[-1] == "k1499"
    assert list(result.partition_keys) == keys and result.partition_keys[999] == "k0999"
    assert len(result.plan) == 750 and result.plan[-1] == ["k1498", "k1499"] and len(list(result.plan)) == 500
    with pytest.raises(IndexError):
        result.partition_keys[1200]


def test_a_server_that_stops_answering_is_waited_out_but_a_refusal_is_not():
    from anachron.cli.progress import is_hiccup

    assert is_hiccup(remote.ServerUnavailable("server http://h: cannot connect: connection refused"))
    assert not is_hiccup(remote.ServerError("server http://h: unauthorized", 2, 401))
    assert remote.ServerUnavailable("x").exit_code == 1 and remote.ServerError("x", 2, 400).exit_code == 2
