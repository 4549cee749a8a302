"""Reading the prediction log and the feedback for performance over time, fast.

    row_counts        log rows per window, from the (usecase, at) index alone
    sum_in_sqlite     a window's ScoreSummary aggregated inside SQLite (no row reaches Python)
    sum_in_python     the same, streamed (other engines; multiclass models)
    feedback_state    the feedback's row count and newest received_at (what changes it)
    read_labels       labelled predictions of a period with what was served, column-wise
    window_index      the window of each time, vectorised

Measured on a million-prediction log (bench/bench_performance.py), reading rows is what costs:
the statements below are shaped so that SQLite does the work in C, and each is tested against
the portable path it replaces (tests/monitor/test_performance_service.py).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import numpy as np
import orjson
from sqlalchemy import and_, bindparam, func, select, text

from planta.core.performance import BINS, ScoreSummary
from planta.core.spec import Task
from planta.store.ids import decode
from planta.store.metadata import feedback, predictions
from planta.store.predictions import iter_rows

if TYPE_CHECKING:
    from planta.services.workspace import Workspace


def row_counts(ws: Workspace, usecase: str, edges: Sequence[datetime]) -> list[int]:
    """Log rows per window, from the (usecase, at) index alone."""
    stmt = (select(func.count()).select_from(predictions)
            .where(predictions.c.usecase == usecase,
                   predictions.c.at >= bindparam("a", type_=predictions.c.at.type),
                   predictions.c.at < bindparam("b", type_=predictions.c.at.type)))
    with ws.store.read() as conn:
        return [int(conn.execute(stmt, {"a": a, "b": b}).scalar() or 0)
                for a, b in zip(edges[:-1], edges[1:], strict=True)]


def record_counts(ws: Workspace, usecase: str, edges: Sequence[datetime]) -> list[int]:
    """Predictions (records, shadow answers left out) per window."""
    stmt = (select(func.coalesce(func.sum(predictions.c.n), 0))
            .where(predictions.c.usecase == usecase, predictions.c.route != "shadow",
                   predictions.c.at >= bindparam("a", type_=predictions.c.at.type),
                   predictions.c.at < bindparam("b", type_=predictions.c.at.type)))
    with ws.store.read() as conn:
        return [int(conn.execute(stmt, {"a": a, "b": b}).scalar() or 0)
                for a, b in zip(edges[:-1], edges[1:], strict=True)]


# The served probability of a one-record row, read straight from the outputs text: the writer
# spells it {"prediction": [...], "probability": [p], ...}; SQLite's CAST reads the number at
# the front of "p], ...". Rows that do not look like that (several records, no probability)
# go through json_each instead. Measured on a million rows: 1.0 s against 1.9 s for json_each
# and 2.5 s for parsing in Python.
_SQLITE_SUMS = """
WITH r AS (
  SELECT version, n, outputs, instr(outputs, '"probability":') AS at_p,
         ltrim(substr(outputs, instr(outputs, '"probability":') + 14), ' [') AS tail
  FROM predictions
  WHERE usecase = :usecase AND at >= :a AND at < :b AND route != 'shadow'
), s AS (
  SELECT version, CAST(tail AS REAL) AS p FROM r
  WHERE n = 1 AND at_p > 0 AND substr(tail, 1, 1) IN ('0', '1', '.')
  UNION ALL
  SELECT r.version, CAST(j.value AS REAL) FROM r, json_each(r.outputs, '$.probability') AS j
  WHERE NOT (n = 1 AND at_p > 0 AND substr(tail, 1, 1) IN ('0', '1', '.'))
    AND j.type IN ('real', 'integer')
)
SELECT (p >= {threshold}) AS alarm, MIN(CAST(p * {bins} AS INTEGER), {last}) AS bin,
       count(*), sum(p)
