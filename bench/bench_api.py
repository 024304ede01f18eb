"""HTTP API benchmark (SPEC §6): polling a 1,000,000-partition backfill's status through ``anachron server``.

    .venv/bin/python bench/bench_api.py                         # about a minute, a third of it seeding
    .venv/bin/python bench/bench_api.py --interval 0.5          # each polling client waits 0.5 s between polls
    .venv/bin/python bench/bench_api.py --db /tmp/million.db    # seed once, reuse on later runs
    .venv/bin/python bench/bench_api.py --profile --py-spy PATH # py-spy the server (GIL holders) while loaded

1. Seeds a SQLite file with a backfill of ``noop_multi`` (bench/noop_flows.py) over 1,000,000 partitions
   (10,000 days x 100 regions), in progress, as storage holds one: the backfill row, created by the engine,
   then its runs inserted in bulk straight through storage (no run is executed): 998,920 ``success``,
   1,000 ``failed``, 64 ``running`` and 16 ``queued``, its counters and cursor to match. It is led by a
   stand-in worker whose lease never lapses, so the server leaves it alone.
2. Starts a real ``anachron server bench/noop_flows.py --db <that file>`` (a ``LocalExecutor``, four worker
   processes: the default).
3. ``idle``: one client, ``GET /api/v1/backfills/{id}`` of the million-partition backfill, back to back
   (``--requests`` after a warm-up): median and p99. Target: < 20 ms. Also one page of the workflow's
   partition grid (``GET /workflows/noop_multi/partitions?limit=1000``) and the backfill list.
4. ``loaded``: a real backfill (``POST /api/v1/backfills``: ``noop_multi``, 2,000 later days x 100 regions,
   ``max_concurrency`` 64) running at full speed in the same server; its rate alone for a few seconds, then
   ``--clients`` threads (httpx, one client each) polling the same status back to back (or every
   ``--interval`` seconds) for ``--seconds``: median and p99 of those requests, the real backfill's rate
   meanwhile, and the cores used by the clients, the server and its workers. Target: p99 < 100 ms.

Prints one JSON line with every figure, and ``strftime_loop_ms``: the machine's speed at that moment (see
bench/README.md). ``--server-pythonpath DIR`` puts DIR first on the server's path (e.g. a folder where
``pip install --target DIR httptools uvloop`` put the faster HTTP parser and event loop uvicorn then uses).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
MILLION_DAYS = ("1990-01-01", "2017-05-18")  # 10,000 days x 100 regions
FAILED_RUNS, RUNNING_RUNS, QUEUED_RUNS = 1_000, 64, 16
STAND_IN = "bench-stand-in-leader"


def _strftime_loop_ms() -> float:
    from bench_backfill import _strftime_loop_ms as loop

    return loop()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def summary(ms: list[float]) -> dict[str, float]:
    return {"n": len(ms), "median_ms": statistics.median(ms), "p99_ms": percentile(ms, 99), "max_ms": max(ms)}


# -- seeding ------------------------------------------------------------------------------------------------
def seed(url: str) -> tuple[str, float]:
    """The million-partition backfill, in progress, with a run row for every partition; its id."""
    from sqlalchemy import update

    import anachron as ac
    from anachron.models import FAILED, IN_PROGRESS, QUEUED, RUNNING, SUCCESS
    from anachron.planning import run_idempotency_key
    from anachron.records import NewRun
    from anachron.storage.schema import backfills
    from noop_flows import noop_multi

    started = time.perf_counter()
    repo = ac.CodeRepository([noop_multi], storage=url, executor=ac.InProcessExecutor(1))
    result = repo.backfill(noop_multi, partition_range=ac.PartitionKeyRange.multi({"date": MILLION_DAYS}),
                           block=False, coordinate=False)  # stored, "requested": nobody leads it yet
    backfill_id = result.backfill_id
    assert backfill_id is not None and result.num_partitions == 1_000_000, result
    keys = result.partition_keys
    total = len(keys)
    tags = json.dumps({"anachron/backfill": backfill_id})
    now = time.time()
    far = now + 10 * 365 * 86400
    storage = repo.storage
    storage.run(lambda s: s.register_worker(STAND_IN, "bench", os.getpid(), now, far))
    statuses = [(FAILED, FAILED_RUNS), (RUNNING, RUNNING_RUNS), (QUEUED, QUEUED_RUNS)]
    done = total - sum(n for _, n in statuses)
    status_of = [SUCCESS] * done + [s for s, n in statuses for _ in range(n)]
    has_plan_index = "plan_index" in NewRun._fields
    chunk = 50_000
    for first in range(0, total, chunk):
        rows = []
        for i, key in enumerate(keys[first:first + chunk], first):
            status = status_of[i]
            finished = status in (SUCCESS, FAILED)
            extra: dict[str, Any] = {"plan_index": i} if has_plan_index else {}
            rows.append(NewRun(
                f"bench{i:011d}", "noop_multi", status, (key,), "{}", tags, -10, backfill_id,
                run_idempotency_key(backfill_id, (key,)), 1, now, None, None, None, now - 3600, None, "{}",
                STAND_IN, "failed on purpose" if status == FAILED else None, now if finished else None,
                None if status == QUEUED else now - 1800, **extra))
        storage.run(lambda s, rows=rows: s.insert_runs(rows))
        print(f"\rseeding: {first + len(rows):,} / {total:,} runs", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)

    def lead(s: Any) -> None:
        s.conn.execute(update(backfills).where(backfills.c.backfill_id == backfill_id).values(
            status=IN_PROGRESS, owner=STAND_IN, cursor=total, completed=done, failed=FAILED_RUNS, updated_at=now))

    storage.run(lead)
    status = repo.get_backfill(backfill_id, include_run_ids=False)
    assert status is not None and status.status == IN_PROGRESS and status.running_runs == RUNNING_RUNS, status
    assert status.completed_partitions == done and status.total_partitions == 1_000_000, status
    repo.close()
    return backfill_id, time.perf_counter() - started


# -- the server ----------------------------------------------------------------------------------------------
def find_seeded(url: str) -> str | None:
    """The million-partition backfill of an already seeded database (``--db``), or None."""
    import anachron as ac

    repo = ac.CodeRepository([], storage=url, executor=ac.InProcessExecutor(1))
    try:
        found = [b.backfill_id for b in repo.list_backfills("in_progress") if b.total_partitions == 1_000_000]
    finally:
        repo.close()
    return found[0] if found else None


def start_server(url: str, tmp: Path, pythonpath: str | None = None) -> tuple[subprocess.Popen[bytes], str, Any]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = open(tmp / "server.log", "wb")
    env = {k: v for k, v in os.environ.items() if k != "ANACHRON_API_TOKEN"}
    if pythonpath:  # e.g. a folder with httptools and uvloop, which uvicorn then uses
        env["PYTHONPATH"] = os.pathsep.join(p for p in (pythonpath, env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen([sys.executable, "-m", "anachron.cli", "server", str(HERE / "noop_flows.py"), "--db",
                             url, "--port", str(port)], stdout=log, stderr=subprocess.STDOUT, env=env, cwd=HERE)
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited: {(tmp / 'server.log').read_text()}")
        try:
            if httpx.get(f"{base}/api/v1/health", timeout=2).status_code == 200:
                return proc, base, log
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError("server did not start")


def cpu_seconds(pid: int) -> float:
    """CPU time (user + system) of a process, from /proc."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children(pid: int) -> list[int]:
    found: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            found += [int(c) for c in f.read().split()]
    return found


