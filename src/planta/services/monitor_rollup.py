"""Keep the monitoring caches up to date as the prediction log is written.

    attach(ws, log) -> Rollup            log.add_observer(rollup.observe); a daemon thread
    observe(entries)     the log's writer thread, after each commit: queue them (nothing else)
    drain()              count the queued entries per use case and hour:
                           drift    their inputs and answers on the production bundle's
                                    reference bins (monitor_log's own counting: a Window)
                           scores   probability sums per (alarm, bin) with the threshold of
                                    the model version that answered (performance's ScoreSummary)
    flush(now)           write each hour that settled (SETTLE_S after it ended), then roll
                         settled days up from their hours and months from their days
        .planta/cache/monitor/<usecase>/<digest>/<hour|day|month>.json   (WindowCache)
        .planta/cache/scores/<usecase>/<hour|day|month>.json             (ScoreCache)

So a report or a page over a year of log finds every closed hour, day and month counted, and
reads only the newest minutes of the log: nothing has to parse a year of JSON, not even the
first time, as long as the log was written through planta (``planta serve``, the job worker).

**Always right, never only fast.** Before an hour is written, its row count is checked
against the log's (usecase, at) index: an hour this process saw only in part (it started
mid-hour, the queue overflowed, a promotion changed the reference mid-hour, rows came from
another writer) is re-read from the log instead, an hour at most. Rows that arrive after
that (an edge device syncing late, a batch job behind planta's back, retention) change the
log's count, and every reader re-checks its cached spans against that count
(``monitor_log.window_from_log``, ``scores_from_cache``), so they are read again there.
What a cache file holds never depends on labels: those are counted as the feedback is
written, by ``planta.services.label_rollup``.
"""

from __future__ import annotations

import collections
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from planta.core.drift_window import Window
from planta.core.metrics import Estimate
from planta.core.performance import ScoreSummary
from planta.core.spec import Task
from planta.errors import PlantaError
from planta.services.monitor_log import (
    DAY,
    HOUR,
    SETTLE_S,
    _count_chunk,
    _count_rows,
    _next,
    _segments,
    add_checked,
    span_file,
    window_from_log,
)
from planta.services.performance_log import row_scores
from planta.services.performance_memory import estimates_in
from planta.store.log_columns import LogColumns, parse_many, paused_gc
from planta.store.private import private_write_text

if TYPE_CHECKING:
    from planta.services.monitor import Baseline
    from planta.services.workspace import Workspace
    from planta.store.metadata import Store
    from planta.store.predictions import LogEntry, PredictionLog

_logger = logging.getLogger(__name__)

# Entries waiting to be counted beyond this are dropped (their hours are re-read from the log
# at flush, since their counts no longer match): memory stays bounded however far behind.
MAX_QUEUE = 200_000
# The production model and thresholds are looked up again this often (a promotion shows).
CONTEXT_S = 30.0


# -- score sums of closed spans -------------------------------------------------------------------
@dataclass
class Scores:
    """A span's ScoreSummary, the threshold each model version's alarms were counted with, and
    the log rows (shadow answers included, as the index counts them) it came from."""

    summary: ScoreSummary = field(default_factory=ScoreSummary.empty)
    thresholds: dict[int, float] = field(default_factory=dict)
    rows: int = 0
    estimate: dict[str, Any] | None = None   # a closed day's (performance.day_estimate)

    def add(self, other: Scores) -> bool:
        """Add ``other``; False (nothing added) when a version's threshold differs."""
        if any(self.thresholds.get(v, t) != t for v, t in other.thresholds.items()):
            return False
        self.summary = self.summary + other.summary
        self.thresholds.update(other.thresholds)
        self.rows += other.rows
        return True

    def to_dict(self) -> dict[str, Any]:
        return {"log_rows": self.rows, "counts": self.summary.counts.tolist(),
                "sums": self.summary.sums.tolist(),
                "thresholds": {str(v): t for v, t in sorted(self.thresholds.items())},
                "estimate": self.estimate}

    @classmethod
    def from_dict(cls, doc: dict[str, Any]) -> Scores:
        counts = np.asarray(doc["counts"], dtype=np.int64)
        sums = np.asarray(doc["sums"], dtype=float)
        if counts.shape != ScoreSummary.empty().counts.shape or sums.shape != counts.shape:
            raise ValueError("cached scores do not have this planta's bins")
        return cls(ScoreSummary(counts, sums),
                   {int(v): float(t) for v, t in doc["thresholds"].items()}, int(doc["log_rows"]),
                   doc.get("estimate"))


