"""Drift benchmark: planta's streaming drift report against Evidently and a plain SciPy loop, and
the monitoring report over a year-sized prediction log.

1. The anchors' harness (`/work/shared/bench/anchors/run_drift.sh`, fresh process per run,
   10,000 reference rows vs 100,000 / 1,000,000 current rows, 6 features) calls
   ``planta_drift`` (in ``bench/drift_hook.py``: the anchors have a ``bench_drift`` module
   of their own) as its ``custom`` engine::

       cd /work/shared/bench/anchors
       PERF_BASE=/work/main/bench/out/perfbase REPS=3 ./run_drift.sh floor evidently
       PERF_BASE=/work/main/bench/out/perfbase REPS=3 PY=/work/venv/bin/python \
         CUSTOM_FUNC=drift_hook:planta_drift PYTHONPATH=/work/main/bench ./run_drift.sh custom

   What the harness times for planta (``compute_s``): everything ``planta_drift`` does:
   build the reference profile from the 10,000 reference rows (``profile_frame``, as ingest
   does; in production this happens once, at training, and ships in the bundle), count the
   current rows in chunks of 100,000 on the reference's bins (``Window.add``), and compare
   (``compare``: KS, PSI, Wasserstein, chi-square, Jensen–Shannon, Holm). The current columns
   are handed over as the numpy arrays of the DataFrame (no validation: the harness's values
   are already clean), as the contract's validation hands them over in the product. The
   phases are appended to ``$PLANTA_DRIFT_PHASES`` (JSON lines) when it is set.

2. The prediction log (``python bench/bench_drift.py log --rows 1000000``): a SQLite store
   with a year of AI4I-like predictions (one request per record, as a line sends them), then
   ``planta.services.monitor.monitor`` over 24 hours, 7 days, 30 days and the whole year, each
   cold (no cache) and warm (closed hours from the cache). Results: bench/out/drift_log.jsonl.
   ``--project bench/out/ui_project`` reuses a project whose log is already filled (its
   monitoring cache is deleted before each cold run); ``--windows 365d`` times one span.
   ``--keep-cache`` (with ``--project bench/out/perf_project_logged``, whose log
   ``bench_performance.py --through-log`` wrote through PredictionLog with the monitoring
   rollup observing it) first times the report on the cache as the writer left it ("first":
   the first report after ``planta serve`` logged a year), then deletes it and times the
   cold read and the warm one as before. The window ends at the project's ``end.txt``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
# -- the prediction log -------------------------------------------------------------------------
def _project(root: Path, budget_s: float) -> Any:
    from planta.core.spec import UseCase
    from planta.project import Project
    from planta.services.demo import demo_data
    from planta.services.ingest import ingest
    from planta.services.versions import train_version
    from planta.services.workspace import Workspace

    Project.init(root, name="bench")
    project = Project.open(root)
    project.add_usecase(UseCase.from_dict("failure", {
        "task": "binary", "target": "Machine failure", "objective": "recall>=0.5"}))
    ws = Workspace.from_project(project)
    ingest(ws, "failure", demo_data())
    trained = train_version(ws, "failure", budget_s=budget_s)
    ws.registry.move("failure", trained.version, "production", action="promote",
                     actor="bench", role="admin", reason="bench",
                     exception=trained.state == "rejected")
    return ws


def _fill_log(ws: Any, rows: int, now: datetime) -> float:
    """``rows`` single-record requests spread evenly over the year before ``now``."""
    from planta.services.demo import demo_data
    from planta.services.predict import Scorer
    from planta.services.versions import load_bundle
    from planta.store.ids import encode, reserve
    from planta.store.metadata import predictions

    scorer = Scorer.from_bundle(load_bundle(ws, "failure"))
    raw = pd.read_csv(demo_data())
    records = [{f.name: row[f.label] for f in scorer.contract.inputs}
               for row in raw.to_dict("records")]
    batch = scorer.predict(records, range_policy="flag")
    inputs = [json.dumps([r]) for r in records]
    outputs = [json.dumps({"prediction": [batch.prediction[i]],
                           "probability": [batch.probability[i]],  # type: ignore[index]
                           "score": None}) for i in range(len(records))]
    start = now - timedelta(days=365)
    step = timedelta(days=365) / rows
    rng = np.random.default_rng(0)
    pick = rng.integers(0, len(records), rows)
    first = reserve(rows)
    t = time.perf_counter()
    block = 20_000
    for lo in range(0, rows, block):
        part = [{"id": encode(first + i), "last_id": encode(first + i), "n": 1,
                 "at": start + step * i, "usecase": "failure", "version": scorer.version,
                 "route": "production", "channel": "sync", "caller": "line-4",
                 "request_id": None, "latency_ms": 1.0, "device": None, "entities": None,
                 "inputs": inputs[pick[i]], "outputs": outputs[pick[i]]}
                for i in range(lo, min(rows, lo + block))]
        with ws.store.engine.begin() as conn:
            conn.execute(predictions.insert(), part)
    return time.perf_counter() - t


def bench_log(rows: int, reps: int, budget_s: float, project: Path | None = None,
              windows: list[str] | None = None, keep: bool = False) -> list[dict[str, Any]]:
    from planta.services import monitor as mon
    from planta.services.workspace import Workspace

    now = datetime.now(UTC).replace(minute=30, second=0, microsecond=0)
    if project is None:
        root = Path(tempfile.mkdtemp(prefix="planta-drift-log-")) / "plant"
        ws = _project(root, budget_s)
        fill_s = _fill_log(ws, rows, now)
        print(f"filled {rows:,} log rows in {fill_s:.1f} s", file=sys.stderr)
    else:  # a project whose log is already filled (bench_ui.py's): its cache is cleared
        root = project
        ws = Workspace.open(root)
        if (root / "end.txt").is_file():
            now = datetime.fromisoformat((root / "end.txt").read_text())
    out = []
    cache = root / ".planta" / "cache" / "monitor"
    spans = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30),
             "365d": timedelta(days=365)}

    def measure(label: str, span: timedelta, state: str, rep: int) -> None:
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t, cpu = time.perf_counter(), time.process_time()
        result = mon.monitor(ws, "failure", since=now - span, until=now, now=now)
        seconds, cpu = time.perf_counter() - t, time.process_time() - cpu
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        line = {"bench": "drift_log", "log_rows": rows, "window": label,
                "state": state, "rep": rep + 1, "window_rows": result.report.rows,
                "seconds": round(seconds, 4), "cpu_s": round(cpu, 4),
                "load": round(os.getloadavg()[0], 1), "peak_rss_mb": round(after),
                "rss_rise_mb": round(after - before, 1),
                "drifted": [f.name for f in result.report.drifted]}
        out.append(line)
        print(json.dumps(line), flush=True)

    chosen = [(k, spans[k]) for k in windows or spans]
    if keep:  # before anything deletes the cache the log's writer left
        for label, span in chosen:
            mon._BASELINES.clear()
            measure(label, span, "first", 0)
    for label, span in chosen:
        for rep in range(reps):
            shutil.rmtree(cache, ignore_errors=True)
            mon._BASELINES.clear()
            for state in ("cold", "warm"):
                measure(label, span, state, rep)
    ws.close()
    if project is None:
        shutil.rmtree(root.parent, ignore_errors=True)
    return out


def bench_rollup(project: Path, entries_n: int) -> dict[str, Any]:
    """CPU per entry of the monitoring rollup's counting (``Rollup.drain``), what the server
    spends beside each logged prediction, in groups of 1,000 (a busy server's drains) and all
    at once. The entries are AI4I rows with the production model's answers (not written)."""
    import orjson

    from planta.services.demo import demo_data
    from planta.services.monitor_rollup import Rollup
    from planta.services.predict import Scorer
    from planta.services.versions import load_bundle
    from planta.services.workspace import Workspace
    from planta.store.predictions import LogEntry

    ws = Workspace.open(project)
    scorer = Scorer.from_bundle(load_bundle(ws, "failure"))
    records = [{f.name: row[f.label] for f in scorer.contract.inputs}
               for row in pd.read_csv(demo_data()).to_dict("records")]
    answers = scorer.predict(records, range_policy="flag")
    t0 = datetime(2030, 1, 1, tzinfo=UTC)
    k = len(records)
    entries = [LogEntry(
        first_id=i, n=1, at=t0 + timedelta(seconds=i / 2), usecase="failure",
        version=scorer.version, route="production", channel="sync", caller="bench",
        inputs_json=orjson.dumps([records[i % k]]),
        outputs_json=orjson.dumps({"prediction": [answers.prediction[i % k]],
                                   "probability": [answers.probability[i % k]],  # type: ignore
                                   "score": None})) for i in range(entries_n)]
    out: dict[str, Any] = {"bench": "rollup_drain", "entries": entries_n,
                           "load": round(os.getloadavg()[0], 1)}
    for size in (1000, entries_n):
        rollup = Rollup(ws, background=False)
        rollup.observe(entries[:1])  # the production model is looked up once, here
        rollup.drain()
        cpu = time.process_time()
        for lo in range(0, entries_n, size):
            rollup.observe(entries[lo:lo + size])
            rollup.drain()
        out[f"cpu_us_per_entry_groups_of_{size}"] = round(
            (time.process_time() - cpu) / entries_n * 1e6, 1)
    ws.close()
    print(json.dumps(out), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="mode", required=True)
    roll = sub.add_parser("rollup", help="CPU per entry of the monitoring rollup's counting")
    roll.add_argument("--project", type=Path, default=OUT / "perf_project_logged")
    roll.add_argument("--entries", type=int, default=100_000)
    log = sub.add_parser("log", help="monitoring report over a year-sized prediction log")
    log.add_argument("--rows", type=int, default=1_000_000)
    log.add_argument("--reps", type=int, default=2)
    log.add_argument("--budget", type=float, default=5.0)
    log.add_argument("--project", type=Path, default=None,
                     help="a project whose log is already filled (e.g. bench/out/ui_project)")
    log.add_argument("--windows", default="24h,7d,30d,365d")
    log.add_argument("--keep-cache", action="store_true",
                     help="time the first report on the cache the log's writer left, first")
    a = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    if a.mode == "rollup":
        bench_rollup(a.project, a.entries)
        return
    lines = bench_log(a.rows, a.reps, a.budget, a.project, a.windows.split(","), a.keep_cache)
    with (OUT / "drift_log.jsonl").open("a", encoding="utf-8") as fh:
        for line in lines:
            fh.write(json.dumps(line | {"date": f"{datetime.now(UTC):%Y-%m-%d}"}) + "\n")


if __name__ == "__main__":
    main()
