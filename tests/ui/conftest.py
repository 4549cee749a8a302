"""Fixtures for UI tests: Debian's Chromium driven by Playwright.

The served project and `planta serve` fixtures come from ``tests/servers.py`` (a plugin of the
root conftest); the screenshot helpers are in ``uikit.py``.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from typing import Any

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Debian's Chromium driven by Playwright (its own browser download needs the internet)."""
    if CHROMIUM is None:
        pytest.skip("Debian's chromium is not installed: apt-get install -y chromium")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="pip install 'planta[test]' (playwright)")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=["--no-sandbox"])
        yield chromium
        chromium.close()
