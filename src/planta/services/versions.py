"""Model versions: train and register a bundle, load it back, move it through the lifecycle.

Training itself is :mod:`planta.services.train`; this module packs its outcome with the
contract, the reference profile and the lineage into one bundle, stores it content-addressed,
registers it (candidate or rejected, by the objective gate) and writes the audit event.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any

import numpy as np

import planta
from planta.core.bundle import write_bundle
from planta.core.metrics import CONSTRAINTS, check_constraints
from planta.core.models import Predictor
from planta.errors import NotFoundError, keyed
from planta.services.ingest import load_contract, parquet_to_frame
from planta.services.train import TrainEvent, TrainOutcome, train
from planta.services.workspace import Workspace
from planta.store.keys import KeyRing
from planta_edge.bundle import Bundle, canonical_json, read_bundle
from planta_edge.contract import Contract

# Rule codes a caller can meet at inference (see planta_edge.contract).
ERROR_MODES = ("missing_field", "extra_field", "null", "type", "not_finite", "below_physical",
               "above_physical", "below_min", "above_max", "unknown_category", "not_integer")
_PACKAGES = ("numpy", "pandas", "pyarrow", "scikit-learn", "scipy", "lightgbm", "xgboost-cpu",
             "xgboost", "optuna", "planta-edge")


def package_versions() -> dict[str, str]:
    """Versions of the libraries that shape a model, for the lineage."""
    out = {"python": platform.python_version(), "planta": planta.__version__}
    for name in _PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def metrics_dict(outcome: TrainOutcome) -> dict[str, Any]:
    """Holdout metrics as plain dicts: {"recall": {"value", "lower", "upper"}, ...}."""
    return {name: (est.to_dict() if hasattr(est, "to_dict") else est)
            for name, est in outcome.metrics.items()}


def output_schema(outcome: TrainOutcome, task: str) -> dict[str, Any]:
    """What a prediction looks like, for the inference contract."""
    out: dict[str, Any] = {"task": task, "classes": list(outcome.classes)}
    if task == "binary":
        out.update(prediction="class label", probability=f"P({outcome.classes[-1]})",
                   threshold=outcome.threshold)
    elif task == "multiclass":
        out.update(prediction="class label", probability="one probability per class")
    else:
        out.update(prediction="number", score="the predicted value")
    return out


def measure_latency_ms(predictor: Predictor, contract: Contract, frame_row: dict[str, Any],
                       repeats: int = 200) -> dict[str, float]:
    """Single-record predict latency (model only, in-process): median and p99 in ms."""
    values = {f.name: np.asarray([frame_row.get(f.name)],
                                 dtype=float if f.kind in ("number", "integer", "boolean")
                                 else object)
              for f in contract.inputs}
    for _ in range(3):
        predictor.predict(values)
    timings: list[float] = []
    deadline = time.perf_counter() + 1.0  # never let the measurement cost more than a second
    while len(timings) < repeats and (len(timings) < 5 or time.perf_counter() < deadline):
        start = time.perf_counter()
        predictor.predict(values)
        timings.append((time.perf_counter() - start) * 1000)
    timings.sort()
    return {"median_ms": round(statistics.median(timings), 4),
            "p99_ms": round(timings[max(0, int(len(timings) * 0.99) - 1)], 4),
            "samples": len(timings)}


@dataclass(frozen=True)
class TrainResult:
    """A trained and registered version."""

    usecase: str
    version: int
    state: str
    outcome: TrainOutcome
    bundle_digest: str
    bundle_size: int
    dataset_version: int

    def to_dict(self) -> dict[str, Any]:
        return {"usecase": self.usecase, "version": self.version, "state": self.state,
                "dataset_version": self.dataset_version, "bundle_sha256": self.bundle_digest,
                "bundle_bytes": self.bundle_size, "estimator": self.outcome.estimator,
                "metrics": metrics_dict(self.outcome), "threshold": self.outcome.threshold,
                "gate": self.outcome.gate.to_dict(), "trials": len(self.outcome.trials),
                "duration_s": round(self.outcome.duration_s, 2)}


def train_version(ws: Workspace, usecase_name: str, *, budget_s: float, seed: int = 0,
                  dataset_version: int | None = None,
                  progress: Callable[[TrainEvent], None] | None = None,
                  note: str | None = None) -> TrainResult:
    """Train on a dataset version (the latest by default), bundle, register and audit."""
    usecase = ws.project.usecase(usecase_name)
    dv = (ws.registry.get_dataset_version(usecase_name, dataset_version)
          if dataset_version is not None else ws.registry.latest_dataset_version(usecase_name))
    if dv is None:
        raise keyed(NotFoundError, "err.no_data", usecase=usecase_name)
    contract = load_contract(ws, usecase_name)
    if contract is None:
        contract = Contract.from_dict(_json(ws.artifacts.get_bytes(dv.contract_digest)))
    frame = parquet_to_frame(ws.artifacts.get_bytes(dv.snapshot_digest))
    outcome = train(usecase, frame, contract, budget_s=budget_s, seed=seed, progress=progress)
    predictor = Predictor.from_members(outcome.members)
    latency = measure_latency_ms(predictor, contract, frame.iloc[0].to_dict())
    next_version = ws.registry.next_model_version(usecase_name)
    lineage = {
        "usecase": usecase.to_dict() | {"name": usecase_name},
        "dataset_version": dv.version, "dataset_content_sha256": dv.content_hash,
        "dataset_source": dv.source_name, "dataset_source_sha256": dv.source_hash,
        "seed": seed, "budget_s": budget_s, "estimator": outcome.estimator,
        "params": outcome.params, "feature_steps": [s.to_dict() for s in outcome.feature_steps],
        "packages": package_versions(), "trained_by": ws.actor, "note": note,
    }
    contract_doc = contract.to_dict() | {
        "output": output_schema(outcome, usecase.task.value), "latency": latency, "error_modes": list(ERROR_MODES)}
    members = dict(outcome.members)
    members["contract.json"] = canonical_json(contract_doc)
    members["profile.json"] = ws.artifacts.get_bytes(dv.profile_digest)
    members["lineage.json"] = canonical_json(lineage)
    # Signed at registration when the hub has a signing key (`planta keys create`), so the
    # bundle can be checked wherever it travels; edge exports are always signed.
    signer = KeyRing(ws.project.settings.resolved_signing_keys).signer()

    def bundle_bytes() -> bytes:
        return write_bundle(members, usecase=usecase_name, version=next_version,
                            created_by=ws.actor, planta_version=planta.__version__,
                            audit_head=ws.audit.head(), signer=signer)

    data = bundle_bytes()
    limits = {key: getattr(usecase, key) for key in CONSTRAINTS}
    if any(v is not None for v in limits.values()):
        # The use case's constraints join the objective gate, in the bundle's own record too.
        gate = check_constraints(outcome.gate, {"latency_ms": latency["p99_ms"],
                                                "bundle_mb": len(data) / 1e6}, limits)
        metrics_doc = _json(members["metrics.json"])
        metrics_doc["gate"] = gate.to_dict()
        members["metrics.json"] = canonical_json(metrics_doc)
        outcome = replace(outcome, gate=gate)
        data = bundle_bytes()
    digest = ws.artifacts.put_bytes(data)
    mv = ws.registry.register_model(
        usecase=usecase_name, dataset_version=dv.version, bundle_digest=digest,
        bundle_size=len(data), metrics=metrics_dict(outcome), gate=outcome.gate.to_dict(),
        trained_by=ws.actor, summary=_summary(outcome, latency),
        trials=[t.to_dict() for t in outcome.trials], version=next_version)
    ws.audit.append("train", f"usecase/{usecase_name}/model/{mv.version}", ws.actor,
                    {"state": mv.state, "bundle_sha256": digest, "dataset_version": dv.version,
                     "gate_passed": outcome.gate.passed, "estimator": outcome.estimator})
    return TrainResult(usecase=usecase_name, version=mv.version, state=mv.state, outcome=outcome,
                       bundle_digest=digest, bundle_size=len(data), dataset_version=dv.version)


def _summary(outcome: TrainOutcome, latency: dict[str, float]) -> dict[str, Any]:
    return {"estimator": outcome.estimator, "threshold": outcome.threshold,
            "n_train": outcome.n_train, "n_holdout": outcome.n_holdout,
            "duration_s": round(outcome.duration_s, 2), "latency": latency,
            "importances": dict(list(outcome.importances.items())[:10]),
            "feature_steps": [s.to_dict() for s in outcome.feature_steps], "cv": outcome.cv}


def _json(data: bytes) -> Any:
    import json

    return json.loads(data)


def load_bundle(ws: Workspace, usecase: str, version: str | int = "production") -> Bundle:
    """The verified bundle of a version or alias (hash checked against the registry)."""
    mv = ws.registry.resolve(usecase, version)
    return read_bundle(ws.artifacts.get_bytes(mv.bundle_digest), expected_digest=mv.bundle_digest)


def load_predictor(bundle: Bundle) -> tuple[Predictor, Contract]:
    """The predictor and inference contract carried by a bundle."""
    contract = Contract.from_dict({k: v for k, v in bundle.json("contract.json").items()
                                   if k in ("fields", "target", "version")})
    return Predictor.from_members(bundle.members), contract


__all__ = ["ERROR_MODES", "TrainResult", "load_bundle", "load_predictor", "package_versions",
           "train_version"]
