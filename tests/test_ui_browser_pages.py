"""The web UI's ways around in a real browser (Debian's Chromium, Playwright), at a desktop's width (1400×900)
and a phone's (390×844): every page fits a phone, counters and grid agree, every cell leads somewhere, the
partition search, the 2-D grid and its per-dimension form, the Schedules page and its tick form, filters, run
now and re-run, time zones. One ``anachron server`` for the module (tests/test_ui_browser.py has the first
tour: preview, launch, pause, cancel, logs, sign-in)."""

from __future__ import annotations

import re
import time

import pytest

from browser import needs_chromium, sync_api
from test_ui_browser import (  # noqa: F401  (module fixtures: one server and one browser for this module)
    PHONE,
    api_backfill,
    api_status,
    assert_not_reloaded,
    browser,
    browsing,
    mark_no_reload,
    page,
    server,
    shots,
    wait_api,
)

expect = sync_api.expect
pytestmark = needs_chromium


@pytest.fixture
def phone(browser):  # noqa: F811
    with browsing(browser, PHONE, is_mobile=True, has_touch=True) as pg:
        yield pg


def fits(pg) -> None:
    """Nothing on the page scrolls sideways: only a table's or a grid's own box may."""
    width = pg.evaluate("document.documentElement.scrollWidth")
    assert width <= pg.viewport_size["width"], (pg.url, width)


@pytest.fixture(scope="module")
def history(server):  # noqa: F811
    """A finished backfill with a failure (2024-01-13), and a run by hand: what most pages show."""
    failed = api_backfill(server, workflow="daily_sales", start="2024-01-10", end="2024-01-16",
                          tags=[{"key": "reason", "value": "vendor re-export"}])
    wait_api(server, failed, ("failed",))
    with server.client() as c:
        run = c.get(f"/api/v1/runs?backfill_id={failed}&status=failed").json()[0]["run_id"]
    return {"failed": failed, "run": run}


def test_every_page_fits_a_phone(server, phone, history, shots):  # noqa: F811
    active = api_backfill(server, workflow="slow", max_concurrency=2)
    pages = {"dashboard": "/", "backfills": "/backfills", "backfill": f"/backfills/{active}",
             "backfill-failed": f"/backfills/{history['failed']}", "workflows": "/workflows",
             "workflow": "/workflows/daily_sales", "workflow-2d": "/workflows/regional",
             "workflow-scheduled": "/workflows/nightly_report", "schedules": "/schedules",
             "runs": "/runs", "run": f"/runs/{history['run']}",
             "partition": "/partitions?workflow=daily_sales&key=2024-01-13", "timezone": "/timezone"}
    for name, path in pages.items():
        phone.goto(server.url + path)
        fits(phone)
        if name in ("dashboard", "backfill", "workflow-2d", "schedules", "run"):
            shots(phone, f"phone-{name}", full_page=True)
    # the dashboard shows the rate and the ETA of what is in flight
    phone.goto(server.url + "/")
    card = phone.locator(f"article[aria-label='backfill {active}']")
    expect(card.locator(".eta")).to_contain_text(re.compile(r"ETA \d"))
    box = card.locator(".eta").bounding_box()
    assert box is not None and box["x"] + box["width"] <= 390
    # the navigation is usable: every section is in sight and reachable
    for link in phone.get_by_role("navigation", name="Main").get_by_role("link").all():
        box = link.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 390, link.inner_text()
    for name in ("Backfills", "Workflows", "Schedules", "Runs"):
        phone.get_by_role("navigation", name="Main").get_by_role("link", name=name).click()
        expect(phone.get_by_role("heading", name=name, exact=True)).to_be_visible()
        fits(phone)
    with server.client() as c:
        c.post(f"/api/v1/backfills/{active}/cancel")


