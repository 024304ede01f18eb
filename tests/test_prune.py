"""Pruning old runs (``CodeRepository.prune``, ``anachron db prune``), on SQLite and PostgreSQL.

Runs are created at the repository's clock but end at the wall clock (the executor's), so the fake clock is
kept at the wall clock while runs are made (``tick``) and moved 90 days past a boundary to prune.
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import create_engine, func, select, update

import anachron as ac
import anachron.repository
from anachron.storage.schema import run_partitions, runs
from flows_basic import daily_etl, flaky, manual, sleepy
from helpers import wait_until
from test_backfills import _reset  # noqa: F401 - the flows' counters reset around each test
from test_cli import Cli, assert_usage_error

NINETY_DAYS = timedelta(days=90)
single_run = ac.BackfillStrategy.single_run


@pytest.fixture
def repo(storage_url, make_repo, fake_clock):
    return make_repo([daily_etl, flaky, manual, sleepy], storage=storage_url, executor=ac.InProcessExecutor(2),
                     clock=fake_clock)


def tick(clock) -> datetime:
    """Bring the fake clock to the wall clock, a little after everything that happened before."""
    time.sleep(0.01)
    clock.now = datetime.now(timezone.utc)
    return clock.now


def prune_at(repo, clock, boundary: datetime, **kwargs) -> int:
    """Prune 90 days after ``boundary``, so what finished before ``boundary`` is old enough."""
    clock.now = boundary + NINETY_DAYS
    return repo.prune(NINETY_DAYS, **kwargs)


def run_ids(repo) -> set[str]:
    return {r.run_id for r in repo.list_runs(limit=None)}


def logs(repo, run_id: str) -> list:
    return repo.storage.run(lambda s: s.run_logs(run_id), write=False)


def keys_stored(repo, run_id: str) -> int:
    return repo.storage.run(lambda s: s.conn.execute(select(func.count()).select_from(run_partitions)
                                                     .where(run_partitions.c.run_id == run_id)).scalar_one(),
                            write=False)


def days(start: int, end: int) -> list[str]:
    return [f"2024-01-{d:02d}" for d in range(start, end + 1)]


def test_superseded_runs_go_and_each_keys_latest_run_stays(repo, fake_clock):
    tick(fake_clock)
    first = repo.run(daily_etl, "2024-01-01")
    second = repo.run(daily_etl, "2024-01-01")
    only = repo.run(daily_etl, "2024-01-02")  # the only run of its key: kept however old
    boundary = tick(fake_clock)
    recent = repo.run(daily_etl, "2024-01-03")  # superseded, but not old enough
    latest = repo.run(daily_etl, "2024-01-03")
    before = repo.partition_status(daily_etl)
    assert logs(repo, first.run_id)
    assert prune_at(repo, fake_clock, boundary) == 1
    assert run_ids(repo) == {second.run_id, only.run_id, recent.run_id, latest.run_id}
    assert repo.get_run(first.run_id) is None and logs(repo, first.run_id) == []
    assert logs(repo, second.run_id)
    assert repo.partition_status(daily_etl) == before
    assert (before["2024-01-01"], before["2024-01-02"], before["2024-01-04"]) == ("success", "success", "missing")
    assert repo.prune(NINETY_DAYS) == 0


def test_a_key_whose_latest_run_failed_stays_failed(repo, fake_clock):
    tick(fake_clock)
    ok = repo.run(flaky, "2024-01-01")
    failed = repo.run(flaky, "2024-01-01", params={"fail_keys": ["2024-01-01"]})
    failed_first = repo.run(flaky, "2024-01-02", params={"fail_keys": ["2024-01-02"]})
    fixed = repo.run(flaky, "2024-01-02")
    boundary = tick(fake_clock)
    before = repo.partition_status(flaky)
    assert (before["2024-01-01"], before["2024-01-02"]) == ("failed", "success")
    assert prune_at(repo, fake_clock, boundary) == 2
    assert run_ids(repo) == {failed.run_id, fixed.run_id}
    assert ok.run_id not in run_ids(repo) and failed_first.run_id not in run_ids(repo)
    assert repo.partition_status(flaky) == before


def canceled_run(repo, key: str) -> ac.Run:
    run = repo.run(sleepy, key, params={"seconds": 30}, block=False)
    assert repo.cancel_run(run.run_id) is True
    return repo.wait_run(run.run_id, timeout=10)


def test_canceled_runs_never_count_as_latest(repo, fake_clock):
    tick(fake_clock)
    done = repo.run(sleepy, "2024-01-01", params={"seconds": 0})
    canceled = canceled_run(repo, "2024-01-01")
    alone = canceled_run(repo, "2024-01-02")  # the only run of its key
    assert (canceled.status, alone.status) == ("canceled", "canceled")
    boundary = tick(fake_clock)
    before = repo.partition_status(sleepy)
    assert (before["2024-01-01"], before["2024-01-02"]) == ("success", "missing")
    assert prune_at(repo, fake_clock, boundary) == 2
    assert run_ids(repo) == {done.run_id}
    assert repo.partition_status(sleepy) == before


def test_a_run_of_many_keys_stays_while_it_is_the_latest_run_of_any(repo, fake_clock):
    def one_run(keys: list[str]) -> str:
        result = repo.backfill(daily_etl, partition_keys=keys, strategy=single_run())
        (run,) = repo.list_runs(backfill_id=result.backfill_id)
        assert run.partition_keys == keys
        return run.run_id

    tick(fake_clock)
    covered = one_run(days(1, 3))
    ones = [repo.run(daily_etl, key).run_id for key in days(1, 2)]
    over = one_run(days(3, 4))  # with the two runs above, supersedes ``covered`` on every key
    half = one_run(days(5, 6))
    ones.append(repo.run(daily_etl, "2024-01-05").run_id)  # ``half`` stays the latest run of 2024-01-06
    lone = repo.run(daily_etl, "2024-01-07").run_id
    later = one_run(days(7, 8))  # supersedes ``lone``
    boundary = tick(fake_clock)
    before = repo.partition_status(daily_etl)
    assert all(before[key] == "success" for key in days(1, 8))
    assert prune_at(repo, fake_clock, boundary) == 2
    assert run_ids(repo) == {*ones, over, half, later}
    assert repo.get_run(covered) is None and repo.get_run(lone) is None
    assert keys_stored(repo, covered) == 0 and keys_stored(repo, half) == 2
    assert repo.partition_status(daily_etl) == before


def test_queued_and_running_runs_are_never_pruned(storage_url, make_repo, fake_clock):
    repo = make_repo([sleepy], storage=storage_url, executor=ac.InProcessExecutor(1), clock=fake_clock,
                     run_queue=ac.RunQueueConfig(max_concurrent_runs=1))
    tick(fake_clock)
    done = repo.run(sleepy, "2024-01-01", params={"seconds": 0})
    running = repo.run(sleepy, "2024-01-01", params={"seconds": 30}, block=False)
    wait_until(lambda: repo.get_run(running.run_id).status == "running")
    queued = repo.run(sleepy, "2024-01-02", params={"seconds": 30}, block=False)
    assert repo.get_run(queued.run_id).status == "queued"
    boundary = tick(fake_clock)
    # ``done`` stays too: the run after it is still active, and might yet be canceled
    assert prune_at(repo, fake_clock, boundary, dry_run=True) == prune_at(repo, fake_clock, boundary) == 0
    assert run_ids(repo) == {done.run_id, running.run_id, queued.run_id}
    assert {repo.get_run(queued.run_id).status, repo.get_run(running.run_id).status} == {"queued", "running"}
    tick(fake_clock)  # the clock back from 90 days ahead: the cancellations are recorded at its time
    for run in (running, queued):
        repo.cancel_run(run.run_id)
        assert repo.wait_run(run.run_id, timeout=10).status == "canceled"
    assert prune_at(repo, fake_clock, tick(fake_clock)) == 2
    assert run_ids(repo) == {done.run_id}
    assert repo.partition_status(sleepy)["2024-01-01"] == "success"


def test_dry_run_counts_without_deleting_and_runs_without_partitions_go(repo, fake_clock):
    tick(fake_clock)
    repo.run(daily_etl, "2024-01-01")
    kept = repo.run(daily_etl, "2024-01-01")
    plain = repo.run(manual)  # no partitions: nothing to keep it for
    boundary = tick(fake_clock)
    everything = run_ids(repo)
    assert prune_at(repo, fake_clock, boundary, dry_run=True) == 2
    assert run_ids(repo) == everything
    assert prune_at(repo, fake_clock, boundary) == 2
    assert run_ids(repo) == {kept.run_id}
    assert repo.get_run(plain.run_id) is None


def test_prune_deletes_in_batches_until_nothing_is_left(repo, fake_clock, monkeypatch):
    monkeypatch.setattr(anachron.repository, "PRUNE_BATCH", 2)
    tick(fake_clock)
    for _ in range(5):
        repo.run(manual)
    boundary = tick(fake_clock)
    assert prune_at(repo, fake_clock, boundary) == 5
    assert run_ids(repo) == set()


@pytest.mark.parametrize("older_than", [timedelta(0), timedelta(days=-1), 90, "90d"])
def test_older_than_must_be_a_positive_timedelta(repo, older_than):
    with pytest.raises(ValueError, match="older_than"):
        repo.prune(older_than)


def test_the_db_prune_command(storage_url, tmp_path, make_repo):
    repo = make_repo([daily_etl], storage=storage_url, executor=ac.InProcessExecutor(1))
    old = repo.run(daily_etl, "2024-01-01")
    kept = repo.run(daily_etl, "2024-01-01")
    other = repo.run(daily_etl, "2024-01-02")
    engine = create_engine(storage_url)  # the runs finished 200 days ago
    with engine.begin() as conn:
        conn.execute(update(runs).values(created_at=runs.c.created_at - 200 * 86400,
                                         ended_at=runs.c.ended_at - 200 * 86400))
    engine.dispose()
    cli = Cli(tmp_path, storage_url)
    dry = cli("db", "prune", "--older-than", "90d", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert dry.stdout.startswith("would prune 1 run finished before ") and dry.stdout.strip().endswith(" UTC")
    assert len(repo.list_runs()) == 3
    assert_usage_error(cli("db", "prune", "--older-than", "3x"), "--older-than", "3x")
    assert_usage_error(cli("db", "prune"), "--older-than")
    assert cli("db", "prune", "--older-than", "201d").stdout.startswith("pruned 0 runs finished before ")
    done = cli("db", "prune", "--older-than", "12w")
    assert done.returncode == 0 and done.stdout.startswith("pruned 1 run finished before "), done.stderr
    assert {r.run_id for r in repo.list_runs()} == {kept.run_id, other.run_id}
    assert repo.get_run(old.run_id) is None
    assert cli.json("db", "prune", "--older-than", "90d")["runs"] == 0
