"""Warm the monitoring caches in the background, so no page waits for a year's first read.

    warm_caches(ws, usecases=None, until=None, span=365 days) -> list[Warmed]
        drift        the production model's window over the span (month, day and hour files
                     in .planta/cache/monitor/, see planta.services.monitor_log)
        performance  daily windows over the span (this process's memory and
                     .planta/cache/performance/, see planta.services.performance)
    start_warming(ws, stop) -> thread                   once, in a daemon thread

``planta serve`` starts it with the server, and the scheduler's monitor job calls it after each
run: the first look at a year of log (seconds of CPU) then happens here, not in a page. Once
warm, the same call costs well under a second (index-only counts and the cache files). A use
case with no production model, or one whose bundle carries no reference profile, is skipped:
nothing to warm.

Since the server and the job worker count every committed prediction into the same caches as
they write it (``planta.services.monitor_rollup``), this finds a log written through planta
already counted; what it still reads is what reached the log another way (rows imported or
synced straight into the store, a log from before the rollup) and the realised performance
(the feedback's labels, joined when read).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from planta.errors import PlantaError

if TYPE_CHECKING:
    from collections.abc import Iterable

    from planta.services.workspace import Workspace

log = logging.getLogger(__name__)

SPAN = timedelta(days=365)


@dataclass
class Warmed:
    """What one use case's warm-up did (seconds per part; an error's message if it failed)."""

    usecase: str
    drift_s: float | None = None
    performance_s: float | None = None
    skipped: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"usecase": self.usecase, "drift_s": self.drift_s,
                "performance_s": self.performance_s, "skipped": self.skipped}


def warm_caches(ws: Workspace, usecases: Iterable[str] | None = None, *,
                until: datetime | None = None, span: timedelta = SPAN) -> list[Warmed]:
    """Read the ``span`` before ``until`` (default now) of each use case's log once, so its
    monitoring and performance caches hold every closed day. Never raises a planta error:
    a use case that cannot be warmed is reported as skipped."""
    from planta.services import monitor, performance
    from planta.services.monitor_log import window_from_log

    until = until or datetime.now(UTC)
    out: list[Warmed] = []
    for name in list(usecases) if usecases is not None else ws.project.usecase_names:
        done = Warmed(name)
        out.append(done)
        try:
            baseline = monitor.load_baseline(ws, name)
        except PlantaError as exc:
            done.skipped = exc.message
            continue
        try:
            t = time.perf_counter()
            window_from_log(ws.store, baseline, until - span, until,
                            cache=monitor.cache_for(ws), now=until)
            done.drift_s = round(time.perf_counter() - t, 3)
            t = time.perf_counter()
            performance.performance_over_time(ws, name, since=until - span, until=until,
                                              window=performance.DEFAULT_WINDOW, now=until)
            done.performance_s = round(time.perf_counter() - t, 3)
        except PlantaError as exc:  # a broken store shows in the pages; here, only a note
            done.skipped = exc.message
    return out


def start_warming(ws: Workspace, stop: threading.Event | None = None,
                  delay_s: float = 2.0) -> threading.Thread:
    """Warm every use case once in a daemon thread, ``delay_s`` after start (so the server
    answers its first requests before the read begins)."""

    def run() -> None:
        # No lower OS priority for this thread: it holds the interpreter lock while it runs,
        # and a thread the kernel keeps waiting while holding it stalls every request behind
        # it (measured as 50-400 ms p99 tails: bench/RESULTS.md, "Serving").
        if stop is not None and stop.wait(delay_s):
            return
        try:
            for done in warm_caches(ws):
                log.info("monitoring caches of %s: %s", done.usecase, done.to_dict())
        except Exception as exc:  # a warm-up never takes the server down; pages read cold
            log.warning("warming the monitoring caches failed: %s", exc, exc_info=True)

    thread = threading.Thread(target=run, name="planta-warmup", daemon=True)
    thread.start()
    return thread


__all__ = ["SPAN", "Warmed", "start_warming", "warm_caches"]
