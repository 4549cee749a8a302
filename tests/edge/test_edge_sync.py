"""Store-and-forward against a real hub: the link cut by a TCP proxy, the runtime killed with
kill -9 during the outage, restarted, the link restored: every prediction the device
acknowledged reaches the hub exactly once, in the order it was made."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from edgefakes import FakeModel, TcpProxy, reading
from edgeprocs import EdgeBundle, Hub
from mqtt_broker import free_port, wait_for

from planta_edge.outbox import Outbox
from planta_edge.runtime import EdgeRuntime
from planta_edge.sync import HubLink, Syncer, batch_body


def _config(token: str, hub_port: int, http_port: int, bundle: EdgeBundle) -> str:
    return (f'device = "press-07"\nstate_dir = "state"\nbundle = "{bundle.path}"\n'
            f'trusted_keys = ["{bundle.public_key}"]\n'
            f'[hub]\nurl = "http://127.0.0.1:{hub_port}"\ntoken = "{token}"\n'
            f"batch_rows = 50\nheartbeat_s = 0.5\nmax_backoff_s = 1\n"
            f'[http]\nhost = "127.0.0.1"\nport = {http_port}\n')


def _send(edge: Any, bundle: EdgeBundle, start: int, n: int, made: list[str]) -> None:
    readings = bundle.records(start, n)
    for i in range(0, n, 5):
        made += edge.predict(readings[i:i + 5], entity="press-07")


def test_outage_kill9_restart_every_prediction_once_in_order(hub: Hub, edge_process,
                                                             edge_bundle: EdgeBundle) -> None:
    """The device runs the real signed edge model (onnxruntime) in its own process."""
    token = hub.enrol("press-07")
    proxy = TcpProxy(hub.port, free_port())
    proxy.start()
    http_port = free_port()
    config = _config(token, proxy.port, http_port, edge_bundle)
    edge = edge_process(config, http_port=http_port, fake=False)
    made: list[str] = []
    try:
        _send(edge, edge_bundle, 0, 60, made)
        wait_for(lambda: hub.device("press-07")["received"] == 60, 30, "the first 60")

        proxy.stop()                                   # the link is cut
        _send(edge, edge_bundle, 60, 100, made)
        edge.kill()                                    # power cut during the outage
        edge.start()                                   # the runtime comes back
        _send(edge, edge_bundle, 160, 60, made)
        time.sleep(0.5)
        assert hub.device("press-07")["received"] == 60    # nothing got through the cut
        proxy.start()                                  # the link is back
        wait_for(lambda: hub.device("press-07")["received"] == 220, 60, "the catch-up")
        wait_for(lambda: hub.device("press-07")["outbox_depth"] == 0, 10, "a heartbeat")
    finally:
        proxy.stop()

    logged = hub.logged_ids("press-07")
    assert len(made) == 220 == len(set(made))
    assert logged == made                              # exactly once, in the order made
    assert made == sorted(made)                        # ids keep the device's order
    assert hub.device("press-07")["model_version"] == 1


def test_repeated_batch_is_ignored_by_the_hub(hub: Hub, tmp_path: Path) -> None:
    token = hub.enrol("press-08")
    box = Outbox(tmp_path / "o.db")
    rt = EdgeRuntime(FakeModel(), box)
    try:
        rt.predict([reading(i) for i in range(20)])
        link = HubLink(hub.url, token)
        rows = box.peek(100)
        first = link.post_json("/v1/edge/predictions", batch_body(rows))
        again = link.post_json("/v1/edge/predictions", batch_body(rows))
        assert (first["accepted"], first["duplicates"]) == (20, 0)
        assert (again["accepted"], again["duplicates"]) == (0, 20)
        assert hub.logged_ids("press-08") == [r.prediction_id for r in rows]
    finally:
        rt.close()
        box.close()


def test_revoked_device_is_refused_and_keeps_its_outbox(hub: Hub, tmp_path: Path) -> None:
    import httpx

    token = hub.enrol("press-09")
    assert httpx.post(f"{hub.url}/v1/devices/press-09/revoke", timeout=30).json()["revoked"]
    box = Outbox(tmp_path / "o.db")
    rt = EdgeRuntime(FakeModel(), box)
    try:
        rt.predict([reading(1)])
        syncer = Syncer(box, HubLink(hub.url, token), heartbeat_s=3600)
        from planta_edge.errors import AccessError

        with pytest.raises(AccessError):
            syncer.send_once()
        assert box.stats().depth == 1
    finally:
        rt.close()
        box.close()


def test_backoff_grows_with_failures_and_is_jittered(tmp_path: Path) -> None:
    box = Outbox(tmp_path / "o.db")
    try:
        syncer = Syncer(box, HubLink("http://127.0.0.1:9", "planta_x"), base_backoff_s=1,
                        max_backoff_s=8)
        waits = {}
        for failures in (0, 3, 10):
            syncer.failures = failures
            waits[failures] = [syncer.backoff_s() for _ in range(200)]
        assert max(waits[0]) <= 1 and max(waits[3]) <= 8 and max(waits[10]) <= 8
        assert max(waits[10]) > 4                      # the ceiling grew
        assert len({round(w, 6) for w in waits[3]}) > 100   # jittered, not fixed
    finally:
        box.close()


def test_heartbeat_reports_outbox_and_answers_no_bundle_yet(hub: Hub, tmp_path: Path) -> None:
    token = hub.enrol("press-10", group="line-2")
    box = Outbox(tmp_path / "o.db")
    answers: list[dict[str, Any]] = []
    try:
        syncer = Syncer(box, HubLink(hub.url, token), on_heartbeat=answers.append,
                        status=lambda: {"model": {"usecase": "failure", "version": 3,
                                                  "digest": "a" * 64}})
        syncer.heartbeat()
        assert answers[0]["bundle"] is None
        assert "no production version" in answers[0]["reason"]
        device = hub.device("press-10")
        assert device["model_version"] == 3 and device["outbox_depth"] == 0
        assert device["group"] == "line-2"
    finally:
        box.close()


def test_sync_thread_drains_while_readings_flow(hub: Hub, tmp_path: Path) -> None:
    token = hub.enrol("press-11")
    box = Outbox(tmp_path / "o.db")
    rt = EdgeRuntime(FakeModel(), box)
    syncer = Syncer(box, HubLink(hub.url, token), batch_rows=40, idle_s=0.02)
    syncer.start()
    made: list[str] = []
    try:
        def feed(offset: int) -> None:
            for i in range(0, 200, 10):
                out = rt.predict([reading(offset + i + j) for j in range(10)])
                made.extend(p.prediction_id for p in out if p.prediction_id)

        threads = [threading.Thread(target=feed, args=(k * 1000,)) for k in range(3)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wait_for(lambda: box.stats().depth == 0, 30, "the outbox to drain")
    finally:
        syncer.stop()
        rt.close()
        box.close()
    assert sorted(made) == hub.logged_ids("press-11")
    assert json.loads(json.dumps(syncer.sent)) == 600


def test_disk_cap_in_a_long_outage_is_applied_counted_and_reported(hub: Hub,
                                                                   tmp_path: Path) -> None:
    token = hub.enrol("press-12")
    proxy = TcpProxy(hub.port, free_port())          # never started: the hub is unreachable
    box = Outbox(tmp_path / "o.db", max_rows=60)
    rt = EdgeRuntime(FakeModel(), box)
    syncer = Syncer(box, HubLink(f"http://127.0.0.1:{proxy.port}", token), batch_rows=25,
                    heartbeat_s=0.2, base_backoff_s=0.05, max_backoff_s=0.2, idle_s=0.02,
                    status=lambda: {"outbox": box.stats().to_dict()})
    syncer.start()
    made: list[str] = []
    try:
        for i in range(0, 250, 10):                   # the outage: 250 readings, cap 60
            made += [p.prediction_id for p in rt.predict([reading(j) for j in range(i, i + 10)])]
        assert None not in made and len(made) == 250  # it kept predicting
        assert syncer.failures > 0
        stats = box.stats()
        assert (stats.depth, stats.dropped) == (60, 190)
        proxy.start()                                 # the link comes back
        wait_for(lambda: box.stats().depth == 0, 30, "the outbox to drain")
        wait_for(lambda: hub.device("press-12")["outbox_dropped"] == 190, 10,
                 "the drop count at the hub")
    finally:
        syncer.stop()
        proxy.stop()
        rt.close()
        box.close()
    assert hub.logged_ids("press-12") == made[-60:]  # the newest, in order
    status = hub.device("press-12")["status"]
    assert status["outbox"]["first_dropped"] == made[0]
    assert status["outbox"]["last_dropped"] == made[189]


def test_update_over_the_air_from_the_real_hub(hub: Hub, edge_bundle: EdgeBundle,
                                               tmp_path: Path) -> None:
    """The hub offers the edge bundle exported for the group's pinned version; the device
    downloads it from /v1/edge/bundle, verifies it, switches, and the hub audits it."""
    from planta.services.workspace import Workspace
    from planta.store.devices import DeviceStore
    from planta.store.tokens import TokenStore
    from planta_edge.updates import Updater

    token = hub.enrol("press-13", group="line-9")
    data = edge_bundle.path.read_bytes()
    ws = Workspace.open(hub.root)
    try:
        digest = ws.artifacts.put_bytes(data)
        # What `planta export --onnx` records (the hub finds edge bundles by this event).
        ws.audit.append("export", "usecase/failure/model/1", "ana", {"edge_sha256": digest})
        DeviceStore(ws.store, ws.audit, TokenStore(ws.store, ws.audit)).pin(
            "failure", "line-9", 1, actor="ana")
    finally:
        ws.close()
    box = Outbox(tmp_path / "o.db")
    rt = EdgeRuntime(FakeModel(version=0, digest="0" * 64), box)
    updater = Updater(tmp_path, [edge_bundle.public_key])
    link = HubLink(hub.url, token)
    try:
        answer = Syncer(box, link, status=lambda: {}).heartbeat()
        assert answer["bundle"]["digest"] == digest and answer["bundle"]["pinned"]
        assert updater.consider(answer["bundle"], rt, link) == "applied"
        assert rt.model is not None and rt.model.digest == digest
        assert rt.predict(edge_bundle.records(0, 3))[0].version == 1
    finally:
        rt.close()
        box.close()
    ws = Workspace.open(hub.root)
    try:
        actions = [e.action for e in ws.audit.events(limit=None)
                   if e.subject == "device/press-13"]
    finally:
        ws.close()
    assert actions[-2:] == ["device_update_downloaded", "device_update_applied"]
