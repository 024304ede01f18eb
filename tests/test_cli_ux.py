"""The command line as a person meets it (issue 16): ``--version``; short ids (as the web UI shows them)
wherever an id is taken; counts with thousands separators; ``runs list --partition/--tag``; ``runs show``
printing values; a paused backfill saying how to resume it; ``--from`` / ``--to`` naming the one missing.
Run as a user runs it: subprocesses on a real SQLite file, and through a real server for ``--server``."""

from __future__ import annotations

import json
import re
import sqlite3

import pytest

import anachron as ac
from anachron.repository import pick_id
from test_cli import FLOWS, Cli, api, assert_usage_error, cli  # noqa: F401 - fixtures
from test_cli_remote import cli as remote_cli  # noqa: F401 - fixture
from test_cli_remote import ok_json, one_error, served  # noqa: F401 - fixtures


def ok(proc, code: int = 0):
    assert proc.returncode == code, (proc.returncode, proc.stdout, proc.stderr)
    return proc


def test_version(cli):
    for flag in ("--version", "-V"):
        proc = ok(cli(flag))
        assert proc.stdout == f"anachron {ac.__version__}\n" and proc.stderr == ""


@pytest.mark.parametrize(("given", "missing"), [(["--from", "2024-01-01"], "--to"), (["--to", "2024-01-31"], "--from")])
def test_from_or_to_alone_names_the_missing_one(cli, given, missing):
    proc = cli("backfill", "create", FLOWS, "etl", *given)
    assert_usage_error(proc, f"{missing} is missing: --from and --to go together")


# -- short ids --------------------------------------------------------------------------------------
def test_short_run_and_backfill_ids_are_taken_everywhere(cli, api):
    ok(cli("backfill", "create", FLOWS, "etl", "--partitions", "2024-01-01,2024-01-02", "-q"))
    (bf,) = api.list_backfills()
    run, other = api.list_runs(partition_key="2024-01-02")[0], api.list_runs(partition_key="2024-01-01")[0]
    suffix = run.run_id[-8:]  # what the UI shows

    shown = json.loads(ok(cli("runs", "show", suffix, "-o", "json")).stdout)
    assert shown["run_id"] == run.run_id and shown["partition_key"] == "2024-01-02"
    assert ok(cli("runs", "show", suffix)).stdout.startswith(f"run {run.run_id} etl partition 2024-01-02: success")
    # run ids made by one process share their first 24 digits: a prefix names them all
    error = one_error(cli("runs", "show", run.run_id[:6]), 2, f"RUN_ID: run id {run.run_id[:6]!r} is ambiguous")
    assert run.run_id in error and other.run_id in error
    assert "loaded 10 rows for 2024-01-02" in ok(cli("runs", "logs", suffix)).stdout
    assert f"backfill {bf.backfill_id}" in ok(cli("backfill", "status", bf.backfill_id[:5])).stdout
    listed = json.loads(ok(cli("runs", "list", "--backfill", bf.backfill_id[-6:], "-o", "json")).stdout)
    assert len(listed) == 2 and {r["backfill_id"] for r in listed} == {bf.backfill_id}
    rerun = ok(cli("backfill", "rerun", FLOWS, bf.backfill_id[:8]))
    assert f"backfill {bf.backfill_id} is completed: every partition succeeded" in rerun.stdout
    refused = ok(cli("runs", "cancel", suffix), code=2)
    assert f"run {run.run_id} is success" in refused.stderr  # the full id, once resolved

    one_error(cli("runs", "show", "abc"), 2, "RUN_ID: run 'abc' not found in", "at least 4 characters")
    one_error(cli("backfill", "status", "ffffffffff"), 2, "BACKFILL_ID: backfill 'ffffffffff' not found in")


