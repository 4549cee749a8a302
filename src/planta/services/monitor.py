"""Monitoring: a window of production inputs against the bundle's reference profile.

    monitor(ws, usecase, since=…, until=… | current=FILE | dataset_version=N) -> MonitorResult
        reference   the bundle of the production model (or ``version``): profile.json,
                    contract.json, metrics.json (holdout scores), importance.json
        window      the prediction log (streamed in chunks, hour by hour, closed hours cached),
                    a file (streamed with ``tables.iter_chunks``) or a dataset version
        report      planta.core.drift_report.compare: tests, drift that matters, quality

The log's windows, their cache and the sample for effect estimates live in
:mod:`planta.services.monitor_log`.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from planta.core.drift import MonitorSettings
from planta.core.drift_effect import Score, estimate_effects
from planta.core.drift_report import DriftReport, compare, with_effects
from planta.core.drift_window import Reference, Window
from planta.errors import InputError, NotFoundError
from planta.services.monitor_log import RowSample, WindowCache, recent_sample, window_from_log
from planta_edge.contract import Contract, validate_columns

if TYPE_CHECKING:
    from planta.services.workspace import Workspace

FILE_CHUNK_ROWS = 100_000


@dataclass
class Baseline:
    """What a window is compared with: one model version's reference, contract, importances."""

    usecase: str
    version: int
    digest: str
    contract: Contract
    reference: Reference
    importance: dict[str, float]
    positive_class: str | None
    task: str
    members: Mapping[str, bytes] = field(default_factory=dict)
    _score: Any = field(default=None, repr=False)

    def score_function(self) -> Score | None:
        """The model's score on contract values (binary: P(positive); regression: the value),
        loaded on first use; None for multiclass models or a bundle without a model."""
        if self.task not in ("binary", "regression") or "model/model.json" not in self.members:
            return None
        if self._score is None:
            from planta.core.models import Predictor

            predictor = Predictor.from_members(self.members)
            binary = self.task == "binary"

            def score(values: Mapping[str, np.ndarray]) -> np.ndarray:
                out = predictor.predict(values)
                result = out.probability if binary else out.score
                assert result is not None
                return np.asarray(result, dtype=np.float64)

            self._score = score
        return self._score  # type: ignore[no-any-return]

    @classmethod
    def from_members(cls, usecase: str, version: int, digest: str,
                     json_member: Any, members: Mapping[str, Any]) -> Baseline:
        """Build from a bundle's JSON members (``json_member(name) -> dict``)."""
        doc = json_member("contract.json")
        contract = Contract.from_dict({k: v for k, v in doc.items()
                                       if k in ("fields", "target", "version")})
        if "profile.json" not in members:
            raise NotFoundError(f"Version {version} of {usecase} carries no reference profile, "
                                "so its drift cannot be measured.",
                                hint="Retrain it with this planta version (planta train).")
        metrics = json_member("metrics.json") if "metrics.json" in members else {}
        importance: dict[str, float] = {}
        if "importance.json" in members:
            for item in json_member("importance.json").get("features", []):
                importance[str(item["name"])] = float(item.get("importance") or 0.0)
        reference = Reference.from_profile(json_member("profile.json"), contract, metrics)
        return cls(usecase=usecase, version=version, digest=digest, contract=contract,
                   reference=reference, importance=importance,
                   positive_class=metrics.get("positive_class"),
                   task=str(metrics.get("task") or ""), members=members)


_BASELINES: dict[tuple[str, int, str], Baseline] = {}
_BASELINES_KEPT = 16


def load_baseline(ws: Workspace, usecase: str, version: str | int = "production") -> Baseline:
    """The baseline of a model version or alias of ``usecase`` (its verified bundle).

    Kept in memory by bundle digest (registered bundles never change), so a page that asks
    every few seconds reads and verifies the bundle once.
    """
    from planta_edge.bundle import read_bundle

    ws.project.usecase(usecase)
    mv = ws.registry.resolve(usecase, version)
    key = (usecase, mv.version, mv.bundle_digest)
    cached = _BASELINES.get(key)
    if cached is not None:
        return cached
    # Not services.versions.load_bundle: it imports the training stack (a second of imports
    # for a command that only reads JSON members); the hash is checked the same way.
    bundle = read_bundle(ws.artifacts.get_bytes(mv.bundle_digest),
                         expected_digest=mv.bundle_digest)
    baseline = Baseline.from_members(usecase, mv.version, mv.bundle_digest, bundle.json,
                                     bundle.members)
    if len(_BASELINES) >= _BASELINES_KEPT:
        _BASELINES.pop(next(iter(_BASELINES)))
    _BASELINES[key] = baseline
    return baseline


