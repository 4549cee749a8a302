"""What keeps the device's memory under its budget, without giving up safety: signatures are
checked in a short-lived child process (`cryptography` never loads into the runtime), the
check fails closed, and the MQTT link holds a bounded number of readings in memory."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
import time
import zipfile
from concurrent.futures import Future
from io import BytesIO
from pathlib import Path
from typing import Any

import pytest
from edgefakes import reading
from mqtt_broker import Broker, wait_for
from test_signing import MANIFEST, _rewrite, _signed

from planta.core.signing import Signer
from planta.errors import ConfigError, IntegrityError
from planta_edge import mqtt, verify
from planta_edge.bundle import read_bundle
from planta_edge.config import MqttConfig, TopicInput
from planta_edge.signing import SIGNATURE, PublicKey
from planta_edge.verify import verify_in_child


def _altered_manifest(data: bytes) -> bytes:
    manifest = json.loads(zipfile.ZipFile(BytesIO(data)).read(MANIFEST))
    manifest["version"] = 4
    return _rewrite(data, MANIFEST, json.dumps(manifest, sort_keys=True,
                                               separators=(",", ":")).encode())


# -- the signature check in a child process ------------------------------------------------------

def test_the_child_accepts_a_good_signature_with_every_key_form() -> None:
    signer = Signer.generate()
    data = _signed(signer)
    for key in (signer.public_key.text, signer.public_pem().decode()):
        bundle = read_bundle(data, trusted_keys=[key], verifier=verify_in_child)
        assert bundle.signed_by == signer.key_id and bundle.version == 3


def test_the_child_refuses_what_the_in_process_check_refuses() -> None:
    ours, theirs = Signer.generate(), Signer.generate()
    data = _signed(ours)
    trusted = [ours.public_key.text]
    with pytest.raises(IntegrityError, match="changed after the hub signed it"):
        read_bundle(_altered_manifest(data), trusted_keys=trusted, verifier=verify_in_child)
    with pytest.raises(IntegrityError, match=f"signed with key {theirs.key_id}"):
        read_bundle(_signed(theirs), trusted_keys=trusted, verifier=verify_in_child)
    forged = json.loads(zipfile.ZipFile(BytesIO(_signed(theirs))).read(SIGNATURE))
    forged["key_id"] = ours.key_id
    bad = _rewrite(_signed(theirs), SIGNATURE, json.dumps(forged).encode())
    with pytest.raises(IntegrityError, match=f"signature by key {ours.key_id} does not match"):
        read_bundle(bad, trusted_keys=trusted, verifier=verify_in_child)
    with pytest.raises(ConfigError, match="trusts no signing key"):
        read_bundle(data, trusted_keys=[], verifier=verify_in_child)


@pytest.mark.parametrize("child", [
    "import sys; sys.exit(3)",                          # crashes, no answer
    "import sys; print('valid'); sys.exit(1)",          # "valid", but it failed
    "print('invalid')",                                 # "invalid", but it exited 0
    "print('yes')",                                     # not an answer
])
def test_a_check_without_a_clear_answer_refuses_the_bundle(monkeypatch, child: str) -> None:
    """Fail closed: only "valid" with exit status 0 lets a bundle load."""
    signer = Signer.generate()
    monkeypatch.setattr(verify, "_command", lambda: [sys.executable, "-c", child])
    with pytest.raises(IntegrityError, match="could not be checked"):
        read_bundle(_signed(signer), trusted_keys=[signer.public_key.text],
                    verifier=verify_in_child)


def test_a_checker_that_cannot_start_refuses_the_bundle(monkeypatch, tmp_path: Path) -> None:
    signer = Signer.generate()
    monkeypatch.setattr(verify, "_command", lambda: [str(tmp_path / "no-python")])
    with pytest.raises(IntegrityError, match="did not run"):
        read_bundle(_signed(signer), trusted_keys=[signer.public_key.text],
                    verifier=verify_in_child)


_DEVICE = """
import json, sys
from planta_edge.errors import IntegrityError
from planta_edge.model import EdgeModel
path, bad, key = sys.argv[1:]
model = EdgeModel.load(path, trusted_keys=[key])
try:
    EdgeModel.load(bad, trusted_keys=[key])
    refused = None
