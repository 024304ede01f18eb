"""DaskExecutor on a real ``LocalCluster`` of worker processes (SPEC §2, §7): runs execute on Dask workers,
in child processes that a cancel or a timeout really stops; a Dask worker killed mid-run makes its run
retried as a new attempt, with exactly one success."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import anachron as ac
import flows_dask as fd
from helpers import alive, wait_for

TESTS = Path(__file__).parent
WORKFLOWS = [fd.where, fd.beating, fd.timing_out, fd.dies_once, fd.environment]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    import dask
    from distributed import LocalCluster

    # what DaskExecutor(address=None) sets for the cluster it makes, set here for one the tests share
    with dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        cluster = LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                               silence_logs=40)
    yield cluster
    cluster.close()


def worker_pids(cluster: Any) -> set[int]:
    from distributed import Client

    with Client(cluster, set_as_default=False) as client:
        return set(client.run(os.getpid).values())


def pids_of(repo: ac.CodeRepository, run_id: str) -> tuple[int, int]:
    for line in repo.run_logs(run_id):
        if line["message"].startswith("pids "):
            pid, ppid = line["message"].split()[1:]
            return int(pid), int(ppid)
    raise AssertionError(f"run {run_id} logged no pids")


def test_backfill_runs_on_dask_workers(cluster, storage_url, make_repo):
    repo = make_repo(WORKFLOWS, storage=storage_url, executor=ac.DaskExecutor(cluster))
    result = repo.backfill(fd.where, partition_keys=[f"2024-02-{d:02d}" for d in range(1, 29)], max_concurrency=8)
    assert result.status == "completed" and result.completed == 28
    dask_workers = worker_pids(cluster)
    ran = [pids_of(repo, run_id) for run_id in result.run_ids]
    assert all(ppid in dask_workers and pid != os.getpid() for pid, ppid in ran)
    assert {r.status for r in repo.list_runs(fd.where, limit=100)} == {"success"}


def test_a_cluster_of_its_own(sqlite_url, make_repo):
    executor = ac.DaskExecutor(n_workers=1)
    repo = make_repo(WORKFLOWS, storage=sqlite_url, executor=executor)
    assert repo.run(fd.where, partition_key="2024-03-01").status == "success"
    assert executor.max_workers == 1  # the cluster's threads
    repo.close()
    assert executor._cluster is None  # closed with the repository


def test_cancel_stops_a_running_run(cluster, sqlite_url, make_repo, tmp_path):
    repo = make_repo(WORKFLOWS, storage=sqlite_url, executor=ac.DaskExecutor(cluster))
    heart = tmp_path / "heart"
    run = repo.run(fd.beating, partition_key="2024-01-01", params={"heart": str(heart)}, block=False)
    assert wait_for(lambda: heart.exists() and heart.read_text(), timeout=30)
    pid = int(heart.read_text())
    assert repo.cancel_run(run.run_id)
    assert repo.wait_run(run.run_id, timeout=20).status == "canceled"
    assert wait_for(lambda: not alive(pid), timeout=10), "the run's process still runs"
    beat = heart.stat().st_mtime
    time.sleep(0.3)
    assert heart.stat().st_mtime == beat  # its code stopped


def test_a_task_timeout_stops_the_run(cluster, sqlite_url, make_repo):
    repo = make_repo(WORKFLOWS, storage=sqlite_url, executor=ac.DaskExecutor(cluster))
    started = time.monotonic()
    run = repo.run(fd.timing_out)
    assert run.status == "failed" and "timed out" in (run.error or "")
    assert time.monotonic() - started < 15


def test_a_dask_worker_killed_mid_run_is_retried_once(cluster, storage_url, make_repo, tmp_path):
    repo = make_repo(WORKFLOWS, storage=storage_url, executor=ac.DaskExecutor(cluster))
    marker = tmp_path / "marker"
    run = repo.run(fd.dies_once, partition_key="2024-01-01", params={"marker": str(marker)}, block=False)
    assert wait_for(lambda: marker.exists() and marker.read_text(), timeout=30)
    dask_worker = int(marker.read_text())
    os.kill(dask_worker, signal.SIGKILL)
    final = repo.wait_run(run.run_id, timeout=60)
    assert final.status == "success" and final.attempt == 2
    assert Path(str(marker) + ".done").read_text().split() == ["2"]  # ran to the end once
    assert [r.status for r in repo.list_runs(fd.dies_once)] == ["success"]
    assert wait_for(lambda: len(worker_pids(cluster)) == 2, timeout=30)  # the nanny replaced the worker


def test_runs_on_dask_workers_do_not_see_the_servers_secrets(cluster, sqlite_url, make_repo):
    """A Dask worker started with the server's secrets in its environment: the runs it executes see none."""
    from distributed import Client

    secrets = {"ANACHRON_API_TOKEN": "s3cret-token", "PGPASSWORD": "pg-pass",
               "ANACHRON_DATABASE_URL": "postgresql+psycopg://me:db-pass@db/prod"}
    with Client(cluster, set_as_default=False) as client:
        client.run(lambda: os.environ.update(secrets))
        try:
            repo = make_repo(WORKFLOWS, storage=sqlite_url, executor=ac.DaskExecutor(cluster))
            run = repo.run(fd.environment, environ={"RUN_GIVEN": "given"})
            assert run.status == "success", run.error
            lines = [line["message"] for line in repo.run_logs(run.run_id)]
        finally:
            client.run(lambda: [os.environ.pop(name, None) for name in secrets])
    assert lines == ["ANACHRON_API_TOKEN unset", "PGPASSWORD unset",
                     "ANACHRON_DATABASE_URL=postgresql+psycopg://me@db/prod", "RUN_GIVEN=given"]

