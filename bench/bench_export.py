"""Edge export: size and single-record latency of the ONNX edge bundle against the native model.

    python bench/bench_export.py                     # AI4I 2020, `planta train --budget 60`
    python bench/bench_export.py --budget 20 --repeats 2000

Runs the real commands in a fresh project (in a temporary folder): `planta init`, `planta
usecase add`, `planta ingest` of the bundled AI4I 2020 file (10,000 rows), `planta train`,
`planta keys create` (key folder in the temporary folder too) and `planta export --onnx`. Then,
in this process, one record at a time (medians of ``--repeats`` calls, after a warm-up):

* ``native``: the registered bundle's predictor (LightGBM / XGBoost boosters, numpy calibrator)
  on contract values;
* ``onnx``: the edge bundle through ``planta_edge.model.EdgeModel`` (category codes in numpy,
  the rest in one onnxruntime session, one thread) on the same values;
* ``*_records``: the same from a JSON-like record, contract validation included
  (``Scorer.predict`` on the hub, ``EdgeModel.predict_records`` on the device).

Prints a markdown table and one JSON line (``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PLANTA = str(Path(sys.executable).with_name("planta"))


def _planta(*args: str, env: dict[str, str], cwd: Path) -> dict[str, Any]:
    out = subprocess.run([PLANTA, *args, "--json"], capture_output=True, text=True, env=env,
                         cwd=cwd, check=False)
    if out.returncode not in (0, 3):
        raise SystemExit(f"planta {' '.join(args)} failed ({out.returncode}):\n{out.stdout}"
                         f"\n{out.stderr}")
    return dict(json.loads(out.stdout))


def _median_us(fn: Callable[[], Any], repeats: int) -> float:
    for _ in range(50):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--budget", type=float, default=60.0)
    parser.add_argument("--repeats", type=int, default=3000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "export.jsonl")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="planta-bench-export-") as tmp:
        base = Path(tmp)
        env = dict(os.environ, PLANTA_SIGNING_KEYS=str(base / "signing"))
        project = base / "plant"
        subprocess.run([PLANTA, "init", str(project)], check=True, capture_output=True, env=env)
        _planta("usecase", "add", "failure", "--target", "Machine failure", "--task", "binary",
                "--objective", "recall>=0.5 and precision>=0.5", env=env, cwd=project)
        _planta("ingest", "failure", str(ROOT / "src" / "planta" / "data" / "ai4i2020.csv"),
                env=env, cwd=project)
        started = time.monotonic()
        trained = _planta("train", "failure", "--budget", str(args.budget), env=env,
                          cwd=project)
        train_s = time.monotonic() - started
        key = _planta("keys", "create", env=env, cwd=project)["key"]["public_key"]
        exported = _planta("export", "failure", "--version", "1", "--onnx", env=env,
                           cwd=project)
        quantized = _planta("export", "failure", "--version", "1", "--onnx", "--quantize",
                            env=env, cwd=project)
        row = measure(project, exported, key, args.repeats)
    row.update(date=time.strftime("%Y-%m-%d"), budget_s=args.budget, train_s=round(train_s, 1),
               estimator=trained.get("estimator"), quantize_note=quantized.get("quantize_note"),
               cpu_count=os.cpu_count())
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    print(json.dumps(row, indent=1))
    print(table(row))


def measure(project: Path, exported: dict[str, Any], key: str, repeats: int) -> dict[str, Any]:
    from planta.services.export import holdout_values
    from planta.services.predict import Scorer
    from planta.services.versions import load_bundle, load_predictor
    from planta.services.workspace import Workspace
    from planta_edge.model import EdgeModel

    ws = Workspace.open(project)
    try:
        source = load_bundle(ws, "failure", 1)
        predictor, contract = load_predictor(source)
        values, rows = holdout_values(ws, source, contract)
        edge = EdgeModel.load(ws.artifacts.get_bytes(exported["edge_sha256"]),
                              trusted_keys=[key])
        scorer = Scorer.from_bundle(source)
    finally:
        ws.close()
    one = {k: v[:1] for k, v in values.items()}
    record = {k: (v[0].item() if hasattr(v[0], "item") else v[0]) for k, v in values.items()}
    return {
        "usecase": "failure", "parity": exported["parity"], "rows": rows,
        "registered_bytes": exported["source_bytes"], "edge_bytes": exported["edge_bytes"],
        "onnx_bytes": exported["onnx_bytes"], "in_graph": exported["in_graph"],
        "native_us": round(_median_us(lambda: predictor.predict(one), repeats), 1),
        "onnx_us": round(_median_us(lambda: edge.predict(one), repeats), 1),
        "native_records_us": round(_median_us(lambda: scorer.predict([record]), repeats), 1),
        "onnx_records_us": round(_median_us(lambda: edge.predict_records([record]), repeats),
                                 1),
        "repeats": repeats,
    }


def table(row: dict[str, Any]) -> str:
    kib = 1024.0
    lines = [
        "| model | registered bundle | edge bundle | ONNX graph | 1 record, values | "
        "1 record, JSON + contract | parity (holdout) |",
        "|---|---|---|---|---|---|---|",
        f"| {row['estimator']} | {row['registered_bytes'] / kib:.0f} KiB | "
        f"{row['edge_bytes'] / kib:.0f} KiB | {row['onnx_bytes'] / kib:.0f} KiB | "
        f"native {row['native_us']:.0f} µs, ONNX {row['onnx_us']:.0f} µs "
        f"({row['native_us'] / row['onnx_us']:.1f}x) | native {row['native_records_us']:.0f} µs,"
        f" ONNX {row['onnx_records_us']:.0f} µs | max |ΔP| {row['parity']['max_abs_diff']:.2g},"
        f" {row['parity']['decisions_differ']} of {row['parity']['n']} decisions differ |",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()
