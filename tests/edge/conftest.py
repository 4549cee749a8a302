"""Fixtures for the edge tests: a real hub (`planta serve`) and edge runtimes in their own
processes, on free 127.0.0.1 ports, all stopped at the end. The real Mosquitto broker (fixture
``mosquitto``) is shared by every test folder: ``tests/mqtt_broker.py``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from mqtt_broker import free_port, wait_for

sys.path.insert(0, str(Path(__file__).parent))

from edgeprocs import PLANTA, EdgeBundle, EdgeProcess, Hub, planta  # noqa: E402

__all__ = ["EdgeBundle", "EdgeProcess", "Hub", "planta"]


@pytest.fixture(scope="module")
def hub_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A project with use case 'failure', one per test module (tests use their own devices)."""
    from planta.core.spec import Task, UseCase, parse_objective
    from planta.project import Project

    root = tmp_path_factory.mktemp("hub") / "plant"
    Project.init(root).add_usecase(UseCase("failure", Task.BINARY, "Machine failure",
                                           parse_objective("recall>=0.5", Task.BINARY)))
    return root


@pytest.fixture(scope="module")
def hub(hub_project: Path) -> Iterator[Hub]:
    port = free_port()
    log = (hub_project / "serve.log").open("wb")
    process = subprocess.Popen([PLANTA, "serve", "--port", str(port), "--no-worker"],
                               cwd=hub_project, stdout=log, stderr=subprocess.STDOUT,
                               env=os.environ | {"PLANTA_USER": "ana"})
    h = Hub(hub_project, port, process)

    def healthy() -> bool:
        assert process.poll() is None, (hub_project / "serve.log").read_text()
        try:
            return httpx.get(f"{h.url}/healthz", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    wait_for(healthy, 60, "planta serve")
    yield h
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture
def edge_process(tmp_path: Path) -> Iterator[Callable[..., EdgeProcess]]:
    """Write a config and start an edge runtime process; every one is stopped at the end."""
    started: list[EdgeProcess] = []

    def make(toml: str, *, fake: bool = True, http_port: int | None = None,
             folder: str = "device") -> EdgeProcess:
        where = tmp_path / folder
        where.mkdir(exist_ok=True)
        config = where / "edge.toml"
        config.write_text(toml)
        proc = EdgeProcess(config, fake, http_port)
        proc.start()
        started.append(proc)
        return proc

    yield make
    for proc in started:
        proc.stop()


@pytest.fixture(scope="session")
def edge_bundle(tmp_path_factory: pytest.TempPathFactory) -> EdgeBundle:
    pytest.importorskip("onnxruntime", reason="the edge model needs onnxruntime")
    from exportkit import edge_bundle as build
    from exportkit import predictor

    from planta.core.signing import Signer
    from planta.core.spec import Task

    signer = Signer.generate()
    pred, _ = predictor("lightgbm", Task.BINARY, n=600)
    path = tmp_path_factory.mktemp("bundle") / "failure-v1.edge.planta"
    path.write_bytes(build(pred, signer).data)
    return EdgeBundle(path, signer.public_key.text)