def test_a_live_backfills_counters_and_grid_agree(server, page, shots):  # noqa: F811
    backfill_id = api_backfill(server, workflow="slow", max_concurrency=3)
    page.goto(f"{server.url}/backfills/{backfill_id}")
    mark_no_reload(page)
    read = """() => {
        const n = s => parseInt(document.querySelector(`#live .stat.${s} .v`).textContent.replace(/\\D/g, ''));
        const cells = s => document.querySelectorAll(`#grid-panel .grid > .${s}`).length;
        return [n('ok'), cells('success'), n('run'), cells('running'), n('wait'), cells('queued')];
    }"""
    seen = set()
    for _ in range(6):
        ok, ok_cells, running, running_cells, queued, queued_cells = page.evaluate(read)
        assert (ok, running, queued) == (ok_cells, running_cells, queued_cells)  # one read: they agree
        seen.add(ok)
        time.sleep(0.5)
    assert len(seen) > 1  # it moved while we looked, without a reload
    assert_not_reloaded(page)
    shots(page, "backfill-live")
    with server.client() as c:
        c.post(f"/api/v1/backfills/{backfill_id}/cancel")
    expect(page.locator("#bf-head .badge")).to_have_text(re.compile("canceled"), timeout=15_000)
    expect(page.locator("#live .pct")).not_to_have_text("100.0%")  # canceled partitions are not done
    expect(page.locator("#live .of")).to_contain_text("canceled")


def test_grid_cells_and_the_search_lead_to_a_partitions_runs_and_logs(server, page, history, shots):  # noqa: F811
    page.goto(server.url + "/workflows/daily_sales")
    page.locator("#wf-grid .grid > a[title='2024-01-13: failed']").click()
    page.wait_for_url(re.compile(r"/partitions\?workflow=daily_sales&key=2024-01-13$"))
    expect(page.locator("h1 .badge")).to_have_text(re.compile("failed"))
    expect(page.locator(".log")).to_contain_text("upstream export for 2024-01-13 is truncated")
    expect(page.get_by_text("window 2024-01-13 00:00 → 2024-01-14 00:00 UTC")).to_be_visible()
    shots(page, "partition", full_page=True)
    page.get_by_role("link", name="2024-01-14 →").click()
    expect(page.locator("h1 .chip")).to_have_text("2024-01-14")
    # the search box: an exact key opens it, a part of one lists the keys holding it
    page.goto(server.url + "/workflows/daily_sales")
    page.get_by_label("Partition key").fill("2024-01-1")
    page.get_by_label("Partition key").press("Enter")
    expect(page.get_by_role("heading", name=re.compile("Partitions matching"))).to_be_visible()
    page.get_by_role("link", name="2024-01-12", exact=True).click()
    expect(page.locator(".log")).to_contain_text("loaded 1000 rows for 2024-01-12")


def test_an_aggregated_backfill_cell_opens_its_runs(server, page, shots):  # noqa: F811
    backfill_id = api_backfill(server, workflow="tiny", max_concurrency=8)  # 2,100 runs: 2 per cell
    wait_api(server, backfill_id, ("completed",), timeout=60)
    page.goto(f"{server.url}/backfills/{backfill_id}")
    expect(page.locator("#grid-panel h2")).to_contain_text("2 per cell")
    page.locator("#grid-panel .grid > a").nth(100).click()
    page.wait_for_url(re.compile(r"\?zoom=100$"))
    zoom = page.locator("#zoom")
    expect(zoom).to_contain_text("Runs 201–202")
    expect(zoom.locator(".grid > a.success")).to_have_count(2)
    shots(page, "backfill-zoom")
    zoom.locator(".grid > a").first.click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"))
    expect(page.locator("h1 .chip")).to_have_text("k0200")


