"""The HTTP API (SPEC §6) through HTTP, against real ``anachron server`` processes.

One server per fixture scope keeps the file fast: the main one serves tests/api_flows/api_workflows.py (its
repository runs threads) on a SQLite file for the whole module; others check the token, the bind address and
SIGTERM, and a smoke test runs the main calls on PostgreSQL (a database of its own, created and dropped
here). Every test uses its own partitions, tags or idempotency keys, so the shared server's history from one
test never decides another's result.
"""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

import anachron as ac
from helpers import wait_for
from server_process import ServerProcess, free_port, running_server

FLOWS_DIR = Path(__file__).parent / "api_flows"
PY_FLOWS = str(FLOWS_DIR / "api_workflows.py")
API = "/api/v1"
FINISHED = ("completed", "failed", "canceled")
WORKFLOWS = {"daily", "grid", "gated", "slow", "hello", "sleepy", "hourly"}


# -- helpers ----------------------------------------------------------------------------------------------
def expect_error(response: httpx.Response, status: int, *words: str) -> str:
    """A refusal in the one error shape, with each of ``words`` in its message; returns the message."""
    assert response.status_code == status, (response.status_code, response.text)
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message"}, body
    assert isinstance(body["error"]["code"], str) and body["error"]["code"], body
    message = body["error"]["message"]
    assert isinstance(message, str) and "Traceback" not in message, body
    for word in words:
        assert word in message, (word, message)
    return message


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, (response.status_code, response.text)
    return response.json()


def backfill_ids(client: httpx.Client) -> list[str]:
    """Every backfill id, newest first (paged through)."""
    ids: list[str] = []
    while True:
        page = ok(client.get(f"{API}/backfills", params={"limit": 1000, "offset": len(ids)}))
        ids += [b["backfill_id"] for b in page]
        if len(page) < 1000:
            return ids


def run_count(client: httpx.Client) -> int:
    return len(ok(client.get(f"{API}/runs", params={"limit": 1000})))


def wait_backfill(client: httpx.Client, backfill_id: str, statuses: tuple[str, ...] = FINISHED,
                  timeout: float = 30) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def done() -> bool:
        last.update(ok(client.get(f"{API}/backfills/{backfill_id}")))
        final = last["status"] not in FINISHED or last["ended_at"] is not None  # counts final once ended
        return last["status"] in statuses and final

    assert wait_for(done, timeout, step=0.05), last
    return last


def wait_run(client: httpx.Client, run_id: str, statuses: tuple[str, ...] = ("success", "failed", "canceled"),
             timeout: float = 30) -> dict[str, Any]:
    last: dict[str, Any] = {}

    def done() -> bool:
        last.update(ok(client.get(f"{API}/runs/{run_id}")))
        return last["status"] in statuses

    assert wait_for(done, timeout, step=0.05), last
    return last


def post_json(client: httpx.Client, url: str, body: Any) -> httpx.Response:
    """POST ``body`` as JSON with non-ASCII escaped (``\\ud800`` for a lone surrogate, as JSON allows)."""
    return client.post(url, content=json.dumps(body).encode(), headers={"content-type": "application/json"})


def create(client: httpx.Client, body: dict[str, Any], status: int = 201) -> dict[str, Any]:
    result: dict[str, Any] = ok(client.post(f"{API}/backfills", json=body), status)
    return result


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[ServerProcess]:
    tmp = tmp_path_factory.mktemp("api")
    with running_server([PY_FLOWS], f"sqlite:///{tmp / 'api.db'}", tmp) as srv:
        yield srv
        assert "Traceback" not in srv.log(), srv.log()


@pytest.fixture(scope="module")
def client(server) -> Iterator[httpx.Client]:
    with server.client() as c:
        yield c


@pytest.fixture(scope="module")
def local_repo() -> Iterator[ac.CodeRepository]:
    """The same workflows through the Python API (in memory), to compare the API's plans with."""
    spec = importlib.util.spec_from_file_location("api_workflows_for_comparison", PY_FLOWS)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    repo = ac.CodeRepository(module.repo.workflows, storage="sqlite://", executor=ac.InProcessExecutor(1))
    yield repo
    repo.close()


