"""Logical time: ac.time()/ac.now() in partition runs, manual runs, dev runs and outside runs."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest

import anachron as ac
import flows_basic as fb
import flows_migrants as fm
from flows_basic import daily_etl, manual, morning_report

NEW_YEAR = datetime(2026, 1, 1, tzinfo=timezone.utc)  # unix 1767225600


@pytest.fixture(autouse=True)
def _reset(monkeypatch):
    monkeypatch.delenv("ANACHRON_TIME", raising=False)
    monkeypatch.delenv("STARLARK_TIME", raising=False)
    fb.reset()


@pytest.fixture
def repo(sqlite_url, make_repo):
    return make_repo([daily_etl, manual, morning_report], storage=sqlite_url, executor=ac.InProcessExecutor(2))


@pytest.mark.parametrize("value, expected", [
    ("unix:1767225600", NEW_YEAR),
    ("unix:1767225600.5", NEW_YEAR + timedelta(seconds=0.5)),
    ("2026-01-01T00:00:00+00:00", NEW_YEAR),
    ("2026-01-01T01:00:00+01:00", NEW_YEAR),
    ("2026-01-01T00:00:00Z", NEW_YEAR),
])
def test_parse_time_values(value, expected):
    from anachron.clock import parse_time_value

    assert parse_time_value(value) == expected


@pytest.mark.parametrize("value", ["tomorrow", "unix:abc", "2026-01-01T00:00:00", "1767225600", ""])
def test_malformed_values_name_the_variable(value):
    from anachron.clock import parse_time_value

    with pytest.raises(ac.LogicalTimeError, match="STARLARK_TIME"):
        parse_time_value(value or " ", "STARLARK_TIME")


def test_outside_a_run_the_environment_sets_the_clock(monkeypatch):
    monkeypatch.setenv("ANACHRON_TIME", "unix:1767225600")
    assert ac.time() == 1767225600.0 and ac.now() == NEW_YEAR
    monkeypatch.delenv("ANACHRON_TIME")
    monkeypatch.setenv("STARLARK_TIME", "2026-01-01T00:00:00+00:00")
    assert ac.now() == NEW_YEAR
    monkeypatch.delenv("STARLARK_TIME")
    assert abs(ac.time() - datetime.now(timezone.utc).timestamp()) < 5


def test_partition_runs_see_the_window_end(repo):
    repo.backfill(daily_etl, partition_keys=["2024-03-10"])
    (seen,) = fb.SEEN
    end = datetime(2024, 3, 11, tzinfo=timezone.utc)
    assert seen["logical_time"] == end
    assert seen["now"] == end and seen["time"] == end.timestamp()  # frozen: exactly the window's end
    assert seen["window"] == (datetime(2024, 3, 10, tzinfo=timezone.utc), end)


def test_dst_window_in_a_timezone(sqlite_url, make_repo):
    ny = ac.DailyPartitions("2024-03-01", "2024-04-01", timezone="America/New_York")

    @ac.workflow(name="ny_daily", partitions=ny)
    def ny_daily():
        fb._observe()

    repo = make_repo([ny_daily], storage=sqlite_url, executor=ac.InProcessExecutor(1))
    repo.backfill(ny_daily, partition_keys=["2024-03-10"])
    start, end = fb.SEEN[0]["window"]
    assert end.timestamp() - start.timestamp() == 23 * 3600  # spring forward
    assert str(start.tzinfo) == "America/New_York"
    assert fb.SEEN[0]["logical_time"] == end


def test_manual_run_takes_anachron_time_from_its_environ(repo):
    run = repo.run(manual, environ={"ANACHRON_TIME": "unix:1767225600"})
    assert run.status == "success" and run.logical_time == NEW_YEAR
    assert fb.SEEN[0]["now"] == NEW_YEAR


def test_manual_run_takes_the_process_environment_then_submit_time(repo, monkeypatch):
    monkeypatch.setenv("STARLARK_TIME", "2026-01-01T00:00:00+00:00")
    assert repo.run(manual).logical_time == NEW_YEAR
    monkeypatch.delenv("STARLARK_TIME")
    before = datetime.now(timezone.utc)
    run = repo.run(manual)
    assert before - timedelta(seconds=1) <= run.logical_time <= datetime.now(timezone.utc)


def test_malformed_time_fails_the_run_before_any_task(repo):
    run = repo.run(manual, environ={"ANACHRON_TIME": "next tuesday"})
    assert run.status == "failed" and "ANACHRON_TIME" in run.error and "next tuesday" in run.error
    assert fb.SEEN == []  # the workflow body never ran


def test_schedule_runs_see_the_tick(repo):
    tick = datetime(2024, 5, 1, 6, tzinfo=timezone.utc)
    run = repo.run(morning_report, scheduled_time=tick)
    assert run.logical_time == tick and fb.SEEN[0]["logical_time"] == tick


def test_dev_context_runs_with_its_environ():
    ctx = ac.create_context()
    ctx.environ["ANACHRON_TIME"] = "unix:1767225600"
    result = ctx.run(manual, x=3)
    assert result["x"] == 3 and result["now"] == "2026-01-01T00:00:00+00:00"
    assert result["time"] == 1767225600


def test_dev_context_partition_run_and_errors():
    ctx = ac.create_context()
    assert ctx.run(daily_etl, partition_key="2024-01-05") == "2024-01-05"
    assert fb.SEEN[-1]["logical_time"] == datetime(2024, 1, 6, tzinfo=timezone.utc)
    ctx.environ["ANACHRON_TIME"] = "garbage"
    with pytest.raises(ac.LogicalTimeError, match="ANACHRON_TIME"):
        ctx.run(manual)
    fb.FAILING.add("2024-01-02")
    with pytest.raises(RuntimeError, match="boom on 2024-01-02"):
        ac.create_context().run(fb.flaky, partition_key="2024-01-02")


def test_dev_context_at_starlark_time_runs_the_partition_that_ended_by_then(monkeypatch):
    """Uniflow's ``STARLARK_TIME=… ctx.run(wf)`` without a key: the day that ended by that time, as a tick runs."""
    ctx = ac.create_context({"STARLARK_TIME": "2024-01-16T00:00:00+00:00"})
    assert ctx.run(daily_etl) == "2024-01-15"
    assert fb.SEEN[-1]["logical_time"] == datetime(2024, 1, 16, tzinfo=timezone.utc)
    monkeypatch.setenv("ANACHRON_TIME", "2024-01-16T13:30:00+00:00")  # the process's time counts too
    assert ac.create_context().run(daily_etl) == "2024-01-15"
    monkeypatch.delenv("ANACHRON_TIME")
    with pytest.raises(ValueError, match="partition_key: .* a run needs a partition key"):
        ac.create_context().run(daily_etl)  # no key, no time: nothing to choose by
    with pytest.raises(ValueError, match="partition_key: .* a run needs a partition key"):
        ac.create_context({"ANACHRON_TIME": "2000-01-01T00:00:00+00:00"}).run(daily_etl)  # before the first day


