"""Listing and counting runs and backfills by what the web UI filters on — partition key, trigger, creation time,
tags — and a backfill's status and grid read together (``backfill_snapshot``). On SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import anachron as ac

DAYS = ac.DailyPartitions("2024-01-01", "2024-01-11")


@ac.workflow(partitions=DAYS)
def days():
    return ac.context().partition_keys


@ac.workflow(schedule=ac.Schedule("*/5 * * * *", id="every_five"))
def ticking():
    return None


@pytest.fixture
def repo(storage_url, make_repo, fake_clock):
    fake_clock.now = datetime(2026, 1, 1, 9, 2, tzinfo=timezone.utc)
    return make_repo([days, ticking], storage=storage_url, executor=ac.InProcessExecutor(2), clock=fake_clock)


def test_runs_of_one_partition_key_alone_or_batched(repo):
    repo.backfill(days, partition_range=ac.PartitionKeyRange.single("2024-01-01", "2024-01-04"))
    repo.backfill(days, partition_range=ac.PartitionKeyRange.single("2024-01-02", "2024-01-07"),
                  strategy=ac.BackfillStrategy.batched(3))
    manual = repo.run(days, "2024-01-02")
    found = repo.list_runs(days, partition_key="2024-01-02")
    assert [r.run_id for r in found][0] == manual.run_id  # newest first
    assert [r.partition_keys for r in found] == [["2024-01-02"], ["2024-01-02", "2024-01-03", "2024-01-04"],
                                                 ["2024-01-02"]]
    assert repo.count_runs(days, partition_key="2024-01-02") == 3
    assert repo.count_runs(partition_key="2024-01-05") == 1  # without a workflow too
    assert repo.list_runs(days, partition_key="2024-01-09") == []
    assert repo.count_runs(days, partition_key="2024-01-02", status="success", trigger="backfill") == 2


def test_runs_by_trigger_and_creation_time(repo, fake_clock):
    daemon = repo.daemon()
    daemon.step()  # first seen at 09:02
    fake_clock.advance(3 * 60 + 0.5)
    daemon.step()  # the 09:05 tick
    tick = repo.wait_run(repo.list_runs(ticking, limit=1)[0].run_id)
    assert tick.status == "success"
    fake_clock.advance(60)
    manual = repo.run(ticking)
    fake_clock.advance(60)
    replay = repo.backfill_schedule(ticking, "every_five", start="2026-01-01T08:00:00+00:00",
                                    end="2026-01-01T08:10:00+00:00")
    assert replay.num_runs == 3
    assert [r.run_id for r in repo.list_runs(trigger="scheduled")] == [tick.run_id]
    assert [r.run_id for r in repo.list_runs(trigger="manual")] == [manual.run_id]
    assert {r.backfill_id for r in repo.list_runs(trigger="backfill")} == {replay.backfill_id}
    assert repo.count_runs(trigger="backfill") == 3
    with pytest.raises(ValueError, match="trigger: expected one of backfill, scheduled, manual, got 'cron'"):
        repo.list_runs(trigger="cron")
    # creation time: [after, before)
    at = manual.created_at
    assert [r.run_id for r in repo.list_runs(created_after=at, created_before=at + timedelta(seconds=1))] == [
        manual.run_id]
    assert repo.count_runs(created_before=at) == 1  # the tick
    naive = at.replace(tzinfo=None)  # a naive time is UTC
    assert repo.count_runs(created_after=naive) == 4


def test_counts_stop_at_the_cap(repo):
    repo.backfill(days)
    assert repo.count_runs(days) == 10
    assert repo.count_runs(days, cap=4) == 4
    with pytest.raises(ValueError, match="cap: must be an integer >= 1"):
        repo.count_runs(cap=0)


def test_backfills_by_tag_and_their_count(repo):
    first = repo.backfill(days, partition_keys=["2024-01-01"], tags={"team": "ads", "reason": "late"})
    repo.backfill(days, partition_keys=["2024-01-02"], tags={"team": "search"})
    rerun = repo.rerun_backfill(first.backfill_id)  # nothing failed: an empty backfill, tagged all the same
    assert [b.backfill_id for b in repo.list_backfills(tags={"team": "search"})] != []
    assert {b.backfill_id for b in repo.list_backfills(tags={"team": "ads"})} == {rerun.backfill_id,
                                                                                 first.backfill_id}
    assert [b.backfill_id for b in repo.list_backfills(tags={"anachron/rerun_of": first.backfill_id})] == [
        rerun.backfill_id]
    assert repo.count_backfills(tags={"team": "ads", "reason": "late"}) == 2
    assert repo.count_backfills(tags={"team": "ads", "reason": "early"}) == 0
    assert repo.count_backfills(workflow=days) == 3 and repo.count_backfills(status="completed", cap=2) == 2
    # a quote or a wildcard in a tag is matched as text
    assert repo.list_backfills(tags={"team": "a%"}) == [] and repo.list_backfills(tags={'te"am': "ads"}) == []


def test_a_backfill_snapshot_reads_status_and_grid_together(repo):
    result = repo.backfill(days, block=True)
    snap = repo.backfill_snapshot(result.backfill_id, max_cells=3)
    assert snap.status.completed_partitions == 10 and snap.grid.cell_size == 4 and snap.zoom is None
    assert sum(snap.grid.counts.values()) == snap.status.total_partitions
    zoomed = repo.backfill_snapshot(result.backfill_id, max_cells=3, zoom=2)
    assert zoomed.zoom is not None
    index, cells = zoomed.zoom
    assert index == 2 and [(c.first_key, c.status) for c in cells] == [("2024-01-09", "success"),
                                                                       ("2024-01-10", "success")]
    assert all(c.run_id for c in cells)
    assert repo.backfill_snapshot(result.backfill_id, max_cells=3, zoom=3).zoom is None  # no such cell
    with pytest.raises(LookupError, match="backfill 'nope' not found"):
        repo.backfill_snapshot("nope")
