"""What a backfill says about itself (issue 13, item 12): ``tags`` as ``(key, value)`` pairs, ``request`` (what was
asked, as the validated ``BackfillRequest``) and ``created_by`` (the API token's name, or the OS user), in Python
and over HTTP (``GET /api/v1/backfills/{id}`` and the list), on SQLite and PostgreSQL. The CLI's are in
test_cli_migrants.py.
"""

from __future__ import annotations

import getpass
import json
from datetime import date

import pytest
from fastapi.testclient import TestClient

import anachron as ac
import flows_basic as fb
import flows_migrants as fm
from anachron.api import create_app
from anachron.requests import BackfillRequest


@pytest.fixture
def repo(storage_url, make_repo):
    fb.reset()
    return make_repo([fb.daily_etl, fb.regional, fb.flaky, fm.typed_params], storage=storage_url,
                     executor=ac.InProcessExecutor(2))


def test_a_backfill_keeps_what_was_asked_and_who_asked(repo):
    strategy = ac.BackfillStrategy.per_dimension(multi_run=["date"], single_run=["region"])
    result = repo.backfill(fb.regional, partition_range=ac.PartitionKeyRange.multi(
        {"date": ("2024-01-01", "2024-01-02"), "region": ["us", "eu"]}), strategy=strategy, max_concurrency=3,
        failure_policy="stop_on_failure", reprocess="missing", order="newest_first", tags=[("team", "data")])
    status = repo.get_backfill(result.backfill_id)
    asked = status.request
    assert isinstance(asked, BackfillRequest) and asked.workflow == "regional"
    assert asked.partition_range.model_dump(by_alias=True) == {
        "dimensions": {"date": {"from": "2024-01-01", "to": "2024-01-02"}, "region": ["us", "eu"]}}
    assert ac.BackfillStrategy.from_dict(asked.strategy) == strategy
    assert (asked.max_concurrency, asked.failure_policy, asked.reprocess, asked.order) == (
        3, "stop_on_failure", "missing", "newest_first")
    assert status.tags == [("team", "data")] and [(t.key, t.value) for t in asked.tags] == [("team", "data")]
    assert status.created_by == getpass.getuser()
    assert result.request == asked

    keyed = repo.backfill(fm.typed_params, partition_keys=["2024-01-03"], params={"day": date(2024, 1, 3)},
                          config={"typed_params": {"n": 2}})
    asked = repo.get_backfill(keyed.backfill_id).request
    assert asked.partition_keys == ["2024-01-03"] and asked.params == {"day": date(2024, 1, 3)}  # still a date
    assert asked.config == {"typed_params": {"n": 2}}
    assert [s.request for s in repo.list_backfills()] == [asked, status.request]  # the list says it too


def test_a_rerun_says_what_it_reruns(repo):
    fb.FAILING.add("2024-01-02")
    first = repo.backfill(fb.flaky, partition_keys=["2024-01-01", "2024-01-02"])
    fb.FAILING.clear()
    rerun = repo.get_backfill(repo.rerun_backfill(first.backfill_id).backfill_id)
    assert rerun.request.selection == ["flaky"] and dict(rerun.tags)["anachron/rerun_of"] == first.backfill_id
    assert ("anachron/rerun_of", first.backfill_id) in [(t.key, t.value) for t in rerun.request.tags]


def test_a_backfill_stored_before_requests_were_kept_still_says_what_was_asked(repo):
    """A row written by an older anachron (no recorded request): its frozen plan says what was asked."""
    from sqlalchemy import select, update

    from anachron.storage.schema import backfills

    result = repo.backfill(fb.daily_etl, start="2024-01-01", end="2024-01-03", max_concurrency=2)

    def forget(s):
        stored = json.loads(s.conn.execute(select(backfills.c.request).where(
            backfills.c.backfill_id == result.backfill_id)).scalar_one())
        stored.pop("asked")
        stored.pop("created_by")
        s.conn.execute(update(backfills).where(backfills.c.backfill_id == result.backfill_id).values(
            request=json.dumps(stored)))

    repo.storage.run(forget)
    status = repo.get_backfill(result.backfill_id)
    assert status.request.workflow == "daily_etl" and status.request.max_concurrency == 2
    assert (status.request.start, status.request.end) == ("2024-01-01", "2024-01-03")
    assert status.created_by is None


@pytest.mark.parametrize("token, token_name, expected", [
    (None, "api-token", "anonymous"),
    ("s3cret", "api-token", "api-token"),
    ("s3cret", "ci-pipeline", "ci-pipeline"),
])
def test_over_http_a_backfill_is_created_by_the_token_s_name(repo, token, token_name, expected):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with TestClient(create_app(repo, daemon=False, token=token, token_name=token_name), headers=headers,
                    base_url="http://localhost") as client:
        created = client.post("/api/v1/backfills", json={"workflow": "daily_etl", "partition_keys": ["2024-01-05"],
                                                         "tags": [{"key": "via", "value": "http"}]})
        assert created.status_code == 201, created.text
        backfill_id = created.json()["backfill_id"]
        assert created.json()["request"]["partition_keys"] == ["2024-01-05"]
        one = client.get(f"/api/v1/backfills/{backfill_id}").json()
        assert one["created_by"] == expected and one["tags"] == [["via", "http"]]
        assert one["request"]["workflow"] == "daily_etl" and one["request"]["max_concurrency"] == 4
        (listed,) = client.get("/api/v1/backfills").json()
        assert listed["created_by"] == expected and listed["request"] == one["request"]
    assert repo.get_backfill(backfill_id).created_by == expected


def test_a_selection_that_does_not_fit_one_of_its_workflows_names_it_and_the_field(repo):
    for kwargs, start in (
        ({"partition_range": ac.PartitionKeyRange.single("2024-01-02", "2024-01-03")},
         "partition_range: workflow 'regional': "),
        ({"partition_keys": ["2024-01-02"]}, "partition_keys: workflow 'regional': "),
    ):
        with pytest.raises(ValueError) as caught:
            repo.backfill(selection=[fb.daily_etl, fb.regional], dry_run=True, **kwargs)
        assert str(caught.value).startswith(start), str(caught.value)
    assert repo.list_backfills() == []
