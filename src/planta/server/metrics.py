"""Prometheus metrics of one server (its own registry, so tests can run several apps)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
                     2.5, 10.0)
SCORE_BUCKETS = tuple(i / 10 for i in range(1, 10))


class Metrics:
    """The counters and histograms ``/metrics`` exposes."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("planta_http_requests", "HTTP requests answered",
                                ["route", "method", "status"], registry=r)
        self.latency = Histogram("planta_http_request_duration_seconds",
                                 "Time from request to response", ["route"],
                                 buckets=LATENCY_BUCKETS_S, registry=r)
        self.errors = Counter("planta_http_errors", "Refused or failed requests by kind",
                              ["route", "kind"], registry=r)
        self.predictions = Counter("planta_predictions", "Predictions made",
                                   ["usecase", "version", "route", "prediction"], registry=r)
        self.scores = Histogram("planta_prediction_score", "Probability of the positive class "
                                "(binary use cases)", ["usecase", "version"],
                                buckets=SCORE_BUCKETS, registry=r)
        self.rejected_records = Counter("planta_rejected_records",
                                        "Records refused by the contract, by rule",
                                        ["usecase", "rule"], registry=r)
        self.log_queue = Gauge("planta_prediction_log_queue_depth",
                               "Predictions waiting for the log's next commit", registry=r)
        # Counters read from the log at each scrape (rows per commit is the group size).
        self.log_rows = Gauge("planta_prediction_log_rows_written",
                              "Rows (requests and refusals) the log committed since start",
                              registry=r)
        self.log_commits = Gauge("planta_prediction_log_commits",
                                 "Transactions the log committed since start", registry=r)
        self.jobs = Gauge("planta_jobs", "Jobs in the queue by status", ["status"], registry=r)
        self.model_info = Gauge("planta_model_live", "Live model versions (1 = served)",
                                ["usecase", "version", "route"], registry=r)
        self._collect_hooks: list[Callable[[], None]] = []
        self._children: dict[tuple[int, tuple[str, ...]], Any] = {}

    def child(self, metric: Any, *labels: str) -> Any:
        """``metric.labels(*labels)``, remembered: ``labels()`` takes a lock and validates the
        labels on every call, several microseconds per request on the hot path. Only for
        labels of bounded cardinality (routes, statuses, use cases, versions, classes)."""
        key = (id(metric), labels)
        found = self._children.get(key)
        if found is None:
            found = self._children[key] = metric.labels(*labels)
        return found

    def on_collect(self, hook: Callable[[], None]) -> None:
        """Run ``hook`` before each scrape (gauges read from elsewhere)."""
        self._collect_hooks.append(hook)

    @staticmethod
    def observe_many(histogram: Any, values: Sequence[float]) -> None:
        """``histogram.observe(v)`` for each value, counted per bucket with numpy: a
        1,000-record request otherwise spends about a millisecond here."""
        bounds = getattr(histogram, "_upper_bounds", None)
        buckets = getattr(histogram, "_buckets", None)
        total = getattr(histogram, "_sum", None)
        if bounds is None or buckets is None or total is None or len(values) < 16:
            for v in values:  # another prometheus_client layout, or too few to matter
                histogram.observe(v)
            return
        arr = np.asarray(values, dtype=np.float64)
        # observe() counts a value in the first bucket whose upper bound is >= it.
        where = np.searchsorted(np.asarray(bounds, dtype=np.float64), arr, side="left")
        counts = np.bincount(where, minlength=len(bounds) + 1)[:len(bounds)]
        for i, count in enumerate(counts.tolist()):
            if count:
                buckets[i].inc(count)
        total.inc(float(arr.sum()))

    def exposition(self) -> bytes:
        for hook in self._collect_hooks:
            hook()
        return generate_latest(self.registry)


__all__ = ["Metrics"]
