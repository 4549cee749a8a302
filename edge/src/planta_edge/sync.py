"""Sending the outbox to the hub: batches, at least once, oldest first, with backoff.

    loop:  peek(batch) ─► POST /v1/edge/predictions ─► 200 ─► ack (delete) ─► next batch
                                     │ hub down, timeout, 5xx
                                     ▼
                             wait: full jitter, min(cap, base · 2^failures), then again
           every heartbeat_s: POST /v1/edge/heartbeat (model, outbox depth, dropped, refusals)
                              ◄─ the bundle approved for this device ─► updates

**At least once, exactly once in effect.** A batch is deleted from the outbox only after the
hub answered that it committed it; if the answer is lost (link cut, device killed), the same
batch goes again and the hub ignores the prediction ids it already has. One batch is in flight
at a time, so the hub receives each device's predictions in the order they were made.

**Backoff with jitter.** After a failure the syncer waits a random time between 0 and
``min(max_backoff_s, base_backoff_s · 2^failures)`` ("full jitter"), so a hundred devices coming
back after a hub outage do not all knock at once.

Standard library only (``http.client``): the device has no HTTP client library.
"""

from __future__ import annotations

import http.client
import json
import logging
import os
import random
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, BinaryIO
from urllib.parse import urlsplit

from planta_edge import __version__
from planta_edge.errors import AccessError, ConfigError, PlantaError
from planta_edge.outbox import Outbox, OutboxRow

log = logging.getLogger("planta_edge.sync")


