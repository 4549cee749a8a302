"""Performance-over-time benchmark: a year of daily windows over a million-prediction log.

A real project (SQLite file) with a model trained on AI4I 2020 in production; its prediction
log is filled with 1,000,000 one-record predictions spread over 365 days (bulk inserts through
the store's own table, outputs spelled as the server writes them), and ground truth for a
share of them (10 % by default) in the feedback table. Then ``performance_over_time`` for the
whole year in daily windows is timed:

    cold      nothing remembered, no cache file (the very first look at a year)
    warm      the same call again (the web page, the scheduler: a long-running process)
    disk      this process forgot, the project's cache file is read (a new `planta
              performance` or report process)
    one new   after one more prediction lands in the last window (only that window is re-read)
    python    cold, with the rows streamed through Python (the path PostgreSQL takes)

    python bench/bench_performance.py [--rows 1000000] [--labelled 0.1] [--reps 3]

The filled project is kept in bench/out/perf_project (delete it to rebuild).

``--through-log`` builds bench/out/perf_project_logged instead: the year ends at the hour of
the build, its inputs are AI4I rows resampled with the model's own answers (a label drawn from
each answer's probability), and every prediction is written the way ``planta serve`` writes
it: a LogEntry through ``PredictionLog`` with the monitoring rollup observing the commits
(``planta.services.monitor_rollup``), which counts them into .planta/cache/monitor/ and
.planta/cache/scores/ as they are written. "cold" then means: nothing remembered by the
performance service and no performance cache file, but the rollup's files as the writer left
them (what the first page after ``planta serve`` wrote a year sees). The fill prints its
writer and rollup seconds. ``bench_drift.py log --project bench/out/perf_project_logged
--keep-cache`` times the drift report on the same project. Its labels are sent
through ``FeedbackStore`` (as ``planta feedback`` sends them) with the label rollup observing
it (``planta.services.label_rollup``); ``--relabel`` takes a built project's labels out and
sends them again that way. ``--split`` only times the cold call
with the labels and with the feedback hidden (the estimated series alone), twice each.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import insert

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
START = datetime(2025, 1, 1, tzinfo=UTC)
DAYS = 365


def _project(root: Path) -> tuple[Any, Any]:
    from planta.core.spec import UseCase
    from planta.project import Project
    from planta.services.demo import demo_data
    from planta.services.ingest import ingest
    from planta.services.versions import train_version
    from planta.services.workspace import Workspace

    if root.exists():
        shutil.rmtree(root)
    Project.init(root, name="bench")
    project = Project.open(root)
    project.add_usecase(UseCase.from_dict("failure", {
        "task": "binary", "target": "Machine failure", "objective": "recall>=0.6"}))
    ws = Workspace.from_project(project)
    pd.read_csv(demo_data()).iloc[:3000].to_csv(root / "history.csv", index=False)
    ingest(ws, "failure", root / "history.csv")
    trained = train_version(ws, "failure", budget_s=3.0)
    ws.registry.move("failure", trained.version, "production", action="promote", actor="bench",
                     role="admin", reason="bench", exception=trained.state == "rejected")
    return ws, trained


def build_through_log(root: Path, rows: int, labelled: float, end: datetime) -> None:
    """A year up to ``end`` written through PredictionLog with the rollup observing it."""
    from planta.services.demo import demo_data
    from planta.services.monitor_rollup import Rollup
    from planta.services.predict import Scorer
    from planta.services.versions import load_bundle
    from planta.store.ids import encode, reserve
    from planta.store.predictions import LogEntry, PredictionLog

    ws, trained = _project(root)
    scorer = Scorer.from_bundle(load_bundle(ws, "failure"))
    raw = pd.read_csv(demo_data())
    records = [{f.name: row[f.label] for f in scorer.contract.inputs}
               for row in raw.to_dict("records")]
    answers = scorer.predict(records, range_policy="flag")
    prob = np.asarray(answers.probability, dtype=float)
    inputs = [orjson.dumps([r]) for r in records]
    outputs = [orjson.dumps({"prediction": [answers.prediction[i]],
                             "probability": [answers.probability[i]],  # type: ignore[index]
                             "score": None}) for i in range(len(records))]
    rng = np.random.default_rng(0)
    start = end - timedelta(days=DAYS)
    seconds = np.sort(rng.uniform(0, DAYS * 86400, rows))
    pick = rng.integers(0, len(records), rows)
    truth = rng.random(rows) < prob[pick]
    has_label = rng.random(rows) < labelled
    rollup = Rollup(ws)
    first = reserve(rows)
    t0 = time.perf_counter()
    block = 5_000
    with PredictionLog(ws.store, observers=[rollup.observe], max_wait_ms=0) as log:
        for lo in range(0, rows, block):
            futures = [log.submit(LogEntry(
                first_id=first + i, n=1, at=start + timedelta(seconds=float(seconds[i])),
                usecase="failure", version=trained.version, route="production",
                channel="sync", caller="line-4", latency_ms=1.2, inputs_json=inputs[pick[i]],
                outputs_json=outputs[pick[i]])) for i in range(lo, min(rows, lo + block))]
            futures[-1].result()  # keep the queue under the log's max_depth
    written = time.perf_counter() - t0
    rollup.close()
    print(f"written through PredictionLog in {written:.1f} s; the rollup finished "
          f"{time.perf_counter() - t0 - written:.1f} s later (dropped {rollup.dropped})")
    write_labels(ws, [(encode(first + i), int(truth[i]))
                      for i in np.flatnonzero(has_label).tolist()])
    ws.close()


def write_labels(ws: Any, labels: list[tuple[str, Any]], chunk: int = 5_000) -> None:
    """Ground truth through FeedbackStore, as `planta feedback` and the server write it, with
    the label rollup observing it (planta.services.label_rollup), a file of ``chunk`` labels
    at a time."""
    from planta.services.label_rollup import LabelRollup
    from planta.store.feedback import FeedbackStore
    from planta.store.predictions import PredictionLog

    rollup = LabelRollup(ws)
    observing = [0.0]

    def observe(usecase: str, added: list[str], updated: list[str]) -> None:
        t = time.perf_counter()
        rollup.observe(usecase, added, updated)
        observing[0] += time.perf_counter() - t

    t0 = time.perf_counter()
    with PredictionLog(ws.store) as log:
        store = FeedbackStore(ws.store, log, observers=[observe])
        for lo in range(0, len(labels), chunk):
            store.add("failure", [{"prediction_id": p, "value": v}
                                  for p, v in labels[lo:lo + chunk]], actor="bench",
                      source="file:bench.csv")
    print(f"{len(labels):,} labels written through FeedbackStore with the label rollup in "
          f"{time.perf_counter() - t0:.1f} s, {observing[0]:.1f} s of it in the label rollup")


def relabel(root: Path) -> None:
    """Take the project's labels out and send them again through FeedbackStore."""
    from sqlalchemy import delete, select

    from planta.services.label_rollup import label_cache_for
    from planta.services.workspace import Workspace
    from planta.store.metadata import feedback

    ws = Workspace.open(root)
    with ws.store.read() as conn:
        labels = [(r.prediction_id, r.value) for r in conn.execute(
            select(feedback.c.prediction_id, feedback.c.value)
            .where(feedback.c.usecase == "failure").order_by(feedback.c.prediction_id))]
    with ws.store.write() as conn:
        conn.execute(delete(feedback).where(feedback.c.usecase == "failure"))
    shutil.rmtree(label_cache_for(ws).root, ignore_errors=True)
    write_labels(ws, labels)
    ws.close()