# -- server, workflows, partitions, schedules ---------------------------------------------------------------
def test_health_openapi_and_docs(client):
    health = ok(client.get(f"{API}/health"))
    assert health == {"status": "ok", "version": ac.__version__}
    spec = ok(client.get("/openapi.json"))
    operations = {(method.upper(), path) for path, ops in spec["paths"].items() for method in ops}
    for route in ("GET /workflows", "GET /workflows/{name}", "GET /workflows/{name}/partitions", "GET /schedules",
                  "POST /workflows/{name}/schedules/{schedule_id}/pause",
                  "POST /workflows/{name}/schedules/{schedule_id}/resume", "POST /backfills", "GET /backfills",
                  "GET /backfills/{backfill_id}", "POST /backfills/{backfill_id}/pause",
                  "POST /backfills/{backfill_id}/resume", "POST /backfills/{backfill_id}/cancel",
                  "POST /backfills/{backfill_id}/rerun", "POST /runs", "GET /runs", "GET /runs/{run_id}",
                  "GET /runs/{run_id}/logs", "POST /runs/{run_id}/cancel", "PUT /triggers",
                  "PUT /triggers/backfill/pause", "PUT /triggers/backfill/unpause", "POST /triggers/backfill/delete"):
        method, path = route.split(" ")
        assert (method, API + path) in operations, route
    assert spec["openapi"].startswith("3.") and spec["info"]["title"] == "anachron"
    assert "BackfillRequest" in spec["components"]["schemas"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


def test_workflows(client):
    listed = {w["name"]: w for w in ok(client.get(f"{API}/workflows"))}
    assert set(listed) == WORKFLOWS
    daily = listed["daily"]
    assert daily["partitioned"] is True and daily["tags"] == {"team": "api"}
    assert "DailyPartitions" in daily["partitions"]
    assert daily["namespace"] == "api_workflows" and daily["schedules"] == []
    assert listed["hello"]["partitioned"] is False and listed["hello"]["partitions"] is None
    assert [s["schedule_id"] for s in listed["hourly"]["schedules"]] == ["schedule", "nightly"]
    one = ok(client.get(f"{API}/workflows/grid"))
    assert one == listed["grid"] and "MultiPartitions" in one["partitions"]
    expect_error(client.get(f"{API}/workflows/nope"), 404, "nope")


def test_partitions_page_through_with_next_key_and_show_latest_status(client):
    seen: list[str] = []
    params: dict[str, Any] = {"limit": 7}
    while True:
        page = ok(client.get(f"{API}/workflows/daily/partitions", params=params))
        assert page["workflow"] == "daily" and len(page["partitions"]) <= 7
        seen += [p["key"] for p in page["partitions"]]
        if page["next_key"] is None:
            break
        assert page["next_key"] not in seen and len(page["partitions"]) == 7
        params["from_key"] = page["next_key"]
    assert len(seen) == 60 and seen == sorted(seen) and seen[0] == "2024-01-01" and seen[-1] == "2024-02-29"

    result = create(client, {"workflow": "daily", "partition_range": {"from": "2024-02-10", "to": "2024-02-12"},
                             "params": {"fail": "2024-02-11"}})
    assert wait_backfill(client, result["backfill_id"])["status"] == "failed"
    page = ok(client.get(f"{API}/workflows/daily/partitions",
                         params={"from_key": "2024-02-09", "to_key": "2024-02-13"}))
    assert [(p["key"], p["status"]) for p in page["partitions"]] == [
        ("2024-02-09", "missing"), ("2024-02-10", "success"), ("2024-02-11", "failed"), ("2024-02-12", "success"),
        ("2024-02-13", "missing")]
    assert page["next_key"] is None  # to_key ends the page
    page = ok(client.get(f"{API}/workflows/daily/partitions", params={"from_key": "2024-02-10", "limit": 2}))
    assert [p["key"] for p in page["partitions"]] == ["2024-02-10", "2024-02-11"] and page["next_key"] == "2024-02-12"
    last = ok(client.get(f"{API}/workflows/daily/partitions", params={"from_key": "2024-02-29", "limit": 5}))
    assert [p["key"] for p in last["partitions"]] == ["2024-02-29"] and last["next_key"] is None

    expect_error(client.get(f"{API}/workflows/daily/partitions", params={"from_key": "2031-01-01"}), 400, "from_key")
    expect_error(client.get(f"{API}/workflows/daily/partitions", params={"to_key": "junk"}), 400, "to_key")
    expect_error(client.get(f"{API}/workflows/daily/partitions", params={"limit": 0}), 422, "limit")
    expect_error(client.get(f"{API}/workflows/daily/partitions", params={"limit": 10_001}), 422, "limit")
    expect_error(client.get(f"{API}/workflows/daily/partitions", params={"limit": "many"}), 422, "limit")
    expect_error(client.get(f"{API}/workflows/ghost/partitions"), 404, "ghost")


def test_schedules_list_pause_resume(client):
    listed = ok(client.get(f"{API}/schedules"))
    assert {(s["workflow"], s["schedule_id"]) for s in listed} == {("hourly", "schedule"), ("hourly", "nightly")}
    nightly = next(s for s in listed if s["schedule_id"] == "nightly")
    assert nightly["cron"] == "30 2 * * *" and nightly["timezone"] == "Europe/Paris" and nightly["paused"] is False
    assert ok(client.get(f"{API}/schedules", params={"workflow": "hourly"})) == listed
    assert ok(client.get(f"{API}/schedules", params={"workflow": "daily"})) == []

    paused = ok(client.post(f"{API}/workflows/hourly/schedules/nightly/pause"))
    assert paused["paused"] is True and paused["schedule_id"] == "nightly"
    now = {s["schedule_id"]: s["paused"] for s in ok(client.get(f"{API}/schedules"))}
    assert now == {"schedule": False, "nightly": True}
    assert ok(client.post(f"{API}/workflows/hourly/schedules/nightly/pause"))["paused"] is True  # again: no change
    assert ok(client.post(f"{API}/workflows/hourly/schedules/nightly/resume"))["paused"] is False
    assert all(not s["paused"] for s in ok(client.get(f"{API}/schedules")))

    expect_error(client.get(f"{API}/schedules", params={"workflow": "ghost"}), 404, "ghost")
    expect_error(client.post(f"{API}/workflows/hourly/schedules/weekly/pause"), 404, "weekly")
    expect_error(client.post(f"{API}/workflows/daily/schedules/schedule/resume"), 404, "schedule")
    expect_error(client.post(f"{API}/workflows/ghost/schedules/schedule/pause"), 404, "ghost")


# -- creating backfills ----------------------------------------------------------------------------------------
SELECTIONS = {
    "keys": {"workflow": "daily", "partition_keys": ["2024-01-03", "2024-01-01", "2024-01-03"]},
    "range": {"workflow": "daily", "partition_range": {"from": "2024-01-01", "to": "2024-01-05"}},
    "dimensions": {"workflow": "grid", "partition_range": {"dimensions": {
        "date": {"from": "2024-01-02", "to": "2024-01-03"}, "region": ["us", "eu"]}}},
    "dimension_left_out": {"workflow": "grid", "partition_range": {"dimensions": {"region": ["asia"]}}},
    "dimension_keys": {"workflow": "grid", "partition_range": {"dimensions": {"date": ["2024-01-09", "2024-01-04"]}}},
    "start_end": {"workflow": "daily", "start": "2024-01-03", "end": "2024-01-06T00:00:00Z"},
    "start_only": {"workflow": "daily", "start": "2024-02-20T00:00:00+00:00"},
    "schedule_ticks": {"workflow": "hourly", "start": "2024-01-01T00:00:00Z", "end": "2024-01-01T05:00:00Z"},
    "selection": {"selection": ["daily", "slow"], "partition_range": {"from": "2024-01-01", "to": "2024-01-02"}},
}
STRATEGIES = {
    "multi_run": ("daily", "multi_run", [["2024-01-01"], ["2024-01-02"], ["2024-01-03"], ["2024-01-04"],
                                         ["2024-01-05"]]),
    "single_run": ("daily", "single_run", [["2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"]]),
    "batched": ("daily", {"batched": 2}, [["2024-01-01", "2024-01-02"], ["2024-01-03", "2024-01-04"],
                                          ["2024-01-05"]]),
    "per_dimension": ("grid", {"per_dimension": {"multi_run": ["date"], "single_run": ["region"]}}, None),
}


def _python_plan(local_repo: ac.CodeRepository, body: dict[str, Any]) -> ac.BackfillResult:
    from anachron.requests import BackfillRequest

    return local_repo.create_backfill(BackfillRequest.parse({**body, "dry_run": True}), block=False)


@pytest.mark.parametrize("form", list(SELECTIONS))
def test_dry_run_of_every_selection_form_matches_the_python_api_and_writes_nothing(client, local_repo, form):
    body = SELECTIONS[form]
    before, runs_before = backfill_ids(client), run_count(client)
    plan = create(client, {**body, "dry_run": True}, status=200)
    assert plan["is_dry_run"] is True and plan["status"] == "dry_run" and plan["backfill_id"] is None
    assert plan["run_ids"] == [] and plan["preview_truncated"] is False
    python = _python_plan(local_repo, body)
    assert plan["partition_keys"] == list(python.partition_keys) and plan["num_partitions"] == python.num_partitions
    assert plan["plan"] == [list(g) for g in python.plan] and plan["num_runs"] == python.num_runs
    assert plan["num_partitions"] > 0 and plan["first_key"] == plan["partition_keys"][0]
    assert plan["last_key"] == plan["partition_keys"][-1]
    assert backfill_ids(client) == before and run_count(client) == runs_before
    if form == "keys":
        assert plan["partition_keys"] == ["2024-01-01", "2024-01-03"]  # partition order, each key once
    elif form == "dimensions":
        assert plan["partition_keys"] == ["date=2024-01-02|region=us", "date=2024-01-02|region=eu",
                                          "date=2024-01-03|region=us", "date=2024-01-03|region=eu"]
    elif form == "dimension_left_out":
        assert plan["num_partitions"] == 10 and all(k.endswith("|region=asia") for k in plan["partition_keys"])
    elif form == "start_only":  # end null: up to now, i.e. every window that has ended
        assert plan["partition_keys"][-1] == "2024-02-29"
    elif form == "schedule_ticks":
        assert plan["num_runs"] == 6
    elif form == "selection":
        assert plan["num_partitions"] == 4


@pytest.mark.parametrize("name", list(STRATEGIES))
def test_every_strategy_form(client, local_repo, name):
    workflow, strategy, groups = STRATEGIES[name]
    selection = SELECTIONS["range"] if workflow == "daily" else SELECTIONS["dimensions"]
    plan = create(client, {**selection, "strategy": strategy, "dry_run": True}, status=200)
    python = _python_plan(local_repo, {**selection, "strategy": strategy})
    assert plan["plan"] == [list(g) for g in python.plan]
    if groups is not None:
        assert plan["plan"] == groups
    else:  # one run per date, each with every region of it
        assert plan["plan"] == [["date=2024-01-02|region=us", "date=2024-01-02|region=eu"],
                                ["date=2024-01-03|region=us", "date=2024-01-03|region=eu"]]


def test_backfill_runs_to_completion_with_tags_priority_and_batches(client, tmp_path):
    tag, gate = uuid.uuid4().hex[:8], tmp_path / "go"
    created = create(client, {"workflow": "gated", "partition_range": {"dimensions": {"date": {
        "from": "2024-01-05", "to": "2024-01-06"}}}, "strategy": {"batched": 4}, "max_concurrency": 3,
        "tags": [{"key": "case", "value": tag}], "order": "newest_first", "params": {"gate": str(gate)}})
    # the runs wait for the gate, so the answer shows the backfill live, before any of them can finish
    assert created["is_dry_run"] is False and created["status"] in ("requested", "in_progress")
    gate.touch()
    assert created["num_partitions"] == 6 and created["num_runs"] == 2
    assert created["plan"][0][0] == "date=2024-01-06|region=asia"  # newest first: the key order reversed
    status = wait_backfill(client, created["backfill_id"])
    assert status["status"] == "completed" and status["completed_partitions"] == 6, status
    assert status["tags"] == [["case", tag]] and list(status["workflows"]) == ["gated"] and status["total_runs"] == 2
    assert status["workflows"]["gated"] == {"total": 6, "completed": 6, "failed": 0, "upstream_failed": 0,
                                            "canceled": 0}
    assert status["run_ids"] == [] and status["ended_at"] is not None  # run ids only when asked for
    full = ok(client.get(f"{API}/backfills/{created['backfill_id']}", params={"include_run_ids": True}))
    runs = ok(client.get(f"{API}/runs", params={"backfill_id": created["backfill_id"]}))
    assert sorted(full["run_ids"]) == sorted(r["run_id"] for r in runs) and len(runs) == 2
    for run in runs:
        assert run["status"] == "success" and run["tags"]["case"] == tag and run["priority"] == -10
        assert run["backfill_id"] == created["backfill_id"] and len(run["partition_keys"]) in (2, 4)
    tagged = ok(client.get(f"{API}/runs", params={"tag": f"case={tag}"}))
    assert {r["run_id"] for r in tagged} == {r["run_id"] for r in runs}


def test_backfill_idempotency_key_answers_the_same_backfill(client):
    key = f"idem-{uuid.uuid4().hex}"
    body = {"workflow": "daily", "partition_keys": ["2024-01-15"], "idempotency_key": key}
    first = ok(client.post(f"{API}/backfills", json=body), 201)
    before = backfill_ids(client)
    again = client.post(f"{API}/backfills", json=body)
    assert again.status_code in (200, 201), again.text
    assert again.json()["backfill_id"] == first["backfill_id"]
    assert backfill_ids(client) == before


REFUSED = [
    ({"workflow": "ghost", "partition_keys": ["2024-01-01"]}, 400, ["workflow", "ghost"]),
    ({"selection": ["daily", "ghost"], "start": "2024-01-01"}, 400, ["selection", "ghost"]),
    ({"workflow": "daily", "selection": ["daily"]}, 422, ["selection"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "start": "2024-01-01"}, 422,
     ["selection", "partition_keys", "start/end"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "partition_range": {"from": "2024-01-01",
                                                                                "to": "2024-01-02"}}, 422,
     ["partition_keys", "partition_range"]),
    ({"workflow": "daily", "end": "2024-01-05"}, 422, ["start"]),
    ({"workflow": "daily", "start": "yesterday"}, 422, ["start", "yesterday"]),
    ({"workflow": "daily", "start": "2024-01-05", "end": "2024-01-01"}, 400, ["end"]),
    ({"workflow": "daily", "partition_keys": []}, 422, ["partition_keys"]),
    ({"workflow": "daily", "partition_keys": "2024-01-01"}, 422, ["partition_keys"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01", "2099-01-01"]}, 400, ["2099-01-01"]),
    ({"workflow": "daily", "partition_keys": ["not-a-day"]}, 400, ["not-a-day"]),
    ({"workflow": "hello", "partition_keys": ["2024-01-01"]}, 400, ["partition_keys", "hello"]),
    ({"workflow": "daily", "partition_range": {"from": "2024-01-05", "to": "2024-01-01"}}, 400,
     ["2024-01-05", "2024-01-01"]),
    ({"workflow": "daily", "partition_range": {"from": "2024-01-05"}}, 422, ["partition_range", "to"]),
    ({"workflow": "grid", "partition_range": {"dimensions": {"planet": ["mars"]}}}, 400, ["planet"]),
    ({"workflow": "grid", "partition_range": {"dimensions": {"region": ["mars"]}}}, 400, ["mars"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "strategy": "sideways"}, 422, ["strategy", "sideways"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "strategy": {"batched": 0}}, 422, ["strategy"]),
    ({"workflow": "grid", "partition_keys": ["date=2024-01-01|region=us"],
      "strategy": {"per_dimension": {"multi_run": ["date"], "single_run": ["date"]}}}, 422, ["strategy", "date"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "failure_policy": "explode"}, 422, ["failure_policy"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "max_concurrency": 0}, 422, ["max_concurrency"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "max_concurrency": "4"}, 422, ["max_concurrency"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "reprocess": "some"}, 422, ["reprocess"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "order": "random"}, 422, ["order"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "surprise": 1}, 422, ["surprise"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "tags": [{"key": "anachron/priority", "value": "hi"}]},
     422, ["tags", "anachron/priority"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "tags": [{"key": "", "value": "x"}]}, 422, ["tags"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "tags": {"k": "v"}}, 422, ["tags"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "params": {"nope": 1}}, 400, ["params", "nope"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "config": {"ghost": {"x": 1}}}, 400,
     ["config", "ghost"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "idempotency_key": "k" * 1001}, 422,
     ["idempotency_key"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "dry_run": "maybe"}, 422, ["dry_run"]),
    # past the column's range: was a 500 (OverflowError from the database driver)
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "tags": [{"key": "anachron/priority",
                                                                       "value": str(2**63)}]}, 422, ["tags"]),
    # text that is not valid Unicode cannot be stored: was a write failing half way
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "idempotency_key": "\ud800"}, 422,
     ["idempotency_key", "Unicode"]),
    ({"workflow": "daily", "partition_keys": ["2024-01-01"], "tags": [{"key": "k", "value": "a\udfffb"}]}, 422,
     ["tags.0.value"]),
]


