"""Updates over the air: take the bundle the hub approved, safely, or keep the old one.

    heartbeat answer: bundle {version, digest, size}     (digest ≠ the running model's)
      │ download  GET /v1/edge/bundle into bundles/<digest>.part, resumed with Range after a cut
      │ verify    sha256 of the file = digest; signature by a trusted key, every member's hash
      │           (planta_edge.model.EdgeModel.load); refused → old model keeps serving
      │ beside    the new model is loaded next to the running one
      │ health    it scores the device's recent readings: no error, finite answers, and it
      │           accepts what the running model accepted
      │ switch    runtime.swap(new); current.json names it (survives restarts)
      │ probation for ``probation_s`` after the switch, a model error rolls back by itself
      ▼
    every step is reported to the hub (POST /v1/edge/events), which audits it

A refused bundle is not downloaded again for ``retry_refused_s`` (the hub keeps offering it
until someone approves another), and the reason goes to the hub each time.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from planta_edge.errors import IntegrityError, PlantaError
from planta_edge.runtime import EdgeRuntime, Model, score

log = logging.getLogger("planta_edge.updates")

def load_model(source: bytes | Path, trusted_keys: Sequence[str]) -> Model:
    """Verify and load an edge bundle (the one place the runtime opens bundles)."""
    from planta_edge.model import EdgeModel

    model: Model = EdgeModel.load(source, trusted_keys=list(trusted_keys))
    return model


def health_check(new: Model, old: Model | None, recent: Sequence[dict[str, Any]]) -> str | None:
    """Why ``new`` must not replace ``old`` on these readings, or None when it may."""
    if not recent:
        return None
    records = [dict(r) for r in recent]
    try:
        fresh = score(new, records)
    except Exception as exc:  # noqa: BLE001 - any failure of the new model is a refusal
        return f"the new model failed on recent readings: {type(exc).__name__}: {exc}"
    for s in fresh:
        if s.ok and s.probability is not None and not math.isfinite(s.probability):
            return "the new model gave a non-finite probability on a recent reading"
    was_ok = [s.ok for s in score(old, records)] if old is not None else [True] * len(records)
    lost = sum(1 for a, b in zip(was_ok, fresh, strict=True) if a and not b.ok)
    if lost > len(records) // 2:
        return (f"the new model refuses {lost} of {len(records)} recent readings that the "
                "running model accepts (its contract does not fit this machine's data)")
    return None


class Updater:
    """Keeps the device on the approved bundle.

    Args:
        state_dir: where bundles and ``current.json`` live.
        trusted_keys: public keys whose signatures the device accepts.
    """

    def __init__(self, state_dir: Path, trusted_keys: Sequence[str], *,
                 probation_s: float = 300.0, retry_refused_s: float = 3600.0) -> None:
        self.dir = Path(state_dir) / "bundles"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.current_file = Path(state_dir) / "current.json"
        self.trusted_keys = list(trusted_keys)
        self.probation_s = probation_s
        self.retry_refused_s = retry_refused_s
        self.refused: dict[str, tuple[float, str]] = {}   # digest -> (when, why)
        self.previous: Model | None = None
        self.switched_to = ""     # the digest the hub offered for the model on probation
        self.probation_until = 0.0
        self.errors_at_switch = 0
        self.applied = 0
        self.rolled_back = 0
        self._lock = threading.Lock()

    # -- start --------------------------------------------------------------------------------
    def load_current(self, start_bundle: Path | None) -> Model | None:
        """The model to start with: the one last switched to, else the config's bundle."""
        if self.current_file.exists():
            try:
                digest = json.loads(self.current_file.read_text())["digest"]
                return load_model(self.dir / f"{digest}.planta", self.trusted_keys)
            except (OSError, ValueError, KeyError, PlantaError) as exc:
                log.error("the current bundle cannot be loaded (%s); falling back", exc)
        if start_bundle is not None:
            return load_model(start_bundle, self.trusted_keys)
        return None

    def stats(self) -> dict[str, Any]:
        return {"applied": self.applied, "rolled_back": self.rolled_back,
                "refused": {d[:12]: why for d, (_, why) in self.refused.items()},
                "on_probation": time.monotonic() < self.probation_until}

    # -- each heartbeat -------------------------------------------------------------------------
    def consider(self, target: dict[str, Any] | None, runtime: EdgeRuntime, link: Any) -> str:
        """Act on the hub's answer; returns what happened (``current``, ``applied``, ...)."""
        with self._lock:
            if self._probation_failed(runtime):
                self._rollback(runtime, link)
                return "rolled_back"
            if not target:
                return "none"
            digest = str(target.get("digest", ""))
            model = runtime.model
            if model is not None and model.digest == digest:
                return "current"
            refused = self.refused.get(digest)
            if refused is not None and time.monotonic() - refused[0] < self.retry_refused_s:
                return "refused"
            try:
                data = self.download(link, digest, int(target.get("size") or 0))
            except ConnectionError as exc:
                log.warning("bundle download interrupted (%s); resumes next time", exc)
                return "interrupted"
            except IntegrityError as exc:
                return self._refuse(digest, str(exc), link, target)
            try:
                new = load_model(data, self.trusted_keys)
            except PlantaError as exc:
                return self._refuse(digest, str(exc), link, target)
            why = health_check(new, model, list(runtime.recent)[-64:])
            if why is not None:
                return self._refuse(digest, why, link, target)
            self.previous = runtime.swap(new)
            self.switched_to = digest
            self.errors_at_switch = runtime.stats.model_errors
            self.probation_until = time.monotonic() + self.probation_s
            self._write_current(digest)
            self.applied += 1
            _report(link, "update_applied", {
                "version": target.get("version"), "digest": digest,
                "previous_version": getattr(self.previous, "version", None),
                "previous_digest": getattr(self.previous, "digest", None)})
            return "applied"

    def _probation_failed(self, runtime: EdgeRuntime) -> bool:
        return (self.previous is not None and time.monotonic() < self.probation_until
                and runtime.stats.model_errors > self.errors_at_switch)

    def _rollback(self, runtime: EdgeRuntime, link: Any) -> None:
        assert self.previous is not None
        failed = runtime.swap(self.previous)
        self.rolled_back += 1
        digest = self.previous.digest
        self._write_current(digest)
        bad = self.switched_to or getattr(failed, "digest", "")
        self.refused[bad] = (time.monotonic(), "it failed while predicting after the switch")
        log.error("the new model failed after the switch; back on version %s",
                  self.previous.version)
        _report(link, "update_rolled_back", {
            "failed_version": getattr(failed, "version", None), "failed_digest": bad,
            "version": self.previous.version, "digest": digest})
        self.previous, self.probation_until = None, 0.0

    def _refuse(self, digest: str, why: str, link: Any, target: dict[str, Any]) -> str:
        self.refused[digest] = (time.monotonic(), why)
        (self.dir / f"{digest}.part").unlink(missing_ok=True)
        (self.dir / f"{digest}.planta").unlink(missing_ok=True)
        log.error("bundle %s refused, the running model keeps serving: %s", digest[:12], why)
        _report(link, "update_refused", {"version": target.get("version"), "digest": digest,
                                         "reason": why})
        return "refused"

    def _write_current(self, digest: str) -> None:
        tmp = self.current_file.with_suffix(".tmp")
        tmp.write_text(json.dumps({"digest": digest}))
        os.replace(tmp, self.current_file)

    # -- download -----------------------------------------------------------------------------
    def download(self, link: Any, digest: str, size: int) -> bytes:
        """The approved bundle's bytes, resuming a partial download; IntegrityError when the
        finished file's sha256 is not ``digest``; ConnectionError when cut (kept to resume)."""
        final = self.dir / f"{digest}.planta"
        if final.exists():
            return final.read_bytes()
        part = self.dir / f"{digest}.part"
        have = part.stat().st_size if part.exists() else 0
        headers = {"if-range": f'"{digest}"'}
        if have:
            headers["range"] = f"bytes={have}-"
        seen: dict[str, Any] = {}

        def sink(status: int, hdrs: dict[str, str]) -> Any:
            seen["status"], seen["headers"] = status, hdrs
            if hdrs.get("x-planta-sha256", digest) != digest:
                return None  # the hub now offers another bundle
            if status == 206 and have:
                return part.open("ab")
            if status == 200:
                return part.open("wb")
            return None

        status = link.fetch_into("/v1/edge/bundle", sink, headers)
        if seen["headers"].get("x-planta-sha256", digest) != digest:
            raise ConnectionError("the hub now offers another bundle; asking again")
        if status == 416:
            part.unlink(missing_ok=True)
            raise ConnectionError("the partial download did not fit the bundle; starting over")
        if status not in (200, 206):
            raise ConnectionError(f"the hub answered {status} for the bundle")
        data = part.read_bytes()
        if size and len(data) < size:
            raise ConnectionError(f"bundle download incomplete ({len(data)} of {size} bytes)")
        if hashlib.sha256(data).hexdigest() != digest:
            part.unlink(missing_ok=True)
            raise IntegrityError(f"The downloaded bundle's sha256 is not {digest[:12]}…: it was "
                                 "altered or truncated on the way.",
                                 hint="It is downloaded again after the retry delay.")
        os.replace(part, final)
        _report(link, "update_downloaded", {"digest": digest, "size": len(data)})
        return data


def _report(link: Any, event: str, detail: dict[str, Any]) -> None:
    """Tell the hub (best effort: the step happened whether or not the hub hears of it now)."""
    if link is None:
        return
    try:
        link.post_json("/v1/edge/events", json.dumps({"event": event, "detail": detail},
                                                      default=str).encode())
    except (ConnectionError, PlantaError) as exc:
        log.warning("could not report %s to the hub: %s", event, exc)


__all__ = ["Updater", "health_check", "load_model"]
