"""How well is the model doing? Realised and estimated performance per time window.

    performance_over_time(ws, usecase, since=, until=, window=)
      ├─ windows on a fixed grid (multiples of ``window`` since 1970), so the same window is the
      │  same key on every call and its sums can be reused
      ├─ estimated (no labels needed): per window, counts and probability sums by (alarm, bin)
      │     SQLite: aggregated inside SQL (no row reaches Python)  · other engines: streamed
      │     ──► core.performance.estimate_binary / estimate_multiclass (CBPE)
      ├─ realised: feedback joined to its prediction (one index probe per label), labels
      │     normalised against the model's classes ──► core.performance.realised_metrics
      └─ PerformanceSeries: windows, validation interval, verdicts, signals() for rules

**Speed.** The first look at a year (a million predictions, 100,000 labels) reads every log
row once and bootstraps every window: seconds, not milliseconds (bench/RESULTS.md). Every
window's results are then remembered, in this process and in ``.planta/cache/performance/``
(performance_memory), under keys that hold what they depend on: the window's log row count
(an index-only count per window, re-done on every call), the feedback's row count and newest
``received_at``, the thresholds, a digest of the labels. A later call, in this process or a
new one, re-reads only windows whose count moved, and re-bootstraps only windows whose labels
changed. The log is read by performance_log.

A log written through planta (``planta serve``, ``planta worker``) needs even less: as it is
written, ``planta.services.monitor_rollup`` keeps each closed hour's, day's and month's sums
(and each closed day's estimate) in ``.planta/cache/scores/``, so a window made of whole
settled hours reads no log row (when the log's row count and the thresholds still match).
Labels sent through planta (``planta feedback``, the API, the upload page) are counted too:
``planta.services.label_rollup`` keeps each day's confusion counts and drawn intervals in
``.planta/cache/labels/``, so a closed whole-day window of a binary use case joins no label
and draws nothing (when its checks still match; else it is read as above).
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from planta.core.metrics import Estimate
from planta.core.performance import (
    ScoreSummary,
    Verdict,
    estimate_binary,
    estimate_multiclass,
    judge,
    label_codes,
    objective_clauses,
    realised_metrics,
    sentence_said,
)
from planta.core.spec import Task, UseCase
from planta.errors import InputError, NotFoundError
from planta.i18n import DEFAULT_LANG, Translate, said, said_number, say, translator
from planta.services import performance_log as reader
from planta.services.label_rollup import (
    binary_metrics,
    confusion,
    counted,
    counts_metrics,
    from_cache,
)
from planta.services.monitor_rollup import kept_estimate, score_cache_for, scores_from_cache
from planta.services.performance_memory import WindowMemory, estimates_out, forget
from planta_edge.bundle import read_bundle

if TYPE_CHECKING:
    from planta.services.workspace import Workspace

# A year of hourly windows is the most one call draws (8,784); beyond that, ask for wider ones.
MAX_WINDOWS = 10_000
DEFAULT_SPAN = timedelta(days=30)
DEFAULT_WINDOW = timedelta(days=1)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SHOWN = ("recall", "precision", "accuracy", "false_alarms_per_day", "f1", "expected_cost",
          "savings", "f1_macro", "balanced_accuracy", "rmse", "mae", "r2")


# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------

def _estimates(data: Mapping[str, Estimate]) -> dict[str, Any]:
    return {k: v.to_dict() for k, v in data.items()}


@dataclass
class PerformanceWindow:
    """One time window: how many predictions, how many with ground truth, and the metrics."""

    start: datetime
    end: datetime
    n_predictions: int
    n_labelled: int = 0
    n_unreadable: int = 0
    realised: dict[str, Estimate] | None = None
    estimated: dict[str, Estimate] = field(default_factory=dict)
    realised_verdict: Verdict | None = None
    estimated_verdict: Verdict | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"start": self.start.isoformat(), "end": self.end.isoformat(),
                "n_predictions": self.n_predictions, "n_labelled": self.n_labelled,
                "n_unreadable": self.n_unreadable,
                "realised": None if self.realised is None else _estimates(self.realised),
                "estimated": _estimates(self.estimated),
                "realised_verdict": (None if self.realised_verdict is None
                                     else self.realised_verdict.to_dict()),
                "estimated_verdict": (None if self.estimated_verdict is None
                                      else self.estimated_verdict.to_dict())}


@dataclass
class PerformanceSeries:
    """Performance of one use case over time, window by window (oldest first)."""

    usecase: str
    task: Task
    objective: str
    objective_words: str
    metric: str
    targets: dict[str, float]
    since: datetime
    until: datetime
    window: timedelta
    version: int | None
    validation: dict[str, Estimate]
    windows: list[PerformanceWindow]
    positive: str = "failures"
    estimable: bool = True
    notes: list[str] = field(default_factory=list)
    # The notes as data (planta.i18n.said), said in the reader's language.
    notes_said: list[Any] = field(default_factory=list)

    @property
    def metrics(self) -> list[str]:
        """The metrics worth showing, the objective's first."""
        seen: list[str] = list(self.targets)
        for w in self.windows:
            for name in list(w.realised or {}) + list(w.estimated):
                if name not in seen and name in _SHOWN:
                    seen.append(name)
        return seen

    def latest_labelled(self) -> PerformanceWindow | None:
        """The newest window with ground truth."""
        return next((w for w in reversed(self.windows) if w.realised), None)

    def latest(self) -> PerformanceWindow | None:
        """The newest window with predictions."""
        return next((w for w in reversed(self.windows) if w.n_predictions), None)

    def signals(self) -> dict[str, float]:
        """Numbers for rules: the realised metrics of the newest window with labels (``recall``,
        ``precision``, … and ``recall_lower`` / ``recall_upper``), the estimated ones of the
        newest window with predictions (``estimated_recall``, …), ``labelled_rows`` (in that
        labelled window), ``labelled_rows_total``, ``predictions`` (newest window), the
        objective's targets (``target_recall``, …), and ``objective_met`` 1.0 / 0.0 when the
        newest verdict is confident (measured first, else estimated; absent while unclear),
        with ``objective_met_measured`` and ``objective_met_estimated`` for rules that want
        one kind only."""
        out: dict[str, float] = {}
        labelled = self.latest_labelled()
        if labelled is not None and labelled.realised:
            for name, est in labelled.realised.items():
                _put(out, name, est.value)
                _put(out, f"{name}_lower", est.lower)
                _put(out, f"{name}_upper", est.upper)
            out["labelled_rows"] = float(labelled.n_labelled)
        latest = self.latest()
        if latest is not None:
            out["predictions"] = float(latest.n_predictions)
            for name, est in latest.estimated.items():
                _put(out, f"estimated_{name}", est.value)
                _put(out, f"estimated_{name}_lower", est.lower)
                _put(out, f"estimated_{name}_upper", est.upper)
        out["labelled_rows_total"] = float(sum(w.n_labelled for w in self.windows))
        for name, target in self.targets.items():
            out[f"target_{name}"] = float(target)
        for name, verdict in (
                ("objective_met", self.verdict()),
                ("objective_met_measured", labelled.realised_verdict if labelled else None),
                ("objective_met_estimated", latest.estimated_verdict if latest else None)):
            if verdict is not None and verdict.decided:
                out[name] = 1.0 if verdict.state == "met" else 0.0
        return out

    def verdict(self) -> Verdict | None:
        """The newest confident verdict: realised in the newest labelled window, else the
        estimate in the newest window; None when neither is decided."""
        labelled = self.latest_labelled()
        if labelled is not None and labelled.realised_verdict is not None \
                and labelled.realised_verdict.decided:
            return labelled.realised_verdict
        latest = self.latest()
        if latest is not None and latest.estimated_verdict is not None \
                and latest.estimated_verdict.decided:
            return latest.estimated_verdict
        return None

    def sentences_said(self) -> list[Any]:
        """The story in plant words, as data any language can say (:func:`planta.i18n.say`):
        the newest realised and estimated figures of the goal, then the notes."""
        out: list[Any] = []
        target = self.targets.get(self.metric)
        labelled = self.latest_labelled()
        if labelled is not None and labelled.realised and self.metric in labelled.realised:
            out.append(sentence_said(self.metric, labelled.realised[self.metric],
                                     period=_period(labelled, self.window), estimated=False,
                                     target=target, positive=self.positive))
        latest = self.latest()
        if latest is not None and self.metric in latest.estimated:
            out.append(sentence_said(self.metric, latest.estimated[self.metric],
                                     period=said("perf.period.estimated",
                                                 period=_period(latest, self.window)),
                                     estimated=True, target=target, positive=self.positive))
        if self.metric in self.validation:
            out.append(sentence_said(self.metric, self.validation[self.metric],
                                     period=said("perf.period.validated"), estimated=False,
                                     target=target, positive=self.positive))
        verdict = self.verdict()
        if verdict is not None and verdict.state == "not_met":
            missed = [d for d in verdict.reasons_said
                      if d.get("params", {}).get("state") == "not_met"]
            out.append(said("perf.not_met", reasons={"items": missed, "sep": "; "}))
        notes = self.notes_said if len(self.notes_said) == len(self.notes) else self.notes
        return out + list(notes)

    def sentences(self, t: Translate | None = None) -> list[str]:
        """:meth:`sentences_said` in ``t``'s language (English by default)."""
        t = t or translator(DEFAULT_LANG)
        return [say(doc, t) for doc in self.sentences_said()]

    def to_dict(self) -> dict[str, Any]:
        verdict = self.verdict()
        return {"usecase": self.usecase, "task": self.task.value, "objective": self.objective,
                "objective_words": self.objective_words, "metric": self.metric,
                "targets": dict(self.targets), "since": self.since.isoformat(),
                "until": self.until.isoformat(), "window_s": self.window.total_seconds(),
                "version": self.version, "validation": _estimates(self.validation),
                "estimable": self.estimable, "metrics": self.metrics,
                "verdict": None if verdict is None else verdict.to_dict(),
                "sentences": self.sentences(), "sentences_said": self.sentences_said(),
                "signals": self.signals(),
                "windows": [w.to_dict() for w in self.windows], "notes": list(self.notes)}


