"""Training quality: planta's ``train`` against LightGBM defaults and FLAML, same splits.

    python bench/bench_train.py                       # AI4I + SECOM, seeds 0..4, 60 s budgets
    python bench/bench_train.py --datasets ai4i --seeds 0 --budget 20
    python bench/bench_train.py --table bench/out/train.jsonl   # only print the table

Each dataset is split five times (stratified 80/20, ``random_state`` = seed). On the 80 % every
engine trains; on the 20 % we score ROC-AUC and PR-AUC (average precision):

* ``planta``: ``planta.services.train.train`` with ``--budget`` seconds (it carves its own
  holdout out of the 80 % for the gate, so its model sees 64 % of the rows);
* ``lgbm``: ``lightgbm.LGBMClassifier()`` with its defaults (``random_state`` = seed);
* ``flaml``: FLAML ``AutoML`` at the same budget, metric ``roc_auc`` as the anchors use;
* ``planta-lean`` (only when named in ``--engines``): ``planta`` for a use case with a latency
  limit, which keeps one refitted model instead of an ensemble.

AI4I features: Type and the five sensor columns, plus RNF (the leakage guard keeps it: in 18 of
its 19 rows the machine did not fail); UDI, Product ID and TWF, HDF, PWF, OSF are dropped
(``--no-rnf`` drops RNF too). SECOM: the 590 anonymous signals (no units).
One JSON line per run goes to ``--out``; a markdown table is printed at the end.
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("PLANTA_DATA", ROOT.parent / "shared" / "data"))
# The latency limit of the planta-lean engine (ms): any limit steers training to one model.
LEAN_MS = 5.0


def load_ai4i(keep_rnf: bool) -> tuple[pd.DataFrame, Any, str, list[str]]:
    from planta_edge.contract import Contract, Field

    raw = pd.read_csv(DATA / "ai4i2020" / "ai4i2020.csv")
    frame = pd.DataFrame({
        "type": raw["Type"].astype(str).astype(object),
        "air_temperature_k": raw["Air temperature [K]"].astype(float),
        "process_temperature_k": raw["Process temperature [K]"].astype(float),
        "rotational_speed_rpm": raw["Rotational speed [rpm]"].astype(float),
        "torque_nm": raw["Torque [Nm]"].astype(float),
        "tool_wear_min": raw["Tool wear [min]"].astype(float),
    })
    fields = [Field("type", "category", label="Type", categories=("L", "M", "H")),
              Field("air_temperature_k", "number", label="Air temperature [K]", unit="K"),
              Field("process_temperature_k", "number", label="Process temperature [K]",
                    unit="K"),
              Field("rotational_speed_rpm", "number", label="Rotational speed [rpm]",
                    unit="rpm"),
              Field("torque_nm", "number", label="Torque [Nm]", unit="Nm"),
              Field("tool_wear_min", "number", label="Tool wear [min]", unit="min")]
    if keep_rnf:
        frame["rnf"] = raw["RNF"].astype(float)
        fields.append(Field("rnf", "boolean", label="RNF"))
    frame["machine_failure"] = raw["Machine failure"].astype(int)
    fields.append(Field("machine_failure", "integer", label="Machine failure", role="target"))
    contract = Contract(fields=tuple(fields), target="machine_failure")
    return frame, contract, "machine_failure", [f.name for f in fields[:-1]]


def load_secom() -> tuple[pd.DataFrame, Any, str, list[str]]:
    from planta_edge.contract import Contract, Field

    with gzip.open(DATA / "secom" / "secom.data.gz", "rt") as fh:
        X = np.loadtxt(fh)
    labels = [line.split()[0] for line in
              (DATA / "secom" / "secom_labels.data").read_text().splitlines() if line.strip()]
    names = [f"f{i:03d}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=names)
    frame["pass_fail"] = pd.Series(labels, dtype=object)
    fields = tuple(Field(n, "number", nullable=True) for n in names) + (
        Field("pass_fail", "category", role="target"),)
    return frame, Contract(fields=fields, target="pass_fail"), "pass_fail", names


def positive_of(dataset: str, y: pd.Series) -> np.ndarray:
    return (y.astype(str) == "1").to_numpy().astype(int)


def numeric(frame: pd.DataFrame, features: list[str]) -> pd.DataFrame:
    """The anchors' encoding: Type as L=0, M=1, H=2; everything float64."""
    out = frame[features].copy()
    if "type" in out:
        out["type"] = out["type"].map({"L": 0, "M": 1, "H": 2})
    return out.astype("float64")


