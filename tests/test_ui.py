"""The web UI over HTTP (FastAPI's TestClient on the real app, no browser): pages, fragments, actions, forms,
login, escaping, errors. The browser tests (tests/test_ui_browser.py) drive the same pages in Chromium."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime, timedelta, timezone
from html import unescape
from pathlib import Path

import pytest

import anachron as ac
from anachron.models import BackfillStatus
from anachron.requests import BackfillRequest
from anachron.ui import fields, forms, view
from anachron.ui.render import query
from helpers import load_module

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from anachron.api import create_app  # noqa: E402

FLOWS = Path(__file__).parent / "ui_flows" / "demo.py"


demo = load_module(FLOWS, "ui_demo_flows")

MULTI = ac.MultiPartitions({"date": ac.DailyPartitions("1990-01-01", "2100-01-01"),
                            "region": ac.StaticPartitions([f"r{i:03d}" for i in range(100)])})


@ac.workflow(partitions=MULTI)
def noop_multi():
    return None


@pytest.fixture
def repo(tmp_path, monkeypatch):
    monkeypatch.setenv("UI_SLEEP", "0")
    monkeypatch.setenv("UI_SLOW", "0.3")
    monkeypatch.setenv("UI_BAD_DAYS", "2024-01-03")
    r = ac.CodeRepository(demo.repo.workflows, storage=f"sqlite:///{tmp_path / 'ui.db'}",
                          executor=ac.InProcessExecutor(max_workers=4))
    yield r
    r.close()


@pytest.fixture
def client(repo):
    with TestClient(create_app(repo, daemon=False), follow_redirects=False, base_url="http://localhost") as c:
        yield c


HX = {"HX-Request": "true"}


def text_of(html: str) -> str:
    """The page's visible text, roughly (tags dropped, entities decoded)."""
    return unescape(re.sub(r"<[^>]+>", " ", html))


def finished_backfill(repo, **kwargs) -> str:
    result = repo.backfill("daily_sales", partition_range=ac.PartitionKeyRange.single("2024-01-01", "2024-01-05"),
                           **kwargs)
    return result.backfill_id


# -- pages ----------------------------------------------------------------------------------------------
def test_every_page_renders_with_its_content(client, repo):
    bid = finished_backfill(repo)
    failed = repo.list_runs(backfill_id=bid, status="failed")[0]
    pages = {
        "/": ["Dashboard", "Active backfills", "Recent runs", "daily_sales"],
        "/backfills": ["Backfills", bid, "failed"],
        "/backfills?status=failed": [bid],
        f"/backfills/{bid}": ["Partition grid", "Failed partitions", "2024-01-03", "upstream export for 2024-01-03",
                              "Rerun failed &amp; canceled", "4 succeeded"],
        "/workflows": ["daily_sales", "nightly_report", "0 2 * * *"],
        "/workflows/daily_sales": ["Partition status", "New backfill", "Preview", "team=analytics", "366 partitions"],
        "/workflows/nightly_report": ["Schedules", "nightly", "half_hourly", "not partitioned"],
        "/workflows/regional": ["180 partitions"],
        "/runs": ["Runs", "2024-01-05"],
        f"/runs?backfill={bid}&status=failed": ["2024-01-03"],
        f"/runs/{failed.run_id}": ["RuntimeError", "upstream export for 2024-01-03", "Logs", bid],
    }
    for path, expected in pages.items():
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:500])
        assert r.headers["content-type"].startswith("text/html")
        for needle in expected:
            assert needle in r.text, (path, needle)
    # the backfill's grid: one cell per run, each with its key and status in a title, linking to the run
    page = client.get(f"/backfills/{bid}").text
    assert '<a href="/runs/' in page and 'title="2024-01-03: failed"' in page
    assert len(re.findall(r'class="success" title="2024-01-0\d: succeeded"', page)) == 4


