"""Test doubles and helpers for the edge tests (imported by conftest and by child processes).

``FakeModel`` stands in for ``planta_edge.model.EdgeModel`` where the test is about the outbox,
the sync or MQTT, not about the model: it validates with the real contract rules and answers a
probability from the torque. ``TcpProxy`` is the device-hub link that a test cuts and restores.
"""

from __future__ import annotations

import math
import socket
import threading
from dataclasses import dataclass
from typing import Any

import numpy as np

from planta_edge.contract import Contract, Field, validate_records

CONTRACT = Contract(fields=(
    Field("type", "category", label="Type", categories=("L", "M", "H")),
    Field("air_temperature_k", "number", label="Air temperature [K]", minimum=290.0,
          maximum=310.0, unit="K", physical_min=0.0),
    Field("torque_nm", "number", label="Torque [Nm]", minimum=3.0, maximum=80.0, unit="Nm",
          physical_min=0.0),
), target="machine_failure")


def reading(i: int) -> dict[str, Any]:
    """An AI4I-like reading, different for each ``i``."""
    return {"type": "LMH"[i % 3], "air_temperature_k": 298.0 + (i % 7) * 0.5,
            "torque_nm": 20.0 + (i % 50)}


@dataclass
class FakePredictions:
    ok: np.ndarray
    prediction: list[Any]
    probability: list[float | None]
    reasons: list[str | None]
    rules: list[str | None]


class FakeModel:
    """An EdgeModel stand-in: real contract checks, a made-up probability."""

    def __init__(self, version: int = 1, digest: str = "f" * 64, *, fail: bool = False) -> None:
        self.usecase = "failure"
        self.version = version
        self.digest = digest
        self.contract = CONTRACT
        self.threshold = 0.5
        self.fail = fail

    def predict_records(self, records: list[dict[str, Any]]) -> FakePredictions:
        if self.fail:
            raise RuntimeError("this model is broken")
        checked = validate_records(self.contract, records)
        torque = checked.values["torque_nm"]
        prob = [1 / (1 + math.exp(-(t - 60) / 5)) if ok else None
                for t, ok in zip(torque, checked.ok, strict=True)]
        rules: list[str | None] = [None] * len(records)
        for v in checked.violations:
            if v.row is not None and rules[v.row] is None:
                rules[v.row] = v.rule
        return FakePredictions(
            ok=checked.ok, prediction=[int(p >= 0.5) if p is not None else None for p in prob],
            probability=prob, reasons=list(checked.reasons), rules=rules)


class TcpProxy:
    """A loopback TCP proxy on a fixed port: ``stop`` cuts the link (listener and every open
    connection), ``start`` restores it."""

    def __init__(self, target_port: int, port: int) -> None:
        self.target_port = target_port
        self.port = port
        self._server: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def start(self) -> None:
        srv = socket.socket()
        srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        srv.bind(("127.0.0.1", self.port))
        srv.listen(16)
        self._server = srv
        threading.Thread(target=self._accept, args=(srv,), daemon=True).start()

    def _accept(self, srv: socket.socket) -> None:
        while True:
            try:
                client, _ = srv.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=5)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def stop(self) -> None:
        if self._server is not None:
            try:  # wakes the accept() blocked in the other thread; close alone does not
                self._server.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            self._server.close()
            self._server = None
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            s.close()
