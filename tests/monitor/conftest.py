"""Fixtures for monitoring tests: a real HTTP sink and a small project.

The real Mosquitto broker (fixture ``mosquitto``, class ``Broker``) is shared by every test
folder: it lives in ``tests/mqtt_broker.py``, registered in ``tests/conftest.py``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from receivers import HttpSink


@pytest.fixture
def http_sink() -> Iterator[HttpSink]:
    """An HTTP server in a thread on a free loopback port, recording what it is sent."""
    received: list[Any] = []
    statuses: list[int] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - the http.server spelling
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            with lock:
                status = statuses.pop(0) if statuses else 200
                if status == 200:
                    received.append(json.loads(body))
            self.send_response(status)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield HttpSink(f"http://127.0.0.1:{server.server_address[1]}/hook", received, statuses)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def _make_project(root: Path, *, rules: list[dict[str, Any]] | None = None,
                  extra: dict[str, Any] | None = None, usecase: dict[str, Any] | None = None,
                  store_url: str | None = None) -> Path:
    """A project folder with one binary use case ``failure`` (objective recall>=0.80) and the
    given rules and top-level tables; returns its root."""
    from planta.project import Project

    project = Project.init(root, name="plant-a")
    table: dict[str, Any] = {"task": "binary", "target": "machine_failure",
                             "objective": "recall>=0.80"}
    table.update(usecase or {})
    if rules:
        table["rules"] = rules
    project.config["usecases"] = {"failure": table}
    if store_url:
        project.config["store"]["url"] = store_url
    project.config.update(extra or {})
    project.save()
    return root


@pytest.fixture
def make_project() -> Callable[..., Path]:
    """``make_project(root, rules=, extra=, usecase=, store_url=)``: a project folder with one
    binary use case ``failure`` (objective recall>=0.80); returns its root."""
    return _make_project


@pytest.fixture
def log_scans(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Every span the monitoring reader reads from the prediction log, as (start, end)."""
    from planta.services import monitor_log

    scans: list[Any] = []
    real = monitor_log._scan_spans

    def counting(store: Any, baseline: Any, spans: list[Any]) -> Any:
        scans.extend(spans)
        return real(store, baseline, spans)

    monkeypatch.setattr(monitor_log, "_scan_spans", counting)
    return scans
