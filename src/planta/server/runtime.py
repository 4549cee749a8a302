"""What one running server holds, and the one way it answers a prediction.

Every channel (the v1 REST route, the Open Inference Protocol route, the web UI) calls
:meth:`Runtime.predict`, so routing (production / canary / shadow), contract checks, logging and
metrics happen the same way whichever door a record came in by.

A prediction is answered only after the log row that holds it is committed (group commit, see
:mod:`planta.store.predictions`): an acknowledged prediction is never missing from the log.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import random
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import orjson
from starlette.concurrency import run_in_threadpool

from planta.errors import ContractError
from planta.server.guard import Principal
from planta.server.hub import Hub
from planta.server.metrics import Metrics
from planta.server.turns import LogTurn, ScoreTurn
from planta.services.predict import PredictionBatch, Scorer
from planta.services.workspace import Workspace
from planta.store.ids import id_range, reserve

log = logging.getLogger("planta.server")

# Requests this small are scored on the event loop: a thread hop costs more than the model.
INLINE_RECORDS = 64


@dataclass
class ServeOptions:
    """How ``planta serve`` runs (flags over ``[serve]`` in planta.toml over these defaults)."""

    host: str = "127.0.0.1"
    port: int = 8000
    require_auth: bool = False
    allowed_hosts: tuple[str, ...] = ()
    max_body_bytes: int = 10 * 1024 * 1024
    max_upload_bytes: int = 200 * 1024 * 1024
    max_records: int = 10_000
    range_policy: str = "reject"
    extra_policy: str = "reject"
    log_predictions: bool = True
    log_durability: str = "full"        # full: fsync per group commit; process: survives kill -9
    poll_s: float = 0.25
    worker: bool = True
    # The scheduler thread (planta.services.scheduler); `planta serve` turns it on unless
    # --no-scheduler or [scheduler] enabled = false. Off here so embedded apps and tests opt in.
    scheduler: bool = False
    cert: str | None = None
    key: str | None = None
    access_log: bool = False


@dataclass
class Answer:
    """A scored request: the batch, its prediction ids and the route that answered."""

    batch: PredictionBatch
    ids: list[str]
    route: str
    usecase: str
    latency_ms: float

    def records(self) -> list[dict[str, Any]]:
        """Each record's answer: ``{"prediction_id": ...} | batch.record(i)``, built column by
        column (half the time of a call and two dicts per record on 1,000-record requests)."""
        b = self.batch
        version = b.version
        out = [{"prediction_id": pid, "prediction": p, "model_version": version}
               for pid, p in zip(self.ids, b.prediction, strict=True)]
        for key, column in (("probability", b.probability), ("score", b.score)):
            if column is not None:
                for rec, value in zip(out, column, strict=True):
                    rec[key] = value
        if any(b.flagged):
            for rec, flagged in zip(out, b.flagged, strict=True):
                if flagged:
                    rec["flagged"] = True
        if b.reasons is not None:
            for rec, reasons in zip(out, b.reasons, strict=True):
                rec["reasons"] = reasons
        return out


@dataclass
class Runtime:
    """The server's state: workspace, hub, log, queues, metrics."""

    ws: Workspace
    options: ServeOptions
    hub: Hub
    metrics: Metrics
    log: Any = None            # planta.store.predictions.PredictionLog
    feedback: Any = None       # planta.store.feedback.FeedbackStore
    jobs: Any = None           # planta.store.jobs.JobQueue
    tokens: Any = None         # planta.store.tokens.TokenStore
    rollup: Any = None         # planta.services.monitor_rollup.Rollup, set from ``log``
    started_at: datetime = field(default_factory=lambda: datetime.now(UTC))
    _background: set[asyncio.Task[Any]] = field(default_factory=set)
    _log_turn: LogTurn | None = None
    _score_turn: ScoreTurn | None = None

    def __post_init__(self) -> None:
        # Count each commit into the monitoring caches as it is written, so no page or report
        # has to parse a year of log (planta.services.monitor_rollup).
        if self.log is not None and self.rollup is None and hasattr(self.log, "add_observer"):
            from planta.services.monitor_rollup import attach

            self.rollup = attach(self.ws, self.log)
        # The same for ground truth: each committed label counted into its day's confusion
        # counts (planta.services.label_rollup).
        if self.feedback is not None and hasattr(self.feedback, "add_observer"):
            from planta.services.label_rollup import attach_labels

            attach_labels(self.ws, self.feedback)

    async def predict(self, usecase: str, records: Sequence[Mapping[str, Any]], *,
                      principal: Principal | None, channel: str, explain: bool = False,
                      version: int | None = None, request_id: str | None = None) -> Answer:
        """Route, check, score, log (and wait for the log's commit), count."""
        start = time.perf_counter()
        route = self.hub.route(usecase)
        if version is not None:
            scorer, route_name = self.hub.scorer(usecase, version), "pinned"
        else:
            entity = None
            if route.canary is not None:
                key = route.production.entity if route.production is not None else None
                entity = records[0].get(key) if key else None
            # Which requests the canary answers: traffic splitting, not a secret (bandit B311).
            scorer, route_name = route.choose(entity, random.random())  # nosec B311
        caller = principal.name if principal is not None else "anonymous"
        try:
            batch = await self._score(scorer, records, explain)
        except ContractError as exc:
            self._count_refusal(usecase, channel, caller, exc, len(records))
            raise
        n = batch.n
        first = reserve(n)
        ids = id_range(first, n)
        latency_ms = (time.perf_counter() - start) * 1000
        if self.log is not None and self.options.log_predictions:
            await self._write_log(self._entry(first, n, usecase, scorer, route_name, channel,
                                              caller, request_id, latency_ms, batch, records))
        self._count(usecase, scorer, route_name, batch)
        if route.shadow is not None and version is None and route.shadow is not scorer:
            self._spawn(self._shadow(route.shadow, usecase, records, channel, caller,
                                     request_id))
        return Answer(batch=batch, ids=ids, route=route_name, usecase=usecase,
                      latency_ms=latency_ms)

    async def _score(self, scorer: Scorer, records: Sequence[Mapping[str, Any]],
                     explain: bool) -> PredictionBatch:
        if len(records) <= INLINE_RECORDS:
            # Scored with the other small requests of this event-loop turn (one call).
            if self._score_turn is None:
                self._score_turn = ScoreTurn(self._score_now)
            return await self._score_turn.score(scorer, records, explain)
        return await run_in_threadpool(self._score_now, scorer, records, explain)

    def _score_now(self, scorer: Scorer, records: Sequence[Mapping[str, Any]],
                   explain: bool) -> PredictionBatch:
        return scorer.predict(records, explain=explain, range_policy=self.options.range_policy,
                              extra_policy=self.options.extra_policy)

    def _entry(self, first: int, n: int, usecase: str, scorer: Scorer, route: str, channel: str,
               caller: str, request_id: str | None, latency_ms: float, batch: PredictionBatch,
               records: Sequence[Mapping[str, Any]]) -> Any:
        from planta.store.predictions import LogEntry

        return LogEntry(first_id=first, n=n, at=datetime.now(UTC), usecase=usecase,
                        version=scorer.version, route=route, channel=channel, caller=caller,
                        request_id=request_id, latency_ms=latency_ms, device=None,
                        entities=batch.entities, inputs_json=orjson.dumps(list(records)),
                        outputs_json=orjson.dumps(batch.outputs()), checked=batch.checked)

    async def _shadow(self, scorer: Scorer, usecase: str, records: Sequence[Mapping[str, Any]],
                      channel: str, caller: str, request_id: str | None) -> None:
        """Score in shadow: logged and counted, never returned; a failure here is logged only."""
        start = time.perf_counter()
        try:
            batch = await run_in_threadpool(
                scorer.predict, records, range_policy=self.options.range_policy,
                extra_policy=self.options.extra_policy)
            first = reserve(batch.n)
            if self.log is not None and self.options.log_predictions:
                await self._write_log(self._entry(
                    first, batch.n, usecase, scorer, "shadow", channel, caller, request_id,
                    (time.perf_counter() - start) * 1000, batch, records))
            self._count(usecase, scorer, "shadow", batch)
        except Exception as exc:
            log.warning("shadow scoring of %s v%s failed: %s", usecase, scorer.version, exc)

    async def _write_log(self, entry: Any) -> str:
        """Log ``entry`` and wait until it is committed (with the rest of this turn's
        entries: one group commit, one wake-up; planta.server.turns)."""
        if self._log_turn is None or self._log_turn.log is not self.log:
            self._log_turn = LogTurn(self.log)
        return await self._log_turn.write(entry)

    def _spawn(self, coro: Any) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    def _count(self, usecase: str, scorer: Scorer, route: str, batch: PredictionBatch) -> None:
        m = self.metrics
        version = str(scorer.version)
        # Regression values are counted under "value": a label per predicted number would
        # grow the metric without bound.
        if scorer.task.value == "regression":
            counts = {"value": batch.n}
        elif batch.n == 1:
            counts = {str(batch.prediction[0]): 1}
        else:
            counts = collections.Counter(map(str, batch.prediction))
        for key, count in counts.items():
            m.child(m.predictions, usecase, version, route, key).inc(count)
        if batch.probability and not isinstance(batch.probability[0], dict):
            hist = m.child(m.scores, usecase, version)
            if batch.n == 1:
                hist.observe(batch.probability[0])
            else:
                m.observe_many(hist, batch.probability)

    def _count_refusal(self, usecase: str, channel: str, caller: str, exc: ContractError,
                       n_records: int) -> None:
        rules: dict[str, int] = {}
        for v in exc.violations:
            rule = getattr(v, "rule", None) or "unknown"
            rules[rule] = rules.get(rule, 0) + 1
        for rule, count in rules.items():
            self.metrics.rejected_records.labels(usecase, rule).inc(count)
        if self.log is not None and hasattr(self.log, "record_rejection"):
            try:
                self.log.record_rejection(usecase, channel, caller, n_records, rules)
            except Exception as err:  # counting a refusal must never turn it into a 500
                log.warning("could not record a refused request: %s", err)

    def apply_retention(self) -> dict[str, int]:
        """Trim each use case's prediction log to its retention (days and/or rows).

        The use case's ``retention_days``/``retention_rows`` win over ``[serve]
        log_retention_days``; 0 days keeps everything. Returns predictions removed per use case.
        """
        removed: dict[str, int] = {}
        if self.log is None:
            return removed
        settings = self.ws.project.settings
        for name in self.ws.project.usecase_names:
            uc = self.ws.project.usecase(name)
            days = uc.retention_days or getattr(settings, "log_retention_days", 0) or None
            rows = uc.retention_rows
            if days is None and rows is None:
                continue
            removed[name] = self.log.apply_retention(name, days=days, max_rows=rows)
            if removed[name]:
                log.info("retention: removed %d old predictions of %s", removed[name], name)
        return removed

    async def retention_loop(self, every_s: float = 3600.0) -> None:
        """Apply the retention now, then every ``every_s`` seconds, until cancelled."""
        while True:
            try:
                await asyncio.to_thread(self.apply_retention)
            except Exception as exc:  # the log keeps growing until the next try; say so
                log.warning("prediction log retention failed: %s", exc)
            await asyncio.sleep(every_s)

    async def drain(self) -> None:
        """Wait for shadow scoring in flight (graceful shutdown)."""
        if self._background:
            await asyncio.wait(list(self._background), timeout=10)


__all__ = ["INLINE_RECORDS", "Answer", "Runtime", "ServeOptions"]
