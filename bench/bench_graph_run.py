"""Graph backfills executed (issue 15): a three-level graph of no-op runs against a one-workflow backfill of as
many runs, and a ``depends_on_past`` chain.

    .venv/bin/python bench/bench_graph_run.py                  # every case, 3 fresh processes each, medians
    .venv/bin/python bench/bench_graph_run.py graph_inprocess  # one case

- ``graph_inprocess``: 2024's 8,736 hours → 364 days → 52 weeks (9,152 runs, mappings inferred), one backfill
  with ``include="downstream"``, ``InProcessExecutor(4)``, ``max_concurrency=64``, SQLite; then, in the same
  process, a one-workflow backfill of 9,152 hourly no-op runs the same way: runs per second of each, and
  ``ratio`` = graph / one workflow (target ≥ 0.5).
- ``graph_local4``: the graph through ``LocalExecutor(4)`` (``max_concurrency=4``), against the one-workflow
  backfill through it too.
- ``graph_postgres``: ``graph_inprocess`` on a fresh PostgreSQL database (``ANACHRON_BENCH_PG``).
- ``chain``: a 365-key daily ``depends_on_past`` chain, in-process: each key starts when the one before it has
  succeeded (target < 1 s in all).
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
CASES = ("graph_inprocess", "graph_local4", "graph_postgres", "chain")
RUNS = 8_736 + 364 + 52  # 2024-01-01 .. 2024-12-29: hours, days, weeks


def _strftime_loop_ms() -> float:
    from bench_backfill import _strftime_loop_ms as loop

    return loop()


def _timed(repo, *args, **kwargs) -> tuple[float, object]:
    started = time.perf_counter()
    result = repo.backfill(*args, **kwargs)
    return time.perf_counter() - started, result


def graph_against_one(url: str, local: bool, concurrency: int) -> dict:
    import anachron as ac
    from graph_noop_flows import daily, hourly_alone, raw, weekly

    executor = ac.LocalExecutor(4) if local else ac.InProcessExecutor(4)
    repo = ac.CodeRepository([raw, daily, weekly, hourly_alone], storage=url, executor=executor)
    repo.backfill(hourly_alone, partition_keys=["2020-01-01T00:00"])  # warm: storage, imports, workers
    graph_s, graph = _timed(repo, raw, start="2024-01-01", end="2024-12-29T23:00", include="downstream",
                            max_concurrency=concurrency)
    assert graph.status == "completed" and graph.num_runs == RUNS, (graph.status, graph.num_runs)
    hours = hourly_alone.partitions.get_partition_keys()
    alone_keys = ac.PartitionKeyRange.single(hours[0], hours[RUNS - 1])  # as many runs, from 2020
    alone_s, alone = _timed(repo, hourly_alone, partition_range=alone_keys, max_concurrency=concurrency)
    assert alone.status == "completed" and alone.num_runs == RUNS, (alone.status, alone.num_runs)
    repo.close()
    return {"graph_per_second": RUNS / graph_s, "one_workflow_per_second": RUNS / alone_s,
            "ratio": alone_s / graph_s}


def case(name: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        if name == "graph_inprocess":
            return graph_against_one(url, local=False, concurrency=64)
        if name == "graph_local4":
            return graph_against_one(url, local=True, concurrency=4)
        if name == "graph_postgres":
            return on_postgres(lambda pg: graph_against_one(pg, local=False, concurrency=64))
        if name == "chain":
            import anachron as ac
            from graph_noop_flows import chain

            repo = ac.CodeRepository([chain], storage=url, executor=ac.InProcessExecutor(4))
            seconds, result = _timed(repo, chain, start="2023-01-01", end="2023-12-31", max_concurrency=4)
            assert result.status == "completed" and result.num_runs == 365, (result.status, result.num_runs)
            repo.close()
            return {"seconds": seconds, "per_link_ms": seconds / 365 * 1000}
    raise SystemExit(f"unknown case {name!r}; cases: {', '.join(CASES)}")


def on_postgres(fn):
    import uuid

    from sqlalchemy import create_engine, text

    admin_url = os.environ.get("ANACHRON_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    name = f"anachron_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        return fn(f"{admin_url.rsplit('/', 1)[0]}/{name}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    if sys.argv[1:2] == ["--one"]:
        result = case(sys.argv[2])
        result["strftime_loop_ms"] = _strftime_loop_ms()
        print(json.dumps(result))
        return
    for name in sys.argv[1:] or CASES:
        results = []
        for _ in range(3):
            out = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True, cwd=HERE)
            if out.returncode != 0:
                raise SystemExit(f"{name} failed:\n{out.stderr}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        median = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(f"{name}: " + ", ".join(f"{k}={v:,.2f}" for k, v in median.items()), flush=True)


if __name__ == "__main__":
    main()
