"""What the browser tests share: Debian's Chromium driven by Playwright (never a downloaded browser)."""

from __future__ import annotations

import os

import pytest

if os.environ.get("CI"):  # CI must run these: a missing browser or Playwright is a failure there, not a skip
    from playwright import sync_api
else:
    sync_api = pytest.importorskip("playwright.sync_api")

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run"]

#: ``pytestmark = needs_chromium`` in a module of browser tests
needs_chromium = pytest.mark.skipif(not os.path.exists(CHROMIUM) and not os.environ.get("CI"),
                                    reason=f"{CHROMIUM} is not installed (apt-get install chromium; .ci/run does)")
