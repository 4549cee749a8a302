"""Ground truth counted into each day's confusion counts as it is written.

    attach_labels(ws, feedback_store) -> LabelRollup     feedback_store.add_observer(observe)
    observe(usecase, added, updated)     after each committed FeedbackStore.add():
        read the new labels joined to their predictions (performance_log.read_labels_by_id,
        the cold readers' own join), count them per day of their prediction as tp/fn/fp/tn
        (each judged by the threshold of the version that answered), add them to the day's
        file; a day with a corrected label, or whose file no longer fits, is recounted whole
        from the log (read_labels over that day)
        .planta/cache/labels/<usecase>/<YYYYMMDD>.json     counts, id range, checks, metrics
        .planta/cache/labels/<usecase>/state.json          the feedback's (rows, newest
                                                           received_at) after the last count
    from_cache(...)                      a performance window's realised figures from its days

Binary use cases whose objective names no ranking metric (ROC-AUC, PR-AUC) only: their
realised metrics and intervals depend on the four counts alone (core.performance draws the
stratified bootstrap from them), so a window's figures from the files are exactly what the
cold join gives (tests/monitor/test_label_rollup.py). Other tasks are read when shown.

**Trusted only when it still fits.** A day's file holds the day's log rows, the id range of its
predictions and the number of feedback rows of the use case in that range, all as of its last
count. A reader re-counts both from indexes alone (the log's (usecase, at) index, the
feedback's primary key) and takes the file only when they match, the thresholds and classes
are the model's, and the feedback's (rows, newest received_at) is the one the observer left:
labels inserted another way, or corrected behind planta's back, make the window read cold.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sqlalchemy import bindparam, func, select

from planta.core.metrics import Estimate
from planta.core.performance import objective_clauses, realised_metrics
from planta.core.spec import Task, UseCase
from planta.errors import PlantaError
from planta.services import performance_log as reader
from planta.services.monitor_log import span_file
from planta.services.performance_memory import estimates_in, estimates_out
from planta.store.metadata import feedback, predictions
from planta.store.private import private_write_text

if TYPE_CHECKING:
    from planta.services.workspace import Workspace
    from planta.store.feedback import FeedbackStore

_logger = logging.getLogger(__name__)
DAY = timedelta(days=1)

_RANKING = frozenset({"roc_auc", "pr_auc"})
_BINARY_METRICS = frozenset({"recall", "precision", "f1", "accuracy", "balanced_accuracy",
                             "specificity", "false_alarm_rate", "false_alarms_per_day",
                             "expected_cost", "savings"})
# The four cells (truth, alarm) the counts are kept in: tp, fn, fp, tn.
_CELL_Y = np.array([1, 1, 0, 0])
_CELL_ALARM = np.array([1.0, 0.0, 1.0, 0.0])


def binary_metrics(uc: UseCase) -> frozenset[str]:
    """A window's realised metrics: the ranking ones (ROC-AUC, PR-AUC) only when the objective
    names them: their bootstrap is most of a window's cost, and no page shows them otherwise."""
    named = {c.metric for c in objective_clauses(uc.objective)}
    return _BINARY_METRICS | (named & _RANKING)


def counted(uc: UseCase) -> bool:
    """Whether ``uc``'s realised metrics come from confusion counts alone."""
    return uc.task == Task.BINARY and not binary_metrics(uc) & _RANKING


