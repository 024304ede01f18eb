"""The ``anachron`` command line, run as a user runs it: a subprocess against a real SQLite file.

Workflows live in tests/cli_flows/: ``flows.py`` (a repository with an InProcessExecutor: fast) and
``plain.py`` (workflows only: the CLI builds a repository with a LocalExecutor).
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import anachron as ac
from anachron.cli.output import jsonable

FLOWS_DIR = Path(__file__).parent / "cli_flows"
FLOWS = str(FLOWS_DIR / "flows.py")
PLAIN = str(FLOWS_DIR / "plain.py")
CONSOLE_SCRIPT = shutil.which("anachron", path=str(Path(sys.executable).parent)) or "anachron"


class Cli:
    """Runs ``python -m anachron.cli`` in ``cwd`` with the database URL in the environment."""

    def __init__(self, cwd: Path, url: str):
        self.cwd, self.url = cwd, url
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("ANACHRON_")}
        self.env["ANACHRON_DATABASE_URL"] = url
        self.env["PYTHONUNBUFFERED"] = "1"

    def argv(self, args) -> list[str]:
        return [sys.executable, "-m", "anachron.cli", *map(str, args)]

    def __call__(self, *args, timeout: float = 60, cwd: Path | None = None, env: dict | None = None):
        return subprocess.run(self.argv(args), cwd=cwd or self.cwd, env={**self.env, **(env or {})},
                              capture_output=True, text=True, timeout=timeout)

    def json(self, *args, code: int = 0, **kwargs):
        proc = self(*args, "--output", "json", **kwargs)
        assert proc.returncode == code, proc.stderr
        return json.loads(proc.stdout)

    def popen(self, *args) -> subprocess.Popen:
        # Ctrl-C as a terminal sends it: a test suite started as a background job (`cmd &`) passes SIGINT
        # ignored to its children, and Python keeps an ignored SIGINT ignored.
        return subprocess.Popen(self.argv(args), cwd=self.cwd, env=self.env, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


@pytest.fixture
def cli(tmp_path) -> Cli:
    return Cli(tmp_path, f"sqlite:///{tmp_path / 'anachron.db'}")


@pytest.fixture
def api(cli):
    """The Python API on the same database (no workflows needed to read backfills and runs)."""
    repo = ac.CodeRepository([], storage=cli.url, executor=ac.InProcessExecutor(max_workers=1))
    yield repo
    repo.close()


@pytest.fixture
def flows(monkeypatch):
    """tests/cli_flows/flows.py imported here (its module-level repository on an in-memory database)."""
    monkeypatch.setenv("ANACHRON_DATABASE_URL", "sqlite://")
    spec = importlib.util.spec_from_file_location("cli_flows_under_test", FLOWS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    yield module
    module.repo.close()


def assert_usage_error(proc, *fragments: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "Traceback" not in proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])


# -- backfill create: JSON, exit codes, rerun, status, list, partitions --------------------------
def test_backfill_lifecycle_json_matches_python_api(cli, api, tmp_path):
    (tmp_path / "bad_days.txt").write_text("2024-01-13\n")
    proc = cli("backfill", "create", FLOWS, "etl", "--from", "2024-01-01", "--to", "2024-01-31", "--tag", "team=data",
               "--output", "json")
    assert proc.returncode == 1, proc.stderr  # a partition failed
    assert len(proc.stdout.strip().splitlines()) == 1  # exactly one JSON object and nothing else
    result = json.loads(proc.stdout)
    days = [f"2024-01-{d:02d}" for d in range(1, 32)]
    status = api.get_backfill(result["backfill_id"])
    assert set(result) == {f for f in ac.BackfillResult.__dataclass_fields__}
    assert result == {"backfill_id": status.backfill_id, "num_partitions": 31, "num_runs": 31, "status": "failed",
                      "completed": 30, "failed": 1, "canceled": 0, "run_ids": status.run_ids, "is_dry_run": False,
                      "partition_keys": days, "plan": [[d] for d in days], "estimate": None,
                      "workflows": {"etl": {"num_partitions": 31, "num_runs": 31}},
                      "request": status.request.model_dump(mode="json", by_alias=True)}
    assert status.tags == [("team", "data")]
    backfill_id = result["backfill_id"]

    # run ids only with --run-ids (a big backfill has many; see test_cli_output.py for the default)
    assert cli.json("backfill", "status", backfill_id, "--run-ids") == jsonable(api.get_backfill(backfill_id))
    assert cli.json("backfill", "list", "--run-ids") == jsonable(api.list_backfills(include_run_ids=True))
    failed = cli.json("runs", "list", "--backfill", backfill_id, "--status", "failed")
    assert [r["partition_key"] for r in failed] == ["2024-01-13"]
    assert "bad upstream data" in failed[0]["error"]

    again = cli.json("backfill", "create", FLOWS, "etl", "--range", "2024-01-30..2024-02-02", "--reprocess",
                     "failed_and_missing", "--order", "newest_first", "--dry-run")
    assert again["partition_keys"] == ["2024-02-02", "2024-02-01"]  # 01-30 and 01-31 succeeded already
    stop = cli("backfill", "create", FLOWS, "etl", "--partitions", "2024-01-12,2024-01-13,2024-01-14,2024-01-15",
               "--on-failure", "stop", "--max-concurrency", "1", "--db", f"sqlite:///{tmp_path / 'stop.db'}",
               "--output", "json")
    stopped = json.loads(stop.stdout)
    assert stop.returncode == 1 and stopped["status"] == "failed" and stopped["failed"] == 1
    assert stopped["completed"] == 1 and stopped["canceled"] == 2  # no new runs after the failure

    text = cli("backfill", "status", backfill_id)  # text: the failure and how to rerun it
    assert text.returncode == 0 and "2024-01-13" in text.stdout
    assert f"backfill rerun TARGET {backfill_id}" in text.stdout

    (tmp_path / "bad_days.txt").unlink()  # the upstream data is fixed: rerun the failures
    rerun = cli.json("backfill", "rerun", FLOWS, backfill_id)
    assert rerun["status"] == "completed" and rerun["partition_keys"] == ["2024-01-13"]
    assert dict(api.get_backfill(rerun["backfill_id"]).tags)["anachron/rerun_of"] == backfill_id

    parts = cli.json("partitions", FLOWS, "etl")
    assert parts["counts"] == {"success": 31, "missing": 366 - 31} and parts["total"] == 366
    assert parts["ranges"][0] == {"from": "2024-01-01", "to": "2024-01-31", "status": "success", "count": 31}
    table = cli("partitions", FLOWS, "etl")  # compact: ranges, not a line per key
    assert table.returncode == 0 and len(table.stdout.splitlines()) < 15
    assert "2024-01-01" in table.stdout and "2024-01-31" in table.stdout and "2024-01-15" not in table.stdout


def test_dry_run_shows_the_plan_and_stores_nothing(cli, api, flows):
    args = ["backfill", "create", FLOWS, "regional", "--range", "date=2024-01-01..2024-01-03",
            "--range", "region=us,eu", "--strategy", "date=single_run", "--dry-run"]
    plan = cli.json(*args)
    with ac.CodeRepository([flows.etl, flows.regional], storage="sqlite://",
                           executor=ac.InProcessExecutor()) as repo:
        expected = repo.backfill("regional", dry_run=True, partition_range=ac.PartitionKeyRange.multi(
            {"date": ("2024-01-01", "2024-01-03"), "region": ["us", "eu"]}),
            strategy=ac.BackfillStrategy.per_dimension(multi_run=["region"], single_run=["date"]))
    assert plan == jsonable(expected)
    assert plan["is_dry_run"] and plan["num_partitions"] == 6 and plan["num_runs"] == 2
    assert plan["plan"][0] == ["date=2024-01-01|region=us", "date=2024-01-02|region=us", "date=2024-01-03|region=us"]

    text = cli("backfill", "create", FLOWS, "etl", "--start", "2024-01-01", "--end", "2024-01-31",
               "--strategy", "batched=10", "--dry-run")
    assert text.returncode == 0, text.stderr
    assert "partitions 31" in text.stdout and "2024-01-01" in text.stdout and "2024-01-31" in text.stdout
    assert "runs       4" in text.stdout and "2024-01-31" in text.stdout.split("last run")[1]
    assert api.list_backfills() == [] and api.list_runs() == []


def test_a_dry_run_estimates_the_time_from_recent_runs(cli):
    window = ["backfill", "create", FLOWS, "etl", "--from", "2024-03-01", "--to", "2024-03-10"]
    fresh = cli(*window, "--dry-run")
    assert fresh.returncode == 0, fresh.stderr
    assert "  estimate   no run history for etl yet\n" in fresh.stdout
    done = cli("backfill", "create", FLOWS, "etl", "--from", "2024-01-01", "--to", "2024-01-04", "-p", "sleep=0.2")
    assert done.returncode == 0, done.stderr

    text = cli(*window, "--max-concurrency", "2", "--dry-run")
    assert text.returncode == 0, text.stderr
    (line,) = [line for line in text.stdout.splitlines() if line.startswith("  estimate")]
    # 10 runs, 2 at a time: 5 waves of a 0.2 s run
    assert re.fullmatch(r"  estimate   ~[12] s( \(up to ~\d s\))? at max_concurrency 2 "
                        r"\(median run [234]\d\d ms over the last 4 runs\)", line), line
    estimate = cli.json(*window, "--max-concurrency", "2", "--dry-run")["estimate"]
    assert set(estimate) == set(ac.Estimate.__dataclass_fields__)
    assert (estimate["runs"], estimate["concurrency"], estimate["sample_size"]) == (10, 2, 4)
    assert 0.2 <= estimate["median_run_seconds"] < 0.5 and estimate["limited_by"] is None
    assert estimate["seconds"] == pytest.approx(5 * estimate["median_run_seconds"])
    assert estimate["upper_seconds"] >= estimate["seconds"]


# -- progress, --no-wait, pause / resume / cancel, Ctrl-C ----------------------------------------
def test_progress_on_a_non_terminal_is_a_line_every_few_seconds(cli):
    started = time.monotonic()
    proc = cli("backfill", "create", FLOWS, "etl", "--from", "2024-02-01", "--to", "2024-02-24", "-p", "sleep=0.5",
               "--max-concurrency", "2")
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stderr
    assert elapsed > 5.5  # 24 partitions, 2 at a time, half a second each
    lines = [line for line in proc.stderr.splitlines() if line.startswith("progress ")]
    assert 1 <= len(lines) <= 1 + elapsed / 5, proc.stderr
    assert "done" in lines[0] and "queued" in lines[0] and "ETA" in lines[0]
    assert "\r" not in proc.stderr and "\x1b" not in proc.stderr  # no terminal codes in a log
    assert "completed: 24 partitions succeeded" in proc.stdout


def test_no_wait_then_pause_resume_cancel_while_another_process_waits(cli, api):
    proc = cli("backfill", "create", FLOWS, "etl", "--from", "2024-03-01", "--to", "2024-03-31", "-p", "sleep=0.3",
               "--max-concurrency", "2", "--no-wait")
    assert proc.returncode == 0, proc.stderr
    backfill_id = proc.stdout.strip()
    assert api.get_backfill(backfill_id).status in ("requested", "in_progress")
    assert "status" in proc.stderr and "--wait" in proc.stderr  # says who will run it

    waiter = cli.popen("backfill", "status", FLOWS, backfill_id, "--wait", "--output", "json")
    deadline = time.monotonic() + 20
    while api.get_backfill(backfill_id).completed_partitions < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    paused = cli.json("backfill", "pause", backfill_id)
    assert paused["status"] == "paused" and paused["completed_partitions"] < 31
    # (That no new runs start while paused is the engine's to test; see the CLI report for a race in it.)
    resumed = cli("backfill", "resume", backfill_id)
    assert resumed.returncode == 0 and "→ in_progress" in resumed.stdout
    settled = api.get_backfill(backfill_id).completed_partitions
    while api.get_backfill(backfill_id).completed_partitions == settled and time.monotonic() < deadline:
        time.sleep(0.1)
    cancel = cli("backfill", "cancel", backfill_id)
    assert cancel.returncode == 0 and "canceled" in cancel.stdout
    out, err = waiter.communicate(timeout=30)
    assert waiter.returncode == 1, err  # canceled: not a success
    final = json.loads(out)
    assert final["status"] == "canceled" and final["canceled_partitions"] > 0
    assert final["completed_partitions"] + final["failed_partitions"] + final["canceled_partitions"] == 31


def test_ctrl_c_without_a_terminal_leaves_it_running_and_says_how_to_resume(cli, api):
    waiting = cli.popen("backfill", "create", FLOWS, "etl", "--from", "2024-04-01", "--to", "2024-04-16",
                        "-p", "sleep=0.6", "--max-concurrency", "2")  # at least 4.8 s: not over before SIGINT
    first = waiting.stderr.readline()  # "backfill ID: 16 partitions in 16 runs"
    backfill_id = first.split()[1].rstrip(":")
    deadline = time.monotonic() + 20
    while api.get_backfill(backfill_id).completed_partitions < 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    waiting.send_signal(signal.SIGINT)
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 130, err
    assert f"anachron backfill status {FLOWS} {backfill_id} --wait" in err
    assert f"anachron backfill cancel {backfill_id}" in err
    assert api.get_backfill(backfill_id).status == "in_progress"
    final = cli.json("backfill", "status", FLOWS, backfill_id, "--wait")  # takes it over and finishes it
    assert final["status"] == "completed" and final["completed_partitions"] == 16


# -- run, dev-run, runs ----------------------------------------------------------------------------
def test_run_json_matches_python_api_and_exit_codes(cli, api):
    run = cli.json("run", FLOWS, "hello", "-p", "name=ada", "-p", "n=3", "--env", "ANACHRON_TIME=unix:1767225600",
                   "--tag", "who=test")
    assert run == jsonable(api.get_run(run["run_id"]))
    assert run["status"] == "success" and run["params"] == {"name": "ada", "n": 3}  # -p values parse as JSON
    assert run["logical_time"].startswith("2026-01-01T00:00:00") and run["tags"] == {"who": "test"}

    failed = cli("run", FLOWS, "hello", "-p", "fail=true")
    assert failed.returncode == 1 and "asked to fail for world" in failed.stderr and "Traceback" not in failed.stderr

    first = cli.json("run", FLOWS, "etl", "--partition", "2024-05-01", "--idempotency-key", "may-first")
    again = cli.json("run", FLOWS, "etl", "--partition", "2024-05-01", "--idempotency-key", "may-first")
    assert first["run_id"] == again["run_id"] and first["partition_key"] == "2024-05-01"
    logs = cli.json("runs", "logs", first["run_id"])
    assert any("loaded 10 rows for 2024-05-01" in line["message"] for line in logs)
    shown = cli("runs", "show", first["run_id"])
    assert shown.returncode == 0 and first["run_id"] in shown.stdout and "success" in shown.stdout


def test_dev_run_uses_the_environment_and_fails_on_a_bad_clock(cli):
    proc = cli("dev-run", FLOWS, "hello", "--env", "ANACHRON_TIME=unix:1767225600", "-p", "name=ada")
    assert proc.returncode == 0, proc.stderr
    value = json.loads(proc.stdout)
    assert value["greeting"] == "hello ada" and 1767225600 <= value["time"] < 1767225660
    assert "hello ada" in proc.stderr  # the run's log lines

    bad = cli("dev-run", FLOWS, "hello", "--env", "ANACHRON_TIME=unix:soon")
    assert bad.returncode == 1 and "ANACHRON_TIME" in bad.stderr and "Traceback" not in bad.stderr
    failing = cli("dev-run", FLOWS, "hello", "-p", "fail=true")
    assert failing.returncode == 1 and "flows.py" in failing.stderr and "asked to fail" in failing.stderr
    assert_usage_error(cli("dev-run", "-f", "pipeline.yaml"), "pipeline.yaml", "no such file")
    day = cli("dev-run", FLOWS, "etl", "--env", "STARLARK_TIME=2024-01-16T06:00:00+00:00")  # as Uniflow runs it
    assert day.returncode == 0 and json.loads(day.stdout) == ["2024-01-15"], day.stderr  # the day ended by then


# -- LocalExecutor, configuration, module targets -------------------------------------------------
def test_a_module_without_repository_runs_on_worker_processes(cli, api):
    """plain.py defines workflows only: the CLI builds a repository with a LocalExecutor; --db picks storage."""
    other = f"sqlite:///{cli.cwd / 'other.db'}"
    proc = cli("backfill", "create", PLAIN, "squares", "--all", "-p", "x=5", "--db", other, "--output", "json")
    assert proc.returncode == 1, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["completed"], result["failed"], result["partition_keys"]) == (3, 1, ["a", "b", "c", "d"])
    assert api.list_backfills() == []  # --db chose the other database
    with ac.CodeRepository([], storage=other, executor=ac.InProcessExecutor()) as repo:
        runs = repo.list_runs(backfill_id=result["backfill_id"])
    assert {r.partition_key: r.status for r in runs} == {"a": "success", "b": "success", "c": "success", "d": "failed"}


def test_project_config_gives_target_and_database(tmp_path):
    project = tmp_path / "project"
    (project / "src").mkdir(parents=True)
    shutil.copy(FLOWS, project / "pipelines.py")
    (project / "pyproject.toml").write_text('[project]\nname = "p"\n\n[tool.anachron]\ntarget = "pipelines.py"\n'
                                            'database = "sqlite:///.anachron/project.db"\n')
    cli = Cli(project / "src", "")
    cli.env.pop("ANACHRON_DATABASE_URL")
    proc = subprocess.run([CONSOLE_SCRIPT, "backfill", "create", "etl", "--from", "2024-01-01", "--to", "2024-01-05",
                           "--output", "json"], cwd=project / "src", env=cli.env, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["completed"] == 5
    assert (project / ".anachron" / "project.db").exists()
    assert cli.json("backfill", "list")[0]["backfill_id"] == json.loads(proc.stdout)["backfill_id"]
    assert cli.json("partitions", "etl")["counts"]["success"] == 5
    (project / "anachron.toml").write_text('databse = "x"\n')  # anachron.toml is read first; typos are named
    assert_usage_error(cli("backfill", "list"), "databse")


def test_module_target_and_picking_one_of_several_repositories(cli, tmp_path):
    run = cli.json("run", "-m", "flows", "hello", cwd=FLOWS_DIR)
    assert run["status"] == "success"
    (tmp_path / "two.py").write_text(
        "import anachron as ac\nfrom flows import hello\n"
        "a = ac.CodeRepository([hello], executor=ac.InProcessExecutor())\n"
        "b = ac.CodeRepository([hello], executor=ac.InProcessExecutor())\n")
    env = {"PYTHONPATH": str(FLOWS_DIR)}
    assert_usage_error(cli("run", "two.py", "hello", env=env), "2 CodeRepository", "two.py:NAME")
    assert cli("run", "two.py:b", "hello", env=env).returncode == 0
    (tmp_path / "broken.py").write_text("import anachron as ac\n\nx = undefined_name\n")
    assert_usage_error(cli("run", "broken.py", "hello"), "NameError", "broken.py:3")


# -- bad input: exit 2, one line, no traceback -----------------------------------------------------
@pytest.mark.parametrize(("args", "named"), [
    (["backfill", "create", FLOWS, "etl", "--from", "2024-13-01", "--to", "2024-01-05"], "2024-13-01"),
    (["backfill", "create", FLOWS, "etl", "--start", "2024-02-30", "--end", "2024-03-01"], "2024-02-30"),
    (["backfill", "create", FLOWS, "nope", "--all"], "nope"),
    (["backfill", "status", "0123456789abcdef"], "0123456789abcdef"),
    (["backfill", "create", FLOWS, "regional", "--range", "date=2024-01-01..", "--dry-run"], "date=2024-01-01.."),
    (["backfill", "create", FLOWS, "regional", "--all", "--strategy", "region=sometimes"], "region=sometimes"),
    (["backfill", "create", FLOWS, "etl", "--all", "--tag", "novalue"], "novalue"),
    (["backfill", "create", FLOWS, "etl", "--all", "--max-concurrency", "lots"], "lots"),
    (["run", FLOWS, "hello", "-p", "name"], "name"),
    (["backfill", "create", FLOWS, "etl", "--all", "--colour"], "--colour"),
])
def test_bad_input_exits_2_with_one_line_naming_it(cli, args, named):
    assert_usage_error(cli(*args), named)


# -- check, db upgrade, help ---------------------------------------------------------------------
def test_check_flags_aliased_wall_clock_calls_and_passes_clean_files(cli):
    dirty = cli("check", FLOWS_DIR / "clocky.py")
    assert dirty.returncode == 1
    lines = dirty.stdout.strip().splitlines()
    assert [line.split(": ", 1)[0].rsplit(":", 1)[1] for line in lines] == ["13", "18", "19"]
    assert all(line.startswith(str(FLOWS_DIR / "clocky.py")) for line in lines)
    assert "time.time()" in lines[0] and "use anachron.time()" in lines[0]
    assert "datetime.date.today()" in lines[1] and "datetime.datetime.now()" in lines[2]
    clean = cli("check", FLOWS, PLAIN)
    assert clean.returncode == 0 and clean.stdout == ""
    assert_usage_error(cli("check", "nowhere.py"), "nowhere.py")


def test_db_upgrade_creates_and_reports_the_schema(cli, tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh' / 'new.db'}"
    proc = cli("db", "upgrade", "--db", url)
    assert proc.returncode == 0 and "revision" in proc.stdout, (proc.stdout, proc.stderr)
    assert (tmp_path / "fresh" / "new.db").exists()
    again = cli.json("db", "upgrade", "--db", url)
    assert again["revision"] == again["head"], again


COMMANDS = ["", "run", "dev-run", "partitions", "check", "backfill", "backfill create", "backfill list",
            "backfill status", "backfill pause", "backfill resume", "backfill cancel", "backfill rerun", "runs",
            "runs list", "runs show", "runs logs", "runs cancel", "db", "db upgrade"]


def test_every_command_has_help_with_an_example(capsys):
    from anachron.cli import run_cli

    proc = subprocess.run([CONSOLE_SCRIPT, "--help"], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "Examples" in proc.stdout and "anachron backfill create" in proc.stdout
    for command in COMMANDS:
        assert run_cli([*command.split(), "--help"]) == 0, command
        text = capsys.readouterr().out
        assert "Examples" in text and "$ anachron" in text, command