FROM s WHERE p >= 0 AND p <= 1 GROUP BY 1, 2
"""


def sum_in_sqlite(conn: Any, usecase: str, thresholds: Mapping[int, float], default: float,
                  a: datetime, b: datetime) -> ScoreSummary:
    """One window's summary, aggregated inside SQLite (binary models): ``thresholds`` by
    model version, ``default`` for a version not listed."""
    params: dict[str, Any] = {"usecase": usecase, "a": a, "b": b, "t_default": default}
    cases = []
    for i, (version, value) in enumerate(sorted(thresholds.items())):
        cases.append(f"WHEN {int(version)} THEN :t{i}")
        params[f"t{i}"] = float(value)
    threshold = f"CASE version {' '.join(cases)} ELSE :t_default END" if cases else ":t_default"
    stmt = text(_SQLITE_SUMS.format(threshold=threshold, bins=BINS, last=BINS - 1)).bindparams(
        bindparam("a", type_=predictions.c.at.type), bindparam("b", type_=predictions.c.at.type))
    return ScoreSummary.from_bins(conn.execute(stmt, params).all())


def sum_in_python(conn: Any, usecase: str, task: Task, threshold_of: Callable[[int], float],
                  a: datetime, b: datetime) -> ScoreSummary:
    """One window's summary, streamed through Python (any engine, any task)."""
    stmt = select(predictions.c.version, predictions.c.outputs).where(
        predictions.c.usecase == usecase, predictions.c.at >= a, predictions.c.at < b,
        predictions.c.route != "shadow")
    probs: list[float] = []
    alarms: list[bool] = []
    for row in iter_rows(conn, stmt, size=2048):
        row_scores(orjson.loads(row.outputs), task, threshold_of(row.version), probs, alarms)
    return ScoreSummary.from_scores(np.asarray(probs, dtype=float), np.asarray(alarms, dtype=bool))


def row_scores(outputs: Any, task: Task, threshold: float, probs: list[float],
               alarms: list[bool]) -> None:
    """Append one log row's scores to ``probs`` and ``alarms``: binary, each P(positive) in
    [0, 1] and whether it reached ``threshold``; multiclass, each record's top probability
    (never an alarm). The one definition the log reader and the rollup share."""
    values = outputs.get("probability") if isinstance(outputs, Mapping) else None
    if not isinstance(values, list):
        return
    if task == Task.BINARY:
        for p in values:
            if isinstance(p, (int, float)) and 0.0 <= p <= 1.0:
                probs.append(float(p))
                alarms.append(p >= threshold)
    else:
        for p in values:
            top = _top_probability(p)
            if top is not None:
                probs.append(top)
                alarms.append(False)


def _top_probability(value: Any) -> float | None:
    if isinstance(value, Mapping):
        numbers = [float(v) for v in value.values() if isinstance(v, (int, float))]
        return max(numbers) if numbers else None
    return None


def feedback_state(ws: Workspace, usecase: str) -> tuple[int, Any]:
    stmt = select(func.count(), func.max(feedback.c.received_at)).where(
        feedback.c.usecase == usecase)
    with ws.store.read() as conn:
        row = conn.execute(stmt).one()
    return int(row[0] or 0), row[1]


# Labels and the log rows holding their predictions, SQLite. Most labels name the first (often
# the only) record of a row: found by equality on the primary key. The rest (records inside a
# many-record request) by the row starting at or before their id. CROSS JOIN fixes the join
# order: left to itself, SQLite walks the log's time index and probes the labels for every
# row (measured: 14 minutes instead of 0.5 s for 100,000 labels over a million rows). A
# one-record row's probability is read in SQL as in _SQLITE_SUMS; other rows bring their
# outputs along to be parsed.
_LABEL_COLUMNS = """f.prediction_id AS prediction_id, f.value AS value, p.id AS id, p.n AS n,
  p.at AS at, p.version AS version,
  CASE WHEN p.n = 1 AND instr(p.outputs, '"probability":') > 0
        AND substr(ltrim(substr(p.outputs, instr(p.outputs, '"probability":') + 14), ' ['),
                   1, 1) IN ('0', '1', '.')
       THEN CAST(ltrim(substr(p.outputs, instr(p.outputs, '"probability":') + 14), ' [')
                 AS REAL) END AS fast,
  p.outputs AS outputs"""
