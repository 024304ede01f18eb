"""Security hardening (docs/security.md): the Host allow-list that stops DNS rebinding, runs that never see the
server's secrets, and the check for user values put into shell commands unquoted."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import httpx

import anachron as ac
from anachron.runenv import run_environ, scrub_environ, without_password
from server_process import running_server

TESTS = Path(__file__).parent
SECURITY = TESTS / "security_flows"
PY_FLOWS = str(TESTS / "api_flows" / "api_workflows.py")
API = "/api/v1"


# -- item 1: the Host allow-list ---------------------------------------------------------------------------
def test_a_forged_host_is_refused_before_anything_runs(tmp_path):
    """A page on evil.example whose name rebinds to 127.0.0.1 is same-origin to the browser: its requests
    carry Host: evil.example, and are refused with 421 before any route runs — no token needed for that."""
    db = f"sqlite:///{tmp_path / 'api.db'}"
    with running_server([PY_FLOWS], db, tmp_path, args=["--allowed-host", "anachron.internal"]) as srv:
        port = srv.url.rsplit(":", 1)[1]
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            body = {"workflow": "daily", "partition_keys": ["2024-01-01"]}
            for host in ("evil.example", f"evil.example:{port}", "localhost.evil.example", "127.0.0.1.nip.io"):
                for method, path, json in (("GET", f"{API}/runs", None), ("POST", f"{API}/backfills", body),
                                           ("POST", f"{API}/runs", {"workflow": "hello"}), ("GET", "/", None)):
                    r = c.request(method, path, json=json, headers={"Host": host})
                    assert r.status_code == 421, (host, method, path, r.text)
                    assert r.json()["error"]["code"] == "misdirected_request" and "--allowed-host" in r.text
            assert c.get(f"{API}/backfills").json() == [] and c.get(f"{API}/runs").json() == []  # nothing ran
            for host in ("localhost", f"localhost:{port}", "LOCALHOST.", f"127.0.0.1:{port}", "[::1]",
                         "anachron.internal", f"Anachron.Internal:{port}", "10.1.2.3"):  # IP literals cannot rebind
                assert c.get(f"{API}/workflows", headers={"Host": host}).status_code == 200, host
    assert "Traceback" not in srv.log()


def test_allowed_host_star_answers_any_name(tmp_path):
    with running_server([PY_FLOWS], f"sqlite:///{tmp_path / 'api.db'}", tmp_path,
                        args=["--allowed-host", "*"]) as srv:
        with httpx.Client(base_url=srv.url, timeout=30) as c:
            assert c.get(f"{API}/workflows", headers={"Host": "behind.proxy.example"}).status_code == 200


# -- item 2: runs get a scrubbed environment ---------------------------------------------------------------
SECRET_ENV = {"ANACHRON_API_TOKEN": "t0p-s3cret-token", "PGPASSWORD": "pg-s3cret",
              "MY_SERVICE_KEY": "svc-s3cret", "ANACHRON_SECRET_ENV": "MY_SERVICE_*", "PLAIN_SETTING": "plain"}


def _logs(client: httpx.Client, run_id: str) -> str:
    import time

    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        run = client.get(f"{API}/runs/{run_id}").json()
        if run["status"] in ("success", "failed", "canceled"):
            assert run["status"] == "success", run
            return "\n".join(line["message"] for line in client.get(f"{API}/runs/{run_id}/logs").json()["lines"])
        time.sleep(0.1)
    raise AssertionError(f"run {run_id} did not finish")


def test_runs_of_the_server_never_see_its_secrets(storage_url, tmp_path):
    """The server's token, the database password (in ANACHRON_DATABASE_URL or PGPASSWORD) and the operator's
    own secrets (ANACHRON_SECRET_ENV) are not in the environment of its runs: a YAML flow's shell and a Python
    workflow in LocalExecutor workers print them into logs that the API serves, and they are not there."""
    db = storage_url
    if db.startswith("postgresql"):
        db = db.replace("postgres@", "postgres:unused-pass@")  # trust auth: the password is not checked
    env = {**SECRET_ENV, "ANACHRON_DATABASE_URL": db}
    targets = [str(SECURITY / "secrets_flow.yaml"), str(SECURITY / "environment.py")]  # two: LocalExecutor
    with running_server(targets, db, tmp_path, env=env) as srv:
        with srv.client(token=SECRET_ENV["ANACHRON_API_TOKEN"]) as c:
            shell = c.post(f"{API}/runs", json={"workflow": "secrets_flow"}).json()["run_id"]
            python = c.post(f"{API}/runs", json={"workflow": "environment"}).json()["run_id"]
            shell_logs, python_logs = _logs(c, shell), _logs(c, python)
    for secret in ("t0p-s3cret-token", "pg-s3cret", "svc-s3cret", "unused-pass"):
        assert secret not in shell_logs + python_logs, (shell_logs, python_logs)
    assert "token=unset pg=unset" in shell_logs and "custom=unset kept=plain" in shell_logs
    shown_db = without_password(db)
    assert f"db={shown_db}" in shell_logs and f"ANACHRON_DATABASE_URL={shown_db}" in python_logs
    assert "MY_SERVICE_KEY unset" in python_logs and "PLAIN_SETTING=plain" in python_logs
    assert "Traceback" not in srv.log()


def test_a_run_is_given_what_it_needs_explicitly(sqlite_url, make_repo, monkeypatch):
    """Python API, LocalExecutor: the parent's secrets are scrubbed in the workers; a run's own environ passes."""
    import importlib

    sys.path.insert(0, str(SECURITY))
    try:
        environment = importlib.import_module("environment").environment
    finally:
        sys.path.remove(str(SECURITY))
    for name, value in SECRET_ENV.items():
        monkeypatch.setenv(name, value)
    repo = make_repo([environment], storage=sqlite_url, executor=ac.LocalExecutor(1))
    run = repo.run(environment, environ={"MY_SERVICE_KEY": "given-to-this-run"})
    assert run.status == "success", run.error
    lines = [line["message"] for line in repo.run_logs(run.run_id)]
    assert lines[:2] == ["ANACHRON_API_TOKEN unset", "PGPASSWORD unset"]
    assert "MY_SERVICE_KEY=given-to-this-run" in lines and "PLAIN_SETTING=plain" in lines


def test_what_counts_as_a_secret():
    environ = {"ANACHRON_API_TOKEN": "t", "PGPASSWORD": "p", "HOME": "/root", "VAULT_TOKEN": "v", "VAULT_ADDR": "a",
               "ANACHRON_SECRET_ENV": " VAULT_TOKEN , AWS_*", "AWS_SECRET_ACCESS_KEY": "k",
               "ANACHRON_DATABASE_URL": "postgresql+psycopg://me:pw@db:5432/prod?sslmode=require&password=pw2"}
    clean = run_environ(environ)
    assert sorted(clean) == ["ANACHRON_DATABASE_URL", "ANACHRON_SECRET_ENV", "HOME", "VAULT_ADDR"]
    assert clean["ANACHRON_DATABASE_URL"] == "postgresql+psycopg://me@db:5432/prod?sslmode=require"
    assert without_password("sqlite:///x.db") == "sqlite:///x.db"
    changed = scrub_environ(environ)
    assert environ == clean and set(changed) == {"ANACHRON_API_TOKEN", "PGPASSWORD", "VAULT_TOKEN",
                                                 "AWS_SECRET_ACCESS_KEY", "ANACHRON_DATABASE_URL"}


# -- item 1: user values in shell commands ------------------------------------------------------------------
INJECTABLE = """\
id: inject
inputs:
  - {id: region, type: STRING, defaults: us}
  - {id: day, type: DATE, defaults: 2024-01-01}
