"""Workflows whose tasks run on Spark (``SparkTask``, local master): one small aggregation per partition, a job
that runs until it is stopped, a failing job, and a probe that reads Spark's status tracker.

Runs write what they saw to files under the directory they are given (``out``), read by the tests.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import anachron as ac
from anachron.plugins.spark import SparkTask, session_info

DAYS = ac.DailyPartitions(start="2024-01-01", end="2024-02-01", timezone="UTC")
SPARK = SparkTask(master="local[2]", conf={"spark.ui.enabled": "false", "spark.sql.shuffle.partitions": "2"})
JANUARY_START = 1704067200  # 2024-01-01T00:00:00Z


@ac.task(config=SPARK)
def load_window(start_ts: float, end_ts: float) -> dict:
    """One event per hour of January (value = its hour number): load exactly the window's events."""
    from pyspark.sql import functions as F

    spark = ac.context().spark
    events = spark.range(0, 31 * 24).selectExpr(f"{JANUARY_START} + id * 3600 AS ts", "id AS v")
    row = events.where((F.col("ts") >= start_ts) & (F.col("ts") < end_ts)) \
        .agg(F.count("*").alias("n"), F.sum("v").alias("total")).collect()[0]
    return {"events": row["n"], "total": row["total"], "pid": os.getpid(), **session_info()}


@ac.workflow(partitions=DAYS)
def spark_daily(out: str) -> dict:
    start, end = ac.context().partition_window  # the partition's window, never the wall clock
    seen = load_window(start.timestamp(), end.timestamp())
    Path(out, f"{ac.context().partition_key}.json").write_text(json.dumps(seen))
    return seen


def _runs_until_stopped(out: str, name: str) -> None:
    """A job that would run for hours; says when Spark has it running (its job group has a job)."""
    spark = ac.context().spark
    group = ac.context().run_id
    tracker = spark.sparkContext.statusTracker()

    def announce() -> None:
        while not tracker.getJobIdsForGroup(group):
            time.sleep(0.05)
        Path(out, f"{name}.started").write_text(json.dumps({"group": group}))

    threading.Thread(target=announce, daemon=True).start()
    spark.range(10**13).selectExpr("sum(id % 7)").collect()


long_job = ac.task(config=SPARK, name="long_job")(_runs_until_stopped)
long_job_briefly = ac.task(config=SPARK, timeout=3, name="long_job_briefly")(_runs_until_stopped)


@ac.workflow()
def spark_long(out: str, name: str, timeout: bool = False) -> None:
    (long_job_briefly if timeout else long_job)(out, name)


@ac.task(config=SPARK)
def job_group_status(group: str) -> dict:
    tracker = ac.context().spark.sparkContext.statusTracker()
    jobs = {str(j): tracker.getJobInfo(j).status for j in tracker.getJobIdsForGroup(group)}
    return {"jobs": jobs, "active": list(tracker.getActiveJobsIds()), "pid": os.getpid(), **session_info()}


@ac.workflow()
def spark_probe(out: str, group: str) -> None:
    Path(out, f"probe-{group}.json").write_text(json.dumps(job_group_status(group)))


@ac.task(config=SPARK)
def failing_job() -> None:
    ac.context().spark.sql("SELECT raise_error('boom in the job')").collect()


@ac.workflow()
def spark_fails() -> None:
    failing_job()


@ac.task(config=SPARK)
def kill_the_jvm() -> None:
    """As the kernel's OOM killer would."""
    import signal

    from pyspark import SparkContext

    proc = SparkContext._gateway.proc
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()


@ac.workflow()
def spark_loses_its_jvm() -> None:
    kill_the_jvm()


WORKFLOWS = [spark_daily, spark_long, spark_probe, spark_fails, spark_loses_its_jvm]
