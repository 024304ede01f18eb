"""Uniflow's backfill: replay a workflow without partitions or schedule "as if triggered" at every tick of a
cron over a range (issue 13, item 6), on SQLite and PostgreSQL, from Python and HTTP (the CLI's ``--cron`` is in
test_cli_migrants.py). Each run's logical clock is its tick; runs write what they saw to marker files.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient

import anachron as ac
import flows_migrants as fm
from anachron.api import create_app

UTC = timezone.utc
NOW = datetime(2026, 1, 10, 12, tzinfo=UTC)


@pytest.fixture
def repo(storage_url, make_repo, fake_clock):
    fake_clock.now = NOW
    return make_repo([fm.export_snapshot, fm.daily_summary, fm.nightly_export], storage=storage_url,
                     executor=ac.InProcessExecutor(2), clock=fake_clock)


def test_one_run_per_cron_tick_at_its_logical_time(repo, tmp_path):
    result = repo.backfill(fm.export_snapshot, start="2026-01-01", end="2026-01-03T12:00", cron="0 0 * * *",
                           params={"out": str(tmp_path), "region": "eu"})
    assert result.status == "completed" and result.num_runs == 3
    seen = sorted(fm.seen(str(tmp_path)), key=lambda r: r["logical_time"])
    assert [r["now"] for r in seen] == [f"2026-01-0{d}T00:00:00+00:00" for d in (1, 2, 3)]  # ac.now() = the tick
    assert {r["region"] for r in seen} == {"eu"}
    status = repo.get_backfill(result.backfill_id)
    assert status.request.cron == "0 0 * * *" and status.request.timezone is None
    assert "anachron/trigger" not in dict(status.tags)  # a cron's ticks are no schedule's


def test_cron_ticks_in_a_timezone_and_up_to_now(repo):
    plan = repo.backfill(fm.export_snapshot, start="2026-01-08", end="2026-02-01", cron="0 6 * * *",
                         timezone="Europe/Paris", dry_run=True)
    # 06:00 in Paris is 05:00 UTC; the end (after now) is clipped to now: 01-08, 01-09 and 01-10 at 05:00 UTC
    assert list(plan.partition_keys) == [f"2026-01-{d:02d}T05:00:00+00:00" for d in (8, 9, 10)]
    assert plan.request.end == NOW.isoformat()


def test_reprocess_and_rerun_keep_to_the_cron(repo, tmp_path):
    first = repo.backfill(fm.export_snapshot, start="2026-01-01", end="2026-01-02", cron="0 0 * * *",
                          params={"out": str(tmp_path)})
    assert first.num_runs == 2
    again = repo.backfill(fm.export_snapshot, start="2026-01-01", end="2026-01-04", cron="0 0 * * *",
                          params={"out": str(tmp_path)}, reprocess="missing")
    assert list(again.partition_keys) == ["2026-01-03T00:00:00+00:00", "2026-01-04T00:00:00+00:00"]
    rerun = repo.rerun_backfill(again.backfill_id, dry_run=True)  # nothing failed: nothing to rerun
    assert rerun.num_runs == 0


@pytest.mark.parametrize("kwargs, message", [
    ({"start": "2026-01-01", "cron": "0 0 * * *", "workflow": "daily_summary"},
     "cron: workflow 'daily_summary' is partitioned"),
    ({"cron": "0 0 * * *", "workflow": "export_snapshot"}, "start: a backfill over the ticks of a cron needs a start"),
    ({"start": "2026-01-01", "cron": "every day", "workflow": "export_snapshot"}, "cron"),
    ({"start": "2026-01-01", "cron": "0 0 * * *", "timezone": "Mars/Olympus", "workflow": "export_snapshot"},
     "timezone: unknown timezone 'Mars/Olympus'"),
    ({"start": "2026-01-01", "timezone": "UTC", "workflow": "export_snapshot"}, "timezone: it is the cron's timezone"),
    ({"start": "2026-01-01", "workflow": "export_snapshot"}, "cron=\"0 0 * * *\""),  # what to do, said
])
def test_cron_requests_are_checked_naming_the_field(repo, kwargs, message):
    kwargs = dict(kwargs)
    workflow = kwargs.pop("workflow")
    with pytest.raises(ValueError) as caught:
        repo.backfill(workflow, **kwargs)
    assert message in str(caught.value)
    assert repo.list_backfills() == []


def test_cron_backfills_over_http(repo, tmp_path):
    with TestClient(create_app(repo, daemon=False), base_url="http://localhost") as client:
        body = {"workflow": "export_snapshot", "start": "2026-01-01", "end": "2026-01-02", "cron": "0 12 * * *",
                "params": {"out": str(tmp_path)}}
        created = client.post("/api/v1/backfills", json=body)
        assert created.status_code == 201, created.text
        assert created.json()["partition_keys"] == ["2026-01-01T12:00:00+00:00"]
        assert created.json()["request"]["cron"] == "0 12 * * *"
        refused = client.post("/api/v1/backfills", json={**body, "cron": "61 * * * *"})
        assert refused.status_code == 422 and refused.json()["error"]["message"].startswith("cron"), refused.text
        status = repo.wait_backfill(created.json()["backfill_id"], timeout=30)
    assert status.status == "completed" and [r["logical_time"] for r in fm.seen(str(tmp_path))] == [
        "2026-01-01T12:00:00+00:00"]
