"""The web UI's ways around (over HTTP, FastAPI's TestClient on the real app): partition pages and search, the
grids' links and zooms, filters and counts, run now and re-run, parameter fields, the per-dimension and
tick-backfill forms, the Schedules page, time zones, and what the pages say about progress. The browser
tests (tests/test_ui_browser_pages.py) drive the same pages in Chromium."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from html import unescape
from zoneinfo import ZoneInfo

import pytest

import anachron as ac
from anachron.models import BackfillStatus
from anachron.ui import fields, forms, view
from anachron.ui.render import query

pytest.importorskip("fastapi")
from test_ui import HX, client, demo, finished_backfill, form, repo, text_of  # noqa: E402, F401  (fixtures too)


def words(html: str) -> str:
    return " ".join(text_of(html).split())


def links(html: str) -> list[str]:
    return [unescape(h) for h in re.findall(r'href="([^"]*)"', html)]


# -- progress: what a backfill's page says ---------------------------------------------------------------
def _status(status, done, failed, canceled, total=100, error=None):
    t0 = datetime(2024, 1, 1, tzinfo=timezone.utc)
    return BackfillStatus("b1", status, total, done, failed, canceled, [], error, {}, ["wf"], total, 0, 0, t0,
                          t0 + timedelta(seconds=10))


def test_canceled_partitions_are_not_done_and_do_not_inflate_the_rate():
    p = view.progress(_status("canceled", 46, 0, 54), datetime(2024, 1, 2, tzinfo=timezone.utc))
    assert p.done == 46 and p.percent == 46.0 and p.remaining == 0 and p.rate == 4.6  # 46 in 10 s, not 100
    assert view.outcome(_status("canceled", 46, 0, 54)) == ("canceled", "canceled")


def test_a_continue_backfill_with_some_failures_says_so():
    assert view.outcome(_status("failed", 92, 8, 0, error="8 partition(s) failed")) == (
        "partial", "completed with 8 failures")
    assert view.outcome(_status("failed", 99, 1, 0))[1] == "completed with 1 failure"
    assert view.outcome(_status("failed", 0, 100, 0)) == ("failed", "failed")  # everything failed
    assert view.outcome(_status("failed", 10, 1, 89)) == ("failed", "failed")  # stopped on failure
    assert view.outcome(_status("completed", 100, 0, 0)) == ("completed", "completed")


def test_a_finished_backfills_page_in_the_words_of_its_outcome(client, repo):
    bid = finished_backfill(repo)  # 2024-01-01..05, the 3rd fails
    page = client.get(f"/backfills/{bid}").text
    assert "completed with 1 failure" in page and 'class="badge s-partial"' in page
    assert "1 partition(s) failed" not in page  # the engine's summary is the badge already
    assert "completed with 1 failure" in client.get("/backfills").text
    canceled = repo.backfill("slow", block=False, coordinate=False)
    repo.cancel_backfill(canceled.backfill_id)
    page = words(client.get(f"/backfills/{canceled.backfill_id}").text)
    assert "0.0% 0 of 120 partitions done" in page


# -- grids: every cell leads somewhere -------------------------------------------------------------------
def test_a_workflows_grid_cells_lead_to_their_partitions(client, repo):
    finished_backfill(repo)
    page = client.get("/workflows/daily_sales").text
    cells = re.findall(r'<a href="([^"]*)" tabindex="-1" class="(\w+)" title="([^"]*)"></a>', page)
    assert len(cells) == 366
    assert (unescape(cells[2][0]), cells[2][1]) == ("/partitions?workflow=daily_sales&key=2024-01-03", "failed")
    assert 'action="/partitions"' in page  # the partition search box


def test_an_aggregated_backfill_cell_zooms_to_its_runs(client, repo):
    result = repo.backfill("tiny", block=True)  # 2,100 runs: 2 runs per cell
    page = client.get(f"/backfills/{result.backfill_id}").text
    cells = re.findall(r'<a href="([^"]*)" tabindex="-1" class="(\w+)"', page)
    assert len(cells) == 1050 and unescape(cells[7][0]) == f"/backfills/{result.backfill_id}?zoom=7"
    zoomed = client.get(f"/backfills/{result.backfill_id}?zoom=7").text
    assert "Runs 15–16" in words(zoomed) and "k0014 … k0015" in zoomed
    runs = [h for h in links(zoomed) if h.startswith("/runs/")]
    assert len(runs) >= 2 and client.get(runs[-1]).status_code == 200
    # a backfill still running polls its zoom too; its runs not created yet lead to their partitions
    stored = repo.backfill("tiny", block=False, coordinate=False)
    zoomed = client.get(f"/backfills/{stored.backfill_id}?zoom=7").text
    assert "zoom=7" in unescape(re.search(r'hx-get="([^"]*fragment=live[^"]*)"', zoomed)[1])
    assert "/partitions?workflow=tiny&amp;key=k0015" in zoomed


def test_runs_not_created_yet_lead_to_their_partition(client, repo):
    stored = repo.backfill("slow", max_concurrency=1, block=False, coordinate=False)
    page = client.get(f"/backfills/{stored.backfill_id}").text
    assert "/partitions?workflow=slow&amp;key=shard-000" in page


# -- a partition's page and the search -------------------------------------------------------------------
def test_a_partitions_page_shows_its_latest_run_logs_window_and_history(client, repo):
    finished_backfill(repo)
    repo.run("daily_sales", "2024-01-02", params={"sleep": 0.01})
    r = client.get("/partitions" + query(workflow="daily_sales", key="2024-01-02"))
    assert r.status_code == 200
    page = words(r.text)
    assert "2024-01-02 00:00 → 2024-01-03 00:00 UTC" in page  # its window
    assert "loaded 1000 rows for 2024-01-02" in page  # the latest run's logs
    assert "2 runs" in page and "manual" in page and "backfill" in page
    assert "← 2024-01-01" in page and "2024-01-03 →" in page
    assert 'name="p.sleep" value="0.01"' in r.text  # "Re-run" sends the latest run's parameters
    # a key with no run yet
    page = words(client.get("/partitions" + query(workflow="daily_sales", key="2024-06-01")).text)
    assert "This partition has never run." in page and "Run this partition" in page


def test_the_partition_search_finds_keys_containing_the_text(client, repo):
    r = client.get("/partitions" + query(workflow="regional", key="2024-01-0"))
    assert r.status_code == 200 and "Partitions matching" in r.text
    found = [h for h in links(r.text) if h.startswith("/partitions?")]
    assert found[0] == "/partitions?workflow=regional&key=date%3D2024-01-01%7Cregion%3Dus" and len(found) == 27
    page = words(client.get("/partitions" + query(workflow="daily_sales", key="no-such")).text)
    assert "No partition key of daily_sales contains it" in page
    assert client.get("/partitions?workflow=daily_sales&key=").headers["location"] == "/workflows/daily_sales"
    assert client.get("/partitions?workflow=nope&key=x").status_code == 404


# -- filters and counts ----------------------------------------------------------------------------------
def test_runs_filters_and_their_total(client, repo):
    bid = finished_backfill(repo, tags={"team": "ops"})
    repo.run("daily_sales", "2024-01-03", tags={"reason": "retry"})
    repo.run("nightly_report")
    page = words(client.get("/runs?workflow=daily_sales&partition=2024-01-03").text)
    assert "2 runs" in page
    assert "1 run" in words(client.get("/runs?trigger=manual&workflow=daily_sales").text)
    assert "5 runs" in words(client.get("/runs?trigger=backfill").text)
    assert "5 runs" in words(client.get(f"/runs?tag=team%3Dops&backfill={bid}").text)
    today = datetime.now(timezone.utc).date()
    assert "7 runs" in words(client.get(f"/runs?since={today - timedelta(days=1)}&until={today}").text)
    assert "0 runs" in words(client.get(f"/runs?until={today - timedelta(days=2)}").text)
    r = client.get("/runs?trigger=cron")
    assert r.status_code == 400 and "Trigger: expected one of backfill, scheduled, manual" in r.text
    r = client.get("/runs?tag=nonsense")
    assert r.status_code == 400 and "Tag: expected key=value" in r.text
    r = client.get("/runs?since=yesterday")
    assert r.status_code == 400 and "From: expected a date (2024-01-13)" in r.text


def test_backfills_filters_paused_tab_and_clickable_tags(client, repo):
    bid = finished_backfill(repo, tags={"team": "ops"})
    paused = repo.backfill("slow", block=False, coordinate=False, tags={"team": "ads"})
    repo.pause_backfill(paused.backfill_id)
    assert paused.backfill_id in client.get("/backfills?status=paused").text
    assert bid not in client.get("/backfills?status=paused").text
    page = client.get("/backfills?tag=team%3Dops").text
    assert bid in page and paused.backfill_id not in page and "1 backfill" in words(page)
    assert "2 backfills" in words(client.get("/backfills").text)
    assert paused.backfill_id in client.get("/backfills?workflow=slow").text
    # a tag is a link to what carries it
    assert "/backfills?tag=team%3Dops" in client.get(f"/backfills/{bid}").text
    run = repo.list_runs(backfill_id=bid, limit=1)[0]
    assert "/runs?tag=team%3Dops" in client.get(f"/runs/{run.run_id}").text


def test_a_backfill_links_its_reruns_and_a_rerun_its_original(client, repo):
    bid = finished_backfill(repo)
    rerun = repo.rerun_backfill(bid, block=True)
    page = client.get(f"/backfills/{bid}").text
    assert f'href="/backfills/{rerun.backfill_id}"' in page and "Rerun:" in page
    page = client.get(f"/backfills/{rerun.backfill_id}").text
    assert f'href="/backfills/{bid}"' in page and f"rerun of {bid}" in page


# -- run now, re-run -------------------------------------------------------------------------------------
def test_run_now_with_typed_parameters(client, repo):
    key = "a" * 32
    r = client.post("/runs/launch", data={"workflow": "daily_sales", "partition_key": "2024-05-05",
                                          "p.sleep": "0.01", "tags": "why=check", "launch_key": key}, headers=HX)
    assert r.status_code == 200, r.text
    run_id = r.headers["HX-Redirect"].removeprefix("/runs/")
    run = repo.wait_run(run_id, timeout=10)
    assert run.partition_key == "2024-05-05" and run.params == {"sleep": 0.01} and run.tags["why"] == "check"
    assert run.status == "success"
    again = client.post("/runs/launch", data={"workflow": "daily_sales", "partition_key": "2024-05-05",
                                              "launch_key": key}, headers=HX)
    assert again.headers["HX-Redirect"] == f"/runs/{run_id}"  # a double click: one run
    r = client.post("/runs/launch", data={"workflow": "nightly_report", "p.full": "true", "p.region": "eu"},
                    headers=HX)
    assert repo.wait_run(r.headers["HX-Redirect"].removeprefix("/runs/"), timeout=10).params == {
        "full": True, "region": "eu"}


@pytest.mark.parametrize("data, message", [
    ({"workflow": "daily_sales", "partition_key": "2024-01-01", "p.sleep": "fast"},
     "Parameter sleep: expected a number, got &#39;fast&#39;"),
    ({"workflow": "daily_sales"}, "Partition: workflow &#39;daily_sales&#39; is partitioned: give the key"),
    ({"workflow": "daily_sales", "partition_key": "1999-01-01"}, "1999-01-01"),
    ({"workflow": "nightly_report", "p.full": "maybe"}, "Parameter full: expected true or false"),
    ({"workflow": "regional", "partition_key": "date=2024-01-01|region=us", "params": "[1]"},
     "Other parameters: expected a JSON object"),
    ({"workflow": "daily_sales", "partition_key": "2024-01-01", "tags": "x"}, "Tags: expected key=value"),
])
def test_run_now_errors_in_the_forms_words(client, repo, data, message):
    r = client.post("/runs/launch", data=data, headers=HX)
    assert r.status_code == 422 and message in r.text, r.text
    r = client.post("/runs/launch", data=data)  # without JavaScript: the page, the form as typed, the error
    assert r.status_code == 422 and "<html" in r.text and message in r.text and "Run now" in r.text
    assert repo.list_runs() == []


def test_re_run_a_partition_with_its_parameters(client, repo):
    first = repo.run("daily_sales", "2024-01-03", params={"sleep": 0.0}, tags={"team": "ops"})
    assert first.status == "failed"
    page = client.get(f"/runs/{first.run_id}").text
    assert "Re-run this partition" in page
    r = client.post(f"/runs/{first.run_id}/rerun", data={"launch_key": "b" * 32}, headers=HX)
    again = repo.wait_run(r.headers["HX-Redirect"].removeprefix("/runs/"), timeout=10)
    assert again.run_id != first.run_id and again.partition_key == "2024-01-03" and again.params == {"sleep": 0.0}
    assert again.tags["anachron/rerun_of"] == first.run_id and again.tags["team"] == "ops"
    assert f'href="/runs/{first.run_id}"' in client.get(f"/runs/{again.run_id}").text  # "again of run ..."
    batched = repo.backfill("daily_sales", partition_keys=["2024-02-01", "2024-02-02"],
                            strategy=ac.BackfillStrategy.single_run())
    run = repo.list_runs(backfill_id=batched.backfill_id)[0]
    assert "Re-run" not in client.get(f"/runs/{run.run_id}").text  # several keys: backfill them instead
    assert client.post(f"/runs/{run.run_id}/rerun").status_code == 409


# -- parameter fields ------------------------------------------------------------------------------------
def _fields(fn):
    return {f.name: (f.kind, f.required, f.default, f.nullable) for f in fields.param_form(ac.workflow(fn)).fields}


def test_parameter_fields_from_the_signature():
    def typed(n: int, ratio: float = 0.5, name: str = "x", on: bool = True, day: date | None = None,
              at: datetime = datetime(2024, 1, 1), items: list = None, anything=3, loose=None):  # noqa: RUF013
        return None

    assert _fields(typed) == {
        "n": ("int", True, "", False), "ratio": ("float", False, "0.5", False), "name": ("str", False, "x", False),
        "on": ("bool", False, "true", False), "day": ("date", False, "", True),
        "at": ("datetime", False, "2024-01-01T00:00:00", False), "items": ("json", False, "null", True),
        "anything": ("int", False, "3", False), "loose": ("any", False, "null", True)}
    assert _fields(demo.daily_sales.fn) == {"sleep": ("float", False, "", True)}  # "float | None" as text
    params = fields.param_form(ac.workflow(typed))
    assert params.values({"p.n": "1,000", "p.on": "false", "p.day": "2024-02-01", "p.items": "[1, 2]",
                          "p.loose": "hello", "p.ratio": ""}) == {
        "n": 1000, "on": False, "day": date(2024, 2, 1), "items": [1, 2], "loose": "hello"}
    with pytest.raises(fields.ParamError, match="Parameter at: expected a date and time"):
        params.values({"p.at": "noon"})
    assert not fields.param_form(ac.workflow(typed)).extra and fields.param_form(demo.regional).extra


def test_form_errors_use_the_forms_labels():
    assert forms.in_form_words("partition_range.to: give both ends") == "To key: give both ends"
    assert forms.in_form_words("max_concurrency: must be an integer >= 1, got 0") == (
        "Max concurrency: must be an integer >= 1, got 0")
    assert forms.in_form_words("params['sleep']: expected a FLOAT") == "Parameter sleep: expected a FLOAT"
    assert forms.in_form_words("partition_range.dimensions.region: unknown key 'mars'") == (
        "Dimension region: unknown key 'mars'")
    assert forms.in_form_words("unknown partition key 'x'") == "unknown partition key 'x'"


# -- multi-partitioned workflows -------------------------------------------------------------------------
def test_a_multi_partitioned_workflow_gets_a_2d_grid_and_a_form_per_dimension(client, repo):
    page = client.get("/workflows/regional").text
    assert '<table class="matrix"' in page and "date × region" in page
    rows = re.findall(r'<th scope="row" title="([^"]*)">', page)
    assert rows == ["us", "eu", "apac"]
    assert 'name="dim.region.keys" value="eu"' in page and 'name="dim.date.from"' in page
    fields_ = {"workflow": "regional", "dim.date.from": "2024-01-10", "dim.date.to": "2024-01-19",
               "max_concurrency": "4"}
    body = query(**fields_, **{"dim.region.keys": ["us", "eu"]}).lstrip("?")
    r = client.post("/backfills/preview", content=body, headers={**HX, "Content-Type":
                                                                 "application/x-www-form-urlencoded"})
    assert r.status_code == 200, r.text
    assert "Partitions 20" in words(r.text)  # 10 days × us, eu — not a flat key range through apac
    hidden = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', r.text))
    assert hidden["dim.region.keys"] == "us,eu"
    launch = client.post("/backfills/launch", data={k: unescape(v) for k, v in hidden.items()}, headers=HX)
    st = repo.wait_backfill(launch.headers["HX-Redirect"].rsplit("/", 1)[1], timeout=20)
    keys = {r.partition_key for r in repo.list_runs(backfill_id=st.backfill_id, limit=None)}
    assert len(keys) == 20 and all("apac" not in k for k in keys)
    # the grid now shows them; a cell leads to its partition
    page = client.get("/workflows/regional").text
    assert "/partitions?workflow=regional&amp;key=date%3D2024-01-10%7Cregion%3Deu" in page
    r = client.post("/backfills/preview", data={"workflow": "regional", "dim.date.from": "2024-01-10"}, headers=HX)
    assert r.status_code == 422 and "Dimension date: give both ends of its range" in r.text


# -- schedules -------------------------------------------------------------------------------------------
def test_the_schedules_page_and_its_tick_backfill_form(client, repo):
    page = client.get("/schedules").text
    assert page.count('<tbody class="schedule">') == 2 and "*/30 * * * *" in page and "half_hourly" in page
    assert len(re.findall(r'<time class="abs"', page)) == 6  # three next ticks each
    assert 'name="p.region"' in page and 'name="tags"' in page  # inputs and labels
    data = {"workflow": "nightly_report", "schedule": "nightly", "start": "2024-01-01", "end": "2024-01-04",
            "p.region": "eu", "tags": "ticket=OPS-7", "max_concurrency": "2"}
    r = client.post("/backfills/preview", data=data, headers=HX)
    assert "Launch backfill of 3 ticks" in r.text
    r = client.post("/backfills/launch", data={**data, "launch_key": "c" * 32}, headers=HX)
    st = repo.wait_backfill(r.headers["HX-Redirect"].rsplit("/", 1)[1], timeout=20)
    assert ("ticket", "OPS-7") in st.tags and st.total_partitions == 3
    assert {run.params["region"] for run in repo.list_runs(backfill_id=st.backfill_id)} == {"eu"}
    r = client.post("/backfills/preview", data={**data, "tags": "oops"}, headers=HX)
    assert r.status_code == 422 and "Tags: expected key=value" in r.text


def test_an_unpartitioned_scheduled_workflow_shows_the_tick_form(client):
    page = client.get("/workflows/nightly_report").text
    assert "Backfill schedule ticks" in page and 'name="from_key"' not in page
    assert '<option value="half_hourly">' in page  # two schedules: pick one
    assert "Run now" in page
    page = client.get("/workflows/daily_sales").text
    assert "New backfill" in page and "Backfill schedule ticks" not in page


# -- time zones ------------------------------------------------------------------------------------------
def test_times_in_the_readers_zone(client, repo):
    run = repo.run("daily_sales", "2024-01-02")
    utc = client.get(f"/runs/{run.run_id}").text
    assert "2024-01-02 00:00 → 2024-01-03 00:00 UTC" in utc and "times in" in utc
    client.cookies.set("anachron_tz", "America/New_York")
    page = client.get(f"/runs/{run.run_id}").text
    assert "2024-01-02 00:00 → 2024-01-03 00:00 UTC" in page  # the window in its own zone...
    assert "(2024-01-01 19:00 → 2024-01-02 19:00 EST)" in page  # ... and in the reader's
    assert "data-tz-chosen" in page and 'data-tz="America/New_York"' in page
    assert run.created_at.astimezone(ZoneInfo("America/New_York")).strftime("%Y-%m-%d %H:%M:%S EST") in page
    client.cookies.set("anachron_tz", "../../etc/passwd")
    assert 'data-tz="UTC"' in client.get("/").text  # a bad cookie is ignored


def test_choose_a_time_zone(client):
    r = client.post("/timezone", data={"tz": "Asia/Tokyo", "next": "/runs"})
    assert r.status_code == 303 and r.headers["location"] == "/runs"
    assert 'anachron_tz="Asia/Tokyo"' in r.headers["set-cookie"] and "SameSite=Strict" in r.headers["set-cookie"]
    r = client.post("/timezone", data={"tz": "Mars/Olympus", "next": "/"})
    assert r.status_code == 400 and "Time zone: &#39;Mars/Olympus&#39; is not a time zone name" in r.text
    r = client.post("/timezone", data={"tz": "", "next": "//evil.example"})
    assert r.headers["location"] == "/" and 'anachron_tz=""' in r.headers["set-cookie"]  # back to the browser's
    assert "Asia/Tokyo" in client.get("/timezone").text


def test_new_actions_refuse_cross_site_posts(client, repo):
    run = repo.run("daily_sales", "2024-01-02")
    for path, data in (("/runs/launch", {"workflow": "nightly_report"}), (f"/runs/{run.run_id}/rerun", {}),
                       ("/timezone", {"tz": "UTC"})):
        r = client.post(path, data=data, headers={"Sec-Fetch-Site": "cross-site", **HX})
        assert r.status_code == 403, path
    assert len(repo.list_runs()) == 1


def test_form_payload_fields_are_kept_for_the_launch():
    f = forms.BackfillForm.of({**form(), "dim.region.keys": "us\neu", "p.sleep": " 1 ", "junk": "x"})
    assert f.echo["dim.region.keys"] == "us,eu" and f.echo["p.sleep"] == "1" and "junk" not in f.values
    assert f.chosen("region", "eu") and not f.chosen("region", "apac")


def test_the_2d_grid_with_time_inside_and_three_dimensions():
    from anachron.ui import matrix

    pdef = ac.MultiPartitions({"region": ac.StaticPartitions(["us", "eu"]),
                               "date": ac.DailyPartitions("2024-01-01", "2024-01-04"),
                               "tier": ac.StaticPartitions(["a", "b"])})
    keys = {name: d.get_partition_keys() for name, d in pdef.dimensions.items()}
    statuses = {k: "missing" for k in pdef.get_partition_keys()}
    statuses["region=eu|date=2024-01-02|tier=b"] = "failed"
    statuses["region=us|date=2024-01-03|tier=a"] = "success"
    grid = matrix.matrix(pdef, keys, statuses, lambda k: f"key:{k}", lambda c: f"column:{c}")
    assert grid.across == "date" and grid.down == ("region", "tier") and grid.column_size == 1
    assert [label for label, _ in grid.rows] == ["region=us|tier=a", "region=us|tier=b", "region=eu|tier=a",
                                                 "region=eu|tier=b"]
    row = dict(grid.rows)["region=eu|tier=b"]
    assert [c.css for c in row] == ["missing", "failed", "missing"]
    assert row[1].href == "key:region=eu|date=2024-01-02|tier=b" and "2024-01-02 × region=eu|tier=b" in row[1].title
    assert [c.css for c in dict(grid.rows)["region=us|tier=a"]] == ["missing", "missing", "success"]
    assert dict(grid.counts) == {"failed": 1, "success": 1, "missing": 10}
    # two columns: a cell counts its keys and zooms; the zoom shows them one by one
    grid = matrix.matrix(pdef, keys, statuses, lambda k: f"key:{k}", lambda c: f"column:{c}", max_columns=2)
    row = dict(grid.rows)["region=eu|tier=b"]
    assert grid.column_size == 2 and [c.css for c in row] == ["failed", "missing"] and row[0].href == "column:0"
    assert row[0].title == "2024-01-01 … 2024-01-02 × region=eu|tier=b: 1 failed, 1 missing"
    zoomed = matrix.matrix(pdef, keys, statuses, lambda k: f"key:{k}", lambda c: f"column:{c}", zoom=0,
                           max_columns=2)
    assert zoomed.zoom == (0, 2) and [c.css for c in dict(zoomed.rows)["region=eu|tier=b"]] == ["missing", "failed"]
    with pytest.raises(ValueError, match="expected the 12 keys"):
        matrix.matrix(pdef, keys, {}, str, str)
    assert matrix.fits(pdef, {"region": 2, "date": 3, "tier": 2})
    assert not matrix.fits(pdef, {"region": 10, "date": 3, "tier": 10})  # 100 rows: the 1-D grid instead
