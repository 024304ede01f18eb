"""Backfill behaviour through the public API, on SQLite and PostgreSQL (the storage contract suite)."""

from __future__ import annotations

import time

import pytest

import anachron as ac
import flows_basic as fb
from flows_basic import batch_marks, daily_etl, flaky, morning_report, per_customer, regional, sleepy
from helpers import wait_until

ALL = [daily_etl, flaky, batch_marks, regional, morning_report, sleepy, per_customer]


@pytest.fixture(autouse=True)
def _reset():
    fb.reset()
    yield
    fb.reset()


@pytest.fixture
def repo(storage_url, make_repo):
    return make_repo(ALL, storage=storage_url, executor=ac.InProcessExecutor(4))


def days(start: int, end: int) -> list[str]:
    return [f"2024-01-{d:02d}" for d in range(start, end + 1)]


def test_multi_run_backfill_runs_each_partition_once(repo):
    result = repo.backfill("daily_etl", start="2024-01-01", end="2024-01-10")
    assert (result.status, result.num_partitions, result.num_runs, result.completed) == ("completed", 10, 10, 10)
    assert list(result.partition_keys) == days(1, 10)
    status = repo.get_backfill(result.backfill_id)
    assert status.completed_partitions == 10 and status.failed_partitions == status.canceled_partitions == 0
    runs = repo.list_runs(backfill_id=result.backfill_id, limit=None)
    assert sorted(r.partition_key for r in runs) == days(1, 10)
    for run in runs:
        assert run.status == "success" and run.priority == -10
        assert run.idempotency_key == f"backfill:{result.backfill_id}:{run.partition_key}"
        assert run.tags["anachron/backfill"] == result.backfill_id
    statuses = repo.partition_status(daily_etl)
    assert all(statuses[k] == "success" for k in days(1, 10))
    assert statuses["2024-01-11"] == "missing"


def test_single_run_strategy_puts_every_key_in_one_run(repo):
    result = repo.backfill(daily_etl, partition_keys=days(1, 5), strategy=ac.BackfillStrategy.single_run())
    assert result.num_runs == 1 and result.completed == 5
    (seen,) = fb.SEEN
    assert seen["keys"] == days(1, 5)
    start, end = seen["window"]
    assert start.isoformat().startswith("2024-01-01") and end.isoformat().startswith("2024-01-06")
    assert seen["logical_time"] == end


def test_batched_strategy_and_plan(repo):
    result = repo.backfill(daily_etl, partition_range=ac.PartitionKeyRange.single("2024-01-01", "2024-01-10"),
                           strategy=ac.BackfillStrategy.batched(4))
    assert [list(g) for g in result.plan] == [days(1, 4), days(5, 8), days(9, 10)]
    assert result.num_runs == 3 and result.completed == 10
    assert sorted(len(s["keys"]) for s in fb.SEEN) == [2, 4, 4]


def test_per_dimension_strategy(repo):
    rng = ac.PartitionKeyRange.multi({"date": ("2024-01-01", "2024-01-03")})
    strategy = ac.BackfillStrategy.per_dimension(multi_run=["region"], single_run=["date"])
    result = repo.backfill(regional, partition_range=rng, strategy=strategy)
    assert result.num_partitions == 9 and result.num_runs == 3 and result.status == "completed"
    groups = sorted(tuple(s["keys"]) for s in fb.SEEN)
    assert groups[0] == tuple(f"date=2024-01-0{d}|region=asia" for d in (1, 2, 3))
    with pytest.raises(ValueError, match="both"):
        ac.BackfillStrategy.per_dimension(multi_run=["date"], single_run=["date"])
    with pytest.raises(ValueError, match="single_run"):
        ac.BackfillStrategy.per_dimension(multi_run=["date"], single_run=[])
    with pytest.raises(ValueError, match="nope"):
        repo.backfill(regional, partition_range=rng,
                      strategy=ac.BackfillStrategy.per_dimension(multi_run=["nope"], single_run=["date"]))


