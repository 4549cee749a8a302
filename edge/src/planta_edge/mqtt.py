"""MQTT in and out: readings from the plant's broker, predictions back to it.

    broker ──PUBLISH (QoS 1)──► on_message ─► runtime.submit ─► outbox commit ─► PUBACK
                                                                             └─► output topic

**Nothing acknowledged is lost, nothing lost is acknowledged.** The client acknowledges a
reading (PUBACK, ``manual_ack``) only after the prediction made from it is committed to the
outbox. It keeps a persistent session (MQTT 3.1.1 ``clean_session=False`` with a fixed client
id), so while the device is down or reconnecting the broker keeps its readings, and after a
reconnect it sends again every reading it had not seen acknowledged. A reading whose PUBACK
was lost (the broker restarted before it arrived) comes again flagged as a duplicate with the
same packet id; the link remembers the last ``REMEMBER_STORED`` readings it stored (a hash of
packet id, topic and payload each, in a fixed ring of integers) and acknowledges such a repeat
without predicting it again. Only a repeat older than that memory is predicted twice (the hub
then holds two predictions for it, with their own ids): at least once, never lost.

**A publisher's re-sends.** A publisher that sends a reading again on its own (its PUBACK was
lost, it restarted and replays) makes a new message the broker cannot tell from a new reading.
When readings carry their identity, the device drops such a repeat: ``dedup_fields`` (default
``["reading_id"]``) names the payload fields that, with the topic's entity, identify a reading
(a reading id, or a timestamp when each entity sends at most one reading per timestamp), and
the link remembers the last ``dedup_window`` identities (default 10,000; 0 turns the check
off). A repeat within the window is acknowledged, counted (``duplicates``) and not predicted.
A reading without any of the fields is never taken for a repeat. An identity field that the
model's contract does not know (a ``reading_id``) is taken out of the reading before the
contract checks, which would refuse it as an unknown field. The memory is in RAM: after a
restart of the runtime, a repeat of a reading from before it is predicted again.

**Payloads.** A JSON object is one reading; ``{"records": [...]}`` or a JSON list is several.
The topic names the entity (``[[mqtt.inputs]] entity = "{1}"``: the second topic level).
A payload that is not JSON, or not objects, is acknowledged (it would never parse, and holding
it would block the session), counted as ``malformed`` and logged, never silently.

**Broker side (production).** Mosquitto with ``persistence true`` (a restart keeps queued
readings), ``max_inflight_messages 1000`` (the default 20 caps a manual-ack client at 20
readings per commit), TLS (``tls_ca``/``tls_cert``/``tls_key``) and a password file with an
ACL that lets the device read its input topics and write its output topic only. See the README.
"""

from __future__ import annotations

import collections
import json
import logging
import ssl
import threading
from collections.abc import Sequence
from concurrent.futures import Future
from typing import Any

import numpy as np
import paho.mqtt.client as paho
from paho.mqtt.enums import CallbackAPIVersion

from planta_edge.config import MqttConfig, TopicInput
from planta_edge.runtime import EdgeRuntime, Prediction

log = logging.getLogger("planta_edge.mqtt")

# How many stored readings the link remembers, to recognise the broker's re-sends: a broker
# re-sends at most its in-flight window (max_inflight_messages, 1,000 advised), so four times
# that covers a restart with room to spare. Keyed by packet id AND content: a restarted broker
# may hand out the packet ids of re-sends still to come to new messages. A fixed ring of
# integers (32 KiB) makes no garbage, unlike a window of Python objects.
REMEMBER_STORED = 4_096
# The most messages the link holds between their arrival and the commit of their predictions.
# The broker sends up to its in-flight window (1,000 advised) before it waits for PUBACKs; when
# the device scores or commits more slowly than that (a busy CPU, a slow disk), the readings
# would wait in this process, and Python keeps the memory they took for good. Past this many,
# the network thread waits for commits and the rest stay with the broker (and the socket).
# 256 readings still make groups of ~60 per commit at full speed (bench/RESULTS.md §7).
MAX_IN_MEMORY = 256


