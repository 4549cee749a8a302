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

import numpy as np
import orjson
import pandas as pd
from sqlalchemy import insert

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
START = datetime(2025, 1, 1, tzinfo=UTC)
DAYS = 365


def build(root: Path, rows: int, labelled: float) -> None:
    from planta.core.spec import UseCase
    from planta.project import Project
    from planta.services.demo import demo_data
    from planta.services.ingest import ingest
    from planta.services.versions import train_version
    from planta.services.workspace import Workspace
    from planta.store.ids import encode
    from planta.store.metadata import feedback, predictions

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
    args = parser.parse_args()
    from planta.services import performance as perf
    from planta.services.workspace import Workspace
    from planta.store.ids import reserve
    from planta.store.predictions import LogEntry, PredictionLog

    root = OUT / "perf_project"
    marker = root / f"filled-{args.rows}-{args.labelled}"
    if not marker.exists():
        t0 = time.perf_counter()
        build(root, args.rows, args.labelled)
        marker.touch()
        print(f"filled {args.rows:,} predictions in {time.perf_counter() - t0:.0f} s")
    ws = Workspace.open(root)
    now = START + timedelta(days=DAYS)

    def call(**kw: object) -> perf.PerformanceSeries:
        return perf.performance_over_time(ws, "failure", since=START, until=now,
                                          window=timedelta(days=1), now=now, **kw)

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
