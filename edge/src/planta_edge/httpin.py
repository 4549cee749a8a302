"""The device's local HTTP door: a PLC gateway or a script posts readings, gets predictions.

    POST /predict   {"records": [{...}, ...], "entity": "press-07"}   (or a bare list)
                    ─► 200 {"predictions": [{prediction_id, prediction, probability,
                                             reason}, ...]}  after the outbox commit
    GET  /status    the runtime's state (model, outbox depth and drops, sync)
    GET  /healthz   200 while a model is loaded, 503 before

Standard library only (``http.server``), listening on 127.0.0.1 unless configured otherwise:
the box's own programs are the clients; the plant network reaches the device through MQTT.
A request is answered only after its predictions are committed to the outbox, so an answered
prediction reaches the hub even if the device loses power right after.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from planta_edge.errors import PlantaError
from planta_edge.runtime import EdgeRuntime

log = logging.getLogger("planta_edge.http")

MAX_BODY_BYTES = 10 * 1024 * 1024
MAX_RECORDS = 10_000


class HttpInput:
    """Serve the local HTTP door in a background thread.

    Args:
        runtime: the edge runtime.
        host, port: where to listen (port 0: any free port, see :attr:`port`).
        status: returns the JSON-able state for ``GET /status``.
    """

    def __init__(self, runtime: EdgeRuntime, *, host: str = "127.0.0.1", port: int = 8765,
                 status: Callable[[], dict[str, Any]] | None = None) -> None:
        self.runtime = runtime
        self.status = status or (lambda: {})
        handler = _handler(self)
        self.server = ThreadingHTTPServer((host, port), handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever,
                                        name="planta-edge-http", daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def start(self) -> None:
        self._thread.start()
        log.info("local HTTP input on %s:%d", *self.server.server_address[:2])

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def parse_records(doc: Any) -> tuple[list[dict[str, Any]], list[str | None]]:
    """Records and their entities from a request body.

    >>> parse_records({"records": [{"a": 1}], "entity": "m1"})
    ([{'a': 1}], ['m1'])
    """
    entity = None
    if isinstance(doc, dict):
        entity = doc.get("entity")
        doc = doc.get("records")
    if not isinstance(doc, list) or not doc or not all(isinstance(r, dict) for r in doc):
        raise ValueError('send {"records": [{...}, ...]} with at least one record')
    if len(doc) > MAX_RECORDS:
        raise ValueError(f"at most {MAX_RECORDS} records per request")
    return doc, [None if entity is None else str(entity)] * len(doc)


def _handler(door: HttpInput) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "planta-edge"

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib name
            log.debug(format, *args)

        def _send(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body, default=str).encode()
            self.send_response(status)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802 - http.server's naming
            if self.path == "/healthz":
                ok = door.runtime.model is not None
                self._send(200 if ok else 503, {"ok": ok})
            elif self.path == "/status":
                self._send(200, door.status())
            else:
                self._send(404, {"error": "not found", "paths": ["/predict", "/status",
                                                                 "/healthz"]})

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            if self.path != "/predict":
                self._send(404, {"error": "not found"})
                return
            try:
                length = int(self.headers.get("content-length") or 0)
            except ValueError:
                length = -1
            if not 0 < length <= MAX_BODY_BYTES:
                self._send(413 if length > 0 else 400,
                           {"error": f"send a JSON body of at most {MAX_BODY_BYTES} bytes"})
                return
            try:
                records, entities = parse_records(json.loads(self.rfile.read(length)))
            except ValueError as exc:
                self._send(400, {"error": f"malformed request: {exc}"})
                return
            if door.runtime.model is None:
                self._send(503, {"error": "No model is loaded on this device yet; it takes "
                                          "the approved one from the hub at its next heartbeat."})
                return
            try:
                out = door.runtime.predict(records, entities, source="http")
            except (PlantaError, TimeoutError) as exc:
                body = exc.to_dict() if isinstance(exc, PlantaError) else {
                    "error": "The prediction was not stored in time; send it again."}
                self._send(503, body)
                return
            self._send(200, {"predictions": [
                {"prediction_id": p.prediction_id, "prediction": p.prediction,
                 "probability": p.probability, "model_version": p.version, "reason": p.reason}
                for p in out]})

    return Handler


__all__ = ["HttpInput", "parse_records"]
