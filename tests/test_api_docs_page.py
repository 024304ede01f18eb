"""``/docs`` (the footer's "HTTP API" link) works with no internet: Chromium, with every request that is not for
the server on 127.0.0.1 aborted, renders Swagger UI and the API's operations from the server's own assets."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit

import pytest

from browser import ARGS, CHROMIUM, needs_chromium, sync_api
from server_process import running_server

FLOWS = str(Path(__file__).parent / "ui_flows" / "demo.py")

pytestmark = needs_chromium


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("docs-server")
    with running_server([FLOWS], f"sqlite:///{tmp / 'docs.db'}", tmp, env={"ANACHRON_API_TOKEN": "s3cret"}) as srv:
        yield srv


@pytest.fixture(scope="module")
def offline(server, tmp_path_factory):
    """A logged-in browser page whose every request for another host than 127.0.0.1 is aborted (and noted)."""
    seen: dict[str, list[str]] = {"blocked": [], "served": [], "errors": []}

    def route(r):
        if urlsplit(r.request.url).hostname == "127.0.0.1":
            seen["served"].append(r.request.url)
            r.continue_()
        else:
            seen["blocked"].append(r.request.url)
            r.abort()

    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        context.route("**/*", route)
        page = context.new_page()
        page.set_default_timeout(15_000)
        page.on("pageerror", lambda e: seen["errors"].append(str(e)))
        page.goto(f"{server.url}/login")  # with a token set, /docs and /openapi.json need the UI's cookie
        page.fill("input[name=token]", "s3cret")
        page.press("input[name=token]", "Enter")
        page.wait_for_url(f"{server.url}/")
        yield page, seen
        browser.close()


def test_docs_page_renders_offline(server, offline, tmp_path):
    page, seen = offline
    page.goto(f"{server.url}/docs")
    sync_api.expect(page.locator(".swagger-ui .information-container .title")).to_contain_text("anachron")
    operations = page.locator(".opblock-summary-path")
    sync_api.expect(operations.first).to_be_visible()
    paths = {p.replace("\u200b", "").strip() for p in operations.all_inner_texts()}
    assert {"/api/v1/backfills", "/api/v1/runs/{run_id}", "/api/v1/triggers"} <= paths, paths
    # an operation opens, with its parameters
    page.locator(".opblock-summary-path", has_text="/api/v1/runs/{run_id}/logs").first.click()
    sync_api.expect(page.locator(".parameters-col_name", has_text="run_id").first).to_be_visible()
    page.screenshot(path=str(tmp_path / "docs.png"))
    assert not seen["blocked"], seen["blocked"]  # nothing was even asked of another host
    assert any(u.endswith("/docs/assets/swagger-ui-bundle.js") for u in seen["served"])
    assert not seen["errors"], seen["errors"]


def test_docs_assets_are_open_and_served_compressed_and_redoc_is_gone(server):
    with server.client() as client:  # no token
        assert client.get("/docs").status_code == 401  # the pages (and the document they read) need the token
        js = client.get("/docs/assets/swagger-ui-bundle.js", headers={"accept-encoding": "gzip"})
        assert js.status_code == 200 and js.headers["content-encoding"] == "gzip"
        text = client.get("/docs", headers={"Authorization": "Bearer s3cret"}).text
        assert "http" not in text.replace("http-equiv", ""), text  # every asset is a path on this server
        # no /redoc: ReDoc's bundle fetches its logo from a CDN whatever it is told
        assert client.get("/redoc", headers={"Authorization": "Bearer s3cret"}).status_code == 404