def test_multi_partition_range_with_lists(repo):
    rng = ac.PartitionKeyRange.multi({"date": ("2024-01-01", "2024-01-02"), "region": ["us", "eu"]})
    result = repo.backfill(regional, partition_range=rng, dry_run=True)
    assert list(result.partition_keys) == ["date=2024-01-01|region=us", "date=2024-01-01|region=eu",
                                           "date=2024-01-02|region=us", "date=2024-01-02|region=eu"]


def test_workflow_default_strategy_is_used(storage_url, make_repo):
    @ac.workflow(name="batched_default", partitions=fb.DAILY, backfill_strategy=ac.BackfillStrategy.batched(5))
    def batched_default():
        pass

    repo = make_repo([batched_default], storage=storage_url, executor=ac.InProcessExecutor(2))
    assert repo.backfill("batched_default", partition_keys=days(1, 10), dry_run=True).num_runs == 2


def test_failure_policy_continue_finishes_with_failures(repo):
    result = repo.backfill(flaky, partition_keys=days(1, 6), params={"fail_keys": ["2024-01-02", "2024-01-05"]})
    assert (result.status, result.completed, result.failed, result.canceled) == ("failed", 4, 2, 0)
    status = repo.get_backfill(result.backfill_id)
    assert status.status == "failed" and "2 partition" in status.error
    failed = repo.list_runs(backfill_id=result.backfill_id, status="failed")
    assert sorted(r.partition_key for r in failed) == ["2024-01-02", "2024-01-05"]
    assert "boom on 2024-01-02" in [r for r in failed if r.partition_key == "2024-01-02"][0].error
    assert repo.partition_status(flaky)["2024-01-05"] == "failed"


def test_failure_policy_stop_cancels_the_rest(repo):
    result = repo.backfill(flaky, partition_keys=days(1, 8), params={"fail_keys": ["2024-01-02"]},
                           failure_policy="stop_on_failure", max_concurrency=1)
    assert result.status == "failed"
    assert result.completed == 1 and result.failed == 1 and result.canceled == 6
    ran = [s["key"] for s in fb.SEEN]
    assert ran == ["2024-01-01", "2024-01-02"]


def test_rerun_runs_only_failed_and_canceled_partitions(repo):
    fb.FAILING.update({"2024-01-03", "2024-01-07"})
    first = repo.backfill(flaky, partition_keys=days(1, 8))
    assert first.failed == 2
    fb.FAILING.clear()
    fb.SEEN.clear()
    plan = repo.rerun_backfill(first.backfill_id, dry_run=True)
    assert list(plan.partition_keys) == ["2024-01-03", "2024-01-07"]
    assert repo.list_backfills() and len(repo.list_backfills()) == 1  # the dry run stored nothing
    rerun = repo.rerun_backfill(first.backfill_id)
    assert rerun.status == "completed" and rerun.num_partitions == 2
    assert sorted(s["key"] for s in fb.SEEN) == ["2024-01-03", "2024-01-07"]
    assert dict(repo.get_backfill(rerun.backfill_id).tags)["anachron/rerun_of"] == first.backfill_id
    with pytest.raises(ValueError, match="rerun"):
        started = repo.backfill(sleepy, partition_keys=["2024-01-01"], params={"seconds": 5}, block=False)
        repo.rerun_backfill(started.backfill_id)
    repo.cancel_backfill(started.backfill_id)


def test_rerun_includes_partitions_never_started(repo):
    result = repo.backfill(flaky, partition_keys=days(1, 6), params={"fail_keys": ["2024-01-01"]},
                           failure_policy="stop_on_failure", max_concurrency=1)
    assert result.canceled == 5
    plan = repo.rerun_backfill(result.backfill_id, dry_run=True)
    assert list(plan.partition_keys) == days(1, 6)


def test_reprocess_missing_and_failed(repo):
    repo.backfill(flaky, partition_keys=days(1, 4), params={"fail_keys": ["2024-01-02"]})
    missing = repo.backfill(flaky, partition_keys=days(1, 6), reprocess="missing", dry_run=True)
    assert list(missing.partition_keys) == ["2024-01-05", "2024-01-06"]
    both = repo.backfill(flaky, partition_keys=days(1, 6), reprocess="failed_and_missing", dry_run=True)
    assert list(both.partition_keys) == ["2024-01-02", "2024-01-05", "2024-01-06"]
    assert repo.backfill(flaky, partition_keys=days(1, 6), reprocess="all", dry_run=True).num_partitions == 6


