"""Data graphs in the web UI over HTTP (FastAPI's TestClient on the real app): the graph page and its layout, a
graph backfill's page with progress per workflow, ``upstream_failed`` wherever statuses show, the backfill form's
"Which workflows" choice with its per-workflow preview, and a workflow's upstream and downstream. The browser tests
(tests/test_ui_browser_graph.py) drive the same pages in Chromium. The graph: tests/ui_flows/graph_demo.py."""

from __future__ import annotations

import re
from html import unescape
from pathlib import Path

import pytest

import anachron as ac
from anachron.ui import graph_layout, graph_pages
from anachron.ui.render import query
from helpers import load_module

pytest.importorskip("fastapi")
from fastapi.testclient import TestClient  # noqa: E402

from anachron.api import create_app  # noqa: E402

FLOWS = Path(__file__).parent / "ui_flows" / "graph_demo.py"
HX = {"HX-Request": "true"}
#: the keys that fail in this module's history: an hour of raw events, and a day of exchange rates
FAIL = "raw_events/2024-03-02T05:00,fx_rates/2024-03-03"


flows = load_module(FLOWS, "ui_graph_flows")


def words(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    """One repository for the module, with history: a graph backfill from raw_events with one failed hour, and a
    depends_on_past backfill of fx_rates with one failed day."""
    tmp = tmp_path_factory.mktemp("ui-graph")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("UI_GRAPH_FAIL", FAIL)
        r = ac.CodeRepository(flows.WORKFLOWS, storage=f"sqlite:///{tmp / 'g.db'}",
                              executor=ac.InProcessExecutor(max_workers=4))
        graph = r.backfill("raw_events", start="2024-03-01", end="2024-03-03T23:00", include="downstream")
        past = r.backfill("fx_rates", start="2024-03-01", end="2024-03-06")
        r.history = {"graph": graph.backfill_id, "past": past.backfill_id}
        yield r
        r.close()


@pytest.fixture(scope="module")
def client(repo):
    with TestClient(create_app(repo, daemon=False), follow_redirects=False, base_url="http://localhost") as c:
        yield c


# -- the layout (pure) --------------------------------------------------------------------------------------
def test_the_layout_puts_upstreams_left_and_nothing_over_anything():
    graph = ac.CodeRepository(flows.WORKFLOWS, storage="sqlite://").graph()
    between = [(e.upstream, e.downstream) for e in graph.edges if e.upstream != e.downstream]
    labels = [(150.0, 17.0)] * len(between)
    drawn = graph_layout.layout([n.name for n in graph.nodes], between, labels, ["fx_rates", "running_total"])
    boxes = drawn.boxes
    assert set(boxes) == {n.name for n in graph.nodes} and len(boxes) == 21
    for u, v in between:  # every edge goes left to right
        assert boxes[u].x + boxes[u].w < boxes[v].x, (u, v)
    placed = list(boxes.values())
    for i, a in enumerate(placed):  # no two nodes overlap
        assert not any(a.hits(b) for b in placed[i + 1:])
    for route in drawn.routes:  # no label covers a node (there is room for all of them here)
        assert not any(route.label.hits(b) for b in placed), between[route.index]
    # a long edge (weekly_report → yearly_deck skips monthly_close's layer) runs through a waypoint per layer
    long = next(r for r in drawn.routes if between[r.index] == ("weekly_report", "yearly_deck"))
    assert long.path.count("L") == 1 and long.path.count("C") == 2
    assert set(drawn.loops) == {"fx_rates", "running_total"}
    # workflows that depend on nothing sit in rows under the graph
    assert min(boxes["audit_log"].y, boxes["sandbox"].y) > max(boxes[n].y + boxes[n].h for n in ("raw_events",
                                                                                                "yearly_deck"))
    assert drawn.width >= max(b.x + b.w for b in placed) and drawn.height >= max(b.y + b.h for b in placed)


def test_labels_break_into_short_lines():
    assert graph_pages.label_lines("TimeWindowMapping()") == ["TimeWindowMapping()"]
    assert graph_pages.label_lines("TimeWindowMapping(start_offset=-6)") == ["TimeWindowMapping(", "start_offset=-6)"]
    long = graph_pages.label_lines("StaticMapping(mapping={'emea': ['fr', 'de', 'it', 'es'], 'amer': ['us', "
                                   "'ca', 'mx', 'br'], 'apac': ['jp']})")
    assert len(long) == 3 and all(len(line) <= 24 for line in long) and long[-1].endswith("…")


# -- the graph page -----------------------------------------------------------------------------------------
def test_the_graph_page_draws_every_workflow_with_its_health_and_each_dependency_with_its_mapping(client, repo):
    r = client.get("/graph")
    assert r.status_code == 200
    page = r.text
    assert '<a href="/graph" aria-current="page">Graph</a>' in page  # in the navigation
    start = page.index('<svg class="graph"')
    svg = page[start:page.index("</svg>", start)]
    nodes = re.findall(r'<a class="node t-(\w+)" href="([^"]+)" aria-label="([^"]+)">', svg)
    assert len(nodes) == 21 and {unescape(h) for _, h, _ in nodes} == {f"/workflows/{w.name}" for w in flows.WORKFLOWS}
    tone = {unescape(h).removeprefix("/workflows/"): t for t, h, _ in nodes}
    assert tone["raw_events"] == "failed" and tone["alerts"] == "success" and tone["sandbox"] == "none"
    # a node's health is the workflow page's grid counts
    grid = repo.partition_grid("raw_events")
    said = unescape(next(a for _, h, a in nodes if h == "/workflows/raw_events"))
    assert said == (f"raw_events: hourly, 8,784 partitions; {grid.counts['success']:,} succeeded, 1 failed, "
                    f"{grid.counts['missing']:,} missing")
    assert grid.counts["success"] == 71 and grid.counts["missing"] == 8784 - 72
    text = words(svg)
    assert "2024-01-01T00:00 … 2024-12-31T23:00" in text and "✓ 71 ✕ 1 ○ 8,712" in text
    assert "date × region · 1,098 partitions" in text and "not partitioned" in text and "↺" in text
    # the edges: one path per dependency between two workflows, a loop per depends_on_past, labels = mappings
    assert svg.count('<path class="edge') == 18 + 2 and svg.count('class="edge loop"') == 2
    assert svg.count('class="edge inferred"') == sum(e.inferred for e in repo.graph().edges
                                                       if e.upstream != e.downstream)
    labels = [words(t) for t in re.findall(r'<g class="elabel[^"]*">.*?(<text.*?</text>)</g>', svg)]
    assert len(labels) == 18
    assert "TimeWindowMapping( start_offset=-6)" in labels and "IdentityMapping()" in labels
    assert "rolling_week needs daily_summary through TimeWindowMapping(start_offset=-6) (declared)" in text
    # the list: each workflow, upstreams first, with what it needs
    listed = words(page[page.index('id="list-h"'):])
    assert listed.index("raw_events") < listed.index("daily_summary") < listed.index("weekly_report")
    assert "fx_rates daily · 366 ○ 366 ↺ the key before TimeWindowMapping(start_offset=-1, end_offset=-1)" not in listed
    assert "revenue IdentityMapping() inferred" in listed and "↺ the key before" in listed


def test_the_drawing_polls_while_something_runs_and_not_otherwise(client, repo, monkeypatch):
    assert 'hx-trigger="every' not in client.get("/graph").text  # everything finished
    monkeypatch.setenv("UI_GRAPH_SLEEP", "1.5")
    run = repo.run("orders", partition_key="2024-05-01", block=False)
    r = client.get("/graph" + query(fragment="drawing"), headers=HX)
    assert r.status_code == 200 and "<html" not in r.text
    assert 'hx-get="/graph?fragment=drawing" hx-trigger="every 5s"' in r.text
    assert re.search(r'<a class="node t-(running|queued)" href="/workflows/orders"', r.text)
    assert repo.wait_run(run.run_id, timeout=30).status == "success"
    assert 'hx-trigger="every' not in client.get("/graph").text


def test_hostile_names_and_mappings_on_the_graph_are_text(tmp_path):
    hostile = '<img src=x onerror="alert(1)">&amp;/x?y#z'

    @ac.workflow(name=hostile, partitions=ac.StaticPartitions(["<b>k1</b>", "k2"]))
    def source():
        return None

    @ac.workflow(name="<svg onload=alert(2)>", partitions=ac.StaticPartitions(["<b>k1</b>"]),
                 deps=[ac.Dep(hostile, ac.StaticMapping({"<b>k1</b>": ["<b>k1</b>", "k2"]}))])
    def sink():
        return None

    repo = ac.CodeRepository([source, sink], storage=f"sqlite:///{tmp_path / 'h.db'}",
                             executor=ac.InProcessExecutor(2))
    try:
        repo.backfill(hostile, include="downstream")
        with TestClient(create_app(repo, daemon=False), base_url="http://localhost") as c:
            for path in ("/graph", "/workflows/" + "%3Csvg%20onload%3Dalert(2)%3E"):
                body = c.get(path).text
                for raw in ("<img src=x", "<svg onload", "<b>k1</b>"):
                    assert raw not in body, (path, raw)
            body = c.get("/graph").text
            assert 'href="/workflows/%3Cimg%20src%3Dx%20onerror%3D%22alert%281%29%22%3E%26amp%3B%2Fx%3Fy%23z"' in body
            assert "StaticMapping(mapping={&#39;&lt;b&gt;k1&lt;/b&gt;&#39;: [&#39;&lt;b&gt;k1&lt;/b&gt;&#39;, " \
                   "&#39;k2&#39;]})" in body
    finally:
        repo.close()


# -- a graph backfill's page --------------------------------------------------------------------------------
def test_a_graph_backfills_page_shows_each_workflows_progress_from_the_same_read(client, repo):
    bid = repo.history["graph"]
    st = repo.get_backfill(bid)
    assert repo.backfill_snapshot(bid).status.workflows == st.workflows  # the page's one read carries them
    page = client.get(f"/backfills/{bid}").text
    rows = re.findall(r'<tr data-workflow="([^"]+)">(.*?)</tr>', page, re.S)
    assert [name for name, _ in rows] == list(st.workflows) == ["raw_events", "daily_summary", "alerts",
                                                                "weekly_report", "rolling_week", "yearly_deck"]
    for name, row in rows:
        c = st.workflows[name]
        nums = re.findall(r'<td class="num[^"]*">(?:<span class="lbl">[^<]*</span>)?([\d,]+ / [\d,]+|[\d,]+)', row)
        done = c["completed"] + c["failed"] + c["upstream_failed"]
        assert nums == [f"{done:,} / {c['total']:,}", f"{c['completed']:,}", f"{c['failed']:,}",
                        f"{c['upstream_failed']:,}", f"{c['canceled']:,}", "0"], (name, nums)
    assert st.workflows["raw_events"] == {"total": 72, "completed": 71, "failed": 1, "upstream_failed": 0,
                                          "canceled": 0}
    assert st.workflows["rolling_week"]["upstream_failed"] == 7
    # the counters say failed and upstream failed apart; their sum is the backfill's failed partitions
    text = words(page)
    blocked = sum(c["upstream_failed"] for c in st.workflows.values())
    assert blocked == 11 and st.failed_partitions == 1 + blocked
    assert f"✕ 1 failed ↯ {blocked} upstream failed" in text
    assert f"completed with 1 failure, {blocked} upstream failed" in text
    assert "158 of 158 partitions done in 6 workflows" in text
    # the failure and what it blocked, each with its run
    assert "raw_events 2024-03-02T05:00 RuntimeError: bad input for 2024-03-02T05:00" in text
    assert "alerts 2024-03-02T05:00 upstream raw_events 2024-03-02T05:00 failed" in text
    assert "daily_summary 2024-03-02 upstream raw_events 2024-03-02T05:00 failed" in text
    assert "weekly_report 2024-02-26 upstream daily_summary 2024-03-02 did not run: its own upstream failed" in text


def test_upstream_failed_shows_wherever_statuses_show(client, repo):
    bid = repo.history["graph"]
    page = client.get(f"/backfills/{bid}").text
    # the grid: its own class (its own colour), in the legend with its count and meaning
    cells = re.findall(r'<a href="(/runs/[^"]+)" tabindex="-1" class="upstream_failed" title="([^"]+)"', page)
    titles = [unescape(t) for _, t in cells]  # each names its workflow: several have a key 2024-03-02
    assert len(cells) == 11 and {"daily_summary 2024-03-02: upstream failed", "rolling_week 2024-03-02: upstream "
                                 "failed", "yearly_deck: upstream failed"} <= set(titles)
    assert 'title="raw_events 2024-03-02T05:00: failed"' in page
    grid = client.get(f"/api/v1/backfills/{bid}/grid").json()
    assert {c["workflow"] for c in grid["cells"]} == set(repo.get_backfill(bid).workflows)
    assert '<li title="did not run: a key it needs in this backfill failed"><i class="upstream_failed"' in page
    assert 'class="b-upstream_failed"' in page  # the progress bar
    # the runs list: a tab of its own, and the badge
    runs = client.get("/runs" + query(status="upstream_failed", backfill=bid)).text
    assert '<a href="/runs?status=upstream_failed&amp;backfill=' in runs and "11 runs" in words(runs)
    assert runs.count('class="badge s-upstream_failed"') == 11
    assert "↯" in runs
    # the backfills list and the dashboard
    listed = words(client.get("/backfills").text)
    assert "completed with 1 failure, 11 upstream failed" in listed and "1 + ↯ 11" in listed
    # a run page names the key that blocked it and links to that key's run
    blocked = repo.list_runs("weekly_report", backfill_id=bid, status="upstream_failed")[0]
    run_page = client.get(f"/runs/{blocked.run_id}").text
    text = words(run_page)
    assert "Did not run: it needs daily_summary 2024-03-02 in this backfill, which did not run either (its own " \
           "upstream failed)." in text
    upstream = repo.list_runs("daily_summary", backfill_id=bid, partition_key="2024-03-02")[0]
    assert f'<a id="blocker-run" href="/runs/{upstream.run_id}">' in run_page
    assert unescape(re.search(r'<a class="chip" href="([^"]+)">2024-03-02</a>', run_page)[1]) == \
        "/partitions?workflow=daily_summary&key=2024-03-02"
    # and that one, to the hour that failed
    text = words(client.get(f"/runs/{upstream.run_id}").text)
    assert "it needs raw_events 2024-03-02T05:00 in this backfill, which failed." in text


def test_a_depends_on_past_backfill_shows_its_row_and_the_keys_the_failure_held(client, repo):
    bid = repo.history["past"]
    page = client.get(f"/backfills/{bid}").text
    assert '<tr data-workflow="fx_rates">' in page  # one workflow, but its keys wait for each other
    text = words(page)
    assert "completed with 1 failure, 3 upstream failed" in text
    for day, before in (("2024-03-04", "2024-03-03 failed"), ("2024-03-06", "2024-03-05 did not run")):
        assert f"fx_rates {day} upstream fx_rates {before}" in text
    blocked = repo.list_runs("fx_rates", backfill_id=bid, status="upstream_failed", partition_key="2024-03-04")[0]
    assert "it needs fx_rates 2024-03-03 in this backfill, which failed." in words(
        client.get(f"/runs/{blocked.run_id}").text)
    # a one-workflow backfill without dependencies keeps its page as it was
    plain = repo.backfill("orders", partition_keys=["2024-06-01"])
    assert 'id="per-workflow"' not in client.get(f"/backfills/{plain.backfill_id}").text


# -- launching a graph backfill from a workflow's page ----------------------------------------------------------
def form(**fields: str) -> dict[str, str]:
    return {"workflow": "daily_summary", "max_concurrency": "4", "reprocess": "all", "order": "oldest_first",
            "failure_policy": "continue", **fields}


def test_the_form_asks_which_workflows_only_when_there_are_others(client):
    page = client.get("/workflows/daily_summary").text
    choices = re.findall(r'<input type="radio" name="include" value="(\w+)"', page)
    assert choices == ["selection", "downstream", "upstream"]
    assert "+3: weekly_report, rolling_week, yearly_deck" in words(page) and "+1: raw_events" in words(page)
    assert re.findall(r'name="include" value="(\w+)"', client.get("/workflows/raw_clicks").text) == [
        "selection", "downstream"]  # nothing upstream of it
    assert re.findall(r'name="include" value="(\w+)"', client.get("/workflows/running_total").text) == [
        "selection", "upstream"]  # nothing downstream of it (its own past is not another workflow)
    assert 'name="include"' not in client.get("/workflows/audit_log").text  # no dependency at all


def test_the_preview_counts_each_workflow_and_launch_creates_exactly_that(client, repo):
    fields = form(include="downstream", start="2024-04-01", end="2024-04-07")
    r = client.post("/backfills/preview", data=fields, headers=HX)
    assert r.status_code == 200, r.text
    expected = repo.backfill("daily_summary", start="2024-04-01", end="2024-04-07", include="downstream",
                             dry_run=True)
    assert expected.workflows == {"daily_summary": {"num_partitions": 7, "num_runs": 7},
                                  "weekly_report": {"num_partitions": 1, "num_runs": 1},
                                  "rolling_week": {"num_partitions": 13, "num_runs": 13},
                                  "yearly_deck": {"num_partitions": 1, "num_runs": 1}}
    rows = re.findall(r'<tr><td class="name"><a href="/workflows/(\w+)">\w+</a></td><td class="num">([\d,]+)</td>'
                      r'<td class="num">([\d,]+)</td></tr>', r.text)
    assert [(n, int(p), int(k)) for n, p, k in rows] == [
        (n, c["num_partitions"], c["num_runs"]) for n, c in expected.workflows.items()]
    assert "Launch backfill of 22 partitions in 4 workflows" in r.text
    before = len(repo.list_backfills())
    assert len(repo.list_backfills()) == before  # the preview stored nothing
    hidden = {k: unescape(v) for k, v in re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', r.text)}
    assert hidden["include"] == "downstream"
    # a cross-site post of the same form is refused before anything is created
    assert client.post("/backfills/launch", data=hidden, headers={"Sec-Fetch-Site": "cross-site", **HX}).status_code \
        == 403
    assert len(repo.list_backfills()) == before
    r = client.post("/backfills/launch", data=hidden, headers=HX)
    bid = r.headers["HX-Redirect"].removeprefix("/backfills/")
    st = repo.wait_backfill(bid, timeout=60)
    assert {n: c["total"] for n, c in st.workflows.items()} == {n: c["num_partitions"]
                                                                for n, c in expected.workflows.items()}
    assert st.status == "completed" and st.total_partitions == 22
    # without JavaScript: the workflow's page again, with the choice kept and the preview in it
    page = client.post("/backfills/preview", data=form(include="upstream", from_key="2024-04-02",
                                                       to_key="2024-04-02")).text
    assert 'name="include" value="upstream" checked' in page
    assert "Launch backfill of 25 partitions in 2 workflows" in page  # the day and its 24 hours


@pytest.mark.parametrize("fields, message", [
    ({"include": "sideways"}, "Which workflows: input should be &#39;selection&#39;, &#39;downstream&#39; or "
                              "&#39;upstream&#39;"),
    ({"include": "downstream", "order": "newest_first", "workflow": "revenue"},
     "Order: &#39;newest_first&#39; conflicts with depends_on_past=True of workflow &#39;running_total&#39;"),
])
def test_a_refused_graph_backfill_says_why_in_the_forms_words(client, repo, fields, message):
    before = len(repo.list_backfills())
    r = client.post("/backfills/preview", data=form(start="2024-04-01", end="2024-04-02", **fields), headers=HX)
    assert r.status_code == 422 and message in r.text, r.text
    assert len(repo.list_backfills()) == before


def test_a_workflows_page_shows_what_it_needs_and_what_needs_it(client):
    page = client.get("/workflows/revenue").text
    panel = page[page.index('id="deps"'):page.index("</section>", page.index('id="deps"'))]
    text = words(panel)
    assert "Needs orders_clean IdentityMapping() inferred fx_rates IdentityMapping() inferred" in text
    assert "Needed by regional_sales DimensionMapping({}) inferred monthly_close TimeWindowMapping() inferred " \
           "running_total IdentityMapping() inferred" in text
    assert {unescape(h) for h in re.findall(r'href="([^"]+)"', panel)} >= {
        "/graph", "/workflows/orders_clean", "/workflows/fx_rates", "/workflows/regional_sales"}
    past = words(client.get("/workflows/running_total").text)
    assert "Depends on past ↺ each key waits for the key before it TimeWindowMapping(start_offset=-1, " \
           "end_offset=-1)" in past
    assert 'id="deps"' not in client.get("/workflows/audit_log").text
