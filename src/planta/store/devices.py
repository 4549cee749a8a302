"""Edge devices on the hub: enrolment, tokens, heartbeats, and their predictions.

    enrol(name, usecase, group)   ─► (Device, secret)  a viewer-role API token named
                                                       ``device:<name>``, shown once
    revoke(name)                  ─► the device and its token stop working
    by_token(token_id)            ─► the active device a token belongs to
    heartbeat(name, status)       ─► last seen, model version, outbox depth and drops
    add_predictions(name, batch)  ─► (accepted, duplicates)   idempotent on prediction ids
    pin(usecase, group, version) / unpin(usecase, group)      a group off the production line

**Exactly once.** A device sends each batch until the hub answers, so the hub may see a batch
twice (its answer was lost). Predictions keep the ids the device gave them; the batch's ids
already in the log are skipped inside the same transaction that inserts the others, so a
repeat changes nothing. Each prediction is one log row (channel ``edge``, ``device`` set),
which the prediction log, feedback and monitoring read like any other.

Enrolling, revoking and pinning are audit events in the same transaction as the change.
"""

from __future__ import annotations

import builtins
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from planta.errors import InputError, NotFoundError, keyed
from planta.store.audit import AuditLog
from planta.store.metadata import Store, device_pins, devices, predictions, utc_now
from planta.store.tokens import TokenStore

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")
TOKEN_PREFIX = "device:"  # nosec B105 - the start of a device token's name, not a secret
# The most predictions one batch may carry (the device sends 500 by default).
MAX_BATCH = 5000
# SQLite allows 32,766 parameters per statement; ids are checked in chunks well below it.
_IN_CHUNK = 900


@dataclass(frozen=True)
class Device:
    """One enrolled device as the hub knows it."""

    name: str
    usecase: str
    group: str | None
    token_id: str
    enrolled_by: str
    enrolled_at: datetime
    revoked_by: str | None = None
    revoked_at: datetime | None = None
    last_seen_at: datetime | None = None
    model_version: int | None = None
    model_digest: str | None = None
    outbox_depth: int | None = None
    outbox_dropped: int | None = None
    received: int = 0
    status: Mapping[str, Any] | None = None

    @property
    def is_active(self) -> bool:
        return self.revoked_at is None

    def to_dict(self) -> dict[str, Any]:
        def iso(t: datetime | None) -> str | None:
            return None if t is None else t.isoformat()

        return {"name": self.name, "usecase": self.usecase, "group": self.group,
                "active": self.is_active, "enrolled_by": self.enrolled_by,
                "enrolled_at": iso(self.enrolled_at), "revoked_by": self.revoked_by,
                "revoked_at": iso(self.revoked_at), "last_seen_at": iso(self.last_seen_at),
                "model_version": self.model_version, "model_digest": self.model_digest,
                "outbox_depth": self.outbox_depth, "outbox_dropped": self.outbox_dropped,
                "received": self.received, "status": dict(self.status or {})}


@dataclass(frozen=True)
class EdgePrediction:
    """One prediction as a device sends it (checked by :func:`parse_batch`)."""

    prediction_id: str
    at: datetime
    usecase: str
    version: int
    entity: str | None
    inputs: Mapping[str, Any]
    prediction: Any
    probability: float | None


def check_name(name: str, what: str = "device") -> str:
    """A device or group name: 1-100 letters, digits, ``_ . -``, starting with a letter or
    digit (it appears in URLs, MQTT topics and file names)."""
    if not isinstance(name, str) or not NAME.match(name):
        raise keyed(InputError, "device.bad_group" if what == "device group" else
                    "device.bad_name", name=repr(name))
    return name


def _device(row: Any) -> Device:
    return Device(name=row.name, usecase=row.usecase, group=row.device_group,
                  token_id=row.token_id, enrolled_by=row.enrolled_by,
                  enrolled_at=row.enrolled_at, revoked_by=row.revoked_by,
                  revoked_at=row.revoked_at, last_seen_at=row.last_seen_at,
                  model_version=row.model_version, model_digest=row.model_digest,
                  outbox_depth=row.outbox_depth, outbox_dropped=row.outbox_dropped,
                  received=int(row.received or 0), status=row.status)


