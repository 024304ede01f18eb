"""The web UI in a real browser: Debian's Chromium driven by Playwright against a real ``anachron server``
process (tests/server_process.py). One browser for the module; each test opens its own page.

Screenshots go to the test's temporary directory (``ui-screenshots/``), and also to
``$ANACHRON_UI_SCREENSHOTS`` when it is set (docs/screenshots/ holds a few of them).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from browser import ARGS, CHROMIUM, needs_chromium, sync_api
from server_process import running_server

expect = sync_api.expect

FLOWS = str(Path(__file__).parent / "ui_flows" / "demo.py")
ENV = {"UI_SLEEP": "0.04", "UI_SLOW": "0.4", "UI_BAD_DAYS": "2024-01-13"}

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ui-screenshots")
    extra = os.environ.get("ANACHRON_UI_SCREENSHOTS")

    def shoot(page, name: str, full_page: bool = False) -> Path:
        path = folder / f"{name}.png"
        page.screenshot(path=str(path), full_page=full_page)
        if extra:
            Path(extra).mkdir(parents=True, exist_ok=True)
            shutil.copy(path, Path(extra) / path.name)
        return path

    return shoot


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("ui-server")
    with running_server([FLOWS], f"sqlite:///{tmp / 'ui.db'}", tmp, env=ENV) as srv:
        yield srv


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        yield b
        b.close()


DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}


@contextmanager
def browsing(browser, viewport=DESKTOP, **options):
    """A fresh browser context (no cookies) and page at ``viewport``; fails if the page logged an error."""
    context = browser.new_context(viewport=viewport, **options)
    pg = context.new_page()
    pg.set_default_timeout(15_000)
    errors: list[str] = []
    # a refused form answers 422 (the error shown inline): Chromium logs the status, which is expected
    expected = re.compile(r"Failed to load resource: the server responded with a status of (422|409)")
    pg.on("console", lambda m: errors.append(m.text) if m.type == "error" and not expected.match(m.text) else None)
    pg.on("pageerror", lambda e: errors.append(str(e)))
    pg.on("dialog", lambda d: d.accept())  # hx-confirm ("Cancel backfill ...?")
    yield pg
    context.close()
    assert not errors, errors


@pytest.fixture
def page(browser):
    with browsing(browser) as pg:
        yield pg


def api_backfill(server, **body) -> str:
    with server.client() as c:
        r = c.post("/api/v1/backfills", json=body)
        assert r.status_code == 201, r.text
        return r.json()["backfill_id"]


def api_status(server, backfill_id: str) -> dict:
    with server.client() as c:
        return c.get(f"/api/v1/backfills/{backfill_id}").json()


def wait_api(server, backfill_id: str, statuses: tuple[str, ...], timeout: float = 30) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = api_status(server, backfill_id)
        if st["status"] in statuses:
            return st
        time.sleep(0.1)
    raise AssertionError(f"backfill {backfill_id} did not reach {statuses}: {st}")


def mark_no_reload(page) -> None:
    page.evaluate("window.__stillTheSamePage = true")


def assert_not_reloaded(page) -> None:
    assert page.evaluate("window.__stillTheSamePage === true"), "the page was reloaded"


def test_dashboard(server, page, shots):
    api_backfill(server, workflow="slow", max_concurrency=2, tags=[{"key": "team", "value": "search"}])
    api_backfill(server, workflow="regional", max_concurrency=4)
    page.goto(server.url + "/")
    expect(page.get_by_role("heading", name="Dashboard")).to_be_visible()
    assert page.evaluate("typeof window.htmx") == "object"  # the vendored htmx loaded
    expect(page.locator("#dash .card").first).to_be_visible()
    expect(page.get_by_role("navigation", name="Main").get_by_role("link", name="Dashboard")).to_have_attribute(
        "aria-current", "page")
    mark_no_reload(page)
    first = page.locator("#dash .card .nums b").first.inner_text()
    expect(page.locator("#dash .card .nums b").first).not_to_have_text(first, timeout=10_000)  # it follows along
    assert_not_reloaded(page)
    shots(page, "dashboard")
    # keyboard: the skip link comes first, then the navigation; focus is visible
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Skip to content"
    page.keyboard.press("Tab")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent.trim()") == "Dashboard"
    outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
    assert outline == "solid"


def test_preview_then_launch_a_backfill_and_watch_its_grid_turn_green(server, page, shots):
    page.goto(server.url + "/workflows/daily_sales")
    expect(page.get_by_role("heading", name="daily_sales")).to_be_visible()
    page.get_by_label("From key").fill("2024-02-01")
    page.get_by_label("To key").fill("2024-02-29")
    page.get_by_label("Max concurrency").fill("2")
    page.get_by_role("button", name="Preview").click()
    preview = page.locator("#preview")
    expect(preview.get_by_role("button", name="Launch backfill of 29 partitions")).to_be_visible()
    text = preview.inner_text()
    assert "2024-02-01" in text and "2024-02-29" in text and "dry run" in text
    assert re.search(r"Runs\s+29", text) and "First runs" in text
    assert "at max_concurrency 2" in text or "no run history" in text  # the estimate
    with server.client() as c:
        assert not [b for b in c.get("/api/v1/backfills?workflow=daily_sales").json()
                    if b["total_partitions"] == 29]  # a preview stores nothing
    shots(page, "workflow-preview")
    # editing the form clears the preview: what launches is what was previewed
    page.get_by_label("Max concurrency").fill("3")
    expect(preview.get_by_role("button")).to_have_count(0)
    page.get_by_role("button", name="Preview").click()
    launch = preview.get_by_role("button", name="Launch backfill of 29 partitions")
    launch.click()
    page.wait_for_url(re.compile(r"/backfills/[0-9a-f]{16}$"))
    backfill_id = page.url.rsplit("/", 1)[1]
    st = api_status(server, backfill_id)
    assert st["total_partitions"] == 29
    mark_no_reload(page)
    cells = page.locator("#grid-panel .grid > *")
    expect(cells).to_have_count(29)
    expect(page.locator("#grid-panel .grid > .success")).to_have_count(29, timeout=30_000)
    expect(page.locator("#bf-head .badge")).to_have_text(re.compile("completed"))
    expect(page.locator("#live .pct")).to_have_text("100.0%")
    assert_not_reloaded(page)
    title = page.locator("#grid-panel .grid > *").first.get_attribute("title")
    assert title == "2024-02-01: succeeded"
    shots(page, "backfill-completed")


def test_pause_and_resume(server, page, shots):
    backfill_id = api_backfill(server, workflow="slow", max_concurrency=2)
    page.goto(f"{server.url}/backfills/{backfill_id}")
    mark_no_reload(page)
    expect(page.locator("#bf-head .badge")).to_have_text(re.compile("in progress"))
    page.get_by_role("button", name="Pause").click()
    expect(page.locator("#flash")).to_contain_text("Paused")
    expect(page.locator("#bf-head .badge")).to_have_text(re.compile("paused"))
    assert api_status(server, backfill_id)["status"] == "paused"
    expect(page.get_by_role("button", name="Resume")).to_be_visible()
    # runs in flight finish, then nothing moves
    expect(page.locator("#live .stat.run .v")).to_have_text("▶ 0", timeout=10_000)
    done = api_status(server, backfill_id)["completed_partitions"]
    time.sleep(1.2)
    assert api_status(server, backfill_id)["completed_partitions"] == done
    shots(page, "backfill-paused")
    page.get_by_role("button", name="Resume").click()
    expect(page.locator("#bf-head .badge")).to_have_text(re.compile("in progress"))
    wait = time.monotonic() + 10
    while api_status(server, backfill_id)["completed_partitions"] <= done and time.monotonic() < wait:
        time.sleep(0.1)
    assert api_status(server, backfill_id)["completed_partitions"] > done
    expect(page.locator("#grid-panel .grid > .success")).not_to_have_count(done, timeout=10_000)
    assert_not_reloaded(page)
    with server.client() as c:
        c.post(f"/api/v1/backfills/{backfill_id}/cancel")


def test_cancel_another_backfill(server, page):
    backfill_id = api_backfill(server, workflow="slow", max_concurrency=2, tags=[{"key": "try", "value": "2"}])
    page.goto(f"{server.url}/backfills/{backfill_id}")
    page.get_by_role("button", name="Cancel").click()  # the confirmation dialog is accepted
    expect(page.locator("#bf-head .badge")).to_have_text(re.compile("canceled"), timeout=15_000)
    expect(page.get_by_role("button", name="Rerun failed & canceled")).to_be_visible()
    expect(page.get_by_role("button", name="Pause")).to_have_count(0)
    assert api_status(server, backfill_id)["status"] == "canceled"
    expect(page.locator("#grid-panel .grid > .canceled").first).to_be_visible()
    assert "canceled" in page.locator("#grid-panel .legend").inner_text()


def test_open_a_failed_runs_logs(server, page, shots):
    backfill_id = api_backfill(server, workflow="daily_sales", start="2024-01-10", end="2024-01-16")
    wait_api(server, backfill_id, ("failed",))
    page.goto(f"{server.url}/backfills/{backfill_id}")
    expect(page.locator("#grid-panel .grid > .failed")).to_have_count(1)
    assert page.locator("#grid-panel .grid > .failed").get_attribute("title") == "2024-01-13: failed"
    row = page.locator("#live tr", has_text="2024-01-13")
    expect(row).to_contain_text("upstream export for 2024-01-13 is truncated")
    shots(page, "backfill-failed")
    row.get_by_role("link", name="logs →").click()
    page.wait_for_url(re.compile(r"/runs/[0-9a-f]{32}$"))
    expect(page.locator("#run-head .badge")).to_have_text(re.compile("failed"))
    expect(page.locator("pre.error")).to_contain_text("RuntimeError: upstream export for 2024-01-13 is truncated")
    expect(page.locator("#log")).to_contain_text("upstream export for 2024-01-13")
    expect(page.locator("#log-follow")).to_have_count(0)  # finished: nothing to follow
    shots(page, "run-logs", full_page=True)
    # a successful neighbour's logs, from the grid
    page.go_back()
    page.locator("#grid-panel .grid > a[title='2024-01-12: succeeded']").click()
    expect(page.locator("#log")).to_contain_text("loaded 1000 rows for 2024-01-12")


def test_keyboard_only_preview(server, page):
    page.goto(server.url + "/workflows/regional")
    page.get_by_label("date from").focus()
    page.keyboard.type("2024-01-01")
    page.keyboard.press("Tab")
    page.keyboard.type("2024-01-02")
    page.keyboard.press("Tab")
    page.keyboard.press("Space")  # region: tick "us"
    page.keyboard.press("Enter")  # submits the form: the preview
    expect(page.locator("#preview")).to_contain_text("Partitions")
    assert re.search(r"Partitions\s+2\b", page.locator("#preview").inner_text())  # 2 days × us
    button = page.locator("#launch-btn")
    expect(button).to_be_visible()
    # a mistake is shown where it was made, in the engine's words (naming the key and the dimension)
    page.get_by_label("date to").fill("2031-01-01")
    expect(button).to_have_count(0)
    page.get_by_label("date to").press("Enter")
    expect(page.locator("#preview .alert")).to_contain_text("unknown partition key '2031-01-01' in dimension 'date'")


def test_log_in_with_a_token(browser, tmp_path, shots):
    with running_server([FLOWS], f"sqlite:///{tmp_path / 'auth.db'}", tmp_path,
                        env={**ENV, "ANACHRON_API_TOKEN": "ui-s3cret"}) as srv:
        context = browser.new_context(viewport={"width": 1280, "height": 800})
        page = context.new_page()
        page.goto(srv.url + "/workflows")
        page.wait_for_url(re.compile(r"/login\?next=%2Fworkflows$"))
        page.get_by_label("Token").fill("wrong")
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("alert")).to_contain_text("not the server's ANACHRON_API_TOKEN")
        shots(page, "login")
        page.get_by_label("Token").fill("ui-s3cret")
        page.get_by_label("Token").press("Enter")
        page.wait_for_url(srv.url + "/workflows")
        expect(page.get_by_role("heading", name="Workflows")).to_be_visible()
        cookie = [c for c in context.cookies() if c["name"] == "anachron_token"][0]
        assert cookie["httpOnly"] and cookie["sameSite"] == "Strict" and cookie["path"] == "/"
        assert "anachron_token" not in page.evaluate("document.cookie")  # HttpOnly: scripts cannot read it
        page.get_by_role("button", name="Sign out").click()
        page.wait_for_url(re.compile("/login$"))
        page.goto(srv.url + "/")
        page.wait_for_url(re.compile(r"/login\?next=%2F$"))
        context.close()
