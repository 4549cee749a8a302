"""Windows of the prediction log: streamed in chunks, counted hour by hour, and cached.

    window_from_log(store, baseline, since, until, cache=…)     counts of [since, until)
        [since, until) is cut into whole settled months, days and hours (from the cache when
        it still matches the log) and ragged ends (always read from the log)
    recent_sample(store, baseline, since, until)               the newest records, validated
    WindowCache(root)                                          one JSON file per span

**Speed over a long log.** The counts of a span that is over (ended more than ``SETTLE_S`` ago)
are written to ``.planta/cache/monitor/`` keyed by the bundle's digest, so a year's report reads
about 12 month files, a few day and hour files and the newest minutes of the log, however many
predictions it holds. A cached span is trusted only while the log still holds as many rows for
it (counted on the log's (usecase, at) index, one query per contiguous run); an edge device
syncing old predictions late, or retention, makes those spans count again. Parsing the log is
the slow part (about 30 µs a record on a quiet core): a span is parsed once.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from planta.core.drift_window import Window
from planta_edge.contract import validate_records

if TYPE_CHECKING:
    from planta.services.monitor import Baseline
    from planta.store.metadata import Store

_logger = logging.getLogger(__name__)

# Records validated at once when reading the log: large enough for numpy to pay, small enough
# that a chunk's dicts stay a few megabytes.
CHUNK_RECORDS = 20_000
# A span is cached only once it is this far in the past: the log's group commit and edge
# devices syncing late can still add rows to the hour that just ended.
SETTLE_S = 300.0
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)
# Rows scored twice per drifted input to estimate what the drift does to the model's output.
SAMPLE_ROWS = 500


class RowSample:
    """A uniform random sample of at most ``size`` rows of a stream of column chunks (each row
    gets a random key; the rows with the smallest keys are kept), for the effect estimate."""

    def __init__(self, size: int = SAMPLE_ROWS, seed: int = 0) -> None:
        self.size = size
        self.rng = np.random.default_rng(seed)
        self.keys = np.zeros(0)
        self.columns: dict[str, np.ndarray] = {}

    def add(self, columns: Mapping[str, np.ndarray], rows: int) -> None:
        if rows == 0 or self.size == 0:
            return
        keys = np.concatenate([self.keys, self.rng.random(rows)])
        merged = {k: np.concatenate([self.columns[k], v]) if k in self.columns else v
                  for k, v in columns.items()}
        keep = np.argsort(keys, kind="stable")[: self.size]
        self.keys = keys[keep]
        self.columns = {k: v[keep] for k, v in merged.items()}


def recent_sample(store: Store, baseline: Baseline, since: datetime, until: datetime,
                  size: int = SAMPLE_ROWS) -> RowSample:
    """The newest ``size`` logged records of the window (validated columns)."""
    import orjson
    from sqlalchemy import select

    from planta.store.metadata import predictions

    stmt = (select(predictions.c.n, predictions.c.inputs)
            .where(*_log_filter(baseline.usecase, since, until))
            .order_by(predictions.c.at.desc()).limit(size))
    records: list[Any] = []
    with store.read() as conn:
        for row in conn.execute(stmt):
            inputs = orjson.loads(row.inputs)
            if isinstance(inputs, list):
                records.extend(r for r in inputs if isinstance(r, dict))
            if len(records) >= size:
                break
    sample = RowSample(size)
    if records:
        checked = validate_records(baseline.contract, records[:size], range_policy="flag",
                                   extra_policy="ignore")
        sample.add(checked.values, len(records[:size]))
    return sample



def _log_filter(usecase: str, since: datetime, until: datetime) -> list[Any]:
    from planta.store.metadata import predictions

    # Shadow answers repeat inputs production already logged: counting them twice would
    # weigh shadowed hours double.
    return [predictions.c.usecase == usecase, predictions.c.at >= since,
            predictions.c.at < until, predictions.c.route != "shadow"]


def _count_rows(store: Store, usecase: str, since: datetime, until: datetime) -> int:
    """Log rows (requests, shadow included) of ``usecase`` in [since, until): answered from the
    (usecase, at) index alone, so checking a year of cache costs milliseconds, not a scan."""
    from sqlalchemy import func, select

    from planta.store.metadata import predictions

    stmt = select(func.count()).select_from(predictions).where(
        predictions.c.usecase == usecase, predictions.c.at >= since, predictions.c.at < until)
    with store.read() as conn:
        return int(conn.scalar(stmt) or 0)


def _scan_log(store: Store, baseline: Baseline, window: Window, since: datetime,
              until: datetime) -> int:
    """Add the log's records in [since, until) to ``window``; return how many."""
    import orjson
    from sqlalchemy import select

    from planta.store.metadata import predictions
    from planta.store.predictions import iter_rows

    stmt = select(predictions.c.n, predictions.c.inputs, predictions.c.outputs).where(
        *_log_filter(baseline.usecase, since, until))
    records: list[Any] = []
    probability: list[Any] = []
    prediction: list[Any] = []
    total = 0

    def flush() -> None:
        if not records:
            return
        checked = validate_records(baseline.contract, records, range_policy="flag",
                                   extra_policy="ignore")
        window.add(checked.values, rows=len(records), out_of_contract=checked.flagged | ~checked.ok)
        _add_outputs(baseline, window, probability, prediction)
        records.clear()
        probability.clear()
        prediction.clear()

    with store.read() as conn:
        for row in iter_rows(conn, stmt, size=512):
            inputs = orjson.loads(row.inputs)
            outputs = orjson.loads(row.outputs)
            n = int(row.n)
            if not isinstance(inputs, list):
                continue
            # Rows written by an older writer may hold fewer values than records: pad.
            inputs = [r if isinstance(r, dict) else {} for r in inputs[:n]]
            inputs += [{}] * (n - len(inputs))
            records.extend(inputs)
            probability.extend(_pad(outputs.get("probability"), n))
            prediction.extend(_pad(outputs.get("prediction"), n))
            total += n
            if len(records) >= CHUNK_RECORDS:
                flush()
        flush()
    return total