def test_refused_backfills_answer_4xx_naming_the_field_and_write_nothing(client):
    before, runs_before = backfill_ids(client), run_count(client)
    for body, status, words in REFUSED:
        expect_error(post_json(client, f"{API}/backfills", body), status, *words)
    for raw, words in ((b"{not json", ["JSON"]), (b"[1, 2]", ["body"]), (b'"daily"', ["body"]),
                       (b'{"workflow": "daily", "partition_keys": ["2024-01-01"], "params": {"fail": NaN}}',
                        ["params", "fail"])):
        response = client.post(f"{API}/backfills", content=raw, headers={"content-type": "application/json"})
        assert 400 <= response.status_code < 500
        expect_error(response, response.status_code, *words)
    assert backfill_ids(client) == before and run_count(client) == runs_before


def test_list_backfills_filters_and_pages(client):
    tag = uuid.uuid4().hex[:8]
    made = [create(client, {"workflow": "grid", "partition_keys": [f"date=2024-01-0{d}|region=eu"],
                            "tags": [{"key": "case", "value": tag}]})["backfill_id"] for d in (1, 2, 3)]
    failed = create(client, {"workflow": "daily", "partition_keys": ["2024-01-28"], "params": {"fail": "2024-01-28"},
                             "tags": [{"key": "case", "value": tag}]})["backfill_id"]
    for backfill_id in made:
        assert wait_backfill(client, backfill_id)["status"] == "completed"
    assert wait_backfill(client, failed)["status"] == "failed"

    grid = [b["backfill_id"] for b in ok(client.get(f"{API}/backfills", params={"workflow": "grid", "limit": 1000}))]
    assert grid[:3] == made[::-1]  # newest first
    for b in ok(client.get(f"{API}/backfills", params={"workflow": "grid", "limit": 1000})):
        assert list(b["workflows"]) == ["grid"] and b["run_ids"] == []
    assert failed not in grid
    only_failed = ok(client.get(f"{API}/backfills", params={"status": "failed", "limit": 1000}))
    assert failed in [b["backfill_id"] for b in only_failed] and {b["status"] for b in only_failed} == {"failed"}
    both = ok(client.get(f"{API}/backfills", params=[("status", "failed"), ("status", "completed"),
                                                     ("limit", "1000")]))
    assert {b["status"] for b in both} <= {"failed", "completed"} and set(made) | {failed} <= {
        b["backfill_id"] for b in both}
    assert ok(client.get(f"{API}/backfills", params={"workflow": "ghost"})) == []

    everything = backfill_ids(client)
    assert len(everything) >= 4
    paged = [ok(client.get(f"{API}/backfills", params={"limit": 1, "offset": i}))[0]["backfill_id"]
             for i in range(4)]
    assert paged == everything[:4]
    two = ok(client.get(f"{API}/backfills", params={"limit": 2, "offset": 1}))
    assert [b["backfill_id"] for b in two] == everything[1:3]
    assert ok(client.get(f"{API}/backfills", params={"offset": len(everything)})) == []

    expect_error(client.get(f"{API}/backfills", params={"status": "bogus"}), 400, "status", "bogus")
    expect_error(client.get(f"{API}/backfills", params={"limit": 0}), 422, "limit")
    expect_error(client.get(f"{API}/backfills", params={"limit": 1001}), 422, "limit")
    expect_error(client.get(f"{API}/backfills", params={"offset": -1}), 422, "offset")
    expect_error(client.get(f"{API}/backfills", params={"offset": "x"}), 422, "offset")


