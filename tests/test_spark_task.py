"""``SparkTask`` on a local master (Debian's JRE): one repository and one worker process for the module, so
one JVM serves every test, as it serves every run of a worker in production."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

import anachron as ac

pytest.importorskip("pyspark")
if shutil.which("java") is None:
    if os.environ.get("CI"):
        pytest.fail("Spark's tests need a Java runtime: .ci/run installs default-jre-headless", pytrace=False)
    pytest.skip("no Java runtime (apt-get install default-jre-headless)", allow_module_level=True)

import spark_flows as sf  # noqa: E402 - after the checks above

ROOT = Path(__file__).parent.parent
JVM_START = 180  # seconds a first run may take on a loaded 2-core machine (the JVM starts)


@pytest.fixture(scope="module")
def spark_repo(tmp_path_factory):
    """One worker process (so one JVM) for the whole module."""
    db = tmp_path_factory.mktemp("spark") / "anachron.db"
    repo = ac.CodeRepository(sf.WORKFLOWS, storage=f"sqlite:///{db}", executor=ac.LocalExecutor(1))
    yield repo
    repo.close()


@pytest.fixture(scope="module")
def first(spark_repo, tmp_path_factory):
    """A backfill of four days: the session those runs used (the other tests check it is still the one)."""
    out = tmp_path_factory.mktemp("backfill")
    result = spark_repo.backfill(sf.spark_daily, partition_keys=["2024-01-02", "2024-01-03", "2024-01-04",
                                                                 "2024-01-31"], params={"out": str(out)})
    return result, out


def read(path: Path) -> dict:
    return json.loads(path.read_text())


def wait_for(path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def probe(repo, tmp_path, group: str) -> dict:
    """Spark's status tracker, read by a run on the same worker (and so the same SparkSession)."""
    run = repo.run(sf.spark_probe, params={"out": str(tmp_path), "group": group})
    assert run.status == "success", run.error
    return read(tmp_path / f"probe-{group}.json")


def test_a_backfill_loads_each_partitions_window_on_one_reused_session(spark_repo, first):
    result, out = first
    assert result.status == "completed", [spark_repo.get_run(r).error for r in result.run_ids]
    seen = {key: read(out / f"{key}.json") for key in ("2024-01-02", "2024-01-03", "2024-01-04", "2024-01-31")}
    for key, got in seen.items():
        day = int(key[-2:]) - 1  # hours 24*day .. 24*day+23 of January
        assert got["events"] == 24 and got["total"] == sum(range(24 * day, 24 * day + 24)), key
    assert len({got["application_id"] for got in seen.values()}) == 1  # one SparkContext ...
    assert {got["sessions_started"] for got in seen.values()} == {1}  # ... started once, by the first run
    assert len({got["pid"] for got in seen.values()}) == 1


def test_cancel_cancels_the_runs_spark_job_group_and_keeps_the_session(spark_repo, first, tmp_path):
    run = spark_repo.run(sf.spark_long, params={"out": str(tmp_path), "name": "cancel"}, block=False)
    wait_for(tmp_path / "cancel.started", JVM_START)  # Spark is running the run's job
    canceled_at = time.monotonic()
    spark_repo.cancel_run(run.run_id)
    assert spark_repo.wait_run(run.run_id, timeout=10).status == "canceled"
    status = probe(spark_repo, tmp_path, run.run_id)  # runs once the canceled run has left the worker
    assert time.monotonic() - canceled_at < 15
    assert status["jobs"] and set(status["jobs"].values()) == {"FAILED"}  # Spark's word for a canceled job
    assert status["active"] == []
    assert status["application_id"] == read(first[1] / "2024-01-02.json")["application_id"]
    assert status["sessions_started"] == 1  # the worker and its session survived the cancel


def test_a_timeout_cancels_the_job_group_and_fails_the_run(spark_repo, first, tmp_path):
    started = time.monotonic()
    run = spark_repo.run(sf.spark_long, params={"out": str(tmp_path), "name": "timeout", "timeout": True})
    assert run.status == "failed"
    assert run.error.startswith(f"TaskTimeout: task long_job_briefly timed out after 3 s (Spark job group "
                                f"{run.run_id} canceled)")
    assert time.monotonic() - started < 15
    status = probe(spark_repo, tmp_path, run.run_id)
    assert status["jobs"] and set(status["jobs"].values()) == {"FAILED"} and status["active"] == []
    assert status["sessions_started"] == 1


def test_a_failing_job_fails_the_run_with_sparks_short_message(spark_repo, first):
    run = spark_repo.run(sf.spark_fails)
    assert run.status == "failed"
    assert run.error.startswith("SparkTaskError: SparkRuntimeException: [USER_RAISED_EXCEPTION] boom in the job")
    assert len(run.error.splitlines()) < 30 and "at org.apache.spark" not in run.error
    logged = [line["message"] for line in spark_repo.run_logs(run.run_id) if line["level"] == "ERROR"]
    full = next(m for m in logged if m.startswith("task failing_job: Spark failed:"))
    assert "JVM stacktrace:" in full and "at org.apache.spark" in full  # the whole of it, in the run's log


def test_a_jvm_that_died_is_replaced_by_the_next_run(spark_repo, first, tmp_path):
    """Last in the module: the JVM is killed (as by the OOM killer); the worker lives on and its next Spark run
    starts a new session instead of failing on a dead gateway."""
    assert spark_repo.run(sf.spark_loses_its_jvm).status == "success"
    again = spark_repo.run(sf.spark_daily, partition_key="2024-01-05", params={"out": str(tmp_path)})
    assert again.status == "success", again.error
    seen, before = read(tmp_path / "2024-01-05.json"), read(first[1] / "2024-01-02.json")
    assert seen["events"] == 24 and seen["sessions_started"] == 2 and seen["pid"] == before["pid"]
    assert seen["application_id"] != before["application_id"]
    assert any("SparkSession is gone (exit status -9)" in line["message"] for line in spark_repo.run_logs(again.run_id))


def test_the_uniflow_example_dev_run_loads_exactly_its_day(tmp_path):
    """examples/uniflow_spark.py as a user runs it: ``ctx.run`` of one day's partition (``ac.time()`` is the end of
    its window, as Uniflow's STARLARK_TIME was) loads exactly that day."""
    done = subprocess.run([sys.executable, str(ROOT / "examples" / "uniflow_spark.py"), "dev-run"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=JVM_START)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "dev run at STARLARK_TIME 2024-01-16:" in done.stdout
    day = read(tmp_path / ".anachron" / "uniflow" / "daily" / "2024-01-15.json")
    import csv

    with open(tmp_path / ".anachron" / "uniflow" / "events.csv") as f:
        rows = [r for r in csv.DictReader(f) if 1705276800 <= float(r["ts"]) < 1705363200]  # 2024-01-15, UTC
    assert day["events"] == len(rows) > 0
    assert day["users"] == len({r["user"] for r in rows})
    assert day["revenue"] == pytest.approx(sum(float(r["amount"]) for r in rows), abs=0.01)
