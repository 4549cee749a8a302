"""The audit trail: append-only, hash-chained events of every change that matters.

    event 1 ── hash₁ = sha256(GENESIS + canonical JSON of event 1)
    event 2 ── hash₂ = sha256(hash₁   + canonical JSON of event 2)
    …
    event n ── hashₙ = the head; note it somewhere safe

The canonical JSON covers ``seq``, ``id``, ``at``, ``actor``, ``action``, ``subject`` and
``payload`` (sorted keys, no spaces, UTF-8). Editing any stored field changes that event's hash;
deleting, inserting or moving an event breaks the links after it. Deleting the last events
leaves a shorter chain that is valid on its own: only a head hash noted earlier
(``verify(known_head=...)``, or the head printed in a backup manifest or bundle) shows it.

Appends are serialized by the store's write lock (SQLite ``BEGIN IMMEDIATE``, a PostgreSQL
advisory lock), and the table refuses two events with the same predecessor, so concurrent
appends from threads or processes always make one chain.

>>> from planta.store.metadata import open_store
>>> log = AuditLog(open_store("sqlite://"))
>>> event = log.append("promote", "usecase/failure/model/3", "ana", {"reason": "better recall"})
>>> log.verify().ok, log.verify().count, log.head() == event.hash
(True, 1, True)
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, func, insert, select
from ulid import ULID

from planta.errors import InputError
from planta.store.metadata import Store, audit_events, json_dumps, lock, utc_now

GENESIS = "0" * 64
EXPORT_FORMAT = "planta.audit/1"
_HASH = re.compile(r"^[0-9a-f]{64}$")
# A broken trail can produce one problem per event after the break; past this many the
# report says how many more there were instead of listing them.
MAX_PROBLEMS = 100


@dataclass(frozen=True)
class AuditEvent:
    """One event of the trail, as stored."""

    seq: int
    id: str
    at: datetime
    actor: str
    action: str
    subject: str
    payload: Mapping[str, Any]
    prev_hash: str
    hash: str

    def to_dict(self) -> dict[str, Any]:
        return {"seq": self.seq, "id": self.id, "at": self.at.isoformat(), "actor": self.actor,
                "action": self.action, "subject": self.subject, "payload": dict(self.payload),
                "prev_hash": self.prev_hash, "hash": self.hash}


@dataclass(frozen=True)
class AuditVerification:
    """What :meth:`AuditLog.verify` found. ``ok`` is True when ``problems`` is empty."""

    ok: bool
    count: int
    head: str
    problems: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "count": self.count, "head": self.head,
                "problems": list(self.problems)}


def event_hash(prev_hash: str, *, seq: int, id: str, at: datetime, actor: str, action: str,
               subject: str, payload: Any) -> str:
    """The hash of one event: sha256 of the previous hash and the event's canonical JSON."""
    body = json_dumps({"seq": seq, "id": id, "at": _time(at), "actor": actor, "action": action,
                       "subject": subject, "payload": payload})
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _time(at: datetime) -> str:
    # One spelling for every engine: UTC, always with microseconds.
    return at.isoformat(timespec="microseconds")


