"""Workflows that misbehave (interrupt, exit, print, flood their logs, kill their worker, never call a task),
parameters that cannot be stored, and workflows defined as lambdas or by factories."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from datetime import date, datetime, timezone
from pathlib import Path

import pytest

import anachron as ac
import flows_misbehaving as fm

TESTS = Path(__file__).parent
EXECUTORS = {"inprocess": lambda: ac.InProcessExecutor(2), "local": lambda: ac.LocalExecutor(2)}


@pytest.fixture(params=["inprocess", "local"])
def executor(request):
    return EXECUTORS[request.param]()


@pytest.fixture
def repo(sqlite_url, make_repo, executor):
    return make_repo([fm.interrupts, fm.talks, fm.dies, fm.dated, fm.needs, fm.noop, *fm.MADE],
                     storage=sqlite_url, executor=executor, log_limit=20_000)


def messages(repo, run):
    return [(line["level"], line["message"]) for line in repo.run_logs(run.run_id)]


# -- text storage cannot take -------------------------------------------------------------------------
@pytest.mark.parametrize("where", ["sqlite", "postgresql"])
def test_output_no_database_stores_does_not_hold_up_other_runs(where, request, make_repo, executor):
    """A lone surrogate (a file name decoded with surrogateescape) or a NUL in what a run prints or raises
    once made every transaction recording outcomes fail: nothing else was ever recorded."""
    url = request.getfixturevalue("sqlite_url" if where == "sqlite" else "pg_url")
    repo = make_repo([fm.unstorable, fm.noop], storage=url, executor=executor)
    bad = repo.run(fm.unstorable, params={"text": "caf\\udce9 \\x00end"}, block=False)
    good = repo.run(fm.noop, partition_key="2024-01-01", block=False)
    assert repo.wait_run(good.run_id, timeout=30).status == "success"
    failed = repo.wait_run(bad.run_id, timeout=30)
    assert failed.status == "failed" and "caf\ufffd \ufffdend" in failed.error
    assert ("STDOUT", "got caf\ufffd \ufffdend") in messages(repo, bad)


# -- BaseException, prints, floods --------------------------------------------------------------------
@pytest.mark.parametrize("kind, text", [("keyboard", "KeyboardInterrupt"), ("exit", "SystemExit")])
def test_keyboard_interrupt_and_system_exit_fail_the_run(repo, kind, text):
    run = repo.run(fm.interrupts, params={"kind": kind})  # returns: nothing is left running
    assert run.status == "failed" and run.error.startswith(text)


def test_what_a_run_prints_goes_to_its_logs_not_the_callers_output(repo, capfd, executor):
    run = repo.run(fm.talks, params={"lines": 2, "child": isinstance(executor, ac.LocalExecutor)})
    assert run.status == "success"
    out, err = capfd.readouterr()
    assert "on stdout" not in out and "on stderr" not in err and "child process" not in out
    logged = messages(repo, run)
    assert ("STDOUT", "line 0 on stdout") in logged and ("STDOUT", "line 1 on stdout") in logged
    assert ("STDERR", "a warning on stderr") in logged
    if isinstance(executor, ac.LocalExecutor):  # a worker process captures its file descriptors too
        assert ("STDOUT", "from a child process") in logged


def test_a_flood_of_output_is_capped_with_a_marker(repo):
    run = repo.run(fm.talks, params={"lines": 100_000})
    logged = messages(repo, run)
    assert sum(len(m) for _, m in logged) < 25_000  # log_limit=20_000 (+ the marker)
    assert logged[0] == ("STDOUT", "line 0 on stdout") and ("STDOUT", "line 99999 on stdout") in logged
    assert any("truncated" in m for _, m in logged)


def test_a_worker_that_dies_says_how(sqlite_url, make_repo):
    repo = make_repo([fm.dies, fm.talks], storage=sqlite_url, executor=ac.LocalExecutor(1))
    run = repo.run(fm.dies)
    assert run.status == "failed" and "killed by signal 9 (SIGKILL)" in run.error
    # the one worker was replaced: the dispatcher listens to the new one's pipe (and to it alone), again and again
    for _ in range(3):
        talked = repo.run(fm.talks, params={"lines": 1}, block=False)
        assert repo.wait_run(talked.run_id, timeout=30).status == "success"
        died = repo.run(fm.dies, block=False)
        assert repo.wait_run(died.run_id, timeout=30).status == "failed"


CANCEL_SCRIPT = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    import anachron as ac
    import flows_misbehaving as fm

    repo = ac.CodeRepository([fm.sleeps_without_tasks], storage={url!r}, executor=ac.InProcessExecutor(1))
    run = repo.run(fm.sleeps_without_tasks, block=False)
    while repo.get_run(run.run_id).status != "running":
        time.sleep(0.02)
    repo.cancel_run(run.run_id)
    print(repo.wait_run(run.run_id, timeout=5).status, flush=True)
""")


def test_canceling_an_in_process_run_that_never_calls_a_task_does_not_hang_the_exit(tmp_path):
    script = tmp_path / "cancel.py"
    script.write_text(CANCEL_SCRIPT.format(tests=str(TESTS), url=f"sqlite:///{tmp_path / 'c.db'}"))
    started = time.monotonic()
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "canceled"
    assert time.monotonic() - started < 15  # not the 30 s the abandoned thread would sleep


