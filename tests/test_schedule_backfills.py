"""Backfills of schedule ticks as Kestra's and Uniflow's users do them (issue 13, items 1-3), on SQLite and
PostgreSQL, through every door: Python, HTTP (anachron's route, Kestra's ``PUT /api/v1/triggers``, the UI's tick
form). A controllable clock says what "now" is; runs write marker files, so executions are counted by what ran.

- A replayed tick of a partitioned workflow runs the partition that ended by the tick, as the live tick does.
- Only past ticks are replayed: an ``end`` after now ends at now (the effective end is reported), and the live
  schedule then runs its next tick as usual.
- A trigger has one active backfill at a time, whichever door created it.
"""

from __future__ import annotations

import threading
from datetime import datetime, timezone

import pytest
from fastapi.testclient import TestClient

import anachron as ac
import flows_migrants as fm
from anachron.api import create_app
from anachron.requests import BackfillRequest

UTC = timezone.utc
NOW = datetime(2026, 1, 1, 12, tzinfo=UTC)


@pytest.fixture
def clock(noon_clock):
    return noon_clock


@pytest.fixture
def repo(storage_url, make_repo, clock):
    return make_repo([fm.daily_summary, fm.nightly_export, fm.export_snapshot], storage=storage_url,
                     executor=ac.InProcessExecutor(2), clock=clock)


@pytest.fixture
def client(repo):
    with TestClient(create_app(repo, daemon=False), follow_redirects=False, base_url="http://localhost") as c:
        yield c


def test_a_replayed_tick_runs_the_partition_that_ended_by_it(repo, clock, tmp_path):
    result = repo.backfill_schedule(fm.daily_summary, start="2025-12-10", end="2025-12-12T23:00:00",
                                    inputs={"out": str(tmp_path)})
    assert result.status == "completed" and result.num_runs == 3
    seen = sorted(fm.seen(str(tmp_path)), key=lambda r: r["logical_time"])
    assert [r["partition_key"] for r in seen] == ["2025-12-09", "2025-12-10", "2025-12-11"]
    assert [r["logical_time"] for r in seen] == [f"2025-12-{d}T06:00:00+00:00" for d in (10, 11, 12)]
    assert seen[0]["window"] == ["2025-12-09T00:00:00+00:00", "2025-12-10T00:00:00+00:00"]
    status = repo.partition_status(fm.daily_summary, from_key="2025-12-08", to_key="2025-12-12")
    assert status == {"2025-12-08": "missing", "2025-12-09": "success", "2025-12-10": "success",
                      "2025-12-11": "success", "2025-12-12": "missing"}

    # the live tick runs the same way: the day that ended by it
    daemon = repo.daemon()
    clock.now = datetime(2025, 12, 13, 5, tzinfo=UTC)
    daemon.step()  # first seen: the schedule starts from now
    clock.now = datetime(2025, 12, 13, 6, 0, 20, tzinfo=UTC)
    daemon.step()
    (live,) = [r for r in repo.list_runs(fm.daily_summary) if r.backfill_id is None]
    assert live.partition_key == "2025-12-12" and live.logical_time == datetime(2025, 12, 13, 6, tzinfo=UTC)

    # a tick by which no partition has ended runs nothing (the partitions start on 2025-12-01)
    early = repo.backfill_schedule(fm.daily_summary, start="2025-11-30", end="2025-12-02T12:00:00", dry_run=True)
    assert list(early.partition_keys) == ["2025-12-02T06:00:00+00:00"]


def test_a_future_end_replays_past_ticks_only(repo, clock, tmp_path):
    result = repo.backfill_schedule(fm.nightly_export, trigger_id="nightly", start="2025-12-30",
                                    end="2026-01-05", inputs={"out": str(tmp_path)})
    assert result.num_runs == 3 and result.status == "completed"  # 12-30, 12-31, 01-01 at 00:00; not 01-02..05
    assert [r["logical_time"] for r in sorted(fm.seen(str(tmp_path)), key=lambda r: r["logical_time"])] == [
        "2025-12-30T00:00:00+00:00", "2025-12-31T00:00:00+00:00", "2026-01-01T00:00:00+00:00"]
    assert result.request.end == NOW.isoformat()  # the effective end
    assert repo.get_backfill(result.backfill_id).request.end == NOW.isoformat()
    assert max(r.logical_time for r in repo.list_runs(fm.nightly_export)) <= NOW

    daemon = repo.daemon()
    daemon.step()  # first seen at NOW
    clock.now = datetime(2026, 1, 2, 0, 0, 30, tzinfo=UTC)
    evaluation = daemon.evaluator.evaluate(clock.now)
    fired = [f for f in evaluation.fired if f.schedule_id == "nightly"]
    assert len(fired) == 1 and fired[0].run_id is not None  # the live tick runs: the backfill did not take it


