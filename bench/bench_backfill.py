"""anachron benchmarks. Each measurement runs in a fresh process; figures are medians of 3.

    .venv/bin/python bench/bench_backfill.py                 # everything
    .venv/bin/python bench/bench_backfill.py inprocess local4 # some cases (names below)

Backfill cases: a 10,000-partition no-op daily backfill, end to end — the ``backfill()`` call with
``block=True``: planning, storing, running, recording, finishing. "warm" (every case but ``*_cold``) means
the process ran one small backfill before the measured one, as a daemon, a server or any second backfill
has: storage open (SQLAlchemy imported, schema checked), the request model (pydantic) imported, the
coordinator and the executor's workers started. "cold" times the very first call of a fresh process,
those one-off costs included. Prints each case's median; paste into bench/README.md. Every case also
reports ``strftime_loop_ms``, a yardstick of the machine's speed at that moment (see ``_strftime_loop_ms``).
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
N = 10_000


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure_noop(executor: str, workers: int, concurrency: int, url: str | None = None, warm: bool = True) -> dict:
    import anachron as ac
    from noop_flows import noop

    with tempfile.TemporaryDirectory() as tmp:
        ex = ac.InProcessExecutor(workers) if executor == "inprocess" else ac.LocalExecutor(workers)
        repo = ac.CodeRepository([noop], storage=url or f"sqlite:///{tmp}/bench.db", executor=ex)
        keys = noop.partitions.get_partition_keys()
        selection = ac.PartitionKeyRange.single(keys[0], keys[N - 1])
        if warm:  # what a process has after its first backfill: storage, imports, coordinator, workers
            repo.backfill(noop, partition_keys=[keys[N]], max_concurrency=concurrency)
        started = time.perf_counter()
        result = repo.backfill(noop, partition_range=selection, max_concurrency=concurrency)
        elapsed = time.perf_counter() - started
        repo.close()
    assert result.status == "completed" and result.completed == N, result
    return {"seconds": elapsed, "per_second": N / elapsed}


def measure_postgres() -> dict:
    """The in-process case on a fresh PostgreSQL database (ANACHRON_BENCH_PG, default the local server)."""
    import uuid

    from sqlalchemy import create_engine, text

    admin_url = os.environ.get("ANACHRON_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    name = f"anachron_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        return measure_noop("inprocess", 4, 64, url=f"{admin_url.rsplit('/', 1)[0]}/{name}")
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def measure_hourly_keys() -> dict:
    """Listing 87,600 hourly keys (2015-01-01 .. 2024-12-29), definition built inside the timing; and, as a
    yardstick that cancels out the machine's speed at that moment, a plain ``strftime`` loop over the same
    hours in the same process (``ratio`` = anachron's time / the loop's)."""
    import anachron as ac

    started = time.perf_counter()
    keys = list(ac.HourlyPartitions(start="2015-01-01", end="2024-12-29").get_partition_keys())
    elapsed = time.perf_counter() - started
    assert len(keys) == 87_600
    loop = _strftime_loop_ms()
    return {"ms": elapsed * 1000, "strftime_loop_ms": loop, "ratio": elapsed * 1000 / loop}


def _strftime_loop_ms() -> float:
    """The machine's speed at this moment: 87,600 ``strftime`` calls in a plain loop. Every case reports
    it, so a slow moment of a shared machine shows next to the figure it slowed down."""
    from datetime import datetime, timedelta, timezone

    started = time.perf_counter()
    t, hour = datetime(2015, 1, 1, tzinfo=timezone.utc), timedelta(hours=1)
    plain = [(t + hour * i).strftime("%Y-%m-%d-%H:%M") for i in range(87_600)]
    assert len(plain) == 87_600
    return (time.perf_counter() - started) * 1000


def measure_import() -> dict:
    """``import anachron`` in a fresh interpreter (bytecode cached), and what it loads."""
    code = ("import sys, time; t = time.perf_counter(); import anachron; d = time.perf_counter() - t; "
            "heavy = [m for m in ('sqlalchemy', 'pydantic', 'psycopg', 'fastapi', 'dask') if m in sys.modules]; "
            "print(d * 1000, len(heavy))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    subprocess.run([sys.executable, "-c", "import anachron"], env=env, check=True)  # write the bytecode
    ms, heavy = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                               check=True).stdout.split()
    return {"ms": float(ms), "heavy_modules": int(heavy)}


def measure_command() -> dict:
    """``anachron runs list`` on a SQLite database whose schema is current, in a fresh interpreter each time
    (bytecode cached): what every command costs before it does anything. Median of 7."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    times = []
    with tempfile.TemporaryDirectory() as tmp:
        command = [sys.executable, "-m", "anachron.cli", "runs", "list", "--db", f"sqlite:///{tmp}/bench.db"]
        subprocess.run(command, env=env, check=True, capture_output=True)  # creates the database, the bytecode
        for _ in range(7):
            started = time.perf_counter()
            subprocess.run(command, env=env, check=True, capture_output=True)
            times.append(time.perf_counter() - started)
    return {"ms": statistics.median(times) * 1000}


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

    def sample() -> None:
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
        status = repo.get_backfill(result.backfill_id, include_run_ids=False)
        repo.cancel_backfill(result.backfill_id)
        repo.wait_backfill(result.backfill_id, timeout=60)
        stop.set()
        repo.close()
    return {"partitions": result.num_partitions, "plan_seconds": planned, "done_in_window": status.completed_partitions,
            "peak_rss_mb": peak["rss"], "rate": status.completed_partitions / seconds}


CASES = {
    "inprocess": lambda: measure_noop("inprocess", 4, 64),
    "inprocess_cold": lambda: measure_noop("inprocess", 4, 64, warm=False),
    "local64": lambda: measure_noop("local", 4, 64),
    "local4": lambda: measure_noop("local", 4, 4),
    "postgres": measure_postgres,
    "hourly_keys": measure_hourly_keys,
    "import": measure_import,
    "command": measure_command,
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
        result = CASES[argv[1]]()
        result.setdefault("strftime_loop_ms", _strftime_loop_ms())
        print(json.dumps(result))
        return
    names = argv or list(CASES)
    for name in names:
        repeats = 1 if name == "million" else 3
        results = [run_case(name) for _ in range(repeats)]
        median = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(f"{name}: " + ", ".join(f"{k}={v:,.2f}" if isinstance(v, float) else f"{k}={v:,}"
                                        for k, v in median.items()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
