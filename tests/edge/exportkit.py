"""Small models and registered-style bundles for the export and edge-model tests (no training
budget, no project): a few seconds of LightGBM / XGBoost / linear fitting on synthetic
machine readings with a category, missing values and the three kinds of feature step."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from planta.core.bundle import write_bundle
from planta.core.models import (
    Calibrator,
    Model,
    Predictor,
    fit_lightgbm,
    fit_linear,
    fit_platt,
    fit_temperature,
    fit_xgboost,
)
from planta.core.signing import Signer
from planta.core.spec import Task
from planta.services.export import EdgeBuild, build_edge_bundle
from planta_edge.bundle import Bundle, canonical_json, read_bundle
from planta_edge.contract import Contract, Field
from planta_edge.model_input import ColumnEncoding, Encoding, FeatureStep, build_matrix

ENCODING = Encoding(
    columns=(ColumnEncoding("kind", "category", ("L", "M", "H")), ColumnEncoding("air_k"),
             ColumnEncoding("process_k"), ColumnEncoding("torque_nm"),
             ColumnEncoding("speed_rpm")),
    steps=(FeatureStep("difference", "process_k", "air_k", "process_k_minus_air_k"),
           FeatureStep("product", "torque_nm", "speed_rpm", "torque_nm_x_speed_rpm"),
           FeatureStep("ratio", "torque_nm", "speed_rpm", "torque_nm_per_speed_rpm")))
CONTRACT = Contract(fields=(
    Field("kind", "category", categories=("L", "M", "H")),
    Field("air_k", "number", nullable=True, physical_min=0.0, unit="K"),
    Field("process_k", "number", physical_min=0.0, unit="K"),
    Field("torque_nm", "number", minimum=0.0, maximum=100.0, unit="Nm"),
    Field("speed_rpm", "number", minimum=0.0, maximum=3000.0, unit="rpm"),
))
KINDS = ["category"] + ["number"] * 7
N_CODES = [3] + [0] * 7


def readings(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Machine readings as validated contract values (some air temperatures missing, some
    speeds zero so that a ratio step meets a division by zero)."""
    rng = np.random.default_rng(seed)
    air = rng.normal(300.0, 2.0, n)
    air[rng.random(n) < 0.05] = np.nan
    speed = np.clip(rng.normal(1500.0, 200.0, n), 0.0, 3000.0)
    speed[rng.random(n) < 0.03] = 0.0
    return {"kind": rng.choice(np.array(["L", "M", "H"], dtype=object), n), "air_k": air,
            "process_k": rng.normal(310.0, 1.5, n),
            "torque_nm": np.clip(rng.normal(40.0, 10.0, n), 0.0, 100.0), "speed_rpm": speed}


def targets(values: dict[str, np.ndarray], task: Task, seed: int = 0) -> np.ndarray:
    X = build_matrix(ENCODING, values)
    rng = np.random.default_rng(seed + 1)
    signal = (np.nan_to_num(X[:, 6]) / 1e4 + np.nan_to_num(X[:, 5]) / 3.0 + (X[:, 0] == 2)
              + rng.normal(0.0, 1.0, X.shape[0]))
    if task == Task.BINARY:
        return (signal > 7.5).astype(int)
    if task == Task.MULTICLASS:
        return np.digitize(signal, np.quantile(signal, [0.4, 0.8])).astype(int)
    return signal


def members(kind: str, task: Task, X: np.ndarray, y: np.ndarray) -> list[tuple[float, Model]]:
    k = {Task.BINARY: 2, Task.MULTICLASS: 3, Task.REGRESSION: 0}[task]
    fit = {
        "lightgbm": lambda: fit_lightgbm(X, y, task, k, {"num_leaves": 15, "max_bin": 255},
                                         rounds=25, categorical=[0]).model,
        "xgboost": lambda: fit_xgboost(X, y, task, k, {"max_depth": 4}, rounds=25).model,
        "linear": lambda: fit_linear(X, y, task, KINDS, N_CODES, {}).model,
    }
    if kind == "ensemble":
        return [(1.0, fit["lightgbm"]()), (1.0, fit["xgboost"]()), (0.5, fit["linear"]())]
    return [(1.0, fit[kind]())]


def predictor(kind: str, task: Task, *, n: int = 1200, calibrator: str | None = None,
              threshold: float = 0.3) -> tuple[Predictor, dict[str, np.ndarray]]:
    """A fitted predictor of ``kind`` (lightgbm, xgboost, linear, ensemble) and its data."""
    values = readings(n)
    X = build_matrix(ENCODING, values)
    y = targets(values, task)
    fitted = members(kind, task, X, y)
    classes = {Task.BINARY: ["ok", "failure"], Task.MULTICLASS: ["low", "mid", "high"],
               Task.REGRESSION: []}[task]
    plain = Predictor(ENCODING, task, classes, fitted, None, threshold)
    cal: Calibrator | None = None
    if task == Task.BINARY:
        from planta.core.models import fit_isotonic

        margin = plain.margin_matrix(X)
        cal = fit_isotonic(margin, y) if calibrator == "isotonic" else fit_platt(margin, y)
    elif task == Task.MULTICLASS:
        cal = fit_temperature(plain.margin_matrix(X), y)
    return Predictor(ENCODING, task, classes, fitted, cal, threshold), values


def source_bundle(pred: Predictor, *, usecase: str = "failure", version: int = 1) -> Bundle:
    """A registered-style bundle of ``pred`` (members as training writes them)."""
    members_ = dict(pred.to_members())
    members_["metrics.json"] = canonical_json({"threshold": pred.threshold})
    members_["contract.json"] = canonical_json(CONTRACT.to_dict())
    members_["lineage.json"] = canonical_json({"dataset_version": 1, "seed": 0})
    return read_bundle(write_bundle(members_, usecase=usecase, version=version))


def edge_bundle(pred: Predictor, signer: Signer, **kwargs: Any) -> EdgeBuild:
    source = source_bundle(pred)
    return build_edge_bundle(source, source.digest, signer=signer, **kwargs)


def records(values: dict[str, np.ndarray], rows: Sequence[int]) -> list[dict[str, Any]]:
    """Rows of contract values as JSON-like records (None where missing)."""
    out = []
    for i in rows:
        rec: dict[str, Any] = {}
        for name, col in values.items():
            v = col[i]
            rec[name] = None if isinstance(v, float) and np.isnan(v) else (
                v.item() if hasattr(v, "item") else v)
        out.append(rec)
    return out