def test_one_active_backfill_per_trigger_from_python(repo, clock):
    first = repo.backfill_schedule(fm.nightly_export, trigger_id="nightly", start="2025-12-01", block=False,
                                   coordinate=False)
    repo.pause_backfill(first.backfill_id)
    attempts = [
        lambda: repo.backfill_schedule(fm.nightly_export, trigger_id="nightly", start="2025-11-01", end="2025-11-03"),
        lambda: repo.backfill(fm.nightly_export, start="2025-11-01", end="2025-11-03"),  # its first schedule's ticks
        lambda: repo.create_backfill(BackfillRequest.parse({"workflow": "nightly_export", "trigger_id": "nightly",
                                                            "start": "2025-11-01"})),
        lambda: repo.backfill_schedule(fm.nightly_export, trigger_id="nightly", start="2025-11-01", dry_run=True),
    ]
    for attempt in attempts:
        with pytest.raises(ac.ConflictError, match=f"trigger_id: .*'nightly'.*{first.backfill_id} \\(paused\\)"):
            attempt()
    assert len(repo.list_backfills()) == 1
    # another trigger of the workflow is another trigger; a cron backfill is no trigger's
    other = repo.backfill_schedule(fm.nightly_export, trigger_id="noon", start="2025-12-30", end="2025-12-31")
    assert other.status == "completed"
    assert repo.backfill(fm.nightly_export, start="2025-12-30", end="2025-12-31T12:00", cron="0 3 * * *").num_runs == 2
    # the same request again (an idempotency key) is not a second backfill
    keyed = repo.backfill_schedule(fm.nightly_export, trigger_id="noon", start="2025-12-01", block=False,
                                   coordinate=False, idempotency_key="k1")
    again = repo.backfill_schedule(fm.nightly_export, trigger_id="noon", start="2025-12-01", block=False,
                                   coordinate=False, idempotency_key="k1")
    assert again.backfill_id == keyed.backfill_id
    # once it has ended, the trigger takes a new one
    repo.cancel_backfill(first.backfill_id)
    assert repo.backfill_schedule(fm.nightly_export, trigger_id="nightly", start="2025-12-30",
                                  end="2025-12-31").status == "completed"


def test_two_processes_asking_at_once_create_one(storage_url, make_repo, clock):
    """The check and the insert hold the schedule's row lock: of two repositories (two connections) asking at
    the same moment, exactly one gets the backfill."""
    repos = [make_repo([fm.nightly_export], storage=storage_url, executor=ac.InProcessExecutor(1), clock=clock)
             for _ in range(2)]
    for r in repos:
        r.list_backfills()  # storage open and migrated before the race
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def ask(r: ac.CodeRepository) -> None:
        barrier.wait()
        try:
            outcomes.append(r.backfill_schedule(fm.nightly_export, trigger_id="nightly", start="2025-12-01",
                                                block=False, coordinate=False).backfill_id)
        except ac.ConflictError as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=ask, args=(r,)) for r in repos]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert sorted(type(o).__name__ for o in outcomes) == ["ConflictError", "str"]
    assert len(repos[0].list_backfills()) == 1


def test_one_active_backfill_per_trigger_over_http(repo, client):
    body = {"workflow": "nightly_export", "trigger_id": "nightly", "start": "2025-12-01"}
    created = client.post("/api/v1/backfills", json=body)
    assert created.status_code == 201, created.text
    first = created.json()["backfill_id"]
    assert client.post(f"/api/v1/backfills/{first}/pause").json()["status"] == "paused"
    assert dict(client.get(f"/api/v1/backfills/{first}").json()["tags"])["anachron/trigger"] == "nightly"

    again = client.post("/api/v1/backfills", json={**body, "start": "2025-11-01"})
    assert again.status_code == 409 and first in again.json()["error"]["message"], again.text
    assert again.json()["error"]["code"] == "conflict"

    form = {"workflow": "nightly_export", "schedule": "nightly", "start": "2025-11-01", "end": "2025-11-03"}
    launched = client.post("/backfills/launch", data=form)  # the UI's "Backfill ticks of schedule" form
    assert launched.status_code == 409 and first in launched.text

    ref = {"flowId": "nightly_export", "namespace": "flows_migrants", "triggerId": "nightly"}
    kestra = client.put("/api/v1/triggers", json={**ref, "backfill": {"start": "2025-11-01T00:00:00Z"}})
    assert kestra.status_code == 409 and first in kestra.json()["error"]["message"]

    assert len(repo.list_backfills()) == 1
    unpaused = client.put("/api/v1/triggers/backfill/unpause", json=ref)
    assert unpaused.status_code == 200 and unpaused.json()["backfill_id"] == first  # the only one


