"""Single runs through the public API: submission, idempotency, retries, timeouts, logs, cancel."""

from __future__ import annotations

import time

import pytest

import anachron as ac
import flows_basic as fb


@pytest.fixture(autouse=True)
def _reset():
    fb.reset()
    fb._attempts.clear()


@pytest.fixture
def repo(storage_url, make_repo):
    return make_repo([fb.daily_etl, fb.manual, fb.retrying, fb.timing_out, fb.sleepy, fb.flaky],
                     storage=storage_url, executor=ac.InProcessExecutor(4))


def test_run_returns_a_finished_run_with_its_fields(repo):
    run = repo.run("manual", params={"x": 5}, tags={"team": "data"}, run_name="first")
    assert run.status == "success" and run.params == {"x": 5} and run.tags == {"team": "data"}
    assert run.priority == 0 and run.backfill_id is None and run.attempt == 1 and run.run_name == "first"
    assert run.created_at <= run.started_at <= run.ended_at
    assert repo.get_run(run.run_id) == run
    assert repo.list_runs(workflow="manual") == [run]
    assert repo.list_runs(tags={"team": "data"}) == [run] and repo.list_runs(tags={"team": "x"}) == []


def test_idempotent_submission_returns_the_same_run(repo):
    first = repo.run(fb.manual, idempotency_key="job-1")
    again = repo.run(fb.manual, idempotency_key="job-1", params={"x": 9})
    assert again.run_id == first.run_id
    assert len(repo.list_runs(workflow="manual")) == 1


def test_task_retries_then_succeeds(repo):
    run = repo.run(fb.retrying, params={"key": "a"})
    assert run.status == "success"
    assert fb._attempts["a"] == 3
    messages = [line["message"] for line in repo.run_logs(run.run_id)]
    assert sum("retrying" in m for m in messages) == 2


def test_task_timeout_fails_the_run(repo):
    started = time.monotonic()
    run = repo.run(fb.timing_out)
    assert run.status == "failed" and "timed out after 0.3 s" in run.error
    assert time.monotonic() - started < 3


def test_logs_are_stored_with_the_run(repo):
    run = repo.run(fb.daily_etl, partition_key="2024-01-03")
    logs = repo.run_logs(run.run_id)
    assert [(line["level"], line["message"]) for line in logs] == [("INFO", "processing 2024-01-03")]
    failed = repo.run(fb.flaky, partition_key="2024-01-04", params={"fail_keys": ["2024-01-04"]})
    assert any("boom on 2024-01-04" in line["message"] for line in repo.run_logs(failed.run_id))
    with pytest.raises(ac.NotFoundError):
        repo.run_logs("nope")


def test_cancel_a_queued_and_a_running_run(storage_url, make_repo):
    repo = make_repo([fb.sleepy], storage=storage_url, executor=ac.InProcessExecutor(1))
    running = repo.run(fb.sleepy, partition_key="2024-01-01", params={"seconds": 30}, block=False)
    deadline = time.monotonic() + 5
    while repo.get_run(running.run_id).status != "running" and time.monotonic() < deadline:
        time.sleep(0.02)
    # the executor is full (1 worker + 1 prefetched): a third run waits in the queue
    second = repo.run(fb.sleepy, partition_key="2024-01-02", params={"seconds": 30}, block=False)
    queued = repo.run(fb.sleepy, partition_key="2024-01-03", params={"seconds": 30}, block=False)
    assert repo.cancel_run(queued.run_id) is True
    assert repo.get_run(queued.run_id).status == "canceled"
    assert repo.cancel_run(running.run_id) is True
    assert repo.cancel_run(second.run_id) is True
    assert repo.wait_run(running.run_id, timeout=5).status == "canceled"
    assert repo.cancel_run(running.run_id) is False
    with pytest.raises(ac.NotFoundError):
        repo.cancel_run("nope")


@pytest.mark.parametrize("call, field", [
    (lambda r: r.run("nope"), "workflow"),
    (lambda r: r.run(fb.manual, params={"y": 1}), "y"),
    (lambda r: r.run(fb.manual, partition_key="2024-01-01"), "partition_key"),
    (lambda r: r.run(fb.daily_etl, partition_key="yesterday"), "yesterday"),
    (lambda r: r.run(fb.manual, tags=[("anachron/priority", "x")]), "anachron/priority"),
    (lambda r: r.run(fb.manual, idempotency_key=""), "idempotency_key"),
])
def test_bad_run_input_names_the_field(repo, call, field):
    with pytest.raises(ValueError, match=field):
        call(repo)
    assert repo.list_runs() == []


def test_definition_errors_name_the_field():
    with pytest.raises(ValueError, match="retries"):
        ac.task(retries=-1)(lambda: None)
    with pytest.raises(ValueError, match="timeout"):
        ac.task(timeout=0)(lambda: None)
    with pytest.raises(ValueError, match="partitions"):
        ac.workflow(partitions="daily")(lambda: None)
    with pytest.raises(ValueError, match="cron"):
        ac.Schedule("every day")
    with pytest.raises(ValueError, match="timezone"):
        ac.Schedule("0 * * * *", timezone="Mars/Olympus")
    with pytest.raises(ValueError, match="recover_missed"):
        ac.Schedule("0 * * * *", recover_missed="some")
    with pytest.raises(ValueError, match="workflows"):
        ac.CodeRepository([fb.manual, fb.manual], storage="sqlite://")
    with pytest.raises(ValueError, match="storage"):
        ac.CodeRepository([fb.manual], storage="mysql://x")


def test_a_task_can_run_alone():
    assert fb.nap(0) is None
    assert fb.sometimes("solo") == 3  # retries apply outside a run too


def test_in_memory_storage(make_repo):
    repo = make_repo([fb.manual], storage="sqlite://", executor=ac.InProcessExecutor(2))
    assert repo.run(fb.manual).status == "success"


def test_storage_opens_on_first_use(tmp_path):
    path = tmp_path / "lazy" / "anachron.db"
    repo = ac.CodeRepository([fb.manual], storage=f"sqlite:///{path}", executor=ac.InProcessExecutor(1))
    assert not path.exists()  # defining a repository touches nothing (worker processes import it)
    assert repo.list_runs() == [] and path.exists()
    repo.close()
