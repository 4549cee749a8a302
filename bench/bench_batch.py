"""Batch scoring benchmark: `planta score` (validation on) against plain LightGBM.

Both read the same CSV of AI4I-like rows and write one prediction per row; each run is a fresh
process timed end to end with GNU time (wall seconds, CPU seconds and peak RSS), the two
alternating A B A B so that a drift of the shared machine hits both. CPU seconds (user + system,
all threads) and the load average before each run are kept too: on a shared box with few cores
they tell whether a run was slow because of its own work or because others held the cores.

    python bench/bench_batch.py --rows 1000000 5000000 --reps 3

plain  = pandas.read_csv + lightgbm.Booster.predict on the six honest columns + DataFrame.to_csv
         (the anchors' "plain" mode; a LightGBM model trained with default settings)
planta = `planta score failure IN.csv -o OUT.csv` with the production model of a project trained
         by `planta train --budget 20` on AI4I 2020: every row validated against the contract,
         feature steps applied, status and reason written, the batch recorded. The model runs
         through the in-memory onnxruntime engine when it is exact (planta.services.onnx_engine)
planta-native = the same with PLANTA_ENGINE=native (the boosters' own predict): the engine's gain
planta-lean = `planta score` with the production model of a second project whose use case says
         `--max-latency-ms 5`: training then keeps one refitted model (no ensemble); with --lean
Results: bench/out/batch.jsonl and a markdown table on stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
OUT = HERE / "out"
AI4I = HERE.parent.parent / "shared" / "data" / "ai4i2020" / "ai4i2020.csv"
FEATURES = ["Type", "Air temperature [K]", "Process temperature [K]", "Rotational speed [rpm]",
            "Torque [Nm]", "Tool wear [min]"]
PLAIN = r"""
import sys, pandas as pd, lightgbm as lgb
model = lgb.Booster(model_file=sys.argv[1])
df = pd.read_csv(sys.argv[2])
df["Type"] = df["Type"].map({"L": 0, "M": 1, "H": 2})
p = model.predict(df[FEATURES].to_numpy())
pd.DataFrame({"probability": p}).to_csv(sys.argv[3], index=False)
""".replace("FEATURES", repr(FEATURES))
MODES = ("plain", "planta", "planta-native")
LEAN_MS = "5"


def make_input(rows: int) -> Path:
    """AI4I rows resampled with a little noise: ids, the six readings and RNF (the raw export's
    columns that planta keeps as inputs), without the target."""
    path = OUT / f"batch_{rows}.csv"
    if path.exists():
        return path
    raw = pd.read_csv(AI4I)
    rng = np.random.default_rng(0)
    parts = []
    chunk = 1_000_000
    for start in range(0, rows, chunk):
        n = min(chunk, rows - start)
        sample = raw.iloc[rng.integers(0, len(raw), n)][["UDI", "Product ID", *FEATURES, "RNF"]].copy()
        for col in FEATURES[1:]:
            sample[col] = (sample[col] * rng.normal(1, 0.002, n)).round(1)
        sample["UDI"] = np.arange(start, start + n)
        parts.append(sample)
        sample.to_csv(path, mode="a", header=start == 0, index=False)
    return path


def prepare_models(planta: str) -> tuple[Path, Path]:
    """A plain LightGBM model file and a planta project with a production model."""
    return plain_model(), prepare_project(planta, "project", [])


def plain_model() -> Path:
    """The plain LightGBM model: default settings, the six honest columns."""
    import lightgbm as lgb

    model = OUT / "plain_lgbm.txt"
    raw = pd.read_csv(AI4I)
    x = raw[FEATURES].copy()
    x["Type"] = x["Type"].map({"L": 0, "M": 1, "H": 2})
    lgb.LGBMClassifier(verbose=-1).fit(x.to_numpy(), raw["Machine failure"]).booster_ \
        .save_model(str(model))
    return model


def prepare_project(planta: str, name: str, limits: list[str]) -> Path:
    """A planta project (``OUT/name``) whose production model was trained by `planta train
    --budget 20`; ``limits`` are extra `planta usecase add` flags."""
    project = OUT / name
    if not (project / "planta.toml").exists():
        shutil.rmtree(project, ignore_errors=True)
        env = os.environ | {"PLANTA_USER": "bench"}
        for cmd in (["init", str(project)],
                    ["usecase", "add", "failure", "--target", "Machine failure",
                     "--objective", "recall>=0.5", *limits],
                    ["ingest", "failure", str(AI4I)],
                    ["train", "failure", "--budget", "20"]):
            done = subprocess.run([planta, *cmd], cwd=project if cmd[0] != "init" else OUT,
                                  env=env, capture_output=True)
            if done.returncode not in (0, 3):  # 3: trained, but the gate rejected it
                raise SystemExit(f"planta {' '.join(cmd)} failed: {done.stderr.decode()}")
        promote = [planta, "promote", "failure", "1", "--reason", "bench"]
        if subprocess.run(promote, cwd=project, env=env, capture_output=True).returncode:
            subprocess.run([*promote, "--exception"], cwd=project, env=env, check=True,
                           capture_output=True)
    return project


def timed(cmd: list[str], cwd: Path | None = None) -> tuple[float, float, float]:
    """Wall seconds, CPU seconds (user + system) and peak RSS (MB) of a fresh process."""
    with tempfile.NamedTemporaryFile("r", suffix=".time") as tf:
        subprocess.run(["/usr/bin/time", "-f", "%e %U %S %M", "-o", tf.name, *cmd], cwd=cwd,
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wall, user, system, kb = tf.read().split()[-4:]
    return float(wall), float(user) + float(system), int(kb) / 1024


def machine() -> str:
    """Cores this process may use and the CPU model, for the results table."""
    model = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{len(os.sched_getaffinity(0))} cores, {model}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, nargs="+", default=[1_000_000],
                    help="input sizes; several (1000000 5000000) show memory against file size")
    ap.add_argument("--reps", type=int, default=3, help="A/B pairs per size (medians reported)")
    ap.add_argument("--lean", action="store_true",
                    help=f"also score with a use case limited to {LEAN_MS} ms per prediction")
    args = ap.parse_args()
    OUT.mkdir(exist_ok=True)
    planta = shutil.which("planta") or str(Path(sys.executable).with_name("planta"))
    model, project = prepare_models(planta)
    modes = MODES + (("planta-lean",) if args.lean else ())
    projects = {"planta": project, "planta-native": project}
    if args.lean:
        projects["planta-lean"] = prepare_project(planta, "project_lean",
                                                  ["--max-latency-ms", LEAN_MS])
    results = []
    for rows in args.rows:
        src = make_input(rows)
        for rep in range(args.reps):
            for mode in modes:
                dst = OUT / f"pred_{mode}.csv"
                dst.unlink(missing_ok=True)
                if mode == "plain":
                    cmd = [sys.executable, "-c", PLAIN, str(model), str(src), str(dst)]
                else:
                    cmd = [planta, "score", "failure", str(src), "-o", str(dst), "--json"]
                load = os.getloadavg()[0]
                os.environ["PLANTA_ENGINE"] = "native" if mode == "planta-native" else "auto"
                wall, cpu, rss = timed(cmd, cwd=projects.get(mode))
                with dst.open("rb") as fh:
                    lines = sum(block.count(b"\n") for block in iter(lambda: fh.read(1 << 20), b""))
                assert lines - 1 == rows, f"{mode} wrote {lines - 1} rows, expected {rows}"
                row = {"bench": "batch", "mode": mode, "rows": rows, "rep": rep,
                       "wall_s": wall, "rows_per_s": round(rows / wall),
                       "cpu_s": round(cpu, 2), "peak_rss_mb": round(rss),
                       "load_before": round(load, 2), "machine": machine()}
                results.append(row)
                print(json.dumps(row), flush=True)
                with (OUT / "batch.jsonl").open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
    print(f"\n{machine()}; load average before the runs: "
          f"{min(r['load_before'] for r in results):.1f}–{max(r['load_before'] for r in results):.1f}")
    print("\n| rows | mode | rows/s (median) | wall s | CPU s | peak RSS MB | planta / plain |")
    print("|---|---|---|---|---|---|---|")
    for rows in args.rows:
        med = {}
        for mode in modes:
            sel = [r for r in results if r["rows"] == rows and r["mode"] == mode]
            med[mode] = tuple(float(np.median([r[k] for r in sel]))
                              for k in ("rows_per_s", "wall_s", "cpu_s", "peak_rss_mb"))
        for mode in modes:
            ratio = f"{med[mode][0] / med['plain'][0]:.2f}×" if mode != "plain" else ""
            print(f"| {rows:,} | {mode} | {med[mode][0]:,.0f} | {med[mode][1]:.1f} | "
                  f"{med[mode][2]:.1f} | {med[mode][3]:.0f} | {ratio} |")


if __name__ == "__main__":
    main()
