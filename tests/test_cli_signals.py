"""SIGTERM behaves like Ctrl-C without a terminal, and every hinted command works when run as printed."""

from __future__ import annotations

import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import anachron as ac
from test_cli import FLOWS, FLOWS_DIR, Cli, api, cli  # noqa: F401 - fixtures


def wait_done(api, backfill_id: str, at_least: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while api.get_backfill(backfill_id, include_run_ids=False).completed_partitions < at_least:
        assert time.monotonic() < deadline, "the backfill made no progress"
        time.sleep(0.05)


# -- 4. SIGTERM ----------------------------------------------------------------------------------
def test_sigterm_leaves_the_backfill_unfinished_and_releases_its_lease_at_once(cli, api):
    waiting = cli.popen("backfill", "create", FLOWS, "etl", "--from", "2024-07-01", "--to", "2024-07-16",
                        "-p", "sleep=0.3", "--max-concurrency", "2")
    backfill_id = waiting.stderr.readline().split()[1].rstrip(":")  # "backfill ID: 16 partitions in 16 runs"
    wait_done(api, backfill_id, 2)
    waiting.send_signal(signal.SIGTERM)
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 143, err
    assert "left unfinished" in err and "Traceback" not in err
    assert f"anachron backfill status {FLOWS} {backfill_id} --wait" in err
    assert f"anachron backfill cancel {backfill_id}" in err
    assert api.get_backfill(backfill_id).status == "in_progress"  # unfinished, not canceled
    started = time.monotonic()
    final = cli.json("backfill", "status", FLOWS, backfill_id, "--wait")  # takes over at once: lease released
    assert time.monotonic() - started < 10  # the lease is 30 s
    assert final["status"] == "completed" and final["completed_partitions"] == 16


def test_sigterm_while_waiting_on_a_run(cli, api):
    waiting = cli.popen("run", FLOWS, "etl", "--partition", "2024-08-01", "-p", "sleep=1.5", "--idempotency-key",
                        "term")
    deadline = time.monotonic() + 20
    while not [r for r in api.list_runs(status="running")]:
        assert time.monotonic() < deadline and waiting.poll() is None
        time.sleep(0.05)
    waiting.send_signal(signal.SIGTERM)
    out, err = waiting.communicate(timeout=30)
    assert waiting.returncode == 143, err
    assert "left unfinished" in err and "Traceback" not in err
    run_id = api.list_runs()[0].run_id
    assert f"anachron runs show {FLOWS} {run_id} --wait" in err
    finished = cli("runs", "show", FLOWS, run_id, "--wait")
    assert finished.returncode == 0, finished.stderr
    assert api.get_run(run_id).status == "success"


# -- 2. hints that work --------------------------------------------------------------------------
def hinted(text: str) -> list[str]:
    """The commands in a hint: `anachron ...` between backticks, or on a line of their own."""
    found = re.findall(r"`(anachron [^`]*)`", text)
    found += [m.strip() for m in re.findall(r"(?m)(?:^|:\s+)(anachron [^\n`(]*)$", text)]
    return found


def run_hint(cli: Cli, command: str, env: dict, expect: int = 0, **kwargs) -> subprocess.CompletedProcess:
    argv = shlex.split(command)
    assert argv[0] == "anachron" and "TARGET" not in argv, command
    proc = subprocess.run([sys.executable, "-m", "anachron.cli", *argv[1:]], cwd=cli.cwd, env=env,
                          capture_output=True, text=True, timeout=60, **kwargs)
    assert proc.returncode == expect, (command, proc.stdout, proc.stderr)
    return proc


def test_hints_name_commands_that_work_with_db_given_as_an_option(cli, tmp_path):
    env = {k: v for k, v in cli.env.items() if k != "ANACHRON_DATABASE_URL"}  # only --db names the database
    url = f"sqlite:///{tmp_path / 'hints db.sqlite'}"  # a space: the hint must quote it

    def run(*args, expect=0):
        return run_hint(cli, shlex.join(["anachron", *map(str, args)]), env, expect)

    created = run("backfill", "create", FLOWS, "etl", "--from", "2024-09-01", "--to", "2024-09-06", "--no-wait",
                  "--db", url)
    backfill_id = created.stdout.strip()
    [watch] = hinted(created.stderr)
    assert watch == f"anachron backfill status {FLOWS} {backfill_id} --wait --db {shlex.quote(url)}"

    paused = run("backfill", "pause", backfill_id, "--db", url)
    [resume] = hinted(paused.stderr)
    resumed = run_hint(cli, resume, env)
    assert "→ in_progress" in resumed.stdout
    [status_hint] = hinted(resumed.stderr)  # no TARGET was given to resume: a placeholder, explained
    assert "TARGET" in status_hint and "TARGET: the Python file" in resumed.stderr

    run("backfill", "pause", backfill_id, "--db", url)
    resumed = run("backfill", "resume", FLOWS, backfill_id, "--db", url)  # given TARGET: the hint repeats it
    [status_hint] = hinted(resumed.stderr)
    assert status_hint == watch
    finished = run_hint(cli, status_hint, env)  # it leads the backfill to the end
    assert "completed" in finished.stdout

    submitted = run("run", FLOWS, "etl", "--partition", "2024-09-10", "--no-wait", "--db", url)
    [show] = hinted(submitted.stderr)
    assert run_hint(cli, show, env).returncode == 0


def test_hints_repeat_the_target_when_its_repository_names_the_database(cli, tmp_path):
    own = tmp_path / "own.py"
    own.write_text("import anachron as ac\nfrom flows import etl\n"
                   f"repo = ac.CodeRepository([etl], storage={('sqlite:///' + str(tmp_path / 'own.db'))!r}, "
                   "executor=ac.InProcessExecutor())\n")
    env = {k: v for k, v in cli.env.items() if k != "ANACHRON_DATABASE_URL"}
    env["PYTHONPATH"] = str(FLOWS_DIR)

    def run(*args, expect=0):
        return run_hint(cli, shlex.join(["anachron", *map(str, args)]), env, expect)

    created = run("backfill", "create", "own.py", "etl", "--from", "2024-10-01", "--to", "2024-10-04", "--no-wait")
    backfill_id = created.stdout.strip()
    paused = run("backfill", "pause", "own.py", backfill_id)
    [resume] = hinted(paused.stderr)
    assert resume == f"anachron backfill resume own.py {backfill_id}"
    run_hint(cli, resume, env)
    canceled = run("backfill", "cancel", "own.py", backfill_id)
    [rerun] = hinted(canceled.stderr)
    assert rerun == f"anachron backfill rerun own.py {backfill_id}"
    rerun_proc = run_hint(cli, rerun, env)
    assert "completed: 4 partitions succeeded" in rerun_proc.stdout
    status = run("backfill", "status", "own.py", backfill_id)
    assert "rerun the failed and canceled partitions: anachron backfill rerun own.py" in status.stdout
    assert not (Path(cli.cwd) / ".anachron").exists()
    with ac.CodeRepository([], storage=f"sqlite:///{tmp_path / 'own.db'}") as repo:
        assert [b.status for b in repo.list_backfills()] == ["completed", "canceled"]
