"""``anachron daemon`` and ``anachron schedule``, run as a user runs them: real processes on a SQLite file.

The last test runs two daemons on one database over two ``* * * * *`` ticks of a sped-up clock, one of them
killed with SIGKILL in the middle of a run and started again.
"""

from __future__ import annotations

import signal
import time
from datetime import datetime, timezone
from pathlib import Path

import pytest

from helpers import wait_until
from test_cli import FLOWS_DIR, Cli, api, cli  # noqa: F401 - fixtures

SCHEDULED = str(FLOWS_DIR / "scheduled.py")
SPEED = 4.0  # schedule seconds per real second in the daemons of the last test (scheduled.py's $CLOCK_SPEED)
UTC = timezone.utc


def stop(proc, sig=signal.SIGTERM, timeout: float = 20) -> tuple[int, str]:
    proc.send_signal(sig)
    try:
        _, err = proc.communicate(timeout=timeout)
    except Exception:
        proc.kill()
        raise
    return proc.returncode, err


# -- anachron schedule ----------------------------------------------------------------------------------
def test_schedule_list_pause_resume(cli):
    listed = cli.json("schedule", "list", SCHEDULED)
    assert [(s["workflow"], s["schedule_id"], s["paused"]) for s in listed] == [
        ("minutely", "schedule", False), ("report", "schedule", False), ("report", "morning", False)]
    assert listed[2]["timezone"] == "Europe/Paris" and listed[2]["cron"] == "0 6 * * *"
    paused = cli("schedule", "pause", SCHEDULED, "report", "-s", "morning")
    assert paused.returncode == 0 and "report/morning: paused" in paused.stdout, paused.stderr
    assert [s["paused"] for s in cli.json("schedule", "list", SCHEDULED)] == [False, False, True]
    text = cli("schedule", "list", SCHEDULED).stdout
    assert "paused" in text and "active" in text and "Europe/Paris" in text
    assert cli("schedule", "resume", SCHEDULED, "report", "-s", "morning").returncode == 0
    assert [s["paused"] for s in cli.json("schedule", "list", SCHEDULED)] == [False, False, False]
    bad = cli("schedule", "pause", SCHEDULED, "report", "-s", "nightly")
    assert bad.returncode == 2 and "nightly" in bad.stderr and "Traceback" not in bad.stderr


def test_schedule_backfill_replays_ticks_at_their_time_while_paused(cli, api):
    assert cli("schedule", "pause", SCHEDULED, "report", "-s", "morning").returncode == 0
    result = cli.json("schedule", "backfill", SCHEDULED, "report", "-s", "morning", "--start", "2026-01-10",
                      "--end", "2026-01-12T23:00:00+01:00")
    assert result["status"] == "completed" and result["completed"] == 3
    runs = api.list_runs(backfill_id=result["backfill_id"])
    assert sorted(r.logical_time for r in runs) == [datetime(2026, 1, d, 5, tzinfo=UTC) for d in (10, 11, 12)]
    dry = cli.json("schedule", "backfill", SCHEDULED, "report", "--start", "2026-01-01T00:00:00+00:00",
                   "--end", "2026-01-01T02:00:00+00:00", "--dry-run")
    assert dry["num_runs"] == 5 and dry["backfill_id"] is None
    missing = cli("schedule", "backfill", SCHEDULED, "report")
    assert missing.returncode == 2 and "--start" in missing.stderr


# -- anachron daemon --------------------------------------------------------------------------------------
def test_the_daemon_finishes_a_no_wait_backfill_and_stops_cleanly_on_sigterm(cli, api):
    backfill_id = cli("backfill", "create", SCHEDULED, "daily", "--from", "2024-01-01", "--to", "2024-01-10",
                      "--no-wait").stdout.strip()
    assert api.get_backfill(backfill_id).status == "requested"
    daemon = cli.popen("daemon", SCHEDULED)
    try:
        wait_until(lambda: api.get_backfill(backfill_id, include_run_ids=False).status == "completed", timeout=60)
    finally:
        code, err = stop(daemon)
    assert code == 0, err
    assert f"backfill {backfill_id}: leading it (created without a leader)" in err
    assert "daemon stopping (SIGTERM)" in err and "Traceback" not in err
    assert api.get_backfill(backfill_id).completed_partitions == 10