def test_wall_clock_is_untouched_inside_runs(repo):
    import time

    repo.run(manual, environ={"ANACHRON_TIME": "unix:1767225600"})
    seen = fb.SEEN[0]
    assert seen["time"] < 1767225610  # logical: 2026-01-01
    assert abs(seen["wall"] - time.time()) < 10  # time.time() still reads the real clock


def test_malformed_time_fails_a_partition_run_too(repo):
    run = repo.run(daily_etl, partition_key="2024-01-05", environ={"ANACHRON_TIME": "garbage"})
    assert run.status == "failed" and "ANACHRON_TIME" in run.error
    assert fb.SEEN == []
    with pytest.raises(ac.LogicalTimeError, match="STARLARK_TIME"):
        ac.create_context({"STARLARK_TIME": "garbage"}).run(daily_etl, partition_key="2024-01-05")


def test_naive_time_ranges_are_read_in_the_partitions_timezone(sqlite_url, make_repo):
    @ac.workflow(name="paris_daily", partitions=ac.DailyPartitions("2024-01-01", "2025-01-01", timezone="Europe/Paris"))
    def paris_daily():
        pass

    repo = make_repo([paris_daily], storage=sqlite_url, executor=ac.InProcessExecutor(1))
    naive = repo.backfill(paris_daily, start="2024-01-01", end="2024-03-31", dry_run=True)
    assert naive.num_partitions == 91 and naive.partition_keys[0] == "2024-01-01"
    aware = repo.backfill(paris_daily, start="2024-01-01T00:00:00+00:00", end="2024-03-31T00:00:00+00:00",
                          dry_run=True)
    assert aware.partition_keys[0] == "2024-01-02"  # Jan 1 in Paris began at 23:00 UTC the day before


def test_the_logical_clock_is_frozen_for_the_whole_run(tmp_path, sqlite_url, make_repo):
    """Uniflow's time() returns the STARLARK_TIME timestamp itself, however long the run takes: two reads
    0.05 s apart inside a run (in a worker process) and a re-run all see exactly the logical time."""
    repo = make_repo([fm.clock_reader], storage=sqlite_url, executor=ac.LocalExecutor(1))
    for _ in range(2):
        run = repo.run(fm.clock_reader, params={"out": str(tmp_path)}, environ={"STARLARK_TIME": "unix:1766793600"})
        assert run.status == "success"
    first, again = fm.seen(str(tmp_path))
    assert first["first"] == first["second"] == again["first"] == again["second"] == 1766793600
    assert first["now"] == again["now"] == "2025-12-27T00:00:00+00:00"
    assert ac.create_context({"ANACHRON_TIME": "unix:1766793600.25"}).run(
        fm.clock_reader, out=str(tmp_path), pause=0.02) == 1766793600.25
