"""Ground truth: what really happened to the things planta predicted.

    item ─┬─ prediction_id + value ─────────────► that prediction
          └─ entity + event_time + value ────────► the entity's latest prediction at or before
                                                    event_time, within ``window`` (24 h)
    then, per prediction (one feedback row per use case and prediction id):
          no feedback yet ──► added      same value ──► unchanged      other value ──► updated

Submitting the same file twice changes nothing (``unchanged``), so a plant can resend its
whole label export every day. A different value replaces the old one; each call that
corrects values writes one audit event listing the corrections (not one event per row).
An item that matches no prediction is reported with its index and the reason, never dropped
silently.

>>> from planta.store.metadata import open_store, utc_now
>>> from planta.store.ids import reserve
>>> from planta.store.predictions import LogEntry, PredictionLog
>>> store = open_store("sqlite://")
>>> log = PredictionLog(store)
>>> pid = log.write_now(LogEntry(first_id=reserve(1), n=1, at=utc_now(), usecase="failure",
...     version=1, route="production", channel="sync", caller="line-4",
...     inputs_json='[{"torque_nm": 62.0}]', outputs_json='{"prediction": [1]}'))
>>> truth = FeedbackStore(store, log)
>>> truth.add("failure", [{"prediction_id": pid, "value": 1}], actor="ana", source="api").added
1
>>> truth.add("failure", [{"prediction_id": pid, "value": 1}], actor="ana", source="api").unchanged
1
>>> log.close()
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, insert, select, update

from planta.store.audit import AuditLog
from planta.store.ids import decode, encode, is_id
from planta.store.metadata import (
    Store,
    feedback,
    json_dumps,
    json_ready,
    predictions,
    utc_now,
)
from planta.store.predictions import (
    PredictionLog,
    PredictionRecord,
    entities_like,
    entity_text,
    iter_rows,
    locate,
)

_logger = logging.getLogger(__name__)

# Called after each committed add() with (usecase, ids added, ids whose value changed).
FeedbackObserver = Callable[[str, list[str], list[str]], None]

# How far back an entity's event may point to the prediction it answers.
DEFAULT_WINDOW = timedelta(hours=24)
# Items whose event times lie within this span share one scan of the log.
_SCAN_SPAN = timedelta(days=7)
# Feedback rows read per IN (...) list.
_IN_CHUNK = 500
# Lengths of the feedback table's text columns.
_ENTITY_CHARS = 200
_NAME_CHARS = 200
# Corrections listed in one audit event (the count is always exact).
_AUDIT_LIST = 100


@dataclass(frozen=True)
class FeedbackResult:
    """What :meth:`FeedbackStore.add` did with each item.

    ``unknown`` lists ``(index, reason)`` for every item that matched no prediction (or had no
    usable value), index into the submitted items (0-based), in order.
    """

    added: int = 0
    unchanged: int = 0
    updated: int = 0
    unknown: list[tuple[int, str]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"added": self.added, "unchanged": self.unchanged, "updated": self.updated,
                "unknown": [{"index": i, "reason": r} for i, r in self.unknown]}


@dataclass
class _Item:
    index: int
    value: Any
    prediction_id: str | None = None
    entity: str | None = None
    event_time: datetime | None = None


class _Unknown(Exception):
    """An item that cannot be matched; the message is the reason."""


class FeedbackStore:
    """Ground truth of one store, matched against its prediction log.

    Args:
        store: the opened store.
        log: the prediction log feedback refers to (read only).
        audit: where corrections are recorded (default: the store's audit trail).
        window: how long before an entity's event its prediction may be.
    """

    def __init__(self, store: Store, log: PredictionLog, *, audit: AuditLog | None = None,
                 window: timedelta = DEFAULT_WINDOW,
                 observers: Iterable[FeedbackObserver] = ()) -> None:
        self.store = store
        self.log = log
        self.audit = audit if audit is not None else AuditLog(store)
        self.window = window
        self._observers: list[FeedbackObserver] = list(observers)

    def add_observer(self, observer: FeedbackObserver) -> None:
        """Call ``observer(usecase, added_ids, updated_ids)`` after each add() that committed
        rows (the monitoring caches, planta.services.label_rollup). It runs after the commit:
        what it raises is logged, never loses or fails the feedback."""
        self._observers.append(observer)

    def add(self, usecase: str, items: Sequence[Mapping[str, Any]], *, actor: str,
            source: str) -> FeedbackResult:
        """Record ground truth for ``usecase``.

        Each item is a mapping with ``value`` and either ``prediction_id``, or ``entity`` and
        ``event_time`` (an aware datetime or ISO 8601 text; without an offset it is read as
        UTC). Values are JSON (a label, a number); 1.0 and 1 are the same value.

        Args:
            actor: who sends it (a person or a token's name); recorded with each row.
            source: where it comes from (``api``, ``file:labels.csv``).

        Raises:
            StoreError: the store cannot be read or written.
        """
        actor, source = actor[:_NAME_CHARS], source[:_NAME_CHARS]
        unknown: list[tuple[int, str]] = []
        by_id: list[_Item] = []
        by_entity: list[_Item] = []
        for index, raw in enumerate(items):
            try:
                item = _parse(index, raw)
            except _Unknown as exc:
                unknown.append((index, str(exc)))
                continue
            (by_id if item.prediction_id is not None else by_entity).append(item)
        matched: list[_Item] = []
        with self.store.read() as conn:
            for item, reason in self._check_ids(conn, usecase, by_id):
                if reason is None:
                    matched.append(item)
                else:
                    unknown.append((item.index, reason))
            for item, reason in self._match_entities(conn, usecase, by_entity):
                if reason is None:
                    matched.append(item)
                else:
                    unknown.append((item.index, reason))
        matched.sort(key=lambda i: i.index)
        unknown.sort()
        if not matched:
            return FeedbackResult(unknown=unknown)
        with self.store.write() as conn:
            added, unchanged, corrections, new_ids = self._save(
                conn, usecase, matched, actor=actor, source=source)
            if corrections:
                self.audit.append("feedback_correct", f"usecase/{usecase}/feedback", actor, {
                    "source": source, "updated": len(corrections),
                    "corrections": [{"prediction_id": p, "old": o, "new": n}
                                    for p, o, n in corrections[:_AUDIT_LIST]]},
                    connection=conn)
        self._notify(usecase, new_ids, sorted({p for p, _, _ in corrections} - set(new_ids)))
        return FeedbackResult(added=added, unchanged=unchanged, updated=len(corrections),
                              unknown=unknown)

    def _notify(self, usecase: str, added: list[str], updated: list[str]) -> None:
        for observer in list(self._observers):
            try:
                observer(usecase, added, updated)
            except Exception:  # noqa: BLE001 - the feedback is committed; a cache is not
                _logger.exception("A feedback observer failed on %d labels of %s",
                                  len(added) + len(updated), usecase)

    def joined(self, usecase: str, since: datetime | None = None,
               until: datetime | None = None) -> list[tuple[PredictionRecord, Any]]:
        """Each prediction of ``usecase`` with ground truth, and that value, oldest first;
        ``since`` <= prediction time < ``until``."""
        with self.store.read() as conn:
            values = {row.prediction_id: row.value for row in iter_rows(
                conn, select(feedback.c.prediction_id, feedback.c.value)
                .where(feedback.c.usecase == usecase))}
            records = self.log.get_many(values, connection=conn)
        out = []
        for pid in sorted(records):
            record = records[pid]
            if record.usecase != usecase:
                continue
            if (since is not None and record.at < since) or (until is not None
                                                             and record.at >= until):
                continue
            out.append((record, values[pid]))
        return out

    def count(self, usecase: str) -> int:
        """How many predictions of ``usecase`` have ground truth."""
        with self.store.read() as conn:
            return int(conn.scalar(select(func.count()).select_from(feedback)
                                   .where(feedback.c.usecase == usecase)) or 0)

    # -- matching -----------------------------------------------------------------------------
    @staticmethod
    def _check_ids(conn: Connection, usecase: str, items: list[_Item]
                   ) -> Iterable[tuple[_Item, str | None]]:
        stmt = select(predictions.c.id, predictions.c.last_id, predictions.c.usecase)
        first = last = -1
        owner = ""
        for item in sorted(items, key=lambda i: i.prediction_id or ""):
            pid = item.prediction_id or ""
            value = decode(pid)
            if not first <= value <= last:
                row = locate(conn, pid, stmt)
                if row is None:
                    yield item, (f"no prediction {pid} in the log (a wrong id, or older than "
                                 "the log keeps)")
                    continue
                first, last, owner = decode(row.id), decode(row.last_id), row.usecase
            if owner != usecase:
                yield item, f"prediction {pid} belongs to use case {owner!r}, not {usecase!r}"
            else:
                yield item, None

    def _match_entities(self, conn: Connection, usecase: str, items: list[_Item]
                        ) -> Iterable[tuple[_Item, str | None]]:
        """Match each item to its entity's latest prediction in (event_time - window,
        event_time], scanning the log once per group of items close in time."""
        pending = sorted(items, key=_event_time)
        while pending:
            start = _event_time(pending[0])
            size = 1
            while size < len(pending) and _event_time(pending[size]) - start <= _SCAN_SPAN:
                size += 1
            group, pending = pending[:size], pending[size:]
            end = _event_time(group[-1])
            wanted = {i.entity for i in group if i.entity is not None}
            conds = [predictions.c.usecase == usecase, predictions.c.at >= start - self.window,
                     predictions.c.at <= end, predictions.c.entities.is_not(None)]
            if len(wanted) == 1:
                conds.append(entities_like(next(iter(wanted))))
            seen: dict[str, list[tuple[datetime, str]]] = {}
            stmt = select(predictions.c.id, predictions.c.at, predictions.c.entities).where(*conds)
            for row in iter_rows(conn, stmt):
                first = None
                for offset, raw in enumerate(row.entities or ()):
                    text = entity_text(raw)
                    if text in wanted:
                        first = decode(row.id) if first is None else first
                        seen.setdefault(text, []).append((row.at, encode(first + offset)))
            for item in group:
                assert item.entity is not None and item.event_time is not None
                low = item.event_time - self.window
                candidates = [c for c in seen.get(item.entity, ())
                              if low <= c[0] <= item.event_time]
                if candidates:
                    item.prediction_id = max(candidates)[1]
                    yield item, None
                else:
                    hours = self.window.total_seconds() / 3600
                    yield item, (f"no prediction for entity {item.entity!r} in the {hours:g} h "
                                 f"before {item.event_time.isoformat()}")

    # -- writing ------------------------------------------------------------------------------
    @staticmethod
    def _save(conn: Connection, usecase: str, items: list[_Item], *, actor: str, source: str
              ) -> tuple[int, int, list[tuple[str, Any, Any]], list[str]]:
        ids = sorted({i.prediction_id for i in items if i.prediction_id})
        stored: dict[str, Any] = {}
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start:start + _IN_CHUNK]
            for found in conn.execute(select(feedback.c.prediction_id, feedback.c.value).where(
                    feedback.c.usecase == usecase, feedback.c.prediction_id.in_(chunk))):
                stored[found.prediction_id] = found.value
        now = utc_now()
        current = {pid: json_dumps(_canonical(v)) for pid, v in stored.items()}
        new_rows: dict[str, dict[str, Any]] = {}
        changed: dict[str, dict[str, Any]] = {}
        added = unchanged = 0
        corrections: list[tuple[str, Any, Any]] = []
        for item in items:
            pid = item.prediction_id
            assert pid is not None
            text = json_dumps(item.value)
            row = {"usecase": usecase, "prediction_id": pid, "value": item.value,
                   "entity": item.entity, "event_time": item.event_time, "source": source,
                   "actor": actor, "received_at": now}
            before = current.get(pid)
            if before is None:
                added += 1
                new_rows[pid] = row
            elif before == text:
                unchanged += 1
                continue
            else:
                corrections.append((pid, _decoded(before), item.value))
                (new_rows if pid in new_rows else changed)[pid] = row
            current[pid] = text
        if new_rows:
            conn.execute(insert(feedback), list(new_rows.values()))
        for pid, row in changed.items():
            conn.execute(update(feedback).where(feedback.c.usecase == usecase,
                                                feedback.c.prediction_id == pid)
                         .values({k: v for k, v in row.items()
                                  if k not in ("usecase", "prediction_id")}))
        return added, unchanged, corrections, list(new_rows)


def _parse(index: int, raw: Mapping[str, Any]) -> _Item:
    if not isinstance(raw, Mapping):
        raise _Unknown("an item must be an object with value and prediction_id (or entity and "
                       "event_time)")
    value = _canonical(raw.get("value"))
    if value is None:
        raise _Unknown("the value is empty")
    pid = raw.get("prediction_id")
    entity = entity_text(raw.get("entity"))
    if entity is not None and len(entity) > _ENTITY_CHARS:
        raise _Unknown(f"the entity is longer than {_ENTITY_CHARS} characters")
    if pid is not None and not (isinstance(pid, float) and math.isnan(pid)) and str(pid).strip():
        text = str(pid).strip()
        if not is_id(text):
            raise _Unknown(f"{text!r} is not a prediction id")
        return _Item(index, value, prediction_id=text.upper(), entity=entity)
    if entity and raw.get("event_time") is not None:
        return _Item(index, value, entity=entity, event_time=_time(raw["event_time"]))
    raise _Unknown("needs a prediction_id, or an entity and an event_time")


def _event_time(item: _Item) -> datetime:
    assert item.event_time is not None
    return item.event_time


def _time(value: Any) -> datetime:
    if hasattr(value, "to_pydatetime"):  # a pandas Timestamp, without importing pandas
        value = value.to_pydatetime()
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.strip())
        except ValueError:
            raise _Unknown(f"event_time {value!r} is not a time (use ISO 8601, "
                           "2024-05-01T14:30:00+02:00)") from None
    if not isinstance(value, datetime):
        raise _Unknown(f"event_time {value!r} is not a time")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _canonical(value: Any) -> Any:
    """One spelling per value: plain JSON data, whole floats as ints (a CSV column with a gap
    reads 1 as 1.0), NaN as None.

    >>> _canonical(1.0), _canonical(True), _canonical(float("nan")), _canonical(" yes ")
    (1, True, None, 'yes')
    """
    value = json_ready(value)
    if isinstance(value, float) and value.is_integer() and abs(value) < 2 ** 53:
        return int(value)
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items()}
    return value


def _decoded(text: str) -> Any:
    return json.loads(text)


__all__ = ["DEFAULT_WINDOW", "FeedbackObserver", "FeedbackResult", "FeedbackStore"]