_LABEL_WHERE = """f.usecase = :usecase AND p.usecase = :usecase AND p.at >= :a AND p.at < :b
  AND p.route != 'shadow'"""


def _from_labels(where: str) -> str:
    """The labels-first join, filtered by ``where`` (fixed text; values are bound)."""
    return f"""
SELECT {_LABEL_COLUMNS}
FROM feedback AS f CROSS JOIN predictions AS p ON p.id = f.prediction_id
WHERE {where}
UNION ALL
SELECT {_LABEL_COLUMNS}
FROM feedback AS f CROSS JOIN predictions AS p ON p.id = (
  SELECT s.id FROM predictions AS s WHERE s.id <= f.prediction_id ORDER BY s.id DESC LIMIT 1)
WHERE {where}
  AND NOT EXISTS (SELECT 1 FROM predictions AS e WHERE e.id = f.prediction_id)
"""  # nosec B608 - fixed text; every value is a bound parameter


_SQLITE_LABELS = _from_labels(_LABEL_WHERE)
# The same for a few short windows: from the log's time index, one probe of the feedback's
# primary key per prediction (and a range probe per many-record request).
_SQLITE_WINDOW_LABELS = f"""
SELECT {_LABEL_COLUMNS}
FROM predictions AS p CROSS JOIN feedback AS f
  ON f.usecase = :usecase AND f.prediction_id = p.id
WHERE {_LABEL_WHERE}
UNION ALL
SELECT {_LABEL_COLUMNS}
FROM predictions AS p CROSS JOIN feedback AS f
  ON f.usecase = :usecase AND f.prediction_id > p.id AND f.prediction_id <= p.last_id
WHERE {_LABEL_WHERE} AND p.n > 1
"""  # nosec B608 - fixed text; every value is a bound parameter
# The same join for given labels (the label rollup counts what was just written exactly as the
# readers above read it).
_BY_ID_WHERE = """f.usecase = :usecase AND p.usecase = :usecase AND f.prediction_id IN :ids
  AND p.route != 'shadow'"""
_SQLITE_LABELS_BY_ID = _from_labels(_BY_ID_WHERE)
_BY_ID_CHUNK = 500


@dataclass
class Labels:
    """Labelled predictions of a period, column-wise."""

    at: list[Any] = field(default_factory=list)        # datetimes, or SQLite's text
    values: list[Any] = field(default_factory=list)    # feedback values as sent
    served: list[Any] = field(default_factory=list)    # P(positive), label or value
    versions: list[int] = field(default_factory=list)


def read_labels(ws: Workspace, usecase: str, task: Task, a: datetime, b: datetime, *,
              few: bool, portable: bool | None = None) -> Labels:
    """Each label of ``usecase`` whose prediction lies in [a, b), with what was served;
    ``few``: the period is short against the labels (read it from the log's side);
    ``portable``: the statements every engine runs (default: on anything but SQLite)."""
    out = Labels()
    at_type = predictions.c.at.type
    if portable is None:
        portable = ws.store.dialect != "sqlite"
    with ws.store.read() as conn:
        if not portable:
            stmt = text(_SQLITE_WINDOW_LABELS if few else _SQLITE_LABELS).bindparams(
                bindparam("usecase", usecase), bindparam("a", a, type_=at_type),
                bindparam("b", b, type_=at_type))
            _sqlite_rows(iter_rows(conn, stmt, size=4096), task, out)
            return out
        cols = (feedback.c.prediction_id, feedback.c.value, predictions.c.id, predictions.c.n,
                predictions.c.at, predictions.c.version, predictions.c.outputs)
        where = (predictions.c.usecase == usecase, predictions.c.at >= a, predictions.c.at < b,
                 predictions.c.route != "shadow")
        same = feedback.c.usecase == predictions.c.usecase
        for stmt in (
                select(*cols).select_from(predictions.join(feedback, and_(
                    same, feedback.c.prediction_id == predictions.c.id))).where(*where),
                select(*cols).select_from(predictions.join(feedback, and_(
                    same, feedback.c.prediction_id > predictions.c.id,
                    feedback.c.prediction_id <= predictions.c.last_id)))
                .where(*where, predictions.c.n > 1)):
            for row in iter_rows(conn, stmt, size=4096):
                offset = 0 if row.n == 1 else decode(row.prediction_id) - decode(row.id)
                out.at.append(row.at.astimezone(UTC).replace(tzinfo=None))
                out.values.append(row.value)
                out.versions.append(int(row.version))
                out.served.append(served_answer(orjson.loads(row.outputs), offset, task))
    return out