def _put(out: dict[str, float], name: str, value: float) -> None:
    if math.isfinite(value):
        out[name] = float(value)


def _period(w: PerformanceWindow, window: timedelta) -> dict[str, Any]:
    if window >= timedelta(days=1) and w.start.time() == datetime.min.time():
        day = said("perf.date", d=w.start.day, m=said(f"month.{w.start.month}"),
                   y=w.start.year)
        return said("perf.period.day", day=day) if window == timedelta(days=1) else said(
            "perf.period.span", span=_span(window), day=day)
    start = said("perf.date.time", d=f"{w.start:%d}", m=said(f"month.{w.start.month}"),
                 hm=f"{w.start:%H:%M}")
    return said("perf.period.range", start=start, end=f"{w.end:%H:%M}")


def _span(window: timedelta) -> dict[str, Any]:
    days = window.total_seconds() / 86400
    if days == 7:
        return said("perf.span.week")
    return said("perf.span.days", n=said_number(days)) if days >= 1 else said(
        "perf.span.hours", n=said_number(window.total_seconds() / 3600))


# ---------------------------------------------------------------------------------------------
# The service
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class _Model:
    """What the log's rows need from the registry: thresholds per version, the classes."""

    thresholds: dict[int, float]
    classes: tuple[str, ...]
    version: int | None
    validation: dict[str, Estimate]

    def threshold(self, version: int) -> float:
        return self.thresholds.get(version, self.thresholds.get(self.version or -1, 0.5))