def confusion(y: np.ndarray, served: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
    """tp, fn, fp, tn of labels ``y`` (1/0) against ``served`` probabilities, each judged by
    its own version's threshold."""
    alarm = served >= thresholds
    pos = y == 1
    return np.array([(pos & alarm).sum(), (pos & ~alarm).sum(), (~pos & alarm).sum(),
                     (~pos & ~alarm).sum()], dtype=np.int64)


def counts_metrics(uc: UseCase, counts: Sequence[int], days: float) -> dict[str, Estimate]:
    """Realised metrics and intervals of a window from its four counts (the same seeded draw
    as from its rows: core.performance resamples the counts)."""
    reps = np.asarray(counts, dtype=np.int64)
    metrics = realised_metrics(Task.BINARY, np.repeat(_CELL_Y, reps),
                               np.repeat(_CELL_ALARM, reps), threshold=0.5, days=days,
                               cost=uc.objective.cost, metrics=binary_metrics(uc))
    return {k: v for k, v in metrics.items() if k != "cost_no_model"}


# -- a day's file -----------------------------------------------------------------------------------
@dataclass
class DayLabels:
    log_rows: int = 0                       # the day's log rows when counted
    lo: str | None = None                   # id range of the day's predictions
    hi: str | None = None
    in_range: int = 0                       # feedback rows of the use case in [lo, hi]
    classes: list[str] = field(default_factory=list)
    thresholds: dict[int, float] = field(default_factory=dict)
    counts: list[int] = field(default_factory=lambda: [0, 0, 0, 0])
    unreadable: int = 0
    metrics: dict[str, Any] | None = None   # {"basis": [...], "metrics": {...}}

    def to_dict(self) -> dict[str, Any]:
        return {"log_rows": self.log_rows, "lo": self.lo, "hi": self.hi,
                "in_range": self.in_range, "classes": self.classes,
                "thresholds": {str(v): t for v, t in sorted(self.thresholds.items())},
                "counts": [int(c) for c in self.counts], "unreadable": self.unreadable,
                "metrics": self.metrics}

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> DayLabels:
        counts = [int(c) for c in doc["counts"]]
        if len(counts) != 4:
            raise ValueError("not four counts")
        return cls(int(doc["log_rows"]), doc["lo"], doc["hi"], int(doc["in_range"]),
                   [str(c) for c in doc["classes"]],
                   {int(v): float(t) for v, t in doc["thresholds"].items()}, counts,
                   int(doc["unreadable"]), doc.get("metrics"))

    def fits(self, model: Any) -> bool:
        return self.classes == list(model.classes) and all(
            model.threshold(v) == t for v, t in self.thresholds.items())


def _basis(uc: UseCase, counts: Sequence[int]) -> list[Any]:
    return [uc.objective.text, [int(c) for c in counts], 1.0]


class LabelCache:
    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, usecase: str, day: datetime) -> Path:
        return self.root / usecase / span_file(day, "day")

    def get(self, usecase: str, day: datetime) -> DayLabels | None:
        path = self._path(usecase, day)
        if not path.is_file():
            return None
        try:
            return DayLabels.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a damaged file is recounted, never trusted

    def put(self, usecase: str, day: datetime, doc: DayLabels) -> None:
        private_write_text(self._path(usecase, day), json.dumps(doc.to_dict()))

    def state(self, usecase: str) -> str | None:
        with contextlib.suppress(OSError):
            return (self.root / usecase / "state.json").read_text(encoding="utf-8")
        return None

    def put_state(self, usecase: str, state: tuple[int, Any]) -> None:
        private_write_text(self.root / usecase / "state.json", _state_text(state))

    @contextlib.contextmanager
    def locked(self, usecase: str) -> Iterator[None]:
        """One counter at a time per use case, across processes (server, CLI)."""
        folder = self.root / usecase
        folder.mkdir(parents=True, exist_ok=True)
        with _THREADS, open(folder / ".lock", "a+b") as fh:
            try:
                import fcntl
            except ImportError:  # pragma: no cover - Windows: one process at a time
                yield
                return
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)


_THREADS = threading.RLock()


def label_cache_for(ws: Workspace) -> LabelCache:
    return LabelCache(ws.project.root / ".planta" / "cache" / "labels")


def _state_text(state: tuple[int, Any]) -> str:
    return json.dumps([int(state[0]), None if state[1] is None else str(state[1])])


# -- counting -------------------------------------------------------------------------------------
def _days_of(labels: reader.Labels) -> np.ndarray:
    return np.asarray(labels.at, dtype="datetime64[us]").astype("datetime64[D]")


