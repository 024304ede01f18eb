"""Several daemons on one PostgreSQL database (SPEC §7): one leads schedule evaluation; when it is killed
with SIGKILL another takes over within 2 × lease_seconds, and between them every tick runs once and
every partition of a backfill succeeds once — nothing lost, nothing run twice.

Real processes, real PostgreSQL; schedule time runs 30× faster than real time in every daemon
(tests/fleet_flows/fleet.py), so a ``* * * * *`` schedule ticks every 2 s.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

import anachron as ac
from helpers import alive, wait_for, wait_until

FLEET = str(Path(__file__).parent / "fleet_flows" / "fleet.py")
LEASE_SECONDS = 2  # fleet.py's repository


@pytest.fixture
def fleet_env(pg_url, tmp_path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANACHRON_")}
    env.update(ANACHRON_DATABASE_URL=pg_url, PYTHONUNBUFFERED="1", FLEET_EPOCH=repr(time.time()),
               FLEET_DIR=str(tmp_path))
    return env


def anachron(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "anachron.cli", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=60)


def start_daemon(env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with open(log, "ab") as out:
        return subprocess.Popen([sys.executable, "-m", "anachron.cli", "daemon", FLEET], env=env, cwd=log.parent,
                                stdout=out, stderr=out)


def schedule_leader(db) -> int | None:
    """The pid of the daemon leading schedule evaluation, if its lease is alive."""
    with db.connect() as conn:
        row = conn.execute(text("SELECT w.pid FROM anachron_leaders l JOIN anachron_workers w ON w.worker_id = "
                                "l.holder WHERE l.name LIKE 'schedules:%' AND w.expires_at >= :now"),
                           {"now": time.time()}).first()
    return row[0] if row else None


def lines(path: Path) -> list[list[str]]:
    return [line.split() for line in path.read_text().splitlines()] if path.exists() else []


def ticks_run(path: Path) -> int:
    """How many ticks ``minutely`` ran (a tick the kill cut short runs again: its line is there twice)."""
    return len({tick for tick, *_ in lines(path)})


def test_three_daemons_the_leader_killed_the_others_finish_everything(pg_url, fleet_env, tmp_path):
    created = anachron(fleet_env, tmp_path, "backfill", "create", FLEET, "daily", "--from", "2020-01-01",
                       "--to", "2020-12-31", "--no-wait", "--output", "json")
    assert created.returncode == 0, created.stderr
    logs = [tmp_path / f"daemon{i}.log" for i in range(3)]
    daemons = [start_daemon(fleet_env, log) for log in logs]
    db = create_engine(pg_url)
    api = ac.CodeRepository([], storage=pg_url, executor=ac.InProcessExecutor(max_workers=1))
    try:
        wait_until(lambda: schedule_leader(db) is not None and ticks_run(tmp_path / "ticks") >= 2
                   and len(lines(tmp_path / "keys")) >= 20, timeout=60)
        leader = schedule_leader(db)
        victim = next(d for d in daemons if d.pid == leader)
        victim.send_signal(signal.SIGKILL)
        killed_at = time.monotonic()
        victim.wait(10)
        assert wait_for(lambda: schedule_leader(db) not in (None, leader), timeout=4 * LEASE_SECONDS, step=0.05)
        took_over = time.monotonic() - killed_at
        assert took_over < 2 * LEASE_SECONDS + 1, took_over  # + 1 s: the survivors' step and this test's poll
        survivors = [d for d in daemons if d is not victim]
        assert schedule_leader(db) in {d.pid for d in survivors}
        ticks_then = ticks_run(tmp_path / "ticks")
        backfill_id = api.list_backfills()[0].backfill_id
        wait_until(lambda: api.get_backfill(backfill_id, include_run_ids=False).status == "completed"
                   and ticks_run(tmp_path / "ticks") >= ticks_then + 3, timeout=90)
    finally:
        for d in daemons:
            if d.poll() is None:
                d.send_signal(signal.SIGTERM)
        codes = [d.wait(30) for d in daemons if d is not victim]
        db.dispose()
    assert codes == [0, 0], [log.read_text()[-2000:] for log in logs]
    assert alive(victim.pid) is False

    # every tick from the first to the last once, each run succeeded
    runs = sorted(api.list_runs(workflow="minutely", limit=None), key=lambda r: r.scheduled_time)
    api.close()
    times = [r.scheduled_time for r in runs]
    assert len(times) == len(set(times)) >= ticks_then + 3
    assert all(b - a == timedelta(minutes=1) for a, b in zip(times, times[1:])), (  # none missed
        [t.strftime("%H:%M") for t in times], [line for log in logs for line in log.read_text().splitlines()
                                              if "tick" in line or "lead" in line])
    assert all(r.status == "success" for r in runs), [(r.scheduled_time, r.status, r.error) for r in runs]
    written = Counter(t for t, attempt, _ in lines(tmp_path / "ticks"))
    assert set(written) == {t.isoformat() for t in times}

    # the backfill: every partition succeeded exactly once (an attempt cut short by the kill was retried)
    status = ac.CodeRepository([], storage=pg_url, executor=ac.InProcessExecutor(max_workers=1))
    try:
        done = status.get_backfill(backfill_id, include_run_ids=False)
        assert done.completed_partitions == done.total_partitions == 366
        successes = Counter(r.partition_key for r in status.list_runs(workflow="daily", status="success",
                                                                          limit=None))
    finally:
        status.close()
    assert len(successes) == 366 and set(successes.values()) == {1}