def run_one(engine: str, dataset: str, frame: pd.DataFrame, contract: Any, target: str,
            features: list[str], seed: int, budget: float) -> dict[str, Any]:
    from sklearn.metrics import average_precision_score, roc_auc_score
    from sklearn.model_selection import train_test_split

    y = positive_of(dataset, frame[target])
    tr, te = train_test_split(np.arange(len(frame)), test_size=0.2, stratify=y,
                              random_state=seed)
    info: dict[str, Any] = {}
    started = time.perf_counter()
    if engine in ("planta", "planta-lean"):
        from planta.core.spec import Task, UseCase, parse_objective
        from planta.services.train import train

        # planta-lean: the use case limits prediction time, so training keeps one refitted
        # model (no ensemble): the model `bench_batch.py --lean` scores.
        usecase = UseCase(dataset, Task.BINARY, target, parse_objective("", Task.BINARY),
                          max_latency_ms=LEAN_MS if engine == "planta-lean" else None)
        outcome = train(usecase, frame.iloc[tr].reset_index(drop=True), contract,
                        budget_s=budget, seed=seed)
        values = {c: frame.iloc[te][c].to_numpy() for c in features}
        pred = outcome.predictor().predict(values)
        assert pred.probability is not None
        p = pred.probability
        info = {"estimator": outcome.estimator,
                "steps": [s.describe() for s in outcome.feature_steps],
                "trials": len(outcome.trials), "train_s": round(outcome.duration_s, 2),
                "gate": outcome.gate.passed, "cv": outcome.cv["score"]}
    elif engine == "lgbm":
        import lightgbm as lgb

        model = lgb.LGBMClassifier(random_state=seed, verbose=-1)
        model.fit(numeric(frame.iloc[tr], features), y[tr])
        p = model.predict_proba(numeric(frame.iloc[te], features))[:, 1]
    else:
        from flaml import AutoML

        automl = AutoML()
        automl.fit(numeric(frame.iloc[tr], features), y[tr], task="classification",
                   metric="roc_auc", time_budget=budget, seed=seed, verbose=0)
        p = automl.predict_proba(numeric(frame.iloc[te], features))[:, 1]
        info = {"estimator": automl.best_estimator}
    elapsed = time.perf_counter() - started
    return {"dataset": dataset, "engine": engine, "seed": seed, "budget_s": budget,
            "roc_auc": round(float(roc_auc_score(y[te], p)), 4),
            "pr_auc": round(float(average_precision_score(y[te], p)), 4),
            "fit_predict_s": round(elapsed, 2), "test_rows": len(te),
            "test_positives": int(y[te].sum()), **info}


def table(rows: list[dict[str, Any]]) -> str:
    out = []
    for dataset in sorted({r["dataset"] for r in rows}):
        sub = [r for r in rows if r["dataset"] == dataset]
        engines = [e for e in ("planta", "planta-lean", "lgbm", "flaml")
                   if any(r["engine"] == e for r in sub)]
        seeds = sorted({r["seed"] for r in sub})
        out.append(f"\n**{dataset}** (holdout ROC-AUC / PR-AUC)\n")
        out.append("| split | " + " | ".join(engines) + " |")
        out.append("|---|" + "---|" * len(engines))
        means: dict[str, list[tuple[float, float]]] = {e: [] for e in engines}
        for seed in seeds:
            cells = []
            for e in engines:
                hit = [r for r in sub if r["engine"] == e and r["seed"] == seed]
                if hit:
                    r = hit[-1]
                    means[e].append((r["roc_auc"], r["pr_auc"]))
                    cells.append(f"{r['roc_auc']:.4f} / {r['pr_auc']:.4f}")
                else:
                    cells.append("-")
            out.append(f"| {seed} | " + " | ".join(cells) + " |")
        cells = []
        for e in engines:
            if means[e]:
                arr = np.asarray(means[e])
                cells.append(f"**{arr[:, 0].mean():.4f} / {arr[:, 1].mean():.4f}**")
            else:
                cells.append("-")
        out.append("| mean | " + " | ".join(cells) + " |")
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--budget", type=float, default=60.0)
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--datasets", default="ai4i,secom")
    ap.add_argument("--engines", default="planta,lgbm,flaml")
    ap.add_argument("--no-rnf", action="store_true", help="AI4I without the RNF column")
    ap.add_argument("--out", default=str(ROOT / "bench" / "out" / "train.jsonl"))
    ap.add_argument("--table", default=None, help="print the table of this JSONL file and exit")
    a = ap.parse_args()
    if a.table:
        rows = [json.loads(line) for line in Path(a.table).read_text().splitlines() if line]
        print(table(rows))
        return
    out = Path(a.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for dataset in a.datasets.split(","):
        frame, contract, target, features = (load_ai4i(not a.no_rnf) if dataset == "ai4i"
                                             else load_secom())
        for seed in (int(s) for s in a.seeds.split(",")):
            for engine in a.engines.split(","):
                row = run_one(engine, dataset, frame, contract, target, features, seed,
                              a.budget)
                row["ts"] = time.strftime("%Y-%m-%dT%H:%M:%S")
                print(json.dumps(row), flush=True)
                with out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                rows.append(row)
    print(table(rows))


if __name__ == "__main__":
    sys.exit(main())
