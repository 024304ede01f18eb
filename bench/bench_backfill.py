"""anachron benchmarks. Each measurement runs in a fresh process; figures are medians of 3.

    .venv/bin/python bench/bench_backfill.py            # everything
    .venv/bin/python bench/bench_backfill.py inprocess  # one of: inprocess local dryrun million

Writes the figures to stdout as a Markdown table (paste into bench/README.md).
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_noop(executor: str, n: int, workers: int, concurrency: int) -> dict:
    import anachron as ac
    from noop_flows import noop

    with tempfile.TemporaryDirectory() as tmp:
        ex = ac.InProcessExecutor(workers) if executor == "inprocess" else ac.LocalExecutor(workers)
        repo = ac.CodeRepository([noop], storage=f"sqlite:///{tmp}/bench.db", executor=ex)
        keys = noop.partitions.get_partition_keys()
        started = time.perf_counter()
        result = repo.backfill(noop, partition_range=ac.PartitionKeyRange.single(keys[0], keys[n - 1]),
                               max_concurrency=concurrency)
        elapsed = time.perf_counter() - started
        repo.close()
    assert result.status == "completed" and result.completed == n, result
    return {"seconds": elapsed, "per_second": n / elapsed}


def measure_dryrun() -> dict:
    import anachron as ac
    from noop_flows import noop_multi

    with tempfile.TemporaryDirectory() as tmp:
        repo = ac.CodeRepository([noop_multi], storage=f"sqlite:///{tmp}/bench.db", executor=ac.InProcessExecutor(1))
        started = time.perf_counter()
        result = repo.backfill(noop_multi, partition_range=ac.PartitionKeyRange.multi(
            {"date": ("1990-01-01", "2017-05-18")}), strategy=ac.BackfillStrategy.batched(100), dry_run=True)
        count = sum(1 for _ in result.partition_keys)  # stream every key, as a consumer of the plan would
        runs = sum(1 for _ in result.plan)
        elapsed = time.perf_counter() - started
        repo.close()
    return {"seconds": elapsed, "keys": count, "runs": runs, "peak_mb": _peak_mb()}


def measure_million(seconds: float = 20.0) -> dict:
    import anachron as ac
    from noop_flows import noop_multi

    peak = {"rss": 0.0}
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak["rss"] = max(peak["rss"], _rss_mb())
            time.sleep(0.1)

    with tempfile.TemporaryDirectory() as tmp:
        repo = ac.CodeRepository([noop_multi], storage=f"sqlite:///{tmp}/bench.db", executor=ac.InProcessExecutor(8))
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        started = time.perf_counter()
        result = repo.backfill(noop_multi, partition_range=ac.PartitionKeyRange.multi(
            {"date": ("1990-01-01", "2017-05-18")}), max_concurrency=64, block=False)
        planned = time.perf_counter() - started
        time.sleep(seconds)
        status = repo.get_backfill(result.backfill_id)
        repo.cancel_backfill(result.backfill_id)
        repo.wait_backfill(result.backfill_id, timeout=60)
        stop.set()
        repo.close()
    return {"partitions": result.num_partitions, "plan_seconds": planned, "done_in_window": status.completed_partitions,
            "peak_rss_mb": peak["rss"], "rate": status.completed_partitions / seconds}


CASES = {
    "inprocess": lambda: measure_noop("inprocess", 10_000, 16, 64),
    "local": lambda: measure_noop("local", 10_000, 2, 8),
    "dryrun": measure_dryrun,
    "million": measure_million,
}


def run_case(name: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True, cwd=HERE)
    if out.returncode != 0:
        raise RuntimeError(f"{name} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        print(json.dumps(CASES[argv[1]]()))
        return
    names = argv or list(CASES)
    rows = []
    for name in names:
        repeats = 1 if name == "million" else 3
        results = [run_case(name) for _ in range(repeats)]
        keys = results[0].keys()
        median = {k: statistics.median(r[k] for r in results) for k in keys}
        rows.append((name, median, results))
        print(f"{name}: " + ", ".join(f"{k}={v:,.2f}" if isinstance(v, float) else f"{k}={v:,}"
                                        for k, v in median.items()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