def performance_over_time(ws: Workspace, usecase: str, *, since: datetime | None = None,
                          until: datetime | None = None, window: timedelta = DEFAULT_WINDOW,
                          now: datetime | None = None, engine_sql: bool = True,
                          remember: bool = True) -> PerformanceSeries:
    """Realised and estimated performance of ``usecase`` per ``window`` in [since, until).

    Args:
        since, until: aware times; default the 30 days up to now. Windows sit on a fixed grid
            (multiples of ``window`` since 1970 UTC), so ``since`` is rounded down to one.
        window: the width of a window (an hour to a few weeks makes sense).
        engine_sql: aggregate inside SQLite when the store is SQLite (False streams the rows
            through Python, the path other engines take; the two agree, see the tests).
        remember: keep window results in ``.planta/cache/performance/`` for the next call
            (in this process they are remembered either way).

    Raises:
        NotFoundError: the use case is unknown or has no model version.
        InputError: a bad window (not positive, or more than 10,000 windows).
    """
    uc = ws.project.usecase(usecase)
    now = now or datetime.now(UTC)
    until = _aware(until or now)
    since = _aware(since or until - DEFAULT_SPAN)
    if window <= timedelta(0):
        raise InputError(f"The window must be longer than zero (got {window}).",
                         hint="Use --window 1d, 12h or 7d.")
    if since >= until:
        raise InputError(f"The period from {since.isoformat()} to {until.isoformat()} is empty.",
                         hint="Give --since a time before --until.")
    width = window.total_seconds()
    first = math.floor((since - _EPOCH).total_seconds() / width)
    count = math.ceil((until - _EPOCH).total_seconds() / width) - first
    if count > MAX_WINDOWS:
        raise InputError(f"{count:,} windows of {window} from {since:%Y-%m-%d} are too many "
                         f"(at most {MAX_WINDOWS:,}).", hint="Use a wider --window.")
    edges = [_EPOCH + timedelta(seconds=(first + k) * width) for k in range(count + 1)]
    edges[-1] = min(edges[-1], until)
    model = _model(ws, usecase, uc.task)
    counts = reader.row_counts(ws, usecase, edges)
    windows = [PerformanceWindow(start=a, end=b, n_predictions=0)
               for a, b in zip(edges[:-1], edges[1:], strict=True)]
    notes: list[Any] = []
    sql = engine_sql and ws.store.dialect == "sqlite" and uc.task == Task.BINARY
    closed = frozenset((a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)
                       if b - a == window and b <= now)
    memory = WindowMemory(_cache_folder(ws) if remember else None, usecase, closed)
    if uc.task == Task.REGRESSION:
        # Nothing to estimate: only count the predictions.
        for w, n in zip(windows, reader.record_counts(ws, usecase, edges), strict=True):
            w.n_predictions = n
    else:
        summaries = _summaries(ws, memory, usecase, uc.task, model, edges, counts, sql=sql,
                               now=now)
        for w, summary in zip(windows, summaries, strict=True):
            w.n_predictions = summary.n
            w.estimated = _estimated(ws, memory, usecase, uc, model, w, summary, now)
    if uc.task == Task.REGRESSION:
        notes.append(said("perf.note.regression"))
    realised = _realised(ws, memory, usecase, uc, model, edges, counts, now)
    memory.save()
    for w, (labelled, metrics, unread) in zip(windows, realised, strict=True):
        w.n_labelled, w.n_unreadable = labelled, unread
        w.realised = metrics or None
    bad = sum(w.n_unreadable for w in windows)
    if bad:
        notes.append(said("perf.note.unreadable", n=said_number(bad, 0),
                          classes=", ".join(model.classes)))
    for w in windows:
        if w.realised:
            w.realised_verdict = judge(uc.objective, w.realised)
        if w.estimated:
            w.estimated_verdict = judge(uc.objective, w.estimated)
    clauses = objective_clauses(uc.objective)
    targets = {c.metric: c.target for c in clauses}
    metric = clauses[0].metric if clauses else _default_metric(uc.task)
    return PerformanceSeries(
        usecase=usecase, task=uc.task, objective=uc.objective.text,
        objective_words=uc.objective.describe(), metric=metric, targets=targets,
        since=edges[0], until=edges[-1], window=window, version=model.version,
        validation=model.validation, windows=windows, positive=_positive_words(uc, model),
        estimable=uc.task != Task.REGRESSION, notes_said=notes,
        notes=[say(n, translator(DEFAULT_LANG)) for n in notes])


