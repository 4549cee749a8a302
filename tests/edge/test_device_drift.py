"""Drift per device against a trained model: a device fed drifting readings (``planta simulate``'s
drift) shows drift in its inputs on the hub, in `planta devices list --drift`, in `planta monitor
--device` and in the service the devices page reads; a calm device beside it does not."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient
from typer.testing import CliRunner

from planta.cli.app import app as cli
from planta.core.spec import UseCase
from planta.project import Project
from planta.server.app import create_app
from planta.server.runtime import ServeOptions
from planta.services.demo import demo_data
from planta.services.devices import DeviceService
from planta.services.ingest import ingest
from planta.services.monitor import monitor
from planta.services.simulate import Simulator
from planta.services.versions import train_version
from planta.services.workspace import Workspace
from planta.store.devices import DeviceStore
from planta_edge.ids import IdGenerator
from planta_edge.outbox import OutboxRow
from planta_edge.runtime import utc_text
from planta_edge.sync import batch_body

READINGS = 1500


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Workspace, TestClient]]:
    """A project with a trained production model and two enrolled devices: press-07 sent calm
    readings, press-08 readings whose torque and process temperature creep up."""
    root = tmp_path_factory.mktemp("drift") / "plant"
    project = Project.init(root, name="plant")
    project.add_usecase(UseCase.from_dict("failure", {
        "task": "binary", "target": "Machine failure", "objective": "recall>=0.5"}))
    ws = Workspace.from_project(project)
    raw = pd.read_csv(demo_data())
    raw.iloc[np.random.default_rng(1).permutation(len(raw))[:3000]].to_csv(
        root / "history.csv", index=False)
    ingest(ws, "failure", root / "history.csv")
    trained = train_version(ws, "failure", budget_s=2.0)
    ws.registry.move("failure", trained.version, "production", action="promote", actor="ana",
                     role="admin", reason="test", exception=trained.state == "rejected")
    guard = create_app(ws, ServeOptions(worker=False))
    guard.fastapi.state.devices = DeviceService(ws, DeviceStore(
        ws.store, ws.audit, guard.fastapi.state.runtime.tokens))
    client = TestClient(guard, base_url="http://127.0.0.1")
    for name, drift in (("press-07", 0.0), ("press-08", 3.0)):
        r = client.post("/v1/devices", json={"name": name, "usecase": "failure"})
        assert r.status_code == 201, r.text
        auth = {"authorization": f"Bearer {r.json()['token']}",
                "content-type": "application/json"}
        sent = client.post("/v1/edge/predictions", headers=auth,
                           content=_batch(Simulator(seed=3, drift=drift), trained.version))
        assert sent.json()["accepted"] == READINGS, sent.text
    yield root, ws, client
    ws.close()


def _batch(sim: Simulator, version: int) -> bytes:
    """What a device sends after predicting ``READINGS`` simulated readings."""
    ids = IdGenerator()
    rows = []
    for i, pid in enumerate(ids.take(READINGS)):
        topic, payload = sim.reading(i)
        body = json.dumps({"inputs": json.loads(payload), "prediction": "0",
                           "probability": 0.01}).encode()
        rows.append(OutboxRow(pid, utc_text(), "failure", version, topic.split("/")[1], body))
    return batch_body(rows)


def test_the_drifting_device_shows_drift_and_the_calm_one_does_not(plant) -> None:
    _root, ws, client = plant
    svc: DeviceService = client.app.fastapi.state.devices  # type: ignore[attr-defined]
    store = svc.devices
    calm, drifting = (svc.drift(store.get(n)) for n in ("press-07", "press-08"))
    assert calm["rows"] == drifting["rows"] == READINGS
    assert {"torque_nm", "process_temperature_k"} <= set(drifting["drifted"])
    assert not {"torque_nm", "process_temperature_k"} & set(calm["drifted"])


def test_planta_monitor_reports_one_device(plant) -> None:
    _root, ws, _client = plant
    by_device: dict[str, Any] = {
        d: {f["name"]: f for f in monitor(ws, "failure", device=d).to_dict()["features"]}
        for d in ("press-07", "press-08")}
    assert by_device["press-08"]["torque_nm"]["drifted"]
    assert not by_device["press-07"]["torque_nm"]["drifted"]
    nobody = monitor(ws, "failure", device="press-99").to_dict()
    assert nobody["rows"] == 0


def test_the_cli_shows_drift_per_device(plant, monkeypatch: pytest.MonkeyPatch) -> None:
    root, _ws, _client = plant
    monkeypatch.chdir(root)
    runner = CliRunner()
    out = runner.invoke(cli, ["monitor", "failure", "--device", "press-08", "--json"])
    assert out.exit_code == 0, out.output
    doc = json.loads(out.output)
    assert doc["rows"] == READINGS
    assert "torque_nm" in [f["name"] for f in doc["features"] if f["drifted"]]
    listed = runner.invoke(cli, ["devices", "list", "--drift", "--json"])
    assert listed.exit_code == 0, listed.output
    drift = {d["name"]: d["drift"] for d in json.loads(listed.output)["devices"]}
    assert "torque_nm" in drift["press-08"]["drifted"]
    assert "torque_nm" not in drift["press-07"]["drifted"]