def _pad(values: Any, n: int) -> list[Any]:
    out = list(values[:n]) if isinstance(values, list) else []
    return out + [None] * (n - len(out))


def _add_outputs(baseline: Baseline, window: Window, probability: list[Any],
                 prediction: list[Any]) -> None:
    if baseline.task != "binary":
        return
    p = np.array([v if isinstance(v, (int, float)) else np.nan for v in probability], float)
    answered = [v for v in prediction if v is not None]
    positive = np.array([str(v) == baseline.positive_class for v in answered], bool)
    window.add_outputs(probability=p, positive=positive)


LEVELS = ("month", "day", "hour")


def _next(start: datetime, level: str) -> datetime:
    if level == "hour":
        return start + HOUR
    if level == "day":
        return start + DAY
    return (start.replace(day=28) + timedelta(days=4)).replace(day=1)


def _aligned(t: datetime, level: str) -> bool:
    if level == "hour":
        return t == t.replace(minute=0, second=0, microsecond=0)
    if level == "day":
        return t == t.replace(hour=0, minute=0, second=0, microsecond=0)
    return t == t.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class WindowCache:
    """Counts of closed hours, days and months of the log: one small JSON file each, keyed by
    the bundle's digest, with the number of log rows the counts were made from."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def _path(self, baseline: Baseline, start: datetime, level: str) -> Path | None:
        if self.root is None:
            return None
        name = {"month": f"{start:%Y%m}", "day": f"{start:%Y%m%d}",
                "hour": f"{start:%Y%m%dT%H}"}[level]
        return self.root / baseline.usecase / baseline.digest[:24] / f"{name}.json"

    def get(self, baseline: Baseline, start: datetime, level: str) -> tuple[Window, int] | None:
        """The cached counts and the log rows they came from, or None."""
        path = self._path(baseline, start, level)
        if path is None or not path.is_file():
            return None
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
            return Window.from_dict(baseline.reference, doc["window"]), int(doc["log_rows"])
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a damaged cache file is recounted, never trusted

    def put(self, baseline: Baseline, start: datetime, level: str, window: Window,
            log_rows: int) -> None:
        path = self._path(baseline, start, level)
        if path is None:
            return
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps({"log_rows": log_rows, "window": window.to_dict()}),
                           encoding="utf-8")
            os.replace(tmp, path)
        except OSError as exc:  # a read-only disk makes reports slower, not wrong
            _logger.warning("monitor cache not written: %s", exc)


def _segments(since: datetime, until: datetime, settled: datetime
              ) -> list[tuple[datetime, datetime, str | None]]:
    """Cut [since, until) into whole settled months, days and hours (cacheable) and ragged
    pieces (level None), as (start, end, level) in time order.

    >>> t = datetime(2026, 3, 2, 22, 30, tzinfo=UTC)
    >>> [(f"{a:%m-%dT%H:%M}", f"{b:%m-%dT%H:%M}", lvl) for a, b, lvl in _segments(
    ...     t, datetime(2026, 5, 1, 1, 30, tzinfo=UTC), datetime(2026, 9, 1, tzinfo=UTC))][:6]
    ... # doctest: +NORMALIZE_WHITESPACE
    [('03-02T22:30', '03-02T23:00', None), ('03-02T23:00', '03-03T00:00', 'hour'),
     ('03-03T00:00', '03-04T00:00', 'day'), ('03-04T00:00', '03-05T00:00', 'day'),
     ('03-05T00:00', '03-06T00:00', 'day'), ('03-06T00:00', '03-07T00:00', 'day')]
    """
    out: list[tuple[datetime, datetime, str | None]] = []
    limit = min(until, settled)
    t = since
    while t < until:
        for level in LEVELS:
            if _aligned(t, level) and _next(t, level) <= limit:
                out.append((t, _next(t, level), level))
                t = _next(t, level)
                break
        else:
            hour = t.replace(minute=0, second=0, microsecond=0)
            end = until if t == hour else min(until, hour + HOUR)
            if out and out[-1][2] is None:
                out[-1] = (out[-1][0], end, None)
            else:
                out.append((t, end, None))
            t = end
    return out


def window_from_log(store: Store, baseline: Baseline, since: datetime, until: datetime, *,
                    cache: WindowCache | None = None, now: datetime | None = None) -> Window:
    """Count the logged inputs and answers of ``baseline.usecase`` in [since, until).

    Whole settled months, days and hours come from the cache when it holds them and the log
    still holds as many rows for them (checked on the log's index: one query per contiguous
    run); a missing month is built from its days and a missing day from its hours, each cached
    on the way; ragged ends are read from the log every time.
    """
    now = now or datetime.now(UTC)
    cache = cache or WindowCache(None)
    window = Window(baseline.reference)
    segments = _segments(since, until, now - timedelta(seconds=SETTLE_S))
    hits: dict[datetime, tuple[Window, int]] = {}
    for start, _end, level in segments:
        if level is not None:
            got = cache.get(baseline, start, level)
            if got is not None:
                hits[start] = got
    spans = [(a, b) for a, b, level in segments if a in hits]
    if hits and sum(h[1] for h in hits.values()) != _count_runs(store, baseline.usecase,
                                                                 spans):
        # The log changed under the cache (late sync, retention): keep the spans still right.
        hits = {a: hits[a] for a, b in spans
                if _count_rows(store, baseline.usecase, a, b) == hits[a][1]}
    for start, end, level in segments:
        if start in hits:
            window.merge(hits[start][0])
        elif level is None:
            _scan_log(store, baseline, window, start, end)
        else:
            window.merge(_build(store, baseline, cache, start, level))
    return window


def _build(store: Store, baseline: Baseline, cache: WindowCache, start: datetime,
           level: str) -> Window:
    """Count one settled span: an hour from the log, a day from its hours, a month from its
    days (each part from the cache when still right), and cache it."""
    end = _next(start, level)
    rows = _count_rows(store, baseline.usecase, start, end)
    total = Window(baseline.reference)
    if level == "hour" or rows == 0:
        _scan_log(store, baseline, total, start, end)
    else:
        finer = LEVELS[LEVELS.index(level) + 1]
        t = start
        while t < end:
            got = cache.get(baseline, t, finer)
            if got is None or got[1] != _count_rows(store, baseline.usecase, t,
                                                    _next(t, finer)):
                total.merge(_build(store, baseline, cache, t, finer))
            else:
                total.merge(got[0])
            t = _next(t, finer)
    cache.put(baseline, start, level, total, rows)
    return total


def _count_runs(store: Store, usecase: str, spans: list[tuple[datetime, datetime]]) -> int:
    """Log rows in ``spans`` (sorted), one query per contiguous run."""
    runs: list[list[datetime]] = []
    for start, end in spans:
        if runs and runs[-1][1] == start:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    return sum(_count_rows(store, usecase, start, end) for start, end in runs)


__all__ = ["CHUNK_RECORDS", "SAMPLE_ROWS", "SETTLE_S", "RowSample", "WindowCache",
           "recent_sample", "window_from_log"]