# -- parameters ------------------------------------------------------------------------------------
def test_parameters_are_checked_before_anything_is_stored(sqlite_url, make_repo):
    repo = make_repo([fm.needs, fm.dated], storage=sqlite_url, executor=ac.InProcessExecutor(1))
    with pytest.raises(ValueError, match="needs parameter 'source'"):
        repo.run(fm.needs)
    with pytest.raises(ValueError, match=r"params\['rows'\]"):
        repo.run(fm.needs, params={"source": "x", "rows": object()})
    with pytest.raises(ValueError, match="has no parameter 'nope'"):
        repo.run(fm.needs, params={"source": "x", "nope": 1})
    with pytest.raises(ValueError, match=r"params\['at'\].*tuple|use a list"):
        repo.run(fm.dated, params={"day": date(2024, 1, 1), "at": (1, 2)})
    assert repo.list_runs() == []


def test_backfill_parameters_are_checked_with_the_config(sqlite_url, make_repo):
    wf = ac.workflow(name="per_day", partitions=fm.DAYS)(lambda source, day=None: None)
    repo = make_repo([wf], storage=sqlite_url, executor=ac.InProcessExecutor(1))
    with pytest.raises(ValueError, match="needs parameter 'source'"):
        repo.backfill("per_day", partition_keys=["2024-01-01"])
    with pytest.raises(ValueError, match=r"params\['day'\]"):
        repo.backfill("per_day", partition_keys=["2024-01-01"], params={"source": "a", "day": {1, 2}})
    assert repo.list_backfills() == [] and repo.list_runs() == []
    done = repo.backfill("per_day", partition_keys=["2024-01-01"], config={"per_day": {"source": "b"}})
    assert done.status == "completed"


def test_dates_and_datetimes_arrive_as_sent(repo):
    at = datetime(2024, 3, 1, 6, 30, tzinfo=timezone.utc)
    run = repo.run(fm.dated, params={"day": date(2024, 2, 29), "at": at})
    assert run.status == "success", run.error
    assert run.params == {"day": date(2024, 2, 29), "at": at}
    assert ("INFO", "day date 2024-02-29 at datetime 2024-03-01T06:30:00+00:00 True") in messages(repo, run)


# -- workflows found by the name they were registered under -------------------------------------------
def test_lambda_and_factory_workflows_run_in_every_executor(repo):
    assert repo.backfill("noop", partition_keys=["2024-01-01", "2024-01-02"]).status == "completed"
    result = repo.backfill("made_b", partition_keys=["2024-01-03"])
    assert result.status == "completed"
    (line,) = [m for _, m in messages(repo, repo.list_runs(backfill_id=result.backfill_id)[0])]
    assert line.startswith("made_b ran in pid")


def test_a_workflow_only_a_module_level_repository_knows(sqlite_url, make_repo):
    only = fm.repository.workflow("only_in_repo")
    repo = make_repo([only], storage=sqlite_url, executor=ac.LocalExecutor(1))
    assert repo.backfill("only_in_repo", partition_keys=["2024-01-01"]).status == "completed"


def test_a_workflow_workers_cannot_find_is_refused_when_the_repository_is_built(sqlite_url):
    @ac.workflow(partitions=fm.DAYS)
    def local_only():
        pass

    with pytest.raises(ValueError, match="local_only.*InProcessExecutor"):
        ac.CodeRepository([local_only], storage=sqlite_url, executor=ac.LocalExecutor(1))
    ac.CodeRepository([local_only], storage=sqlite_url, executor=ac.InProcessExecutor(1)).close()  # threads: fine


LAMBDA_SCRIPT = textwrap.dedent("""
    import anachron as ac

    noop = ac.workflow(name="noop", partitions=ac.DailyPartitions("2024-01-01", "2024-02-01"))(lambda: None)

    if __name__ == "__main__":
        repo = ac.CodeRepository([noop], storage={url!r}, executor=ac.LocalExecutor(2))
        result = repo.backfill("noop", partition_keys=["2024-01-01", "2024-01-02", "2024-01-03"])
        print(result.status, result.completed, flush=True)
        repo.close()
""")


def test_a_lambda_workflow_in_a_script_runs_in_worker_processes(tmp_path):
    script = tmp_path / "lambdas.py"
    script.write_text(LAMBDA_SCRIPT.format(url=f"sqlite:///{tmp_path / 'l.db'}"))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "completed 3"


NO_GUARD_SCRIPT = textwrap.dedent("""
    import anachron as ac

    noop = ac.workflow(name="noop", partitions=ac.DailyPartitions("2024-01-01", "2024-02-01"))(lambda: None)
    repo = ac.CodeRepository([noop], storage={url!r}, executor=ac.LocalExecutor(1))
    result = repo.backfill("noop", partition_keys=["2024-01-01"])  # runs again in every worker: no __main__ guard
    print(result.status, result.failed, flush=True)
    print(repo.list_runs()[0].error, flush=True)
    repo.close()
""")


def test_workers_that_cannot_start_fail_the_runs_instead_of_respawning_forever(tmp_path):
    script = tmp_path / "noguard.py"
    script.write_text(NO_GUARD_SCRIPT.format(url=f"sqlite:///{tmp_path / 'g.db'}"))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=90)
    status, error = proc.stdout.strip().splitlines()
    assert status == "failed 1"
    assert "die while starting" in error and "__main__" in error
