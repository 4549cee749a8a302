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
syncing old predictions late, or retention, makes those spans count again.

The first look at a span reads the log column-wise (``planta.store.log_columns``: the driver's
cursor, 50,000 rows a chunk, each chunk's JSON parsed in one orjson call and validated in one
call), in one pass over every missing span, and counts each chunk's slice per day or hour:
about 5 µs a record on the 2-core box (a year of a million predictions in seconds, once).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from planta.core.drift_window import Window
from planta.store.private import private_write_text
from planta_edge.contract import validate_records

if TYPE_CHECKING:
    from planta.services.monitor import Baseline
    from planta.store.log_columns import LogColumns
    from planta.store.metadata import Store

_logger = logging.getLogger(__name__)

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


def _scan_spans(store: Store, baseline: Baseline, spans: list[tuple[datetime, datetime]]
                ) -> list[tuple[Window, int]]:
    """Count the log's records in each of ``spans`` (sorted, not overlapping): per span its
    window and its log rows (shadow answers included, as ``_count_rows`` counts them, so the
    cache check compares like with like). Adjacent spans are read in one pass.
    """
    from planta.store.log_columns import iter_log_columns, paused_gc

    windows = [Window(baseline.reference) for _ in spans]
    rows = [0] * len(spans)
    runs: list[list[int]] = []
    for i, (start, _end) in enumerate(spans):
        if runs and spans[runs[-1][-1]][1] == start:
            runs[-1].append(i)
        else:
            runs.append([i])
    binary = baseline.task == "binary"
    with store.read() as conn, paused_gc():
        for run in runs:
            edges = np.asarray([_naive(spans[i][0]) for i in run] + [_naive(spans[run[-1]][1])],
                               dtype="datetime64[us]")
            for chunk in iter_log_columns(conn, baseline.usecase, spans[run[0]][0],
                                          spans[run[-1]][1], outputs=binary):
                owner = np.clip(np.searchsorted(edges, chunk.at, side="right") - 1, 0,
                                len(run) - 1)
                for k, count in enumerate(np.bincount(owner, minlength=len(run))):
                    rows[run[k]] += int(count)
                _count_chunk(baseline, chunk, owner, [windows[i] for i in run])
    return list(zip(windows, rows, strict=True))


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def _count_chunk(baseline: Baseline, chunk: LogColumns, owner: np.ndarray,
                 windows: list[Window]) -> None:
    """Validate one chunk's records at once and add each span's slice to its window (the
    chunk is in time order, so a span's records are contiguous)."""
    # Shadow answers repeat inputs production already logged: counting them twice would
    # weigh shadowed hours double. A row whose inputs are not a list of records is skipped.
    keep = ~chunk.shadow & np.fromiter((type(v) is list for v in chunk.inputs), bool,
                                       count=len(chunk))
    ns = chunk.n[keep]
    if keep.all():
        ins, outs = chunk.inputs, chunk.outputs
    else:
        ins = [v for v, k in zip(chunk.inputs, keep, strict=True) if k]
        outs = [v for v, k in zip(chunk.outputs, keep, strict=True) if k]
    if not ins:
        return
    if (ns == 1).all():
        records = [v[0] if type(v) is list and v and type(v[0]) is dict else {} for v in ins]
        owners = owner[keep]
    else:
        records = []
        for v, n in zip(ins, ns.tolist(), strict=True):
            # Rows written by an older writer may hold fewer values than records: pad.
            got = [r if isinstance(r, dict) else {} for r in v[:n]]
            records.extend(got + [{}] * (n - len(got)))
        owners = np.repeat(owner[keep], ns)
    checked = validate_records(baseline.contract, records, range_policy="flag",
                               extra_policy="ignore")
    add_checked(baseline, checked.values, checked.flagged | ~checked.ok, owners, outs, ns,
                windows)