def _estimated(ws: Workspace, memory: WindowMemory, usecase: str, uc: UseCase, model: _Model,
               w: PerformanceWindow, summary: ScoreSummary,
               now: datetime) -> dict[str, Estimate]:
    """The window's estimates; remembered with what they were drawn from (the same summary
    gives the same numbers: the simulation is seeded)."""
    if summary.n == 0 or uc.task == Task.REGRESSION:
        return {}
    days = _days(w, now)
    key = (ws.store.url, usecase, "estimate", w.start, w.end, days, uc.objective.text,
           tuple(sorted(model.thresholds.items())), summary.counts.tobytes(),
           summary.sums.tobytes())
    hit = memory.get("estimate", key)
    if hit is None and w.end - w.start == timedelta(days=1) and days == 1.0:
        hit = kept_estimate(score_cache_for(ws), usecase, w.start,
                            _estimate_basis(uc, model), summary)
    if hit is None:
        hit = _estimate(uc, summary, days)
    memory.put("estimate", key, hit, span=(w.start, w.end))
    return dict(hit)


def _estimate(uc: UseCase, summary: ScoreSummary, days: float) -> dict[str, Estimate]:
    return (estimate_binary(summary, days=days, cost=uc.objective.cost)
            if uc.task == Task.BINARY else estimate_multiclass(summary))


