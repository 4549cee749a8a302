"""Readings over a real Mosquitto broker: QoS 1 end to end, a broker restart mid-stream loses
nothing, a publisher's re-sends are dropped, predictions published back, credentials, topic ACLs
and TLS on the broker."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from edgefakes import FakeModel, reading
from mqtt_broker import MOSQUITTO, Broker, free_port, wait_for, write_mosquitto_conf
from paho.mqtt.enums import CallbackAPIVersion

from planta_edge.config import MqttConfig, TopicInput
from planta_edge.mqtt import MqttLink, make_client
from planta_edge.outbox import Outbox
from planta_edge.runtime import EdgeRuntime


def _publisher(port: int, client_id: str = "simulator", **kw: Any) -> paho.Client:
    client = make_client(MqttConfig(port=port, **kw), client_id)
    client.connect("127.0.0.1", port)
    client.loop_start()
    return client


def _entities(box: Outbox) -> list[str]:
    return [r.entity for r in box.peek(1_000_000) if r.entity is not None]


@pytest.fixture
def make_device(mosquitto: Broker, tmp_path: Path):
    """``make_device(**mqtt_config)``: a connected device (FakeModel) on the test's broker."""
    made: list[tuple[MqttLink, EdgeRuntime, Outbox]] = []

    def make(**kw: Any) -> tuple[MqttLink, EdgeRuntime, Outbox]:
        box = Outbox(tmp_path / f"outbox-{len(made)}.db")
        rt = EdgeRuntime(FakeModel(), box)
        cfg = MqttConfig(port=mosquitto.port, client_id=f"edge-press-07-{len(made)}",
                         inputs=(TopicInput("plant/+/readings", "{1}"),),
                         output_topic="planta/press-07/predictions", **kw)
        link = MqttLink(cfg, rt, device="press-07")
        rt.outputs = [link]
        link.start()
        made.append((link, rt, box))
        wait_for(link.connected.is_set, 10, "the device to connect")
        return link, rt, box

    yield make
    for link, rt, box in made:
        link.stop()
        rt.close()
        box.close()


@pytest.fixture
def device(make_device):
    return make_device()


def test_readings_in_predictions_out_acked_after_commit(mosquitto: Broker, device) -> None:
    link, rt, box = device
    got: list[dict[str, Any]] = []
    watcher = _publisher(mosquitto.port, "watcher")
    watcher.on_message = lambda c, u, m: got.append(json.loads(m.payload))
    watcher.subscribe("planta/press-07/predictions", qos=1)
    pub = _publisher(mosquitto.port)
    try:
        wait_for(link.connected.is_set, 5, "connection")
        pub.publish("plant/m1/readings", json.dumps(reading(1)), qos=1).wait_for_publish(5)
        pub.publish("plant/m2/readings", json.dumps({"records": [reading(2), reading(3)]}),
                    qos=1).wait_for_publish(5)
        pub.publish("plant/m3/readings", b"not json", qos=1).wait_for_publish(5)
        pub.publish("plant/m4/readings", json.dumps({"torque_nm": -5.0, "type": "L",
                                                     "air_temperature_k": 300}),
                    qos=1).wait_for_publish(5)
        wait_for(lambda: link.acked == 3 and len(got) == 4, 10, "acks and outputs")
    finally:
        pub.loop_stop()
        watcher.loop_stop()
    assert sorted(_entities(box)) == ["m1", "m2", "m2"]
    assert link.malformed == 1 and rt.stats.refused == 1
    refused = [g for g in got if g["prediction_id"] is None]
    assert refused[0]["entity"] == "m4" and "below" in refused[0]["reason"]


def test_broker_restart_mid_stream_loses_no_qos1_message(mosquitto: Broker, device) -> None:
    link, _rt, box = device
    pub = _publisher(mosquitto.port)
    sent: list[Any] = []
    try:
        for i in range(300):
            sent.append(pub.publish(f"plant/m{i}/readings", json.dumps(reading(i)), qos=1))
        mosquitto.stop()                       # SIGTERM: mosquitto saves its queues and sessions
        for i in range(300, 500):           # published while the broker is away: queued
            sent.append(pub.publish(f"plant/m{i}/readings", json.dumps(reading(i)), qos=1))
        mosquitto.start()
        for i in range(500, 700):
            sent.append(pub.publish(f"plant/m{i}/readings", json.dumps(reading(i)), qos=1))
        wait_for(lambda: {f"m{i}" for i in range(700)} <= set(_entities(box)), 60,
                 "every reading to be predicted")
    finally:
        pub.loop_stop()
    entities = _entities(box)
    assert set(entities) == {f"m{i}" for i in range(700)}
    # Re-sends of stored readings are recognised (same packet id, topic and payload); only a
    # publisher re-sending a reading the broker had already taken can still make a duplicate.
    assert len(entities) - 700 <= 50
    assert link.connects >= 2


