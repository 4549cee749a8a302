"""What performance-over-time remembers between calls, in memory and on disk.

    WindowMemory(folder, usecase)
      get(kind, key) ─► this process's memory (bounded LRU) ─► .planta/cache/performance/NAME.json
      put(kind, key, value)                                     (read once, on the first miss)
      save()  writes what is new (temporary file, then an atomic rename)

Every key holds what its value depends on (the window, its row count in the log, the
feedback's state, the thresholds, a digest of the labels), so a stale entry is never found,
only left behind; the file keeps the newest ``MAX_ENTRIES``. The file is JSON of numbers
(no pickle): a damaged or foreign file is ignored and rewritten. Kinds:

    sums      (log rows, ScoreSummary) of a window
    estimate  {metric: Estimate} drawn from a window's sums
    window    (labelled rows, {metric: Estimate}, unreadable labels) of a window
    metrics   {metric: Estimate} of a set of labels (by digest)
"""

from __future__ import annotations

import collections
import contextlib
import hashlib
import json
import math
import threading
from pathlib import Path
from typing import Any

import numpy as np

from planta.core.metrics import Estimate
from planta.core.performance import ScoreSummary
from planta.store.private import private_write_text

MAX_ENTRIES = 50_000
_FORMAT = "planta.performance-cache/1"


class _Lru:
    """A bounded, thread-safe mapping; the least recently used entries go first."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._data: collections.OrderedDict[Any, Any] = collections.OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Any) -> Any:
        with self._lock:
            value = self._data.get(key)
            if value is not None:
                self._data.move_to_end(key)
            return value

    def put(self, key: Any, value: Any) -> None:
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)

    def clear(self) -> None:
        with self._lock:
            self._data.clear()


_PROCESS = _Lru(MAX_ENTRIES)


def estimates_out(data: dict[str, Estimate]) -> dict[str, list[float | None]]:
    return {k: [_num(e.value), _num(e.lower), _num(e.upper)] for k, e in data.items()}


def estimates_in(data: dict[str, list[Any]]) -> dict[str, Estimate]:
    return {k: Estimate(*(math.nan if v is None else float(v) for v in triple))
            for k, triple in data.items()}


def _num(v: float) -> float | None:
    return float(v) if math.isfinite(v) else None


def _encode(kind: str, value: Any) -> Any:
    if kind == "sums":
        count, summary = value
        return [count, summary.counts.tolist(), summary.sums.tolist()]
    if kind == "window":
        n, metrics, unread = value
        return [n, estimates_out(metrics), unread]
    return estimates_out(value)


def _decode(kind: str, raw: Any) -> Any:
    if kind == "sums":
        count, counts, sums = raw
        return int(count), ScoreSummary(np.asarray(counts, dtype=np.int64),
                                        np.asarray(sums, dtype=float))
    if kind == "window":
        n, metrics, unread = raw
        return int(n), estimates_in(metrics), int(unread)
    return estimates_in(raw)


class WindowMemory:
    """Per-window results of one use case: this process's memory, then the project's cache
    file. ``folder`` None keeps them in memory only."""

    def __init__(self, folder: Path | None, usecase: str,
                 closed: frozenset[tuple[Any, Any]] = frozenset()) -> None:
        self.path = None if folder is None else folder / f"{usecase}.json"
        # Only closed windows go to the file: an open one (the current day, or a period that
        # ends now) changes with every call and would only grow the file.
        self.closed = closed
        self._disk: dict[str, Any] | None = None
        self._new: dict[str, Any] = {}

    def get(self, kind: str, key: tuple[Any, ...]) -> Any:
        hit = _PROCESS.get((kind, key))
        if hit is not None or self.path is None:
            return hit
        if self._disk is None:
            self._disk = self._load()
        raw = self._disk.get(_name(kind, key))
        if raw is None:
            return None
        try:
            value = _decode(kind, raw)
        except (TypeError, ValueError):
            return None
        _PROCESS.put((kind, key), value)
        return value

    def put(self, kind: str, key: tuple[Any, ...], value: Any, *,
            span: tuple[Any, Any]) -> None:
        """Remember ``value`` (for the window ``span``: (start, end))."""
        _PROCESS.put((kind, key), value)
        if self.path is not None and span in self.closed:
            self._new[_name(kind, key)] = _encode(kind, value)

    def save(self) -> None:
        """Write the new entries (with the newest of the old ones); never fails the caller:
        a cache that cannot be written is only slower next time."""
        if self.path is None or not self._new:
            return
        entries = dict(self._disk if self._disk is not None else self._load())
        entries.update(self._new)
        if len(entries) > MAX_ENTRIES:
            entries = dict(list(entries.items())[-MAX_ENTRIES:])
        with contextlib.suppress(OSError):
            private_write_text(self.path, json.dumps({"format": _FORMAT, "entries": entries}))
        self._new.clear()

    def _load(self) -> dict[str, Any]:
        if self.path is None:
            return {}
        try:
            doc = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        entries = doc.get("entries") if isinstance(doc, dict) else None
        if doc.get("format") != _FORMAT or not isinstance(entries, dict):
            return {}
        return entries


def _name(kind: str, key: tuple[Any, ...]) -> str:
    # repr of datetimes, numbers, strings and bytes is stable across runs; the digest keeps
    # the file's keys short.
    return hashlib.blake2b(repr((kind, key)).encode(), digest_size=16).hexdigest()


def forget(folder: Path | None = None) -> None:
    """Forget everything this process remembers, and the cache files under ``folder``."""
    _PROCESS.clear()
    if folder is not None and folder.is_dir():
        for path in folder.glob("*.json"):
            with contextlib.suppress(OSError):
                path.unlink()


__all__ = ["MAX_ENTRIES", "WindowMemory", "estimates_in", "estimates_out", "forget"]
