"""The run queue: priorities with aging and every limit, as a pure function and through the coordinator."""

from __future__ import annotations

import pytest

import anachron as ac
import flows_basic as fb
from anachron.engine.queue import ActiveRun, QueuedRun, QueueLimits, effective_priority, select_runs
from helpers import wait_until

ME = "me"


def q(run_id, priority=0, created=0.0, seq=None, workflow="wf", owner=ME, backfill=None, bmax=None, tags=None,
      keys=()):
    return QueuedRun(run_id, workflow, priority, created, seq if seq is not None else int(created * 10),
                     owner, backfill, bmax, tags or {}, tuple(keys))


def ids(runs):
    return [r.run_id for r in runs]


def test_higher_priority_first_then_oldest():
    queued = [q("old-backfill", -10, 0), q("new-regular", 0, 50), q("older-regular", 0, 10)]
    chosen = select_runs(queued, [], QueueLimits(priority_aging_seconds=60), now=100, owner=ME, capacity=3)
    assert ids(chosen) == ["older-regular", "new-regular", "old-backfill"]


def test_aging_lifts_a_waiting_run_one_point_per_interval():
    run = q("r", -10, 0)
    assert effective_priority(run, now=59, aging_seconds=60) == -10
    assert effective_priority(run, now=60, aging_seconds=60) == -9
    assert effective_priority(run, now=600, aging_seconds=60) == 0
    limits = QueueLimits(max_concurrent_runs=1, priority_aging_seconds=60)
    for now, first in ((530, "regular"), (660, "backfill")):  # -10 + 8 < 0, then -10 + 11 > 0: never starved
        queued = [q("backfill", -10, 0), q("regular", 0, now - 10)]
        assert ids(select_runs(queued, [], limits, now=now, owner=ME, capacity=1)) == [first]


def test_global_workflow_and_backfill_limits():
    running = [ActiveRun("wf"), ActiveRun("other", backfill_id="b")]
    queued = [q(f"r{i}", 0, i) for i in range(5)]
    assert len(select_runs(queued, running, QueueLimits(max_concurrent_runs=4), 10, ME, 10)) == 2
    assert len(select_runs(queued, running, QueueLimits(workflow_limits={"wf": 3}), 10, ME, 10)) == 2
    queued_b = [q(f"b{i}", 0, i, backfill="b", bmax=3) for i in range(5)]
    assert len(select_runs(queued_b, running, QueueLimits(), 10, ME, 10)) == 2
    assert len(select_runs(queued, [], QueueLimits(), 10, ME, capacity=3)) == 3


def test_tag_limits():
    limit = ac.TagConcurrencyLimit("db", "warehouse", limit=1)
    per_value = ac.TagConcurrencyLimit("region", limit=1, per_unique_value=True)
    queued = [q("a", tags={"db": "warehouse"}, created=1), q("b", tags={"db": "warehouse"}, created=2),
              q("c", tags={"db": "lake"}, created=3), q("d", tags={"region": "us"}, created=4),
              q("e", tags={"region": "us"}, created=5), q("f", tags={"region": "eu"}, created=6)]
    chosen = select_runs(queued, [], QueueLimits(tag_limits=[limit, per_value]), 10, ME, 10)
    assert ids(chosen) == ["a", "c", "d", "f"]
    with pytest.raises(ValueError, match="limit"):
        ac.TagConcurrencyLimit("db", limit=-1)


def test_partition_exclusion_and_reservation_by_other_processes():
    running = [ActiveRun("wf", keys=("2024-01-01",))]
    queued = [q("same-key", keys=["2024-01-01"], created=1), q("other-key", keys=["2024-01-02"], created=2),
              q("theirs", owner="elsewhere", keys=["2024-01-03"], created=0.5),
              q("mine-same-as-theirs", keys=["2024-01-03"], created=3)]
    chosen = select_runs(queued, running, QueueLimits(), 10, ME, 10)
    assert ids(chosen) == ["other-key"]
    # a higher-priority run owned elsewhere keeps its global slot
    queued = [q("theirs", 5, owner="elsewhere"), q("mine", 0)]
    assert select_runs(queued, [], QueueLimits(max_concurrent_runs=1), 10, ME, 10) == []


def test_run_queue_config_validation():
    with pytest.raises(ValueError, match="max_concurrent_runs"):
        ac.RunQueueConfig(max_concurrent_runs=0)
    with pytest.raises(ValueError, match="pools"):
        ac.RunQueueConfig(pools={"warehouse": 0})
    with pytest.raises(ValueError, match="priority_aging_seconds"):
        ac.RunQueueConfig(priority_aging_seconds=0)


@pytest.mark.parametrize("waited, first", [(60, "regular"), (700, "backfill")])
def test_coordinator_priority_and_aging_with_a_controllable_clock(storage_url, make_repo, fake_clock, waited, first):
    fb.reset()
    repo = make_repo([fb.sleepy, fb.flaky], storage=storage_url, executor=ac.InProcessExecutor(4),
                     run_queue=ac.RunQueueConfig(max_concurrent_runs=1, priority_aging_seconds=60), clock=fake_clock)
    blocker = repo.run(fb.sleepy, partition_key="2024-06-30", params={"seconds": 0.5},
                       block=False)
    wait_until(lambda: repo.get_run(blocker.run_id).status == "running")
    backfill = repo.backfill(fb.flaky, partition_keys=["2024-01-01"], block=False)
    wait_until(lambda: repo.get_backfill(backfill.backfill_id).queued_runs == 1)
    fake_clock.advance(waited)
    regular = repo.run(fb.flaky, partition_key="2024-02-01", block=False)
    repo.wait_backfill(backfill.backfill_id, timeout=20)
    regular = repo.wait_run(regular.run_id, timeout=20)
    (backfill_run,) = repo.list_runs(backfill_id=backfill.backfill_id)
    order = sorted([("backfill", backfill_run.started_at), ("regular", regular.started_at)], key=lambda x: x[1])
    assert order[0][0] == first
    assert backfill_run.priority == -10 and regular.priority == 0


def test_pools_limit_concurrent_tasks(sqlite_url, make_repo):
    fb.reset()
    repo = make_repo([fb.pooled], storage=sqlite_url, executor=ac.InProcessExecutor(6),
                     run_queue=ac.RunQueueConfig(pools={"warehouse": 2}))
    result = repo.backfill(fb.pooled, partition_keys=[f"2024-01-{d:02d}" for d in range(1, 13)], max_concurrency=6)
    assert result.completed == 12
    assert fb.PEAK["value"] == 2


def test_tag_limits_through_the_coordinator(sqlite_url, make_repo):
    fb.reset()
    repo = make_repo([fb.flaky], storage=sqlite_url, executor=ac.InProcessExecutor(6),
                     run_queue=ac.RunQueueConfig(tag_concurrency_limits=[ac.TagConcurrencyLimit("team", "data", 2)]))
    result = repo.backfill(fb.flaky, partition_keys=[f"2024-01-{d:02d}" for d in range(1, 13)], max_concurrency=6,
                           tags={"team": "data"}, params={"delay": 0.03})
    assert result.completed == 12
    assert fb.PEAK["value"] == 2