def cpu_split(server_pid: int) -> dict[str, float]:
    """CPU seconds so far of this process (the clients), the server, and the server's worker processes."""
    usage = os.times()
    workers = 0.0
    for child in children(server_pid):
        try:
            workers += cpu_seconds(child)
        except FileNotFoundError:
            pass
    return {"clients": usage.user + usage.system, "server": cpu_seconds(server_pid), "workers": workers}


def timed_gets(client: httpx.Client, path: str, count: int) -> list[float]:
    ms = []
    for _ in range(count):
        t = time.perf_counter()
        response = client.get(path)
        ms.append((time.perf_counter() - t) * 1000)
        assert response.status_code == 200, response.text
    return ms


# -- phases --------------------------------------------------------------------------------------------------
def measure_idle(base: str, backfill_id: str, requests: int) -> dict[str, Any]:
    with httpx.Client(base_url=base, timeout=30) as client:
        body = client.get(f"/api/v1/backfills/{backfill_id}").json()
        assert body["total_partitions"] == 1_000_000 and body["running_runs"] == RUNNING_RUNS, body
        timed_gets(client, f"/api/v1/backfills/{backfill_id}", 50)  # warm-up
        status = summary(timed_gets(client, f"/api/v1/backfills/{backfill_id}", requests))
        # a query string bypasses the status cache (api/cache.py): every answer read from storage
        fresh = summary(timed_gets(client, f"/api/v1/backfills/{backfill_id}?include_run_ids=false", requests))
        grid = summary(timed_gets(client, "/api/v1/workflows/noop_multi/partitions?limit=1000", 50))
        listed = summary(timed_gets(client, "/api/v1/backfills?limit=100", 200))
    return {"status": status, "status_uncached": fresh, "partitions_page_1000": grid, "list_backfills": listed}