def test_a_publishers_resend_is_dropped_within_the_window(mosquitto: Broker, make_device
                                                          ) -> None:
    """A publisher that sends a reading again (new packet, same reading id) gets it acked but
    not predicted twice; readings without an id, or from another entity, are all predicted."""
    link, rt, box = make_device()
    pub = _publisher(mosquitto.port)
    first = dict(reading(1), reading_id="r-1")
    try:
        for topic, payload in [
                ("plant/m1/readings", first),
                ("plant/m1/readings", first),                         # the re-send
                ("plant/m2/readings", first),                         # same id, other machine
                ("plant/m1/readings", {"records": [first, dict(reading(2), reading_id="r-2")]}),
                ("plant/m1/readings", reading(3)),                    # no id: never a repeat
                ("plant/m1/readings", reading(3))]:
            pub.publish(topic, json.dumps(payload), qos=1).wait_for_publish(5)
        wait_for(lambda: link.acked == 5 and link.duplicates == 2, 10,
                 "every message acknowledged")
    finally:
        pub.loop_stop()
    wait_for(lambda: len(box.peek(100)) == 5, 10, "the predictions")
    rows = box.peek(100)
    assert [r.entity for r in rows] == ["m1", "m2", "m1", "m1", "m1"]
    assert link.duplicates == 2 and rt.stats.refused == 0     # the id never reached the model
    assert all("reading_id" not in json.loads(r.body)["inputs"] for r in rows)
    assert link.stats()["duplicates"] == 2


def test_the_duplicate_check_is_bounded_and_can_be_turned_off(mosquitto: Broker, make_device
                                                              ) -> None:
    """With a window of 2, a reading id older than the last two comes in as new; with
    ``dedup_window = 0`` nothing is dropped (and an unknown field is refused by the contract)."""
    link, _rt, box = make_device(dedup_window=2, dedup_fields=("reading_id",))
    off, off_rt, off_box = make_device(dedup_window=0)
    pub = _publisher(mosquitto.port)
    try:
        for i in (1, 2, 3, 1, 3):                  # 1 has left the window when it comes back
            pub.publish("plant/m1/readings", json.dumps(dict(reading(i), reading_id=i)),
                        qos=1).wait_for_publish(5)
        wait_for(lambda: link.acked + link.duplicates == 5 and off.acked == 5, 10,
                 "every message acknowledged")
    finally:
        pub.loop_stop()
    assert [json.loads(r.body)["inputs"]["torque_nm"] for r in box.peek(100)] == [
        reading(i)["torque_nm"] for i in (1, 2, 3, 1)]
    assert link.duplicates == 1
    assert off.duplicates == 0 and off_box.peek(100) == []
    assert off_rt.stats.refused_by_rule == {"extra_field": 5}


def test_the_duplicate_check_in_the_config_file() -> None:
    from planta_edge.config import EdgeConfig
    from planta_edge.errors import ConfigError

    cfg = EdgeConfig.from_dict({"device": "d", "mqtt": {"dedup_fields": ["machine", "ts"],
                                                        "dedup_window": 500}})
    assert cfg.mqtt is not None
    assert (cfg.mqtt.dedup_fields, cfg.mqtt.dedup_window) == (("machine", "ts"), 500)
    assert EdgeConfig.from_dict({"device": "d", "mqtt": {}}).mqtt.dedup_fields == ("reading_id",)
    with pytest.raises(ConfigError, match="dedup_window"):
        EdgeConfig.from_dict({"device": "d", "mqtt": {"dedup_window": -1}})
    with pytest.raises(ConfigError, match="dedup_fields"):
        EdgeConfig.from_dict({"device": "d", "mqtt": {"dedup_fields": [1]}})


def _passwd(folder: Path, users: dict[str, str]) -> Path:
    path = folder / "passwd"
    path.write_text("")
    for user, pw in users.items():
        subprocess.run(["mosquitto_passwd", "-b", str(path), user, pw], check=True,
                       capture_output=True)
    return path


def _need(*tools: str) -> None:
    for tool in tools:
        if shutil.which(tool) is None and not Path(tool).exists():
            pytest.skip(f"{tool} is not installed (apt-get install mosquitto openssl)")