def test_an_ambiguous_short_id_exits_2_naming_the_candidates(cli, api):
    ok(cli("backfill", "create", FLOWS, "etl", "--partitions", "2024-01-01,2024-01-02,2024-01-03", "-q"))
    ok(cli("backfill", "create", FLOWS, "etl", "--partitions", "2024-01-04", "-q"))
    runs = api.list_runs(workflow="etl")
    backfills = api.list_backfills()
    # ids are opaque: give three runs and both backfills ids that share a start and an end
    new_runs = ["aaaa0001" + "0" * 16 + "1234beef", "aaaa0002" + "0" * 16 + "5678beef", "bbbb0003" + "0" * 24]
    with sqlite3.connect(cli.url.removeprefix("sqlite:///")) as db:
        for r, new in zip(runs, new_runs):
            db.execute("UPDATE anachron_runs SET run_id = ? WHERE run_id = ?", (new, r.run_id))
        for b, new in zip(backfills, ["cccc00000000dd01", "cccc00000000dd02"]):
            db.execute("UPDATE anachron_backfills SET backfill_id = ? WHERE backfill_id = ?", (new, b.backfill_id))

    for fragment in ("aaaa", "beef"):  # a prefix, a suffix
        error = one_error(cli("runs", "show", fragment), 2, f"RUN_ID: run id {fragment!r} is ambiguous")
        assert new_runs[0] in error and new_runs[1] in error and new_runs[2] not in error
    assert json.loads(ok(cli("runs", "show", "1234beef", "-o", "json")).stdout)["run_id"] == new_runs[0]
    assert json.loads(ok(cli("runs", "show", "aaaa0002", "-o", "json")).stdout)["run_id"] == new_runs[1]
    error = one_error(cli("backfill", "pause", "cccc"), 2, "BACKFILL_ID: backfill id 'cccc' is ambiguous")
    assert "cccc00000000dd01" in error and "cccc00000000dd02" in error
    one_error(cli("backfill", "status", "dd0"), 2, "not found")  # too short to be taken as part of an id
    assert "cccc00000000dd02" in ok(cli("backfill", "status", "dd02")).stdout


def test_pick_id_lists_a_few_candidates():
    assert pick_id("run", "ab12", ["ab12cd"]) == "ab12cd"
    with pytest.raises(ac.NotFoundError, match="run 'ab' not found .a short id needs at least 4 characters"):
        pick_id("run", "ab", [])
    with pytest.raises(ValueError, match=r"matches a1, a2, a3, a4, a5, …; give more characters"):
        pick_id("run", "aaaa", ["a1", "a2", "a3", "a4", "a5", "a6"])


# -- listing and showing runs ------------------------------------------------------------------------
def test_runs_list_by_partition_and_tag(cli, api):
    ok(cli("backfill", "create", FLOWS, "etl", "--from", "2024-01-01", "--to", "2024-01-06", "--strategy",
           "batched=3", "--tag", "team=data", "-q"))
    ok(cli("run", FLOWS, "etl", "--partition", "2024-01-05", "--tag", "team=ops", "--tag", "why=fix"))
    ok(cli("run", FLOWS, "etl", "--partition", "2024-01-09", "--tag", "team=ops"))

    def listed(*args):
        return [(r["partition_key"], r["partition_keys"], r["tags"].get("team"))
                for r in json.loads(ok(cli("runs", "list", *args, "-o", "json")).stdout)]

    batch = ["2024-01-04", "2024-01-05", "2024-01-06"]
    assert listed("--partition", "2024-01-05") == [("2024-01-05", ["2024-01-05"], "ops"), (None, batch, "data")]
    assert listed("--partition", "2024-01-05", "--workflow", "etl", "--tag", "team=data") == [(None, batch, "data")]
    assert listed("--tag", "team=ops") == [("2024-01-09", ["2024-01-09"], "ops"), ("2024-01-05", ["2024-01-05"], "ops")]
    assert listed("--tag", "team=ops", "--tag", "why=fix") == [("2024-01-05", ["2024-01-05"], "ops")]
    assert listed("--partition", "2023-12-31") == []
    text = ok(cli("runs", "list", "--partition", "2024-01-05")).stdout
    assert "2024-01-04 … 2024-01-06 (3)" in text and text.count("etl") == 2
    assert_usage_error(cli("runs", "list", "--tag", "team"), "--tag")


