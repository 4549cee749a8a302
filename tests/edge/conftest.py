"""Fixtures for the edge tests: a real Mosquitto broker, a real hub (`planta serve`), and edge
runtimes in their own processes, all on free 127.0.0.1 ports, all stopped at the end."""

from __future__ import annotations

import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))

MOSQUITTO = "/usr/sbin/mosquitto"
PLANTA = shutil.which("planta") or str(Path(sys.executable).with_name("planta"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(check: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


@dataclass
class Broker:
    """A Mosquitto broker with persistence, restartable on the same port."""

    conf: Path
    port: int
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        log = (self.conf.parent / "mosquitto.log").open("ab")
        self.process = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)],
                                        stdout=log, stderr=subprocess.STDOUT)

        def listening() -> bool:
            assert self.process is not None
            assert self.process.poll() is None, (self.conf.parent / "mosquitto.log").read_text()
            return _port_open(self.port)

        wait_for(listening, 10, "mosquitto to listen")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)
            self.process.wait(timeout=10)
        self.process = None


def write_mosquitto_conf(folder: Path, port: int, extra: str = "") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence true\n"
        f"persistence_location {folder}/\n"
        "max_inflight_messages 1000\n"
        "max_queued_messages 1000000\n"
        "log_type error\n"
        # As root, mosquitto drops to the "mosquitto" user, who cannot read pytest's private
        # temporary folders (password file, persistence): stay the user the tests run as.
        + (f"user {pwd.getpwuid(os.geteuid()).pw_name}\n" if os.geteuid() == 0 else "")
        + extra)
    return conf


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    """A running Mosquitto on a free loopback port (persistence on, as in production)."""
    if not os.path.exists(MOSQUITTO):
        pytest.skip("mosquitto is not installed (apt-get install mosquitto)")
    port = free_port()
    b = Broker(write_mosquitto_conf(tmp_path / "mosquitto", port), port)
    b.start()
    yield b
    b.stop()


@dataclass
class Hub:
    """A `planta serve` process on a project with use case 'failure' (no model needed to
    receive device traffic)."""

    root: Path
    port: int
    process: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def enrol(self, name: str, group: str | None = None) -> str:
        r = httpx.post(f"{self.url}/v1/devices", json={"name": name, "usecase": "failure",
                                                       "group": group}, timeout=30)
        assert r.status_code == 201, r.text
        return str(r.json()["token"])

    def device(self, name: str) -> dict[str, object]:
        r = httpx.get(f"{self.url}/v1/devices/{name}", timeout=30)
        assert r.status_code == 200, r.text
        return dict(r.json())

    def logged_ids(self, device: str) -> list[str]:
        """The device's prediction ids in the hub's log, in the order they were inserted."""
        import sqlite3

        db = sqlite3.connect(self.root / ".planta" / "planta.db", timeout=30)
        try:
            rows = db.execute("SELECT id FROM predictions WHERE device = ? ORDER BY rowid",
                              (device,)).fetchall()
        finally:
            db.close()
        return [r[0] for r in rows]


def planta(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([PLANTA, *args], cwd=cwd, capture_output=True, text=True,
                            timeout=120, env=os.environ | {"PLANTA_USER": "ana"})
    assert result.returncode == 0, f"planta {args}: {result.stdout}\n{result.stderr}"
    return result


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


@dataclass
class EdgeProcess:
    """An edge runtime in its own process (``edge_child.py``)."""

    config: Path
    fake: bool
    http_port: int | None
    process: subprocess.Popen[str] | None = None

    def start(self) -> None:
        args = [sys.executable, str(HERE / "edge_child.py"), str(self.config)]
        if self.fake:
            args.append("fake")
        log = (self.config.parent / "edge.log").open("a")
        self.process = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=log, text=True)
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        assert line.strip() == "READY", (self.config.parent / "edge.log").read_text()

    def kill(self) -> None:
        """kill -9: no clean-up at all."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def predict(self, records: list[dict[str, object]], entity: str | None = None) -> list[str]:
        """POST readings to the runtime's HTTP input; the committed prediction ids."""
        r = httpx.post(f"http://127.0.0.1:{self.http_port}/predict",
                       json={"records": records, "entity": entity}, timeout=30)
        assert r.status_code == 200, r.text
        return [p["prediction_id"] for p in r.json()["predictions"] if p["prediction_id"]]


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


@dataclass(frozen=True)
class EdgeBundle:
    """A signed edge bundle on disk (H5's export of a small LightGBM model) and its key."""

    path: Path
    public_key: str

    def records(self, start: int, n: int) -> list[dict[str, object]]:
        """``n`` readings its contract accepts, different for each ``start``."""
        from exportkit import readings, records

        values = readings(start + n, seed=7)
        return records(values, range(start, start + n))


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