class RecentReadings:
    """The identities of the last ``window`` readings: a publisher's re-sends are recognised.

    A reading is claimed when it arrives (so two copies in flight at once count as one) and
    released if its prediction could not be stored, so that the broker's re-send of it is
    predicted after all.

    >>> recent = RecentReadings(("reading_id",), window=2)
    >>> k = recent.key("m1", {"reading_id": 7, "torque_nm": 40})
    >>> recent.claim(k), recent.claim(k), recent.key("m1", {"torque_nm": 40})
    (True, False, None)
    """

    def __init__(self, fields: Sequence[str], *, window: int) -> None:
        self.fields = tuple(fields)
        self.window = window
        self._seen: collections.OrderedDict[int, None] = collections.OrderedDict()
        self._lock = threading.Lock()

    def key(self, entity: str | None, record: dict[str, Any]) -> int | None:
        """The reading's identity (a hash), or None when it carries none of the fields."""
        values = [record.get(f) for f in self.fields]
        if all(v is None for v in values):
            return None
        return hash(json.dumps([entity, values], separators=(",", ":"), default=str))

    def claim(self, key: int) -> bool:
        """True for a reading not seen within the window (now remembered); False for a repeat."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen[key] = None
            if len(self._seen) > self.window:
                self._seen.popitem(last=False)
            return True

    def release(self, keys: Sequence[int]) -> None:
        """Forget readings whose predictions were not stored."""
        with self._lock:
            for key in keys:
                self._seen.pop(key, None)


def _matches(pattern: str, topic: str) -> bool:
    """MQTT topic filter matching (``+`` one level, ``#`` the rest).

    >>> _matches("plant/+/readings", "plant/p7/readings"), _matches("plant/#", "plant/a/b")
    (True, True)
    """
    p, t = pattern.split("/"), topic.split("/")
    for i, part in enumerate(p):
        if part == "#":
            return True
        if i >= len(t) or (part != "+" and part != t[i]):
            return False
    return len(p) == len(t)


def parse_payload(payload: bytes | bytearray) -> list[dict[str, Any]]:
    """The readings a message carries; ValueError when it carries none.

    >>> parse_payload(b'{"torque_nm": 40}'), parse_payload(b'{"records": [{"a": 1}]}')
    ([{'torque_nm': 40}], [{'a': 1}])
    """
    doc = json.loads(payload)
    if isinstance(doc, dict) and isinstance(doc.get("records"), list):
        doc = doc["records"]
    elif isinstance(doc, dict):
        doc = [doc]
    if not isinstance(doc, list) or not doc or not all(isinstance(r, dict) for r in doc):
        raise ValueError("not a JSON object or a list of objects")
    return doc


def make_client(cfg: MqttConfig, client_id: str, *, manual_ack: bool = False,
                clean: bool = False) -> paho.Client:
    """A paho client with the config's credentials, TLS and reconnect delays."""
    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=client_id,
                         clean_session=clean, protocol=paho.MQTTv311, manual_ack=manual_ack)
    if cfg.username:
        client.username_pw_set(cfg.username, cfg.password)
    if cfg.tls_ca or cfg.tls_cert:
        client.tls_set(ca_certs=cfg.tls_ca, certfile=cfg.tls_cert, keyfile=cfg.tls_key,
                       cert_reqs=ssl.CERT_REQUIRED, tls_version=ssl.PROTOCOL_TLS_CLIENT)
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    # Outgoing QoS 1 messages wait in memory while the broker is away (bounded).
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(100_000)
    return client