# -- controlling backfills -------------------------------------------------------------------------------------
def test_pause_resume_cancel_a_running_backfill(client):
    created = create(client, {"workflow": "slow", "partition_range": {"from": "2024-01-01", "to": "2024-01-30"},
                              "params": {"seconds": 0.15}, "max_concurrency": 2})
    backfill_id = created["backfill_id"]
    wait_for(lambda: ok(client.get(f"{API}/backfills/{backfill_id}"))["completed_partitions"] >= 2, 20, step=0.05)

    paused = ok(client.post(f"{API}/backfills/{backfill_id}/pause"))
    assert paused["status"] == "paused" and paused["backfill_id"] == backfill_id
    # runs in flight finish; no new ones start
    assert wait_for(lambda: ok(client.get(f"{API}/backfills/{backfill_id}"))["running_runs"] == 0, 10)
    settled = ok(client.get(f"{API}/backfills/{backfill_id}"))
    time.sleep(0.6)
    later = ok(client.get(f"{API}/backfills/{backfill_id}"))
    assert later["status"] == "paused" and later["completed_partitions"] == settled["completed_partitions"]
    assert later["completed_partitions"] < 30
    assert ok(client.post(f"{API}/backfills/{backfill_id}/pause"))["status"] == "paused"  # again: still paused

    resumed = ok(client.post(f"{API}/backfills/{backfill_id}/resume"))
    assert resumed["status"] == "in_progress"
    assert wait_for(lambda: ok(client.get(f"{API}/backfills/{backfill_id}"))["completed_partitions"]
                    > later["completed_partitions"], 10, step=0.05)

    canceled = ok(client.post(f"{API}/backfills/{backfill_id}/cancel"))
    assert canceled["backfill_id"] == backfill_id and canceled["queued_runs"] == 0
    final = wait_backfill(client, backfill_id)
    assert final["status"] == "canceled" and final["canceled_partitions"] > 0
    assert final["completed_partitions"] + final["failed_partitions"] + final["canceled_partitions"] == 30
    runs = ok(client.get(f"{API}/runs", params={"backfill_id": backfill_id, "limit": 1000}))
    assert not any(r["status"] in ("queued", "running") for r in runs)

    expect_error(client.post(f"{API}/backfills/{backfill_id}/pause"), 409, backfill_id)
    expect_error(client.post(f"{API}/backfills/{backfill_id}/resume"), 409, backfill_id)
    assert ok(client.post(f"{API}/backfills/{backfill_id}/cancel"))["status"] == "canceled"  # no change