tasks:
  - id: safe
    type: shell
    commands:
      - ./export.sh --region {{ inputs.region | shell_quote }} --day {{ inputs.day }} --run {{ execution.id }}
  - id: unsafe
    type: shell
    env: {REGION: "{{ inputs.region }}"}
    commands:
      - echo "{{ inputs.region }}"
      - |
        {% set r = inputs.region | upper %}
        echo {{ r }} {{ labels.owner ?? 'nobody' }}
"""


def test_check_flags_user_values_in_shell_commands(tmp_path):
    flow = tmp_path / "flows" / "inject.yaml"
    flow.parent.mkdir()
    flow.write_text(INJECTABLE)
    (tmp_path / "flows" / "ci.yaml").write_text("stages: [test]\n")  # not a flow: left alone
    for target in (str(flow), str(flow.parent)):
        proc = subprocess.run([sys.executable, "-m", "anachron.cli", "check", target], capture_output=True,
                              text=True, timeout=60, cwd=tmp_path)
        assert proc.returncode == 1, proc
        lines = proc.stdout.strip().splitlines()
        assert lines == [
            f"{flow}:14: tasks[1].commands[0]: {{{{ inputs.region }}}} puts inputs.region, which whoever starts "
            "a run chooses, into a shell command unquoted; write {{ inputs.region | shell_quote }}",
            f"{flow}:17: tasks[1].commands[1]: {{{{ r }}}} puts inputs.region, which whoever starts a run chooses, "
            "into a shell command unquoted; write {{ r | shell_quote }}",
            f"{flow}:17: tasks[1].commands[1]: {{{{ labels.owner }}}} puts labels.owner, which whoever starts a "
            "run chooses, into a shell command unquoted; write {{ labels.owner | shell_quote }}",
        ], proc.stdout
        assert "3 unquoted value(s) in shell commands" in proc.stderr
    flow.write_text(INJECTABLE.split("  - id: unsafe")[0])
    proc = subprocess.run([sys.executable, "-m", "anachron.cli", "check", str(flow)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stdout == "", proc


def test_the_flow_loader_warns_and_quoting_holds(tmp_path, caplog):
    from anachron.flows import load_flow

    flow = tmp_path / "inject.yaml"
    flow.write_text(INJECTABLE)
    caplog.set_level(logging.WARNING, logger="anachron.flows")
    wf = load_flow(flow)
    warnings = [r.getMessage() for r in caplog.records]
    assert len(warnings) == 3 and all("shell_quote" in w and str(flow) in w for w in warnings)
    marker = tmp_path / "pwned"
    hostile = f"x'; touch {marker}; echo '"  # quoted by shell_quote: one harmless argument
    safe_only = tmp_path / "safe.yaml"
    safe_only.write_text(INJECTABLE.split("  - id: unsafe")[0].replace("./export.sh", "echo"))
    ctx = ac.create_context()
    ctx.run(load_flow(safe_only), region=hostile)
    assert not marker.exists() and any(hostile in message for _, _, message in ctx.logs)
    assert wf.name == "inject"