def _sqlite_rows(rows: Any, task: Task, out: Labels) -> None:
    for row in rows:
        out.at.append(row.at)
        # The JSON column has numeric affinity in SQLite: 1 comes back as a number, "yes" as
        # its JSON text.
        value = row.value
        out.values.append(orjson.loads(value) if isinstance(value, str) else value)
        out.versions.append(int(row.version))
        if row.fast is not None and task == Task.BINARY:
            out.served.append(float(row.fast))
        else:
            offset = 0 if row.n == 1 else decode(row.prediction_id) - decode(row.id)
            out.served.append(served_answer(orjson.loads(row.outputs), offset, task))


def read_labels_by_id(ws: Workspace, usecase: str, task: Task, ids: Sequence[str]) -> Labels:
    """The labels of ``usecase`` on these prediction ids, with what was served, read as
    :func:`read_labels` reads them (``at``: naive UTC datetimes or SQLite's text)."""
    out = Labels()
    with ws.store.read() as conn:
        for lo in range(0, len(ids), _BY_ID_CHUNK):
            chunk = list(ids[lo:lo + _BY_ID_CHUNK])
            if ws.store.dialect == "sqlite":
                stmt = text(_SQLITE_LABELS_BY_ID).bindparams(
                    bindparam("usecase", usecase), bindparam("ids", chunk, expanding=True))
                _sqlite_rows(conn.execute(stmt), task, out)
                continue
            cols = (feedback.c.prediction_id, feedback.c.value, predictions.c.id,
                    predictions.c.n, predictions.c.at, predictions.c.version,
                    predictions.c.outputs)
            for pid in chunk:
                row = conn.execute(select(*cols).select_from(predictions.join(feedback, and_(
                    feedback.c.usecase == predictions.c.usecase,
                    feedback.c.prediction_id == pid))).where(
                    predictions.c.usecase == usecase, predictions.c.id <= pid,
                    predictions.c.last_id >= pid, predictions.c.route != "shadow")
                    .order_by(predictions.c.id.desc()).limit(1)).first()
                if row is None:
                    continue
                offset = decode(row.prediction_id) - decode(row.id)
                out.at.append(row.at.astimezone(UTC).replace(tzinfo=None))
                out.values.append(row.value)
                out.versions.append(int(row.version))
                out.served.append(served_answer(orjson.loads(row.outputs), offset, task))
    return out


def window_index(at: list[Any], edges: Sequence[datetime]) -> np.ndarray:
    """The window of each time (SQLite text or naive UTC datetimes), vectorised."""
    if not at:
        return np.zeros(0, dtype=np.int64)
    stamps = np.asarray(at, dtype="datetime64[us]")
    grid = np.asarray([e.astimezone(UTC).replace(tzinfo=None) for e in edges],
                      dtype="datetime64[us]")
    return np.clip(np.searchsorted(grid, stamps, side="right") - 1, 0, len(edges) - 2)



def served_answer(outputs: Mapping[str, Any], offset: int, task: Task) -> Any:
    """What the model answered for one record: P(positive), the label, or the value."""
    name = "probability" if task == Task.BINARY else (
        "prediction" if task == Task.MULTICLASS else "score")
    values = outputs.get(name)
    if task == Task.REGRESSION and not isinstance(values, list):
        values = outputs.get("prediction")
    return values[offset] if isinstance(values, list) and offset < len(values) else None


__all__ = ["Labels", "feedback_state", "read_labels", "read_labels_by_id", "record_counts",
           "row_counts",
           "row_scores", "served_answer",
           "sum_in_python", "sum_in_sqlite", "window_index"]