def _estimate_basis(uc: UseCase, model: _Model) -> list[Any]:
    """What a day's estimate depends on besides its sums (kept beside them to compare)."""
    return [uc.objective.text, [[v, t] for v, t in sorted(model.thresholds.items())]]


def day_estimate(ws: Workspace, usecase: str, summary: ScoreSummary) -> dict[str, Any] | None:
    """A closed day's estimate from its sums, with what it depends on, for the rollup to keep
    in the day's file (the first look at a year then draws none of them)."""
    uc = ws.project.usecase(usecase)
    if summary.n == 0 or uc.task == Task.REGRESSION:
        return None
    model = _model(ws, usecase, uc.task)
    return {"basis": _estimate_basis(uc, model),
            "metrics": estimates_out(_estimate(uc, summary, 1.0))}


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None:
        raise InputError(f"{at!r} has no time zone; planta works in UTC.")
    return at.astimezone(UTC)


def _default_metric(task: Task) -> str:
    return {Task.BINARY: "recall", Task.MULTICLASS: "accuracy", Task.REGRESSION: "rmse"}[task]


def _positive_words(uc: UseCase, model: _Model) -> str:
    name = model.classes[-1] if model.classes else "failure"
    word = uc.target if name.lower() in ("1", "true", "yes") else name
    word = word.replace("_", " ").lower()
    return word if word.endswith("s") else f"{word}s"


def _days(w: PerformanceWindow, now: datetime) -> float:
    return max((min(w.end, now) - w.start).total_seconds(), 1.0) / 86400


# -- the model ----------------------------------------------------------------------------------
_BUNDLE_CLASSES: dict[str, tuple[str, ...]] = {}


def _model(ws: Workspace, usecase: str, task: Task) -> _Model:
    versions = ws.registry.list_models(usecase)
    if not versions:
        raise NotFoundError(f"Use case {usecase!r} has no model version yet.",
                            hint=f"Train one with `planta train {usecase}`.")
    aliases = ws.registry.aliases(usecase)
    current = aliases.get("production", max(v.version for v in versions))
    mv = next(v for v in versions if v.version == current)
    thresholds = {v.version: float(v.summary.get("threshold") or 0.5) for v in versions}
    classes: tuple[str, ...] = ()
    if task != Task.REGRESSION:
        classes = _BUNDLE_CLASSES.get(mv.bundle_digest, ())
        if not classes:
            # The edge reader verifies the bundle with the standard library and numpy only;
            # services.versions would import the model libraries for nothing.
            bundle = read_bundle(ws.artifacts.get_bytes(mv.bundle_digest),
                                 expected_digest=mv.bundle_digest)
            classes = tuple(str(c) for c in bundle.json("metrics.json").get("classes", ()))
            _BUNDLE_CLASSES[mv.bundle_digest] = classes
    validation = {k: Estimate.from_any(v) for k, v in mv.metrics.items()
                  if isinstance(v, Mapping)}
    return _Model(thresholds, classes, current, validation)


def model_thresholds(ws: Workspace, usecase: str, task: Task
                     ) -> tuple[Callable[[int], float], frozenset[int]]:
    """The alarm threshold of each model version (as the log's rows are judged) and the
    versions known, for ``planta.services.monitor_rollup``."""
    model = _model(ws, usecase, task)
    return model.threshold, frozenset(model.thresholds)


# -- counting and summing the log ---------------------------------------------------------------
def _cache_folder(ws: Workspace) -> Path:
    return ws.project.root / ".planta" / "cache" / "performance"


