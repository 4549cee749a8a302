"""Edge devices as the hub serves them: which bundle a device should run, its heartbeats,
its batches of predictions, and what it reports about updates.

    heartbeat(device, status) ─► stored ─► answer: the bundle approved for the device
    approved(device)          ─► the group's pin, else the use case's production version
                                 ─► that version's edge bundle (ONNX, signed: `planta export
                                    --onnx`), by digest and size
    report(device, event)     ─► an audit event (update downloaded, switched, rolled back, refused)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from planta.errors import NotFoundError
from planta.services.workspace import Workspace
from planta.store.devices import Device, DeviceStore
from planta.store.metadata import utc_now

# The most recent records of a device that its drift figure reads (a day of one reading a
# second on a few machines).
DRIFT_RECORDS = 20_000
# What a device may report about itself (anything else is refused, not audited).
EVENTS = ("update_downloaded", "update_refused", "update_applied", "update_rolled_back",
          "outbox_dropped", "started")


@dataclass(frozen=True)
class ApprovedBundle:
    """The edge bundle a device should run: use case, model version, file digest and size."""

    usecase: str
    version: int
    digest: str
    size: int
    pinned: bool

    def to_dict(self) -> dict[str, Any]:
        return {"usecase": self.usecase, "version": self.version, "digest": self.digest,
                "size": self.size, "pinned": self.pinned, "url": "/v1/edge/bundle"}


# (workspace, use case, version) -> (digest, size) of the version's edge bundle, or None.
EdgeBundleFinder = Callable[[Workspace, str, int], "tuple[str, int] | None"]


def find_edge_bundle(ws: Workspace, usecase: str, version: int) -> tuple[str, int] | None:
    """The newest signed edge bundle exported from ``usecase`` version ``version``, if any
    (``planta export --onnx`` records it in the audit trail; the file is an artifact)."""
    from planta.services.export import edge_bundle_for

    digest = edge_bundle_for(ws, usecase, version)
    if digest is None:
        return None
    return digest, ws.artifacts.size(digest)


def device_window(ws: Workspace, baseline: Any, device: str, since: datetime, until: datetime,
                  *, max_records: int = DRIFT_RECORDS, sample: Any = None) -> Any:
    """The monitoring window of one device's logged inputs in [since, until): its newest
    ``max_records`` readings (predictions logged with the device's name), or None when it has
    none. ``baseline`` is a :class:`planta.services.monitor.Baseline`; ``sample`` an optional
    ``RowSample`` filled on the way (for the effect estimate)."""
    from sqlalchemy import select

    from planta.services.monitor import window_from_columns
    from planta.store.metadata import predictions

    stmt = (select(predictions.c.inputs).where(
        predictions.c.usecase == baseline.usecase, predictions.c.device == device,
        predictions.c.at >= since, predictions.c.at < until)
        .order_by(predictions.c.at.desc()).limit(max_records))
    records: list[dict[str, Any]] = []
    with ws.store.read() as conn:
        for (text,) in conn.execute(stmt):
            records.extend(r for r in json.loads(text) if isinstance(r, dict))
    if not records:
        return None
    names = dict.fromkeys(k for r in records for k in r)
    columns = {k: [r.get(k) for r in records] for k in names}
    return window_from_columns(baseline, iter([columns]), sample)


class DeviceService:
    """The hub's side of its edge devices."""

    def __init__(self, ws: Workspace, devices: DeviceStore, *,
                 finder: EdgeBundleFinder = find_edge_bundle) -> None:
        self.ws = ws
        self.devices = devices
        self.finder = finder

    def approved(self, device: Device) -> tuple[ApprovedBundle | None, str | None]:
        """The bundle approved for ``device`` and, when there is none, why (plain words)."""
        pinned = self.devices.pinned_version(device.usecase, device.group)
        version = pinned
        if version is None:
            version = self.ws.registry.aliases(device.usecase).get("production")
        if version is None:
            return None, (f"Use case {device.usecase!r} has no production version yet; "
                          "promote one, or pin the device's group to a version.")
        found = self.finder(self.ws, device.usecase, int(version))
        if found is None:
            return None, (f"Version {version} of {device.usecase!r} has no edge bundle; "
                          f"run `planta export {device.usecase} --version {version} --onnx`.")
        digest, size = found
        return ApprovedBundle(device.usecase, int(version), digest, size, pinned is not None), None

    def heartbeat(self, device: Device, status: Mapping[str, Any]) -> dict[str, Any]:
        """Store the heartbeat; answer with the approved bundle (or why there is none)."""
        self.devices.heartbeat(device.name, status)
        bundle, reason = self.approved(device)
        return {"ok": True, "device": device.name,
                "bundle": None if bundle is None else bundle.to_dict(), "reason": reason}

    def bundle_bytes(self, device: Device) -> tuple[ApprovedBundle, bytes]:
        """The approved bundle's file; NotFoundError when there is none."""
        bundle, reason = self.approved(device)
        if bundle is None:
            raise NotFoundError(reason or "No bundle is approved for this device.")
        return bundle, self.ws.artifacts.get_bytes(bundle.digest)

    def drift(self, device: Device, *, hours: float = 24.0,
              max_records: int = DRIFT_RECORDS) -> dict[str, Any]:
        """How the device's recent inputs compare with its model's reference profile (the
        monitoring report's statistics, on this device's logged predictions only).

        Returns ``{"rows", "drifted": [feature names], "signals"}``, or ``{"rows": 0,
        "reason": ...}`` when there is nothing to compare yet.
        """
        from planta.core.drift_report import compare
        from planta.services.monitor import load_baseline, settings_for

        version = device.model_version or self.ws.registry.aliases(device.usecase).get(
            "production")
        if version is None:
            return {"rows": 0, "reason": "no model version to compare with yet"}
        try:
            baseline = load_baseline(self.ws, device.usecase, int(version))
        except NotFoundError as exc:
            return {"rows": 0, "reason": exc.message}
        until = utc_now()
        window = device_window(self.ws, baseline, device.name, until - timedelta(hours=hours),
                               until, max_records=max_records)
        if window is None:
            return {"rows": 0, "reason": f"no predictions from this device in {hours:g} h"}
        report = compare(baseline.reference, window, settings_for(self.ws, device.usecase),
                         baseline.importance or None)
        return {"rows": report.rows, "version": int(version),
                "drifted": [f.name for f in report.drifted], "signals": dict(report.signals)}

    def report(self, device: Device, event: str, detail: Mapping[str, Any]) -> None:
        """Audit what a device says about itself (an update applied, a rollback)."""
        if event not in EVENTS:
            from planta.errors import InputError

            raise InputError(f"{event!r} is not a device event ({', '.join(EVENTS)}).")
        self.ws.audit.append(f"device_{event}", f"device/{device.name}",
                             f"device:{device.name}", dict(detail))


__all__ = ["EVENTS", "ApprovedBundle", "DeviceService", "find_edge_bundle"]
