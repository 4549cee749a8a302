"""Updates over the air with real signed edge bundles (H5's EdgeModel and signing): applied
after download, verification and a health check; refused when altered by one byte, signed
by another key or truncated, while the old model keeps serving; resumed after a cut; rolled
back by itself when the new model fails after the switch.

The hub's side of the download (Range, approval) is tested in test_devices_hub.py; here a
small HTTP server plays the hub's ``/v1/edge/bundle`` so a test can cut a download mid-way."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("onnxruntime", reason="the edge model needs onnxruntime")

from edgefakes import FakeModel  # noqa: E402
from exportkit import predictor, readings, records, source_bundle  # noqa: E402

from planta.core.signing import Signer  # noqa: E402
from planta.core.spec import Task  # noqa: E402
from planta.services.export import build_edge_bundle  # noqa: E402
from planta_edge.outbox import Outbox  # noqa: E402
from planta_edge.runtime import EdgeRuntime  # noqa: E402
from planta_edge.sync import HubLink  # noqa: E402
from planta_edge.updates import Updater, load_model  # noqa: E402

SIGNER = Signer.generate()
KEYS = [SIGNER.public_key.text]


@pytest.fixture(scope="module")
def bundles() -> dict[int, bytes]:
    pred, _ = predictor("lightgbm", Task.BINARY, n=600)
    out = {}
    for version in (1, 2):
        source = source_bundle(pred, version=version)
        out[version] = build_edge_bundle(source, source.digest, signer=SIGNER).data
    return out


class FakeHub:
    """Serves one bundle at /v1/edge/bundle (Range, optional cut) and records events."""

    def __init__(self) -> None:
        self.data = b""
        self.digest = ""
        self.cut_after: int | None = None      # bytes sent before the connection drops
        self.events: list[dict[str, Any]] = []
        self.requests: list[str | None] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802
                wanted = self.headers.get("range")
                hub.requests.append(wanted)
                start = int(wanted.split("=")[1].rstrip("-")) if wanted else 0
                body = hub.data[start:]
                self.send_response(206 if wanted else 200)
                self.send_header("x-planta-sha256", hub.digest)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                if hub.cut_after is not None:
                    self.wfile.write(body[:hub.cut_after])
                    hub.cut_after = None
                    self.wfile.flush()
                    self.connection.shutdown(2)
                    return
                self.wfile.write(body)

            def do_POST(self) -> None:  # noqa: N802
                length = int(self.headers["content-length"])
                hub.events.append(json.loads(self.rfile.read(length)))
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def offer(self, data: bytes, digest: str | None = None) -> dict[str, Any]:
        self.data = data
        self.digest = digest or hashlib.sha256(data).hexdigest()
        return {"version": 2, "digest": self.digest, "size": len(data)}

    def event_names(self) -> list[str]:
        return [e["event"] for e in self.events]


@pytest.fixture
def fake_hub() -> Iterator[FakeHub]:
    hub = FakeHub()
    yield hub
    hub.server.shutdown()
    hub.server.server_close()


@pytest.fixture
def device(tmp_path: Path, bundles: dict[int, bytes], fake_hub: FakeHub):
    box = Outbox(tmp_path / "outbox.db")
    rt = EdgeRuntime(load_model(bundles[1], KEYS), box)
    rt.predict(records(readings(40, seed=3), range(40)))     # recent readings
    link = HubLink(f"http://127.0.0.1:{fake_hub.server.server_address[1]}", "planta_x")
    updater = Updater(tmp_path, KEYS)
    yield rt, link, updater
    rt.close()
    box.close()


def _serves_version(rt: EdgeRuntime, version: int) -> bool:
    out = rt.predict(records(readings(5, seed=9), range(5)))
    return all(p.version == version and p.prediction_id for p in out)


def test_approved_bundle_is_applied_and_survives_restart(device, fake_hub, bundles,
                                                         tmp_path: Path) -> None:
    rt, link, updater = device
    target = fake_hub.offer(bundles[2])
    assert updater.consider(target, rt, link) == "applied"
    assert _serves_version(rt, 2)
    assert fake_hub.event_names() == ["update_downloaded", "update_applied"]
    assert fake_hub.events[1]["detail"]["previous_version"] == 1
    assert updater.consider(target, rt, link) == "current"
    again = Updater(tmp_path, KEYS).load_current(None)
    assert again is not None and again.version == 2


def test_bundle_altered_by_one_byte_is_refused(device, fake_hub, bundles) -> None:
    rt, link, updater = device
    data = bytearray(bundles[2])
    data[len(data) // 2] ^= 0x01
    # Offered under the true bundle's digest: the download's sha256 does not match.
    target = fake_hub.offer(bytes(data), hashlib.sha256(bundles[2]).hexdigest())
    assert updater.consider(target, rt, link) == "refused"
    # Offered under its own digest (a tampered store): the bundle's seal and hashes catch it.
    target = fake_hub.offer(bytes(data))
    assert updater.consider(target, rt, link) == "refused"
    assert _serves_version(rt, 1)
    assert fake_hub.event_names().count("update_refused") == 2
    assert not list(updater.dir.glob("*.part")) and not list(updater.dir.glob("*.planta"))


def test_bundle_signed_by_another_key_is_refused(device, fake_hub) -> None:
    rt, link, updater = device
    pred, _ = predictor("linear", Task.BINARY, n=300)
    source = source_bundle(pred, version=2)
    foreign = build_edge_bundle(source, source.digest, signer=Signer.generate()).data
    assert updater.consider(fake_hub.offer(foreign), rt, link) == "refused"
    assert "key" in fake_hub.events[-1]["detail"]["reason"].lower()
    assert _serves_version(rt, 1)
    # Refused once, not downloaded again at every heartbeat.
    asked = len(fake_hub.requests)
    assert updater.consider(fake_hub.offer(foreign), rt, link) == "refused"
    assert len(fake_hub.requests) == asked


def test_download_cut_midway_resumes_with_range(device, fake_hub, bundles) -> None:
    rt, link, updater = device
    target = fake_hub.offer(bundles[2])
    fake_hub.cut_after = len(bundles[2]) // 3
    assert updater.consider(target, rt, link) == "interrupted"
    assert _serves_version(rt, 1)                                  # old model serving
    part = updater.dir / f"{target['digest']}.part"
    assert part.stat().st_size == len(bundles[2]) // 3
    assert updater.consider(target, rt, link) == "applied"
    assert fake_hub.requests == [None, f"bytes={len(bundles[2]) // 3}-"]
    assert _serves_version(rt, 2)


def test_truncated_bundle_is_refused(device, fake_hub, bundles) -> None:
    rt, link, updater = device
    short = bundles[2][: len(bundles[2]) - 100]
    assert updater.consider(fake_hub.offer(short), rt, link) == "refused"
    assert _serves_version(rt, 1)


class _FailsLater(FakeModel):
    """Passes the health check, then fails while predicting."""

    def __init__(self) -> None:
        super().__init__(version=2, digest="e" * 64)
        self.calls = 0

    def predict_records(self, records: list[dict[str, Any]]) -> Any:
        self.calls += 1
        if self.calls > 1:             # the health check is the first call
            raise RuntimeError("onnxruntime: bad allocation")
        return super().predict_records(records)


def test_new_model_failing_after_the_switch_is_rolled_back(tmp_path: Path, fake_hub,
                                                           monkeypatch) -> None:
    from edgefakes import reading

    import planta_edge.updates as updates

    box = Outbox(tmp_path / "o.db")
    old = FakeModel(version=1, digest="d" * 64)
    rt = EdgeRuntime(old, box)
    rt.predict([reading(i) for i in range(10)])
    link = HubLink(f"http://127.0.0.1:{fake_hub.server.server_address[1]}", "planta_x")
    updater = Updater(tmp_path, KEYS)
    monkeypatch.setattr(updates, "load_model", lambda data, keys: _FailsLater())
    try:
        assert updater.consider(fake_hub.offer(b"new bundle"), rt, link) == "applied"
        with pytest.raises(RuntimeError):
            rt.predict([reading(1)])
        assert updater.consider(fake_hub.offer(b"new bundle"), rt, link) == "rolled_back"
        assert rt.model is old
        assert rt.predict([reading(2)])[0].version == 1
        assert fake_hub.event_names()[-1] == "update_rolled_back"
        # The failed bundle is not taken again at the next heartbeat.
        assert updater.consider(fake_hub.offer(b"new bundle"), rt, link) == "refused"
    finally:
        rt.close()
        box.close()
