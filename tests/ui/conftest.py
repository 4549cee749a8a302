"""Fixtures for UI tests: the server fixtures of ``tests/server/conftest.py``, reused.

``tests`` is not a package (no ``__init__.py``) and ``pytest_plugins`` is refused outside the
root conftest, so the server conftest is loaded by its path under a name of its own and its
fixtures are re-exported here: one definition of a served project and a running server.
"""

from __future__ import annotations

import importlib.util
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

_PATH = Path(__file__).resolve().parents[1] / "server" / "conftest.py"
_spec = importlib.util.spec_from_file_location("planta_tests_server_conftest", _PATH)
assert _spec is not None and _spec.loader is not None
_server = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = _server
_spec.loader.exec_module(_server)

GOOD_RECORD = _server.GOOD_RECORD
PLANTA = _server.PLANTA
Server = _server.Server
launch = _server.launch
served_project = _server.served_project
project_copy = _server.project_copy
start_server = _server.start_server
server = _server.server


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
