"""The edge runtime with a real signed edge bundle: the local HTTP door, the watched folder, the
local log, refusals by the contract, and the installed `planta-edge` command in a process."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from edgeprocs import EdgeBundle
from mqtt_broker import free_port, wait_for

from planta_edge.cli import EdgeApp
from planta_edge.config import EdgeConfig
from planta_edge.errors import ConfigError
from planta_edge.outbox import Outbox
from planta_edge.runtime import EdgeRuntime
from planta_edge.updates import load_model

PLANTA_EDGE = shutil.which("planta-edge") or str(Path(sys.executable).with_name("planta-edge"))


def _toml(bundle: EdgeBundle, http_port: int, extra: str = "") -> str:
    return (f'device = "press-07"\nstate_dir = "state"\nbundle = "{bundle.path}"\n'
            f'trusted_keys = ["{bundle.public_key}"]\n'
            f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n' + extra)


@pytest.fixture
def app(edge_bundle: EdgeBundle, tmp_path: Path):
    (tmp_path / "edge.toml").write_text(
        _toml(edge_bundle, free_port(), '[folder]\npath = "inbox"\npoll_s = 0.05\n'))
    a = EdgeApp(EdgeConfig.load(tmp_path / "edge.toml"))
    a.start()
    yield a
    a.stop()


def test_http_door_answers_after_the_commit(app: EdgeApp, edge_bundle: EdgeBundle) -> None:
    url = f"http://127.0.0.1:{app.http.port}"
    good = edge_bundle.records(0, 3)
    bad = dict(good[0], torque_nm=-50.0)
    r = httpx.post(f"{url}/predict", json={"records": [*good, bad], "entity": "m7"})
    assert r.status_code == 200
    out = r.json()["predictions"]
    assert all(p["prediction_id"] and p["model_version"] == 1 for p in out[:3])
    assert out[3]["prediction_id"] is None and "torque_nm" in out[3]["reason"]
    assert {p["prediction"] for p in out[:3]} <= {"ok", "failure"}
    rows = app.outbox.peek(10)
    assert [r.prediction_id for r in rows] == [p["prediction_id"] for p in out[:3]]
    assert {r.entity for r in rows} == {"m7"}
    status = httpx.get(f"{url}/status").json()
    assert status["outbox"]["depth"] == 3
    assert status["runtime"]["refused_by_rule"] == {"below_min": 1}
    assert status["model"]["version"] == 1
    assert httpx.get(f"{url}/healthz").status_code == 200
    assert httpx.post(f"{url}/predict", content=b"nope").status_code == 400
    log = (app.cfg.state_dir / "predictions.jsonl").read_text().splitlines()
    assert len(log) == 4 and json.loads(log[3])["reason"]


def test_watched_folder_scores_a_file_then_moves_it(app: EdgeApp,
                                                    edge_bundle: EdgeBundle) -> None:
    records = edge_bundle.records(10, 25)
    lines = [",".join(records[0])] + [
        ",".join("" if v is None else str(v) for v in r.values()) for r in records]
    inbox = app.cfg.folder
    assert inbox is not None
    (inbox / "shift-1.csv").write_text("\n".join(lines) + "\n")
    (inbox / "broken.csv").write_bytes(b"\xff\xfe\x00garbage")
    wait_for(lambda: (inbox / "done" / "shift-1.csv").exists(), 20, "the file to be scored")
    scored = (inbox / "done" / "shift-1.predictions.csv").read_text().splitlines()
    assert len(scored) == 26 and scored[0].startswith("row,prediction_id")
    assert app.outbox.stats().depth == 25
    wait_for(lambda: (inbox / "failed" / "broken.csv").exists(), 20, "the bad file")
    assert "not a readable CSV" in (inbox / "failed" / "broken.csv.reason.txt").read_text()


def test_installed_command_runs_predicts_and_stops(edge_bundle: EdgeBundle,
                                                   tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "edge.toml").write_text(_toml(edge_bundle, port))
    proc = subprocess.Popen([PLANTA_EDGE, "run", "--config", "edge.toml"], cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        def up() -> bool:
            assert proc.poll() is None
            try:
                return httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
            except httpx.HTTPError:
                return False

        wait_for(up, 30, "planta-edge to answer")
        r = httpx.post(f"http://127.0.0.1:{port}/predict",
                       json=edge_bundle.records(0, 2))
        assert r.status_code == 200 and len(r.json()["predictions"]) == 2
    finally:
        proc.send_signal(signal.SIGTERM)
        output, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, output
    status = subprocess.run([PLANTA_EDGE, "status", "-c", "edge.toml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60)
    assert json.loads(status.stdout)["outbox"]["depth"] == 2


def test_untrusted_bundle_stops_the_start_in_one_line(edge_bundle: EdgeBundle,
                                                      tmp_path: Path) -> None:
    from planta.core.signing import Signer

    other = Signer.generate().public_key.text
    (tmp_path / "edge.toml").write_text(
        _toml(edge_bundle, free_port()).replace(edge_bundle.public_key, other))
    result = subprocess.run([PLANTA_EDGE, "run", "-c", "edge.toml"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=60,
                            env=os.environ | {"PYTHONWARNINGS": "ignore"})
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("planta-edge:") and "key" in lines[0]


def test_config_errors_name_the_key(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="device"):
        EdgeConfig.from_dict({})
    with pytest.raises(ConfigError, match="mqtt.port"):
        EdgeConfig.from_dict({"device": "d", "mqtt": {"port": "1883"}})
    cfg = EdgeConfig.from_dict({"device": "d", "mqtt": {"inputs": [
        {"topic": "plant/+/readings", "entity": "{1}"}]}, "outbox": {"max_mb": 1}})
    assert cfg.mqtt is not None and cfg.mqtt.inputs[0].entity_of("plant/p7/readings") == "p7"
    assert cfg.outbox_max_bytes == 1024 * 1024


def test_model_swap_between_batches(edge_bundle: EdgeBundle, tmp_path: Path) -> None:
    first = load_model(edge_bundle.path, [edge_bundle.public_key])
    second = load_model(edge_bundle.path.read_bytes(), [edge_bundle.public_key])
    second.version = 2
    box = Outbox(tmp_path / "o.db")
    rt = EdgeRuntime(first, box)
    try:
        assert rt.predict(edge_bundle.records(0, 2))[0].version == 1
        assert rt.swap(second) is first
        assert rt.predict(edge_bundle.records(2, 2))[0].version == 2
    finally:
        rt.close()
        box.close()


def test_a_device_without_a_model_says_so(tmp_path: Path) -> None:
    port = free_port()
    (tmp_path / "edge.toml").write_text(
        f'device = "press-07"\n[http]\nhost = "127.0.0.1"\nport = {port}\n')
    a = EdgeApp(EdgeConfig.load(tmp_path / "edge.toml"))
    a.start()
    try:
        url = f"http://127.0.0.1:{port}"
        assert httpx.get(f"{url}/healthz").status_code == 503
        r = httpx.post(f"{url}/predict", json={"records": [{"torque_nm": 40}]})
        assert r.status_code == 503 and "No model" in r.json()["error"]
        assert httpx.get(f"{url}/status").json()["model"] is None
    finally:
        a.stop()
