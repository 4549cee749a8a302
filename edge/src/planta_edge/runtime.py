"""The edge runtime: readings in, predictions out, every prediction in the outbox first.

    MQTT topics ─┐                     ┌─► outbox (SQLite, fsync per batch) ─► sync ─► hub
    HTTP POST   ─┼─► submit(records) ─► predictor thread ─► model ─┤
    CSV folder  ─┘     (queue)          (micro-batches)            └─► after the commit:
                                                                        source acknowledged
                                                                        (PUBACK, HTTP 200, CSV
                                                                        moved), outputs (MQTT
                                                                        topic, local log)

The predictor thread takes whatever readings are waiting, scores them in one call, gives
them ids and hands them to the outbox; the outbox commits them as a group. A source is
acknowledged only after the commit of its predictions, so a reading acknowledged is a
prediction that will reach the hub, even if the device loses power the next moment.

Readings that break the contract are not predictions: they are counted by rule, written to
the local log with the reason, and reported to the hub in the heartbeat.

The model can be swapped while readings flow (:meth:`EdgeRuntime.swap`, used by updates):
a batch takes the model once, so no batch is scored half by one model and half by another.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

from planta_edge.errors import ContractError, PlantaError
from planta_edge.ids import IdGenerator
from planta_edge.outbox import Outbox, OutboxRow

log = logging.getLogger("planta_edge.runtime")

# The most readings one model call scores: bounds the latency a burst adds to one reading and
# the memory one call's arrays take (the outbox still commits several calls in one group).
MAX_BATCH = 256
# How many recent valid readings are kept for an update's health check.
RECENT = 256


class Model(Protocol):
    """What the runtime needs of a model (``planta_edge.model.EdgeModel`` is the real one)."""

    usecase: str
    version: int
    digest: str

    def predict_records(self, records: list[dict[str, Any]]) -> Any: ...


class Output(Protocol):
    """Where committed predictions go besides the hub (an MQTT topic, the local log)."""

    def emit(self, predictions: Sequence[Prediction]) -> None: ...


@dataclass(frozen=True, slots=True)
class Scored:
    """One reading after the model: accepted with its answer, or refused with the reason."""

    ok: bool
    prediction: Any = None
    probability: float | None = None
    reason: str | None = None
    rule: str | None = None


@dataclass(frozen=True, slots=True)
class Prediction:
    """One reading's outcome on the device. ``prediction_id`` is None when it was refused."""

    prediction_id: str | None
    at: str
    usecase: str
    version: int
    entity: str | None
    inputs: Mapping[str, Any]
    prediction: Any
    probability: float | None
    reason: str | None = None
    source: str = ""

    @property
    def ok(self) -> bool:
        return self.prediction_id is not None

    def to_dict(self) -> dict[str, Any]:
        return {"prediction_id": self.prediction_id, "at": self.at, "usecase": self.usecase,
                "version": self.version, "entity": self.entity, "inputs": dict(self.inputs),
                "prediction": self.prediction, "probability": self.probability,
                "reason": self.reason, "source": self.source}


def score(model: Model, records: list[dict[str, Any]]) -> list[Scored]:
    """Score ``records`` with ``model``, one :class:`Scored` per record, in order.

    The model validates against its contract with the server's rules; a record that breaks
    one is refused alone, never the whole batch.
    """
    try:
        out = model.predict_records(records)
    except ContractError as exc:
        if len(records) == 1:
            v = exc.violations[0] if exc.violations else None
            return [Scored(False, reason=exc.message, rule=getattr(v, "rule", "contract"))]
        # A batch-level refusal (an empty or malformed batch): score one by one.
        return [s for r in records for s in score(model, [r])]
    return _unpack(out, len(records))


