"""Partition grids: the storage contract (``Session`` directly, on SQLite and PostgreSQL), the pure cell
arithmetic (``anachron.grid``), and ``repo.backfill_grid`` / ``repo.partition_grid`` through the public API."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

import anachron as ac
import flows_basic as fb
import flows_daemon as fd
from anachron.grid import PENDING, GridCell, backfill_grid, cell_size_for, partition_grid
from anachron.records import GridCount, GridRun, NewBackfill, NewRun
from anachron.storage import Storage
from conftest import FakeClock
from flows_basic import daily_etl, flaky, sleepy
from helpers import wait_until

NOW = 1_700_000_000.0


@pytest.fixture(autouse=True)
def _reset():
    fb.reset()
    yield
    fb.reset()


@pytest.fixture
def storage(storage_url):
    s = Storage(storage_url)
    yield s
    s.close()


def new_run(run_id: str, index: int | None, status: str = "success", backfill_id: str | None = "bf", *,
            keys=None, scheduled: float | None = None, idem: str | None = None, workflow: str = "wf") -> NewRun:
    keys = (f"k{index or 0:04d}",) if keys is None else tuple(keys)
    return NewRun(run_id, workflow, status, keys, "{}", json.dumps({}), -10, backfill_id, idem, 1, NOW, None, None,
                  scheduled, NOW, None, "{}", "me", plan_index=index)


def new_backfill(backfill_id: str, total: int) -> NewBackfill:
    return NewBackfill(backfill_id, "in_progress", ("wf",), {"plan": {}}, total, total, 4, -10, {}, None, NOW)


# -- the storage contract ---------------------------------------------------------------------------------
def test_grid_counts_are_the_runs_that_did_not_succeed_per_cell(storage):
    statuses = {3: "failed", 4: "failed", 12: "canceled", 13: "queued", 14: "running", 25: "failed"}
    rows = [new_run(f"r{i}", i, statuses.get(i, "success")) for i in range(26)]
    rows += [new_run("other", 3, "failed", backfill_id="bf-other"), new_run("manual", None, "failed", None),
             new_run("beyond", 30, "failed")]  # a run past the cursor the caller read: not counted
    with storage.write() as s:
        s.insert_backfill(new_backfill("bf", 40))
        s.insert_runs(rows)
    with storage.read() as s:
        got = sorted(s.backfill_grid_counts("bf", 10, created=26))
        assert got == [GridCount(0, "failed", 2), GridCount(1, "canceled", 1), GridCount(1, "queued", 1),
                       GridCount(1, "running", 1), GridCount(2, "failed", 1)]
        assert sorted(s.backfill_grid_counts("bf", 1, created=14)) == [
            (3, "failed", 1), (4, "failed", 1), (12, "canceled", 1), (13, "queued", 1)]
        assert s.backfill_grid_counts("nobody", 10, created=26) == []
        with pytest.raises(ValueError, match="cell_size"):
            s.backfill_grid_counts("bf", 0, created=26)


def test_grid_runs_are_read_in_plan_order_up_to_the_cursor(storage):
    with storage.write() as s:
        s.insert_runs([new_run("c", 2, "failed"), new_run("a", 0), new_run("many", 1, keys=("x", "y")),
                       new_run("tick", 3, keys=(), scheduled=NOW), new_run("later", 4, "queued")])
    with storage.read() as s:
        got = s.backfill_grid_runs("bf", created=4, limit=10)
        assert got == [GridRun(0, "a", "success", "k0000", None), GridRun(1, "many", "success", None, None),
                       GridRun(2, "c", "failed", "k0002", None), GridRun(3, "tick", "success", None, NOW)]
        assert [r.run_id for r in s.backfill_grid_runs("bf", created=4, limit=2)] == ["a", "many"]


def test_attached_tick_runs_take_their_place_in_the_plan(storage):
    with storage.write() as s:  # the daemon created the tick's run first: no backfill, no plan index
        s.insert_runs([new_run("tick", None, "success", None, keys=(), scheduled=NOW, idem="schedule:s:1"),
                       new_run("own", 0, "queued")])
        assert s.attach_runs("bf", "wf", ["schedule:s:1"], {"schedule:s:1": 1}) == [("tick", "success")]
        assert s.attach_runs("bf2", "wf", ["schedule:s:1"], {"schedule:s:1": 0}) == []  # it is bf's now
    with storage.read() as s:
        assert [(r.plan_index, r.run_id) for r in s.backfill_grid_runs("bf", created=2, limit=10)] == \
            [(0, "own"), (1, "tick")]


def test_revision_0004_numbers_the_runs_of_existing_backfills(storage):
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import inspect, text

    from anachron.storage.engine import _MIGRATIONS

    engine = storage.db.engine

    def alembic(step, revision):
        with engine.connect().execution_options(anachron_write=True) as conn, conn.begin():
            config = Config()
            config.set_main_option("script_location", str(_MIGRATIONS))
            config.attributes["connection"] = conn
            step(config, revision)

    alembic(command.downgrade, "0003")
    with engine.connect().execution_options(anachron_write=True) as conn, conn.begin():
        assert "plan_index" not in [c["name"] for c in inspect(conn).get_columns("anachron_runs")]
        for i, (run_id, backfill_id) in enumerate([("a1", "A"), ("b1", "B"), ("m", None), ("a2", "A"),
                                                   ("b2", "B"), ("a3", "A")]):
            conn.execute(text(
                "INSERT INTO anachron_runs (run_id, workflow, status, num_partitions, params, tags, priority, "
                "backfill_id, attempt, created_at, environ, cancel_requested) "
                "VALUES (:r, 'wf', 'success', 1, '{}', '{}', 0, :b, 1, :t, '{}', false)"),
                {"r": run_id, "b": backfill_id, "t": NOW + i})
    alembic(command.upgrade, "head")
    with engine.connect() as conn:
        got = dict(conn.execute(text("SELECT run_id, plan_index FROM anachron_runs")).all())
    assert got == {"a1": 0, "a2": 1, "a3": 2, "b1": 0, "b2": 1, "m": None}


# -- the arithmetic ---------------------------------------------------------------------------------------
def test_cells_count_successes_as_what_is_created_and_not_an_exception():
    spans = {i: (f"k{i}", f"k{i}") for i in range(25)}
    grid = backfill_grid("bf", "in_progress", 25, 17, False, 3,
                         [GridCount(0, "failed", 2), GridCount(1, "running", 1), GridCount(1, "failed", 1)],
                         key_span=spans.get)
    assert cell_size_for(25, 3) == grid.cell_size == 9
    assert [(c.first_index, c.last_index, dict(c.counts)) for c in grid.cells] == [
        (0, 8, {"success": 7, "failed": 2}), (9, 17, {"success": 6, "running": 1, "failed": 1, PENDING: 1}),
        (18, 24, {PENDING: 7})]
    assert [(c.first_key, c.last_key, c.status) for c in grid.cells] == [
        ("k0", "k8", "failed"), ("k9", "k17", "failed"), ("k18", "k24", PENDING)]
    assert grid.counts == {"success": 13, "failed": 3, "running": 1, PENDING: 8}
    assert sum(grid.counts.values()) == grid.total == 25

    ended = backfill_grid("bf", "canceled", 25, 17, True, 3, [GridCount(1, "canceled", 2)])
    assert dict(ended.cells[1].counts) == {"success": 6, "canceled": 3}  # 2 canceled runs + 1 never created
    assert ended.counts == {"success": 15, "canceled": 10} and ended.cells[0].first_key is None
    assert backfill_grid("bf", "requested", 0, 0, False, 10).cells == ()


def test_one_cell_per_run_names_its_run():
    runs = [GridRun(0, "r0", "success", "a", None), GridRun(2, "r2", "failed", None,
                                                            datetime(2024, 1, 1, 6, tzinfo=timezone.utc).timestamp())]
    grid = backfill_grid("bf", "in_progress", 4, 3, False, 10, runs=runs)
    assert [(c.run_id, c.status, c.first_key) for c in grid.cells] == [
        ("r0", "success", "a"),
        (None, "canceled", None),  # created, but the backfill holds no run for it (another backfill's tick)
        ("r2", "failed", "2024-01-01T06:00:00+00:00"), (None, PENDING, None)]
    assert GridCell(0, 3, {"success": 3, "queued": 1}).status == "queued"


def test_a_workflow_grid_buckets_keys_by_index():
    keys = [f"k{i}" for i in range(10)]
    grid = partition_grid("wf", keys, {"k1": "success", "k2": "failed", "k7": "running", "gone": "success"}, 4,
                          {k: i for i, k in enumerate(keys)}.get)
    assert grid.cell_size == 3 and len(grid.cells) == 4
    assert [dict(c.counts) for c in grid.cells] == [
        {"success": 1, "failed": 1, "missing": 1}, {"missing": 3}, {"running": 1, "missing": 2}, {"missing": 1}]
    assert grid.counts == {"success": 1, "failed": 1, "running": 1, "missing": 7}
    assert (grid.cells[3].first_key, grid.cells[3].last_key) == ("k9", "k9")


# -- through the public API ---------------------------------------------------------------------------------
@pytest.fixture
def repo(storage_url, make_repo):
    return make_repo([daily_etl, flaky, sleepy], storage=storage_url, executor=ac.InProcessExecutor(4))


def days(start: int, end: int, month: int = 1) -> list[str]:
    return [f"2024-{month:02d}-{d:02d}" for d in range(start, end + 1)]


def test_a_small_backfill_has_a_cell_per_run(repo):
    result = repo.backfill(flaky, partition_keys=days(1, 8), params={"fail_keys": ["2024-01-03", "2024-01-06"]})
    grid = repo.backfill_grid(result.backfill_id)
    assert (grid.status, grid.total, grid.created, grid.cell_size) == ("failed", 8, 8, 1)
    assert [(c.first_key, c.status) for c in grid.cells] == [
        (k, "failed" if k in ("2024-01-03", "2024-01-06") else "success") for k in days(1, 8)]
    runs = {r.run_id: r for r in repo.list_runs(backfill_id=result.backfill_id, limit=None)}
    assert {c.run_id for c in grid.cells} == set(runs)
    assert all(runs[c.run_id].partition_key == c.first_key == c.last_key for c in grid.cells)
    assert grid.counts == {"success": 6, "failed": 2}


def test_a_big_backfill_has_aggregated_cells_that_add_up(repo):
    fail = ["2024-01-02", "2024-01-30", "2024-02-14"]
    result = repo.backfill(flaky, partition_range=ac.PartitionKeyRange.single("2024-01-01", "2024-02-29"),
                           params={"fail_keys": fail}, max_concurrency=8)
    grid = repo.backfill_grid(result.backfill_id, max_cells=7)
    assert (grid.total, grid.cell_size, len(grid.cells)) == (60, 9, 7)
    assert grid.counts == {"success": 57, "failed": 3} and result.failed == 3
    assert [c.counts.get("failed", 0) for c in grid.cells] == [1, 0, 0, 1, 1, 0, 0]  # indices 1, 29, 44
    assert all(sum(c.counts.values()) == c.size for c in grid.cells)
    assert (grid.cells[0].first_key, grid.cells[0].last_key, grid.cells[-1].last_key) == \
        ("2024-01-01", "2024-01-09", "2024-02-29")
    assert grid.cells[0].run_id is None and grid.cells[0].status == "failed"


def test_cells_are_pending_until_their_runs_are_created(repo):
    result = repo.backfill(daily_etl, partition_keys=days(1, 31), block=False, coordinate=False)
    grid = repo.backfill_grid(result.backfill_id, max_cells=10)
    assert (grid.status, grid.created, grid.cell_size) == ("requested", 0, 4)
    assert grid.counts == {PENDING: 31} and {c.status for c in grid.cells} == {PENDING}
    assert (grid.cells[-1].first_key, grid.cells[-1].last_key) == ("2024-01-29", "2024-01-31")
    small = repo.backfill_grid(result.backfill_id)
    assert [(c.first_key, c.run_id, c.status) for c in small.cells[:2]] == [
        ("2024-01-01", None, PENDING), ("2024-01-02", None, PENDING)]
    final = repo.wait_backfill(result.backfill_id, timeout=30)  # this process now leads it
    assert final.status == "completed"
    assert repo.backfill_grid(result.backfill_id, max_cells=10).counts == {"success": 31}


def test_a_canceled_backfill_shows_what_never_ran_as_canceled(repo):
    result = repo.backfill(sleepy, partition_keys=days(1, 31) + days(1, 29, 2), params={"seconds": 30},
                           max_concurrency=1, block=False)
    bid = result.backfill_id
    wait_until(lambda: repo.get_backfill(bid).running_runs == 1)
    live = repo.backfill_grid(bid, max_cells=6)
    assert live.created < live.total and live.counts.get(PENDING) == live.total - live.created
    assert live.counts.get("running") == 1 and live.cells[0].status == "running"
    repo.cancel_backfill(bid)
    final = repo.wait_backfill(bid, timeout=10)
    grid = repo.backfill_grid(bid, max_cells=6)
    assert grid.status == "canceled" and grid.counts == {"canceled": 60}
    assert final.canceled_partitions == 60 and PENDING not in grid.counts


def test_bad_grid_requests_name_the_field(repo):
    with pytest.raises(ac.NotFoundError, match="nope"):
        repo.backfill_grid("nope")
    for bad in (0, -1, 2.5, True, "10"):
        with pytest.raises(ValueError, match="max_cells"):
            repo.backfill_grid("nope", max_cells=bad)
        with pytest.raises(ValueError, match="max_cells"):
            repo.partition_grid(daily_etl, max_cells=bad)
    with pytest.raises(ValueError, match="workflow"):
        repo.partition_grid("no_such_workflow")


def test_a_workflow_grid_counts_partition_statuses(repo):
    repo.backfill(flaky, partition_keys=days(1, 10), params={"fail_keys": ["2024-01-05"]})
    grid = repo.partition_grid(flaky, max_cells=53)  # DAILY: 2024 (366 keys) → cells of 7 keys
    assert (grid.workflow, grid.total, grid.cell_size, len(grid.cells)) == ("flaky", 366, 7, 53)
    assert grid.counts == {"success": 9, "failed": 1, "missing": 356}
    assert dict(grid.cells[0].counts) == {"success": 6, "failed": 1}
    assert dict(grid.cells[1].counts) == {"success": 3, "missing": 4}
    assert (grid.cells[0].first_key, grid.cells[0].last_key) == ("2024-01-01", "2024-01-07")


def test_a_tick_run_the_daemon_created_first_gets_its_place_in_the_grid(storage_url, make_repo):
    fd.GATE.set()
    clock = FakeClock(datetime(2026, 3, 2, 9, 2, tzinfo=timezone.utc))
    repo = make_repo([fd.every_five], storage=storage_url, executor=ac.InProcessExecutor(4), clock=clock)
    daemon = repo.daemon()
    daemon.step()
    clock.advance(31 * 60)  # six ticks are due
    planned = repo.backfill_schedule("every_five", start="2026-03-02T09:03:00+00:00",
                                     end="2026-03-02T09:31:00+00:00", block=False, coordinate=False)
    daemon.step()  # the daemon creates the ticks' runs, then leads the backfill: they are attached to it
    assert repo.wait_backfill(planned.backfill_id, timeout=20).status == "completed"
    grid = repo.backfill_grid(planned.backfill_id)
    assert [c.first_key for c in grid.cells] == [f"2026-03-02T09:{m:02d}:00+00:00" for m in (5, 10, 15, 20, 25, 30)]
    assert all(c.run_id is not None and c.status == "success" for c in grid.cells)
    by_id = {r.run_id: r for r in repo.list_runs(backfill_id=planned.backfill_id, limit=None)}
    assert [by_id[c.run_id].scheduled_time.strftime("%H:%M") for c in grid.cells] == \
        ["09:05", "09:10", "09:15", "09:20", "09:25", "09:30"]


def test_cells_of_runs_with_many_keys_span_their_first_and_last_key(repo):
    batched = repo.backfill(daily_etl, partition_keys=days(1, 10), strategy=ac.BackfillStrategy.batched(3))
    grid = repo.backfill_grid(batched.backfill_id)
    assert [(c.first_key, c.last_key, c.status) for c in grid.cells] == [
        ("2024-01-01", "2024-01-03", "success"), ("2024-01-04", "2024-01-06", "success"),
        ("2024-01-07", "2024-01-09", "success"), ("2024-01-10", "2024-01-10", "success")]
    assert [(c.first_key, c.last_key) for c in repo.backfill_grid(batched.backfill_id, max_cells=2).cells] == [
        ("2024-01-01", "2024-01-06"), ("2024-01-07", "2024-01-10")]
    newest = repo.backfill(daily_etl, partition_keys=days(1, 10), strategy=ac.BackfillStrategy.single_run(),
                           order="newest_first")
    (cell,) = repo.backfill_grid(newest.backfill_id).cells
    assert (cell.first_key, cell.last_key, cell.size, cell.status) == ("2024-01-10", "2024-01-01", 1, "success")


def test_a_workflow_grid_is_the_same_read_key_by_key_or_in_one_pass(tmp_path, monkeypatch):
    """Locating each key with runs in the key sequence, or one pass over the keys (when many have runs): the same
    grid, and a key of an earlier definition is left out either way."""
    from anachron.engine import grids

    @ac.workflow(name="regions", partitions=ac.StaticPartitions(["a", "b", "c"]))
    def before():
        return None

    @ac.workflow(name="regions", partitions=ac.StaticPartitions(["b", "c", "d"] + [f"x{i}" for i in range(200)]))
    def after():
        return None

    url = f"sqlite:///{tmp_path / 'g.db'}"
    first = ac.CodeRepository([before], storage=url, executor=ac.InProcessExecutor(2))
    first.backfill(before)
    first.close()
    repo = ac.CodeRepository([after], storage=url, executor=ac.InProcessExecutor(2))
    try:
        monkeypatch.setattr(grids, "LOOKUP_COST", 1_000)  # 3 keys with runs of 203: one pass
        passed = repo.partition_grid(after, max_cells=50)
        monkeypatch.setattr(grids, "LOOKUP_COST", 0)  # each key located on its own
        located = repo.partition_grid(after, max_cells=50)
        assert passed == located
        assert passed.counts == {"success": 2, "missing": 201}  # "a" is not a key any more
        assert dict(passed.cells[0].counts) == {"success": 2, "missing": 3}
    finally:
        repo.close()
