"""A real Mosquitto broker for tests, shared by every test folder (a pytest plugin).

``tests/conftest.py`` registers this module with ``pytest_plugins``, so the ``mosquitto``
fixture is seen everywhere under ``tests/``; the classes and helpers are imported by name
(``from mqtt_broker import Broker, write_mosquitto_conf``: ``tests/`` is on ``sys.path``
because its conftest is not in a package). Not ``from conftest import``: several folders have
a module of that name, and the one imported last wins when folders run together.

The broker runs ``/usr/sbin/mosquitto`` (``apt-get install mosquitto``) on a free 127.0.0.1
port with persistence on, as in production, so ``stop()`` then ``start()`` on the same port is
a broker restart that keeps queued QoS 1 messages and persistent sessions. Tests that need
credentials, ACLs or TLS write their own config with :func:`write_mosquitto_conf` and start a
:class:`Broker` on it.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

READY_TIMEOUT_S = 20.0


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def mosquitto_binary() -> str | None:
    """The Mosquitto broker's executable, or None when it is not installed."""
    for candidate in ("/usr/sbin/mosquitto", shutil.which("mosquitto")):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


MOSQUITTO = mosquitto_binary() or "/usr/sbin/mosquitto"


def wait_for(check: Any, timeout: float, what: str) -> None:
    """Poll ``check()`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def _port_open(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def write_mosquitto_conf(folder: Path, port: int, extra: str = "") -> Path:
    """A broker config in ``folder``: loopback listener on ``port``, anonymous, persistence in
    ``folder``, an in-flight window of 1,000 (what the edge runtime's group commit needs), and
    ``extra`` lines (password file, ACL, TLS)."""
    folder.mkdir(parents=True, exist_ok=True)
    conf = folder / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\n"
        "allow_anonymous true\n"
        "persistence true\n"
        f"persistence_location {folder}/\n"
        "max_inflight_messages 1000\n"
        "max_queued_messages 1000000\n"
        "log_type error\n"
        # As root, mosquitto drops to the "mosquitto" user, who cannot read pytest's private
        # temporary folders (password file, persistence): stay the user the tests run as.
        + (f"user {pwd.getpwuid(os.geteuid()).pw_name}\n" if os.geteuid() == 0 else "")
        + extra)
    return conf


@dataclass
class Broker:
    """A Mosquitto broker on 127.0.0.1; ``stop()`` and ``start()`` it to test outages."""

    conf: Path
    port: int
    host: str = "127.0.0.1"
    binary: str = MOSQUITTO
    process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    @property
    def log(self) -> Path:
        return self.conf.parent / "mosquitto.log"

    def start(self) -> None:
        """Start the broker and wait (with a deadline) until it accepts connections."""
        with self.log.open("ab") as log:
            self.process = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                            stdout=log, stderr=subprocess.STDOUT)

        def listening() -> bool:
            assert self.process is not None
            assert self.process.poll() is None, f"Mosquitto exited: {self.log.read_text()}"
            return _port_open(self.host, self.port)

        wait_for(listening, READY_TIMEOUT_S, f"Mosquitto to listen on port {self.port}")

    def stop(self, sig: int = signal.SIGTERM) -> None:
        """Stop the broker (``sig``, SIGTERM by default: it saves its queues; SIGKILL after
        10 s)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(sig)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
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


@pytest.fixture
def mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A running Mosquitto on a free loopback port (persistence on), stopped after the test;
    skips, naming the package, when Mosquitto is not installed."""
    binary = mosquitto_binary()
    if binary is None:
        pytest.skip("Mosquitto is not installed (apt-get install mosquitto)")
    port = free_port()
    broker = Broker(write_mosquitto_conf(tmp_path / "mosquitto", port), port, binary=binary)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()
