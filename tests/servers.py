"""Fixtures and helpers for tests that need a trained project and `planta serve` running in a
real process (a plugin of tests/conftest.py, so every folder has them; test files import the
helpers with ``from servers import ...``).

``served_project`` trains one small model (seconds) per test session and promotes it; tests
that change the project (promote, upload) copy it first with ``project_copy``. ``server``
starts ``planta serve`` as a subprocess on a free loopback port and stops it afterwards
(SIGTERM, then SIGKILL if it hangs); ``start_server`` does the same with any flags.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas as pd
import pytest
from mqtt_broker import free_port

from planta.services.demo import demo_data

PLANTA = shutil.which("planta") or str(Path(sys.executable).with_name("planta"))

# One record the demo model accepts, with canonical field names.
GOOD_RECORD = {"type": "L", "air_temperature_k": 300.1, "process_temperature_k": 310.2,
               "rotational_speed_rpm": 1500, "torque_nm": 40.3, "tool_wear_min": 100, "rnf": 0}


def planta_cli(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([PLANTA, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=300, env=os.environ | {"PLANTA_USER": "trainer"})
    if check and result.returncode not in (0, 3):
        raise AssertionError(f"planta {' '.join(args)} -> {result.returncode}\n"
                             f"{result.stdout}\n{result.stderr}")
    return result


@pytest.fixture(scope="session")
def served_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with use case 'failure': version 1 in production, version 2 a candidate
    (or rejected: tiny budgets), both trained on 3,000 AI4I rows."""
    root = tmp_path_factory.mktemp("served") / "plant"
    planta_cli(root.parent, "init", str(root))
    raw = pd.read_csv(demo_data())
    raw.iloc[:3000].to_csv(root / "history.csv", index=False)
    raw.iloc[9000:9300].drop(columns=["Machine failure"]).to_csv(root / "new.csv", index=False)
    planta_cli(root, "usecase", "add", "failure", "--target", "Machine failure", "--task",
            "binary", "--objective", "recall>=0.10 and precision>=0.10")
    planta_cli(root, "ingest", "failure", "history.csv")
    planta_cli(root, "train", "failure", "--budget", "4")
    planta_cli(root, "train", "failure", "--budget", "3", "--seed", "1")
    first = planta_cli(root, "promote", "failure", "1", "--reason", "first model", check=False)
    if first.returncode != 0:  # the gate rejected it: promote as a recorded exception
        planta_cli(root, "promote", "failure", "1", "--reason", "first model", "--exception")
    return root


@pytest.fixture
def project_copy(served_project: Path, tmp_path: Path) -> Path:
    """A private copy of the served project (projects hold no absolute paths)."""
    target = tmp_path / "plant"
    shutil.copytree(served_project, target)
    return target


@dataclass
class Server:
    """A running `planta serve` process."""

    process: subprocess.Popen[bytes]
    url: str
    root: Path
    log_path: Path

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=30, **kwargs)  # type: ignore[arg-type]

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20) -> int:
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        return int(self.process.returncode)


def launch(root: Path, *args: str, env: dict[str, str] | None = None,
           wait_ready: bool = True, timeout: float = 60) -> Server:
    """Start `planta serve` in ``root`` on a free port and wait until it answers."""
    port = free_port()
    log_path = root / f"serve-{port}.log"
    fh = log_path.open("wb")
    process = subprocess.Popen([PLANTA, "serve", "--port", str(port), *args], cwd=root,
                               stdout=fh, stderr=subprocess.STDOUT,
                               env=os.environ | {"PLANTA_USER": "operator"} | (env or {}))
    server = Server(process, f"http://127.0.0.1:{port}", root, log_path)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            fh.close()
            return server  # exited: the caller checks why (refused to start, ...)
        try:
            r = httpx.get(f"{server.url}/healthz", timeout=1)
            if r.status_code == 200 and (not wait_ready or httpx.get(
                    f"{server.url}/readyz", timeout=2).status_code == 200):
                return server
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    server.stop(signal.SIGKILL)
    raise AssertionError(f"planta serve did not become ready:\n{log_path.read_text()}")


@pytest.fixture
def start_server() -> Iterator[Callable[..., Server]]:
    """Start servers with any flags; every one is stopped at the end of the test."""
    started: list[Server] = []

    def start(root: Path, *args: str, **kwargs: object) -> Server:
        server = launch(root, *args, **kwargs)  # type: ignore[arg-type]
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(scope="module")
def server(served_project: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One shared server (loopback, no tokens) on a copy of the served project, per module.

    Tests using it must not change the project's models; use ``start_server`` and
    ``project_copy`` for that.
    """
    root = tmp_path_factory.mktemp("srv") / "plant"
    shutil.copytree(served_project, root)
    srv = launch(root)
    yield srv
    srv.stop()
