"""The real processes the edge tests drive: a hub (`planta serve`), edge runtimes in their own
processes (``edge_child.py``), and a signed edge bundle on disk. The fixtures that start them
are in this folder's conftest.py; tests import the classes from here by name (``from edgeprocs
import Hub``), never from ``conftest``: every test folder has a module of that name."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import httpx

HERE = Path(__file__).parent
PLANTA = shutil.which("planta") or str(Path(sys.executable).with_name("planta"))


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
