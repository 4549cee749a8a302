"""The model page in depth: confusion matrix or residuals, the threshold slider, and the
comparison of a candidate with production.

Everything is read from what training recorded: the registry's holdout metrics with their
intervals, and the bundle's ``metrics.json`` (its ``holdout_detail``, see
:mod:`planta.core.holdout`; its threshold, holdout description and seed). Nothing is re-scored
here, so the page costs one bundle read per version, cached by the bundle's digest.

A bundle trained before ``holdout_detail`` existed still gets a binary confusion matrix when
the registry's numbers pin it down exactly (recall, specificity and accuracy on a known holdout
size give whole counts); otherwise the page says the counts were not kept.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any

from planta.i18n import number
from planta.ui.view import View
from planta.ui.words import SHOWN

# Parsed metrics.json by bundle digest (content-addressed, so never stale).
_CACHE: OrderedDict[str, dict[str, Any]] = OrderedDict()
_CACHE_SIZE = 64
_LOCK = threading.Lock()
# The slider's table without JavaScript: every this-many hundredths, plus the chosen threshold.
TABLE_STEP = 0.05
# Metrics where lower is better (errors and false alarms); every other shown metric: higher.
LOWER_IS_BETTER = frozenset({"false_alarm_rate", "false_alarms_per_day", "mae", "rmse", "mape",
                             "expected_cost"})
# Shown as a percentage ("84 %"); the rest as numbers.
AS_PERCENT = frozenset({"recall", "precision", "false_alarm_rate", "accuracy",
                        "balanced_accuracy", "specificity", "f1", "f1_macro", "mape", "r2"})


def bundle_metrics(view: View, mv: Any) -> dict[str, Any]:
    """The version's ``metrics.json`` (verified bundle), or {} when it has none."""
    digest = mv.bundle_digest
    with _LOCK:
        if digest in _CACHE:
            _CACHE.move_to_end(digest)
            return _CACHE[digest]
    from planta_edge.bundle import read_bundle

    bundle = read_bundle(view.rt.ws.artifacts.get_bytes(digest), expected_digest=digest)
    doc = json.loads(bundle.members["metrics.json"]) if "metrics.json" in bundle.members else {}
    doc = doc if isinstance(doc, dict) else {}
    with _LOCK:
        _CACHE[digest] = doc
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return doc


def _value(metrics: Mapping[str, Any], name: str) -> float | None:
    doc = metrics.get(name)
    if isinstance(doc, Mapping):
        doc = doc.get("value")
    return float(doc) if isinstance(doc, (int, float)) else None