class ScoreCache:
    """Score sums of closed hours, days and months of the log: one small JSON file each."""

    def __init__(self, root: Path | None) -> None:
        self.root = root

    def _path(self, usecase: str, start: datetime, level: str) -> Path | None:
        return None if self.root is None else self.root / usecase / span_file(start, level)

    def get(self, usecase: str, start: datetime, level: str) -> Scores | None:
        path = self._path(usecase, start, level)
        if path is None or not path.is_file():
            return None
        try:
            return Scores.from_dict(json.loads(path.read_text(encoding="utf-8")))
        except (OSError, ValueError, KeyError, TypeError):
            return None  # a damaged file is recounted, never trusted

    def put(self, usecase: str, start: datetime, level: str, scores: Scores) -> None:
        path = self._path(usecase, start, level)
        if path is None:
            return
        try:
            private_write_text(path, json.dumps(scores.to_dict()))
        except OSError as exc:  # a read-only disk makes reports slower, not wrong
            _logger.warning("score cache not written: %s", exc)


def score_cache_for(ws: Workspace) -> ScoreCache:
    return ScoreCache(ws.project.root / ".planta" / "cache" / "scores")


def _children(start: datetime, level: str) -> tuple[str, list[datetime]]:
    end = _next(start, level)
    step, below = (HOUR, "hour") if level == "day" else (DAY, "day")
    out, t = [], start
    while t < end:
        out.append(t)
        t += step
    return below, out


def _cached(cache: ScoreCache, usecase: str, start: datetime, level: str) -> Scores | None:
    """A span's sums from its file, else made of its parts' files (a missing hour counts as
    empty: the caller's row count then tells whether it really was)."""
    got = cache.get(usecase, start, level)
    if got is not None or level == "hour":
        return got if got is not None else Scores()
    below, parts = _children(start, level)
    total = Scores()
    for part in parts:
        got = _cached(cache, usecase, part, below)
        if got is None or not total.add(got):
            return None
    return total


def scores_from_cache(cache: ScoreCache, usecase: str, since: datetime, until: datetime, *,
                      rows: int, threshold_of: Callable[[int], float],
                      now: datetime) -> ScoreSummary | None:
    """The ScoreSummary of [since, until) from the score cache, or None: when the window has
    a piece that is not a whole settled hour, when the cached spans hold a different number of
    log rows than the log does (``rows``, from its index), or when a version's alarms were
    counted with another threshold than ``threshold_of`` gives now."""
    total = Scores()
    for start, _end, level in _segments(since, until, now - timedelta(seconds=SETTLE_S)):
        if level is None:
            return None
        got = _cached(cache, usecase, start, level)
        if got is None or not total.add(got):
            return None
    if total.rows != rows or any(t != threshold_of(v) for v, t in total.thresholds.items()):
        return None
    return total.summary


def kept_estimate(cache: ScoreCache, usecase: str, day: datetime, basis: list[Any],
                  summary: ScoreSummary) -> dict[str, Estimate] | None:
    """A closed day's estimate as the rollup drew it (``performance.day_estimate``), if it
    was drawn from these very sums and on this ``basis`` (objective, thresholds)."""
    kept = cache.get(usecase, day, "day")
    if kept is None or kept.estimate is None or kept.estimate.get("basis") != basis:
        return None
    if not (np.array_equal(kept.summary.counts, summary.counts)
            and np.array_equal(kept.summary.sums, summary.sums)):
        return None
    try:
        return estimates_in(kept.estimate["metrics"])
    except (KeyError, TypeError, ValueError):
        return None


# -- the rollup -------------------------------------------------------------------------------------
@dataclass
class _Context:
    """What counting one use case's entries needs, looked up at most every CONTEXT_S."""

    baseline: Baseline | None      # the production model's, or None (no profile, no model)
    task: Task | None
    threshold_of: Callable[[int], float]
    versions: frozenset[int]
    at: float


@dataclass
class _Bucket:
    """One use case's hour, as counted so far."""

    rows: int = 0
    digest: str | None = None
    window: Window | None = None
    mixed: bool = False            # counted on two references: drift is re-read at flush
    scores: Scores = field(default_factory=Scores)
    scores_mixed: bool = False     # a version counted with two thresholds

    def window_for(self, baseline: Baseline) -> Window:
        if self.digest is None:
            self.digest, self.window = baseline.digest, Window(baseline.reference)
        if self.digest != baseline.digest or self.window is None:
            self.mixed = True
            return Window(baseline.reference)  # counted and thrown away
        return self.window