def test_finished_things_do_not_poll_and_active_ones_do(client, repo):
    done = finished_backfill(repo)
    page = client.get(f"/backfills/{done}").text
    assert "every 1s" not in page and "every 2s" not in page
    stored = repo.backfill("slow", max_concurrency=1, block=False, coordinate=False)  # requested: nobody leads it
    page = client.get(f"/backfills/{stored.backfill_id}").text
    # one poll: the counters and the grid come from one read, so they never disagree
    assert page.count('hx-trigger="every 1s"') == 1 and "every 2s" not in page
    assert page.count('id="bf-head"') == 1 and "hx-swap-oob" not in page
    assert "fragment=live" in page and "fragment=grid" not in page
    live = client.get(f"/backfills/{stored.backfill_id}?fragment=live", headers=HX)
    assert live.status_code == 200 and live.text.lstrip().startswith('<section id="live"')
    assert "<html" not in live.text and 'hx-swap-oob="true"' in live.text  # the head follows along
    assert 'id="grid-panel"' in live.text and "pending" in live.text
    assert "◌ 120" in text_of(live.text)  # 120 runs pending: planned, not created yet
    assert 'hx-trigger="every 2s"' in client.get("/").text  # something is active: the dashboard follows


def test_hostile_names_tags_keys_and_logs_are_escaped(client, repo):
    name = demo.HOSTILE
    result = repo.backfill(name, tags={"<i>k</i>": "<script>alert('v')</script>"})
    run = repo.list_runs(name, limit=1)[0]
    url = "/workflows/" + "%3Cimg%20src%3Dx%20onerror%3D%22alert(1)%22%3E%26amp%3B%2Fx%3Fy%23z"
    pages = ["/", "/workflows", url, "/backfills", f"/backfills/{result.backfill_id}", "/runs",
             f"/runs/{run.run_id}", f"/runs?workflow={name}", f"/backfills?workflow={name}", "/schedules",
             "/partitions" + query(workflow=name, key="<b>k1</b>"), "/partitions" + query(workflow=name, key="<b>"),
             "/runs" + query(tag="<i>k</i>=<script>alert('v')</script>"), "/timezone",
             "/backfills" + query(tag="<i>k</i>=<script>alert('v')</script>")]
    for path in pages:
        r = client.get(path)
        assert r.status_code == 200, (path, r.text[:300])
        body = r.text
        for raw in ("<img src=x", "<script>alert", "<svg onload", "<b>k1</b>", "<i>k</i>"):
            assert raw not in body, (path, raw)
    page = client.get(url).text
    assert "&lt;img src=x onerror=&#34;alert(1)&#34;&gt;&amp;amp;/x?y#z" in page  # the name, as text
    assert "&lt;b&gt;k1&lt;/b&gt;" in page  # a key in a grid cell's title
    assert "&lt;script&gt;alert(&#39;log&#39;)&lt;/script&gt;" in client.get(f"/runs/{run.run_id}").text
    # links to it are percent-encoded, so the name's "/", "?" and "#" stay in the path
    assert 'href="/workflows/%3Cimg%20src%3Dx%20onerror%3D%22alert%281%29%22%3E%26amp%3B%2Fx%3Fy%23z"' in \
        client.get("/workflows").text


def test_unknown_ids_and_paths_answer_html_404_pages(client):
    for path, message in [("/backfills/nope", "backfill &#39;nope&#39; not found"),
                          ("/runs/nope", "run &#39;nope&#39; not found"),
                          ("/workflows/nope", "workflow &#39;nope&#39; not found"),
                          ("/no/such/page", "There is no page at /no/such/page")]:
        r = client.get(path)
        assert r.status_code == 404 and r.headers["content-type"].startswith("text/html"), path
        assert message in r.text and "Not found" in r.text
    assert client.post("/backfills/nope/pause", headers=HX).status_code == 404
    assert client.get("/backfills?status=bogus").status_code == 400
    r = client.get("/backfills?offset=-1")
    assert r.status_code == 400 and r.headers["content-type"].startswith("text/html") and "offset" in r.text
    # the JSON API keeps its own errors
    api = client.get("/api/v1/backfills/nope")
    assert api.status_code == 404 and api.json()["error"]["code"] == "not_found"