class MqttLink:
    """The device's MQTT connection: subscribes to the inputs, publishes the outputs.

    It is also an output (:meth:`emit`) for the runtime: each committed prediction is published
    to ``output_topic`` as JSON.
    """

    def __init__(self, cfg: MqttConfig, runtime: EdgeRuntime | None, *, device: str) -> None:
        self.cfg = cfg
        self.runtime = runtime
        self.inputs: tuple[TopicInput, ...] = cfg.inputs
        self.client = make_client(cfg, cfg.client_id or f"planta-edge-{device}",
                                  manual_ack=True)
        self.client.on_connect = self._on_connect
        self.client.on_disconnect = self._on_disconnect
        self.client.on_message = self._on_message
        self.connected = threading.Event()
        self.received = 0
        self.acked = 0
        self.malformed = 0
        self.repeats = 0
        self.duplicates = 0
        self.connects = 0
        self.recent = (RecentReadings(cfg.dedup_fields, window=cfg.dedup_window)
                       if cfg.dedup_fields and cfg.dedup_window > 0 else None)
        self._stored = np.zeros(REMEMBER_STORED, dtype=np.int64)  # ring of keys; 0: empty
        self._stored_next = 0
        self._pending: collections.Counter[int] = collections.Counter()  # keys not yet settled
        self._stored_lock = threading.Lock()
        self._held = 0                       # messages submitted, not yet committed or failed
        self._room = threading.Condition()
        self._stopping = False

    def start(self) -> None:
        """Connect in the background; reconnects by itself for as long as it runs."""
        self.client.connect_async(self.cfg.host, self.cfg.port, keepalive=self.cfg.keepalive_s)
        self.client.loop_start()

    def stop(self) -> None:
        with self._room:  # a network thread waiting for room must not hold up the stop
            self._stopping = True
            self._room.notify_all()
        self.client.disconnect()
        self.client.loop_stop()

    def stats(self) -> dict[str, Any]:
        return {"connected": self.connected.is_set(), "received": self.received,
                "acked": self.acked, "malformed": self.malformed, "repeats": self.repeats,
                "duplicates": self.duplicates, "connects": self.connects}

    # -- callbacks (paho's network thread) ----------------------------------------------------
    def _on_connect(self, client: paho.Client, _userdata: Any, flags: Any, reason: Any,
                    _props: Any) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s:%d refused the connection: %s", self.cfg.host,
                        self.cfg.port, reason)
            return
        self.connects += 1
        self.connected.set()
        # Subscribing again on a kept session is harmless and covers a broker that lost it.
        for item in self.inputs:
            client.subscribe(item.topic, qos=self.cfg.qos)
        log.info("MQTT connected to %s:%d (session kept: %s)", self.cfg.host, self.cfg.port,
                 getattr(flags, "session_present", None))

    def _on_disconnect(self, _client: paho.Client, _userdata: Any, _flags: Any, reason: Any,
                       _props: Any) -> None:
        self.connected.clear()
        log.warning("MQTT connection to %s:%d lost (%s); reconnecting", self.cfg.host,
                    self.cfg.port, reason)

    def _on_message(self, client: paho.Client, _userdata: Any, msg: paho.MQTTMessage) -> None:
        self.received += 1
        mid, qos = msg.mid, msg.qos
        key = (mid, hash((mid, msg.topic, msg.payload)) or 1)  # 0 marks an empty slot
        if msg.dup:
            with self._stored_lock:  # re-sends are rare: a scan of the ring is fine
                seen = bool((self._stored == key[1]).any())
                pending = not seen and self._pending[key[1]] > 0
            if seen:  # stored already; only its PUBACK was lost
                self.repeats += 1
                client.ack(mid, qos)
                return
            if pending:
                # The first copy is still being committed (the broker restarted meanwhile):
                # its commit acknowledges this packet id on the new connection; should that
                # commit fail, the broker sends the reading again at the next connection.
                self.repeats += 1
                return
        try:
            records = parse_payload(msg.payload)
        except (ValueError, UnicodeDecodeError) as exc:
            self.malformed += 1
            log.warning("MQTT message on %s is not a reading (%s); acknowledged and skipped "
                        "(%d so far)", msg.topic, exc, self.malformed)
            client.ack(mid, qos)
            return
        entity = self._entity(msg.topic)
        if self.runtime is None:
            return
        claimed: list[int] = []
        if self.recent is not None:
            records = self._new_readings(records, entity, claimed)
            if not records:  # every reading in it was predicted already
                client.ack(mid, qos)
                return
        with self._room:
            while self._held >= MAX_IN_MEMORY and not self._stopping:
                self._room.wait(0.5)
            self._held += 1
        with self._stored_lock:
            self._pending[key[1]] += 1
        future = self.runtime.submit(records, [entity] * len(records), source="mqtt")
        future.add_done_callback(lambda f: self._committed(f, key, qos, claimed))

    def _new_readings(self, records: list[dict[str, Any]], entity: str | None,
                      claimed: list[int]) -> list[dict[str, Any]]:
        """``records`` less the repeats of recent readings, identity fields the contract
        does not know taken out; the identities claimed are added to ``claimed``."""
        assert self.recent is not None and self.runtime is not None
        contract = getattr(self.runtime.model, "contract", None)
        foreign = [f for f in self.recent.fields
                   if contract is None or contract.resolve(f) is None]
        fresh = []
        for rec in records:
            ident = self.recent.key(entity, rec)
            if ident is not None:
                if not self.recent.claim(ident):
                    self.duplicates += 1
                    continue
                claimed.append(ident)
                if foreign:
                    rec = {k: v for k, v in rec.items() if k not in foreign}
            fresh.append(rec)
        if len(fresh) < len(records):
            log.info("MQTT: dropped %d repeated reading(s) from %s (%d so far)",
                     len(records) - len(fresh), entity, self.duplicates)
        return fresh

    def _committed(self, future: Future[list[Prediction]], key: tuple[int, int],
                   qos: int, claimed: list[int]) -> None:
        try:
            self._settle(future, key, qos, claimed)
        finally:
            with self._room:
                self._held -= 1
                self._room.notify()

    def _settle(self, future: Future[list[Prediction]], key: tuple[int, int],
                qos: int, claimed: list[int]) -> None:
        stored = future.exception() is None
        with self._stored_lock:  # stored and no longer pending in one step (see _on_message)
            if stored:
                self._stored[self._stored_next] = key[1]
                self._stored_next = (self._stored_next + 1) % REMEMBER_STORED
            self._pending[key[1]] -= 1
            if self._pending[key[1]] <= 0:
                del self._pending[key[1]]
        if not stored:
            # Not acknowledged: the broker sends the reading again after a reconnect.
            if claimed and self.recent is not None:
                self.recent.release(claimed)
            log.error("reading %d not stored (%s); the broker will send it again", key[0],
                      future.exception())
            return
        self.client.ack(key[0], qos)
        self.acked += 1

    def _entity(self, topic: str) -> str | None:
        for item in self.inputs:
            if _matches(item.topic, topic):
                return item.entity_of(topic)
        return None

    # -- output -------------------------------------------------------------------------------
    def emit(self, predictions: Sequence[Prediction]) -> None:
        """Publish committed predictions (and refusals, with their reason) to the output topic."""
        topic = self.cfg.output_topic
        if not topic:
            return
        for p in predictions:
            self.client.publish(topic, json.dumps(p.to_dict(), separators=(",", ":"),
                                                  default=str), qos=self.cfg.output_qos)


__all__ = ["MqttLink", "RecentReadings", "make_client", "parse_payload"]