def test_rerun_runs_only_failed_and_canceled_partitions(client):
    created = create(client, {"workflow": "daily", "partition_range": {"from": "2024-01-20", "to": "2024-01-25"},
                              "params": {"fail": "2024-01-21,2024-01-23"}})
    backfill_id = created["backfill_id"]
    status = wait_backfill(client, backfill_id)
    assert status["status"] == "failed" and status["failed_partitions"] == 2 and status["completed_partitions"] == 4

    before = backfill_ids(client)
    dry = ok(client.post(f"{API}/backfills/{backfill_id}/rerun", params={"dry_run": True}), 200)
    assert dry["is_dry_run"] is True and dry["partition_keys"] == ["2024-01-21", "2024-01-23"]
    assert backfill_ids(client) == before

    rerun = ok(client.post(f"{API}/backfills/{backfill_id}/rerun"), 201)
    assert rerun["backfill_id"] not in before and rerun["partition_keys"] == ["2024-01-21", "2024-01-23"]
    again = wait_backfill(client, rerun["backfill_id"])
    assert dict(again["tags"])["anachron/rerun_of"] == backfill_id and again["total_partitions"] == 2
    runs = ok(client.get(f"{API}/runs", params={"backfill_id": rerun["backfill_id"]}))
    assert sorted(r["partition_key"] for r in runs) == ["2024-01-21", "2024-01-23"]
    assert all(r["params"] == {"fail": "2024-01-21,2024-01-23"} for r in runs)  # the same parameters
    expect_error(client.post(f"{API}/backfills/{backfill_id}/rerun", params={"dry_run": "perhaps"}), 422, "dry_run")


