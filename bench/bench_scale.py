"""Scale-out benchmarks (issue 10): Dask, and million-partition backfills end to end.

    .venv/bin/python bench/bench_scale.py dask dask256       # PostgreSQL + Dask LocalCluster(2 workers), 10,000 no-ops
    .venv/bin/python bench/bench_scale.py million_sqlite     # 1,000,000 partitions to completion (minutes)
    .venv/bin/python bench/bench_scale.py million_postgres

``dask``: a 10,000-partition no-op daily backfill (``max_concurrency=64``; ``dask256``: 256) on a fresh
PostgreSQL database with ``DaskExecutor(n_workers=2)`` (a ``LocalCluster`` of two worker processes, one
thread each), warm (one small backfill first: cluster and the workers' runners started); medians of 3
fresh processes.

``million_*``: a 1,000,000-partition no-op backfill (``noop_multi``: 10,000 days × 100 regions, one run per
partition) with the default executor (``LocalExecutor(4)``) run to completion. Every 0.5 s the RSS of every
process of the benchmark (this one, its worker processes) is sampled; a separate process meanwhile times
``get_backfill`` (what ``anachron backfill status`` asks) and a ranged ``partition_status`` of 10,000 keys,
once a second. Prints the rate, each process's peak RSS and the probe's medians and p99s.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
PG_ADMIN = os.environ.get("ANACHRON_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
N = 10_000


@contextmanager
def fresh_postgres() -> Iterator[str]:
    from sqlalchemy import create_engine, text

    name = f"anachron_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield f"{PG_ADMIN.rsplit('/', 1)[0]}/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure_dask(concurrency: int = 64) -> dict:
    import anachron as ac
    from noop_flows import noop

    with fresh_postgres() as url:
        repo = ac.CodeRepository([noop], storage=url, executor=ac.DaskExecutor(n_workers=2))
        keys = noop.partitions.get_partition_keys()
        repo.backfill(noop, partition_keys=[keys[N]], max_concurrency=concurrency)  # warm: cluster, runners
        started = time.perf_counter()
        result = repo.backfill(noop, partition_range=ac.PartitionKeyRange.single(keys[0], keys[N - 1]),
                               max_concurrency=concurrency)
        elapsed = time.perf_counter() - started
        repo.close()
    assert result.status == "completed" and result.completed == N, result
    return {"seconds": elapsed, "per_second": N / elapsed}


# -- a million partitions ---------------------------------------------------------------------------------
def _rss_mb(pid: int) -> float:
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def _descendants(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
    children: dict[int, list[int]] = {}
    for line in out.splitlines():
        p, pp = map(int, line.split())
        children.setdefault(pp, []).append(p)
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def measure_million(url: str) -> dict:
    import anachron as ac
    from noop_flows import noop_multi

    peaks: dict[int, float] = {}
    stop = threading.Event()
    me = os.getpid()

    def sample() -> None:
        while not stop.is_set():
            for pid in [me, *_descendants(me)]:
                peaks[pid] = max(peaks.get(pid, 0.0), _rss_mb(pid))
            stop.wait(0.5)

    repo = ac.CodeRepository([noop_multi], storage=url, executor=ac.LocalExecutor(4))
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    result = repo.backfill(noop_multi, partition_range=ac.PartitionKeyRange.multi(
        {"date": ("1990-01-01", "2017-05-18")}), max_concurrency=64, block=False)
    probe = subprocess.Popen([sys.executable, __file__, "--probe", url, result.backfill_id],
                             stdout=subprocess.PIPE, text=True)
    final = repo.wait_backfill(result.backfill_id)
    elapsed = time.perf_counter() - started
    probe.terminate()
    probe_out = probe.communicate(timeout=30)[0].strip().splitlines()
    stop.set()
    sampler.join()
    repo.close()
    assert final.status == "completed" and final.completed_partitions == 1_000_000, final
    timings = json.loads(probe_out[-1]) if probe_out else {}
    names = {me: "benchmark (coordinator)", probe.pid: "probe (status queries)"}
    return {"partitions": final.completed_partitions, "seconds": elapsed, "per_second": 1_000_000 / elapsed,
            "peak_rss_mb": {names.get(pid, f"child {pid}"): round(mb, 1) for pid, mb in peaks.items() if mb},
            **timings}


def probe(url: str, backfill_id: str) -> None:
    """Times what a user asks while the backfill runs, once a second, until terminated."""
    import signal

    import anachron as ac
    from noop_flows import noop_multi

    repo = ac.CodeRepository([noop_multi], storage=url, executor=ac.InProcessExecutor(1))
    keys = noop_multi.partitions.get_partition_keys()
    status_ms: list[float] = []
    partition_ms: list[float] = []
    stopping = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stopping.set())
    i = 0
    while not stopping.is_set():
        t = time.perf_counter()
        repo.get_backfill(backfill_id, include_run_ids=False)
        status_ms.append((time.perf_counter() - t) * 1000)
        first = (i * 10_000) % (len(keys) - 10_000)
        t = time.perf_counter()
        page = repo.partition_status(noop_multi, from_key=str(keys[first]), to_key=str(keys[first + 9_999]))
        partition_ms.append((time.perf_counter() - t) * 1000)
        assert len(page) == 10_000
        i += 1
        stopping.wait(1.0)
    repo.close()

    def p99(xs: list[float]) -> float:
        return sorted(xs)[min(len(xs) - 1, int(len(xs) * 0.99))]

    print(json.dumps({"status_ms_median": statistics.median(status_ms), "status_ms_p99": p99(status_ms),
                      "partitions_10k_ms_median": statistics.median(partition_ms),
                      "partitions_10k_ms_p99": p99(partition_ms), "probes": len(status_ms)}))


def million_sqlite() -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        return measure_million(f"sqlite:///{tmp}/bench.db")


def million_postgres() -> dict:
    with fresh_postgres() as url:
        return measure_million(url)


CASES = {"dask": (measure_dask, 3), "dask256": (lambda: measure_dask(256), 3),
         "million_sqlite": (million_sqlite, 1), "million_postgres": (million_postgres, 1)}


def main(argv: list[str]) -> None:
    if argv[:1] == ["--probe"]:
        probe(argv[1], argv[2])
        return
    if argv[:1] == ["--one"]:
        print(json.dumps(CASES[argv[1]][0]()))
        return
    for name in argv or list(CASES):
        repeats = CASES[name][1]
        results = []
        for _ in range(repeats):
            out = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True, cwd=HERE)
            if out.returncode != 0:
                raise RuntimeError(f"{name} failed:\n{out.stderr[-3000:]}")
            results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        if repeats == 1:
            print(f"{name}: {json.dumps(results[0])}", flush=True)
        else:
            runs = ", ".join(f"{r['per_second']:,.0f}" for r in results)
            print(f"{name}: median {statistics.median(r['per_second'] for r in results):,.0f} partitions/s "
                  f"[{runs}]", flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
