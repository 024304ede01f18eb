"""Graph backfills through every door (SPEC §8): the Python API, the HTTP API and the command line (its dry run,
progress, summary and status by workflow), on SQLite and PostgreSQL; and YAML flows that declare ``deps:``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import anachron as ac
from anachron.flows import FlowError, load_flows
from graph_flows import ALL, GRAPH, daily_summary, raw_events, running_total, weekly_report

GRAPH_FLOWS = str(Path(__file__).parent / "graph_flows.py")
API = "/api/v1"


@pytest.fixture
def graph_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("GRAPH_DIR", str(tmp_path))
    return tmp_path


def executed(folder: Path) -> list[str]:
    """What the runs wrote themselves: ``workflow key`` per execution."""
    log = folder / "runs.log"
    return [" ".join(line.split()[:2]) for line in log.read_text().splitlines()] if log.exists() else []


def test_heal_a_gap_in_one_call_exactly(storage_url, make_repo, graph_dir):
    repo = make_repo(ALL, storage=storage_url, executor=ac.InProcessExecutor(4))
    # history: three days of hours and their summaries ran, then one hour and one day were lost or failed
    assert repo.backfill(raw_events, start="2024-03-01", end="2024-03-03T23:00").status == "completed"
    assert repo.backfill(daily_summary, start="2024-03-01", end="2024-03-03").status == "completed"
    assert repo.backfill(weekly_report, partition_keys=["2024-02-26"]).status == "completed"
    assert repo.run(raw_events, partition_key="2024-03-02T07:00", params=None).status == "success"
    ran = len(executed(graph_dir))
    repo.backfill(raw_events, partition_keys=["2024-03-02T05:00"], tags={"fail": "yes"}, dry_run=True)
    healing = repo.backfill(raw_events, start="2024-03-01", end="2024-03-04T23:00", include="downstream",
                            reprocess="missing", dry_run=True)
    # March 4th's hours never ran: 24 hours; their day, and the day itself; the week of March 4th and its deck
    assert healing.workflows == {"raw_events": {"num_partitions": 24, "num_runs": 24},
                                 "daily_summary": {"num_partitions": 1, "num_runs": 1},
                                 "weekly_report": {"num_partitions": 1, "num_runs": 1},
                                 "yearly_deck": {"num_partitions": 1, "num_runs": 1}}
    assert (healing.num_partitions, healing.num_runs, healing.is_dry_run) == (27, 27, True)
    assert healing.plan[23] == ["2024-03-04T23:00"] and healing.plan[24] == ["2024-03-04"]
    everything = repo.backfill(raw_events, start="2024-03-01", end="2024-03-04T23:00", include="downstream",
                               dry_run=True)
    assert everything.workflows["raw_events"] == {"num_partitions": 96, "num_runs": 96}
    assert everything.workflows["weekly_report"] == {"num_partitions": 2, "num_runs": 2}
    # the real thing: exactly those 27 runs, nothing else, each key after the keys it needs
    healed = repo.backfill(raw_events, start="2024-03-01", end="2024-03-04T23:00", include="downstream",
                           reprocess="missing")
    assert (healed.status, healed.completed, healed.failed) == ("completed", 27, 0)
    assert healed.workflows == healing.workflows
    new = executed(graph_dir)[ran:]
    assert sorted(new) == sorted([f"raw_events 2024-03-04T{h:02d}:00" for h in range(24)]
                                 + ["daily_summary 2024-03-04", "weekly_report 2024-03-04", "yearly_deck -"])
    assert repo.partition_status(daily_summary, from_key="2024-03-01", to_key="2024-03-04") == {
        f"2024-03-0{d}": "success" for d in range(1, 5)}


def test_a_graph_backfill_without_dependencies_among_its_workflows_runs(make_repo, graph_dir):
    repo = make_repo(ALL, storage="sqlite://", executor=ac.InProcessExecutor(2))
    result = repo.backfill(selection=["raw_events", "regions"], start="2024-03-01", end="2024-03-01T02:00",
                           include="upstream")  # nothing is upstream of them: no edge among them
    assert result.status == "completed" and result.completed == 5
    assert result.workflows == {"raw_events": {"num_partitions": 3, "num_runs": 3},
                                "regions": {"num_partitions": 2, "num_runs": 2}}
    assert sorted(executed(graph_dir)) == ["raw_events 2024-03-01T00:00", "raw_events 2024-03-01T01:00",
                                           "raw_events 2024-03-01T02:00", "regions eu", "regions us"]


def test_depends_on_past_is_refused_with_newest_first_and_runs_each_key_after_the_one_before(make_repo, graph_dir):
    repo = make_repo(ALL, storage="sqlite://", executor=ac.InProcessExecutor(4))
    with pytest.raises(ValueError, match="order: 'newest_first' conflicts with depends_on_past=True of workflow "
                                         "'running_total'"):
        repo.backfill(running_total, start="2024-03-01", end="2024-03-05", order="newest_first", dry_run=True)
    plan = repo.backfill(running_total, start="2024-03-01", end="2024-03-05", dry_run=True)
    assert plan.workflows == {"running_total": {"num_partitions": 5, "num_runs": 5}}
    done = repo.backfill(running_total, start="2024-03-01", end="2024-03-05", max_concurrency=4)
    assert done.status == "completed" and done.completed == 5
    assert executed(graph_dir) == [f"running_total 2024-03-0{d}" for d in range(1, 6)]  # one after another


def test_depends_on_past_of_schedule_ticks_shows_them_but_is_not_run_yet(make_repo):
    @ac.workflow(schedule=ac.Schedule("0 6 * * *"), depends_on_past=True)
    def nightly():
        pass

    repo = make_repo([nightly], storage="sqlite://", executor=ac.InProcessExecutor(1))
    ticks = repo.backfill(nightly, start="2024-03-01", end="2024-03-03T23:00", dry_run=True)
    assert ticks.num_runs == 3 and ticks.workflows == {"nightly": {"num_partitions": 3, "num_runs": 3}}
    with pytest.raises(ValueError, match="workflow 'nightly': depends_on_past=True: replaying its schedule's ticks"):
        repo.backfill(nightly, start="2024-03-01", end="2024-03-03T23:00")
    with pytest.raises(ValueError, match="replaying its schedule's ticks one after another is not available yet"):
        repo.backfill_schedule(nightly, start="2024-03-01", end="2024-03-03T23:00")
    assert repo.list_backfills() == [] and repo.list_runs() == []


# -- HTTP ------------------------------------------------------------------------------------------------------
def test_http_graph_and_graph_backfills(make_repo):
    from fastapi.testclient import TestClient

    from anachron.api import create_app

    repo = make_repo(ALL, storage="sqlite://", executor=ac.InProcessExecutor(1))
    with TestClient(create_app(repo, daemon=False, ui=False), base_url="http://localhost") as client:
        graph = client.get(f"{API}/graph").json()
        assert [n["name"] for n in graph["nodes"]][:1] == ["raw_events"]
        edge = next(e for e in graph["edges"] if e["downstream"] == "daily_summary")
        assert edge == {"upstream": "raw_events", "downstream": "daily_summary", "mapping": {"kind": "time_window"},
                        "description": "TimeWindowMapping()", "inferred": True}
        body = {"selection": ["raw_events"], "include": "downstream", "start": "2024-03-01",
                "end": "2024-03-04T23:00", "dry_run": True}
        created = client.post(f"{API}/backfills", json=body)
        assert created.status_code == 200, created.text  # a dry run creates nothing
        answer = created.json()
        assert answer["workflows"]["daily_summary"] == {"num_partitions": 4, "num_runs": 4}
        assert (answer["num_partitions"], answer["num_runs"]) == (96 + 4 + 2 + 1, 103)
        upstream = client.post(f"{API}/backfills", json={"workflow": "weekly_report", "include": "upstream",
                                                         "partition_keys": ["2024-03-04"], "dry_run": True}).json()
        assert upstream["workflows"]["raw_events"] == {"num_partitions": 168, "num_runs": 168}
        created = client.post(f"{API}/backfills", json={**body, "start": "2024-03-04", "dry_run": False})
        assert created.status_code == 201, created.text
        assert created.json()["workflows"]["raw_events"] == {"num_partitions": 24, "num_runs": 24}
        final = repo.wait_backfill(created.json()["backfill_id"], timeout=60)
        assert final.status == "completed" and final.completed_partitions == 24 + 1 + 1 + 1
        shown = client.get(f"{API}/backfills/{final.backfill_id}").json()
        assert shown["workflows"]["daily_summary"] == {"total": 1, "completed": 1, "failed": 0,
                                                       "upstream_failed": 0, "canceled": 0}
        bad = client.post(f"{API}/backfills", json={**body, "include": "sideways"})
        assert bad.status_code in (400, 422) and "include" in bad.json()["error"]["message"]
        assert [b["backfill_id"] for b in client.get(f"{API}/backfills").json()] == [final.backfill_id]
        schema = client.get("/openapi.json").json()
        assert "include" in schema["components"]["schemas"]["BackfillRequest"]["properties"]


# -- the command line --------------------------------------------------------------------------------------------
def anachron(tmp_path: Path, *args: str, **more: str) -> subprocess.CompletedProcess[str]:
    env = {"ANACHRON_DATABASE_URL": f"sqlite:///{tmp_path / 'cli.db'}", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(Path(__file__).parent), "GRAPH_DIR": str(tmp_path), **more}
    return subprocess.run([sys.executable, "-m", "anachron.cli", *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60)


def test_cli_graph_backfill_dry_run_shows_each_workflow(tmp_path):
    shown = anachron(tmp_path, "backfill", "create", GRAPH_FLOWS, "raw_events", "--start", "2024-03-01", "--end",
                     "2024-03-04T23:00", "--include", "downstream", "--dry-run")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert "dry run of raw_events, daily_summary, weekly_report, yearly_deck: nothing was stored" in lines[0]
    rows = {line.split()[0]: line.split()[1:] for line in lines if line.startswith("    ")}
    assert rows["raw_events"] == ["96", "partitions", "96", "runs"]
    assert rows["weekly_report"] == ["2", "partitions", "2", "runs"]
    assert rows["yearly_deck"] == ["1", "partition", "1", "run"]
    as_json = anachron(tmp_path, "backfill", "create", GRAPH_FLOWS, "raw_events", "daily_summary", "--from",
                       "2024-03-01T00:00", "--to", "2024-03-01T05:00", "--dry-run", "--output", "json")
    assert as_json.returncode == 0, as_json.stderr
    data = json.loads(as_json.stdout)
    assert data["workflows"] == {"raw_events": {"num_partitions": 6, "num_runs": 6},
                                 "daily_summary": {"num_partitions": 1, "num_runs": 1}}
    ran = anachron(tmp_path, "backfill", "create", GRAPH_FLOWS, "raw_events", "--start", "2024-03-01",
                   "--end", "2024-03-01T05:00", "--include", "downstream", "--output", "json")
    assert ran.returncode == 0, ran.stderr
    data = json.loads(ran.stdout)
    assert data["status"] == "completed" and data["completed"] == 6 + 1 + 1 + 1
    bad = anachron(tmp_path, "backfill", "create", GRAPH_FLOWS, "raw_events", "nope", "--all", "--dry-run")
    assert bad.returncode == 2 and "WORKFLOW: unknown workflow 'nope'" in bad.stderr
    wrong = anachron(tmp_path, "backfill", "create", GRAPH_FLOWS, "raw_events", "--all", "--include", "up")
    assert wrong.returncode == 2 and "--include" in wrong.stderr


def test_the_command_line_shows_a_graph_backfill_by_workflow(tmp_path):
    """Progress lines, the final summary and ``backfill status`` say how far each workflow is, and how many keys
    never ran because a key they need failed (upstream failed, counted apart from the failures themselves)."""
    ran = anachron(tmp_path, "backfill", "create", GRAPH_FLOWS, "raw_events", "--start", "2024-03-01",
                   "--end", "2024-03-01T05:00", "--include", "downstream", "--max-concurrency", "1",
                   GRAPH_FAIL="raw_events/2024-03-01T03:00", GRAPH_SLEEP="0.3", ANACHRON_PROGRESS_INTERVAL="0.5")
    assert ran.returncode == 1, ran.stderr
    assert executed(tmp_path).count("raw_events 2024-03-01T03:00") == 0 and len(executed(tmp_path)) == 5
    # the plain progress lines (stderr is not a terminal): the whole, then each workflow, upstreams first
    progress = [line for line in ran.stderr.splitlines() if line.startswith("  raw_events: ")]
    assert progress, ran.stderr
    assert ran.stderr.index("  raw_events: ") < ran.stderr.index("  daily_summary: ") < \
        ran.stderr.index("  weekly_report: ") < ran.stderr.index("  yearly_deck: ")
    # the summary: 5 hours succeeded, 1 failed; the day, its week and the deck never ran (upstream failed)
    summary = ran.stdout.splitlines()
    assert "5 succeeded, 1 failed, 3 upstream failed, 0 canceled of 9 partitions" in summary[0], ran.stdout
    table = {line.split()[0]: line.split()[1:] for line in summary[1:] if line.strip()}
    assert table["WORKFLOW"] == ["DONE", "FAILED", "UPSTREAM", "FAILED", "CANCELED", "TOTAL"]
    assert table["raw_events"] == ["5", "1", "0", "0", "6"]
    assert table["daily_summary"] == ["0", "0", "1", "0", "1"]
    assert table["weekly_report"] == table["yearly_deck"] == ["0", "0", "1", "0", "1"]
    assert "2024-03-01T03:00  RuntimeError: bad input for 2024-03-01T03:00" in ran.stdout  # what blocked them
    backfill_id = summary[0].split()[2]
    shown = anachron(tmp_path, "backfill", "status", backfill_id)
    assert shown.returncode == 0, shown.stderr
    assert "9: 5 succeeded · 1 failed · 3 upstream failed · 0 canceled" in shown.stdout
    assert "selected   raw_events · with downstream" in shown.stdout  # what was asked, not only what it ran
    rows = {line.split()[0]: line.split()[1:] for line in shown.stdout.splitlines() if line.startswith("  ")}
    assert rows["daily_summary"] == ["0", "0", "1", "0", "1"] and rows["raw_events"] == ["5", "1", "0", "0", "6"]


# -- YAML flows ---------------------------------------------------------------------------------------------------
def test_a_yaml_flow_sits_downstream_of_a_python_workflow(tmp_path):
    flows = tmp_path / "flows"
    flows.mkdir()
    (flows / "report.yaml").write_text(textwrap.dedent("""\
        id: monthly_report
        partitions: {type: monthly, start: 2024-01-01, end: 2025-01-01}
        deps:
          - daily_summary
          - upstream: weekly_report
            mapping: {type: time_window, start_offset: -1}
        tasks:
          - id: say
            type: shell
            commands: ["echo {{ partition.key }}"]
        """))
    repo = ac.CodeRepository([*GRAPH, *load_flows(flows)], storage="sqlite://", executor=ac.InProcessExecutor(1))
    try:
        edges = {(e.upstream, e.downstream): e for e in repo.graph().edges}
        assert edges["daily_summary", "monthly_report"].mapping == {"kind": "time_window"}
        assert edges["weekly_report", "monthly_report"].description == "TimeWindowMapping(start_offset=-1)"
        plan = repo.backfill("raw_events", partition_keys=["2024-03-31T23:00"], include="downstream", dry_run=True)
        assert plan.workflows["monthly_report"] == {"num_partitions": 2, "num_runs": 2}  # March; April via the week
    finally:
        repo.close()
    (flows / "report.yaml").write_text(textwrap.dedent("""\
        id: monthly_report
        partitions: {type: monthly, start: 2024-01-01}
        deps:
          - upstream: weekly_report
            mapping: {type: sideways}
          - monthly_report
        depends_on_past: maybe
        tasks: [{id: say, type: shell, commands: [echo]}]
        """))
    with pytest.raises(FlowError) as caught:
        load_flows(flows)
    message = str(caught.value)
    assert "report.yaml:5: deps[0].mapping.type: unknown mapping type 'sideways'" in message
    assert "report.yaml:6: deps[1]: 'monthly_report' is this flow itself" in message
    assert "report.yaml:7: depends_on_past: expected true or false" in message
    (flows / "report.yaml").write_text("id: x\ndeps: [nowhere]\ntasks: [{id: s, type: shell, commands: [echo]}]\n")
    with pytest.raises(ValueError, match="'x' depends on 'nowhere', which is not a workflow of this repository"):
        ac.CodeRepository([*GRAPH, *load_flows(flows)], storage="sqlite://")
