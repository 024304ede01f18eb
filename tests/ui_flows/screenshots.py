"""Regenerate the web UI's screenshots in docs/screenshots/ (not a test; run it by hand):

    .venv/bin/python tests/ui_flows/screenshots.py docs/screenshots

It starts ``anachron server tests/ui_flows/demo.py`` on a fresh database, stages backfills through the HTTP
API (finished with a few failures, paused, running, a 2-D one) and photographs the pages in Debian's
Chromium at a desktop's width (1400×900) and a phone's (390×844), in the Europe/Paris time zone.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from playwright.sync_api import Page, sync_playwright  # noqa: E402

from server_process import running_server  # noqa: E402

ENV = {"UI_SLEEP": "0.03", "UI_SLOW": "0.6",
       "UI_BAD_DAYS": "2024-01-13,2024-02-02,2024-02-29,2024-05-17,2024-05-18,2024-08-09"}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]
DESKTOP = {"width": 1400, "height": 900}
PHONE = {"width": 390, "height": 844}


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp, \
            running_server([str(HERE / "demo.py")], f"sqlite:///{tmp}/ui.db", Path(tmp), env=ENV) as srv, \
            srv.client() as api:
        def backfill(**body: object) -> str:
            r = api.post("/api/v1/backfills", json=body)
            r.raise_for_status()
            return str(r.json()["backfill_id"])

        def wait(backfill_id: str) -> None:
            while api.get(f"/api/v1/backfills/{backfill_id}").json()["status"] not in ("completed", "failed",
                                                                                        "canceled"):
                time.sleep(0.1)

        wait(backfill(workflow="regional", max_concurrency=8,
                      partition_range={"dimensions": {"date": {"from": "2024-01-01", "to": "2024-02-14"},
                                                      "region": ["us", "eu"]}}))
        failed = backfill(workflow="daily_sales", start="2024-01-01", end="2024-03-31",
                          tags=[{"key": "reason", "value": "vendor re-export"}])
        wait(failed)
        api.post("/api/v1/runs", json={"workflow": "nightly_report", "params": {"region": "eu"}})
        paused = backfill(workflow="slow", max_concurrency=2)
        time.sleep(1.5)
        api.post(f"/api/v1/backfills/{paused}/pause")
        running = backfill(workflow="daily_sales", max_concurrency=4, params={"sleep": 0.35},
                           tags=[{"key": "team", "value": "analytics"}])
        time.sleep(12)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            desk = browser.new_context(viewport=DESKTOP, timezone_id="Europe/Paris").new_page()
            phone = browser.new_context(viewport=PHONE, timezone_id="Europe/Paris", is_mobile=True,
                                        has_touch=True).new_page()

            def shoot(page: Page, path: str, name: str, full: bool = False) -> None:
                page.goto(srv.url + path)
                time.sleep(1.5)
                page.screenshot(path=str(out / f"{name}.png"), full_page=full)

            shoot(desk, "/", "dashboard")
            shoot(phone, "/", "dashboard-phone")
            shoot(desk, f"/backfills/{running}", "backfill")
            shoot(phone, f"/backfills/{running}", "backfill-phone", full=True)
            shoot(desk, f"/backfills/{failed}", "backfill-failures")
            desk.goto(srv.url + "/workflows/daily_sales")
            desk.get_by_label("From key").fill("2024-06-01")
            desk.get_by_label("To key").fill("2024-06-30")
            desk.get_by_label("Strategy").select_option("batched")
            desk.get_by_label("Batch size (N)").fill("7")
            desk.get_by_role("button", name="Preview").click()
            desk.locator("#launch-btn").wait_for()
            desk.set_viewport_size({"width": 1400, "height": 1250})  # the form and its preview in one picture
            desk.evaluate("window.scrollTo(0, 0)")
            desk.screenshot(path=str(out / "workflow-preview.png"))
            desk.set_viewport_size(DESKTOP)
            desk.goto(srv.url + "/workflows/regional")
            desk.get_by_label("date from").fill("2024-02-15")
            desk.get_by_label("date to").fill("2024-02-29")
            desk.get_by_label("apac", exact=True).check()
            desk.get_by_role("button", name="Preview").click()
            desk.locator("#launch-btn").wait_for()
            desk.set_viewport_size({"width": 1400, "height": 1250})
            desk.evaluate("window.scrollTo(0, 0)")
            desk.screenshot(path=str(out / "workflow-2d.png"))
            desk.set_viewport_size(DESKTOP)
            shoot(desk, "/partitions?workflow=daily_sales&key=2024-02-02", "partition")
            desk.goto(srv.url + "/schedules")
            row = desk.locator("tbody.schedule").first
            row.get_by_text("Backfill ticks of nightly…").click()
            row.get_by_label("Start").fill("2024-03-01")
            row.get_by_label("End").fill("2024-03-08")
            row.get_by_label("region").fill("eu")
            row.get_by_label("Labels").fill("ticket=OPS-42")
            row.get_by_role("button", name="Preview ticks").click()
            row.get_by_role("button", name="Launch backfill of 7 ticks").wait_for()
            desk.screenshot(path=str(out / "schedules.png"), full_page=True)
            shoot(phone, "/schedules", "schedules-phone")
            shoot(desk, "/runs?workflow=daily_sales&status=failed", "runs")
            desk.goto(f"{srv.url}/backfills/{failed}")
            desk.locator("#live tr", has_text="2024-02-02").get_by_role("link").click()
            desk.locator("#log").wait_for()
            desk.screenshot(path=str(out / "run-logs.png"))
            browser.close()
        api.post(f"/api/v1/backfills/{running}/cancel")
        api.post(f"/api/v1/backfills/{paused}/cancel")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