def _day_start(day: np.datetime64) -> datetime:
    return day.astype("datetime64[s]").item().replace(tzinfo=UTC)


def _count(uc: UseCase, model: Any, labels: reader.Labels
           ) -> dict[datetime, tuple[np.ndarray, int, dict[int, float]]]:
    """Per day of the labels' predictions: the counts, the unreadable labels, the thresholds
    of the versions counted (what performance._window reads from the same labels)."""
    from planta.services.performance import label_arrays

    out: dict[datetime, tuple[np.ndarray, int, dict[int, float]]] = {}
    if not labels.at:
        return out
    y, served = label_arrays(uc.task, model, labels)
    readable = np.isfinite(y)
    usable = readable & np.isfinite(served)
    versions = np.asarray(labels.versions, dtype=np.int64)
    thr = np.asarray([model.threshold(int(v)) for v in versions], dtype=float)
    days = _days_of(labels)
    for day in np.unique(days):
        mask = days == day
        rows = mask & usable
        out[_day_start(day)] = (
            confusion(y[rows], served[rows], thr[rows]), int((mask & ~readable).sum()),
            {int(v): model.threshold(int(v)) for v in np.unique(versions[rows])})
    return out


def _in_range(conn: Any, usecase: str, lo: str | None, hi: str | None) -> int:
    if lo is None or hi is None:
        return 0
    return int(conn.scalar(select(func.count()).select_from(feedback).where(
        feedback.c.usecase == usecase, feedback.c.prediction_id >= lo,
        feedback.c.prediction_id <= hi)) or 0)