def build(root: Path, rows: int, labelled: float) -> None:
    from planta.store.ids import encode
    from planta.store.metadata import feedback, predictions

    ws, trained = _project(root)
    threshold = float(trained.outcome.threshold)
    rng = np.random.default_rng(0)
    seconds = np.sort(rng.uniform(0, DAYS * 86400, rows))
    prob = rng.beta(0.3, 8.0, rows)
    truth = rng.random(rows) < prob
    has_label = rng.random(rows) < labelled
    base = 1 << 100
    inputs = orjson.dumps([{"type": "L", "air_temperature_k": 300.1, "torque_nm": 40.3,
                            "rotational_speed_rpm": 1500, "tool_wear_min": 100}]).decode()
    chunk = 50_000
    for lo in range(0, rows, chunk):
        batch, labels = [], []
        for i in range(lo, min(rows, lo + chunk)):
            pid = encode(base + i)
            at = START + timedelta(seconds=float(seconds[i]))
            p = float(prob[i])
            batch.append({"id": pid, "last_id": pid, "n": 1, "at": at, "usecase": "failure",
                          "version": trained.version, "route": "production", "channel": "sync",
                          "caller": "line-4", "request_id": None, "latency_ms": 1.2,
                          "device": None, "entities": None, "inputs": inputs,
                          "outputs": orjson.dumps({"prediction": ["1" if p >= threshold else "0"],
                                                   "probability": [p], "score": None}).decode()})
            if has_label[i]:
                labels.append({"usecase": "failure", "prediction_id": pid,
                               "value": int(truth[i]), "entity": None, "event_time": None,
                               "source": "bench", "actor": "bench",
                               "received_at": at + timedelta(days=3)})
        with ws.store.engine.begin() as conn:
            conn.execute(insert(predictions), batch)
            if labels:
                conn.execute(insert(feedback), labels)
    ws.close()


