"""The status micro-cache (``api/cache.py``): repeated polls of one backfill share an answer for at most
``TTL_SECONDS``; a change made through this server is seen at once; other processes' changes within the TTL."""

from __future__ import annotations

import time

import pytest

import anachron as ac
import anachron.api.cache as cache
from flows_basic import daily_etl

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from anachron.api import create_app  # noqa: E402

API = "/api/v1"


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'cache.db'}"


def requested(repo: ac.CodeRepository, day: str) -> str:
    """A backfill stored and left unled (nobody runs it in these tests)."""
    result = repo.backfill(daily_etl, partition_keys=[day], block=False, coordinate=False)
    assert result.backfill_id is not None
    return result.backfill_id


def test_polls_share_an_answer_until_the_ttl_or_a_change_made_here(url, make_repo, monkeypatch):
    monkeypatch.setattr(cache, "TTL_SECONDS", 30.0)
    server = make_repo([daily_etl], storage=url, executor=ac.InProcessExecutor(1))
    elsewhere = make_repo([daily_etl], storage=url, executor=ac.InProcessExecutor(1))
    first, second = requested(elsewhere, "2024-01-01"), requested(elsewhere, "2024-01-02")
    with TestClient(create_app(server, daemon=False, ui=False), base_url="http://localhost") as client:
        assert client.get(f"{API}/backfills/{first}").json()["status"] == "requested"
        elsewhere.cancel_backfill(first)  # another process changes it
        assert client.get(f"{API}/backfills/{first}").json()["status"] == "requested"  # the shared answer
        assert client.get(f"{API}/backfills/{first}", params={"include_run_ids": "true"}).json()["status"] \
            == "canceled"  # a different request (a query string) is never answered from the cache
        assert client.post(f"{API}/backfills/{second}/cancel").status_code == 200  # a change made here ...
        assert client.get(f"{API}/backfills/{first}").json()["status"] == "canceled"  # ... drops every answer
        assert client.get(f"{API}/backfills/{second}").json()["status"] == "canceled"
        assert client.get(f"{API}/backfills/nope").status_code == 404
        assert client.get(f"{API}/backfills/nope").status_code == 404  # errors are not kept


def test_an_answer_is_kept_at_most_the_ttl(url, make_repo, monkeypatch):
    monkeypatch.setattr(cache, "TTL_SECONDS", 0.2)
    server = make_repo([daily_etl], storage=url, executor=ac.InProcessExecutor(1))
    elsewhere = make_repo([daily_etl], storage=url, executor=ac.InProcessExecutor(1))
    backfill_id = requested(elsewhere, "2024-01-01")
    with TestClient(create_app(server, daemon=False, ui=False), base_url="http://localhost") as client:
        assert client.get(f"{API}/backfills/{backfill_id}").json()["status"] == "requested"
        elsewhere.cancel_backfill(backfill_id)
        time.sleep(0.3)
        assert client.get(f"{API}/backfills/{backfill_id}").json()["status"] == "canceled"