def test_order_newest_first(repo):
    repo.backfill(daily_etl, partition_keys=days(1, 5), order="newest_first", max_concurrency=1)
    assert [s["key"] for s in fb.SEEN] == list(reversed(days(1, 5)))


def test_explicit_keys_run_in_partition_order(repo):
    result = repo.backfill(daily_etl, partition_keys=["2024-01-03", "2024-01-01", "2024-01-02"], dry_run=True)
    assert list(result.partition_keys) == days(1, 3)


def test_tags_priority_params_and_config(repo):
    result = repo.backfill(flaky, partition_keys=days(1, 2), tags=[("team", "data"), ("anachron/priority", "5")],
                           params={"delay": 0.0}, config={"flaky": {"fail_keys": []}})
    runs = repo.list_runs(backfill_id=result.backfill_id)
    assert {r.priority for r in runs} == {5}
    assert all(r.tags["team"] == "data" for r in runs)
    assert all(r.params == {"delay": 0.0, "fail_keys": []} for r in runs)
    assert repo.get_backfill(result.backfill_id).tags == [("team", "data"), ("anachron/priority", "5")]


def test_idempotency_key_returns_the_existing_backfill(repo):
    first = repo.backfill(daily_etl, partition_keys=days(1, 3), idempotency_key="q1")
    again = repo.backfill(daily_etl, partition_keys=days(1, 3), idempotency_key="q1")
    assert again.backfill_id == first.backfill_id
    assert len(repo.list_backfills()) == 1
    assert len(repo.list_runs(workflow=daily_etl, limit=None)) == 3


def test_dry_run_stores_nothing(repo):
    result = repo.backfill(daily_etl, start="2024-01-01", end="2024-03-31", strategy=ac.BackfillStrategy.batched(7),
                           dry_run=True)
    assert result.is_dry_run and result.backfill_id is None and result.num_partitions == 91
    assert result.num_runs == 13 and list(result.plan[0]) == days(1, 7)
    assert repo.list_backfills() == [] and repo.list_runs() == []


def test_a_dry_run_estimates_how_long_from_recent_runs(repo):
    first = repo.backfill(daily_etl, partition_keys=days(6, 20), dry_run=True, max_concurrency=8)
    assert first.estimate is not None and first.estimate.seconds is None
    assert first.estimate.basis == "no run history for daily_etl yet" and first.estimate.runs == 15
    # the InProcessExecutor(4) runs at most 4 at once, whatever max_concurrency says
    assert (first.estimate.concurrency, first.estimate.limited_by) == (4, "the executor's 4 workers")

    done = repo.backfill(daily_etl, partition_keys=days(1, 5))
    assert done.estimate is None  # only a dry run carries one
    runs = repo.list_runs(workflow=daily_etl, limit=None)
    took = sorted((r.ended_at - r.started_at).total_seconds() for r in runs)
    plan = repo.backfill(daily_etl, partition_keys=days(6, 20), dry_run=True, max_concurrency=2)
    estimate = plan.estimate
    assert estimate.sample_size == 5 and estimate.runs == 15 and estimate.concurrency == 2
    assert estimate.median_run_seconds == pytest.approx(took[2], abs=2e-6)  # Run times are whole microseconds
    assert estimate.seconds == pytest.approx(8 * estimate.median_run_seconds)  # ceil(15 / 2) waves
    assert estimate.basis.startswith("median run ") and estimate.basis.endswith(" over the last 5 runs")

    batched = repo.backfill(daily_etl, partition_keys=days(6, 20), dry_run=True,
                            strategy=ac.BackfillStrategy.batched(5)).estimate
    assert batched.runs == 3 and batched.median_run_seconds == pytest.approx(5 * estimate.median_run_seconds)
    assert "× 5 partitions per run" in batched.basis

    both = repo.backfill(selection=["daily_etl", "flaky"], partition_keys=days(6, 7), dry_run=True).estimate
    assert both.runs == 4 and both.seconds is None and both.basis.endswith("; no run history for flaky yet")