def test_runs_show_prints_values_not_reprs(cli):
    ok(cli("run", FLOWS, "hello", "-p", "name=ada", "-p", "n=3", "--tag", "team=data", "--tag", "k=v"))
    ok(cli("backfill", "create", FLOWS, "etl", "--from", "2024-01-01", "--to", "2024-01-03", "--strategy",
           "single_run", "-q"))
    hello, batch = json.loads(ok(cli("runs", "list", "-o", "json")).stdout)[::-1]
    shown = ok(cli("runs", "show", hello["run_id"])).stdout
    assert re.search(r"^  params +\{\"name\": \"ada\", \"n\": 3\}$", shown, re.M), shown
    assert re.search(r"^  tags +team=data, k=v$", shown, re.M), shown
    assert re.search(r"^  backfill +-$", shown, re.M), shown
    assert re.search(r"^  logical time +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", shown, re.M), shown
    for repr_ in ("None", "{'", "['", "datetime("):
        assert repr_ not in shown, shown
    shown = ok(cli("runs", "show", batch["run_id"])).stdout
    assert re.search(r"^  partitions +2024-01-01 … 2024-01-03 \(3\)$", shown, re.M), shown
    assert re.search(r"^  params +-$", shown, re.M), shown
    assert re.search(rf"^  backfill +{batch['backfill_id']}$", shown, re.M), shown


# -- counts and hints ---------------------------------------------------------------------------------
def test_counts_have_thousands_separators(cli):
    plan = ok(cli("backfill", "create", FLOWS, "regional", "--all", "--dry-run")).stdout
    assert re.search(r"^  partitions 1,098 ", plan, re.M) and re.search(r"^  runs +1,098$", plan, re.M), plan
    ok(cli("backfill", "create", FLOWS, "regional", "--all", "--no-wait"))
    listed = ok(cli("backfill", "list")).stdout
    assert "1,098" in listed, listed
    ok(cli("run", FLOWS, "etl", "--partition", "2024-01-01"))
    partitions = ok(cli("partitions", FLOWS, "etl")).stdout
    assert "etl: 366 partitions" in partitions and re.search(r"missing +365", partitions)
    assert "1,098" in ok(cli("partitions", FLOWS, "regional")).stdout


def test_a_paused_backfill_says_how_to_resume_it(cli, api):
    backfill_id = ok(cli("backfill", "create", FLOWS, "etl", "--all", "--no-wait")).stdout.strip()
    paused = ok(cli("backfill", "pause", backfill_id))
    assert f"Continue with `anachron backfill resume {backfill_id}`" in paused.stderr
    status = ok(cli("backfill", "status", backfill_id)).stdout
    assert f"paused: runs in flight finished, nothing new starts. Resume it: anachron backfill resume " \
           f"{backfill_id}" in status, status
    assert "366: 0 succeeded" in status


# -- through a server ---------------------------------------------------------------------------------
def test_short_ids_and_partition_filter_through_a_server(remote_cli):
    created = ok_json(remote_cli.remote("backfill", "create", "etl", "--partitions", "2024-02-01,2024-02-02",
                                        "--tag", "via=server", "-o", "json"))
    backfill_id, run_id = created["backfill_id"], created["run_ids"][-1]
    status = ok_json(remote_cli.remote("backfill", "status", backfill_id[-7:], "-o", "json"))
    assert status["backfill_id"] == backfill_id
    assert ok_json(remote_cli.remote("runs", "show", run_id[-8:], "-o", "json"))["run_id"] == run_id
    logs = ok(remote_cli.remote("runs", "logs", run_id[-6:])).stdout
    assert "loaded 10 rows for 2024-02-02" in logs
    found = ok_json(remote_cli.remote("runs", "list", "--partition", "2024-02-02", "--tag", "via=server", "-o",
                                      "json"))
    assert [r["run_id"] for r in found] == [run_id]
    one_error(remote_cli.remote("runs", "show", "zzzzzz"), 2, "RUN_ID: run 'zzzzzz' not found on")