class DeviceStore:
    """The devices of one store; tokens go through ``tokens`` so the server's guard knows them."""

    def __init__(self, store: Store, audit: AuditLog, tokens: TokenStore) -> None:
        self.store = store
        self.audit = audit
        self.tokens = tokens

    # -- enrolment --------------------------------------------------------------------------
    def enrol(self, name: str, usecase: str, *, group: str | None = None,
              actor: str) -> tuple[Device, str]:
        """Enrol a device and return it with its token's secret (shown once, never stored).

        Raises:
            InputError: a bad name, or a device of that name is already enrolled.
        """
        check_name(name)
        if group is not None:
            check_name(group, "device group")
        with self.store.read() as conn:
            row = conn.execute(select(devices).where(devices.c.name == name)).first()
        if row is not None and row.revoked_at is None:
            raise keyed(InputError, "device.enrolled", name=name,
                        since=f"{row.enrolled_at:%Y-%m-%d %H:%M}", by=row.enrolled_by)
        token, secret = self.tokens.create(TOKEN_PREFIX + name, "viewer", actor=actor)
        now = utc_now()
        values = {"usecase": usecase, "device_group": group, "token_id": token.id,
                  "enrolled_by": actor, "enrolled_at": now, "revoked_by": None,
                  "revoked_at": None, "received": 0 if row is None else row.received}
        try:
            with self.store.write() as conn:
                if row is None:
                    conn.execute(insert(devices).values(name=name, **values))
                else:
                    conn.execute(update(devices).where(devices.c.name == name).values(**values))
                self.audit.append("device_enrol", f"device/{name}", actor,
                                  {"usecase": usecase, "group": group, "token_id": token.id},
                                  connection=conn)
        except BaseException:
            self.tokens.revoke(token.id, actor=actor)
            raise
        return self.get(name), secret

    def revoke(self, name: str, *, actor: str) -> bool:
        """Revoke a device and its token; False when it was already revoked."""
        device = self.get(name)
        if not device.is_active:
            return False
        with self.store.write() as conn:
            conn.execute(update(devices).where(devices.c.name == name)
                         .values(revoked_by=actor, revoked_at=utc_now()))
            self.audit.append("device_revoke", f"device/{name}", actor,
                              {"usecase": device.usecase, "token_id": device.token_id},
                              connection=conn)
        self.tokens.revoke(device.token_id, actor=actor)
        return True

    # -- reading ------------------------------------------------------------------------------
    def get(self, name: str) -> Device:
        """The device ``name``; NotFoundError when none is enrolled under it."""
        with self.store.read() as conn:
            row = conn.execute(select(devices).where(devices.c.name == name)).first()
        if row is None:
            raise keyed(NotFoundError, "device.unknown", name=repr(name[:100]))
        return _device(row)

    def list(self, usecase: str | None = None) -> list[Device]:
        """Every device (revoked ones too), by name."""
        query = select(devices).order_by(devices.c.name)
        if usecase is not None:
            query = query.where(devices.c.usecase == usecase)
        with self.store.read() as conn:
            return [_device(r) for r in conn.execute(query)]

    def by_token(self, token_id: str) -> Device | None:
        """The active device holding this token, or None."""
        with self.store.read() as conn:
            row = conn.execute(select(devices).where(devices.c.token_id == token_id,
                                                     devices.c.revoked_at.is_(None))).first()
        return None if row is None else _device(row)

    # -- traffic ------------------------------------------------------------------------------
    def heartbeat(self, name: str, status: Mapping[str, Any]) -> None:
        """Record a heartbeat: last seen now, the model it runs, its outbox."""
        model = status.get("model") or {}
        outbox = status.get("outbox") or {}
        values = {"last_seen_at": utc_now(), "status": dict(status),
                  "model_version": _int(model.get("version")),
                  "model_digest": _text(model.get("digest"), 64),
                  "outbox_depth": _int(outbox.get("depth")),
                  "outbox_dropped": _int(outbox.get("dropped"))}
        with self.store.errors("record a heartbeat in"), self.store.engine.begin() as conn:
            conn.execute(update(devices).where(devices.c.name == name).values(**values))

    def add_predictions(self, device: Device, batch: Sequence[EdgePrediction], *,
                        route: str = "production") -> tuple[int, int]:
        """Log a device's predictions once each; returns (accepted, duplicates).

        One transaction: the ids already logged are skipped, the others inserted, and the
        device's counters updated, so a batch sent twice (or half-committed, never) counts once.
        Its own transaction, not ``store.write()``: device traffic must not queue behind
        training or approvals.
        """
        if not batch:
            return 0, 0
        ids = [p.prediction_id for p in batch]
        if len(set(ids)) != len(ids):
            raise InputError("A batch names the same prediction id twice.",
                             hint="Each prediction needs its own id.")
        with self.store.errors("log edge predictions in"), self.store.engine.connect() as conn:
            if self.store.dialect == "sqlite":
                conn.execution_options(planta_begin="IMMEDIATE")
            with conn.begin():
                seen = _existing(conn, ids)
                rows = [_row(device, p, route) for p in batch if p.prediction_id not in seen]
                if rows:
                    conn.execute(insert(predictions), rows)
                conn.execute(update(devices).where(devices.c.name == device.name).values(
                    received=devices.c.received + len(rows), last_seen_at=utc_now()))
        return len(rows), len(batch) - len(rows)

    # -- pins ---------------------------------------------------------------------------------
    def pin(self, usecase: str, group: str, version: int, *, actor: str) -> None:
        """Pin a device group of a use case to one model version (audited)."""
        check_name(group, "device group")
        with self.store.write() as conn:
            old = conn.scalar(select(device_pins.c.version).where(
                device_pins.c.usecase == usecase, device_pins.c.device_group == group))
            values = {"version": int(version), "set_by": actor, "set_at": utc_now()}
            if old is None:
                conn.execute(insert(device_pins).values(usecase=usecase, device_group=group,
                                                        **values))
            else:
                conn.execute(update(device_pins).where(
                    device_pins.c.usecase == usecase, device_pins.c.device_group == group)
                    .values(**values))
            self.audit.append("device_pin", f"usecase/{usecase}/group/{group}", actor,
                              {"version": int(version), "previous": old}, connection=conn)

    def unpin(self, usecase: str, group: str, *, actor: str) -> bool:
        """Let a group follow production again; False when it was not pinned."""
        with self.store.write() as conn:
            old = conn.scalar(select(device_pins.c.version).where(
                device_pins.c.usecase == usecase, device_pins.c.device_group == group))
            if old is None:
                return False
            conn.execute(device_pins.delete().where(
                device_pins.c.usecase == usecase, device_pins.c.device_group == group))
            self.audit.append("device_unpin", f"usecase/{usecase}/group/{group}", actor,
                              {"previous": old}, connection=conn)
        return True

    def pinned_version(self, usecase: str, group: str | None) -> int | None:
        """The version a group is pinned to, or None (it follows production)."""
        if group is None:
            return None
        with self.store.read() as conn:
            v = conn.scalar(select(device_pins.c.version).where(
                device_pins.c.usecase == usecase, device_pins.c.device_group == group))
        return None if v is None else int(v)

    def pins(self) -> builtins.list[dict[str, Any]]:
        """Every pin, for listings."""
        with self.store.read() as conn:
            return [{"usecase": r.usecase, "group": r.device_group, "version": r.version,
                     "set_by": r.set_by, "set_at": r.set_at.isoformat()}
                    for r in conn.execute(select(device_pins).order_by(
                        device_pins.c.usecase, device_pins.c.device_group))]


