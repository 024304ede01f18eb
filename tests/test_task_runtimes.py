"""Task runtimes (``@ac.task(config=...)``): the contract, ``ac.ProcessTask()`` and ``DaskTask()`` (on a
``LocalCluster``). Spark has its own module (test_spark_task.py: one JVM for all its tests)."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

import anachron as ac
import runtime_flows as rf


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def wait_for(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.02)


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as f:  # a zombie (dead, not yet reaped) is gone too
        return f.read().split(")")[-1].split()[0] != "Z"


def gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def messages(repo, run_id: str) -> list[tuple[str, str]]:
    return [(line["level"], line["message"]) for line in repo.run_logs(run_id)]


# -- the contract ---------------------------------------------------------------------------------------
def test_config_must_be_a_task_runtime_and_each_refuses_what_it_cannot_run():
    with pytest.raises(ValueError, match=r"task.config: expected a task runtime .*got str"):
        ac.task(config="spark")(lambda: None)

    def local():  # a fresh process could never find it
        pass

    with pytest.raises(ValueError, match=r"task.config: ProcessTask .* not defined at module level"):
        ac.task(config=ac.ProcessTask())(local)
    from anachron.plugins.dask import DaskTask
    from anachron.plugins.spark import SparkTask

    with pytest.raises(ValueError, match="SparkTask.master"):
        SparkTask(master="")
    with pytest.raises(ValueError, match="SparkTask.conf"):
        SparkTask(conf=["spark.x"])
    with pytest.raises(ValueError, match="DaskTask.address"):
        DaskTask(address=8786)
    with pytest.raises(ValueError, match="ProcessTask.stop_grace"):
        ac.ProcessTask(stop_grace=-1)


def test_the_context_says_what_a_runtime_adds_and_where():
    ctx = ac.create_context()
    with pytest.raises(AttributeError, match=r"'spark' \(set inside a task whose config is SparkTask\(\)\)"):
        ctx.run(ac.workflow(name="peek")(lambda: ac.context().spark))


# -- ProcessTask --------------------------------------------------------------------------------------
@pytest.fixture
def out(tmp_path):
    path = tmp_path / "out"
    path.mkdir()
    return path


@pytest.fixture
def local_repo(sqlite_url, make_repo):
    return make_repo(rf.WORKFLOWS, storage=sqlite_url, executor=ac.LocalExecutor(1))


def test_a_backfill_through_process_tasks_sees_each_partitions_window_and_logical_time(sqlite_url, make_repo, out):
    repo = make_repo(rf.WORKFLOWS, storage=sqlite_url, executor=ac.LocalExecutor(2))
    result = repo.backfill(rf.process_daily, partition_keys=["2024-01-03", "2024-01-04", "2024-01-05"],
                           params={"out": str(out)})
    assert result.status == "completed", [repo.get_run(r).error for r in result.run_ids]
    children = set()
    for key in ("2024-01-03", "2024-01-04", "2024-01-05"):
        seen = read(out / f"{key}.json")
        child = seen["child"]
        start = datetime.fromisoformat(key).replace(tzinfo=timezone.utc)
        end = start.replace(day=start.day + 1)
        assert child["pid"] != seen["parent"] and child["pid"] not in children  # a fresh process per call
        children.add(child["pid"])
        assert child["key"] == key and child["window"] == [start.isoformat(), end.isoformat()]
        assert abs(child["time"] - end.timestamp()) < 5  # the run's logical clock, not the wall clock
        assert child["env_time"].startswith("unix:1704")
        run_id = child["run_id"]
        assert ("STDOUT", f"printed by the child {key}") in messages(repo, run_id)
        assert ("INFO", f"logged by the child {key}") in messages(repo, run_id)


def test_a_dev_run_hands_starlark_time_to_the_subprocess():
    ctx = ac.create_context({"STARLARK_TIME": "2025-03-01T00:00:00+00:00"})
    seen = ctx.run(rf.process_unpartitioned)
    assert seen["pid"] != os.getpid()
    assert seen["now"].startswith("2025-03-01T00:00:0")
    assert ("STDOUT", "printed by the child dev") in [(level, m) for _, level, m in ctx.logs]


def test_a_timeout_kills_the_subprocess_and_its_children(local_repo, out):
    started = time.monotonic()
    run = local_repo.run(rf.process_sleeps, params={"out": str(out)})
    took = time.monotonic() - started
    assert run.status == "failed" and run.error.startswith("TaskTimeout: task child_sleeps timed out after 4 s")
    assert took < 20
    child = read(out / "child.json")
    assert gone_within(child["pid"], 2) and gone_within(child["grandchild"], 2)
    local_repo.run(rf.worker_pid, params={"out": str(out)})  # the worker was not killed for it
    assert read(out / "next.json")["pid"] == read(out / "worker.json")["pid"]


@pytest.mark.parametrize("executor", ["local", "inprocess"])
def test_canceling_kills_the_subprocess_and_keeps_the_worker(sqlite_url, make_repo, out, executor):
    repo = make_repo(rf.WORKFLOWS, storage=sqlite_url,
                     executor=ac.LocalExecutor(1) if executor == "local" else ac.InProcessExecutor(1))
    run = repo.run(rf.process_sleeps, params={"out": str(out)}, block=False)
    wait_for(out / "child.json")
    child = read(out / "child.json")
    repo.cancel_run(run.run_id)
    assert repo.wait_run(run.run_id, timeout=10).status == "canceled"
    assert gone_within(child["pid"], 3) and gone_within(child["grandchild"], 3)
    nxt = repo.run(rf.worker_pid, params={"out": str(out)})
    assert nxt.status == "success"
    assert read(out / "next.json")["pid"] == read(out / "worker.json")["pid"]  # stopped, not killed


def test_errors_in_the_subprocess_fail_the_run_saying_what_happened(local_repo):
    raised = local_repo.run(rf.process_fails, params={"how": "raise"})
    assert raised.status == "failed" and raised.error.startswith("ValueError: bad input in the child")
    assert "raised in task child_fails's runtime" in raised.error and 'raise ValueError("bad input' in raised.error
    died = local_repo.run(rf.process_fails, params={"how": "exit"})
    assert died.status == "failed"
    assert died.error.startswith("ProcessTaskDied: task child_fails: its process") and "exit code 3" in died.error


# -- DaskTask -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def cluster():
    """One LocalCluster for the module; worker processes started after this see its address."""
    from distributed import Client, LocalCluster

    cluster = LocalCluster(n_workers=1, threads_per_worker=2, processes=True, dashboard_address=":0")
    os.environ["ANACHRON_TEST_DASK"] = cluster.scheduler_address
    client = Client(cluster)
    yield client
    os.environ.pop("ANACHRON_TEST_DASK", None)
    client.close()
    cluster.close()


def anachron_keys(client) -> dict[str, str]:
    """The scheduler's tasks submitted by DaskTask calls, with their state."""
    return client.run_on_scheduler(lambda dask_scheduler: {
        str(k): t.state for k, t in dask_scheduler.tasks.items() if str(k).startswith("anachron-task-")})