def test_static_files_are_served_and_packaged(client):
    from importlib.resources import files

    js = client.get("/static/htmx.min.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert js.text.startswith("var htmx=function()") and len(js.text) > 40_000
    css = client.get("/static/app.css")
    assert css.status_code == 200 and ".grid" in css.text
    package = files("anachron.ui")
    assert package.joinpath("static/htmx.min.js").is_file() and package.joinpath("templates/base.html").is_file()
    page = client.get("/").text
    assert '<script src="/static/htmx.min.js' in page and "https://" not in page  # nothing fetched from elsewhere
    # pages are compressed (a big grid polled every 2 s shrinks ~10×); the JSON API is left as it is
    r = client.get("/workflows/daily_sales", headers={"Accept-Encoding": "gzip"})
    assert r.headers["content-encoding"] == "gzip" and "Partition status" in r.text
    r = client.get("/api/v1/workflows", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in r.headers


# -- actions --------------------------------------------------------------------------------------------
def test_pause_resume_cancel_show_the_new_state(client, repo):
    stored = repo.backfill("slow", max_concurrency=1, block=False, coordinate=False)
    bid = stored.backfill_id
    r = client.post(f"/backfills/{bid}/pause", headers=HX)
    assert r.status_code == 200 and "Paused:" in r.text and 'id="act-resume"' in r.text
    assert repo.get_backfill(bid).status == "paused"
    assert 'class="badge s-paused"' in r.text
    r = client.post(f"/backfills/{bid}/resume", headers=HX)
    assert r.status_code == 200 and "Resumed:" in r.text and 'id="act-pause"' in r.text
    assert repo.get_backfill(bid).status != "paused"
    r = client.post(f"/backfills/{bid}/cancel", headers=HX)
    assert r.status_code == 200 and "Canceled:" in r.text
    assert repo.wait_backfill(bid, timeout=10).status == "canceled"
    # a finished backfill cannot be paused: the engine's message, in the page, as a conflict
    r = client.post(f"/backfills/{bid}/pause", headers=HX)
    assert r.status_code == 409 and 'class="alert error"' in r.text and "canceled" in r.text
    # without htmx (a plain form), the answer is the page again
    r = client.post(f"/backfills/{bid}/resume")
    assert r.status_code == 303 and r.headers["location"] == f"/backfills/{bid}"


def test_rerun_starts_a_backfill_of_the_failed_partitions(client, repo):
    bid = finished_backfill(repo)
    r = client.post(f"/backfills/{bid}/rerun", headers=HX)
    assert r.status_code == 200
    new_id = r.headers["HX-Redirect"].rsplit("/", 1)[1]
    assert new_id != bid
    st = repo.wait_backfill(new_id, timeout=10)
    assert st.total_partitions == 1 and dict(st.tags)["anachron/rerun_of"] == bid


def test_schedules_pause_and_resume(client, repo):
    r = client.post("/schedules/pause", data={"workflow": "nightly_report", "schedule": "nightly",
                                              "next": "/schedules"}, headers=HX)
    assert r.status_code == 200 and r.text.lstrip().startswith('<tbody class="schedule"')  # the schedule's rows
    assert [s.paused for s in repo.list_schedules("nightly_report") if s.schedule_id == "nightly"] == [True]
    assert "▶ Resume" in r.text and "nightly_report" in r.text
    r = client.post("/schedules/resume", data={"workflow": "nightly_report", "schedule": "nightly",
                                               "next": "/workflows/nightly_report"})
    assert r.status_code == 303 and r.headers["location"] == "/workflows/nightly_report"
    assert not any(s.paused for s in repo.list_schedules("nightly_report"))
    assert client.post("/schedules/pause", data={"workflow": "nightly_report", "schedule": "x"}).status_code == 404


# -- the backfill form: preview, launch, errors ---------------------------------------------------------
def form(**fields):
    return {"workflow": "daily_sales", "max_concurrency": "4", "reprocess": "all", "order": "oldest_first",
            "failure_policy": "continue", **fields}


def test_preview_shows_exactly_what_would_run_and_launch_creates_it(client, repo):
    repo.backfill("daily_sales", partition_keys=["2024-01-01", "2024-01-02"])  # run history for the estimate
    r = client.post("/backfills/preview", data=form(from_key="2024-02-01", to_key="2024-02-29", strategy="batched",
                                                    batch_size="7", tags="team=ops\nreason=late data"), headers=HX)
    assert r.status_code == 200, r.text
    page = text_of(r.text)
    assert "Partitions 29" in " ".join(page.split()) and "Runs 5" in " ".join(page.split())
    assert "2024-02-01" in page and "2024-02-29" in page
    assert "2024-02-01 … 2024-02-07 (7 keys)" in page  # the first run group
    assert "median" in page and "per partition" in page  # the estimate and its basis
    assert repo.list_backfills() and len(repo.list_backfills()) == 1  # a dry run stored nothing
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', r.text))
    assert hidden["from_key"] == "2024-02-01" and hidden["batch_size"] == "7" and len(hidden["launch_key"]) == 32
    launch = {k: unescape(v) for k, v in hidden.items()}
    r = client.post("/backfills/launch", data=launch, headers=HX)
    assert r.status_code == 200, r.text
    bid = r.headers["HX-Redirect"].removeprefix("/backfills/")
    st = repo.get_backfill(bid)
    assert st.total_partitions == 29 and st.total_runs == 5 and st.tags == [("team", "ops"), ("reason", "late data")]
    # the same launch again (a double click): the same backfill
    assert client.post("/backfills/launch", data=launch, headers=HX).headers["HX-Redirect"] == f"/backfills/{bid}"
    assert len(repo.list_backfills()) == 2


@pytest.mark.parametrize("fields, message", [
    ({"max_concurrency": "0"}, "Max concurrency: must be an integer &gt;= 1"),
    ({"max_concurrency": "many"}, "Max concurrency: must be an integer, got &#39;many&#39;"),
    ({"from_key": "2024-02-01"}, "To key: give both ends"),
    ({"to_key": "2024-02-01"}, "From key: give both ends"),
    ({"from_key": "2023-01-01", "to_key": "2023-02-01"}, "2023-01-01"),
    ({"start": "yesterday-ish"}, "Start time: &#39;yesterday-ish&#39; is not an ISO-8601 date"),
    ({"from_key": "2024-01-01", "to_key": "2024-01-02", "start": "2024-01-01"},
     "Partitions: give a key range, a list of keys or a start and end time, not several"),
    ({"tags": "no-equals-sign"}, "Tags: expected key=value on each line"),
    ({"p.sleep": "abc"}, "Parameter sleep: expected a number, got &#39;abc&#39;"),
    ({"strategy": "batched", "batch_size": ""}, "Batch size: a number is required"),
    ({"reprocess": "some"}, "Reprocess: input should be"),
])
def test_form_errors_show_the_engines_message_inline(client, repo, fields, message):
    r = client.post("/backfills/preview", data=form(**fields), headers=HX)
    assert r.status_code == 422, r.text
    assert 'class="alert error" role="alert"' in r.text and message in r.text, r.text
    assert "<html" not in r.text
    # without JavaScript: the whole workflow page, the form keeping what was typed, the error inline
    r = client.post("/backfills/preview", data=form(**fields))
    assert r.status_code == 422 and "<html" in r.text and message in r.text and "New backfill" in r.text
    assert not repo.list_backfills()


def test_preview_without_javascript_renders_the_page_with_the_preview(client, repo):
    r = client.post("/backfills/preview", data=form(start="2024-03-01", end="2024-03-10"))
    assert r.status_code == 200 and "<html" in r.text
    assert "Launch backfill of 10 partitions" in r.text
    assert 'value="2024-03-01"' in r.text  # the form keeps its values


def test_schedule_backfill_preview_and_launch(client, repo):
    fields = {"workflow": "nightly_report", "schedule": "nightly", "start": "2024-01-01", "end": "2024-01-07",
              "max_concurrency": "2"}
    r = client.post("/backfills/preview", data=fields, headers=HX)
    assert r.status_code == 200 and "Preview of schedule nightly" in r.text, r.text
    assert "Launch backfill of 6 ticks" in r.text  # 02:00 on January 1st to 6th (the 7th's is after the end)
    r = client.post("/backfills/preview", data={**fields, "from_key": "x", "to_key": "y"}, headers=HX)
    assert r.status_code == 422 and "a schedule backfill replays ticks" in r.text
    r = client.post("/backfills/launch", data=fields)
    assert r.status_code == 303
    st = repo.get_backfill(r.headers["location"].removeprefix("/backfills/"))
    assert st.total_partitions == 6 and dict(st.tags)["anachron/trigger"] == "nightly"


# -- runs and logs --------------------------------------------------------------------------------------
def test_run_logs_follow_from_an_offset(client, repo):
    bid = finished_backfill(repo)
    run = [r for r in repo.list_runs(backfill_id=bid) if r.partition_key == "2024-01-02"][0]
    page = client.get(f"/runs/{run.run_id}").text
    assert "loaded 1000 rows for 2024-01-02" in page and "log-follow" not in page  # finished: nothing to follow
    r = client.get(f"/runs/{run.run_id}?fragment=follow&offset=0", headers=HX)
    assert "loaded 1000 rows" in r.text and 'id="run-head" hx-swap-oob="true"' in r.text
    lines = len(repo.run_logs(run.run_id))
    r = client.get(f"/runs/{run.run_id}?fragment=follow&offset={lines}&attempt=1", headers=HX)
    assert "loaded" not in r.text  # only the lines after the offset


def test_an_active_run_page_follows_its_logs(client, repo):
    other = ac.CodeRepository(demo.repo.workflows, storage=repo.storage_url, executor=ac.InProcessExecutor(1))
    queued = other.run("slow", "shard-001", block=False)
    other.close()  # its process is gone before the run ends; this app's daemon is off: the run stays active
    assert repo.get_run(queued.run_id).status in ("queued", "running")
    page = client.get(f"/runs/{queued.run_id}").text
    assert 'id="log-follow"' in page and 'hx-trigger="every 1s"' in page and "following" in page
    assert 'id="run-cancel"' in page
    r = client.post(f"/runs/{queued.run_id}/cancel", headers=HX)
    assert r.headers["HX-Redirect"] == f"/runs/{queued.run_id}"
    assert repo.get_run(queued.run_id).status == "canceled"
    r = client.get(f"/runs/{queued.run_id}?fragment=follow&offset=0", headers=HX)
    assert "log-follow" not in r.text and "This run logged nothing." in r.text


# -- login and the cross-site guard ---------------------------------------------------------------------
def test_login_flow_with_a_token(repo):
    with TestClient(create_app(repo, token="s3cret-token", daemon=False), follow_redirects=False,
                    base_url="http://localhost") as c:
        r = c.get("/backfills?status=failed")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fbackfills%3Fstatus%3Dfailed"
        r = c.get("/login?next=/backfills%3Fstatus%3Dfailed")
        assert r.status_code == 200 and 'type="password"' in r.text and "Sign out" not in r.text
        r = c.post("/login", data={"token": "wrong", "next": "/backfills?status=failed"})
        assert r.status_code == 401 and "not the server&#39;s ANACHRON_API_TOKEN" in r.text
        assert "set-cookie" not in r.headers
        r = c.post("/login", data={"token": "s3cret-token", "next": "/backfills?status=failed"})
        assert r.status_code == 303 and r.headers["location"] == "/backfills?status=failed"
        cookie = r.headers["set-cookie"]
        assert cookie.startswith("anachron_token=s3cret-token;")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        r = c.get("/")
        assert r.status_code == 200 and "Sign out" in r.text  # the cookie (kept by the client) lets it in
        assert c.get("/api/v1/backfills").status_code == 200  # the API accepts the cookie too
        r = c.post("/logout")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert c.get("/").status_code == 303
        # htmx polls after the cookie is gone: told to log in again rather than handed a redirect to swap in
        r = c.get("/?fragment=dash", headers=HX)
        assert r.status_code == 401 and r.headers["HX-Redirect"] == "/login"


@pytest.mark.parametrize("target", ["//evil.example/x", "https://evil.example/", "/\\evil.example", "javascript:x",
                                    ""])
def test_login_redirects_only_to_local_paths(repo, target):
    with TestClient(create_app(repo, token="t0k", daemon=False), follow_redirects=False,
                    base_url="http://localhost") as c:
        r = c.post("/login", data={"token": "t0k", "next": target})
        assert r.status_code == 303 and r.headers["location"] == "/"


def test_login_without_a_token_goes_home(client):
    assert client.get("/login").headers["location"] == "/"
    r = client.post("/login", data={"token": "anything"})
    assert r.status_code == 303 and r.headers["location"] == "/" and "set-cookie" not in r.headers
    assert "Sign out" not in client.get("/").text


def test_cross_site_posts_are_refused(client, repo):
    stored = repo.backfill("slow", max_concurrency=1, block=False, coordinate=False)
    bid = stored.backfill_id
    for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Sec-Fetch-Site": "same-site"},
                    {"Origin": "http://evil.example"}, {"Origin": "null"}):
        for path, data in ((f"/backfills/{bid}/cancel", None), ("/backfills/launch", form()),
                           ("/schedules/pause", {"workflow": "nightly_report", "schedule": "nightly"}),
                           ("/login", {"token": "x"})):
            r = client.post(path, data=data, headers={**headers, **HX})
            assert r.status_code == 403, (path, headers)
    assert repo.get_backfill(bid).status == "requested"
    assert not any(s.paused for s in repo.list_schedules("nightly_report"))
    assert len(repo.list_backfills()) == 1
    r = client.post(f"/backfills/{bid}/pause", headers={"Sec-Fetch-Site": "same-origin", **HX})
    assert r.status_code == 200 and repo.get_backfill(bid).status == "paused"


# -- a big backfill's page ------------------------------------------------------------------------------
def test_a_million_partition_backfill_page_is_small_and_quick(tmp_path):
    repo = ac.CodeRepository([noop_multi], storage=f"sqlite:///{tmp_path / 'big.db'}",
                             executor=ac.InProcessExecutor(max_workers=2))
    try:
        result = repo.backfill(noop_multi, partition_range=ac.PartitionKeyRange.multi(
            {"date": ("1990-01-01", "2017-05-18")}), block=False, coordinate=False)
        assert result.num_partitions == 1_000_000
        with TestClient(create_app(repo, daemon=False), base_url="http://localhost") as c:
            c.get(f"/backfills/{result.backfill_id}")  # warm: templates compiled
            timings = []
            for _ in range(3):
                started = time.perf_counter()
                r = c.get(f"/backfills/{result.backfill_id}")
                timings.append(time.perf_counter() - started)
            assert r.status_code == 200
            assert len(r.content) < 500_000
            cells = re.findall(r'<a href="([^"]*)" tabindex="-1" class="(\w+)" title="([^"]*)"></a>', r.text)
            assert len(cells) == 2000 and cells[0] == (f"/backfills/{result.backfill_id}?zoom=0", "pending",
                                                       "date=1990-01-01|region=r000 … date=1990-01-05|"
                                                       "region=r099: 500 runs — 500 pending")
            # the target is 300 ms (measured well under it); shared CI machines get slack
            assert min(timings) < 1.5, timings
    finally:
        repo.close()


# -- the pure parts -------------------------------------------------------------------------------------
def _status(status="in_progress", done=0, total=100, created=None, ended=None):
    return BackfillStatus("b1", status, total, done, 0, 0, [], None, {}, ["wf"], total, 0, 0, created, ended)


def test_progress_rate_and_eta():
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    # first render: the average since creation
    p = view.progress(_status(done=20, created=t0), t0 + timedelta(seconds=10))
    assert p.rate == 2.0 and p.eta == 40.0 and p.percent == 20.0
    # the next poll: the rate between the two samples, smoothed with the last one
    p2 = view.progress(_status(done=40, created=t0), t0 + timedelta(seconds=12), view.Sample.decode(p.sample.encode()))
    assert p2.rate == pytest.approx(0.5 * 10 + 0.5 * 2)
    assert p2.eta == pytest.approx(60 / p2.rate)
    # polled again too soon to measure: the last reading is kept
    p3 = view.progress(_status(done=41, created=t0), t0 + timedelta(seconds=12.2), p2.sample)
    assert p3.sample == p2.sample and p3.rate == p2.rate
    # paused or requested: no rate, no ETA; finished: the overall average
    assert view.progress(_status("paused", done=40, created=t0), t0 + timedelta(seconds=20)).eta is None
    done = view.progress(_status("completed", done=100, created=t0, ended=t0 + timedelta(seconds=50)),
                         t0 + timedelta(hours=1))
    assert done.rate == 2.0 and done.eta is None and done.elapsed == 50
    for bad in ("", "x", "1:2", "1:-2:", "nan:1:", "1:1:-3", "1:1:inf", "9" * 100):
        assert view.Sample.decode(bad) is None


def test_formatting():
    assert view.rate_text(1234.5) == "1,234 /s" and view.rate_text(0.05) == "3.0 /min" and view.rate_text(None) == "–"
    assert view.duration(0.25) == "250 ms" and view.duration(125) == "2 min 05 s"
    assert view.duration(7300) == "2 h 01 min" and view.duration(3 * 86400 + 7200) == "3 d 2 h"
    assert view.approx(40) == "~40 s" and view.approx(720) == "~12 min" and view.approx(None) == "unknown"
    now = datetime(2024, 1, 1, 12, tzinfo=timezone.utc)
    assert view.ago(now - timedelta(seconds=30), now) == "30 s ago"
    assert view.ago(now + timedelta(minutes=5), now) == "in 5 min"
    assert view.span(["a"]) == "a" and view.span(["a", "b", "c"]) == "a … c (3 keys)" and view.span([]) == "–"


def test_form_fields_become_the_request():
    params = fields.param_form(demo.daily_sales)
    data = forms.BackfillForm.of(form(from_key="a", to_key="b", strategy="batched", batch_size="1,000",
                                      tags=" x = 1 \n\n y=2", **{"p.sleep": "0.5"}, keys="")).request_data(
        params, dry_run=True)
    assert data["partition_range"] == {"from": "a", "to": "b"} and data["strategy"] == {"batched": 1000}
    assert data["tags"] == [{"key": "x", "value": "1"}, {"key": "y", "value": "2"}]
    assert data["params"] == {"sleep": 0.5} and data["dry_run"] is True and "idempotency_key" not in data
    keys = forms.BackfillForm.of({"workflow": "w", "keys": "k1, k2\nk3\n", "launch_key": "0" * 32})
    assert keys.request_data(params, dry_run=False)["partition_keys"] == ["k1", "k2", "k3"]
    assert keys.request_data(params, dry_run=False)["idempotency_key"] == "ui:" + "0" * 32
    assert "idempotency_key" not in forms.BackfillForm.of({"launch_key": "<x>"}).request_data(params, dry_run=False)
    with pytest.raises(forms.FormTooLarge):
        forms.parse_form(b"x" * (forms.MAX_FORM_BYTES + 1))


# -- what was asked --------------------------------------------------------------------------------------
def _asked(html: str) -> dict[str, str]:
    """The request panel's lines, label → text (tags stripped, whitespace collapsed)."""
    panel = html[html.index('<section class="panel request"'):]
    panel = panel[:panel.index("</section>")]
    pairs = re.findall(r"<dt>(.*?)</dt>\s*<dd>(.*?)</dd>", panel, re.S)
    return {unescape(k): " ".join(unescape(re.sub(r"<[^>]+>", " ", v)).split()).replace(" :", ":") for k, v in pairs}


def test_a_backfills_page_shows_what_was_asked_and_who_asked(client, repo):
    st = repo.backfill("daily_sales", partition_range=ac.PartitionKeyRange.single("2024-01-01", "2024-01-02"),
                       params={"sleep": 0.0}, strategy=ac.BackfillStrategy.batched(7), reprocess="missing",
                       order="newest_first", failure_policy="stop_on_failure", max_concurrency=3,
                       tags={"ticket": "OPS-<9>"})
    who = repo.get_backfill(st.backfill_id).created_by
    assert who  # a local call: the OS user
    page = client.get(f"/backfills/{st.backfill_id}").text
    lines = _asked(page)
    assert lines == {
        "Workflow": "daily_sales", "Partitions": "from 2024-01-01 to 2024-01-02", "Parameters": "sleep = 0.0",
        "Runs": "batches of up to 7 consecutive partitions", "Reprocess": "only partitions that never ran",
        "Order": "newest first", "On failure": "stop the backfill", "Max concurrency": "3 runs at once",
        "Tags": "ticket = OPS-<9>", "Launched by": who}, lines
    assert "OPS-&lt;9&gt;" in page and "OPS-<9>" not in page  # escaped
    shown = json.loads(unescape(re.search(r'<details class="as-json">.*?<pre>(.*?)</pre>', page, re.S).group(1)))
    assert BackfillRequest.parse(shown).partition_range.from_key == "2024-01-01"  # the API takes it back
    assert shown["strategy"] == {"batched": 7} and shown["workflow"] == "daily_sales"


def test_a_tick_backfill_shows_its_schedule_window_inputs_and_labels(client, repo):
    data = {"workflow": "nightly_report", "schedule": "nightly", "start": "2024-01-01", "end": "2024-01-04",
            "p.region": "eu", "tags": "ticket=OPS-7", "max_concurrency": "2"}
    r = client.post("/backfills/launch", data=data)
    lines = _asked(client.get(r.headers["location"]).text)
    assert "Schedule" in lines, lines
    assert lines["Schedule"].startswith("nightly: its ticks from 2024-01-01") and "to 2024-01-04" in lines["Schedule"]
    assert lines["Inputs"] == "region = eu" and lines["Labels"] == "ticket = OPS-7"
    assert lines["Launched by"]  # the OS user, or the token's name over HTTP


def test_a_graph_backfill_and_key_lists_are_told_in_words():
    from anachron.ui.asked import asked

    keys = [f"k{i}" for i in range(30)]
    told = asked(BackfillRequest.parse({"selection": ["raw", "daily"], "include": "downstream",
                                           "partition_keys": keys, "strategy": {"per_dimension": {
                                               "multi_run": ["region"], "single_run": ["date"]}}}), None)
    lines = {line.label: line for line in told.lines}
    assert lines["Workflows"].workflows == ("raw", "daily")
    assert lines["Workflows"].text == "and every workflow downstream of them"
    assert lines["Partitions"].text.startswith("30 keys: k0, k1,") and lines["Partitions"].text.endswith("and 18 more")
    assert lines["Runs"].text == "one run per region, each covering every date"
    own = {"raw": None, "daily": ac.BackfillStrategy.batched(3)}
    told = asked(BackfillRequest.parse({"selection": ["raw", "daily"]}), "ann", own)
    assert {line.label: line.text for line in told.lines}["Runs"] == \
        "each workflow's default: raw: one run per partition; daily: batches of up to 3 consecutive partitions"
    assert lines["Launched by"].text == "unknown"
    assert asked(None, "bob").notes and asked(None, "bob").lines[0].text == "bob"
    ticks = {line.label: line.text for line in asked(BackfillRequest.parse(
        {"workflow": "nightly", "cron": "0 2 * * *", "start": "2024-01-01", "reprocess": "missing"}), "ann").lines}
    assert ticks["Ticks"] == "of cron 0 2 * * * (UTC) from 2024-01-01 to now (the time of the request)"
    assert ticks["Runs"] == "one run per tick" and ticks["Reprocess"] == "only ticks that never ran"
