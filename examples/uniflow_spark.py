"""Example: Uniflow's ``SparkTask`` pattern on anachron — one day of events per run, backfilled over a month.

    python examples/uniflow_spark.py            # a dev run at STARLARK_TIME, then a backfill of January 2024
    python examples/uniflow_spark.py dev-run    # only the dev run (one day)

Needs ``pip install anachron[spark]`` and a Java runtime (Spark 4: Java 17+; Debian: default-jre-headless).
A Uniflow workflow reads::

    @uniflow.task(config=SparkTask())
    def load_data(start_ts, end_ts): ...

    @uniflow.workflow()
    def main():
        end_ts = time()                     # STARLARK_TIME in a dev run, the trigger time in production
        return load_data(end_ts - 86400, end_ts)

Here it is the same, with anachron's names; what anachron adds is the partition grid (``DailyPartitions``), so a
month of history is one backfill, each run's ``ac.time()`` being the end of its day.
"""

from __future__ import annotations

import csv
import json
import os
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import anachron as ac
from anachron.plugins.spark import SparkTask

DATA = Path(".anachron/uniflow")
EVENTS = DATA / "events.csv"  # made up once by make_events(): a month of purchase events
DAYS = ac.DailyPartitions(start="2024-01-01", end="2024-02-01", timezone="UTC")
SPARK = SparkTask(master="local[2]", conf={
    "spark.sql.shuffle.partitions": "2",  # small data: two shuffle partitions, not Spark's default 200
    "spark.ui.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
})


@ac.task(config=SPARK, retries=1, timeout=600)
def load_data(start_ts: float, end_ts: float) -> dict[str, float]:
    """Load exactly the window ``[start_ts, end_ts)`` of events and summarise it, on Spark."""
    from pyspark.sql import functions as F

    spark = ac.context().spark  # this worker's SparkSession, reused by every run it executes
    events = spark.read.schema("ts DOUBLE, user STRING, amount DOUBLE").csv(str(EVENTS), header=True)
    window = events.where((F.col("ts") >= start_ts) & (F.col("ts") < end_ts))
    row = window.agg(F.count("*").alias("events"), F.countDistinct("user").alias("users"),
                     F.round(F.sum("amount"), 2).alias("revenue")).collect()[0]
    return {"events": row["events"], "users": row["users"], "revenue": row["revenue"] or 0.0}


@ac.workflow(partitions=DAYS)
def daily_events() -> dict[str, float]:
    end_ts = ac.time()            # the logical time: the end of the day this run stands for (never the wall clock)
    start_ts = end_ts - 24 * 3600
    summary = load_data(start_ts, end_ts)
    day = datetime.fromtimestamp(start_ts, timezone.utc).date().isoformat()
    out = DATA / "daily" / f"{day}.json"  # one file per day, overwritten by a re-run: idempotent
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"day": day, **summary}))
    ac.context().log.info("%s: %s", day, summary)
    return summary


def make_events(path: Path = EVENTS) -> None:
    """A month of made-up purchases, one every 7 minutes or so (written once, atomically)."""
    if path.exists():
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(2024)
    t = datetime(2024, 1, 1, tzinfo=timezone.utc)
    tmp = path.with_suffix(".tmp")
    with tmp.open("w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["ts", "user", "amount"])
        while t < datetime(2024, 2, 1, tzinfo=timezone.utc):
            out.writerow([t.timestamp(), f"u{rng.randint(1, 300)}", round(rng.uniform(1, 200), 2)])
            t += timedelta(seconds=rng.randint(60, 780))
    os.replace(tmp, path)


repo = ac.CodeRepository(workflows=[daily_events], storage="sqlite:///.anachron/uniflow.db",
                         executor=ac.LocalExecutor(max_workers=2))


def dev_run() -> None:
    # Uniflow's ``STARLARK_TIME=2024-01-16 … ctx.run(main)`` loaded the day before; here the same call runs the
    # day that ended by STARLARK_TIME, the partition 2024-01-15, and time() is the end of its window
    ctx = ac.create_context({"STARLARK_TIME": "2024-01-16T00:00:00+00:00"})
    print("dev run at STARLARK_TIME 2024-01-16:", ctx.run(daily_events))


def main(argv: list[str]) -> int:
    make_events()
    dev_run()
    if argv[1:2] == ["dev-run"]:
        return 0
    result = repo.backfill(daily_events, start="2024-01-01", end="2024-01-31", max_concurrency=2,
                           reprocess="failed_and_missing")
    print(f"backfill of January 2024: {result.status}, {result.completed} days done, {result.failed} failed")
    for day in ("2024-01-01", "2024-01-15", "2024-01-31"):
        summary = json.loads((DATA / "daily" / f"{day}.json").read_text())
        print(f"  {day}: {summary['events']} events, {summary['users']} users, revenue {summary['revenue']}")
    repo.close()
    return 0 if result.status == "completed" else 1


if __name__ == "__main__":  # worker processes import this module to find its workflows
    sys.exit(main(sys.argv))
