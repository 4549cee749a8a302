"""An answered prediction is a logged prediction, whatever happens to the server after.

Client threads post single records to a real `planta serve` and keep every prediction id whose
200 arrived; the server is then killed (SIGKILL, mid-load) or stopped (SIGTERM, graceful), and
the project's store must hold every one of those ids. The load stops by itself (deadline).
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from servers import GOOD_RECORD, Server

from planta.services.workspace import Workspace
from planta.store.predictions import PredictionLog

THREADS = 4
LOAD_S = 3.0          # the longest the load runs
STOP_AFTER_S = 1.5    # when the server is killed or stopped, load still running


@dataclass
class Load:
    """Client threads posting one record per request until told to stop or the deadline."""

    url: str
    acked: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self) -> None:
        deadline = time.monotonic() + LOAD_S
        for n in range(THREADS):
            t = threading.Thread(target=self._run, args=(n, deadline), daemon=True)
            t.start()
            self.threads.append(t)

    def _run(self, n: int, deadline: float) -> None:
        record = GOOD_RECORD | {"tool_wear_min": 10 * n}
        with httpx.Client(base_url=self.url, timeout=10) as c:
            while not self.stop.is_set() and time.monotonic() < deadline:
                try:
                    r = c.post("/v1/usecases/failure/predict", json={"records": [record]})
                except httpx.HTTPError as exc:  # the server went away mid-request
                    with self.lock:
                        self.failures.append(type(exc).__name__)
                    return
                if r.status_code == 200:
                    pid = r.json()["predictions"][0]["prediction_id"]
                    with self.lock:
                        self.acked.append(pid)
                else:
                    with self.lock:
                        self.failures.append(f"{r.status_code}: {r.text[:200]}")
                    if r.status_code != 503:
                        return

    def join(self) -> None:
        for t in self.threads:
            t.join(timeout=LOAD_S + 15)
            assert not t.is_alive(), "a client thread hung"


def _missing_from_store(root: Path, ids: list[str]) -> list[str]:
    ws = Workspace.open(root)
    log = PredictionLog(ws.store)
    try:
        found = log.get_many(ids)
        return [pid for pid in ids if pid not in found]
    finally:
        log.close()
        ws.close()


def _under_load(server: Server, act: Callable[[], None]) -> Load:
    load = Load(server.url)
    load.start()
    eventually = time.monotonic() + STOP_AFTER_S
    while time.monotonic() < eventually:
        time.sleep(0.05)
    in_flight = len(load.acked)
    act()
    load.stop.set()
    load.join()
    assert in_flight > 0, f"no answer before the stop: {load.failures[:5]}"
    return load


@pytest.fixture(scope="module")
def root(served_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One project copy for the module: the SIGTERM test restarts on the killed store."""
    target = tmp_path_factory.mktemp("durable") / "plant"
    shutil.copytree(served_project, target)
    return target


# Ids acknowledged before the SIGKILL, for the restarted server to find.
KILLED: list[str] = []


def test_sigkill_mid_load_loses_no_acknowledged_prediction(
        root: Path, start_server: Callable[..., Server]) -> None:
    server = start_server(root)

    def kill() -> None:
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)

    load = _under_load(server, kill)
    assert server.process.returncode == -signal.SIGKILL
    assert len(load.acked) >= 20, (len(load.acked), load.failures[:5])
    assert len(set(load.acked)) == len(load.acked)
    missing = _missing_from_store(root, load.acked)
    assert not missing, f"{len(missing)} of {len(load.acked)} acknowledged ids lost: " \
                        f"{missing[:5]}"
    KILLED[:] = load.acked


def test_sigterm_drains_and_exits_cleanly(root: Path,
                                          start_server: Callable[..., Server]) -> None:
    server = start_server(root)  # after the SIGKILL above: a restart on the same store
    with server.client() as c:
        for pid in KILLED[:: max(1, len(KILLED) // 10)]:
            r = c.get(f"/v1/predictions/{pid}")
            assert r.status_code == 200, r.text
    load = _under_load(server, lambda: server.process.send_signal(signal.SIGTERM))
    assert server.process.wait(timeout=30) == 0, server.log()[-3000:]
    assert len(load.acked) >= 20, (len(load.acked), load.failures[:5])
    missing = _missing_from_store(root, load.acked + KILLED)
    assert not missing, f"{len(missing)} of {len(load.acked)} acknowledged ids lost"
    log = server.log()
    assert "Traceback" not in log, log[-3000:]
    assert "Application shutdown complete" in log