# -- windows ------------------------------------------------------------------------------------
def window_from_columns(baseline: Baseline, chunks: Iterator[Mapping[str, Any]],
                        sample: RowSample | None = None) -> Window:
    """Count chunks of columns (any headers the contract resolves, raw values) in a window."""
    window = Window(baseline.reference)
    for columns in chunks:
        if not columns:
            continue
        checked = validate_columns(baseline.contract, columns, range_policy="flag",
                                   extra_policy="ignore")
        window.add(checked.values, rows=checked.n_rows,
                   out_of_contract=checked.flagged | ~checked.ok)
        if sample is not None:
            sample.add(checked.values, checked.n_rows)
    return window


def window_from_file(baseline: Baseline, path: Path, sample: RowSample | None = None) -> Window:
    """Count a CSV, Excel or Parquet file of production rows, streamed in blocks."""
    from planta.services.tables import iter_chunks

    _, chunks = iter_chunks(path, FILE_CHUNK_ROWS)
    return window_from_columns(baseline, (c.columns for c in chunks), sample)


def window_from_dataset(ws: Workspace, baseline: Baseline, version: int,
                        sample: RowSample | None = None) -> Window:
    """Count a dataset version's rows (its Parquet snapshot)."""
    from planta.services.ingest import parquet_to_frame

    dv = ws.registry.get_dataset_version(baseline.usecase, version)
    if dv.snapshot_digest is None:
        raise NotFoundError(f"Dataset version {version} of {baseline.usecase} kept no rows.",
                            hint="Compare the file it came from with --current instead.")
    frame = parquet_to_frame(ws.artifacts.get_bytes(dv.snapshot_digest))
    step = FILE_CHUNK_ROWS
    return window_from_columns(baseline, (
        {str(c): frame[c].iloc[i:i + step].to_numpy() for c in frame.columns}
        for i in range(0, len(frame), step)), sample)


# -- the result ---------------------------------------------------------------------------------
@dataclass
class MonitorResult:
    """A monitoring report: where the window came from, and what it shows."""

    usecase: str
    model_version: int
    source: str                         # log, file or dataset
    since: datetime | None
    until: datetime | None
    report: DriftReport
    current: str | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)
    made_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    duration_s: float = 0.0

    @property
    def signals(self) -> dict[str, float]:
        return self.report.signals

    def to_dict(self, *, plots: bool = False) -> dict[str, Any]:
        out = {"usecase": self.usecase, "model_version": self.model_version,
               "window": {"source": self.source, "current": self.current,
                          "since": self.since.isoformat() if self.since else None,
                          "until": self.until.isoformat() if self.until else None,
                          "rows": self.report.rows},
               "made_at": self.made_at.isoformat(), "duration_s": round(self.duration_s, 4)}
        out |= self.report.to_dict(plots=plots)
        out["alerts"] = list(self.alerts)
        return out


def _score_words(baseline: Baseline) -> str:
    target = baseline.contract.target
    label = next((f.display for f in baseline.contract.fields if f.name == target), target)
    if baseline.task == "binary":
        return f"chance of {label}" if label else "chance of a positive answer"
    return f"predicted {label}" if label else "prediction"


def settings_for(ws: Workspace, usecase: str) -> MonitorSettings:
    """The use case's ``[usecases.<name>.monitor]`` settings (defaults when absent)."""
    return ws.project.usecase(usecase).monitor


def cache_for(ws: Workspace) -> WindowCache:
    return WindowCache(ws.project.root / ".planta" / "cache" / "monitor")