def test_schedule_backfill_replays_ticks(repo):
    result = repo.backfill(morning_report, start="2024-03-01", end="2024-03-03T23:00:00+00:00")
    assert result.num_runs == 3 and result.status == "completed"
    ticks = sorted(s["scheduled"] for s in fb.SEEN)
    assert [t.isoformat() for t in ticks] == [f"2024-03-0{d}T06:00:00+00:00" for d in (1, 2, 3)]
    assert all(s["logical_time"] == s["scheduled"] for s in fb.SEEN)
    again = repo.backfill_schedule("morning_report", trigger_id="schedule", start="2024-03-01",
                                   end="2024-03-02T06:00:00+00:00", labels=[("source", "kestra")])
    assert again.num_runs == 2
    assert repo.get_backfill(again.backfill_id).tags == [("source", "kestra"), ("anachron/trigger", "schedule")]
    with pytest.raises(ValueError, match="trigger_id"):
        repo.backfill_schedule("morning_report", trigger_id="nightly", start="2024-03-01")


def test_mark_partition_failed_in_a_batched_run(repo):
    result = repo.backfill(batch_marks, partition_keys=days(1, 4), strategy=ac.BackfillStrategy.single_run(),
                           params={"bad": ["2024-01-02"]})
    assert (result.completed, result.failed) == (3, 1) and result.status == "failed"
    statuses = repo.partition_status(batch_marks)
    assert statuses["2024-01-02"] == "failed" and statuses["2024-01-01"] == "success"
    assert list(repo.rerun_backfill(result.backfill_id, dry_run=True).partition_keys) == ["2024-01-02"]


@pytest.mark.parametrize("kwargs, field", [
    ({"partition_keys": ["2024-01-01"], "start": "2024-01-01"}, "selection"),
    ({"partition_keys": ["2024-13-01"]}, "2024-13-01"),
    ({"partition_range": ac.PartitionKeyRange.single("2024-01-05", "2024-01-01")}, "2024-01-05"),
    ({"partition_keys": ["2024-01-01"], "failure_policy": "explode"}, "failure_policy"),
    ({"partition_keys": ["2024-01-01"], "reprocess": "some"}, "reprocess"),
    ({"partition_keys": ["2024-01-01"], "order": "random"}, "order"),
    ({"partition_keys": ["2024-01-01"], "max_concurrency": 0}, "max_concurrency"),
    ({"partition_keys": ["2024-01-01"], "strategy": "single_run"}, "strategy"),
    ({"partition_keys": ["2024-01-01"], "tags": [("anachron/priority", "high")]}, "anachron/priority"),
    ({"partition_keys": ["2024-01-01"], "config": {"other": {}}}, "config"),
    ({"partition_keys": ["2024-01-01"], "params": {"nope": 1}}, "nope"),
    ({"start": "yesterday"}, "start"),
    ({"start": "2024-02-01", "end": "2024-01-01"}, "end"),
])
def test_bad_input_is_refused_before_anything_is_written(repo, kwargs, field):
    with pytest.raises(ValueError, match=field):
        repo.backfill("flaky", **kwargs)
    assert repo.list_backfills() == [] and repo.list_runs() == []


def test_unknown_workflow_and_backfill_ids(repo):
    with pytest.raises(ValueError, match="nope"):
        repo.backfill("nope", partition_keys=["2024-01-01"])
    assert repo.get_backfill("missing") is None
    for call in (repo.pause_backfill, repo.resume_backfill, repo.cancel_backfill, repo.rerun_backfill,
                 repo.wait_backfill):
        with pytest.raises(ac.NotFoundError, match="missing"):
            call("missing")


def test_pause_stops_new_starts_and_resume_continues(repo):
    result = repo.backfill(flaky, partition_keys=days(1, 8), params={"delay": 0.15}, max_concurrency=1, block=False)
    bid = result.backfill_id
    wait_until(lambda: repo.get_backfill(bid).completed_partitions >= 1)
    paused = repo.pause_backfill(bid)
    assert paused.status == "paused"
    # the run in flight finishes; nothing new starts
    wait_until(lambda: repo.get_backfill(bid).running_runs == 0, timeout=5)
    done = repo.get_backfill(bid).completed_partitions
    time.sleep(0.5)
    status = repo.get_backfill(bid)
    assert status.completed_partitions == done and status.running_runs == 0 and status.status == "paused"
    repo.resume_backfill(bid)
    final = repo.wait_backfill(bid, timeout=20)
    assert final.status == "completed" and final.completed_partitions == 8