def add_checked(baseline: Baseline, values: Mapping[str, np.ndarray], bad: np.ndarray,
                owners: np.ndarray, outs: list[Any], ns: np.ndarray,
                windows: list[Window]) -> None:
    """Add validated records to their windows: ``values`` and ``bad`` one entry per record,
    ``owners`` each record's window (ascending), ``outs`` and ``ns`` each logged row's outputs
    and record count."""
    probability = positive = answered = None
    if baseline.task == "binary":
        probability, positive, answered = _outputs(baseline, outs, ns)
    cuts = np.searchsorted(owners, np.arange(len(windows) + 1))
    for k, window in enumerate(windows):
        lo, hi = int(cuts[k]), int(cuts[k + 1])
        if hi <= lo:
            continue
        window.add({name: v[lo:hi] for name, v in values.items()}, rows=hi - lo,
                   out_of_contract=bad[lo:hi])
        if probability is not None and positive is not None and answered is not None:
            window.add_outputs(probability=probability[lo:hi],
                               positive=positive[lo:hi][answered[lo:hi]])


def _outputs(baseline: Baseline, outputs: list[Any], ns: np.ndarray
             ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per record: P(positive) (NaN where absent), whether it was an alarm, whether answered."""
    prob: list[Any] = []
    pred: list[Any] = []
    if (ns == 1).all():
        try:  # the writer's usual spelling, in two C-speed passes
            prob = [o["probability"][0] for o in outputs]
            pred = [o["prediction"][0] for o in outputs]
        except (KeyError, IndexError, TypeError):
            prob = [_first(o, "probability") for o in outputs]
            pred = [_first(o, "prediction") for o in outputs]
    else:
        for o, n in zip(outputs, ns.tolist(), strict=True):
            prob.extend(_pad(o.get("probability") if isinstance(o, dict) else None, n))
            pred.extend(_pad(o.get("prediction") if isinstance(o, dict) else None, n))
    if set(map(type, prob)) <= {float, int}:
        p = np.asarray(prob, dtype=float)
    else:
        p = np.fromiter((v if type(v) in (float, int) else np.nan for v in prob), float,
                        count=len(prob))
    answered = np.fromiter((v is not None for v in pred), bool, count=len(pred))
    word = baseline.positive_class
    try:  # a model answers a handful of distinct labels: compare each once
        says = {v: str(v) == word for v in set(pred)}
        positive = np.fromiter(map(says.__getitem__, pred), bool, count=len(pred))
    except TypeError:  # an unhashable answer (never written by planta): one by one
        positive = np.fromiter((str(v) == word for v in pred), bool, count=len(pred))
    return p, positive, answered


def _first(outputs: Any, name: str) -> Any:
    values = outputs.get(name) if type(outputs) is dict else None
    return values[0] if type(values) is list and values else None


def _pad(values: Any, n: int) -> list[Any]:
    out = list(values[:n]) if isinstance(values, list) else []
    return out + [None] * (n - len(out))


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


def span_file(start: datetime, level: str) -> str:
    """A cached span's file name: 202603.json, 20260302.json or 20260302T14.json."""
    name = {"month": f"{start:%Y%m}", "day": f"{start:%Y%m%d}",
            "hour": f"{start:%Y%m%dT%H}"}[level]
    return f"{name}.json"


class WindowCache:
    """Counts of closed hours, days and months of the log: one small JSON file each, keyed by
    the bundle's digest, with the number of log rows the counts were made from."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def _path(self, baseline: Baseline, start: datetime, level: str) -> Path | None:
        if self.root is None:
            return None
        return self.root / baseline.usecase / baseline.digest[:24] / span_file(start, level)

    def has(self, baseline: Baseline, start: datetime, level: str) -> bool:
        path = self._path(baseline, start, level)
        return path is not None and path.is_file()

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
            private_write_text(path, json.dumps({"log_rows": log_rows,
                                                 "window": window.to_dict()}))
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
    run); a missing month is made of its days, and a missing day of its hours when the cache
    holds some of them (the files ``planta.services.monitor_rollup`` writes as the log is
    written), each still checked against the log; every span still missing is read from the
    log in one pass per contiguous run and cached, and so is each day or month made up;
    ragged ends are read from the log every time.
    """
    now = now or datetime.now(UTC)
    cache = cache or WindowCache(None)
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
    # What the log must be read for: missing spans, the missing days of missing months, and
    # the missing hours of days made of their hours.
    todo: list[tuple[datetime, datetime, str | None]] = []
    days: dict[datetime, tuple[Window, int]] = {}   # from the cache, still right
    hours: dict[datetime, tuple[Window, int]] = {}
    made: list[datetime] = []                        # days to be made of their 24 hours

    def want_day(day: datetime) -> None:
        got = cache.get(baseline, day, "day")
        if got is not None and got[1] == _count_rows(store, baseline.usecase, day, day + DAY):
            days[day] = got
            return
        found = _cached_hours(store, baseline, cache, day)
        if found is None:
            todo.append((day, day + DAY, "day"))
            return
        hours.update(found)
        todo.extend((h, h + HOUR, "hour") for h in _hours(day) if h not in found)
        made.append(day)

    for start, end, level in segments:
        if start in hits:
            continue
        if level == "day":
            want_day(start)
        elif level == "month":
            day = start
            while day < end:
                want_day(day)
                day += DAY
        else:
            todo.append((start, end, level))
    todo.sort(key=lambda span: span[0])
    scanned = dict(zip((a for a, _, _ in todo),
                       _scan_spans(store, baseline, [(a, b) for a, b, _ in todo]), strict=True))
    for start, _end, level in todo:
        if level is not None:
            cache.put(baseline, start, level, *scanned[start])
    for day in made:
        whole, rows = Window(baseline.reference), 0
        for h in _hours(day):
            part = hours.get(h) or scanned[h]
            whole.merge(part[0])
            rows += part[1]
        cache.put(baseline, day, "day", whole, rows)
        days[day] = (whole, rows)
    window = Window(baseline.reference)
    for start, end, level in segments:
        if start in hits:
            window.merge(hits[start][0])
        elif level == "month":
            month, rows, day = Window(baseline.reference), 0, start
            while day < end:
                part = days.get(day) or scanned[day]
                month.merge(part[0])
                rows += part[1]
                day += DAY
            cache.put(baseline, start, level, month, rows)
            window.merge(month)
        elif level == "day":
            window.merge((days.get(start) or scanned[start])[0])
        else:
            window.merge(scanned[start][0])
    return window


def _hours(day: datetime) -> list[datetime]:
    return [day + HOUR * k for k in range(24)]


def _cached_hours(store: Store, baseline: Baseline, cache: WindowCache, day: datetime
                  ) -> dict[datetime, tuple[Window, int]] | None:
    """The hours of ``day`` the cache holds and the log still agrees with; None when the cache
    holds none of them (then the day is read whole: one span, not 24)."""
    if not any(cache.has(baseline, h, "hour") for h in _hours(day)):
        return None
    out = {}
    for h in _hours(day):
        got = cache.get(baseline, h, "hour")
        if got is not None and got[1] == _count_rows(store, baseline.usecase, h, h + HOUR):
            out[h] = got
    return out


def _count_runs(store: Store, usecase: str, spans: list[tuple[datetime, datetime]]) -> int:
    """Log rows in ``spans`` (sorted), one query per contiguous run."""
    runs: list[list[datetime]] = []
    for start, end in spans:
        if runs and runs[-1][1] == start:
            runs[-1][1] = end
        else:
            runs.append([start, end])
    return sum(_count_rows(store, usecase, start, end) for start, end in runs)


__all__ = ["SAMPLE_ROWS", "SETTLE_S", "RowSample", "WindowCache", "span_file",
           "recent_sample", "window_from_log"]
