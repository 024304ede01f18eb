"""Pure planning: the same inputs always give the same plan, lazily."""

from __future__ import annotations

import json
import random
from datetime import datetime, timezone

import pytest

import anachron as ac
from anachron.planning import SelectedKeys, build_plan, freeze_plan, kept_ranges, run_idempotency_key, selection_spec
from flows_basic import daily_etl, regional

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


@pytest.mark.parametrize("ranges", [None, [(0, 5), (10, 20), (100, 101), (200, 366)]])
@pytest.mark.parametrize("newest_first", [False, True])
def test_selected_key_slices_match_indexing(ranges, newest_first):
    keys = ac.DailyPartitions("2024-01-01", "2025-01-01").get_partition_keys(NOW)
    selected = SelectedKeys(keys, ranges, newest_first)
    rng = random.Random(7)
    for _ in range(200):
        a = rng.randint(0, len(selected))
        b = rng.randint(a, len(selected))
        assert selected[a:b] == [selected[i] for i in range(a, b)]
    assert list(selected) == [selected[i] for i in range(len(selected))]


def test_kept_ranges_follow_reprocess():
    keys = ["a", "b", "c", "d", "e"]
    status = {"a": "success", "b": "failed", "c": "missing", "d": "running", "e": "failed"}
    assert kept_ranges(keys, status, "all") is None
    assert kept_ranges(keys, status, "failed_and_missing") == [(1, 3), (4, 5)]
    assert kept_ranges(keys, status, "missing") == [(2, 3)]


def test_a_frozen_plan_rebuilds_identically_from_json():
    workflows = {"daily_etl": daily_etl}
    selection = selection_spec(start="2024-01-01", end="2024-02-29", now=NOW)
    statuses = {"daily_etl": {"2024-01-05": "success", "2024-01-06": "success"}}
    spec = freeze_plan([daily_etl], selection, ac.BackfillStrategy.batched(3), "newest_first", "missing", NOW, {},
                       statuses)
    first = build_plan(spec, workflows, {})
    again = build_plan(json.loads(json.dumps(spec.to_json())), workflows, {})
    assert spec.version == 1 and json.loads(json.dumps(spec.to_json()))["version"] == 1
    assert first.num_partitions == again.num_partitions == 58
    assert [r.keys for r in first.runs()] == [r.keys for r in again.runs()]
    assert first.run(0).keys == ("2024-02-29", "2024-02-28", "2024-02-27")
    assert "2024-01-05" not in list(first.partition_keys)


def test_per_dimension_groups_by_the_multi_run_dimensions():
    selection = selection_spec(partition_range=ac.PartitionKeyRange.multi({"date": ("2024-01-01", "2024-01-02")}))
    strategy = ac.BackfillStrategy.per_dimension(multi_run=["date"], single_run=["region"])
    plan = build_plan(freeze_plan([regional], selection, strategy, "oldest_first", "all", NOW, {}, {}),
                      {"regional": regional}, {})
    assert [list(g) for g in plan.groups] == [
        ["date=2024-01-01|region=us", "date=2024-01-01|region=eu", "date=2024-01-01|region=asia"],
        ["date=2024-01-02|region=us", "date=2024-01-02|region=eu", "date=2024-01-02|region=asia"]]


def test_strategies_are_the_seed_types():
    """Rivers' names: multi_run() is a BackfillStrategy.MultiRun, and a PerDimension holds its two lists."""
    strategy = ac.BackfillStrategy
    assert isinstance(strategy.multi_run(), strategy.MultiRun) and isinstance(strategy.single_run(), strategy.SingleRun)
    per = strategy.per_dimension(multi_run=["date"], single_run=["region"])
    assert isinstance(per, strategy.PerDimension) and isinstance(per, strategy)
    assert per.multi_run == ["date"] and per.single_run == ["region"]
    assert per == strategy.PerDimension(["date"], ["region"]) and hash(per) == hash(strategy.PerDimension(["date"],
                                                                                                        ["region"]))
    assert repr(per) == "BackfillStrategy.PerDimension(multi_run=['date'], single_run=['region'])"
    assert strategy.PerDimension.multi_run() == strategy.MultiRun()  # the factory stays on the class
    batched = strategy.batched(5)
    assert isinstance(batched, strategy.Batched) and batched.max_partitions_per_run == 5
    for s in (strategy.multi_run(), strategy.single_run(), per, batched):
        assert strategy.from_dict(json.loads(json.dumps(s.to_dict()))) == s
    with pytest.raises(ValueError, match="both"):
        strategy.per_dimension(multi_run=["date"], single_run=["date"])


def test_idempotency_keys_are_deterministic_and_bounded():
    assert run_idempotency_key("b1", ["2024-01-01"]) == "backfill:b1:2024-01-01"
    many = [f"2024-01-{d:02d}" for d in range(1, 32)]
    key = run_idempotency_key("b1", many)
    assert key == run_idempotency_key("b1", list(many)) and len(key) < 120
    assert key.startswith("backfill:b1:2024-01-01..2024-01-31#31:")


def test_selection_errors_name_the_field():
    with pytest.raises(ValueError, match="partition_keys"):
        selection_spec(partition_keys="2024-01-01")
    with pytest.raises(ValueError, match="partition_range"):
        selection_spec(partition_range=("2024-01-01", "2024-01-02"))
    with pytest.raises(ValueError, match="exactly one"):
        selection_spec(partition_keys=["a"], partition_range=ac.PartitionKeyRange.single("a", "b"))