def test_cancel_cancels_queued_and_stops_running_runs(repo):
    result = repo.backfill(sleepy, partition_keys=days(1, 6), params={"seconds": 30}, max_concurrency=2, block=False)
    bid = result.backfill_id
    wait_until(lambda: repo.get_backfill(bid).running_runs == 2)
    started = time.monotonic()
    assert repo.cancel_backfill(bid) is True
    final = repo.wait_backfill(bid, timeout=10)
    assert time.monotonic() - started < 5
    assert final.status == "canceled" and final.canceled_partitions == 6 and final.completed_partitions == 0
    assert {r.status for r in repo.list_runs(backfill_id=bid)} == {"canceled"}
    assert repo.cancel_backfill(bid) is False  # already over


def test_max_concurrency_is_honoured_under_load(storage_url, make_repo):
    repo = make_repo([flaky], storage=storage_url, executor=ac.InProcessExecutor(8))
    result = repo.backfill(flaky, partition_keys=[f"2024-02-{d:02d}" for d in range(1, 29)], params={"delay": 0.03},
                           max_concurrency=3)
    assert result.completed == 28
    assert fb.PEAK["value"] == 3


def test_a_partition_never_has_two_running_runs(repo):
    first = repo.run(sleepy, partition_key="2024-01-01", params={"seconds": 0.4}, block=False)
    result = repo.backfill(sleepy, partition_keys=["2024-01-01", "2024-01-02"], params={"seconds": 0.05})
    assert result.status == "completed"
    first = repo.get_run(first.run_id)
    backfill_run = [r for r in repo.list_runs(backfill_id=result.backfill_id) if r.partition_key == "2024-01-01"][0]
    assert first.status == "success" and backfill_run.started_at >= first.ended_at


def test_list_backfills_filters(repo):
    a = repo.backfill(daily_etl, partition_keys=days(1, 2))
    b = repo.backfill(flaky, partition_keys=days(1, 2), params={"fail_keys": days(1, 1)})
    assert {x.backfill_id for x in repo.list_backfills()} == {a.backfill_id, b.backfill_id}
    assert [x.backfill_id for x in repo.list_backfills(status="failed")] == [b.backfill_id]
    assert [x.backfill_id for x in repo.list_backfills(workflow="daily_etl")] == [a.backfill_id]


def test_pause_from_another_process_holds(storage_url, make_repo):
    leader = make_repo([flaky], storage=storage_url, executor=ac.InProcessExecutor(4))
    other = make_repo([flaky], storage=storage_url, executor=ac.InProcessExecutor(1))  # as a second process
    result = leader.backfill(flaky, partition_keys=days(1, 31), params={"delay": 0.1}, max_concurrency=4, block=False)
    bid = result.backfill_id
    wait_until(lambda: other.get_backfill(bid).completed_partitions >= 4)
    other.pause_backfill(bid)
    wait_until(lambda: other.get_backfill(bid).running_runs == 0, timeout=5)
    held = other.get_backfill(bid)
    time.sleep(0.8)  # several of the leader's poll intervals, while its runs were finishing
    later = other.get_backfill(bid)
    assert later.status == "paused" and later.running_runs == 0
    assert later.completed_partitions == held.completed_partitions < 31
    other.resume_backfill(bid)
    assert leader.wait_backfill(bid, timeout=20).status == "completed"


def test_coordinate_false_leaves_it_to_the_next_waiter(storage_url, make_repo):
    submitter = make_repo([daily_etl], storage=storage_url, executor=ac.InProcessExecutor(2))
    result = submitter.backfill(daily_etl, partition_keys=days(1, 5), block=False, coordinate=False)
    time.sleep(0.3)
    status = submitter.get_backfill(result.backfill_id)
    assert status.status == "requested" and status.completed_partitions == 0 and status.run_ids == []
    waiter = make_repo([daily_etl], storage=storage_url, executor=ac.InProcessExecutor(2))
    assert waiter.wait_backfill(result.backfill_id, timeout=20).status == "completed"