def clear_memory(ws: Workspace | None = None) -> None:
    """Forget the remembered window results: this process's, and with ``ws`` its project's
    cache files too (tests and benchmarks measure cold reads with it)."""
    forget(None if ws is None else _cache_folder(ws))


def _summaries(ws: Workspace, memory: WindowMemory, usecase: str, task: Task, model: _Model,
               edges: Sequence[datetime], counts: Sequence[int], *,
               sql: bool, now: datetime) -> list[ScoreSummary]:
    thresholds = tuple(sorted(model.thresholds.items()))
    base = (ws.store.url, usecase, task.value, thresholds, model.classes)
    out: list[ScoreSummary | None] = []
    missing: list[int] = []
    for k, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
        if counts[k] == 0:
            out.append(ScoreSummary.empty())
            continue
        hit = memory.get("sums", (*base, a, b))
        if hit is not None and hit[0] == counts[k]:
            out.append(hit[1])
        else:
            out.append(None)
            missing.append(k)
    # Whole settled hours, days and months counted as the log was written (monitor_rollup):
    # a window found there reads no log row.
    cache = score_cache_for(ws)
    for k in list(missing):
        a, b = edges[k], edges[k + 1]
        summary = scores_from_cache(cache, usecase, a, b, rows=counts[k],
                                    threshold_of=model.threshold, now=now)
        if summary is not None:
            out[k] = summary
            missing.remove(k)
            memory.put("sums", (*base, a, b), (counts[k], summary), span=(a, b))
    if missing:
        with ws.store.read() as conn:
            for k in missing:
                a, b = edges[k], edges[k + 1]
                summary = (reader.sum_in_sqlite(conn, usecase, model.thresholds,
                                                model.threshold(-1), a, b) if sql else
                           reader.sum_in_python(conn, usecase, task, model.threshold, a, b))
                out[k] = summary
                memory.put("sums", (*base, a, b), (counts[k], summary), span=(a, b))
    return [s if s is not None else ScoreSummary.empty() for s in out]


# Re-read a changed window from the log's side while it holds fewer than this share of the
# period's predictions; beyond, one pass over all the labels is cheaper.
_WINDOW_SHARE = 0.2


_Window = tuple[int, dict[str, Estimate], int]   # labelled rows, metrics, unreadable labels


def _realised(ws: Workspace, memory: WindowMemory, usecase: str, uc: UseCase, model: _Model,
              edges: Sequence[datetime], counts: Sequence[int], now: datetime
              ) -> list[_Window]:
    """Per window: labelled rows, realised metrics, unreadable labels.

    Remembered per window with the window's log row count and the feedback's state (row count,
    newest ``received_at``): while neither moves, nothing is read. A window whose count moved
    (new predictions) is re-read alone; when the feedback moved, all labels are read in one
    pass, and each window's metrics are re-computed only if its labels changed (a digest)."""
    state = reader.feedback_state(ws, usecase)
    n_windows = len(edges) - 1
    if state[0] == 0:
        return [(0, {}, 0)] * n_windows
    base = (ws.store.url, usecase, tuple(sorted(model.thresholds.items())), model.classes,
            uc.objective.text)
    days = [max((min(edges[k + 1], now) - edges[k]).total_seconds(), 1.0) / 86400
            for k in range(n_windows)]
    keys = [(*base, "realised", edges[k], edges[k + 1], counts[k], state, days[k])
            for k in range(n_windows)]
    out: list[_Window | None] = [memory.get("window", key) if counts[k] else (0, {}, 0)
                                 for k, key in enumerate(keys)]
    missing = [k for k, hit in enumerate(out) if hit is None]
    # Closed whole days counted as the labels were written (label_rollup): no join, no draw.
    for k, hit in from_cache(ws, usecase, uc, model, edges, counts, now, missing,
                             state).items():
        out[k] = hit
        memory.put("window", keys[k], hit, span=(edges[k], edges[k + 1]))
    missing = [k for k in missing if out[k] is None]
    if not missing:
        return [w for w in out if w is not None]
    total = max(sum(counts), 1)
    if sum(counts[k] for k in missing) <= _WINDOW_SHARE * total:
        parts = [(k, reader.read_labels(ws, usecase, uc.task, edges[k], edges[k + 1],
                                        few=True)) for k in missing]
    else:
        labels = reader.read_labels(ws, usecase, uc.task, edges[0], edges[-1],
                           few=ws.store.dialect != "sqlite")
        which = reader.window_index(labels.at, edges)
        columns = (labels.at, labels.values, labels.served, labels.versions)
        parts = [(k, reader.Labels(*[[column[i] for i in np.flatnonzero(which == k)]
                                     for column in columns])) for k in missing]
    for k, window_labels in parts:
        out[k] = _window(ws, memory, usecase, uc, model, edges, k, days[k], window_labels)
        memory.put("window", keys[k], out[k], span=(edges[k], edges[k + 1]))
    return [w if w is not None else (0, {}, 0) for w in out]