def _existing(conn: Connection, ids: list[str]) -> set[str]:
    seen: set[str] = set()
    for start in range(0, len(ids), _IN_CHUNK):
        chunk = ids[start:start + _IN_CHUNK]
        seen.update(conn.scalars(select(predictions.c.id).where(predictions.c.id.in_(chunk))))
    return seen


def _row(device: Device, p: EdgePrediction, route: str) -> dict[str, Any]:
    outputs = {"prediction": [p.prediction], "probability": [p.probability], "score": None}
    return {"id": p.prediction_id, "last_id": p.prediction_id, "n": 1, "at": p.at,
            "usecase": p.usecase, "version": p.version, "route": route, "channel": "edge",
            "caller": TOKEN_PREFIX + device.name, "request_id": None, "latency_ms": None,
            "device": device.name, "entities": None if p.entity is None else [p.entity],
            "inputs": json.dumps([dict(p.inputs)], separators=(",", ":"), allow_nan=False),
            "outputs": json.dumps(outputs, separators=(",", ":"), allow_nan=False)}


def _int(value: Any) -> int | None:
    try:
        return None if value is None else int(value)
    except (TypeError, ValueError):
        return None


def _text(value: Any, limit: int) -> str | None:
    return None if value is None else str(value)[:limit]


def parse_batch(body: Any, device: Device) -> list[EdgePrediction]:
    """Check a batch as a device sends it; InputError naming the first bad prediction.

    Raises:
        InputError: not ``{"predictions": [...]}``, too many, a bad id or time, or a use case
            other than the device's.
    """
    from planta.store.ids import is_id

    items = body.get("predictions") if isinstance(body, Mapping) else None
    if not isinstance(items, list):
        raise InputError('A batch is {"predictions": [...]}.')
    if len(items) > MAX_BATCH:
        raise InputError(f"A batch holds at most {MAX_BATCH:,} predictions ({len(items):,} sent).",
                         hint="Send smaller batches (sync batch_rows in the device's config).")
    out = []
    for i, item in enumerate(items):
        try:
            pid, record = str(item["prediction_id"]).upper(), item["record"]
            at = datetime.fromisoformat(str(item["at"]))
            version = int(item["version"])
            usecase = str(item["usecase"])
            inputs = record["inputs"]
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"Prediction {i} of the batch is malformed ({exc}).") from exc
        if not is_id(pid) or at.tzinfo is None or not isinstance(inputs, Mapping):
            raise InputError(f"Prediction {i} of the batch has a bad id, time or inputs.")
        if usecase != device.usecase:
            raise InputError(f"Prediction {i} is for use case {usecase!r}; device "
                             f"{device.name!r} is enrolled for {device.usecase!r}.")
        entity = item.get("entity")
        prob = record.get("probability")
        out.append(EdgePrediction(pid, at, usecase, version,
                                  None if entity is None else str(entity)[:200], inputs,
                                  record.get("prediction"),
                                  None if prob is None else float(prob)))
    return out


__all__ = ["MAX_BATCH", "TOKEN_PREFIX", "Device", "DeviceStore", "EdgePrediction",
           "check_name", "parse_batch"]