def measure_loaded(base: str, backfill_id: str, clients: int, seconds: float, interval: float, py_spy: str | None,
                   server_pid: int, tmp: Path) -> dict[str, Any]:
    with httpx.Client(base_url=base, timeout=60) as client:
        created = client.post("/api/v1/backfills", json={
            "workflow": "noop_multi", "partition_range": {"dimensions": {"date": {"from": "2020-01-01",
                                                                                 "to": "2025-06-22"}}},
            "max_concurrency": 64, "tags": [{"key": "bench", "value": "api"}]})
        assert created.status_code == 201, created.text
        real = created.json()["backfill_id"]

        def completed() -> int:
            return int(client.get(f"/api/v1/backfills/{real}").json()["completed_partitions"])

        deadline = time.monotonic() + 30  # the daemon loop picks it up, the workers start
        while completed() < 500 and time.monotonic() < deadline:
            time.sleep(0.05)
        t0, c0 = time.monotonic(), completed()
        time.sleep(3)
        alone_rate = (completed() - c0) / (time.monotonic() - t0)

        stop = threading.Event()
        samples: list[list[float]] = [[] for _ in range(clients)]
        errors: list[str] = []

        def poll(mine: list[float]) -> None:
            with httpx.Client(base_url=base, timeout=60) as own:
                while not stop.is_set():
                    t = time.perf_counter()
                    response = own.get(f"/api/v1/backfills/{backfill_id}")
                    mine.append((time.perf_counter() - t) * 1000)
                    if response.status_code != 200:
                        errors.append(response.text)
                    if interval:
                        stop.wait(interval)

        spy = None
        if py_spy:
            spy = subprocess.Popen([py_spy, "record", "-o", str(tmp / "server.txt"), "-f", "raw", "-d",
                                    str(int(seconds)), "-p", str(server_pid), "--threads", "--gil"],
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        threads = [threading.Thread(target=poll, args=(samples[i],), daemon=True) for i in range(clients)]
        t1, c1, cpu1 = time.monotonic(), completed(), cpu_split(server_pid)
        for thread in threads:
            thread.start()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - t1
        c2, cpu2 = completed(), cpu_split(server_pid)
        state = client.get(f"/api/v1/backfills/{real}").json()
        client.post(f"/api/v1/backfills/{real}/cancel")
        if spy is not None:
            spy.wait(timeout=60)
    every = [ms for mine in samples for ms in mine]
    assert not errors, errors[:3]
    assert state["status"] == "in_progress", state  # it ran throughout the polling window
    return {"status_polled": summary(every), "requests_per_s": len(every) / elapsed, "clients": clients,
            "interval_s": interval,
            "real_backfill_rate_alone": alone_rate, "real_backfill_rate_polled": (c2 - c1) / elapsed,
            "real_backfill_done": c2,
            # cores used meanwhile (the machine has two): the polling clients, the server, its worker processes
            "cores_used": {k: (cpu2[k] - cpu1[k]) / elapsed for k in cpu1}}


def main(argv: list[str]) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--interval", type=float, default=0.0,
                        help="seconds each polling client waits between its requests (0: back to back)")
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--profile", action="store_true", help="py-spy the server in the loaded phase")
    parser.add_argument("--keep", action="store_true", help="keep the database and server log (printed)")
    parser.add_argument("--db", help="a SQLite file: seeded if it does not exist, else reused (and kept)")
    parser.add_argument("--server-pythonpath", help="prepended to the server's PYTHONPATH")
    parser.add_argument("--py-spy", default="py-spy", help="the py-spy command, for --profile")
    args = parser.parse_args(argv)
    tmp = Path(tempfile.mkdtemp(prefix="anachron-bench-api-"))
    db = Path(args.db).resolve() if args.db else tmp / "bench.db"
    url = f"sqlite:///{db}"
    reused = find_seeded(url) if db.exists() else None
    backfill_id, seeded = (reused, 0.0) if reused else seed(url)
    proc, base, log = start_server(url, tmp, args.server_pythonpath)
    try:
        idle = measure_idle(base, backfill_id, args.requests)
        loaded = measure_loaded(base, backfill_id, args.clients, args.seconds, args.interval,
                                args.py_spy if args.profile else None, proc.pid, tmp)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
        log.close()
    result = {"seed_s": seeded, "backfill_id": backfill_id, "idle": idle, "loaded": loaded,
              "strftime_loop_ms": _strftime_loop_ms(), "db_mb": db.stat().st_size / 1e6}
    if args.keep or args.profile or args.db:
        result["dir"] = str(tmp)
    else:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    print(f"GET /backfills/{{id}} (1,000,000 partitions), 1 client: median {idle['status']['median_ms']:.2f} ms, "
          f"p99 {idle['status']['p99_ms']:.2f} ms (target < 20 ms); uncached: median "
          f"{idle['status_uncached']['median_ms']:.2f} ms, p99 {idle['status_uncached']['p99_ms']:.2f} ms")
    polled = loaded["status_polled"]
    print(f"... {loaded['clients']} clients polling while a real backfill runs: median {polled['median_ms']:.1f} ms, "
          f"p99 {polled['p99_ms']:.1f} ms (target < 100 ms), {loaded['requests_per_s']:.0f} requests/s; "
          f"real backfill {loaded['real_backfill_rate_alone']:.0f} /s alone, "
          f"{loaded['real_backfill_rate_polled']:.0f} /s while polled")
    print(json.dumps(result))


if __name__ == "__main__":
    main(sys.argv[1:])
