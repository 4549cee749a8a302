"""The hub's side of edge devices, in process (TestClient) on a real SQLite project:
enrolment and revocation, idempotent batches into the prediction log (channel edge), heartbeats
answering the approved bundle (production, or a group's pin), bundle download with Range,
device events in the audit trail, the `planta devices` and `planta simulate` commands."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from edgefakes import FakeModel, reading
from starlette.testclient import TestClient
from typer.testing import CliRunner

from planta.cli.app import app as cli
from planta.core.spec import Task, UseCase, parse_objective
from planta.project import Project
from planta.server.app import create_app
from planta.server.runtime import ServeOptions
from planta.services.devices import DeviceService
from planta.services.workspace import Workspace
from planta.store.devices import DeviceStore
from planta.store.predictions import PredictionLog
from planta.store.tokens import TokenStore
from planta_edge.outbox import Outbox
from planta_edge.runtime import EdgeRuntime
from planta_edge.sync import batch_body

BUNDLE = bytes(range(256)) * 40      # stands in for an edge bundle's bytes (10,240 bytes)


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "plant"
    p = Project.init(root)
    p.add_usecase(UseCase("failure", Task.BINARY, "Machine failure",
                          parse_objective("recall>=0.5", Task.BINARY)))
    return root


def _client(project: Path, **options: Any) -> tuple[TestClient, Workspace, dict[str, Any]]:
    ws = Workspace.open(project)
    guard = create_app(ws, ServeOptions(worker=False, **options))
    digest = ws.artifacts.put_bytes(BUNDLE)
    offered: dict[str, Any] = {"found": None}
    store = DeviceStore(ws.store, ws.audit, guard.fastapi.state.runtime.tokens)
    guard.fastapi.state.devices = DeviceService(
        ws, store, finder=lambda _ws, u, v: offered["found"])
    offered["digest"] = digest
    return TestClient(guard, base_url="http://127.0.0.1"), ws, offered


@pytest.fixture
def hub(project: Path) -> Iterator[tuple[TestClient, Workspace, dict[str, Any]]]:
    client, ws, offered = _client(project)
    yield client, ws, offered
    ws.close()


def _enrol(client: TestClient, name: str, group: str | None = None) -> dict[str, str]:
    r = client.post("/v1/devices", json={"name": name, "usecase": "failure", "group": group})
    assert r.status_code == 201, r.text
    return {"authorization": f"Bearer {r.json()['token']}"}


def _batch(tmp_path: Path, n: int) -> tuple[bytes, list[str]]:
    box = Outbox(tmp_path / f"box-{n}.db")
    rt = EdgeRuntime(FakeModel(), box)
    rt.predict([reading(i) for i in range(n)], ["m1"] * n)
    rows = box.peek(n)
    rt.close()
    box.close()
    return batch_body(rows), [r.prediction_id for r in rows]


def test_enrol_list_and_refuse_a_second_enrolment(hub) -> None:
    client, _, _ = hub
    _enrol(client, "press-07", "line-2")
    again = client.post("/v1/devices", json={"name": "press-07", "usecase": "failure"})
    assert again.status_code == 400 and "already enrolled" in again.json()["error"]["message"]
    bad = client.post("/v1/devices", json={"name": "../etc", "usecase": "failure"})
    assert bad.status_code == 400
    unknown = client.post("/v1/devices", json={"name": "p8", "usecase": "nope"})
    assert unknown.status_code == 400
    listed = client.get("/v1/devices").json()["devices"]
    assert [(d["name"], d["group"], d["active"]) for d in listed] == [
        ("press-07", "line-2", True)]


def test_batches_land_in_the_prediction_log_once(hub, tmp_path: Path) -> None:
    client, ws, _ = hub
    auth = _enrol(client, "press-07")
    body, ids = _batch(tmp_path, 30)
    first = client.post("/v1/edge/predictions", content=body,
                        headers=auth | {"content-type": "application/json"})
    again = client.post("/v1/edge/predictions", content=body,
                        headers=auth | {"content-type": "application/json"})
    assert first.json()["accepted"] == 30 and first.json()["duplicates"] == 0
    assert again.json()["accepted"] == 0 and again.json()["duplicates"] == 30
    records = PredictionLog(ws.store).query("failure", limit=100)
    assert sorted(r.prediction_id for r in records) == ids
    assert {(r.channel, r.device, r.entity, r.version) for r in records} == {
        ("edge", "press-07", "m1", 1)}
    assert records[-1].inputs == reading(0)
    assert client.get("/v1/devices/press-07").json()["received"] == 30


def test_device_calls_need_an_active_device_token(hub, tmp_path: Path) -> None:
    client, ws, _ = hub
    auth = _enrol(client, "press-07")
    body, _ = _batch(tmp_path, 2)
    headers = {"content-type": "application/json"}
    assert client.post("/v1/edge/predictions", content=body, headers=headers).status_code == 401
    tokens = TokenStore(ws.store, ws.audit)
    _, person = tokens.create("ana", "operator", actor="admin")
    as_person = headers | {"authorization": f"Bearer {person}"}
    assert client.post("/v1/edge/predictions", content=body,
                       headers=as_person).status_code == 401
    assert client.post("/v1/devices/press-07/revoke").json()["revoked"] is True
    assert client.post("/v1/edge/predictions", content=body,
                       headers=auth | headers).status_code == 401


def test_a_batch_for_another_usecase_or_malformed_is_refused(hub) -> None:
    client, _, _ = hub
    auth = _enrol(client, "press-07") | {"content-type": "application/json"}
    good = {"prediction_id": "01JD0000000000000000000000", "at": "2026-11-23T10:00:00Z",
            "usecase": "failure", "version": 1, "entity": None,
            "record": {"inputs": {"torque_nm": 40}, "prediction": 0, "probability": 0.1}}
    other = dict(good, usecase="quality")
    for doc in ({"predictions": [other]}, {"predictions": [dict(good, at="yesterday")]},
                {"predictions": "no"}, [good]):
        r = client.post("/v1/edge/predictions", content=json.dumps(doc), headers=auth)
        assert r.status_code == 400, r.text


def test_heartbeat_answers_the_pinned_bundle_and_range_downloads(hub) -> None:
    client, ws, offered = hub
    auth = _enrol(client, "press-07", "line-2")
    answer = client.post("/v1/edge/heartbeat", json={"model": None}, headers=auth).json()
    assert answer["bundle"] is None and "production" in answer["reason"]
    assert client.get("/v1/edge/bundle", headers=auth).status_code == 404
    DeviceStore(ws.store, ws.audit, TokenStore(ws.store, ws.audit)).pin(
        "failure", "line-2", 4, actor="ana")
    offered["found"] = (offered["digest"], len(BUNDLE))
    status = {"model": {"usecase": "failure", "version": 3, "digest": "c" * 64},
              "outbox": {"depth": 12, "dropped": 5}}
    answer = client.post("/v1/edge/heartbeat", json=status, headers=auth).json()
    assert answer["bundle"] == {"usecase": "failure", "version": 4, "pinned": True,
                                "digest": offered["digest"], "size": len(BUNDLE),
                                "url": "/v1/edge/bundle"}
    device = client.get("/v1/devices/press-07").json()
    assert (device["model_version"], device["outbox_depth"], device["outbox_dropped"]) == (
        3, 12, 5)
    whole = client.get("/v1/edge/bundle", headers=auth)
    assert whole.content == BUNDLE and whole.headers["x-planta-sha256"] == offered["digest"]
    assert hashlib.sha256(whole.content).hexdigest() == offered["digest"]
    part = client.get("/v1/edge/bundle", headers=auth | {
        "range": "bytes=1000-", "if-range": f'"{offered["digest"]}"'})
    assert part.status_code == 206 and part.content == BUNDLE[1000:]
    assert part.headers["content-range"] == f"bytes 1000-{len(BUNDLE) - 1}/{len(BUNDLE)}"
    stale = client.get("/v1/edge/bundle", headers=auth | {"range": "bytes=1000-",
                                                           "if-range": '"other"'})
    assert stale.status_code == 200 and stale.content == BUNDLE
    beyond = client.get("/v1/edge/bundle", headers=auth | {"range": f"bytes={len(BUNDLE)}-"})
    assert beyond.status_code == 416


def test_device_events_are_audited(hub) -> None:
    client, ws, _ = hub
    auth = _enrol(client, "press-07")
    r = client.post("/v1/edge/events", headers=auth, json={
        "event": "update_rolled_back", "detail": {"failed_version": 5, "version": 4}})
    assert r.status_code == 200
    events = ws.audit.events(limit=None, action="device_update_rolled_back")
    assert events[-1].subject == "device/press-07"
    assert events[-1].payload["failed_version"] == 5
    assert client.post("/v1/edge/events", headers=auth,
                       json={"event": "delete_everything"}).status_code == 400
    assert ws.audit.verify().ok


def test_with_tokens_on_only_an_admin_enrols(project: Path, tmp_path: Path) -> None:
    client, ws, _ = _client(project, require_auth=True)
    try:
        tokens = TokenStore(ws.store, ws.audit)
        _, admin = tokens.create("root", "admin", actor="setup")
        _, viewer = tokens.create("vera", "viewer", actor="setup")
        enrol = {"name": "press-07", "usecase": "failure"}
        assert client.post("/v1/devices", json=enrol, headers={
            "authorization": f"Bearer {viewer}"}).status_code == 403
        r = client.post("/v1/devices", json=enrol, headers={"authorization": f"Bearer {admin}"})
        assert r.status_code == 201
        device = {"authorization": f"Bearer {r.json()['token']}",
                  "content-type": "application/json"}
        body, _ = _batch(tmp_path, 3)
        assert client.post("/v1/edge/predictions", content=body,
                           headers=device).json()["accepted"] == 3
        assert client.post("/v1/devices", json=dict(enrol, name="p9"),
                           headers=device).status_code == 403
    finally:
        ws.close()


def test_cli_enrol_list_pin_revoke(project: Path, monkeypatch) -> None:
    monkeypatch.chdir(project)
    monkeypatch.setenv("PLANTA_USER", "ana")
    runner = CliRunner()
    out = runner.invoke(cli, ["devices", "enrol", "press-07", "--usecase", "failure",
                              "--group", "line-2", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.output)["token"].startswith("planta_")
    listed = json.loads(runner.invoke(cli, ["devices", "list", "--json"]).output)
    assert [d["name"] for d in listed["devices"]] == ["press-07"]
    text = runner.invoke(cli, ["devices", "list"]).output
    assert "Devices" in text and "never" in text
    missing = runner.invoke(cli, ["devices", "pin", "--usecase", "failure", "--group",
                                  "line-2", "--version", "9"])
    assert missing.exit_code == 1
    assert runner.invoke(cli, ["devices", "revoke", "press-07"]).exit_code == 0
    again = runner.invoke(cli, ["devices", "revoke", "press-07", "--json"])
    assert json.loads(again.output)["revoked"] is False
    assert runner.invoke(cli, ["devices", "revoke", "nobody"]).exit_code == 1
    assert os.environ["PLANTA_USER"] == "ana"


def test_simulate_publishes_readings_with_faults(mosquitto) -> None:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    got: list[bytes] = []
    sub = paho.Client(CallbackAPIVersion.VERSION2, client_id="watch")
    sub.on_message = lambda c, u, m: got.append(m.payload)
    sub.connect("127.0.0.1", mosquitto.port)
    sub.subscribe("plant/+/readings", qos=1)
    sub.loop_start()
    try:
        out = CliRunner().invoke(cli, ["simulate", "--port", str(mosquitto.port), "--count",
                                       "200", "--rate", "0", "--faults", "0.2", "--seed", "3",
                                       "--drift", "20", "--json"])
        assert out.exit_code == 0, out.output
        report = json.loads(out.output)
        from mqtt_broker import wait_for

        wait_for(lambda: len(got) == 200, 10, "200 readings")
    finally:
        sub.loop_stop()
    assert report["sent"] == 200 and 10 < sum(report["faults"].values()) < 70
    parsed = []
    for payload in got:
        try:
            parsed.append(json.loads(payload))
        except ValueError:
            continue
    assert len(parsed) == 200 - report["faults"].get("not_json", 0)
    torque = [p["torque_nm"] for p in parsed if isinstance(p.get("torque_nm"), float)]
    # Drift 20: +4 standard deviations of torque over 200 readings.
    assert sum(torque[-40:]) / 40 > sum(torque[:40]) / 40 + 20


def test_devices_page_shows_state_and_speaks_spanish(hub, tmp_path: Path) -> None:
    client, _, _ = hub
    auth = _enrol(client, "press-07", "line-2")
    _enrol(client, "press-08")
    client.post("/v1/devices/press-08/revoke")
    client.post("/v1/edge/heartbeat", headers=auth, json={
        "model": {"usecase": "failure", "version": 3, "digest": "c" * 64},
        "outbox": {"depth": 17, "dropped": 4}})
    body, _ = _batch(tmp_path, 5)
    client.post("/v1/edge/predictions", content=body,
                headers=auth | {"content-type": "application/json"})
    page = client.get("/ui/devices")
    assert page.status_code == 200
    html = page.text
    row = html[html.index('id="device-press-07"'):html.index('id="device-press-08"')]
    assert "line-2" in row and "v3" in row and "17" in row and "4 dropped" in row
    assert ">5<" in row.replace(" ", "")                    # predictions received
    assert "has no model version 3" in row     # no reference to compare with: said in words
    assert "revoked" in html[html.index('id="device-press-08"'):]
    assert 'href="/ui/devices"' in client.get("/ui").text  # in the navigation bar
    spanish = client.get("/ui/devices?lang=es").text
    assert "Dispositivos de borde" in spanish and "descartadas" in spanish