def test_a_daemon_refuses_a_schedule_that_cannot_run_unattended(cli, tmp_path):
    flows = tmp_path / "needs.py"
    flows.write_text("import anachron as ac\n\n\n@ac.workflow(schedule=ac.Schedule('@hourly'))\n"
                     "def needs(day: str):\n    pass\n")
    proc = cli("daemon", str(flows))
    assert proc.returncode == 2 and "needs" in proc.stderr and "day" in proc.stderr, proc.stderr


@pytest.mark.timeout(120)
def test_two_daemons_one_killed_mid_run_each_tick_runs_once(cli, api, tmp_path):
    """Two daemons; the one running the first tick's run is SIGKILLed mid-run and started again. Every tick
    has exactly one run, which succeeds; the killed attempt is retried (attempt 2) by the other. Schedule
    time runs 4× faster than real time (``* * * * *`` ticks every 15 s; the runs sleep 3 real seconds; the killed
    run's retry ends well before the second tick, which the default ``overlap="skip"`` would skip otherwise)."""
    ticks_dir = tmp_path / "ticks"
    ticks_dir.mkdir()
    epoch = time.time()
    start = (epoch // 60 + 1) * 60 - 4 * SPEED  # the first tick 4 real seconds after the daemons start

    def schedule_now() -> float:  # tests/cli_flows/scheduled.py's clock_now, as a timestamp
        return start + (time.time() - epoch) * SPEED

    cli.env.update({"TICKS_DIR": str(ticks_dir), "TICK_SLEEP": "3", "CLOCK_SPEED": str(SPEED),
                    "CLOCK_EPOCH": repr(epoch), "CLOCK_START": repr(start)})
    lines = ticks_dir / "ticks"
    daemons = [cli.popen("daemon", SCHEDULED), cli.popen("daemon", SCHEDULED)]
    try:
        wait_until(lambda: lines.exists() and lines.read_text().strip(), timeout=30)  # the first tick started
        first_tick, _, worker = lines.read_text().split()[:3]
        owner = int(Path(f"/proc/{worker}/stat").read_text().split(")")[-1].split()[1])  # the worker's daemon
        victim = next(d for d in daemons if d.pid == owner)
        victim.send_signal(signal.SIGKILL)
        victim.wait(10)
        daemons.remove(victim)
        daemons.append(cli.popen("daemon", SCHEDULED))  # started again
        first = datetime.fromisoformat(first_tick)
        second = first.timestamp() + 60
        wait_until(lambda: schedule_now() > second + SPEED and _finished(api, 2), timeout=60)
    finally:
        results = [stop(d) for d in daemons]
    assert all(code == 0 for code, _ in results), results
    runs = sorted(api.list_runs(workflow="minutely", limit=None), key=lambda r: r.scheduled_time)
    assert [r.scheduled_time.timestamp() for r in runs][:2] == [first.timestamp(), second]
    assert len({r.scheduled_time for r in runs}) == len(runs)  # one run per tick
    assert all(r.status == "success" for r in runs), [(r.scheduled_time, r.status, r.error) for r in runs]
    assert runs[0].attempt == 2  # the killed attempt, retried by a live daemon
    written = [line.split() for line in lines.read_text().splitlines()]
    assert [(t, a) for t, a, _ in written if t == first_tick] == [(first_tick, "1"), (first_tick, "2")]


def _finished(api, count: int) -> bool:
    runs = api.list_runs(workflow="minutely", limit=None)
    return len(runs) >= count and all(r.status not in ("queued", "running") for r in runs)