# -- runs -------------------------------------------------------------------------------------------------------
def test_submit_run_is_idempotent_and_its_logs_page_by_offset(client):
    key = f"run-{uuid.uuid4().hex}"
    body = {"workflow": "hello", "params": {"name": "api", "lines": 5}, "idempotency_key": key,
            "tags": [{"key": "src", "value": "test"}], "run_name": "greeting"}
    run = ok(client.post(f"{API}/runs", json=body), 201)
    assert run["workflow"] == "hello" and run["params"] == {"name": "api", "lines": 5} and run["priority"] == 0
    assert run["tags"]["src"] == "test" and run["idempotency_key"] == key and run["run_name"] == "greeting"
    again = ok(client.post(f"{API}/runs", json=body), 201)
    assert again["run_id"] == run["run_id"]
    other = ok(client.post(f"{API}/runs", json={**body, "idempotency_key": key + "-2"}), 201)
    assert other["run_id"] != run["run_id"]
    assert len(ok(client.get(f"{API}/runs", params={"tag": "src=test", "workflow": "hello"}))) == 2

    done = wait_run(client, run["run_id"])
    assert done["status"] == "success" and done["ended_at"] is not None
    assert ok(client.get(f"{API}/runs/{run['run_id']}")) == done
    logs = ok(client.get(f"{API}/runs/{run['run_id']}/logs"))
    assert logs["run_id"] == run["run_id"] and logs["status"] == "success"
    messages = [line["message"] for line in logs["lines"]]
    assert [m for m in messages if m.startswith("hello api")] == [f"hello api {i}" for i in range(5)]
    assert logs["next_offset"] == len(logs["lines"]) and all(line["attempt"] == 1 for line in logs["lines"])
    tail = ok(client.get(f"{API}/runs/{run['run_id']}/logs", params={"offset": 2}))
    assert tail["lines"] == logs["lines"][2:] and tail["next_offset"] == logs["next_offset"]
    past = ok(client.get(f"{API}/runs/{run['run_id']}/logs", params={"offset": logs["next_offset"] + 10}))
    assert past["lines"] == [] and past["next_offset"] == logs["next_offset"] + 10
    expect_error(client.get(f"{API}/runs/{run['run_id']}/logs", params={"offset": -1}), 422, "offset")


def test_submit_run_refusals_name_the_field(client):
    runs_before = run_count(client)
    for body, status, words in [
        ({"workflow": "ghost"}, 400, ["workflow", "ghost"]),
        ({"workflow": ""}, 422, ["workflow"]),
        ({}, 422, ["workflow"]),
        ({"workflow": "hello", "params": {"nam": "x"}}, 400, ["params", "nam"]),
        ({"workflow": "hello", "partition_key": "2024-01-01"}, 400, ["partition_key"]),
        ({"workflow": "daily", "partition_key": "2099-01-01"}, 400, ["2099-01-01"]),
        ({"workflow": "hello", "tags": [{"key": "k"}]}, 422, ["tags", "value"]),
        ({"workflow": "hello", "idempotency_key": ""}, 422, ["idempotency_key"]),
        ({"workflow": "hello", "priority": 3}, 422, ["priority"]),
        ({"workflow": "hello", "params": "name=x"}, 422, ["params"]),
        ({"workflow": "hello", "tags": [{"key": "anachron/priority", "value": str(2**40)}]}, 400, ["priority"]),
        # a lone surrogate: the run was stored (and ran) while the answer failed, and its log line then wedged
        # the coordinator, which could not store it
        ({"workflow": "hello", "params": {"name": "\ud800"}}, 422, ["params.name", "Unicode"]),
        ({"workflow": "hello", "run_name": "\udc80"}, 422, ["run_name"]),
    ]:
        expect_error(post_json(client, f"{API}/runs", body), status, *words)
    assert run_count(client) == runs_before


