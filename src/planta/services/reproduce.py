"""Reproduce a registered version from its lineage and say whether the metrics match.

The recorded lineage names the dataset version (checked by content hash), the seed, the budget
and the number of trials. Retraining with the same data, seed and trial count repeats the same
search; what can still differ is a step cut short by the clock on a busier machine, so the
report compares every held-out metric with a tolerance and names the packages that changed.
Nothing new is registered; the check itself is audited.
"""

from __future__ import annotations

import json
from typing import Any

from planta.errors import IntegrityError
from planta.services.ingest import parquet_to_frame
from planta.services.train import train
from planta.services.versions import load_bundle, metrics_dict, package_versions
from planta.services.workspace import Workspace
from planta_edge.contract import Contract


def reproduce(ws: Workspace, usecase_name: str, version: int, *, tolerance: float = 0.02
              ) -> dict[str, Any]:
    """Retrain version ``version`` from its lineage; compare held-out metrics."""
    usecase = ws.project.usecase(usecase_name)
    bundle = load_bundle(ws, usecase_name, version)
    lineage = bundle.json("lineage.json")
    recorded = bundle.json("metrics.json")
    dv = ws.registry.get_dataset_version(usecase_name, int(lineage["dataset_version"]))
    if dv.content_hash != lineage["dataset_content_sha256"]:
        raise IntegrityError(f"Dataset version {dv.version} of {usecase_name!r} no longer has the "
                             "content the model was trained on.",
                             hint="Restore the project from a backup.")
    contract_doc = bundle.json("contract.json")
    contract = Contract.from_dict({k: v for k, v in contract_doc.items()
                                   if k in ("fields", "target", "version")})
    frame = parquet_to_frame(ws.artifacts.get_bytes(dv.snapshot_digest))
    n_trials = int(recorded.get("cv", {}).get("n_trials") or 0) or None
    outcome = train(usecase, frame, contract, budget_s=float(lineage["budget_s"]),
                    seed=int(lineage["seed"]), max_trials=n_trials)
    again = metrics_dict(outcome)
    before = recorded.get("holdout", {})
    compared: dict[str, tuple[float, float]] = {}
    for name, est in before.items():
        a, b = est.get("value"), again.get(name, {}).get("value")
        if a is not None and b is not None:
            compared[name] = (float(a), float(b))
    worst = max((abs(b - a) for a, b in compared.values()), default=0.0)
    same = worst <= tolerance
    now = package_versions()
    changed = {k: (v, now.get(k)) for k, v in lineage.get("packages", {}).items()
               if now.get(k) != v}
    explanation = ("" if same else
                   f"the largest difference is {worst:.4f}, over the tolerance {tolerance}. "
                   + (f"Packages changed since training: {json.dumps(changed)}. " if changed
                      else "The packages are the same; a search step cut short by the clock on "
                           "a busier machine can explain it: try a larger --tolerance, or "
                           "compare on a quiet machine."))
    report = {"usecase": usecase_name, "version": version, "same": same,
              "tolerance": tolerance, "largest_difference": worst, "metrics": compared,
              "estimator": {"recorded": lineage.get("estimator"), "reproduced": outcome.estimator},
              "packages_changed": changed, "explanation": explanation}
    ws.audit.append("reproduce", f"usecase/{usecase_name}/model/{version}", ws.actor,
                    {"same": same, "largest_difference": round(worst, 6)})
    return report


__all__ = ["reproduce"]