def _unpack(out: Any, n: int) -> list[Scored]:
    """The model's answer (``EdgePredictions``) as one :class:`Scored` per record."""
    preds = list(_get(out, "prediction", "predictions"))
    probs = _get(out, "probability", "probabilities")
    ok = _get(out, "ok")
    reasons = _get(out, "reasons", "reason")
    rules = _get(out, "rules")
    scored = []
    for i in range(n):
        good = True if ok is None else bool(ok[i])
        p = None if probs is None else probs[i]
        scored.append(Scored(
            good, _plain(preds[i]) if good else None,
            None if p is None or not good else float(p),
            None if reasons is None or good else str(reasons[i]),
            None if good else (str(rules[i]) if rules is not None else "contract")))
    return scored


def _get(obj: Any, *names: str) -> Any:
    for name in names:
        value = obj.get(name) if isinstance(obj, Mapping) else getattr(obj, name, None)
        if value is not None:
            return value
    return None


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def utc_text(when: float | None = None) -> str:
    """A UTC time as ISO text with milliseconds and ``Z``."""
    at = datetime.fromtimestamp(time.time() if when is None else when, UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}Z"


@dataclass
class _Submission:
    records: list[dict[str, Any]]
    entities: list[str | None]
    source: str
    future: Future[list[Prediction]]


@dataclass
class RuntimeStats:
    """Counters since start, for ``planta-edge status`` and the heartbeat."""

    predicted: int = 0
    refused: int = 0
    refused_by_rule: dict[str, int] = field(default_factory=dict)
    model_errors: int = 0
    batches: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {"predicted": self.predicted, "refused": self.refused,
                "refused_by_rule": dict(self.refused_by_rule),
                "model_errors": self.model_errors, "batches": self.batches}