def test_credentials_and_topic_acl_on_the_broker(tmp_path: Path) -> None:
    _need(MOSQUITTO, "mosquitto_passwd")
    folder = tmp_path / "secure"
    folder.mkdir()
    port = free_port()
    pw = _passwd(folder, {"press-07": "s3cret", "scada": "other"})
    acl = folder / "acl"
    acl.write_text("user press-07\ntopic read plant/+/readings\n"
                   "topic write planta/press-07/#\n"
                   "user scada\ntopic readwrite #\n")
    conf = write_mosquitto_conf(folder, port, f"password_file {pw}\nacl_file {acl}\n")
    conf.write_text(conf.read_text().replace("allow_anonymous true", "allow_anonymous false"))
    b = Broker(conf, port)
    b.start()
    try:
        refused = make_client(MqttConfig(port=port, username="press-07", password="wrong"),
                              "intruder")
        reasons: list[Any] = []
        refused.on_connect = lambda c, u, f, reason, p: reasons.append(reason)
        refused.connect("127.0.0.1", port)
        refused.loop_start()
        wait_for(lambda: bool(reasons), 5, "the broker's answer")
        refused.loop_stop()
        assert reasons[0].is_failure and not refused.is_connected()
        seen: list[str] = []
        scada = _publisher(port, "scada", username="scada", password="other")
        scada.on_message = lambda c, u, m: seen.append(m.topic)
        scada.subscribe("#", qos=1)
        dev = _publisher(port, "press-07", username="press-07", password="s3cret")
        wait_for(lambda: scada.is_connected() and dev.is_connected(), 5, "connections")
        dev.publish("planta/press-07/predictions", b"{}", qos=1).wait_for_publish(5)
        dev.publish("plant/m1/readings", b"{}", qos=1).wait_for_publish(5)  # not allowed
        wait_for(lambda: "planta/press-07/predictions" in seen, 5, "the allowed message")
        scada.publish("plant/m9/readings", b"{}", qos=1).wait_for_publish(5)
        wait_for(lambda: "plant/m9/readings" in seen, 5, "scada's own message")
        assert "plant/m1/readings" not in seen
        scada.loop_stop()
        dev.loop_stop()
    finally:
        b.stop()


def _certs(folder: Path) -> dict[str, Path]:
    def run(*args: str) -> None:
        subprocess.run(["openssl", *args], check=True, capture_output=True, cwd=folder)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=plant-ca",
        "-keyout", "ca.key", "-out", "ca.pem")
    run("req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1", "-keyout",
        "server.key", "-out", "server.csr", "-addext", "subjectAltName=IP:127.0.0.1")
    (folder / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    run("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-days", "2", "-out", "server.pem", "-extfile", "ext.cnf")
    return {"ca": folder / "ca.pem", "cert": folder / "server.pem", "key": folder / "server.key"}


def test_tls_to_the_broker(tmp_path: Path) -> None:
    _need(MOSQUITTO, "openssl")
    folder = tmp_path / "tls"
    folder.mkdir()
    certs = _certs(folder)
    port = free_port()
    conf = write_mosquitto_conf(folder, port, f"cafile {certs['ca']}\ncertfile {certs['cert']}\n"
                                f"keyfile {certs['key']}\n")
    b = Broker(conf, port)
    b.start()
    box = Outbox(tmp_path / "o.db")
    rt = EdgeRuntime(FakeModel(), box)
    link = MqttLink(MqttConfig(port=port, tls_ca=str(certs["ca"]), client_id="tls-dev",
                               inputs=(TopicInput("plant/+/readings", "{1}"),)), rt,
                    device="tls-dev")
    try:
        link.start()
        wait_for(link.connected.is_set, 10, "a TLS connection")
        pub = _publisher(port, "tls-pub", tls_ca=str(certs["ca"]))
        pub.publish("plant/m5/readings", json.dumps(reading(5)), qos=1).wait_for_publish(5)
        wait_for(lambda: _entities(box) == ["m5"], 10, "the reading over TLS")
        pub.loop_stop()
        plain = paho.Client(CallbackAPIVersion.VERSION2, client_id="plain")
        done = threading.Event()
        plain.on_connect = lambda *a: done.set()
        try:
            plain.connect("127.0.0.1", port)
            plain.loop_start()
            assert not done.wait(1)          # no TLS, no session
        except OSError:
            pass
        finally:
            plain.loop_stop()
    finally:
        link.stop()
        rt.close()
        box.close()
        b.stop()
