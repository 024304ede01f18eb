"""How long a backfill would take: the pure estimate (``anachron.estimate``)."""

from __future__ import annotations

import pytest

from anachron.estimate import Estimate, RunDuration, combine, describe, estimate_backfill


def runs_of(*seconds: float, partitions: int = 1) -> list[RunDuration]:
    return [RunDuration(s, partitions) for s in seconds]


def test_median_times_waves_and_a_p90_upper_figure():
    history = runs_of(1, 2, 3, 4, 100)  # a slow outlier moves the upper figure, not the typical one
    e = estimate_backfill(history, runs=10, max_concurrency=4, partitions=10, workflow="etl")
    assert isinstance(e, Estimate)
    assert (e.runs, e.concurrency, e.sample_size, e.max_concurrency, e.limited_by) == (10, 4, 5, 4, None)
    assert e.median_run_seconds == 3 and e.p90_run_seconds == 100
    assert e.seconds == 3 * 3 and e.upper_seconds == 3 * 100  # ceil(10 / 4) = 3 waves
    assert e.basis == "median run 3.0 s over the last 5 runs"


def test_an_even_sample_takes_the_middle_two_and_p90_is_the_nearest_rank():
    e = estimate_backfill(runs_of(*range(1, 11)), runs=1, max_concurrency=1)
    assert e.median_run_seconds == 5.5 and e.p90_run_seconds == 9 and e.seconds == 5.5


def test_no_history_gives_no_figure_and_says_why():
    e = estimate_backfill([], runs=31, max_concurrency=8, partitions=31, workflow="etl")
    assert e.seconds is None and e.upper_seconds is None and e.median_run_seconds is None and e.sample_size == 0
    assert e.basis == "no run history for etl yet" and describe(e) == "no run history for etl yet"


def test_nothing_planned_takes_no_time():
    e = estimate_backfill(runs_of(5), runs=0, max_concurrency=4, partitions=0)
    assert e.seconds == 0 and describe(e) == "nothing to run"


def test_a_cap_lower_than_max_concurrency_sets_the_pace_and_is_named():
    caps = {"the executor's 2 workers": 2, "max_concurrent_runs 3 of the run queue": 3, "loose": 50}
    e = estimate_backfill(runs_of(10, 10, 10), runs=8, max_concurrency=8, caps=caps)
    assert (e.concurrency, e.limited_by, e.seconds) == (2, "the executor's 2 workers", 40)
    assert describe(e) == ("~40 s at 2 runs at once (the executor's 2 workers; max_concurrency 8) "
                           "(median run 10.0 s over the last 3 runs)")


def test_the_human_line():
    e = estimate_backfill(runs_of(*[3.2] * 200), runs=1800, max_concurrency=8, partitions=1800)
    assert describe(e) == "~12 min at max_concurrency 8 (median run 3.2 s over the last 200 runs)"
    slow_tail = estimate_backfill(runs_of(*[1.0] * 8, 30, 30), runs=100, max_concurrency=4)
    assert describe(slow_tail).startswith("~25 s (up to ~12 min) at max_concurrency 4")


def test_bigger_runs_than_the_history_are_scaled_per_partition_and_say_so():
    # one-key history (2 s each); a batched plan of 30 keys per run
    e = estimate_backfill(runs_of(2, 2, 2, 4), runs=10, max_concurrency=5, partitions=300)
    assert e.median_run_seconds == 60 and e.p90_run_seconds == 120 and e.seconds == 2 * 60
    assert e.basis == ("median 2.0 s per partition over the last 4 runs, × 30 partitions per run "
                       "(assumes run time grows with the partitions)")
    single = estimate_backfill(runs_of(1, 1, 1), runs=1, max_concurrency=4, partitions=1000)
    assert single.seconds == 1000 and "× 1000 partitions per run" in single.basis


def test_runs_of_the_planned_size_are_used_as_they_are_when_there_are_enough():
    history = runs_of(30, 31, 29, 30, 32, partitions=10) + runs_of(1, 1, 1)  # 5 batches of 10 and 3 single runs
    e = estimate_backfill(history, runs=4, max_concurrency=4, partitions=40)
    assert e.median_run_seconds == 30 and e.sample_size == 5 and e.seconds == 30
    assert e.basis == "median run 30.0 s over 5 of the last 8 runs (those covering 10 partitions)"
    too_few = estimate_backfill(runs_of(30, partitions=10) + runs_of(1, 1, 1, 1), runs=4, max_concurrency=4,
                                partitions=40)
    assert too_few.sample_size == 5 and too_few.median_run_seconds == 10  # 1 s per partition, every run


def test_runs_of_no_key_count_as_one_partition():
    ticks = runs_of(4, 6, partitions=0)  # schedule ticks and manual runs cover no key
    e = estimate_backfill(ticks, runs=3, max_concurrency=1, partitions=3)
    assert e.seconds == 15 and e.basis == "median run 5.0 s over the last 2 runs"
    assert estimate_backfill(runs_of(7), runs=2, max_concurrency=2).basis == "median run 7.0 s over the last run"


def test_several_workflows_add_up():
    etl = estimate_backfill(runs_of(2), runs=4, max_concurrency=2, caps={"the executor's 1 workers": 1})
    load = estimate_backfill(runs_of(10), runs=2, max_concurrency=2)
    both = combine({"etl": etl, "load": load})
    assert both.seconds == 4 * 2 + 1 * 10 and both.runs == 6 and both.sample_size == 2
    assert both.median_run_seconds is None and both.limited_by == "the executor's 1 workers"
    assert both.basis == "etl: median run 2.0 s over the last run; load: median run 10.0 s over the last run"
    unknown = combine({"etl": etl, "new": estimate_backfill([], runs=3, max_concurrency=2, workflow="new")})
    assert unknown.seconds is None and unknown.basis.endswith("; no run history for new yet")
    assert combine({"etl": etl}) is etl


@pytest.mark.parametrize(("kwargs", "named"), [
    ({"runs": -1, "max_concurrency": 4}, "runs"),
    ({"runs": 1, "max_concurrency": 0}, "max_concurrency"),
    ({"runs": 1, "max_concurrency": True}, "max_concurrency"),
    ({"runs": 1, "max_concurrency": 2, "partitions": -3}, "partitions"),
    ({"runs": 1, "max_concurrency": 2, "caps": {"workers": 0}}, "caps['workers']"),
])
def test_bad_input_names_the_field(kwargs, named):
    with pytest.raises(ValueError, match=r"^" + named.replace("[", r"\[")):
        estimate_backfill(runs_of(1), **kwargs)