except IntegrityError as exc:
    refused = exc.message
print(json.dumps({"signed_by": model.signed_by, "refused": refused,
                  "loaded": sorted(m for m in ("cryptography", "_cffi_backend")
                                   if m in sys.modules)}))
"""


def test_a_device_process_verifies_without_loading_cryptography(edge_bundle, tmp_path) -> None:
    """The runtime's own process: bundle verified and loaded, a tampered one refused, and
    `cryptography` never imported (its ~7 MB stay out of the long-running process)."""
    bad = tmp_path / "bad.planta"
    bad.write_bytes(_altered_manifest(edge_bundle.path.read_bytes()))
    out = subprocess.run([sys.executable, "-c", _DEVICE, str(edge_bundle.path), str(bad),
                          edge_bundle.public_key], capture_output=True, text=True, timeout=120,
                         check=True)
    answer = json.loads(out.stdout.strip().splitlines()[-1])
    assert answer["loaded"] == []
    assert answer["signed_by"] == PublicKey.parse(edge_bundle.public_key).key_id
    assert "changed after the hub signed it" in answer["refused"]


# -- readings held in memory by the MQTT link ----------------------------------------------------

class _HeldRuntime:
    """A runtime whose commits the test completes by hand."""

    model = None

    def __init__(self) -> None:
        self.futures: list[Future[list[Any]]] = []
        self.most_open = 0

    def submit(self, records: list[dict[str, Any]], entities: Any, *, source: str = ""
               ) -> Future[list[Any]]:
        future: Future[list[Any]] = Future()
        self.futures.append(future)
        self.most_open = max(self.most_open, sum(not f.done() for f in self.futures))
        return future


def _held_link(port: int, bound: int, monkeypatch, readings: int, first: int
               ) -> tuple[mqtt.MqttLink, _HeldRuntime]:
    """A connected link with at most ``bound`` readings in memory, ``readings`` published to
    it, once the first ``first`` of them reached its (held) runtime."""
    from test_edge_mqtt import _publisher

    monkeypatch.setattr(mqtt, "MAX_IN_MEMORY", bound)
    rt = _HeldRuntime()
    link = mqtt.MqttLink(MqttConfig(port=port, client_id=f"edge-held-{bound}",
                                    inputs=(TopicInput("plant/+/readings", "{1}"),)),
                         rt, device="held")  # type: ignore[arg-type]
    link.start()
    pub = _publisher(port)
    try:
        wait_for(link.connected.is_set, 10, "the device to connect")
        for i in range(readings):
            pub.publish(f"plant/m{i}/readings", json.dumps(reading(i)), qos=1)
        wait_for(lambda: len(rt.futures) == first, 10, "the first readings")
    finally:
        pub.loop_stop()
    return link, rt


def test_the_link_holds_at_most_max_in_memory_readings(mosquitto: Broker, monkeypatch) -> None:
    """While commits wait, the link stops taking readings past its bound; they stay with the
    broker and come once commits free room: none lost, each acknowledged after its commit."""
    link, rt = _held_link(mosquitto.port, 3, monkeypatch, readings=10, first=3)
    try:
        time.sleep(0.5)  # the broker has sent more; the link must not take them
        assert len(rt.futures) == 3 and link.acked == 0
        done = 0
        deadline = time.monotonic() + 30
        while done < 10 and time.monotonic() < deadline:
            if done < len(rt.futures):
                rt.futures[done].set_result([])
                done += 1
            else:
                time.sleep(0.01)
        wait_for(lambda: link.acked == 10, 10, "every reading acknowledged")
    finally:
        link.stop()
    assert len(rt.futures) == 10 and rt.most_open <= 3


def test_stopping_a_link_that_waits_for_room_does_not_hang(mosquitto: Broker,
                                                           monkeypatch) -> None:
    link, _rt = _held_link(mosquitto.port, 1, monkeypatch, readings=3, first=1)
    stopping = threading.Thread(target=link.stop)
    stopping.start()
    stopping.join(30)  # returns although the network thread was waiting for room
    assert not stopping.is_alive() and link.acked == 0