def monitor(ws: Workspace, usecase: str, *, since: datetime | None = None,
            until: datetime | None = None, current: Path | None = None,
            dataset_version: int | None = None, version: str | int = "production",
            now: datetime | None = None, effects: bool = True,
            device: str | None = None) -> MonitorResult:
    """The monitoring report of ``usecase`` (see the module docstring).

    Exactly one source: ``current`` (a file), ``dataset_version``, or the prediction log
    between ``since`` (default: 24 hours before ``until``) and ``until`` (default: now).
    With ``device``, only that edge device's logged predictions (its newest 20,000 in the
    window; ``planta.services.devices.device_window``).
    With ``effects``, each drifted input's effect on the model's output is estimated on up to
    500 rows of the window (``planta.core.drift_effect``; for the log, the newest ones).

    Raises:
        NotFoundError: unknown use case, no such version or alias, no reference profile.
        InputError: two sources at once; a window that ends before it starts.
        FileFormatError: the current file cannot be read.
    """
    start = time.perf_counter()
    if current is not None and dataset_version is not None:
        raise InputError("Give either a file (--current) or a dataset version, not both.")
    baseline = load_baseline(ws, usecase, version)
    settings = settings_for(ws, usecase)
    rejected = 0
    sample: RowSample | None = RowSample()
    if current is not None:
        window, source = window_from_file(baseline, Path(current), sample), "file"
        since = until = None
    elif dataset_version is not None:
        window = window_from_dataset(ws, baseline, dataset_version, sample)
        source = "dataset"
        since = until = None
    else:
        from planta.store.predictions import PredictionLog

        now = now or datetime.now(UTC)
        until = until or now
        since = since or until - timedelta(hours=24)
        if since >= until:
            raise InputError(f"The window starts ({since:%Y-%m-%d %H:%M}) at or after it ends "
                             f"({until:%Y-%m-%d %H:%M}).", hint="Use --since 24h or an "
                             "earlier date.")
        if device is not None:  # one edge device: its rows only (refusals stay on it)
            from planta.services.devices import device_window

            window = device_window(ws, baseline, device, since, until, sample=sample) or Window(
                baseline.reference)
        else:
            window = window_from_log(ws.store, baseline, since, until, cache=cache_for(ws),
                                     now=now)
            rejected = PredictionLog(ws.store).count_rejections(usecase, since=since,
                                                                until=until).records
            sample = None  # read only if something drifted
        source = "log"
    report = compare(baseline.reference, window, settings, baseline.importance or None,
                     rejected=rejected)
    if report.drifted and effects:
        score = baseline.score_function()
        if score is not None:
            if sample is None and since is not None and until is not None:
                sample = recent_sample(ws.store, baseline, since, until)
            if sample is not None and sample.columns:
                found = estimate_effects(baseline.reference, sample.columns,
                                         [f.name for f in report.drifted], score)
                with_effects(report, found, _score_words(baseline))
    return MonitorResult(usecase=usecase, model_version=baseline.version, source=source,
                         since=since, until=until, report=report,
                         current=str(current) if current is not None else (
                             f"dataset version {dataset_version}"
                             if dataset_version is not None else None),
                         alerts=active_alerts(ws, usecase),
                         duration_s=time.perf_counter() - start)


ALERT_KEYS = ("id", "rule", "condition", "state", "first_seen", "last_seen", "count",
              "acknowledged_by", "acknowledged_reason")


def active_alerts(ws: Workspace, usecase: str, *, limit: int = 50) -> list[dict[str, Any]]:
    """The use case's open and acknowledged alerts (newest activity first), as JSON-ready
    dicts: ``id``, ``rule``, ``condition``, ``state``, ``first_seen``, ``last_seen``,
    ``count``, ``acknowledged_by``, ``acknowledged_reason`` and ``values`` (the signals the
    rule saw in its last window)."""
    from planta.store.alerts import AlertStore

    out = []
    for alert in AlertStore(ws.store).list(usecase=usecase, state="active", limit=limit):
        doc = alert.to_dict()
        item = {k: doc.get(k) for k in ALERT_KEYS}
        payload = doc.get("payload") or {}
        item["values"] = payload.get("values") if isinstance(payload, dict) else None
        out.append(item)
    return out


# -- over time ----------------------------------------------------------------------------------
MAX_POINTS = 60


def _step(since: datetime, until: datetime) -> timedelta:
    """Days for a window of two days or more, else hours (at most MAX_POINTS of them)."""
    span = until - since
    step = timedelta(days=1) if span >= timedelta(days=2) else timedelta(hours=1)
    while span / step > MAX_POINTS:
        step *= 2
    return step


