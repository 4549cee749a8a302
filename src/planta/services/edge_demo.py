"""`planta demo --edge`: a whole plant on one machine, with an outage and the catch-up.

    demo project (model in production) ─► signing key ─► planta export --onnx ─► enrol press-07
    Mosquitto ◄── planta simulate (readings) ──► planta-edge (press-07) ──► planta serve (hub)
      1. readings flow: the device predicts, its outbox empties into the hub
      2. the hub goes down: the device keeps predicting, its outbox fills
      3. the hub comes back: the device catches up; the hub holds every prediction once

Every part is a real process on 127.0.0.1 (broker, hub, device); the files stay in the demo
folder (``edge/edge.toml``, the device's state) so the commands can be run again by hand.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess  # nosec B404 - starts the demo's own broker, hub and device
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from planta.errors import ConfigError

MOSQUITTO = ("/usr/sbin/mosquitto", "mosquitto")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _tool(name: str) -> str:
    found = shutil.which(name) or str(Path(sys.executable).with_name(name))
    if not Path(found).exists():
        raise ConfigError(f"The demo needs the `{name}` command, which is not installed.",
                          hint="Install planta and planta-edge in this environment "
                               "(pip install ./edge .).")
    return found


def _get(url: str) -> dict[str, Any] | None:
    import httpx

    try:
        r = httpx.get(url, timeout=2)
    except httpx.HTTPError:
        return None
    return dict(r.json()) if r.status_code == 200 else None


def _wait(check: Callable[[], bool], timeout: float) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return True
        time.sleep(0.2)
    return False


@dataclass
class EdgeDemo:
    """What the edge demo measured."""

    predicted: int
    received: int
    outbox_peak: int
    outage_s: float
    folder: Path

    def to_dict(self) -> dict[str, Any]:
        return {"predicted": self.predicted, "received": self.received,
                "outbox_peak": self.outbox_peak, "outage_s": self.outage_s,
                "folder": str(self.folder)}


def run_edge_demo(project: Path, *, say: Callable[[str], None], rate: float = 40.0,
                  phase_s: float = 6.0) -> EdgeDemo:
    """Run the three phases against the demo project at ``project`` (see the module map)."""
    from planta.services.export import export_edge
    from planta.services.simulate import Simulator
    from planta.services.workspace import Workspace
    from planta.store.devices import DeviceStore
    from planta.store.keys import KeyRing
    from planta.store.tokens import TokenStore
    from planta_edge.config import MqttConfig
    from planta_edge.mqtt import make_client

    mosquitto = next((m for m in MOSQUITTO if shutil.which(m) or Path(m).exists()), None)
    if mosquitto is None:
        raise ConfigError("The edge demo needs the Mosquitto MQTT broker.",
                          hint="Install it: apt-get install mosquitto (or brew install "
                               "mosquitto).")
    planta, planta_edge = _tool("planta"), _tool("planta-edge")
    folder = project / "edge"
    folder.mkdir(exist_ok=True)
    # The signing key lives outside the project folder, as in production.
    keys = KeyRing(project.parent / f"{project.name}-signing")
    ws = Workspace.open(project)
    try:
        signer = keys.signer()
        if signer is None:
            keys.create()
            signer = keys.require_signer()
        exported = export_edge(ws, "failure", "production", signer=signer)
        store = DeviceStore(ws.store, ws.audit, TokenStore(ws.store, ws.audit))
        _, token = store.enrol("press-07", "failure", group="line-1", actor=ws.actor)
    finally:
        ws.close()
    say(f"Exported version {exported.version} for devices ({exported.edge_size / 1024:.0f} "
        f"KiB, signed by key {signer.key_id}) and enrolled device press-07.")

    broker_port, hub_port, http_port = _free_port(), _free_port(), _free_port()
    (folder / "mosquitto.conf").write_text(
        f"listener {broker_port} 127.0.0.1\nallow_anonymous true\npersistence false\n"
        "max_inflight_messages 1000\nlog_type error\n"
        + ("user root\n" if hasattr(os, "geteuid") and os.geteuid() == 0 else ""))
    (folder / "edge.toml").write_text(
        'device = "press-07"\nstate_dir = "state"\n'
        f'trusted_keys = ["{signer.public_key.text}"]\n'
        f'[hub]\nurl = "http://127.0.0.1:{hub_port}"\ntoken = "{token}"\n'
        "heartbeat_s = 1\nmax_backoff_s = 2\n"
        f'[mqtt]\nport = {broker_port}\noutput_topic = "planta/press-07/predictions"\n'
        '[[mqtt.inputs]]\ntopic = "plant/+/readings"\nentity = "{1}"\n'
        f'[http]\nport = {http_port}\n')
    procs: list[subprocess.Popen[bytes]] = []
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)

    def start(name: str, args: list[str], cwd: Path) -> subprocess.Popen[bytes]:
        out = (logs / f"{name}.log").open("ab")
        # nosec B603: fixed argument lists naming planta's own commands and mosquitto
        p = subprocess.Popen(args, cwd=cwd, stdout=out, stderr=subprocess.STDOUT)  # nosec B603
        procs.append(p)
        return p

    def hub_up() -> subprocess.Popen[bytes]:
        p = start("hub", [planta, "serve", "--port", str(hub_port), "--no-worker"], project)
        if not _wait(lambda: _get(f"http://127.0.0.1:{hub_port}/healthz") is not None, 60):
            raise ConfigError(f"The hub did not start; see {logs / 'hub.log'}.")
        return p

    device_url = f"http://127.0.0.1:{http_port}/status"
    try:
        start("broker", [mosquitto, "-c", str(folder / "mosquitto.conf")], folder)
        hub = hub_up()
        start("device", [planta_edge, "run", "-c", "edge.toml"], folder)
        # The device starts with no model: it gets the approved bundle at its first heartbeat.
        if not _wait(lambda: ((_get(device_url) or {}).get("model") or {}).get("version")
                     is not None, 60):
            raise ConfigError(f"The device did not load its model; see {logs / 'device.log'}.")
        say(f"Hub on :{hub_port}, broker on :{broker_port}, device press-07 running version "
            f"{exported.version} (downloaded, verified and loaded over the air).")
        client = make_client(MqttConfig(port=broker_port), "planta-demo-simulator",
                             clean=True)
        client.connect("127.0.0.1", broker_port)
        client.loop_start()
        sim = Simulator(machines=3, faults=0.02, seed=7)
        sim.run(client, rate=rate, duration_s=phase_s)
        status = _get(device_url) or {}
        say(f"1. Readings flow: the device predicted {status['runtime']['predicted']:,} "
            f"(refused {status['runtime']['refused']} broken readings), "
            f"{status['outbox']['depth']} waiting for the hub.")
        hub.send_signal(signal.SIGTERM)
        hub.wait(timeout=30)
        down = time.monotonic()
        sim.run(client, rate=rate, duration_s=phase_s)
        status = _get(device_url) or {}
        peak = int(status["outbox"]["depth"])
        say(f"2. The hub is down: the device keeps predicting "
            f"({status['runtime']['predicted']:,} so far); {peak:,} predictions wait in its "
            "outbox on disk.")
        hub = hub_up()
        outage = time.monotonic() - down
        _wait(lambda: (_get(device_url) or {}).get("outbox", {}).get("depth") == 0, 60)
        client.disconnect()
        client.loop_stop()
        status = _get(device_url) or {}
        device = _get(f"http://127.0.0.1:{hub_port}/v1/devices/press-07") or {}
        predicted, received = status["runtime"]["predicted"], device.get("received", 0)
        say(f"3. The hub is back after {outage:.0f} s: the device caught up; the hub holds "
            f"{received:,} of its {predicted:,} predictions, each once "
            "(`planta devices list`, or /ui/devices).")
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    p.kill()
    return EdgeDemo(predicted, received, peak, round(outage, 1), folder)


__all__ = ["EdgeDemo", "run_edge_demo"]
