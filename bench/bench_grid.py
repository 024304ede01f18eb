"""The partition grid of a 1,000,000-run backfill (``repo.backfill_grid``), on SQLite and PostgreSQL.

    .venv/bin/python bench/bench_grid.py                  # both databases
    .venv/bin/python bench/bench_grid.py sqlite           # one (sqlite | postgres)
    .venv/bin/python bench/bench_grid.py sqlite workflow  # also time repo.partition_grid (seconds: see README)

The backfill is planned for real (``noop_multi``: 10,000 days × 100 regions, multi-run, stored with
``coordinate=False``); its runs are not run but written straight through ``Session.insert_runs`` in bulk,
as the coordinator would have left them mid-way: the first 990,000 created, of which 5,000 (spread at
random) failed, 500 canceled, 64 running and 16 queued, the rest succeeded; 10,000 not created yet.
Each figure is the median of 15 calls after one warm-up, in one process per database. PostgreSQL is timed
on the freshly written table and again after ``VACUUM ANALYZE`` (index-only scans need the visibility map).
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
TOTAL = 1_000_000
CREATED = 990_000
FAILED, CANCELED, RUNNING, QUEUED = 5_000, 500, 64, 16
CHUNK = 50_000
CALLS = 15


def _median_ms(fn, calls: int = CALLS) -> float:
    fn()  # warm-up: the plan's key formatting tables, the statement's first planning
    times = []
    for _ in range(calls):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1000


def _fill(repo, backfill_id: str) -> float:
    """Write the backfill's runs as a coordinator would have left them; returns the seconds it took."""
    from sqlalchemy import update

    from anachron.engine.led import rebuild_plan
    from anachron.planning import run_idempotency_key
    from anachron.records import NewRun
    from anachron.storage.schema import backfills

    storage = repo.storage
    record = storage.run(lambda s: s.get_backfill(backfill_id), write=False)
    _, plan = rebuild_plan(record, repo.workflow_registry)
    assert plan.num_runs == TOTAL, plan.num_runs
    rng = random.Random(7)
    odd = rng.sample(range(CREATED - RUNNING - QUEUED), FAILED + CANCELED)
    status = dict.fromkeys(range(CREATED), "success")
    status.update((i, "failed") for i in odd[:FAILED])
    status.update((i, "canceled") for i in odd[FAILED:])
    status.update((i, "running") for i in range(CREATED - RUNNING - QUEUED, CREATED - QUEUED))
    status.update((i, "queued") for i in range(CREATED - QUEUED, CREATED))
    tags = json.dumps({"anachron/backfill": backfill_id}, separators=(",", ":"))
    started = time.perf_counter()
    for first in range(0, CREATED, CHUNK):
        rows = [NewRun(f"{backfill_id[:16]}{i:016x}", "noop_multi", status[i], run.keys, "{}", tags, -10,
                       backfill_id, run_idempotency_key(backfill_id, run.keys), 1, 0.0, None, None, None, 1.0, None,
                       "{}", None, plan_index=i)
                for i, run in enumerate(plan.runs(first, min(CREATED, first + CHUNK)), first)]
        storage.run(lambda s, rows=rows: s.insert_runs(rows))
    storage.run(lambda s: s.conn.execute(update(backfills).where(backfills.c.backfill_id == backfill_id).values(
        status="in_progress", cursor=CREATED, completed=CREATED - FAILED - CANCELED - RUNNING - QUEUED,
        failed=FAILED)))
    return time.perf_counter() - started


def measure(url: str, vacuum: bool, workflow: bool) -> dict:
    import anachron as ac
    from noop_flows import noop_multi

    repo = ac.CodeRepository([noop_multi], storage=url, executor=ac.InProcessExecutor(1))
    planned = repo.backfill(noop_multi, partition_range=ac.PartitionKeyRange.multi(
        {"date": ("1990-01-01", "2017-05-18")}), block=False, coordinate=False)
    bid = planned.backfill_id
    out: dict = {"fill_seconds": _fill(repo, bid)}
    started = time.perf_counter()
    grid = repo.backfill_grid(bid)  # the first call: the plan rebuilt, its keys looked up (then remembered)
    out["first_call_ms"] = (time.perf_counter() - started) * 1000
    assert grid.total == TOTAL and len(grid.cells) == 2000 and sum(grid.counts.values()) == TOTAL
    assert grid.counts == {"success": CREATED - FAILED - CANCELED - RUNNING - QUEUED, "failed": FAILED,
                           "canceled": CANCELED, "running": RUNNING, "queued": QUEUED,
                           "pending": TOTAL - CREATED}, grid.counts
    assert grid.cells[0].first_key == "date=1990-01-01|region=r000", grid.cells[0]

    def timings(suffix: str) -> None:
        size = grid.cell_size
        out[f"grid_2000_ms{suffix}"] = _median_ms(lambda: repo.backfill_grid(bid))
        out[f"grid_200_ms{suffix}"] = _median_ms(lambda: repo.backfill_grid(bid, max_cells=200))
        out[f"query_only_ms{suffix}"] = _median_ms(lambda: repo.storage.run(
            lambda s: s.backfill_grid_counts(bid, size, CREATED), write=False))

    timings("")
    if vacuum:
        from sqlalchemy import text

        with repo.storage.db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE anachron_runs"))
        timings("_after_vacuum")
    if workflow:
        started = time.perf_counter()
        wgrid = repo.partition_grid(noop_multi)
        out["partition_grid_seconds"] = time.perf_counter() - started
        assert wgrid.counts["missing"] == len(noop_multi.partitions.get_partition_keys()) - CREATED + CANCELED
    repo.close()
    return out


def run_sqlite(workflow: bool) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        return measure(f"sqlite:///{tmp}/bench.db", vacuum=False, workflow=workflow)


def run_postgres(workflow: bool) -> dict:
    from sqlalchemy import create_engine, text

    admin_url = os.environ.get("ANACHRON_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    name = f"anachron_bench_grid_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        return measure(f"{admin_url.rsplit('/', 1)[0]}/{name}", vacuum=True, workflow=workflow)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


CASES = {"sqlite": run_sqlite, "postgres": run_postgres}


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        from bench_backfill import _strftime_loop_ms  # the machine's speed at the moment (see bench/README.md)

        result = CASES[argv[1]](workflow="workflow" in argv[2:])
        result["strftime_loop_ms"] = _strftime_loop_ms()
        print(json.dumps(result))
        return
    workflow = "workflow" in argv
    names = [a for a in argv if a in CASES] or list(CASES)
    for name in names:
        args = [sys.executable, __file__, "--one", name] + (["workflow"] if workflow else [])
        out = subprocess.run(args, capture_output=True, text=True, cwd=HERE)
        if out.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{out.stderr}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name}: " + ", ".join(f"{k}={v:,.1f}" for k, v in result.items()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