def test_list_runs_filters_and_pages(client):
    tag = uuid.uuid4().hex[:8]
    ids = [ok(client.post(f"{API}/runs", json={"workflow": "hello", "params": {"lines": 0},
                                               "tags": [{"key": "batch", "value": tag}]}), 201)["run_id"]
           for _ in range(3)]
    failing = ok(client.post(f"{API}/runs", json={"workflow": "daily", "partition_key": "2024-02-27",
                                                  "params": {"fail": "2024-02-27"},
                                                  "tags": [{"key": "batch", "value": tag}]}), 201)["run_id"]
    for run_id in [*ids, failing]:
        wait_run(client, run_id)
    tagged = ok(client.get(f"{API}/runs", params={"tag": f"batch={tag}"}))
    assert [r["run_id"] for r in tagged] == [failing, *ids[::-1]]  # newest first
    assert [r["run_id"] for r in ok(client.get(f"{API}/runs", params={"tag": f"batch={tag}", "workflow": "hello"}))
            ] == ids[::-1]
    failed = ok(client.get(f"{API}/runs", params={"tag": f"batch={tag}", "status": "failed"}))
    assert [r["run_id"] for r in failed] == [failing] and "asked to fail" in failed[0]["error"]
    assert len(ok(client.get(f"{API}/runs", params=[("tag", f"batch={tag}"), ("status", "failed"),
                                                    ("status", "success")]))) == 4
    assert ok(client.get(f"{API}/runs", params={"tag": f"batch={tag}", "status": "canceled"})) == []
    assert ok(client.get(f"{API}/runs", params=[("tag", f"batch={tag}"), ("tag", "team=api")]))[0]["run_id"] == failing
    paged = [ok(client.get(f"{API}/runs", params={"tag": f"batch={tag}", "limit": 1, "offset": i}))[0]["run_id"]
             for i in range(4)]
    assert paged == [r["run_id"] for r in tagged]
    assert ok(client.get(f"{API}/runs", params={"tag": f"batch={tag}", "offset": 4})) == []
    assert ok(client.get(f"{API}/runs", params={"backfill_id": "nope"})) == []
    assert ok(client.get(f"{API}/runs", params={"workflow": "ghost"})) == []

    expect_error(client.get(f"{API}/runs", params={"status": "done"}), 400, "status", "done")
    expect_error(client.get(f"{API}/runs", params={"tag": "novalue"}), 400, "tag", "novalue")
    expect_error(client.get(f"{API}/runs", params={"limit": 1001}), 422, "limit")
    expect_error(client.get(f"{API}/runs", params={"offset": -5}), 422, "offset")


def test_cancel_a_running_run(client):
    run = ok(client.post(f"{API}/runs", json={"workflow": "sleepy", "params": {"seconds": 30}}), 201)
    wait_run(client, run["run_id"], ("running",), timeout=15)
    assert ok(client.post(f"{API}/runs/{run['run_id']}/cancel")) == {"canceled": True}
    done = wait_run(client, run["run_id"], timeout=10)
    assert done["status"] == "canceled" and done["ended_at"] is not None
    assert ok(client.post(f"{API}/runs/{run['run_id']}/cancel")) == {"canceled": False}  # already over


@pytest.mark.parametrize("method,path", [
    ("GET", "/backfills/{id}"), ("POST", "/backfills/{id}/pause"), ("POST", "/backfills/{id}/resume"),
    ("POST", "/backfills/{id}/cancel"), ("POST", "/backfills/{id}/rerun"), ("GET", "/runs/{id}"),
    ("GET", "/runs/{id}/logs"), ("POST", "/runs/{id}/cancel"), ("GET", "/workflows/{id}"),
    ("GET", "/workflows/{id}/partitions"), ("POST", "/workflows/{id}/schedules/schedule/pause"),
])
def test_unknown_ids_are_404_in_the_error_shape(client, method, path):
    ident = "no-such-" + uuid.uuid4().hex[:6]
    response = client.request(method, API + path.replace("{id}", ident))
    assert expect_error(response, 404, ident) and response.json()["error"]["code"] == "not_found"


def test_framework_errors_use_the_error_shape_too(client):
    expect_error(client.get(f"{API}/nowhere"), 404, "/api/v1/nowhere")
    expect_error(client.delete(f"{API}/backfills"), 405)
    expect_error(client.post(f"{API}/backfills", content=b"workflow=daily",
                             headers={"content-type": "application/x-www-form-urlencoded"}), 422)


def test_cross_site_post_is_refused_and_changes_nothing(client, server):
    before = backfill_ids(client)
    body = {"workflow": "daily", "partition_keys": ["2024-01-09"]}
    expect_error(client.post(f"{API}/backfills", json=body, headers={"Origin": "http://evil.example"}), 403,
                 "cross-site")
    expect_error(client.post(f"{API}/backfills", json=body, headers={"Sec-Fetch-Site": "cross-site"}), 403)
    expect_error(client.post(f"{API}/runs", json={"workflow": "hello"}, headers={"Origin": "null"}), 403)
    expect_error(client.put(f"{API}/triggers", json={}, headers={"Origin": "http://evil.example"}), 403)
    assert backfill_ids(client) == before
    # reading from anywhere is fine; a same-origin browser call goes through
    assert client.get(f"{API}/backfills", headers={"Origin": "http://evil.example"}).status_code == 200
    same = client.post(f"{API}/backfills", json={**body, "dry_run": True}, headers={"Origin": server.url})
    assert same.status_code == 200, same.text


# -- auth, bind address, signals ---------------------------------------------------------------------------------
TOKEN = "s3cret-" + uuid.uuid4().hex


@pytest.fixture(scope="module")
def token_server(tmp_path_factory) -> Iterator[ServerProcess]:
    """A server with ANACHRON_API_TOKEN set, listening on every address (allowed: it has a token)."""
    tmp = tmp_path_factory.mktemp("api-token")
    with running_server([PY_FLOWS], f"sqlite:///{tmp / 'api.db'}", tmp, args=["--host", "0.0.0.0"],
                        env={"ANACHRON_API_TOKEN": TOKEN}) as srv:
        yield srv


def _every_operation(spec: dict[str, Any]) -> list[tuple[str, str]]:
    return [(method.upper(), path) for path, ops in spec["paths"].items() for method in ops]