def test_status_without_run_ids(repo):
    result = repo.backfill(daily_etl, partition_keys=days(1, 3))
    assert len(repo.get_backfill(result.backfill_id).run_ids) == 3
    light = repo.get_backfill(result.backfill_id, include_run_ids=False)
    assert light.run_ids == [] and light.completed_partitions == 3


def test_dynamic_partitions_are_added_through_the_repository(repo):
    assert repo.add_dynamic_partitions("customers", ["acme", "globex"]) == 2
    assert repo.add_dynamic_partitions("customers", ["acme", "initech"]) == 1
    assert repo.get_dynamic_partitions("customers") == ["acme", "globex", "initech"]
    result = repo.backfill(per_customer)  # no selection: every key
    assert result.status == "completed" and sorted(s["key"] for s in fb.SEEN) == ["acme", "globex", "initech"]
    with pytest.raises(ValueError, match="umbrella"):
        repo.backfill(per_customer, partition_keys=["umbrella"])
    with pytest.raises(ValueError, match="a|b"):
        repo.add_dynamic_partitions("customers", ["a|b"])
    assert repo.delete_dynamic_partition("customers", "globex") is True
    assert repo.partition_status(per_customer) == {"acme": "success", "initech": "success"}


def test_a_process_without_the_workflow_waits_without_leading(storage_url, make_repo):
    submitter = make_repo([daily_etl], storage=storage_url, executor=ac.InProcessExecutor(2))
    result = submitter.backfill(daily_etl, partition_keys=days(1, 3), block=False, coordinate=False)
    stranger = make_repo([flaky], storage=storage_url, executor=ac.InProcessExecutor(2))
    with pytest.raises(TimeoutError):
        stranger.wait_backfill(result.backfill_id, timeout=0.6)
    assert stranger.get_backfill(result.backfill_id).status == "requested"
    assert submitter.wait_backfill(result.backfill_id, timeout=20).status == "completed"


MILLION = ac.MultiPartitions({"hour": ac.HourlyPartitions(start="2000-01-01", end="2024-01-01"),
                              "region": ac.StaticPartitions(["af", "am", "as", "eu", "oc"])})


@ac.workflow(name="million", partitions=MILLION)
def million() -> None:
    pass


def test_partition_status_pages_a_million_key_workflow(storage_url, make_repo):
    repo = make_repo([million], storage=storage_url, executor=ac.InProcessExecutor(2))
    keys = MILLION.get_partition_keys()
    assert len(keys) == 1_051_920
    done = list(keys[500_000:500_003])
    assert repo.backfill(million, partition_keys=done).completed == 3
    started = time.perf_counter()
    page = repo.partition_status(million, from_key=keys[499_999], limit=5)
    elapsed = time.perf_counter() - started
    assert list(page) == list(keys[499_999:500_004])  # key order, exactly `limit` keys
    assert [page[k] for k in page] == ["missing", "success", "success", "success", "missing"]
    assert elapsed < 2, f"a page of 5 keys took {elapsed:.2f}s"  # generous: it reads 5 keys, not a million
    assert repo.partition_status(million, from_key=done[0], to_key=done[-1]) == dict.fromkeys(done, "success")
    assert list(repo.partition_status(million, limit=2)) == list(keys[:2])
    assert list(repo.partition_status(million, to_key=keys[1])) == list(keys[:2])
    assert repo.partition_status(million, from_key=keys[-1], limit=10) == {keys[-1]: "missing"}
    assert repo.partition_status(million, from_key=done[-1], to_key=done[0]) == {}  # an empty page, not an error
    with pytest.raises(ValueError, match="from_key: 'nope' is not a partition key of workflow 'million'"):
        repo.partition_status(million, from_key="nope")
    with pytest.raises(ValueError, match="limit: must be an integer >= 0"):
        repo.partition_status(million, limit=-1)