CPU: dict[str, list[float]] = {}


def timed(fn, name: str = "") -> tuple[float, object]:
    """Wall seconds of ``fn()`` (and its CPU seconds, kept under ``name``: on a shared box the
    wall time also counts the other jobs' turns on the cores)."""
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    if name:
        CPU.setdefault(name, []).append(time.process_time() - c0)
    return time.perf_counter() - t0, out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--labelled", type=float, default=0.1)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--through-log", action="store_true",
                        help="write the year through PredictionLog and the monitoring rollup")
    parser.add_argument("--split", action="store_true",
                        help="only time the cold call with the labels and with the feedback "
                             "hidden (the estimated series alone), twice each")
    parser.add_argument("--relabel", action="store_true",
                        help="first take the built project's labels out and send them again "
                             "through FeedbackStore with the label rollup (a project built "
                             "before the label rollup)")
    args = parser.parse_args()
    from planta.services import performance as perf
    from planta.services.workspace import Workspace
    from planta.store.ids import reserve
    from planta.store.predictions import LogEntry, PredictionLog

    root = OUT / ("perf_project_logged" if args.through_log else "perf_project")
    marker = root / f"filled-{args.rows}-{args.labelled}"
    if not marker.exists():
        t0 = time.perf_counter()
        if args.through_log:
            end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
            build_through_log(root, args.rows, args.labelled, end)
            (root / "end.txt").write_text(end.isoformat())
        else:
            build(root, args.rows, args.labelled)
        marker.touch()
        print(f"filled {args.rows:,} predictions in {time.perf_counter() - t0:.0f} s")
    if args.relabel:
        relabel(root)
    ws = Workspace.open(root)
    now = (datetime.fromisoformat((root / "end.txt").read_text()) if args.through_log
           else START + timedelta(days=DAYS))
    since = now - timedelta(days=DAYS)

    def call(**kw: object) -> perf.PerformanceSeries:
        return perf.performance_over_time(ws, "failure", since=since, until=now,
                                          window=timedelta(days=1), now=now, **kw)

    if args.split:
        from planta.services import performance_log

        call()  # imports and the bundle, once
        real = performance_log.feedback_state
        for rep in range(4):
            hidden = rep % 2 == 1
            performance_log.feedback_state = (  # type: ignore[assignment]
                (lambda _ws, _uc: (0, None)) if hidden else real)
            perf.clear_memory(ws)
            seconds, _ = timed(call, "hidden" if hidden else "labels")
            print(json.dumps({"labels": not hidden, "seconds": round(seconds, 3),
                              "cpu_s": round(CPU["hidden" if hidden else "labels"][-1], 3),
                              "load": round(os.getloadavg()[0], 1)}))
        performance_log.feedback_state = real
        return
    results: dict[str, list[float]] = {"cold": [], "warm": [], "disk": [], "one_new": [],
                                       "python": []}
    load = os.getloadavg()[0]
    for rep in range(args.reps):
        perf.clear_memory(ws)
        seconds, series = timed(call, "cold")
        results["cold"].append(seconds)
        results["warm"].append(timed(call, "warm")[0])
        perf.clear_memory()
        results["disk"].append(timed(call, "disk")[0])
        with PredictionLog(ws.store) as log:
            log.write_now(LogEntry(first_id=reserve(1), n=1, at=now - timedelta(hours=1 + rep),
                                   usecase="failure", version=1, route="production",
                                   channel="sync", caller="bench", inputs_json="[{}]",
                                   outputs_json='{"prediction":["0"],"probability":[0.01],'
                                                '"score":null}'))
        results["one_new"].append(timed(call, "one_new")[0])
        perf.clear_memory(ws)
        results["python"].append(timed(lambda: call(engine_sql=False, remember=False),
                                       "python")[0])
    assert isinstance(series, perf.PerformanceSeries)
    n = sum(w.n_predictions for w in series.windows)
    labelled = sum(w.n_labelled for w in series.windows)
    summary = {k: round(statistics.median(v), 3) for k, v in results.items()}
    record = {"at": datetime.now(UTC).isoformat(timespec="seconds"), "rows": n,
              "through_log": args.through_log,
              "labelled": labelled, "windows": len(series.windows), "load_before": load,
              "median_s": summary,
              "median_cpu_s": {k: round(statistics.median(v), 3) for k, v in CPU.items()},
              "all_s": {k: [round(x, 3) for x in v] for k, v in results.items()}}
    OUT.mkdir(exist_ok=True)
    with (OUT / "performance.jsonl").open("a") as fh:
        fh.write(json.dumps(record) + "\n")
    print(json.dumps(record, indent=2))
    ws.close()


if __name__ == "__main__":
    main()
