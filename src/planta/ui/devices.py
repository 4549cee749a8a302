"""The devices page: every edge device, how it stands, and whether its inputs drift.

    GET /ui/devices     devices.html   name, use case, group, last seen, model version,
                                       outbox depth and drops, predictions received, and the
                                       drift of its last 24 h of inputs (monitoring, per device)

Read-only (viewer): enrolling and revoking are admin acts on the command line
(`planta devices enrol|revoke`) or over the API (POST /v1/devices).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from planta.errors import PlantaError
from planta.services.devices import DeviceService
from planta.store.devices import DeviceStore
from planta.ui.view import View

# A device not heard from for this long is shown as silent (heartbeats come every 30 s).
SILENT_S = 300.0


def _ago(view: View, at: datetime | None) -> str:
    if at is None:
        return view.t("devices.never")
    s = (datetime.now(UTC) - at).total_seconds()
    if s < 120:
        return view.t("devices.seconds_ago", n=int(s))
    if s < 7200:
        return view.t("devices.minutes_ago", n=int(s // 60))
    return f"{at:%Y-%m-%d %H:%M} UTC"


def devices(view: View) -> dict[str, Any]:
    rt = view.rt
    svc = DeviceService(rt.ws, DeviceStore(rt.ws.store, rt.ws.audit, rt.tokens))
    rows = []
    now = datetime.now(UTC)
    for d in svc.devices.list():
        drift: dict[str, Any] = {}
        if d.is_active:
            try:
                drift = svc.drift(d)
            except PlantaError as exc:  # one device's drift must not hide the others
                drift = {"rows": 0, "reason": exc.message}
        silent = d.last_seen_at is None or (now - d.last_seen_at).total_seconds() > SILENT_S
        rows.append({"name": d.name, "usecase": d.usecase, "group": d.group or "",
                     "active": d.is_active, "silent": silent,
                     "seen": _ago(view, d.last_seen_at), "version": d.model_version,
                     "depth": d.outbox_depth, "dropped": d.outbox_dropped or 0,
                     "received": f"{d.received:,}", "drift": drift})
    return {"devices": rows, "pins": svc.devices.pins()}


__all__ = ["devices"]