def test_kestra_trigger_backfill_takes_max_concurrency_and_names_its_fields(repo, client):
    ref = {"flowId": "nightly_export", "namespace": "flows_migrants", "triggerId": "nightly"}
    put = client.put("/api/v1/triggers", json={**ref, "backfill": {"start": "2025-12-20T00:00:00Z",
                                                                    "end": "2025-12-25T00:00:00Z",
                                                                    "max_concurrency": 7}})
    assert put.status_code == 200, put.text
    status = repo.get_backfill(put.json()["backfill_id"])
    assert status.request.max_concurrency == 7 and status.request.trigger_id == "nightly"
    repo.cancel_backfill(status.backfill_id)

    for backfill, field, words in (
        ({"start": "2025-12-20T00:00:00Z", "inputs": {"regoin": "eu"}}, "backfill.inputs", "regoin"),
        ({"start": "2025-12-20T00:00:00Z", "max_concurrency": 0}, "backfill.max_concurrency", ">= 1"),
        ({"start": "2025-12-20T00:00:00Z", "labels": [{"key": "anachron/priority", "value": "high"}]},
         "backfill.labels", "integer"),
    ):
        refused = client.put("/api/v1/triggers", json={**ref, "backfill": backfill})
        assert refused.status_code == 400, refused.text
        message = refused.json()["error"]["message"]
        assert message.startswith(f"{field}:") and words in message, message
    assert [b.backfill_id for b in repo.list_backfills()] == [status.backfill_id]  # nothing else was written


def test_a_partitioned_yaml_flow_replays_its_partitions_through_kestras_api(storage_url, make_repo, clock, tmp_path):
    """The Kestra migrant's flow: a YAML flow with a schedule trigger and daily partitions, whose command uses
    partition.key; every replayed tick renders the day that ended by it."""
    from anachron.flows import load_flow

    marker = tmp_path / "keys.txt"
    flow = tmp_path / "flow.yaml"
    flow.write_text(f"""
id: partitioned_flow
namespace: company.team
partitions: {{type: daily, start: 2025-12-01}}
tasks:
  - id: load
    type: shell
    commands:
      - echo "{{{{ partition.key }}}} {{{{ trigger.date }}}}" >> {marker}
triggers:
  - id: daily
    type: io.kestra.plugin.core.trigger.Schedule
    cron: "0 6 * * *"
""")
    repo = make_repo([load_flow(flow)], storage=storage_url, executor=ac.InProcessExecutor(2), clock=clock)
    with TestClient(create_app(repo, daemon=False), follow_redirects=False, base_url="http://localhost") as client:
        window = {"start": "2025-12-04T00:00:00Z", "end": "2025-12-06T00:00:00Z"}
        put = client.put("/api/v1/triggers", json={"flowId": "partitioned_flow", "namespace": "company.team",
                                                    "triggerId": "daily", "backfill": window})
        assert put.status_code == 200, put.text
        status = repo.wait_backfill(put.json()["backfill_id"], timeout=30)
    assert status.status == "completed" and status.completed_partitions == 2
    lines = sorted(marker.read_text().split("\n")[:-1])
    assert [line.split()[0] for line in lines] == ["2025-12-03", "2025-12-04"]
    assert [line.split()[1][:19] for line in lines] == ["2025-12-04T06:00:00", "2025-12-05T06:00:00"]


def test_a_schedule_needs_time_partitions(storage_url, make_repo, clock):
    @ac.workflow(name="by_region", partitions=ac.StaticPartitions(["us", "eu"]), schedule=ac.Schedule("0 6 * * *"))
    def by_region():
        pass

    repo = make_repo([by_region], storage=storage_url, executor=ac.InProcessExecutor(1), clock=clock)
    with pytest.raises(ValueError, match="trigger_id: workflow 'by_region' is partitioned by StaticPartitions"):
        repo.backfill_schedule(by_region, start="2025-12-01")
    with pytest.raises(ValueError, match="schedule 'schedule' of workflow 'by_region' cannot run"):
        repo.daemon()


def test_the_last_tick_is_the_latest_tick_that_ran(repo, clock, client):
    """A daemon's first look at a schedule is no tick: LAST TICK stays empty until a tick has run."""
    daemon = repo.daemon()
    daemon.step()  # the schedules are first seen at noon
    assert [(s.schedule_id, s.last_tick) for s in repo.list_schedules(fm.nightly_export)] == [
        ("nightly", None), ("noon", None)]
    assert {s["last_tick"] for s in client.get("/api/v1/schedules").json()} == {None}
    clock.now = datetime(2026, 1, 2, 0, 0, 20, tzinfo=UTC)
    daemon.step()  # the nightly tick fires
    nightly, noon = repo.list_schedules(fm.nightly_export)
    assert nightly.last_tick == datetime(2026, 1, 2, tzinfo=UTC) and noon.last_tick is None
    assert nightly.next_tick == datetime(2026, 1, 3, tzinfo=UTC)
    replayed = repo.backfill_schedule(fm.nightly_export, trigger_id="noon", start="2026-01-01T06:00:00")
    assert replayed.num_runs == 1  # 2026-01-01 12:00, the tick the daemon's first look passed over
    assert repo.list_schedules(fm.nightly_export)[1].last_tick == datetime(2026, 1, 1, 12, tzinfo=UTC)