def _detail(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    found = doc.get("holdout_detail")
    return found if isinstance(found, Mapping) else {}


def derive_binary_confusion(metrics: Mapping[str, Any], n: Any) -> dict[str, int] | None:
    """tp, fp, fn, tn from recall, specificity and accuracy on ``n`` rows, when exact.

    accuracy·n = recall·P + specificity·(n − P) gives P; the counts must come out whole
    (the registry keeps six digits) and agree with precision, else None.

    >>> derive_binary_confusion({"recall": 0.75, "specificity": 0.9, "accuracy": 0.87,
    ...                          "precision": 0.652174}, 100)
    {'tp': 15, 'fp': 8, 'fn': 5, 'tn': 72}
    """
    recall, spec, acc = (_value(metrics, k) for k in ("recall", "specificity", "accuracy"))
    if spec is None:
        far = _value(metrics, "false_alarm_rate")
        spec = None if far is None else 1.0 - far
    if not isinstance(n, int) or n <= 0 or None in (recall, spec, acc):
        return None
    assert recall is not None and spec is not None and acc is not None
    if abs(recall - spec) < 1e-6:
        return None
    positives = n * (acc - spec) / (recall - spec)
    tp, tn = recall * positives, spec * (n - positives)
    counts = [positives, tp, tn]
    if any(abs(c - round(c)) > 0.01 for c in counts):  # six digits did not pin them down
        return None
    p, tp_i, tn_i = (round(c) for c in counts)
    if not 0 <= tp_i <= p <= n or not 0 <= tn_i <= n - p:
        return None
    out = {"tp": tp_i, "fp": n - p - tn_i, "fn": p - tp_i, "tn": tn_i}
    precision = _value(metrics, "precision")
    alarms = out["tp"] + out["fp"]
    if precision is not None and alarms and abs(out["tp"] / alarms - precision) > 1e-3:
        return None
    return out


def confusion(view: View, mv: Any, doc: Mapping[str, Any], task: str,
              classes_shown: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """What the matrix / residual block draws, or None when training kept nothing for it."""
    detail = _detail(doc)
    n = mv.summary.get("n_holdout") or doc.get("n_holdout")
    if task == "binary":
        counts = detail.get("confusion") or derive_binary_confusion(mv.metrics, n)
        if not counts:
            return None
        total = sum(int(counts[k]) for k in ("tp", "fp", "fn", "tn"))
        classes = [str(c) for c in doc.get("classes") or ()]
        return {"kind": "binary", **{k: int(counts[k]) for k in ("tp", "fp", "fn", "tn")},
                "total": total, "derived": "confusion" not in detail,
                "negative": classes[0] if len(classes) == 2 else None,
                "positive": classes[1] if len(classes) == 2 else None}
    if task == "multiclass":
        matrix = detail.get("confusion")
        if not matrix:
            return None
        classes = [str(c) for c in detail.get("classes") or doc.get("classes") or ()]
        rows = [{"label": classes[i] if i < len(classes) else str(i), "cells": row,
                 "total": sum(row), "right": row[i] if i < len(row) else 0}
                for i, row in enumerate(matrix)]
        return {"kind": "multiclass", "labels": [r["label"] for r in rows], "rows": rows,
                "total": sum(r["total"] for r in rows)}
    residuals = detail.get("residuals")
    if not isinstance(residuals, Mapping) or not residuals.get("n"):
        return None
    return {"kind": "regression", **residuals}


def slider(doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The threshold table: per threshold, out of 100 real cases caught and missed, false
    alarms out of 1,000 normal parts, and real cases out of 100 alarms."""
    detail = _detail(doc)
    curve = detail.get("curve")
    positives, negatives = detail.get("positives"), detail.get("negatives")
    if not isinstance(curve, Mapping) or not positives or not negatives:
        return None
    chosen = detail.get("threshold")
    rows = []
    for t, tp, fp in zip(curve["threshold"], curve["tp"], curve["fp"], strict=True):
        caught = round(100 * tp / positives)
        alarms = tp + fp
        rows.append({"t": round(float(t), 4), "caught": caught, "missed": 100 - caught,
                     "fa": round(1000 * fp / negatives),
                     "real": round(100 * tp / alarms) if alarms else None,
                     "chosen": chosen is not None and abs(float(t) - float(chosen)) < 1e-9})
    start = next((i for i, r in enumerate(rows) if r["chosen"]), len(rows) // 2)
    table = [r for r in rows
             if r["chosen"] or abs(r["t"] / TABLE_STEP - round(r["t"] / TABLE_STEP)) < 1e-9]
    return {"rows": rows, "table": table, "start": start, "chosen": chosen,
            "positives": positives, "negatives": negatives,
            "json": json.dumps([[r["t"], r["caught"], r["missed"], r["fa"], r["real"]]
                                for r in rows], separators=(",", ":"))}


def _shown(name: str, est: Mapping[str, Any] | None, lang: str = "en") -> dict[str, Any] | None:
    if not isinstance(est, Mapping) or not isinstance(est.get("value"), (int, float)):
        return None
    scale = 100 if name in AS_PERCENT else 1

    def fmt(x: Any) -> str | None:
        if not isinstance(x, (int, float)):
            return None
        v = x * scale
        if scale == 100:  # "0.4 %", not "0 %", for a rare event such as false alarms
            return number(v, lang, 1 if abs(v) < 10 and round(v, 1) != round(v) else 0)
        return number(v, lang)

    return {"value": float(est["value"]), "lower": est.get("lower"), "upper": est.get("upper"),
            "text": fmt(est["value"]), "low": fmt(est.get("lower")),
            "high": fmt(est.get("upper")), "pct": scale == 100}


def comparison(view: View, name: str, mv: Any, doc: Mapping[str, Any]) -> dict[str, Any] | None:
    """The version beside production: both holdout metrics with intervals, the difference in
    words, and whether they were measured on the same records."""
    t = view.t
    ws = view.rt.ws
    production = ws.registry.aliases(name).get("production")
    if production is None or production == mv.version:
        return None
    prod = ws.registry.get_model(name, production)
    prod_doc = bundle_metrics(view, prod)
    task = ws.project.usecase(name).task.value
    names = list(SHOWN.get(task, ()))
    for c in mv.gate.get("clauses") or ():
        if isinstance(c, Mapping) and c.get("metric") not in names:
            names.append(str(c.get("metric")))
    rows = []
    for metric in names:
        a, b = (_shown(metric, mv.metrics.get(metric), view.lang),
                _shown(metric, prod.metrics.get(metric), view.lang))
        if a is None or b is None:
            continue
        higher = metric not in LOWER_IS_BETTER
        diff = a["value"] - b["value"]
        overlap = not (_num(a["lower"]) > _num(b["upper"]) or _num(b["lower"]) > _num(a["upper"]))
        if abs(diff) < 1e-9:
            verdict = "same"
        elif (diff > 0) == higher:
            verdict = "better_maybe" if overlap else "better"
        else:
            verdict = "worse_maybe" if overlap else "worse"
        rows.append({"metric": metric, "label": t(f"metric_name.{metric}"), "cand": a,
                     "prod": b, "verdict": verdict,
                     "words": t(f"approve.diff_{verdict}", version=mv.version,
                                production=production)})
    same_data = mv.dataset_version is not None and mv.dataset_version == prod.dataset_version
    split_a = (doc.get("cv") or {}).get("holdout")
    split_b = (prod_doc.get("cv") or {}).get("holdout")
    seed_a = (doc.get("params") or {}).get("seed")
    seed_b = (prod_doc.get("params") or {}).get("seed")
    by_time = ws.project.usecase(name).time is not None
    if mv.dataset_version is None or prod.dataset_version is None:
        basis = t("approve.basis_imported")
    elif not same_data:
        basis = t("approve.basis_other_data", a=mv.dataset_version, b=prod.dataset_version)
    elif split_a == split_b and split_a is not None and (by_time or seed_a == seed_b):
        basis = t("approve.basis_same", dataset=mv.dataset_version, split=split_a)
    else:
        basis = t("approve.basis_other_split", dataset=mv.dataset_version)
    return {"production": production, "prod": prod, "rows": rows, "basis": basis,
            "same_records": same_data and split_a == split_b and (by_time or seed_a == seed_b),
            "prod_gate_passed": prod.gate_passed}


def _num(x: Any) -> float:
    return float(x) if isinstance(x, (int, float)) else float("nan")


def detail_context(view: View, name: str, mv: Any) -> dict[str, Any]:
    """The matrix, slider and threshold for one version (empty when there is no version)."""
    if mv is None:
        return {}
    doc = bundle_metrics(view, mv)
    task = view.rt.ws.project.usecase(name).task.value
    return {"matrix": confusion(view, mv, doc, task),
            "slider": slider(doc) if task == "binary" else None,
            "threshold": doc.get("threshold")}


__all__ = ["bundle_metrics", "comparison", "confusion", "derive_binary_confusion",
           "detail_context", "slider"]