class EdgeRuntime:
    """Scores readings with the current model and stores every prediction in the outbox.

    Args:
        model: the model to start with (None: readings wait until :meth:`swap` gives one).
        outbox: the durable outbox.
        outputs: where committed predictions also go (MQTT topic, local log).
    """

    def __init__(self, model: Model | None, outbox: Outbox, *,
                 outputs: Sequence[Output] = ()) -> None:
        self.outbox = outbox
        self.outputs = list(outputs)
        self.ids = IdGenerator(after=outbox.get_state("last_id"))
        self.stats = RuntimeStats()
        self.recent: collections.deque[dict[str, Any]] = collections.deque(maxlen=RECENT)
        self._model = model
        self._queue: collections.deque[_Submission] = collections.deque()
        self._cond = threading.Condition()
        self._closing = False
        self._listeners: list[Callable[[Model | None, Model], None]] = []
        self._thread = threading.Thread(target=self._run, name="planta-edge-predict",
                                        daemon=True)
        self._thread.start()

    # -- the model -----------------------------------------------------------------------------
    @property
    def model(self) -> Model | None:
        """The model now scoring readings."""
        return self._model

    def swap(self, model: Model) -> Model | None:
        """Make ``model`` the one that scores from the next batch on; returns the old one."""
        with self._cond:
            old, self._model = self._model, model
            self._cond.notify()
        log.info("now predicting with %s version %s (%s)", model.usecase, model.version,
                 model.digest[:12])
        return old

    # -- readings ------------------------------------------------------------------------------
    def submit(self, records: list[dict[str, Any]], entities: Sequence[str | None] | None = None,
               *, source: str = "") -> Future[list[Prediction]]:
        """Queue readings; the future resolves to their outcomes once the predictions among
        them are committed to the outbox (or fails, and then nothing may be acknowledged)."""
        future: Future[list[Prediction]] = Future()
        ents: list[str | None] = (list(entities) if entities is not None
                                  else [None] * len(records))
        with self._cond:
            if self._closing:
                future.set_exception(PlantaError("The edge runtime is stopping; send again."))
                return future
            self._queue.append(_Submission(list(records), ents, source, future))
            self._cond.notify()
        return future

    def predict(self, records: list[dict[str, Any]], entities: Sequence[str | None] | None = None,
                *, source: str = "", timeout: float | None = 30.0) -> list[Prediction]:
        """Submit readings and wait for their committed outcomes."""
        return self.submit(records, entities, source=source).result(timeout)

    def _take(self) -> list[_Submission] | None:
        with self._cond:
            while (not self._queue or self._model is None) and not self._closing:
                self._cond.wait()
            if not self._queue:
                return None
            batch, n = [], 0
            while self._queue and n < MAX_BATCH:
                sub = self._queue.popleft()
                batch.append(sub)
                n += len(sub.records)
            return batch

    def _run(self) -> None:
        while (batch := self._take()) is not None:
            model = self._model
            if model is None:  # closing before any model came
                for sub in batch:
                    sub.future.set_exception(PlantaError("No model is loaded on this device."))
                continue
            try:
                self._score(model, batch)
            except Exception as exc:  # noqa: BLE001 - the predictor must outlive any batch
                log.exception("scoring a batch of readings failed")
                self.stats.model_errors += 1
                for sub in batch:
                    if not sub.future.done():
                        sub.future.set_exception(exc)

    def _score(self, model: Model, batch: list[_Submission]) -> None:
        records = [r for sub in batch for r in sub.records]
        scored = score(model, records) if records else []
        self.stats.batches += 1
        at = utc_text()
        n_ok = sum(s.ok for s in scored)
        ids = iter(self.ids.take(n_ok)) if n_ok else iter(())
        rows: list[OutboxRow] = []
        outcomes: list[list[Prediction]] = []
        i = 0
        for sub in batch:
            mine = []
            for rec, ent in zip(sub.records, sub.entities, strict=True):
                s = scored[i]
                i += 1
                if s.ok:
                    pid = next(ids)
                    p = Prediction(pid, at, model.usecase, model.version, ent, rec,
                                   s.prediction, s.probability, None, sub.source)
                    body = json.dumps({"inputs": rec, "prediction": s.prediction,
                                       "probability": s.probability},
                                      separators=(",", ":")).encode()
                    rows.append(OutboxRow(pid, at, model.usecase, model.version, ent, body))
                    self.recent.append(rec)
                else:
                    p = Prediction(None, at, model.usecase, model.version, ent, rec, None, None,
                                   s.reason, sub.source)
                    rule = s.rule or "contract"
                    self.stats.refused += 1
                    self.stats.refused_by_rule[rule] = self.stats.refused_by_rule.get(rule, 0) + 1
                mine.append(p)
            outcomes.append(mine)
        self.stats.predicted += len(rows)
        done = self.outbox.put(rows)
        done.add_done_callback(lambda f: self._committed(f, batch, outcomes))

    def _committed(self, done: Future[int], batch: list[_Submission],
                   outcomes: list[list[Prediction]]) -> None:
        exc = done.exception()
        for sub, mine in zip(batch, outcomes, strict=True):
            if exc is not None:
                sub.future.set_exception(exc)
            else:
                sub.future.set_result(mine)
        if exc is None:
            flat = [p for mine in outcomes for p in mine]
            for out in self.outputs:
                try:
                    out.emit(flat)
                except Exception:  # noqa: BLE001 - an output must never stop predictions
                    log.exception("output %s failed", type(out).__name__)

    def close(self) -> None:
        """Score what is queued, stop the predictor. The outbox is closed by its owner."""
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join()


class LocalLog:
    """Committed predictions and refusals as JSON lines in a local file, rotated by size
    (one older file, ``.1``, is kept), so that the floor can read them without the hub."""

    def __init__(self, path: Path | str, *, max_bytes: int = 50 * 1024 * 1024) -> None:
        self.path = Path(path)
        self.max_bytes = max_bytes
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._file = self.path.open("a", encoding="utf-8")

    def emit(self, predictions: Sequence[Prediction]) -> None:
        lines = "".join(json.dumps(p.to_dict(), separators=(",", ":"), default=str) + "\n"
                        for p in predictions)
        with self._lock:
            self._file.write(lines)
            self._file.flush()
            if self._file.tell() > self.max_bytes:
                self._file.close()
                self.path.replace(self.path.with_name(self.path.name + ".1"))
                self._file = self.path.open("a", encoding="utf-8")

    def close(self) -> None:
        with self._lock:
            self._file.close()


__all__ = ["LocalLog", "EdgeRuntime", "Model", "Output", "Prediction", "RuntimeStats", "Scored",
           "score", "utc_text"]
