"""Task tags count against ``TagConcurrencyLimit``s at the task level, across processes, as Prefect's tag limits
count task runs (issue 13, item 7). Every call records when it held the resource (marker files), so overlaps
are measured from what ran, in worker processes (``LocalExecutor``) or threads.
"""

from __future__ import annotations

import pytest

import anachron as ac
import flows_migrants as fm

DAYS = [f"2024-01-0{d}" for d in range(1, 5)]


def test_tagged_task_calls_wait_for_a_slot_across_worker_processes(storage_url, make_repo, tmp_path):
    tagged, free = tmp_path / "tagged", tmp_path / "free"
    tagged.mkdir()
    free.mkdir()
    limits = ac.RunQueueConfig(tag_concurrency_limits=[ac.TagConcurrencyLimit("db", "warehouse", 1)])
    repo = make_repo([fm.loads_warehouse], storage=storage_url, executor=ac.LocalExecutor(4), run_queue=limits)
    result = repo.backfill(fm.loads_warehouse, partition_keys=DAYS, max_concurrency=4,
                           params={"out": str(tagged), "seconds": 0.4})
    assert result.status == "completed"
    assert len(list(tagged.glob("call-*"))) == 4 and fm.peak(str(tagged), "call") == 1  # one at a time
    # the runs are not tagged: the limit holds the task calls, not the runs, and untagged tasks run freely
    loose = repo.backfill(fm.loads_warehouse, partition_keys=DAYS, max_concurrency=4,
                          params={"out": str(free), "seconds": 0.8, "tagged": False})
    assert loose.status == "completed" and fm.peak(str(free), "free") >= 2


@pytest.mark.parametrize("limit", [
    ac.TagConcurrencyLimit("db", limit=2),  # any value of the tag
    ac.TagConcurrencyLimit("db", per_unique_value=True, limit=2),  # each value apart
])
def test_a_limit_on_a_tag_key_counts_task_calls(limit, sqlite_url, make_repo, tmp_path):
    repo = make_repo([fm.loads_warehouse], storage=sqlite_url, executor=ac.InProcessExecutor(4),
                     run_queue=ac.RunQueueConfig(tag_concurrency_limits=[limit]))
    result = repo.backfill(fm.loads_warehouse, partition_keys=DAYS, max_concurrency=4,
                           params={"out": str(tmp_path), "seconds": 0.3})
    assert result.status == "completed" and fm.peak(str(tmp_path), "call") == 2


def test_pool_names_under_anachron_are_reserved():
    with pytest.raises(ValueError, match="RunQueueConfig.pools: 'anachron/tag:db' is not a pool name"):
        ac.RunQueueConfig(pools={"anachron/tag:db": 1})