def test_a_2d_grid_and_a_backfill_picked_per_dimension(server, page, shots):  # noqa: F811
    page.goto(server.url + "/workflows/regional")
    matrix = page.locator("table.matrix")
    expect(matrix.locator("th[scope=row]")).to_have_text(["us", "eu", "apac"])
    page.get_by_label("date from").fill("2024-02-01")
    page.get_by_label("date to").fill("2024-02-10")
    page.get_by_label("us", exact=True).check()
    page.get_by_label("eu", exact=True).check()
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    expect(preview.get_by_role("button", name="Launch backfill of 20 partitions")).to_be_visible()
    shots(page, "workflow-2d-preview")
    preview.get_by_role("button", name="Launch backfill of 20 partitions").click()
    page.wait_for_url(re.compile(r"/backfills/[0-9a-f]{16}$"))
    backfill_id = page.url.rsplit("/", 1)[1]
    wait_api(server, backfill_id, ("completed",))
    page.goto(server.url + "/workflows/regional")
    for region, done in (("us", 10), ("eu", 10), ("apac", 0)):
        row = matrix.locator("tr", has=page.locator(f"th[title='{region}']"))
        expect(row.locator("a.success")).to_have_count(done)
    shots(page, "workflow-2d")
    page.locator("table.matrix a[title='2024-02-03 × eu: succeeded']").click()
    expect(page.locator("h1 .chip")).to_have_text("date=2024-02-03|region=eu")


def test_schedules_page_pause_resume_and_backfill_ticks(server, page, shots):  # noqa: F811
    page.goto(server.url + "/schedules")
    row = page.locator("tbody.schedule", has=page.locator("td.key", has_text="nightly"))
    expect(row.locator("time.abs")).to_have_count(3)  # the next ticks
    row.get_by_role("button", name="Pause").click()
    expect(row.locator(".badge").first).to_have_text(re.compile("paused"))
    row.get_by_role("button", name="Resume").click()
    expect(row.locator(".badge").first).to_have_text(re.compile("active"))
    row.get_by_text("Backfill ticks of nightly…").click()
    row.get_by_label("Start").fill("2024-03-01")
    row.get_by_label("End").fill("2024-03-05")
    row.get_by_label("region").fill("eu")
    row.get_by_label("Labels").fill("ticket=OPS-42")
    row.get_by_role("button", name="Preview ticks").click()
    expect(row.get_by_role("button", name="Launch backfill of 4 ticks")).to_be_visible()
    shots(page, "schedules", full_page=True)
    row.get_by_role("button", name="Launch backfill of 4 ticks").click()
    page.wait_for_url(re.compile(r"/backfills/[0-9a-f]{16}$"))
    expect(page.locator("#bf-head")).to_contain_text("ticket=OPS-42")
    backfill_id = page.url.rsplit("/", 1)[1]
    wait_api(server, backfill_id, ("completed",))
    with server.client() as c:
        assert {r["params"]["region"] for r in c.get(f"/api/v1/runs?backfill_id={backfill_id}").json()} == {"eu"}
    # what was asked: the schedule and its tick window, the inputs and the labels
    asked = page.get_by_role("region", name="Tick backfill request")
    expect(asked).to_contain_text(re.compile(r"Schedule\s*nightly: its ticks from 2024-03-01\S* to 2024-03-05"))
    expect(asked).to_contain_text(re.compile(r"Inputs\s*region = eu"))
    expect(asked).to_contain_text(re.compile(r"Labels\s*ticket = OPS-42"))
    # a tag is a link to everything carrying it
    page.reload()
    page.locator("#bf-head").get_by_role("link", name="ticket=OPS-42").click()
    page.wait_for_url(re.compile(r"/backfills\?tag=ticket%3DOPS-42$"))
    expect(page.locator("#backfills-table tbody tr")).to_have_count(1)
    expect(page.locator(".pager .tally")).to_have_text("1 backfill")


def test_a_backfills_page_shows_what_was_asked(server, page, history, shots):  # noqa: F811
    page.goto(server.url + f"/backfills/{history['failed']}")
    asked = page.get_by_role("region", name="Request")
    expect(asked).to_contain_text(re.compile(r"Workflow\s*daily_sales"))
    expect(asked).to_contain_text(re.compile(r"Partitions\s*the time from 2024-01-10 to 2024-01-16"))
    expect(asked).to_contain_text(re.compile(r"Tags\s*reason = vendor re-export"))
    expect(asked).to_contain_text(re.compile(r"Launched by\s*\S+"))
    asked.get_by_text("As JSON").click()
    shown = asked.locator("pre").inner_text()
    assert '"start": "2024-01-10"' in shown and '"workflow": "daily_sales"' in shown
    shots(page, "backfill-request", full_page=True)


