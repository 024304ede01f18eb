"""Hostile input never hangs, never answers 500, never writes half: NUL and lone surrogates at every door, times
at the calendar's edge, oversized bodies and parameters, YAML alias bombs, a port already in use, and the small
ones (405's Allow, the error answers in the OpenAPI document, database URLs echoed without their password, a
malformed ANACHRON_TIME in the process environment)."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import anachron as ac
from anachron.api import create_app
from anachron.flows import FlowError, load_flow
from server_process import free_port

TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS / "api_flows"))
import api_workflows as aw  # noqa: E402

KESTRA = TESTS / "api_flows" / "kestra_flow.yaml"
PY_FLOWS = str(TESTS / "api_flows" / "api_workflows.py")
API = "/api/v1"
UTC = timezone.utc


@pytest.fixture
def app_repo(storage_url, make_repo) -> ac.CodeRepository:
    return make_repo([aw.daily, aw.hello, aw.hourly, load_flow(KESTRA)], storage=storage_url,
                     executor=ac.InProcessExecutor(2))


@pytest.fixture
def client(app_repo) -> Iterator[TestClient]:
    with TestClient(create_app(app_repo, daemon=False, max_body_bytes=400_000), base_url="http://localhost",
                    raise_server_exceptions=False) as c:
        yield c


def refused(response, status: int, *words: str) -> str:
    assert response.status_code == status, (response.status_code, response.text)
    message = response.json()["error"]["message"]
    for word in words:
        assert word in message, message
    return message


def nothing_written(repo: ac.CodeRepository) -> None:
    assert repo.list_runs(limit=None) == [] and repo.list_backfills() == []


# -- item 4: NUL (and lone surrogates) wherever text enters ---------------------------------------------------
NUL_REQUESTS = [
    ("GET", f"{API}/runs/ab%00c", None, "run_id"),
    ("GET", f"{API}/runs/ab%00c/logs", None, "run_id"),
    ("POST", f"{API}/runs/ab%00c/cancel", None, "run_id"),
    ("GET", f"{API}/backfills/ab%00c", None, "backfill_id"),
    ("POST", f"{API}/backfills/ab%00c/pause", None, "backfill_id"),
    ("GET", f"{API}/runs?workflow=da%00ily", None, "workflow"),
    ("GET", f"{API}/runs?backfill_id=x%00", None, "backfill_id"),
    ("GET", f"{API}/runs?tag=a%3Db%00", None, "tag"),
    ("GET", f"{API}/backfills?workflow=da%00ily", None, "workflow"),
    ("GET", f"{API}/workflows/daily/partitions?from_key=2024%00", None, "from_key"),
    ("POST", f"{API}/runs", {"workflow": "hello", "idempotency_key": "k\x00"}, "idempotency_key"),
    ("POST", f"{API}/runs", {"workflow": "hello", "run_name": "n\x00"}, "run_name"),
    ("POST", f"{API}/runs", {"workflow": "hello", "params": {"name": "a\x00b"}}, "params.name"),
    ("POST", f"{API}/runs", {"workflow": "hello", "tags": [{"key": "a", "value": "b\x00"}]}, "tags.0.value"),
    ("POST", f"{API}/runs", {"workflow": "hello", "params": {"name": "\ud800"}}, "params.name"),
    ("POST", f"{API}/backfills", {"workflow": "daily", "partition_keys": ["2024-01-01"], "idempotency_key": "x\x00"},
     "idempotency_key"),
    ("POST", f"{API}/backfills", {"workflow": "daily", "partition_keys": ["2024-01-01\x00"]}, "partition_keys.0"),
    ("POST", f"{API}/backfills", {"workflow": "daily", "partition_keys": ["2024-01-01"],
                                  "tags": [{"key": "k\x00", "value": "v"}]}, "tags.0.key"),
    ("PUT", f"{API}/triggers", {"backfill": {"start": "2024-01-01T00:00:00Z",
                                             "labels": [{"key": "a", "value": "\x00"}]},
                                "flowId": "kestra_flow", "namespace": "company.team", "triggerId": "every6h"},
     "backfill.labels.0.value"),
]


@pytest.mark.parametrize(("method", "path", "body", "field"), NUL_REQUESTS, ids=[r[3] + ":" + r[1][7:30]
                                                                                   for r in NUL_REQUESTS])
def test_nul_is_refused_with_4xx_naming_the_field(client, app_repo, method, path, body, field):
    response = client.request(method, path, content=None if body is None else json.dumps(body),
                              headers={"Content-Type": "application/json"})
    assert response.status_code in (400, 422), response.text
    message = response.json()["error"]["message"]
    assert message.startswith(field) and ("NUL" in message or "surrogate" in message), message
    nothing_written(app_repo)


def test_nul_through_the_python_api_names_the_field(app_repo):
    for call, field in [(lambda: app_repo.get_run("a\x00"), "run_id"),
                        (lambda: app_repo.get_backfill("a\x00"), "backfill_id"),
                        (lambda: app_repo.list_runs(backfill_id="a\x00"), "backfill_id"),
                        (lambda: app_repo.run(aw.hello, run_name="x\x00"), "run_name"),
                        (lambda: app_repo.run(aw.hello, environ={"K": "v\x00"}), "environ.K"),
                        (lambda: app_repo.run(aw.hello, tags={"k": "\x00"}), "tags.k"),
                        (lambda: app_repo.backfill(aw.daily, partition_keys=["2024-01-01"], idempotency_key="\x00"),
                         "idempotency_key")]:
        with pytest.raises(ValueError) as caught:
            call()
        assert str(caught.value).startswith(field) and "NUL" in str(caught.value)
    nothing_written(app_repo)


# -- item 4: times at the edge of the calendar --------------------------------------------------------------
def test_a_trigger_backfill_in_year_one_is_a_4xx_or_works(client, app_repo):
    body = {"flowId": "kestra_flow", "namespace": "company.team", "triggerId": "every6h"}
    refused(client.put(f"{API}/triggers", json={**body, "backfill": {"start": "0001-01-01T00:00:00Z"}}), 400,
            "start: '0001-01-01T00:00:00Z' is out of range: times from 0001-01-02 to 9999-12-30 are accepted")
    refused(client.post(f"{API}/backfills", json={"workflow": "daily", "start": "9999-12-31"}), 422,
            "start: '9999-12-31' is out of range")
    nothing_written(app_repo)
    ok = client.put(f"{API}/triggers", json={**body, "backfill": {"start": "0001-01-02T00:00:00Z",
                                                                  "end": "0001-01-04T00:00:00Z"}})
    assert ok.status_code == 200, ok.text  # the ticks of year 1 exist: three days' worth
    assert app_repo.get_backfill(ok.json()["backfill_id"]).total_partitions == 5
    ticks = list(ac.Schedule("0 0 * * *").ticks(datetime(1, 1, 1, tzinfo=UTC), datetime(1, 1, 5, tzinfo=UTC)))
    assert ticks[0] == datetime(1, 1, 3, tzinfo=UTC) and len(ticks) == 3  # the grid's edge: no OverflowError


def test_cli_start_in_year_one_says_out_of_range(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "anachron.cli", "backfill", "create", PY_FLOWS, "daily", "--start",
                           "0001-01-01", "--end", "2024-01-03", "--dry-run", "--db", f"sqlite:///{tmp_path / 'x.db'}"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2, proc
    assert proc.stderr.strip() == ("error: --start: '0001-01-01' is out of range: times from 0001-01-02 to "
                                   "9999-12-30 are accepted")


# -- item 6: request size caps ---------------------------------------------------------------------------------
def test_bodies_over_the_cap_get_413_and_nothing_is_stored(client, app_repo):
    big = {"workflow": "hello", "params": {"name": "x" * 500_000}}
    refused(client.post(f"{API}/runs", json=big), 413, "body: larger than 400,000 bytes")

    def chunks() -> Iterator[bytes]:  # no Content-Length: read up to the cap, then refused
        yield b'{"workflow": "hello", "params": {"name": "'
        for _ in range(50):
            yield b"y" * 10_000
        yield b'"}}'

    refused(client.post(f"{API}/runs", content=chunks(), headers={"Content-Type": "application/json"}), 413)
    refused(client.put(f"{API}/triggers", content=b"[" * 450_000), 413)
    nothing_written(app_repo)


def test_params_and_tags_are_capped_in_the_request_model(client, app_repo):
    refused(client.post(f"{API}/runs", json={"workflow": "hello", "params": {"name": "x" * 300_000}}), 422,
            "params: 300,0", "bytes of JSON, more than the 262,144 allowed")
    with pytest.raises(ValueError, match=r"params: 300,\d{3} bytes of JSON, more than the 262,144 allowed"):
        app_repo.run(aw.hello, params={"name": "x" * 300_000})
    many = [{"key": f"k{i}", "value": "v"} for i in range(101)]
    refused(client.post(f"{API}/runs", json={"workflow": "hello", "tags": many}), 422, "tags: at most 100 tags")
    refused(client.post(f"{API}/backfills", json={"workflow": "daily", "partition_keys": ["2024-01-01"],
                                                  "tags": [{"key": "k", "value": "v" * 1001}]}), 422,
            "tags.k: the value is longer than 1,000 characters")
    labels = [{"key": "k" * 201, "value": "v"}]
    refused(client.put(f"{API}/triggers", json={"flowId": "kestra_flow", "namespace": "company.team",
                                                 "triggerId": "every6h",
                                                 "backfill": {"start": "2024-01-01T00:00:00Z", "labels": labels}}),
            400, "labels: the key", "longer than 200 characters")
    nothing_written(app_repo)


# -- item 8: 405 and the OpenAPI document ---------------------------------------------------------------------
def test_405_names_every_method_of_the_path(client):
    for method, path, allowed in [("DELETE", f"{API}/runs", "GET, POST"), ("PUT", f"{API}/backfills", "GET, POST"),
                                  ("GET", f"{API}/runs/x/cancel", "POST"), ("DELETE", f"{API}/triggers", "PUT")]:
        response = client.request(method, path)
        assert response.status_code == 405 and response.headers["allow"] == allowed, (path, response.headers)
        assert response.json()["error"]["message"].endswith(f"allowed: {allowed}")


def test_the_openapi_document_lists_the_error_answers(client):
    spec = client.get("/openapi.json").json()
    error = {"$ref": "#/components/schemas/ErrorBody"}
    for path, method in [("/api/v1/backfills", "post"), ("/api/v1/runs/{run_id}", "get"),
                         ("/api/v1/backfills/{backfill_id}/pause", "post"), ("/api/v1/triggers", "put")]:
        answers = spec["paths"][path][method]["responses"]
        for status in ("400", "404", "409", "413", "421", "422"):
            assert answers[status]["content"]["application/json"]["schema"] == error, (path, status)
    assert "HTTPValidationError" not in json.dumps(spec)  # 422 answers are the error shape too


# -- item 8: database URLs, ANACHRON_TIME ---------------------------------------------------------------------
def test_an_unsupported_database_url_is_shown_without_its_password(tmp_path):
    with pytest.raises(ValueError) as caught:
        ac.CodeRepository([], storage="mysql://me:hunter2@db/prod")
    assert "hunter2" not in str(caught.value) and "mysql://me:***@db/prod" in str(caught.value)
    proc = subprocess.run([sys.executable, "-m", "anachron.cli", "backfill", "list", "--db",
                           "mysql://me:hunter2@db/prod"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2 and "hunter2" not in proc.stderr + proc.stdout and "***" in proc.stderr, proc


def test_a_malformed_anachron_time_in_the_process_fails_partitioned_runs_and_backfills(app_repo, monkeypatch):
    monkeypatch.setenv("ANACHRON_TIME", "yesterday-ish")
    run = app_repo.run(aw.daily, partition_key="2024-01-01")
    assert run.status == "failed" and run.error.startswith("ANACHRON_TIME='yesterday-ish' is not a time")
    with pytest.raises(ValueError, match="ANACHRON_TIME='yesterday-ish' is not a time"):
        app_repo.backfill(aw.daily, partition_keys=["2024-01-01"])
    assert app_repo.list_backfills() == []


def test_a_malformed_anachron_time_fails_the_cli_backfill(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "anachron.cli", "backfill", "create", PY_FLOWS, "daily",
                           "--partitions", "2024-01-01", "--db", f"sqlite:///{tmp_path / 'x.db'}"],
                          capture_output=True, text=True, timeout=60, env={**_env(), "ANACHRON_TIME": "nope"})
    assert proc.returncode == 2 and proc.stderr.startswith("error: ANACHRON_TIME='nope' is not a time"), proc


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k not in ("ANACHRON_TIME", "STARLARK_TIME")}


# -- item 3: YAML alias bombs ------------------------------------------------------------------------------------
def test_an_alias_bomb_is_refused_at_its_line_in_milliseconds(tmp_path):
    lines = ["id: bomb", "workflow: json:dumps", "parameters:", '  a0: &a0 ["x","x","x","x","x","x","x","x","x"]']
    lines += [f"  a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 9)]
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(lines) + "\n")
    assert path.stat().st_size < 500  # 9 ** 9 = 387,420,489 values once expanded
    started = time.monotonic()
    with pytest.raises(FlowError) as caught:
        load_flow(path)
    assert time.monotonic() - started < 1.0
    assert str(caught.value) == (f"{path}:9: YAML: more than 100,000 values once aliases are expanded (nested "
                                 "aliases that multiply, as in an alias bomb); write the values out, or use fewer "
                                 "aliases")
    merged = tmp_path / "anchors.yaml"  # ordinary anchors and merge keys still work
    merged.write_text("id: fine\nx-defaults: &d {type: shell, retry: 2}\n"
                      "tasks:\n  - {<<: *d, id: a, commands: [echo a]}\n  - {<<: *d, id: b, commands: [echo b]}\n")
    with pytest.raises(FlowError, match="x-defaults: unknown top-level key"):
        load_flow(merged)


# -- item 5: a port in use -------------------------------------------------------------------------------------
def test_a_server_on_a_port_in_use_leads_nothing_and_exits_2(storage_url, make_repo, tmp_path):
    repo = make_repo([aw.daily], storage=storage_url, executor=ac.InProcessExecutor(1))
    waiting = repo.backfill(aw.daily, partition_keys=["2024-01-01", "2024-01-02"], block=False, coordinate=False)
    port = free_port()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "anachron.cli", "server", PY_FLOWS, "--db", storage_url,
                               "--port", str(port), "--scan", "0.05"], capture_output=True, text=True, timeout=60,
                              env=_env())
    assert proc.returncode == 2, proc
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: --port {port}: could not listen on 127.0.0.1:{port}"), lines
    assert time.monotonic() - started < 30
    status = repo.get_backfill(waiting.backfill_id)
    assert status.status == "requested" and repo.list_runs(limit=None) == []  # nothing led, nothing left running
