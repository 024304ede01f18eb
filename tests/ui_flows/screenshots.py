"""Regenerate the web UI's screenshots in docs/screenshots/ (not a test; run it by hand):

    .venv/bin/python tests/ui_flows/screenshots.py docs/screenshots

It starts ``anachron server tests/ui_flows/demo.py`` on a fresh database, stages a few backfills through the
HTTP API (finished, failed, running, paused) and photographs the pages in Debian's Chromium at 1280×800
(the workflow page, with its form and a preview, at 1280×1080).
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE.parent))

from playwright.sync_api import sync_playwright  # noqa: E402

from server_process import running_server  # noqa: E402

ENV = {"UI_SLEEP": "0.03", "UI_SLOW": "0.6",
       "UI_BAD_DAYS": "2024-01-13,2024-02-02,2024-02-29,2024-05-17,2024-05-18,2024-08-09"}
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run"]


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

        wait(backfill(workflow="regional", max_concurrency=8))
        failed = backfill(workflow="daily_sales", start="2024-01-01", end="2024-03-31",
                          tags=[{"key": "reason", "value": "vendor re-export"}])
        wait(failed)
        paused = backfill(workflow="slow", max_concurrency=2)
        time.sleep(1.5)
        api.post(f"/api/v1/backfills/{paused}/pause")
        running = backfill(workflow="daily_sales", max_concurrency=4, params={"sleep": 0.35},
                           tags=[{"key": "team", "value": "analytics"}])
        time.sleep(14)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", headless=True, args=ARGS)
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            page.goto(srv.url + "/")
            time.sleep(2.5)
            page.screenshot(path=str(out / "dashboard.png"))
            page.goto(f"{srv.url}/backfills/{running}")
            time.sleep(2.5)
            page.screenshot(path=str(out / "backfill.png"))
            page.goto(srv.url + "/workflows/daily_sales")
            page.get_by_label("From key").fill("2024-06-01")
            page.get_by_label("To key").fill("2024-06-30")
            page.get_by_label("Strategy").select_option("batched")
            page.get_by_label("Batch size (N)").fill("7")
            page.get_by_role("button", name="Preview").click()
            page.locator("#launch-btn").wait_for()
            page.set_viewport_size({"width": 1280, "height": 1080})  # the form and its preview in one picture
            page.evaluate("window.scrollTo(0, 0)")
            page.screenshot(path=str(out / "workflow-preview.png"))
            page.set_viewport_size({"width": 1280, "height": 800})
            page.goto(f"{srv.url}/backfills/{failed}")
            page.locator("#grid-panel tr", has_text="2024-02-02").get_by_role("link").click()
            page.locator("#log").wait_for()
            page.screenshot(path=str(out / "run-logs.png"))
            browser.close()
        api.post(f"/api/v1/backfills/{running}/cancel")
        api.post(f"/api/v1/backfills/{paused}/cancel")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/screenshots"))
