"""Real receivers for alert actions in tests: a Mosquitto broker and an HTTP sink on 127.0.0.1.

Plain classes and functions (the fixtures that start them are in this folder's conftest.py),
imported by name: ``from receivers import Broker``.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

READY_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str | None:
    for candidate in ("/usr/sbin/mosquitto", shutil.which("mosquitto")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@dataclass
class Broker:
    """A Mosquitto broker on 127.0.0.1; ``stop()`` and ``start()`` it to test outages."""

    host: str
    port: int
    conf: Path
    binary: str
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def start(self) -> None:
        """Start the broker and wait (with a deadline) until it accepts connections."""
        self.process = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + READY_TIMEOUT_S
        while True:
            try:
                with socket.create_connection((self.host, self.port), timeout=0.5):
                    return
            except OSError:
                if self.process.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    pytest.fail(f"Mosquitto did not start on port {self.port}")
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the broker (SIGTERM, then SIGKILL after 10 s)."""
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
        if self.process.stderr:
            self.process.stderr.close()
        self.process = None

    def subscribe(self, topic: str) -> Subscription:
        """A connected QoS 1 subscriber to ``topic`` (wildcards allowed), ready on return."""
        return Subscription.start(self.host, self.port, topic)


@dataclass
class Subscription:
    """Collects the messages of one subscription; ``wait(n)`` blocks until n arrived."""

    client: Any
    messages: list[tuple[str, bytes]] = field(default_factory=list)
    arrived: threading.Condition = field(default_factory=threading.Condition)

    @classmethod
    def start(cls, host: str, port: int, topic: str) -> Subscription:
        import paho.mqtt.client as mqtt

        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"test-sub-{port}-"
                             f"{time.monotonic_ns()}")
        sub = cls(client=client)
        subscribed = threading.Event()

        def on_connect(c: Any, _u: Any, _f: Any, _r: Any, _p: Any) -> None:
            c.subscribe(topic, qos=1)

        def on_subscribe(*_a: Any) -> None:
            subscribed.set()

        def on_message(_c: Any, _u: Any, msg: Any) -> None:
            with sub.arrived:
                sub.messages.append((msg.topic, msg.payload))
                sub.arrived.notify_all()

        client.on_connect, client.on_subscribe, client.on_message = (on_connect, on_subscribe,
                                                                     on_message)
        client.connect(host, port)
        client.loop_start()
        if not subscribed.wait(READY_TIMEOUT_S):
            client.loop_stop()
            raise AssertionError(f"could not subscribe to {topic} on {host}:{port}")
        return sub

    def wait(self, n: int, timeout_s: float = 10.0) -> list[tuple[str, Any]]:
        """The first ``n`` messages (JSON-decoded), waiting up to ``timeout_s``."""
        deadline = time.monotonic() + timeout_s
        with self.arrived:
            while len(self.messages) < n and time.monotonic() < deadline:
                self.arrived.wait(max(deadline - time.monotonic(), 0.01))
            return [(t, json.loads(p)) for t, p in self.messages[:n]]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@dataclass
class HttpSink:
    """A real HTTP server on 127.0.0.1 that records POSTed JSON and answers ``statuses`` in
    turn (then 200)."""

    url: str
    received: list[Any]
    statuses: list[int]
