"""Kestra-compatible trigger backfills (SPEC §6) through HTTP, in the exact JSON Kestra's clients send.

One real ``anachron server`` for the module serves a YAML flow (tests/api_flows/kestra_flow.yaml, namespace
``company.team``, trigger ``every6h``) and a Python workflow with schedules (``hourly`` in
tests/api_flows/api_workflows.py: Kestra's namespace for it is its module, ``api_workflows``). Two targets,
so the server runs them in worker processes (``LocalExecutor``), as a user's would.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

import anachron as ac
from helpers import wait_for
from server_process import ServerProcess, running_server
from test_api import API, backfill_ids, expect_error, ok, wait_backfill

FLOWS_DIR = Path(__file__).parent / "api_flows"
UTC = timezone.utc
YAML_REF = {"flowId": "kestra_flow", "namespace": "company.team", "triggerId": "every6h"}
PY_REF = {"flowId": "hourly", "namespace": "api_workflows", "triggerId": "schedule"}


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("triggers")
    with running_server([str(FLOWS_DIR / "api_workflows.py"), str(FLOWS_DIR / "kestra_flow.yaml")],
                        f"sqlite:///{tmp / 'api.db'}", tmp) as srv:
        yield srv
        assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture(scope="module")
def client(server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


def runs_of(client: httpx.Client, backfill_id: str) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = ok(client.get(f"{API}/runs", params={"backfill_id": backfill_id, "limit": 1000}))
    return sorted(runs, key=lambda r: r["logical_time"])


def at(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_yaml_flow_backfill_in_kestras_exact_form(client):
    body = {"backfill": {"start": "2024-03-01T00:00:00Z", "end": "2024-03-02T00:00:00Z",
                         "inputs": {"region": "eu", "batch": 7}, "labels": [{"key": "k", "value": "v"}]},
            "flowId": "kestra_flow", "namespace": "company.team", "triggerId": "every6h"}
    trigger = ok(client.put(f"{API}/triggers", json=body))
    assert (trigger["namespace"], trigger["flowId"], trigger["triggerId"]) == ("company.team", "kestra_flow", "every6h")
    assert trigger["disabled"] is False and trigger["nextExecutionDate"] is not None
    state = trigger["backfill"]
    assert state["start"] == "2024-03-01T00:00:00Z" and state["end"] == "2024-03-02T00:00:00Z"
    assert state["inputs"] == {"region": "eu", "batch": 7} and state["labels"] == [{"key": "k", "value": "v"}]
    assert state["paused"] is False and trigger["backfill_status"] in ("requested", "in_progress", "completed")

    status = wait_backfill(client, trigger["backfill_id"])
    assert status["status"] == "completed" and status["completed_partitions"] == 5, status
    assert status["tags"] == [["k", "v"], ["anachron/trigger", "every6h"]]
    assert list(status["workflows"]) == ["kestra_flow"]
    runs = runs_of(client, trigger["backfill_id"])
    ticks = [datetime(2024, 3, 1, h, tzinfo=UTC) for h in (0, 6, 12, 18)] + [datetime(2024, 3, 2, tzinfo=UTC)]
    assert [at(r["logical_time"]) for r in runs] == ticks  # the ticks in [start, end], end included
    assert [at(r["scheduled_time"]) for r in runs] == ticks
    for run in runs:
        assert run["status"] == "success" and run["params"] == {"region": "eu", "batch": 7}  # inputs → params
        assert run["tags"]["k"] == "v" and run["tags"]["owner"] == "data"  # labels → tags, beside the flow's own
    logs = ok(client.get(f"{API}/runs/{runs[1]['run_id']}/logs"))
    assert "export 2024-03-01T06:00:00+00:00 region=eu batch=7" in [line["message"] for line in logs["lines"]]

    after = ok(client.put(f"{API}/triggers", json=body))  # the first one has finished: a new one is welcome
    assert after["backfill_id"] != trigger["backfill_id"]
    assert wait_backfill(client, after["backfill_id"])["status"] == "completed"


def test_python_workflow_with_a_schedule_end_null_means_now(client):
    start = datetime.now(UTC) - timedelta(hours=3, minutes=30)
    body = {"backfill": {"start": start.isoformat(), "end": None, "inputs": {"region": "eu"},
                         "labels": [{"key": "team", "value": "kestra"}]}, **PY_REF}
    before = datetime.now(UTC)
    trigger = ok(client.put(f"{API}/triggers", json=body))
    after = datetime.now(UTC)
    assert trigger["namespace"] == "api_workflows" and trigger["flowId"] == "hourly"
    assert before <= at(trigger["backfill"]["end"]) <= after  # null: now, when the backfill was created

    def hours_until(end: datetime) -> list[datetime]:
        tick = start.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
        found = []
        while tick <= end:
            found.append(tick)
            tick += timedelta(hours=1)
        return found

    status = wait_backfill(client, trigger["backfill_id"])
    assert status["status"] == "completed", status
    runs = runs_of(client, trigger["backfill_id"])
    assert [at(r["logical_time"]) for r in runs] in (hours_until(before), hours_until(after))
    assert len(runs) >= 3
    for run in runs:
        assert run["params"] == {"region": "eu"} and run["tags"]["team"] == "kestra" and run["status"] == "success"
    logs = ok(client.get(f"{API}/runs/{runs[0]['run_id']}/logs"))
    assert f"hourly eu at {at(runs[0]['logical_time']).isoformat()}" in [line["message"] for line in logs["lines"]]


def test_pause_unpause_delete_and_one_backfill_per_trigger(client):
    # Ten years of 6-hourly ticks: far more than can finish between the unpause and the delete below.
    years = {"backfill": {"start": "2014-01-01T00:00:00Z", "end": "2023-12-31T18:00:00Z"}, **YAML_REF}
    total = 3652 * 4
    trigger = ok(client.put(f"{API}/triggers", json=years))
    backfill_id = trigger["backfill_id"]
    assert ok(client.get(f"{API}/backfills/{backfill_id}"))["total_partitions"] == total
    expect_error(client.put(f"{API}/triggers", json=years), 409, "every6h", "kestra_flow")

    paused = ok(client.put(f"{API}/triggers/backfill/pause", json=YAML_REF))
    assert paused["backfill_id"] == backfill_id and paused["backfill"]["paused"] is True
    assert paused["backfill_status"] == "paused"
    assert wait_for(lambda: ok(client.get(f"{API}/backfills/{backfill_id}"))["running_runs"] == 0, 15)
    settled = ok(client.get(f"{API}/backfills/{backfill_id}"))
    time.sleep(0.5)
    still = ok(client.get(f"{API}/backfills/{backfill_id}"))
    assert still["status"] == "paused" and still["completed_partitions"] == settled["completed_partitions"] < total
    expect_error(client.put(f"{API}/triggers", json=years), 409)  # a paused backfill is still the trigger's

    unpaused = ok(client.put(f"{API}/triggers/backfill/unpause", json=YAML_REF))
    assert unpaused["backfill"]["paused"] is False and unpaused["backfill_status"] == "in_progress"
    assert wait_for(lambda: ok(client.get(f"{API}/backfills/{backfill_id}"))["completed_partitions"]
                    > still["completed_partitions"], 15, step=0.05)

    deleted = ok(client.post(f"{API}/triggers/backfill/delete", json=YAML_REF))
    assert deleted["backfill"] is None and deleted["backfill_id"] == backfill_id
    assert deleted["backfill_status"] == "canceled"
    final = wait_backfill(client, backfill_id)
    assert final["status"] == "canceled" and final["canceled_partitions"] > 0
    assert final["completed_partitions"] + final["failed_partitions"] + final["canceled_partitions"] == total
    assert not any(r["status"] in ("queued", "running") for r in runs_of(client, backfill_id))

    for action in ("pause", "unpause"):
        expect_error(client.put(f"{API}/triggers/backfill/{action}", json=YAML_REF), 404, "no backfill")
    expect_error(client.post(f"{API}/triggers/backfill/delete", json=YAML_REF), 404, "no backfill")
    short = {"backfill": {"start": "2023-06-01T00:00:00Z", "end": "2023-06-01T06:00:00Z"}, **YAML_REF}
    again = ok(client.put(f"{API}/triggers", json=short))  # nothing active now: accepted
    assert wait_backfill(client, again["backfill_id"])["completed_partitions"] == 2


@pytest.mark.parametrize("ref", [
    {**YAML_REF, "namespace": "company.other"}, {**YAML_REF, "flowId": "ghost"}, {**YAML_REF, "triggerId": "nightly"},
    {**PY_REF, "namespace": "company.team"}, {**PY_REF, "namespace": "default"}, {**PY_REF, "triggerId": "every6h"},
    {"flowId": "daily", "namespace": "api_workflows", "triggerId": "schedule"},  # no schedule at all
])
def test_wrong_namespace_flow_or_trigger_is_404_and_writes_nothing(client, ref):
    before = backfill_ids(client)
    body = {"backfill": {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"}, **ref}
    expect_error(client.put(f"{API}/triggers", json=body), 404, ref["flowId"])
    expect_error(client.put(f"{API}/triggers/backfill/pause", json=ref), 404, ref["flowId"])
    expect_error(client.put(f"{API}/triggers/backfill/unpause", json=ref), 404, ref["flowId"])
    expect_error(client.post(f"{API}/triggers/backfill/delete", json=ref), 404, ref["flowId"])
    assert backfill_ids(client) == before


@pytest.mark.parametrize("body,status,words", [
    (YAML_REF, 422, ["backfill"]),
    ({"backfill": {"end": "2024-01-02T00:00:00Z"}, **YAML_REF}, 422, ["backfill.start"]),
    ({"backfill": {"start": "junk"}, **YAML_REF}, 400, ["start", "junk"]),
    ({"backfill": {"start": 12}, **YAML_REF}, 422, ["start"]),  # not read as 1970-01-01T00:00:12Z
    ({"backfill": {"start": "2024-01-02T00:00:00Z", "end": "2024-01-01T00:00:00Z"}, **YAML_REF}, 400, ["end"]),
    ({"backfill": {"start": "2024-01-01T00:00:00Z", "inputs": {"nope": 1}}, **YAML_REF}, 400, ["nope"]),
    ({"backfill": {"start": "2024-01-01T00:00:00Z", "inputs": {"batch": "many"}}, **YAML_REF}, 400, ["batch"]),
    ({"backfill": {"start": "2024-01-01T00:00:00Z", "inputs": ["eu"]}, **YAML_REF}, 422, ["inputs"]),
    ({"backfill": {"start": "2024-01-01T00:00:00Z", "labels": [{"key": "k"}]}, **YAML_REF}, 422, ["labels"]),
    ({"backfill": {"start": "2024-01-01T00:00:00Z", "labels": {"k": "v"}}, **YAML_REF}, 422, ["labels"]),
    ({"backfill": {"start": "2024-01-01T00:00:00Z", "labels": [{"key": "anachron/priority", "value": "x"}]},
      **YAML_REF}, 400, ["anachron/priority"]),
    ({"backfill": {"start": "2024-01-01T00:00:00Z"}, "flowId": "kestra_flow", "triggerId": "every6h"}, 422,
     ["namespace"]),
    ({"backfill": {"start": "2024-01-01T00:00:00Z"}, **YAML_REF, "flowId": ""}, 422, ["flowId"]),
    ({"backfill": {"start": "2024-01-01T00:00:00Z", "inputs": {"region": "eu"}}, **PY_REF, "triggerId": ""}, 422,
     ["triggerId"]),
    ({"backfill": {"start": "2024-01-01T00:00:00Z", "inputs": {"zone": "eu"}}, **PY_REF}, 400,
     ["backfill.inputs", "zone"]),
])
def test_bad_trigger_bodies_are_4xx_naming_the_field_and_write_nothing(client, body, status, words):
    before = backfill_ids(client)
    expect_error(client.put(f"{API}/triggers", json=body), status, *words)
    assert backfill_ids(client) == before


def test_control_bodies_are_validated(client):
    for action, method in (("pause", "PUT"), ("unpause", "PUT"), ("delete", "POST")):
        expect_error(client.request(method, f"{API}/triggers/backfill/{action}", json={"flowId": "kestra_flow"}), 422,
                     "namespace")
        expect_error(client.request(method, f"{API}/triggers/backfill/{action}", content=b"[]",
                                    headers={"content-type": "application/json"}), 422)


@pytest.mark.filterwarnings("ignore:.*starlette.testclient")  # it prefers httpx2: a UserWarning
def test_default_namespace_for_a_workflow_without_a_module(tmp_path):
    """A Python workflow defined in ``__main__`` (a script) is in Kestra's ``default`` namespace."""
    from fastapi.testclient import TestClient

    from anachron.api import create_app

    def nightly_job(region: str = "us"):
        return region

    nightly_job.__module__ = "__main__"
    wf = ac.workflow(schedule=ac.Schedule("0 3 * * *"))(nightly_job)
    repo = ac.CodeRepository([wf], storage=f"sqlite:///{tmp_path / 'x.db'}", executor=ac.InProcessExecutor(2))
    try:
        with TestClient(create_app(repo, daemon=False, ui=False), base_url="http://localhost") as c:
            assert ok(c.get(f"{API}/workflows/nightly_job"))["namespace"] == "default"
            ref = {"flowId": "nightly_job", "namespace": "default", "triggerId": "schedule"}
            trigger = ok(c.put(f"{API}/triggers", json={"backfill": {"start": "2024-01-01", "end": "2024-01-03",
                                                                     "inputs": {"region": "eu"}}, **ref}))
            assert trigger["namespace"] == "default"
            status = repo.wait_backfill(trigger["backfill_id"], timeout=30)
            assert status.status == "completed" and status.completed_partitions == 2  # 03:00 on the 1st and 2nd
            expect_error(c.put(f"{API}/triggers", json={"backfill": {"start": "2024-01-01"}, **ref,
                                                        "namespace": "__main__"}), 404)
    finally:
        repo.close()