def drift_over_time(ws: Workspace, usecase: str, *, since: datetime, until: datetime,
                    version: str | int = "production", now: datetime | None = None
                    ) -> dict[str, Any]:
    """Each input's drift statistic per day (per hour in a window under two days; wider steps
    past 60 points) of [since, until): the day and hour counts come from the window cache, so a
    month is about 30 cached files. Returns ``{"step_s", "points": [{"start", "end", "rows",
    "features": {name: {"method", "statistic", "threshold", "drifted", "enough_rows"}}}],
    "labels": {name: label}}``; a statistic is PSI where the feature has it."""
    baseline = load_baseline(ws, usecase, version)
    settings = settings_for(ws, usecase)
    step = _step(since, until)
    cache = cache_for(ws)
    points: list[dict[str, Any]] = []
    labels: dict[str, str] = {}
    start = since
    while start < until:
        end = min(until, start + step)
        window = window_from_log(ws.store, baseline, start, end, cache=cache, now=now)
        report = compare(baseline.reference, window, settings, baseline.importance or None)
        features = {}
        for f in report.features:
            labels[f.name] = f.label
            test = next((t for t in f.tests if t.method == "psi"), f.tests[-1] if f.tests
                        else None)
            if test is None:
                continue
            stat = float(test.statistic) if test.statistic is not None else None
            features[f.name] = {"method": test.method,
                                "statistic": stat if stat is None or np.isfinite(stat)
                                else None,
                                "threshold": test.threshold, "drifted": f.drifted,
                                "enough_rows": f.enough_rows}
        points.append({"start": start.isoformat(), "end": end.isoformat(),
                       "rows": report.rows, "features": features})
        start = end
    return {"step_s": step.total_seconds(), "points": points, "labels": labels}


def performance_windows(ws: Workspace, usecase: str, *, since: datetime, until: datetime,
                        now: datetime | None = None) -> dict[str, Any] | None:
    """Realised and estimated performance per day (per hour under two days) of the window,
    as :meth:`planta.services.performance.PerformanceSeries.to_dict`; None when the use case
    has no model to judge."""
    from planta.services.performance import performance_over_time

    step = _step(since, until)
    try:
        series = performance_over_time(ws, usecase, since=since, until=until, window=step,
                                       now=now)
    except (NotFoundError, InputError):
        return None
    return series.to_dict()


def report_history(ws: Workspace, result: MonitorResult) -> dict[str, Any]:
    """What the HTML report draws beside one window: drift over time and performance over
    time (only for a window of the prediction log)."""
    if result.source != "log" or result.since is None or result.until is None:
        return {}
    return {"drift_history": drift_over_time(ws, result.usecase, since=result.since,
                                             until=result.until, version=result.model_version,
                                             now=result.until),
            "performance": performance_windows(ws, result.usecase, since=result.since,
                                               until=result.until, now=result.until)}


@dataclass
class WrittenReport:
    """A monitoring report stored as an artifact (the scheduler's ``report`` job)."""

    usecase: str
    digest: str
    size_bytes: int
    result: MonitorResult

    def to_dict(self) -> dict[str, Any]:
        doc = self.result.to_dict()
        return {"usecase": self.usecase, "report_sha256": self.digest,
                "size_bytes": self.size_bytes, "window": doc["window"], "rows": doc["rows"],
                "drifted": [f["name"] for f in doc["features"] if f["drifted"]],
                "alerting": [f["name"] for f in doc["features"] if f["alerting"]],
                "signals": doc["signals"]}


def write_report(ws: Workspace, usecase: str, *, until: datetime | None = None,
                 since: datetime | None = None, hours: float = 24.0,
                 version: str | int = "production") -> WrittenReport:
    """Compute the report of the ``hours`` before ``until`` (or [since, until)), render it as
    HTML and keep it in the artifact store (content-addressed); the digest is returned."""
    from planta.services.monitor_report import render_html

    until = until or datetime.now(UTC)
    since = since or until - timedelta(hours=float(hours))
    result = monitor(ws, usecase, since=since, until=until, version=version)
    data = render_html(result, **report_history(ws, result)).encode("utf-8")
    digest = ws.artifacts.put_bytes(data)
    return WrittenReport(usecase=usecase, digest=digest, size_bytes=len(data), result=result)


__all__ = ["Baseline", "MonitorResult", "active_alerts", "RowSample", "WindowCache", "WrittenReport",
           "cache_for", "drift_over_time", "load_baseline", "monitor", "performance_windows",
           "report_history", "recent_sample", "settings_for",
           "window_from_columns", "window_from_dataset", "window_from_file", "window_from_log",
           "write_report"]