def test_filter_runs_and_run_now_then_again(server, page, shots):  # noqa: F811
    page.goto(server.url + "/workflows/nightly_report")
    expect(page.get_by_role("heading", name="Backfill schedule ticks")).to_be_visible()  # the form that works
    expect(page.get_by_label("From key")).to_have_count(0)
    run_now = page.locator("#run-now")
    run_now.get_by_label("region").fill("apac")
    run_now.get_by_label("full").select_option("true")
    run_now.get_by_role("button", name="Run").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"))
    first = page.url.rsplit("/", 1)[1]
    expect(page.locator("#run-head .badge")).to_have_text(re.compile("succeeded"), timeout=15_000)
    expect(page.locator("#run-head")).to_contain_text("run by hand")
    expect(page.locator("#run-head")).to_contain_text("region=apac")
    page.reload()
    page.get_by_role("button", name="Run again").click()
    page.wait_for_url(lambda url: url.endswith("/runs/" + url.rsplit("/", 1)[1]) and first not in url)
    expect(page.locator("#run-head")).to_contain_text(f"again of run {first[-8:]}")
    shots(page, "run")
    # the runs list, filtered: manual runs of nightly_report
    page.goto(server.url + "/runs")
    page.get_by_label("Workflow").select_option("nightly_report")
    page.get_by_label("Trigger").select_option("manual")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url(re.compile(r"workflow=nightly_report.*trigger=manual"))
    expect(page.locator(".pager .tally")).to_have_text("2 runs")
    shots(page, "runs-filtered")


def test_form_errors_use_the_forms_labels(server, page):  # noqa: F811
    page.goto(server.url + "/workflows/daily_sales")
    page.get_by_label("From key").fill("2024-02-01")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview .alert")).to_contain_text("To key: give both ends of the key range")
    page.get_by_label("From key").fill("")
    page.get_by_label("sleep").first.fill("fast")
    page.get_by_role("button", name="Preview").click()
    expect(page.locator("#preview .alert")).to_contain_text("Parameter sleep: expected a number, got 'fast'")


def test_times_in_the_browsers_zone_then_one_chosen(server, browser, history):  # noqa: F811
    with browsing(browser, timezone_id="America/New_York") as pg:
        pg.goto(f"{server.url}/runs/{history['run']}")
        expect(pg.locator("#tz-link")).to_have_text("America/New_York")  # set on the first visit
        expect(pg.locator("#run-head")).to_contain_text("(2024-01-12 19:00 → 2024-01-13 19:00 EST)")
        created = pg.locator("#run-head dt:text('Created') + dd .hint")
        expect(created).to_contain_text(re.compile(r" E[SD]T$"))
        pg.locator("#tz-link").click()
        pg.get_by_role("button", name="UTC").click()
        pg.wait_for_url(re.compile(f"/runs/{history['run']}$"))
        expect(pg.locator("#tz-link")).to_have_text("UTC")
        expect(created).to_contain_text(re.compile(r" UTC$"))


def test_on_a_phone_pause_a_backfill_and_open_a_cell(server, phone):  # noqa: F811
    backfill_id = api_backfill(server, workflow="slow", max_concurrency=2)
    phone.goto(f"{server.url}/backfills/{backfill_id}")
    phone.get_by_role("button", name="Pause").tap()
    expect(phone.locator("#bf-head .badge")).to_have_text(re.compile("paused"))
    assert api_status(server, backfill_id)["status"] == "paused"
    phone.get_by_role("button", name="Resume").tap()
    expect(phone.locator("#bf-head .badge")).to_have_text(re.compile("in progress"))
    fits(phone)
    phone.locator("#grid-panel .grid > a.success").first.tap()
    phone.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"))
    expect(phone.locator("#log")).to_contain_text("processing shard-")
    fits(phone)
    with server.client() as c:
        c.post(f"/api/v1/backfills/{backfill_id}/cancel")