class LabelRollup:
    """Counts committed feedback into the day files (see the module docstring)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.cache = label_cache_for(ws)

    def observe(self, usecase: str, added: list[str], updated: list[str]) -> None:
        uc = self.ws.project.usecase(usecase)
        if not counted(uc):
            return
        from planta.services.performance import model_for

        model = model_for(self.ws, usecase, uc.task)
        fresh = reader.read_labels_by_id(self.ws, usecase, uc.task, added)
        moved = reader.read_labels_by_id(self.ws, usecase, uc.task, updated)
        recount = {_day_start(d) for d in np.unique(_days_of(moved))} if moved.at else set()
        parts = _count(uc, model, fresh)
        with self.cache.locked(usecase):
            for day in sorted(recount):
                self.recount(usecase, day, uc, model)
            for day, part in parts.items():
                if day not in recount:
                    self._add(usecase, day, uc, model, part, added)
            self.cache.put_state(usecase, reader.feedback_state(self.ws, usecase))

    def _add(self, usecase: str, day: datetime, uc: UseCase, model: Any,
             part: tuple[np.ndarray, int, dict[int, float]], added: list[str]) -> None:
        doc = self.cache.get(usecase, day)
        if doc is None or not doc.fits(model) or doc.lo is None or doc.hi is None:
            self.recount(usecase, day, uc, model)
            return
        rows = reader.row_counts(self.ws, usecase, [day, day + DAY])[0]
        with self.ws.store.read() as conn:
            now_in_range = _in_range(conn, usecase, doc.lo, doc.hi)
        new_in_range = sum(1 for pid in added if doc.lo <= pid <= doc.hi)
        if rows != doc.log_rows or now_in_range != doc.in_range + new_in_range:
            self.recount(usecase, day, uc, model)  # something else moved: count it whole
            return
        counts, unreadable, thresholds = part
        doc.counts = [int(a + b) for a, b in zip(doc.counts, counts, strict=True)]
        doc.unreadable += unreadable
        doc.thresholds.update(thresholds)
        doc.in_range = now_in_range
        self._finish(usecase, day, uc, doc)

    def recount(self, usecase: str, day: datetime, uc: UseCase, model: Any) -> None:
        """Count ``day`` whole from the log (its checks first: what lands meanwhile makes
        the next reader's check fail, never a wrong figure trusted)."""
        rows = reader.row_counts(self.ws, usecase, [day, day + DAY])[0]
        at = predictions.c.at.type
        with self.ws.store.read() as conn:
            lo, hi = conn.execute(
                select(func.min(predictions.c.id), func.max(predictions.c.last_id)).where(
                    predictions.c.usecase == usecase,
                    predictions.c.at >= bindparam("a", day, type_=at),
                    predictions.c.at < bindparam("b", day + DAY, type_=at))).one()
            in_range = _in_range(conn, usecase, lo, hi)
        labels = reader.read_labels(self.ws, usecase, uc.task, day, day + DAY, few=True)
        counts, unreadable, thresholds = _count(uc, model, labels).get(
            day, (np.zeros(4, dtype=np.int64), 0, {}))
        doc = DayLabels(rows, lo, hi, in_range, list(model.classes), thresholds,
                        [int(c) for c in counts], unreadable)
        self._finish(usecase, day, uc, doc)

    def _finish(self, usecase: str, day: datetime, uc: UseCase, doc: DayLabels) -> None:
        # A closed day's metrics drawn now, once: the first look at a year then draws none.
        doc.metrics = None
        if sum(doc.counts):
            doc.metrics = {"basis": _basis(uc, doc.counts),
                           "metrics": estimates_out(counts_metrics(uc, doc.counts, 1.0))}
        self.cache.put(usecase, day, doc)


def attach_labels(ws: Workspace, store: FeedbackStore) -> LabelRollup:
    """Count ``store``'s committed feedback into ``ws``'s label caches from now on."""
    rollup = LabelRollup(ws)
    store.add_observer(rollup.observe)
    return rollup


# -- reading --------------------------------------------------------------------------------------
_Window = tuple[int, dict[str, Estimate], int]


def from_cache(ws: Workspace, usecase: str, uc: UseCase, model: Any,
               edges: Sequence[datetime], counts: Sequence[int], now: datetime,
               wanted: Sequence[int], state: tuple[int, Any]) -> dict[int, _Window]:
    """The realised figures of the ``wanted`` windows that whole, closed, checked days give."""
    if not counted(uc) or not wanted:
        return {}
    cache = label_cache_for(ws)
    if cache.state(usecase) != _state_text(state):
        return {}  # feedback written another way since the last count: read it
    picked: dict[int, list[DayLabels]] = {}
    for k in wanted:
        a, b = edges[k], edges[k + 1]
        if b > now or a.time() != datetime.min.time() or (b - a) % DAY:
            continue
        docs: list[DayLabels] = []
        day = a
        while day < b:
            doc = cache.get(usecase, day)
            if doc is not None and not doc.fits(model):
                break
            docs.append(doc or DayLabels())
            day += DAY
        else:
            if sum(d.log_rows for d in docs) == counts[k]:
                picked[k] = docs
    if not picked:
        return {}
    try:
        with ws.store.read() as conn:
            for k in list(picked):
                if any(_in_range(conn, usecase, d.lo, d.hi) != d.in_range for d in picked[k]):
                    del picked[k]
    except PlantaError:
        return {}
    out: dict[int, _Window] = {}
    for k, docs in picked.items():
        total = [sum(d.counts[i] for d in docs) for i in range(4)]
        unreadable = sum(d.unreadable for d in docs)
        labelled = sum(total)
        if not labelled:
            out[k] = (0, {}, unreadable)
            continue
        days = (edges[k + 1] - edges[k]) / DAY
        kept = docs[0].metrics if len(docs) == 1 else None
        if kept is not None and kept.get("basis") == _basis(uc, total) and days == 1.0:
            metrics = estimates_in(kept["metrics"])
        else:
            metrics = counts_metrics(uc, total, days)
        out[k] = (labelled, metrics, unreadable)
    return out


__all__ = ["DayLabels", "LabelCache", "LabelRollup", "attach_labels", "binary_metrics",
           "confusion", "counted", "counts_metrics", "from_cache", "label_cache_for"]