class AuditLog:
    """The audit trail of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def append(self, action: str, subject: str, actor: str,
               payload: Mapping[str, Any] | None = None, *,
               connection: Connection | None = None) -> AuditEvent:
        """Append one event and return it.

        Args:
            action: what happened, one word (``promote``, ``ingest``, ``backup``).
            subject: what it happened to (``usecase/failure/model/3``).
            actor: who did it.
            payload: the details, JSON-able (NaN is stored as null).
            connection: join this transaction instead of opening one, so the event commits or
                rolls back with the change it records. It must come from ``store.write()``.
        """
        for name, value in (("action", action), ("subject", subject), ("actor", actor)):
            if not isinstance(value, str) or not value.strip():
                raise InputError(f"An audit event needs a non-empty {name} (got {value!r}).")
        if connection is None:
            with self.store.write() as conn:
                return self._append(conn, action, subject, actor, payload)
        lock(connection)
        return self._append(connection, action, subject, actor, payload)

    @staticmethod
    def _append(conn: Connection, action: str, subject: str, actor: str,
                payload: Mapping[str, Any] | None) -> AuditEvent:
        last = conn.execute(select(audit_events.c.seq, audit_events.c.hash)
                            .order_by(audit_events.c.seq.desc()).limit(1)).first()
        seq, prev = (1, GENESIS) if last is None else (last.seq + 1, last.hash)
        text = json_dumps(payload or {})
        body = json.loads(text)
        event_id, at = str(ULID()), utc_now()
        digest = event_hash(prev, seq=seq, id=event_id, at=at, actor=actor, action=action,
                            subject=subject, payload=body)
        conn.execute(insert(audit_events).values(
            seq=seq, id=event_id, at=at, actor=actor, action=action, subject=subject,
            payload=text, prev_hash=prev, hash=digest))
        return AuditEvent(seq=seq, id=event_id, at=at, actor=actor, action=action,
                          subject=subject, payload=body, prev_hash=prev, hash=digest)

    def head(self) -> str:
        """The hash of the last event (``GENESIS``, 64 zeros, for an empty trail)."""
        with self.store.read() as conn:
            return _head(conn)

    def count(self) -> int:
        """How many events the trail holds."""
        with self.store.read() as conn:
            return int(conn.scalar(select(func.count()).select_from(audit_events)) or 0)

    def events(self, *, limit: int | None = 50, action: str | None = None,
               subject: str | None = None) -> list[AuditEvent]:
        """The most recent events (oldest first), optionally of one action or subject."""
        query = select(audit_events).order_by(audit_events.c.seq.desc())
        if action:
            query = query.where(audit_events.c.action == action)
        if subject:
            query = query.where(audit_events.c.subject == subject)
        if limit is not None:
            query = query.limit(limit)
        with self.store.read() as conn:
            rows = conn.execute(query).all()
        return [_event(row) for row in reversed(rows)]

    def verify(self, *, known_head: str | None = None) -> AuditVerification:
        """Re-hash the whole trail and check every link.

        Finds an edited event (naming its number and action), a deleted one (a gap or a broken
        link), events moved out of order, and, given a head hash noted earlier, events cut off
        the end. Never raises for a broken trail: the problems are in the result.

        Raises:
            InputError: ``known_head`` is not a 64-character hex hash.
        """
        if known_head is not None:
            known_head = known_head.strip().lower()
            if not _HASH.match(known_head):
                raise InputError(f"{known_head!r} is not an audit head hash (64 hex characters).",
                                 hint="Copy the head hash printed by `planta audit verify`.")
        with self.store.read() as conn:
            # Pass 1: the links alone, to tell where each event was written (its depth in
            # the chain) from where it sits now: a moved event is not an edited one.
            links = {row.hash: row.prev_hash for row in conn.execute(
                select(audit_events.c.hash, audit_events.c.prev_hash))}
            rows = conn.execute(select(audit_events).order_by(audit_events.c.seq))
            return _check(rows, links, known_head)

    def export(self, path: str | os.PathLike[str]) -> str:
        """Write every event as JSON lines, then a last line with the head; return the head.

        The file is written next to its final name and renamed into place, readable by its
        owner only.
        """
        path = Path(path)
        fd, tmp = tempfile.mkstemp(prefix=".audit-", dir=path.parent or Path("."))
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out, self.store.read() as conn:
                count, head = 0, GENESIS
                for row in conn.execute(select(audit_events).order_by(audit_events.c.seq)):
                    out.write(json_dumps(_event(row).to_dict()) + "\n")
                    count, head = count + 1, row.hash
                out.write(json_dumps({"format": EXPORT_FORMAT, "count": count, "head": head,
                                      "exported_at": _time(utc_now())}) + "\n")
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return head


def _head(conn: Connection) -> str:
    value = conn.scalar(select(audit_events.c.hash).order_by(audit_events.c.seq.desc()).limit(1))
    return str(value) if value else GENESIS


def _event(row: Any) -> AuditEvent:
    return AuditEvent(seq=row.seq, id=row.id, at=row.at, actor=row.actor, action=row.action,
                      subject=row.subject, payload=json.loads(row.payload),
                      prev_hash=row.prev_hash, hash=row.hash)


def _rehash(row: Any, seq: int) -> str | None:
    """The hash ``row`` would have at position ``seq``; None when its payload is not JSON."""
    try:
        payload = json.loads(row.payload)
    except (TypeError, ValueError):
        return None
    return event_hash(row.prev_hash, seq=seq, id=row.id, at=row.at, actor=row.actor,
                      action=row.action, subject=row.subject, payload=payload)


def _depths(links: dict[str, str]) -> dict[str, int]:
    """For each hash, the position its event was written at (1 = first), following
    ``prev_hash`` back to GENESIS; hashes whose chain is cut somewhere are left out."""
    depth: dict[str, int] = {GENESIS: 0}
    broken: set[str] = set()
    for start in links:
        path: list[str] = []
        h = start
        while h not in depth and h not in broken and h in links and len(path) <= len(links):
            path.append(h)
            h = links[h]
        if h in depth:
            base = depth[h]
            for i, step in enumerate(reversed(path), start=1):
                depth[step] = base + i
        else:
            broken.update(path)
    return depth


def _check(rows: Iterator[Any], links: dict[str, str],
           known_head: str | None) -> AuditVerification:
    depth = _depths(links)
    problems: list[str] = []
    moved_hashes: set[str] = set()
    expected, prev, count, head, last = 1, GENESIS, 0, GENESIS, None
    for row in rows:
        count += 1
        name = f"event {row.seq} ({row.action})"
        gap = row.seq != expected
        if gap:
            missing = (f"event {expected} was" if row.seq == expected + 1
                       else f"events {expected} to {row.seq - 1} were")
            where = ("The trail starts at" if expected == 1
                     else f"The trail jumps from event {expected - 1} to")
            problems.append(f"{where} {name}: {missing} deleted.")
        written_at = depth.get(row.hash)
        moved = written_at is not None and written_at != row.seq
        if _rehash(row, row.seq) != row.hash:
            if moved and _rehash(row, written_at) == row.hash:  # type: ignore[arg-type]
                moved_hashes.add(row.hash)
                problems.append(f"{name.capitalize()} was written as event {written_at}: the "
                                "events were reordered.")
            else:
                problems.append(f"{name.capitalize()}, by {row.actor}, was changed after it "
                                "was written: its content no longer matches its hash.")
        elif row.prev_hash != prev and not gap:
            if row.prev_hash != GENESIS and row.prev_hash not in links:
                problems.append(f"The event before {name} is missing: it was deleted and the "
                                "events after it renumbered, or the trail was rewritten.")
            elif row.prev_hash not in moved_hashes and prev not in moved_hashes:
                problems.append(f"{name.capitalize()} does not follow event {row.seq - 1}: the "
                                "chain is broken here.")
        prev, head, expected, last = row.hash, row.hash, row.seq + 1, name
    if known_head is not None and known_head != GENESIS and known_head not in links:
        ends = f"it now ends at {last}" if last else "it is now empty"
        problems.append(f"The head hash noted earlier ({known_head[:16]}…) is not in the trail: "
                        f"events at its end were cut off or the trail was rewritten; {ends}.")
    if len(problems) > MAX_PROBLEMS:
        more = len(problems) - MAX_PROBLEMS
        problems = problems[:MAX_PROBLEMS] + [f"… and {more} more problems."]
    return AuditVerification(ok=not problems, count=count, head=head, problems=problems)


__all__ = ["EXPORT_FORMAT", "GENESIS", "AuditEvent", "AuditLog", "AuditVerification",
           "event_hash"]