@dataclass
class HubLink:
    """How to reach the hub: its URL, this device's token, and timeouts."""

    url: str
    token: str
    timeout_s: float = 10.0
    ca_file: str | None = None

    def __post_init__(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ConfigError(f"The hub URL {self.url!r} is not an http(s) URL.",
                              hint='Write it as url = "http://hub.plant.local:8000".')
        self._parts = parts
        self._conn: http.client.HTTPConnection | None = None
        self._lock = threading.Lock()

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            host, port = self._parts.hostname or "", self._parts.port
            if self._parts.scheme == "https":
                ctx = ssl.create_default_context(cafile=self.ca_file)
                self._conn = http.client.HTTPSConnection(host, port, timeout=self.timeout_s,
                                                         context=ctx)
            else:
                self._conn = http.client.HTTPConnection(host, port, timeout=self.timeout_s)
        return self._conn

    def request(self, method: str, path: str, body: bytes | None = None,
                headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request on a kept-alive connection; any network error closes it and raises
        :class:`ConnectionError`. Returns status, headers (lower-case names) and body."""
        base = self._parts.path.rstrip("/")
        hdrs = {"authorization": f"Bearer {self.token}", "user-agent": f"planta-edge/{__version__}"}
        if body is not None:
            hdrs["content-type"] = "application/json"
        hdrs.update(headers or {})
        with self._lock:
            try:
                conn = self._connection()
                conn.request(method, base + path, body=body, headers=hdrs)
                resp = conn.getresponse()
                data = resp.read()
                return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise ConnectionError(f"hub {self.url} unreachable: {exc}") from exc

    def fetch_into(self, path: str, sink: Callable[[int, dict[str, str]], BinaryIO],
                   headers: dict[str, str] | None = None,
                   chunk_bytes: int = 256 * 1024) -> int:
        """GET ``path`` and stream the body into the file ``sink(status, headers)`` opens
        (None: the body is not wanted), chunk by chunk, so a cut connection leaves what had
        arrived on disk. Returns the status; ConnectionError when the connection breaks."""
        base = self._parts.path.rstrip("/")
        hdrs = {"authorization": f"Bearer {self.token}",
                "user-agent": f"planta-edge/{__version__}", **(headers or {})}
        with self._lock:
            try:
                conn = self._connection()
                conn.request("GET", base + path, headers=hdrs)
                resp = conn.getresponse()
                out = sink(resp.status, {k.lower(): v for k, v in resp.getheaders()})
                try:
                    while chunk := resp.read(chunk_bytes):
                        if out is not None:
                            out.write(chunk)
                finally:
                    if out is not None:
                        out.flush()
                        os.fsync(out.fileno())
                        out.close()
                if resp.length:  # the server promised more than came
                    raise http.client.IncompleteRead(b"", resp.length)
                return int(resp.status)
            except (OSError, http.client.HTTPException) as exc:
                self.close()
                raise ConnectionError(f"hub {self.url} unreachable: {exc}") from exc

    def post_json(self, path: str, payload: bytes) -> dict[str, Any]:
        """POST JSON; the decoded answer on 2xx, :class:`AccessError` on 401/403,
        :class:`ConnectionError` on anything else (retried later)."""
        status, _, data = self.request("POST", path, payload)
        if status in (401, 403):
            raise AccessError(f"The hub refused this device's token ({status}): "
                              f"{data[:200].decode('utf-8', 'replace')}",
                              hint="Enrol the device again (`planta devices enrol`) and put "
                              "the new token in its config.")
        if not 200 <= status < 300:
            raise ConnectionError(f"hub answered {status}: {data[:200]!r}")
        answer: dict[str, Any] = json.loads(data or b"{}")
        return answer

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def batch_body(rows: list[OutboxRow]) -> bytes:
    """The JSON of a batch, built around the stored bodies without parsing them again."""
    parts = [b'{"predictions":[']
    for i, r in enumerate(rows):
        head = json.dumps({"prediction_id": r.prediction_id, "at": r.at, "usecase": r.usecase,
                           "version": r.version, "entity": r.entity},
                          separators=(",", ":")).encode()
        parts.append((b"," if i else b"") + head[:-1] + b',"record":' + r.body + b"}")
    parts.append(b"]}")
    return b"".join(parts)


class Syncer:
    """The thread that empties the outbox into the hub and sends heartbeats.

    Args:
        outbox: the device's outbox.
        link: the hub.
        status: called for each heartbeat; returns the JSON-able state of the device.
        on_heartbeat: called with the hub's answer to a heartbeat (the approved bundle).
    """

    def __init__(self, outbox: Outbox, link: HubLink, *, batch_rows: int = 500,
                 heartbeat_s: float = 30.0, base_backoff_s: float = 0.5,
                 max_backoff_s: float = 30.0, idle_s: float = 0.2,
                 status: Callable[[], dict[str, Any]] | None = None,
                 on_heartbeat: Callable[[dict[str, Any]], None] | None = None) -> None:
        self.outbox = outbox
        self.link = link
        self.batch_rows = batch_rows
        self.heartbeat_s = heartbeat_s
        self.base_backoff_s = base_backoff_s
        self.max_backoff_s = max_backoff_s
        self.idle_s = idle_s
        self.status = status or (lambda: {})
        self.on_heartbeat = on_heartbeat
        self.failures = 0
        self.sent = 0
        self.duplicates = 0
        self.last_error: str | None = None
        self.last_sync_at: float | None = None
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._next_heartbeat = 0.0
        self._thread = threading.Thread(target=self._run, name="planta-edge-sync", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._thread.join()
        self.link.close()

    def wake(self) -> None:
        """Try now (new predictions, or a test restoring the link)."""
        self._wake.set()

    def backoff_s(self) -> float:
        """The next wait after ``failures`` failures in a row (full jitter)."""
        ceiling = min(self.max_backoff_s, self.base_backoff_s * 2 ** min(self.failures, 30))
        return random.uniform(0, ceiling)  # nosec B311 - jitter, not a secret

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                if time.monotonic() >= self._next_heartbeat:
                    self.heartbeat()
                sent = self.send_once()
            except Exception as exc:  # noqa: BLE001 - the sync thread must outlive any failure
                self.failures += 1
                self.last_error = str(exc)
                wait = self.backoff_s()
                expected = isinstance(exc, (ConnectionError, AccessError, PlantaError,
                                            ValueError))
                log.log(logging.WARNING if expected else logging.ERROR,
                        "hub sync failed (%d in a row), next try in %.1f s: %s",
                        self.failures, wait, exc, exc_info=not expected)
                self._sleep(wait)
                continue
            if sent == 0:
                self._sleep(self.idle_s)

    def _sleep(self, seconds: float) -> None:
        self._wake.wait(seconds)
        self._wake.clear()

    def send_once(self) -> int:
        """Send the oldest batch; returns how many predictions the hub took (0: none waiting)."""
        rows = self.outbox.peek(self.batch_rows)
        if not rows:
            return 0
        answer = self.link.post_json("/v1/edge/predictions", batch_body(rows))
        self.outbox.ack(rows[-1].seq)
        self.failures = 0
        self.last_error = None
        self.last_sync_at = time.time()
        self.sent += int(answer.get("accepted", 0))
        self.duplicates += int(answer.get("duplicates", 0))
        return len(rows)

    def heartbeat(self) -> dict[str, Any]:
        """Tell the hub how this device stands; hand its answer to ``on_heartbeat``."""
        self._next_heartbeat = time.monotonic() + self.heartbeat_s
        state = self.status()
        state.setdefault("outbox", self.outbox.stats().to_dict())
        state["sync"] = {"sent": self.sent, "duplicates": self.duplicates,
                         "failures": self.failures, "last_error": self.last_error}
        answer = self.link.post_json("/v1/edge/heartbeat",
                                     json.dumps(state, default=str).encode())
        self.failures = 0
        if self.on_heartbeat is not None:
            try:
                self.on_heartbeat(answer)
            except Exception:  # noqa: BLE001 - an update problem must not stop the sync
                log.exception("handling the hub's heartbeat answer failed")
        return answer


__all__ = ["HubLink", "Syncer", "batch_body"]