def _window(ws: Workspace, memory: WindowMemory, usecase: str, uc: UseCase, model: _Model,
            edges: Sequence[datetime], k: int, days: float, labels: reader.Labels) -> _Window:
    """One window's realised metrics from its labels (remembered by a digest of them)."""
    y, served = _as_arrays(uc.task, model, labels)
    readable = np.isfinite(y)
    rows = np.flatnonzero(readable & np.isfinite(served))
    unreadable = int((~readable).sum())
    if rows.size == 0:
        return 0, {}, unreadable
    thr = np.asarray([model.threshold(int(v)) for v in np.asarray(labels.versions)[rows]])
    digest = hashlib.blake2b(b"".join((y[rows].tobytes(), served[rows].tobytes(),
                                       thr.tobytes())), digest_size=16).hexdigest()
    key = (ws.store.url, usecase, "realised-labels", edges[k], edges[k + 1], days,
           uc.objective.text, digest)
    metrics = memory.get("metrics", key)
    if metrics is None:
        metrics = _window_metrics(uc, y[rows], served[rows], thr, days)
        memory.put("metrics", key, metrics, span=(edges[k], edges[k + 1]))
    return int(rows.size), metrics, unreadable


def _as_arrays(task: Task, model: _Model,
               labels: reader.Labels) -> tuple[np.ndarray, np.ndarray]:
    """Labels and served answers as float arrays (NaN: unreadable or missing)."""
    if task == Task.REGRESSION:
        return (np.asarray([_float(v) for v in labels.values], dtype=float),
                np.asarray([_float(s) for s in labels.served], dtype=float))
    codes = label_codes(labels.values, model.classes)
    y = np.where(codes >= 0, codes, np.nan).astype(float)
    if task == Task.BINARY:
        served = np.asarray([_float(s) for s in labels.served], dtype=float)
    else:
        picked = label_codes(labels.served, model.classes)
        served = np.where(picked >= 0, picked, np.nan).astype(float)
    return y, served


def _window_metrics(uc: UseCase, y: np.ndarray, served: np.ndarray, thresholds: np.ndarray,
                    days: float) -> dict[str, Estimate]:
    if uc.task == Task.REGRESSION:
        return realised_metrics(uc.task, y, served)
    if uc.task == Task.MULTICLASS:
        return realised_metrics(uc.task, y.astype(int), served.astype(int))
    if counted(uc):
        # Count-based metrics only: each label judged by its own version's threshold, and the
        # figures drawn from the four counts, as label_rollup draws them from its day files.
        return counts_metrics(uc, confusion(y.astype(int), served, thresholds), days)
    # Judge each prediction by the threshold it was served with: shift every version's scores
    # so that its own threshold lands on the newest one's (ranking metrics across versions
    # then compare shifted scores: a window with two versions is rare and short).
    threshold = float(thresholds[-1])
    metrics = realised_metrics(Task.BINARY, y.astype(int), served - thresholds + threshold,
                               threshold=threshold, days=days, cost=uc.objective.cost,
                               metrics=binary_metrics(uc))
    return {k: v for k, v in metrics.items() if k != "cost_no_model"}


# For planta.services.label_rollup, which counts labels as they are written.
label_arrays = _as_arrays
model_for = _model


def _float(value: Any) -> float:
    if isinstance(value, bool):
        return float(value)
    try:
        return float(value)
    except (TypeError, ValueError):
        return math.nan


__all__ = ["DEFAULT_WINDOW", "MAX_WINDOWS", "PerformanceSeries",
           "PerformanceWindow", "clear_memory", "day_estimate", "model_thresholds",
           "performance_over_time"]