def _add_prechecked(baseline: Baseline, entries: list[LogEntry], owner: np.ndarray,
                    outputs: list[Any], buckets: list[_Bucket]) -> bool:
    """Count entries from the values their caller validated (``LogEntry.checked``) instead of
    parsing and validating ``inputs_json`` again; False (nothing counted) unless every counted
    entry has them, read with the baseline's own contract."""
    keep = [i for i, e in enumerate(entries) if e.route != "shadow"]
    if not keep:
        return True
    contract = baseline.contract
    equal: set[int] = {id(contract)}  # contracts compared once per call, not per entry
    for i in keep:
        checked = entries[i].checked
        if checked is None:
            return False
        if id(checked.contract) not in equal:
            if checked.contract != contract:
                return False
            equal.add(id(checked.contract))
    parts = [entries[i].checked for i in keep]
    ns = np.asarray([entries[i].n for i in keep], dtype=np.int64)
    values = {name: np.concatenate([c.values[name] for c in parts]) for name in parts[0].values}
    bad = np.concatenate([np.asarray(c.flagged, dtype=bool) for c in parts])
    add_checked(baseline, values, bad, np.repeat(owner[keep], ns), [outputs[i] for i in keep],
                ns, [b.window_for(baseline) for b in buckets])
    return True


def _naive(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None)


