"""Fixtures for UI tests: the server fixtures of ``tests/server/conftest.py``, reused.

``tests`` is not a package (no ``__init__.py``) and ``pytest_plugins`` is refused outside the
root conftest, so the server conftest is loaded by its path under a name of its own and its
fixtures are re-exported here: one definition of a served project and a running server.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

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
