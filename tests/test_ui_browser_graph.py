"""Data graphs in the web UI, in a real browser (Debian's Chromium, Playwright) at a desktop's width (1400×900) and a
phone's (390×844): a graph backfill's page while it runs (progress per workflow, upstream failed), a graph backfill
launched from a workflow's page after its preview, and the graph page (last: it shows what the others ran). One
``anachron server`` on the 21-workflow graph of tests/ui_flows/graph_demo.py for the module (tests/test_ui_graph.py
has the same pages over HTTP)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest

from browser import needs_chromium, sync_api
from server_process import running_server
from test_ui_browser import (  # noqa: F401  (module fixtures: one browser, screenshots)
    PHONE,
    api_backfill,
    api_status,
    assert_not_reloaded,
    browser,
    browsing,
    mark_no_reload,
    page,
    shots,
    wait_api,
)
from test_ui_browser_pages import fits, phone  # noqa: F401  (the phone fixture)

expect = sync_api.expect
pytestmark = needs_chromium

FLOWS = str(Path(__file__).parent / "ui_flows" / "graph_demo.py")
#: every run takes 0.12 s; one hour of February's raw events fails
ENV = {"UI_GRAPH_SLEEP": "0.12", "UI_GRAPH_FAIL": "raw_events/2024-02-01T03:00"}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui-graph-server")
    with running_server([FLOWS], f"sqlite:///{tmp / 'graph.db'}", tmp, env=ENV) as srv:
        yield srv


def per_workflow(pg) -> dict[str, tuple[int, int]]:
    """Each workflow's row of a backfill's page: (done, total)."""
    found = {}
    for row in pg.locator("#per-workflow tr[data-workflow]").all():
        done, total = re.search(r"([\d,]+) / ([\d,]+)", row.inner_text()).groups()
        found[row.get_attribute("data-workflow")] = (int(done.replace(",", "")), int(total.replace(",", "")))
    return found


def test_a_graph_backfill_page_follows_each_workflow_live(server, page, phone, shots):  # noqa: F811
    backfill_id = api_backfill(server, workflow="raw_events", start="2024-02-01", end="2024-02-02T23:00",
                               include="downstream", max_concurrency=2)  # 108 runs of 0.12 s
    page.goto(f"{server.url}/backfills/{backfill_id}")
    mark_no_reload(page)
    expect(page.locator("#per-workflow tr[data-workflow]")).to_have_count(6)
    read = """() => {
        const done = parseInt(document.querySelector('#live .of').textContent.replace(/,/g, ''));
        const rows = [...document.querySelectorAll('#per-workflow tr[data-workflow]')].map(
            r => parseInt(r.querySelector('td.num').textContent.split('/')[0].replace(/,/g, '')));
        return [done, rows.reduce((a, b) => a + b, 0)];
    }"""
    seen = set()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        done, rows = page.evaluate(read)
        assert done == rows  # the counters and the rows come from one read
        seen.add(done)
        if api_status(server, backfill_id)["status"] not in ("requested", "in_progress"):
            break
        time.sleep(0.4)
    assert len(seen) > 2  # it moved while we looked
    st = wait_api(server, backfill_id, ("failed",))
    expect(page.locator("#bf-head .badge")).to_contain_text("upstream failed", timeout=10_000)
    assert_not_reloaded(page)
    rows = per_workflow(page)
    assert rows == {name: (c["completed"] + c["failed"] + c["upstream_failed"], c["total"])
                    for name, c in st["workflows"].items()}
    blocked = sum(c["upstream_failed"] for c in st["workflows"].values())
    assert blocked >= 4  # the hour's alert, its day, the day's week, the rolling days … and the deck
    expect(page.locator("#live .stat.blocked .v")).to_have_text(f"↯ {blocked}")
    expect(page.locator("#grid-panel .grid > .upstream_failed")).to_have_count(blocked)
    expect(page.locator("#grid-panel .legend")).to_contain_text(f"upstream failed {blocked}")
    shots(page, "graph-backfill", full_page=True)
    # a blocked key's run names the hour that failed, and leads to it
    page.locator("#grid-panel .grid > a[title='daily_summary 2024-02-01: upstream failed']").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"))
    expect(page.locator(".alert.blocked")).to_contain_text("it needs raw_events 2024-02-01T03:00 in this backfill, "
                                                           "which failed")
    page.locator("#blocker-run").click()
    expect(page.locator("pre.error")).to_contain_text("bad input for 2024-02-01T03:00")
    # on a phone: one line per workflow, nothing sideways
    phone.goto(f"{server.url}/backfills/{backfill_id}")
    fits(phone)
    expect(phone.locator("#per-workflow tr[data-workflow='rolling_week']")).to_contain_text("upstream failed")
    shots(phone, "graph-backfill-phone", full_page=True)


def launch_with_downstream(pg, server) -> str:  # noqa: F811
    pg.goto(server.url + "/workflows/daily_summary")
    pg.get_by_label("with downstream").check()
    pg.get_by_label("or start time").fill("2024-03-04")
    pg.get_by_label("end time").fill("2024-03-10")
    pg.get_by_role("button", name="Preview").click()
    table = pg.locator("#preview table.per-workflow")
    expect(table).to_be_visible()
    return table.inner_text()


def test_launch_a_graph_backfill_from_a_workflows_page(server, page, phone, shots):  # noqa: F811
    text = launch_with_downstream(page, server)
    rows = [line.split("\t") for line in text.splitlines() if "\t" in line]
    assert rows[1:] == [["daily_summary", "7", "7"], ["weekly_report", "1", "1"], ["rolling_week", "13", "13"],
                        ["yearly_deck", "1", "1"], ["4 workflows", "22", "22"]]
    with server.client() as c:
        before = len(c.get("/api/v1/backfills").json())
    page.locator("#preview").scroll_into_view_if_needed()
    shots(page, "graph-preview")
    page.get_by_role("button", name="Launch backfill of 22 partitions in 4 workflows").click()
    page.wait_for_url(re.compile(r"/backfills/[0-9a-f]{16}$"))
    backfill_id = page.url.rsplit("/", 1)[1]
    expect(page.locator("#per-workflow tr[data-workflow]")).to_have_count(4)
    st = wait_api(server, backfill_id, ("completed",), timeout=60)
    assert {n: c["total"] for n, c in st["workflows"].items()} == {"daily_summary": 7, "weekly_report": 1,
                                                                   "rolling_week": 13, "yearly_deck": 1}
    with server.client() as c:
        assert len(c.get("/api/v1/backfills").json()) == before + 1
    expect(page.locator("#bf-head .badge")).to_have_text(re.compile("completed"))
    # on a phone: the same form and preview, nothing sideways
    text = launch_with_downstream(phone, server)
    assert "22" in text and "rolling_week" in text
    fits(phone)
    phone.locator("#preview").scroll_into_view_if_needed()
    shots(phone, "graph-preview-phone")


def test_the_graph_page(server, browser, page, phone, shots):  # noqa: F811
    # history: the backfills of the tests above (a failed hour in February), and four days of orders
    history = api_backfill(server, workflow="orders", start="2024-01-01", end="2024-01-04", include="downstream",
                           max_concurrency=8)
    wait_api(server, history, ("completed", "failed"), timeout=60)
    page.goto(server.url + "/graph")
    expect(page.get_by_role("heading", name="Graph", exact=True)).to_be_visible()
    nodes = page.locator("svg.graph a.node")
    expect(nodes).to_have_count(21)
    # health: the workflow page's counts (orders ran 4 days of 366)
    orders = page.locator("svg.graph a.node[href='/workflows/orders']")
    assert orders.get_attribute("aria-label") == "orders: daily, 366 partitions; 4 succeeded, 362 missing"
    expect(orders.locator("text.counts")).to_have_text(re.compile(r"✓ 4\s*○ 362"))
    expect(page.locator("svg.graph .elabel")).to_have_count(18)
    expect(page.locator("svg.graph .edge.loop")).to_have_count(2)
    # everything drawn stays inside the drawing
    box = page.locator("svg.graph").bounding_box()
    for i in range(21):
        b = nodes.nth(i).locator("rect.box").bounding_box()
        assert box["x"] <= b["x"] and b["x"] + b["width"] <= box["x"] + box["width"] + 0.5
    shots(page, "graph")
    with browsing(browser, {"width": 1920, "height": 1080}) as wide:  # a wide screen: the page widens with it
        wide.goto(server.url + "/graph")
        assert wide.locator(".graph-wrap").evaluate("e => e.clientWidth") > 1700
        shots(wide, "graph-wide")
    # a node leads to its workflow, whose page leads back to the graph
    page.locator("svg.graph a.node[href='/workflows/revenue']").click()
    page.wait_for_url(server.url + "/workflows/revenue")
    deps = page.locator("#deps")
    expect(deps).to_contain_text("orders_clean")
    expect(deps).to_contain_text("IdentityMapping()")
    deps.get_by_role("link", name="The graph →").click()
    page.wait_for_url(server.url + "/graph")
    # on a phone: the page does not scroll sideways, the drawing scrolls in its own box, the list reads as lines
    phone.goto(server.url + "/graph")
    fits(phone)
    wrap = phone.locator(".graph-wrap")
    assert wrap.evaluate("e => e.scrollWidth > e.clientWidth + 100")
    wrap.evaluate("e => e.scrollLeft = 600")
    shots(phone, "graph-phone")
    row = phone.locator("table.deps tr", has_text="weekly_report").first
    expect(row).to_contain_text("daily_summary TimeWindowMapping() declared")
    b = row.bounding_box()
    assert b["x"] >= 0 and b["x"] + b["width"] <= 390
    link = phone.get_by_role("navigation", name="Main").get_by_role("link", name="Graph")
    b = link.bounding_box()
    assert b["x"] >= 0 and b["x"] + b["width"] <= 390