def test_a_backfill_through_dask_tasks_runs_them_on_the_cluster(cluster, local_repo, out):
    result = local_repo.backfill(rf.dask_daily, partition_keys=["2024-01-03", "2024-01-04"],
                                 params={"out": str(out)})
    assert result.status == "completed", [local_repo.get_run(r).error for r in result.run_ids]
    dask_workers = set(cluster.scheduler_info()["workers"])
    for key in ("2024-01-03", "2024-01-04"):
        seen = read(out / f"{key}.json")
        task = seen["task"]
        assert task["dask_worker"] in dask_workers and task["pid"] != seen["parent"]
        end = datetime.fromisoformat(key).replace(tzinfo=timezone.utc).replace(day=int(key[-2:]) + 1)
        assert task["key"] == key and task["window"][1] == end.isoformat()
        assert abs(task["time"] - end.timestamp()) < 5
        assert ("STDOUT", f"printed on dask {key}") in messages(local_repo, task["run_id"])
        assert ("INFO", f"logged on dask {key}") in messages(local_repo, task["run_id"])
    assert anachron_keys(cluster) == {}  # results fetched, futures released


def test_canceling_cancels_the_dask_future_and_the_task_sees_it(cluster, local_repo, out):
    run = local_repo.run(rf.dask_spinning, params={"out": str(out), "name": "cancel"}, block=False)
    wait_for(out / "cancel.started")
    assert list(anachron_keys(cluster).values()) == ["processing"]
    local_repo.cancel_run(run.run_id)
    assert local_repo.wait_run(run.run_id, timeout=10).status == "canceled"
    wait_for(out / "cancel.stopped", timeout=10)
    assert read(out / "cancel.stopped")["canceled"] is True  # the Dask side saw its future canceled
    deadline = time.monotonic() + 5
    while anachron_keys(cluster):  # the scheduler forgot the canceled future
        assert time.monotonic() < deadline, anachron_keys(cluster)
        time.sleep(0.05)


def test_a_timeout_cancels_the_dask_future(cluster, local_repo, out):
    run = local_repo.run(rf.dask_spinning, params={"out": str(out), "name": "timeout", "timeout": True})
    assert run.status == "failed"
    assert run.error.startswith("TaskTimeout: task dask_spins_briefly timed out after 2 s (Dask future anachron-task-")
    wait_for(out / "timeout.stopped", timeout=10)
    stopped = read(out / "timeout.stopped")
    assert stopped["canceled"] is True and stopped["after"] < 5


def test_dask_task_without_an_address_uses_the_dask_executors_cluster(cluster, sqlite_url, make_repo, out):
    """Under DaskExecutor a DaskTask() with no address submits to the cluster running the run (one thread runs
    the run, the other its task: the cluster has two)."""
    address = cluster.scheduler.address
    os.environ.pop("ANACHRON_TEST_DASK")  # the workers' DaskTask gets no address
    try:
        repo = make_repo(rf.WORKFLOWS, storage=sqlite_url, executor=ac.DaskExecutor(address, max_workers=1))
        run = repo.run(rf.dask_daily, partition_key="2024-01-09", params={"out": str(out)})
    finally:
        os.environ["ANACHRON_TEST_DASK"] = address
    assert run.status == "success", run.error
    seen = read(out / "2024-01-09.json")
    assert seen["task"]["dask_worker"] in set(cluster.scheduler_info()["workers"])


# -- work that does not stop -------------------------------------------------------------------------
@pytest.mark.parametrize("how", ["cancel", "timeout"])
def test_work_a_runtime_cannot_stop_is_ended_by_killing_its_worker(local_repo, out, how):
    """A runtime of one's own (the TaskRuntime contract) whose stop does nothing: after its stop_grace the
    LocalExecutor kills the worker, so the work ends all the same."""
    if how == "cancel":
        run = local_repo.run(rf.stubborn, params={"out": str(out)}, block=False)
        wait_for(out / "worker.json")
        local_repo.cancel_run(run.run_id)
        assert local_repo.wait_run(run.run_id, timeout=10).status == "canceled"
    else:
        run = local_repo.run(rf.stubborn, params={"out": str(out), "timeout": True})
        assert run.status == "failed" and "outlived its timeout" in run.error
    assert gone_within(read(out / "worker.json")["pid"], 10)
