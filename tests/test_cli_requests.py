"""The command line's input: one BackfillRequest model, option names in its errors, typed ``-p`` values, and
which database a command opens (validated first, never created by accident)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
import sys

import pytest

import anachron as ac
from anachron.cli import parsing
from anachron.cli.common import CliError
from anachron.cli.request import Options, rename
from anachron.requests import BackfillRequest
from test_cli import FLOWS, Cli, api, assert_usage_error, cli, flows  # noqa: F401 - fixtures


# -- 1. one request model ------------------------------------------------------------------------
def test_create_builds_the_same_request_as_the_python_api(flows):
    cases = [
        (flows.etl, Options(from_key="2024-01-01", to_key="2024-01-31", strategy="batched=7", max_concurrency="8",
                            on_failure="stop", reprocess="missing", order="newest_first", tags=["team=data"],
                            params=["sleep=0.5"], idempotency_key="k1"),
         dict(partition_range=ac.PartitionKeyRange.single("2024-01-01", "2024-01-31"),
              strategy=ac.BackfillStrategy.batched(7), max_concurrency=8, failure_policy="stop_on_failure",
              reprocess="missing", order="newest_first", tags=[("team", "data")], params={"sleep": 0.5},
              idempotency_key="k1")),
        (flows.regional, Options(ranges=["date=2024-01-01..2024-01-03", "region=us,eu"], strategy="date=single_run"),
         dict(partition_range=ac.PartitionKeyRange.multi({"date": ("2024-01-01", "2024-01-03"),
                                                          "region": ["us", "eu"]}),
              strategy=ac.BackfillStrategy.per_dimension(multi_run=["region"], single_run=["date"]))),
        (flows.etl, Options(partitions="2024-01-05,2024-01-09", dry_run=True, strategy="single_run"),
         dict(partition_keys=["2024-01-05", "2024-01-09"], dry_run=True, strategy=ac.BackfillStrategy.single_run())),
        (flows.etl, Options(ranges=["2024-01-01..2024-01-02"]),
         dict(partition_range=ac.PartitionKeyRange.single("2024-01-01", "2024-01-02"))),
        (flows.etl, Options(start="2024-01-01", end="2024-03-31T12:00:00+00:00"),
         dict(start="2024-01-01", end="2024-03-31T12:00:00+00:00")),
        (flows.etl, Options(all_keys=True), {}),
        (flows.dated, Options(all_keys=True, params=["day=2024-01-01", "at=2024-01-01T06:00:00Z"]),
         dict(params={"day": dt.date(2024, 1, 1), "at": dt.datetime(2024, 1, 1, 6, tzinfo=dt.timezone.utc)})),
    ]
    for wf, options, python in cases:
        built = options.check().request(wf)
        assert isinstance(built, BackfillRequest)
        assert built == BackfillRequest.from_python(wf.name, **python), (options, built)


def test_model_errors_name_the_option():
    message = "must be an integer >= 1 (at most 1,000,000), got 0"
    assert rename(f"max_concurrency: {message}", {"max_concurrency": "--max-concurrency"}) == \
        f"--max-concurrency: {message}"
    assert rename("params['day']: a set cannot be stored; use a list", {"params": "-p"}) == \
        "-p day: a set cannot be stored; use a list"
    assert rename("params: workflow 'etl' has no parameter 'nope'", {"params": "-p"}).startswith("-p nope: ")
    assert rename("partition_range.dimensions.date.from: string should have at least 1 character",
                  {"partition_range": "--range"}).startswith("--range date: ")
    assert rename("unknown partition key '2024-13-01'", {"params": "-p"}) is None


@pytest.mark.parametrize(("options", "named"), [
    (Options(all_keys=True, max_concurrency="99999999999999999999"), "--max-concurrency: "),
    (Options(all_keys=True, max_concurrency="0"), "--max-concurrency: "),
    (Options(all_keys=True, max_concurrency="lots"), "--max-concurrency: "),
    (Options(all_keys=True, reprocess="sometimes"), "--reprocess: "),
    (Options(all_keys=True, order="random"), "--order: "),
    (Options(all_keys=True, strategy="batched=0"), "--strategy: "),
    (Options(all_keys=True, params=["nope=1"]), "-p nope: "),
    (Options(all_keys=True, tags=["anachron/priority=high"]), "--tag: "),
    (Options(all_keys=True, idempotency_key=""), "--idempotency-key: "),
    (Options(start="2024-02-30"), "--start: "),
    (Options(start="2024-01-01", end="soon"), "--end: "),
    (Options(from_key="2024-01-01", partitions="2024-01-02"), "--from/--to and --partitions"),
    (Options(end="2024-01-02"), "--start is missing"),
])
def test_refused_values_name_the_option(flows, options, named):
    with pytest.raises(CliError) as refused:
        request = options.check().request(flows.etl)
        try:
            flows.repo.create_backfill(request, block=False, coordinate=False)  # what needs the workflow
        except ValueError as exc:
            raise options.error(exc) from None
    message = str(refused.value)
    assert message.startswith(named) or named in message, message
    assert refused.value.exit_code == 2 and "\n" not in message
    assert not message.startswith(("max_concurrency", "params", "idempotency_key", "reprocess", "start", "tags"))


def test_refused_values_exit_2_with_one_line(cli):
    proc = cli("backfill", "create", FLOWS, "etl", "--all", "--max-concurrency", "99999999999999999999")
    assert_usage_error(proc, "--max-concurrency: ", "99999999999999999999")
    assert_usage_error(cli("backfill", "create", FLOWS, "etl", "--all", "-p", "nope=1"), "-p nope: ")


# -- 12. -p values for dates -----------------------------------------------------------------------
def test_p_reads_dates_for_date_parameters(cli, api):
    run = cli.json("run", FLOWS, "dated", "-p", "day=2024-01-01", "-p", "at=2024-01-01T06:00:00+00:00")
    assert run["status"] == "success", run  # the workflow checks it got a date and a datetime
    assert any("day 2024-01-01 at 2024-01-01T06:00:00+00:00" in line["message"]
               for line in api.run_logs(run["run_id"]))
    assert cli.json("run", FLOWS, "dated", "-p", "day=2024-02-29", "-p", "at=null")["status"] == "success"
    assert_usage_error(cli("run", FLOWS, "dated", "-p", "day=2024-13-01"), "-p day", "2024-13-01")
    assert_usage_error(cli("run", FLOWS, "dated", "-p", "day=2024-01-01", "-p", "at=noon"), "-p at", "noon")
    assert api.list_runs(status="failed") == []


def test_date_annotations_are_found_resolved_or_not():
    def fn(a: dt.date, b: Optional[datetime.datetime] = None, c: Unknown = None, d: int = 1,  # noqa: F821
           e: date | None = None):  # noqa: F821 - an annotation that cannot be resolved, on purpose
        return a

    wf = ac.Workflow(fn)
    assert parsing.date_parameters(wf) == {"a": dt.date, "b": dt.datetime, "e": dt.date}  # unresolvable: by name
    assert parsing.params(["a=2024-01-01", "d=2", "c=2024-01-01"], "-p", wf) == {
        "a": dt.date(2024, 1, 1), "d": 2, "c": "2024-01-01"}
    with pytest.raises(CliError, match="-p a: '01/02/2024'"):
        parsing.params(["a=01/02/2024"], "-p", wf)


# -- 5. --db blamed correctly ----------------------------------------------------------------------
def test_a_bad_database_url_is_blamed_on_where_it_came_from(cli):
    for command in (["backfill", "create", FLOWS, "etl", "--all"], ["backfill", "list", FLOWS], ["runs", "list"]):
        proc = cli(*command, "--db", "mysql://x")
        assert_usage_error(proc, "--db: ", "mysql://x")
        assert "TARGET" not in proc.stderr and "flows.py" not in proc.stderr
    assert_usage_error(cli("run", FLOWS, "hello", "--db", "postgresql://me@host:port/db"), "--db: ", "malformed")
    proc = cli("run", FLOWS, "hello", env={"ANACHRON_DATABASE_URL": "mysql://x"})
    assert_usage_error(proc, "ANACHRON_DATABASE_URL: ", "mysql://x")
    assert "flows.py" not in proc.stderr


# -- 3. no accidental default database -------------------------------------------------------------
def test_commands_without_a_database_create_none(cli, tmp_path):
    where = tmp_path / "empty"
    where.mkdir()
    env = {k: v for k, v in cli.env.items() if k != "ANACHRON_DATABASE_URL"}
    # every command that needs only the database goes through the same check (target.repository)
    commands = (["backfill", "cancel", "0123456789abcdef"], ["backfill", "list"], ["runs", "list"],
                ["runs", "logs", "r"])
    started = [subprocess.Popen([sys.executable, "-m", "anachron.cli", *command], cwd=where, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for command in commands]
    for proc in started:
        out, err = proc.communicate(timeout=60)
        assert_usage_error(subprocess.CompletedProcess(proc.args, proc.returncode, out, err),
                           "no database found", "--db", "ANACHRON_DATABASE_URL", "[tool.anachron]")
    assert os.listdir(where) == []
    # the default file, when it exists, is used
    assert Cli(where, "sqlite:///.anachron/anachron.db")("db", "upgrade").returncode == 0
    proc = subprocess.run([sys.executable, "-m", "anachron.cli", "backfill", "list"], cwd=where, env=env,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0 and "no backfills" in proc.stdout, proc.stderr
