"""Example: a daily sales rollup, backfilled over a quarter.

    ./dev example            # or: python examples/daily_etl.py

Runs on the embedded default: a SQLite file (.anachron/example.db) and local worker processes.
Run it twice: the second time the backfill's idempotency key returns the finished backfill at once.
"""

from __future__ import annotations

import random
import sys
import time

import anachron as ac

DAYS = ac.DailyPartitions(start="2024-01-01", end="2025-01-01", timezone="UTC")


@ac.task(retries=2, retry_delay=0.1)
def extract(day: str) -> list[float]:
    """Pretend to read the day's orders (deterministic per day)."""
    rng = random.Random(day)
    time.sleep(0.02)
    return [round(rng.uniform(5, 500), 2) for _ in range(rng.randint(50, 150))]


@ac.task(pool="warehouse")
def load(day: str, total: float, orders: int) -> None:
    ac.context().log.info("%s: %d orders, %.2f total", day, orders, total)


@ac.workflow(partitions=DAYS, tags={"team": "analytics"})
def daily_sales():
    ctx = ac.context()
    day = ctx.partition_key
    # ac.now() is the *logical* time: the end of the day being processed, not today.
    assert ac.now() >= ctx.partition_window[1]
    amounts = extract(day)
    load(day, sum(amounts), len(amounts))
    return len(amounts)


repo = ac.CodeRepository(
    workflows=[daily_sales],
    storage="sqlite:///.anachron/example.db",
    executor=ac.LocalExecutor(max_workers=2),
    run_queue=ac.RunQueueConfig(pools={"warehouse": 1}),
)


def main() -> int:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    result = repo.backfill(daily_sales, start="2024-01-01", end="2024-03-31", max_concurrency=4,
                           idempotency_key="example-q1-2024", block=False)
    print(f"backfill {result.backfill_id}: {result.num_partitions} partitions in {result.num_runs} runs")
    columns = (TextColumn("[bold]daily_sales Q1 2024"), BarColumn(), MofNCompleteColumn(),
               TextColumn("failed {task.fields[failed]} · running {task.fields[running]}"
                          " · queued {task.fields[queued]}"),
               TimeRemainingColumn())
    with Progress(*columns) as progress:
        task = progress.add_task("backfill", total=result.num_partitions, failed=0, running=0, queued=0)
        while True:
            status = repo.get_backfill(result.backfill_id)
            progress.update(task, completed=status.completed_partitions + status.failed_partitions,
                            failed=status.failed_partitions, running=status.running_runs, queued=status.queued_runs)
            if status.is_finished:
                break
            time.sleep(0.2)
    status = repo.wait_backfill(result.backfill_id)
    print(f"{status.status}: {status.completed_partitions} done, {status.failed_partitions} failed")
    first = repo.get_run(status.run_ids[0])
    print(f"first run: {first.partition_key} logical time {first.logical_time.isoformat()}")
    for line in repo.run_logs(first.run_id):
        print(f"  log: {line['message']}")
    repo.close()
    return 0 if status.status == "completed" else 1


if __name__ == "__main__":
    sys.exit(main())