def test_token_guards_every_api_route(token_server):
    with token_server.client() as anonymous, token_server.client("wrong-" + TOKEN) as wrong, \
            token_server.client(TOKEN) as right:
        assert ok(anonymous.get(f"{API}/health"))["status"] == "ok"  # open, for load balancers
        expect_error(anonymous.get("/openapi.json"), 401)
        spec = ok(right.get("/openapi.json"))
        operations = _every_operation(spec)
        assert len(operations) >= 22
        for method, path in operations:
            body = {"dry_run": True} if path.endswith("/backfills") else {}  # {}: a backfill of everything
            url = path.replace("{name}", "daily").replace("{schedule_id}", "schedule").replace(
                "{backfill_id}", "x").replace("{run_id}", "x")
            if path == f"{API}/health":
                continue
            response = anonymous.request(method, url, json=body)
            expect_error(response, 401, "no token")
            assert response.headers["www-authenticate"] == "Bearer"
            expect_error(wrong.request(method, url, json=body), 401, "wrong token")
            expect_error(anonymous.request(method, url, json=body, headers={"Authorization": f"Basic {TOKEN}"}), 401)
            assert right.request(method, url, json=body).status_code not in (401, 403), (method, url)
        for path in ("/workflows", "/backfills", "/runs", "/schedules", "/workflows/daily/partitions"):
            assert right.get(API + path).status_code == 200, path
        run = ok(right.post(f"{API}/runs", json={"workflow": "hello"}), 201)
        assert ok(right.get(f"{API}/runs/{run['run_id']}"))["run_id"] == run["run_id"]
        assert ok(right.post(f"{API}/backfills", json={"workflow": "daily", "partition_keys": ["2024-01-01"]}),
                  201)["backfill_id"]


def test_no_token_means_open(client):
    assert client.get(f"{API}/workflows").status_code == 200  # the module's server has no token
    assert client.get(f"{API}/workflows", headers={"Authorization": "Bearer anything"}).status_code == 200


def _server_argv(port: int, db: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "anachron.cli", "server", PY_FLOWS, "--db", db, "--port", str(port), *args]


def test_public_bind_without_token_is_refused(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ANACHRON_API_TOKEN"}
    for host in ("0.0.0.0", "::"):
        proc = subprocess.run(_server_argv(free_port(), f"sqlite:///{tmp_path / 'x.db'}", "--host", host),
                              capture_output=True, text=True, env=env, timeout=60)
        assert proc.returncode == 2, proc
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error:") and "ANACHRON_API_TOKEN" in lines[0], proc.stderr
        assert "--insecure" in lines[0]
    assert not (tmp_path / "x.db").exists()  # refused before anything was opened


def test_insecure_public_bind_starts_and_sigterm_exits_0_quickly(tmp_path):
    with running_server([PY_FLOWS], f"sqlite:///{tmp_path / 'api.db'}", tmp_path,
                        args=["--host", "0.0.0.0", "--insecure"]) as srv:
        with srv.client() as c:
            run = ok(c.post(f"{API}/runs", json={"workflow": "sleepy", "params": {"seconds": 30}}), 201)
            wait_run(c, run["run_id"], ("running",), timeout=15)
            started = time.monotonic()
            srv.proc.send_signal(signal.SIGTERM)
            assert srv.proc.wait(timeout=15) == 0, srv.log()
            assert time.monotonic() - started < 8, srv.log()
    assert "Traceback" not in srv.log(), srv.log()
    assert "server stopped" in srv.log()


# -- PostgreSQL -------------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pg_database(pg_template) -> Iterator[str]:
    """A database of this module's own on the test PostgreSQL (cloned from the migrated template)."""
    from sqlalchemy import create_engine, text

    from conftest import PG_ADMIN_URL, _pg_url

    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    name = f"anachron_api_{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}" TEMPLATE "{pg_template}"'))
    try:
        yield _pg_url(name)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_postgresql_smoke(pg_database, tmp_path):
    with running_server([PY_FLOWS], pg_database, tmp_path) as srv, srv.client() as c:
        assert {w["name"] for w in ok(c.get(f"{API}/workflows"))} == WORKFLOWS
        created = create(c, {"workflow": "grid", "partition_range": {"dimensions": {"region": ["eu"]}},
                             "strategy": {"batched": 3}, "tags": [{"key": "db", "value": "pg"}]})
        status = wait_backfill(c, created["backfill_id"])
        assert status["status"] == "completed" and status["completed_partitions"] == 10 and status["total_runs"] == 4
        assert [b["backfill_id"] for b in ok(c.get(f"{API}/backfills", params={"workflow": "grid"}))] == [
            created["backfill_id"]]
        page = ok(c.get(f"{API}/workflows/grid/partitions", params={"limit": 3}))
        assert [p["status"] for p in page["partitions"]] == ["missing", "success", "missing"]
        before = backfill_ids(c)
        expect_error(c.post(f"{API}/backfills", json={"workflow": "grid", "partition_keys": ["date=x|region=eu"]}),
                     400, "date=x")
        expect_error(c.post(f"{API}/backfills", json={"workflow": "daily", "partition_keys": ["2024-01-01"],
                                                      "params": {"nope": 1}}), 400, "params")
        assert backfill_ids(c) == before
        body = {"workflow": "hello", "params": {"name": "pg"}, "idempotency_key": "pg-1"}
        run = ok(c.post(f"{API}/runs", json=body), 201)
        assert ok(c.post(f"{API}/runs", json=body), 201)["run_id"] == run["run_id"]
        assert wait_run(c, run["run_id"])["status"] == "success"
        assert "hello pg 0" in [line["message"] for line in ok(c.get(f"{API}/runs/{run['run_id']}/logs"))["lines"]]
        expect_error(c.get(f"{API}/runs/nope"), 404, "nope")
    assert "Traceback" not in srv.log(), srv.log()

