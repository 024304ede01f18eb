"""Daemon benchmarks (issue: the daemon, live schedules and YAML flows). Each case runs in a fresh process.

    .venv/bin/python bench/bench_daemon.py                    # every case (about 5 minutes: latency is real time)
    .venv/bin/python bench/bench_daemon.py evaluate dryrun    # some cases: evaluate dryrun idle latency

- ``evaluate``: one daemon, 10,000 ``*/5 * * * *`` schedules, all due in one evaluation (a controllable
  clock; SQLite file). ``first``: the very first due tick on a fresh database (it also grows the file);
  ``steady``: the median of the next three due ticks — what a running daemon does every five minutes.
- ``dryrun``: a dry-run schedule backfill over 100,000 ``* * * * *`` ticks (plan, no storage writes).
- ``idle``: ``anachron daemon`` on 100 schedules none of which is due, CPU time of the daemon process and
  its worker processes over ``ANACHRON_BENCH_IDLE_SECONDS`` (default 60), read from ``/proc``.
- ``latency``: ``anachron daemon`` on 1,000 ``* * * * *`` schedules for ``ANACHRON_BENCH_LATENCY_MINUTES``
  (default 3) real minutes; each run's start minus its tick, p50 and p99.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

HERE = Path(__file__).resolve().parent
ANACHRON = str(Path(sys.executable).parent / "anachron")
UTC = timezone.utc


def measure_evaluate() -> dict:
    import anachron as ac

    class Clock:
        now = datetime(2026, 3, 2, 9, 2, tzinfo=UTC)

        def __call__(self) -> datetime:
            return self.now

    clock = Clock()
    workflows = [ac.workflow(name=f"s{i}", schedule=ac.Schedule("*/5 * * * *", overlap="allow"))(lambda: None)
                 for i in range(10_000)]
    with tempfile.TemporaryDirectory() as tmp:
        repo = ac.CodeRepository(workflows, storage=f"sqlite:///{tmp}/bench.db", executor=ac.InProcessExecutor(1),
                                 clock=clock, run_queue=ac.RunQueueConfig(max_concurrent_runs=1))
        daemon = repo.daemon()
        daemon.evaluator.evaluate(clock.now)  # first seen: 10,000 schedule rows
        times = []
        for _ in range(4):
            clock.now += timedelta(minutes=5)
            started = time.perf_counter()
            evaluation = daemon.evaluator.evaluate(clock.now)
            times.append(time.perf_counter() - started)
            assert sum(1 for f in evaluation.fired if f.run_id) == 10_000
        repo.close()
    return {"first_s": times[0], "steady_s": statistics.median(times[1:])}


def measure_dryrun() -> dict:
    import anachron as ac

    wf = ac.workflow(name="minutely", schedule=ac.Schedule("* * * * *"))(lambda: None)
    with tempfile.TemporaryDirectory() as tmp:
        repo = ac.CodeRepository([wf], storage=f"sqlite:///{tmp}/bench.db", executor=ac.InProcessExecutor(1))
        _ = repo.storage  # opened (and migrated) before the timing: a daemon or server has it open
        import anachron.requests  # noqa: F401 - likewise imported
        started = time.perf_counter()
        result = repo.backfill_schedule("minutely", start="2025-01-01T00:00:00+00:00",
                                        end="2025-03-11T10:39:00+00:00", dry_run=True)
        elapsed = time.perf_counter() - started
        repo.close()
    assert result.num_runs == 100_000
    return {"seconds": elapsed}


def _flows(tmp: str, count: int, cron: str) -> str:
    path = Path(tmp) / "bench_flows.py"
    path.write_text(textwrap.dedent(f"""
        import anachron as ac
        workflows = [ac.workflow(name=f"s{{i}}", schedule=ac.Schedule({cron!r}))(lambda: None)
                     for i in range({count})]
    """))
    return str(path)


def _cpu_seconds(pid: int) -> float:
    """CPU time of ``pid`` and of its children that are alive now."""
    tck = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(entry) == pid or int(fields[1]) == pid:
            total += (int(fields[11]) + int(fields[12])) / tck
    return total


def measure_idle() -> dict:
    seconds = float(os.environ.get("ANACHRON_BENCH_IDLE_SECONDS", "60"))
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "ANACHRON_DATABASE_URL": f"sqlite:///{tmp}/bench.db"}
        proc = subprocess.Popen([ANACHRON, "daemon", _flows(tmp, 100, "0 0 1 1 *")], env=env, cwd=tmp,
                                stderr=subprocess.DEVNULL)
        try:
            time.sleep(10)  # started: workers spawned, schedules seen
            before, started = _cpu_seconds(proc.pid), time.monotonic()
            time.sleep(seconds)
            used, elapsed = _cpu_seconds(proc.pid) - before, time.monotonic() - started
        finally:
            proc.terminate()
            proc.wait(30)
    return {"cpu_percent": 100 * used / elapsed, "seconds": elapsed}


def measure_latency() -> dict:
    import anachron as ac

    minutes = int(os.environ.get("ANACHRON_BENCH_LATENCY_MINUTES", "3"))
    with tempfile.TemporaryDirectory() as tmp:
        url = f"sqlite:///{tmp}/bench.db"
        env = {**os.environ, "ANACHRON_DATABASE_URL": url}
        proc = subprocess.Popen([ANACHRON, "daemon", _flows(tmp, 1000, "* * * * *")], env=env, cwd=tmp,
                                stderr=subprocess.DEVNULL)
        try:
            first = (int(time.time()) // 60 + 1) * 60
            time.sleep(max(0.0, first + minutes * 60 - time.time() + 20))
        finally:
            proc.terminate()
            proc.wait(30)
        repo = ac.CodeRepository([], storage=url, executor=ac.InProcessExecutor(1))
        runs = [r for r in repo.list_runs(limit=None) if r.started_at and r.scheduled_time]
        repo.close()
    delays = sorted((r.started_at - r.scheduled_time).total_seconds() for r in runs)
    ticks = len({r.scheduled_time for r in runs})
    return {"runs": len(delays), "ticks": ticks, "p50_s": statistics.median(delays),
            "p99_s": delays[min(len(delays) - 1, int(len(delays) * 0.99))], "max_s": delays[-1]}


def measure_fleet() -> dict:
    """Three daemons on one fresh PostgreSQL database with 1,000 ``* * * * *`` schedules for
    ``ANACHRON_BENCH_FLEET_MINUTES`` (5) real minutes; the schedule leader is SIGKILLed after half of it.
    Counts the ticks of every schedule: each minute from the first to the last once, none twice."""
    import signal
    import uuid
    from collections import Counter

    from sqlalchemy import create_engine, text

    import anachron as ac

    minutes = int(os.environ.get("ANACHRON_BENCH_FLEET_MINUTES", "5"))
    admin_url = os.environ.get("ANACHRON_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    name = f"anachron_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = f"{admin_url.rsplit('/', 1)[0]}/{name}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            env = {**os.environ, "ANACHRON_DATABASE_URL": url}
            flows = _flows(tmp, 1000, "* * * * *")
            subprocess.run([ANACHRON, "db", "upgrade"], env=env, cwd=tmp, check=True, capture_output=True)
            procs = [subprocess.Popen([ANACHRON, "daemon", flows], env=env, cwd=tmp, stderr=subprocess.DEVNULL)
                     for _ in range(3)]
            db = create_engine(url)
            killed_at = None
            try:
                start = time.time()
                time.sleep(minutes * 30)
                with db.connect() as conn:
                    leader = conn.execute(text(
                        "SELECT w.pid FROM anachron_leaders l JOIN anachron_workers w ON w.worker_id = l.holder "
                        "WHERE l.name LIKE 'schedules:%'")).scalar()
                victim = next(p for p in procs if p.pid == leader)
                victim.send_signal(signal.SIGKILL)
                killed_at = time.time() - start
                time.sleep(max(0.0, start + minutes * 60 - time.time()))
            finally:
                for p in procs:
                    p.terminate()
                for p in procs:
                    p.wait(30)
                db.dispose()
            repo = ac.CodeRepository([], storage=url, executor=ac.InProcessExecutor(1))
            runs = repo.list_runs(limit=None)
            repo.close()
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
    per_schedule: dict[str, list[float]] = {}
    for r in runs:
        per_schedule.setdefault(r.workflow, []).append(r.scheduled_time.timestamp())
    ticks = sorted({t for times in per_schedule.values() for t in times})
    duplicated = sum(n - 1 for times in per_schedule.values() for n in Counter(times).values())
    missed = sum(len(ticks) - len(set(times)) for times in per_schedule.values())  # a tick some schedule lacks
    gaps = sum(1 for a, b in zip(ticks, ticks[1:]) if b - a != 60)
    return {"schedules": len(per_schedule), "ticks": len(ticks), "runs": len(runs), "duplicated": duplicated,
            "missed": missed, "gaps_between_ticks": gaps, "leader_killed_at_s": killed_at}


CASES = {"evaluate": measure_evaluate, "dryrun": measure_dryrun, "idle": measure_idle, "latency": measure_latency,
         "fleet": measure_fleet}


def main(argv: list[str]) -> None:
    if argv[:1] == ["--one"]:
        print(json.dumps(CASES[argv[1]]()))
        return
    for name in argv or list(CASES):
        out = subprocess.run([sys.executable, __file__, "--one", name], capture_output=True, text=True, cwd=HERE)
        if out.returncode != 0:
            raise RuntimeError(f"{name} failed:\n{out.stderr}")
        result = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{name}: " + ", ".join(f"{k}={v:,.3f}" if isinstance(v, float) else f"{k}={v:,}"
                                        for k, v in result.items()), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