def _floor_hour(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def _hour(t: np.datetime64) -> datetime:
    return t.astype("datetime64[s]").item().replace(tzinfo=UTC)


# Entries counted between two hand-backs of the interpreter lock (about a millisecond).
DRAIN_SLICE = 64


class Rollup:
    """Counts the prediction log's committed entries into the monitoring caches (see the
    module docstring). ``background`` False: nothing runs by itself (tests call :meth:`drain`
    and :meth:`flush`)."""

    def __init__(self, ws: Workspace, *, background: bool = True, interval_s: float = 2.0,
                 flush_s: float = 60.0, max_queue: int = MAX_QUEUE) -> None:
        from planta.services.monitor import cache_for

        self.ws = ws
        self.windows = cache_for(ws)
        self.scores = score_cache_for(ws)
        self.background = background
        self.interval_s = interval_s
        self.flush_s = flush_s
        self.max_queue = max_queue
        self.dropped = 0
        self._queue: collections.deque[LogEntry] = collections.deque()
        self._lock = threading.Lock()
        self._work = threading.Lock()          # drain and flush, one at a time
        self._buckets: dict[tuple[str, datetime], _Bucket] = {}
        self._contexts: dict[str, _Context] = {}
        self._days: set[tuple[str, datetime]] = set()
        self._lost: set[tuple[str, datetime]] = set()   # hours with dropped entries
        self._months: set[tuple[str, datetime]] = set()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    # -- the writer's side ----------------------------------------------------------------
    def observe(self, entries: Sequence[LogEntry]) -> None:
        """Queue committed entries (the log's writer thread calls it: no work here)."""
        with self._lock:
            if len(self._queue) + len(entries) > self.max_queue:
                # Dropped, but not forgotten: each of their hours is re-read at flush.
                self.dropped += len(entries)
                for entry in entries:
                    self._lost.add((entry.usecase, _floor_hour(entry.at)))
                return
            self._queue.extend(entries)
            if len(self._queue) >= self.max_queue // 4:
                self._wake.set()  # count now rather than at the next tick
            if self.background and self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name="planta-rollup",
                                                daemon=True)
                self._thread.start()

    def _run(self) -> None:
        # At the normal OS priority, on purpose: this thread holds the interpreter lock while
        # it counts, and one that the kernel keeps waiting while holding it stalls every
        # request behind it (50-400 ms p99 tails when it ran at nice 10; bench/RESULTS.md).
        last_flush = time.monotonic()
        while not self._stop.is_set():
            self._wake.wait(self.interval_s)
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                self.drain()
                if time.monotonic() - last_flush >= self.flush_s:
                    last_flush = time.monotonic()
                    self.flush()
            except Exception:  # noqa: BLE001 - the rollup never takes the server down
                _logger.exception("counting the prediction log for monitoring failed")

    def close(self) -> None:
        """Stop the thread, count what is queued and write what settled."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()
        self.drain()
        self.flush()

    # -- counting ---------------------------------------------------------------------------
    def drain(self) -> int:
        """Count every queued entry; returns how many."""
        with self._work:
            with self._lock:
                entries = list(self._queue)
                self._queue.clear()
                lost, self._lost = self._lost, set()
            for key in lost:
                bucket = self._buckets.setdefault(key, _Bucket())
                bucket.mixed = bucket.scores_mixed = True   # read from the log at flush
            by_usecase: dict[str, list[LogEntry]] = collections.defaultdict(list)
            for entry in entries:
                by_usecase[entry.usecase].append(entry)
            # Parsing builds many small objects: the cycle collector would walk them over and
            # over (log_columns.paused_gc measured half the parsing time).
            with paused_gc():
                for usecase, part in by_usecase.items():
                    # In slices, handing the interpreter lock back between them: a request
                    # would otherwise wait for the whole count (Python switches threads only
                    # every 5 ms), which showed as tens of ms in the server's p99 latency.
                    for start in range(0, len(part), DRAIN_SLICE):
                        self._count(usecase, part[start:start + DRAIN_SLICE])
                        if self.background:
                            time.sleep(0)
            return len(entries)

    def _context(self, usecase: str, versions: set[int] | None = None) -> _Context:
        ctx = self._contexts.get(usecase)
        if ctx is not None and time.monotonic() - ctx.at < CONTEXT_S and (
                versions is None or versions <= ctx.versions):
            return ctx
        from planta.services.monitor import load_baseline
        from planta.services.performance import model_thresholds

        baseline: Baseline | None = None
        task: Task | None = None
        threshold_of: Callable[[int], float] = lambda _v: 0.5  # noqa: E731
        known: frozenset[int] = frozenset()
        try:
            task = self.ws.project.usecase(usecase).task
            baseline = load_baseline(self.ws, usecase)
        except PlantaError:
            pass  # no such use case, no model or no profile: nothing to count drift on
        if task is not None and task != Task.REGRESSION:
            try:
                threshold_of, known = model_thresholds(self.ws, usecase, task)
            except PlantaError:
                task = None
        ctx = _Context(baseline, task, threshold_of, known, time.monotonic())
        self._contexts[usecase] = ctx
        return ctx

    def _count(self, usecase: str, entries: list[LogEntry]) -> None:
        entries.sort(key=lambda e: e.at)
        ctx = self._context(usecase, {int(e.version) for e in entries})
        at = np.asarray([_naive(e.at) for e in entries], dtype="datetime64[us]")
        hours, owner = np.unique(at.astype("datetime64[h]"), return_inverse=True)
        buckets = [self._buckets.setdefault((usecase, _hour(h)), _Bucket()) for h in hours]
        for bucket, count in zip(buckets, np.bincount(owner, minlength=len(buckets)),
                                 strict=True):
            bucket.rows += int(count)
        outputs = parse_many([e.outputs_json for e in entries])
        # From the values the server validated when it has them, else from the logged text.
        if ctx.baseline is not None and not _add_prechecked(ctx.baseline, entries, owner,
                                                            outputs, buckets):
            chunk = LogColumns(at=at, n=np.asarray([e.n for e in entries], dtype=np.int64),
                               shadow=np.asarray([e.route == "shadow" for e in entries]),
                               inputs=parse_many([e.inputs_json for e in entries]),
                               outputs=outputs)
            _count_chunk(ctx.baseline, chunk, owner,
                         [b.window_for(ctx.baseline) for b in buckets])
        if ctx.task is None:
            return
        probs: list[list[float]] = [[] for _ in buckets]
        alarms: list[list[bool]] = [[] for _ in buckets]
        for entry, out, k in zip(entries, outputs, owner.tolist(), strict=True):
            if entry.route == "shadow":
                continue
            bucket, threshold = buckets[k], ctx.threshold_of(int(entry.version))
            if bucket.scores.thresholds.setdefault(int(entry.version), threshold) != threshold:
                bucket.scores_mixed = True
            row_scores(out, ctx.task, threshold, probs[k], alarms[k])
        for bucket, p, a in zip(buckets, probs, alarms, strict=True):
            if p:
                bucket.scores.summary = bucket.scores.summary + ScoreSummary.from_scores(
                    np.asarray(p, dtype=float), np.asarray(a, dtype=bool))

    # -- writing ----------------------------------------------------------------------------
    def flush(self, now: datetime | None = None) -> int:
        """Write every counted hour that settled, then roll settled days and months up;
        returns how many hours were written."""
        now = now or datetime.now(UTC)
        settled = now - timedelta(seconds=SETTLE_S)
        with self._work:
            ready = sorted(k for k in self._buckets if k[1] + HOUR <= settled)
            for usecase, hour in ready:
                bucket = self._buckets.pop((usecase, hour))
                try:
                    self._write_hour(usecase, hour, bucket, now)
                except PlantaError as exc:  # the store is away: the readers read the log
                    _logger.warning("monitoring cache of %s at %s not written: %s", usecase,
                                    hour, exc.message)
                    continue
                self._days.add((usecase, hour.replace(hour=0)))
            for usecase, day in sorted(self._days):
                if day + DAY <= settled:
                    self._days.discard((usecase, day))
                    self._roll(usecase, day, "day", now)
                    self._months.add((usecase, day.replace(day=1)))
            for usecase, month in sorted(self._months):
                if _next(month, "month") <= settled:
                    self._months.discard((usecase, month))
                    self._roll(usecase, month, "month", now)
            return len(ready)

    def _write_hour(self, usecase: str, hour: datetime, bucket: _Bucket, now: datetime) -> None:
        store = self.ws.store
        ctx = self._context(usecase)
        rows = _count_rows(store, usecase, hour, hour + HOUR)
        whole = bucket.rows == rows  # this process counted every row the log holds
        baseline = ctx.baseline
        if baseline is not None:
            if whole and not bucket.mixed and bucket.window is not None \
                    and bucket.digest == baseline.digest:
                self.windows.put(baseline, hour, "hour", bucket.window, rows)
            else:
                window_from_log(store, baseline, hour, hour + HOUR, cache=self.windows, now=now)
        if ctx.task is not None:
            if whole and not bucket.scores_mixed and all(
                    ctx.threshold_of(v) == t for v, t in bucket.scores.thresholds.items()):
                bucket.scores.rows = rows
                self.scores.put(usecase, hour, "hour", bucket.scores)
            else:
                self.scores.put(usecase, hour, "hour", _scores_from_log(store, usecase, ctx,
                                                                        hour, hour + HOUR))

    def _roll(self, usecase: str, start: datetime, level: str, now: datetime) -> None:
        """Write a settled day (month) made of its hours (days), each checked against the
        log's count first and re-read where it no longer matches."""
        store = self.ws.store
        ctx = self._context(usecase)
        try:
            if ctx.baseline is not None:
                window_from_log(store, ctx.baseline, start, _next(start, level),
                                cache=self.windows, now=now)
            if ctx.task is None:
                return
            below, parts = _children(start, level)
            total = Scores()
            for part in parts:
                end = _next(part, below)
                rows = _count_rows(store, usecase, part, end)
                got = self.scores.get(usecase, part, below)
                if got is None or got.rows != rows or any(
                        ctx.threshold_of(v) != t for v, t in got.thresholds.items()):
                    got = Scores() if rows == 0 else _scores_from_log(store, usecase, ctx,
                                                                      part, end)
                    if rows:
                        self.scores.put(usecase, part, below, got)
                if not total.add(got):
                    return
            if level == "day":  # the day's estimate, drawn once, from exactly these sums
                from planta.services.performance import day_estimate

                total.estimate = day_estimate(self.ws, usecase, total.summary)
            self.scores.put(usecase, start, level, total)
        except PlantaError as exc:
            _logger.warning("monitoring cache of %s at %s not rolled up: %s", usecase, start,
                            exc.message)


def _scores_from_log(store: Store, usecase: str, ctx: _Context, since: datetime,
                     until: datetime) -> Scores:
    """A span's sums read from the log (the path every engine takes), with its row count."""
    from sqlalchemy import select

    from planta.services.performance_log import sum_in_python
    from planta.store.metadata import predictions

    assert ctx.task is not None
    with store.read() as conn:
        versions = [int(v) for v in conn.scalars(select(predictions.c.version).distinct().where(
            predictions.c.usecase == usecase, predictions.c.at >= since,
            predictions.c.at < until, predictions.c.route != "shadow"))]
        summary = sum_in_python(conn, usecase, ctx.task, ctx.threshold_of, since, until)
    return Scores(summary, {v: ctx.threshold_of(v) for v in versions},
                  _count_rows(store, usecase, since, until))


def attach(ws: Workspace, log: PredictionLog) -> Rollup:
    """Count ``log``'s commits into ``ws``'s monitoring caches from now on."""
    rollup = Rollup(ws)
    log.add_observer(rollup.observe)
    return rollup


__all__ = ["MAX_QUEUE", "Rollup", "ScoreCache", "Scores", "attach", "kept_estimate",
           "score_cache_for", "scores_from_cache"]
