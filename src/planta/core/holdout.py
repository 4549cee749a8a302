"""What the model page draws from the holdout, kept small enough to travel in ``metrics.json``.

Training scores the holdout once (:func:`planta.services.train.train`); the per-row predictions
are not kept (they would grow with the data), only these counts, which the model page turns
into a confusion matrix, a threshold slider and a residual summary:

    binary       counts at the chosen threshold (tp, fp, fn, tn) and the same four counts on
                 a grid of thresholds 0.01 … 0.99 plus the chosen one (the slider's table)
    multiclass   the k × k matrix, rows the true class, columns the predicted one
    regression   residual (true − predicted) quantiles, their mean, and the mean error per
                 fifth of the predicted range

All are plain counts or numbers on the holdout rows, so the confusion matrix adds up to
``n_holdout`` exactly and recall can only fall as the threshold rises.

>>> d = holdout_detail("binary", np.array([0, 0, 1, 1]), np.array([0.1, 0.6, 0.4, 0.9]), 0.5)
>>> d["confusion"], d["positives"], d["negatives"]
({'tp': 1, 'fp': 1, 'fn': 1, 'tn': 1}, 2, 2)
>>> curve = d["curve"]; i = curve["threshold"].index(0.5)
>>> curve["tp"][i], curve["fp"][i]
(1, 1)
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

FORMAT = "planta.holdout_detail/1"
# The slider's grid: every hundredth; the chosen threshold is added to it.
GRID = tuple(round(i / 100, 2) for i in range(1, 100))
RESIDUAL_QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
RESIDUAL_BANDS = 5


def holdout_detail(task: str, y_true: np.ndarray, predicted: np.ndarray,
                   threshold: float | None = None,
                   classes: Sequence[str] = ()) -> dict[str, Any]:
    """The holdout's counts for the model page (see the module docstring).

    ``task`` is ``binary`` (``y_true`` 0/1, ``predicted`` P(positive)), ``multiclass``
    (codes 0..k-1, ``predicted`` an n × k probability matrix or codes) or ``regression``.
    """
    task = getattr(task, "value", task)
    y = np.asarray(y_true)
    out: dict[str, Any] = {"format": FORMAT, "n": int(y.shape[0])}
    if task == "binary":
        out.update(_binary(y.astype(int).ravel(), np.asarray(predicted, dtype=float).ravel(),
                           0.5 if threshold is None else float(threshold)))
    elif task == "multiclass":
        out.update(_multiclass(y.astype(int).ravel(), np.asarray(predicted), len(classes)))
        out["classes"] = [str(c) for c in classes]
    else:
        out["residuals"] = _residuals(y.astype(float).ravel(),
                                      np.asarray(predicted, dtype=float).ravel())
    return out


def _binary(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    pos = y == 1
    grid = sorted(set(GRID) | {round(threshold, 6)})
    # Alarms at t are the rows with p >= t: count them by sorting once.
    p_pos, p_neg = np.sort(p[pos]), np.sort(p[~pos])
    cuts = np.asarray(grid)
    tp = (p_pos.size - np.searchsorted(p_pos, cuts, side="left")).astype(int)
    fp = (p_neg.size - np.searchsorted(p_neg, cuts, side="left")).astype(int)
    alarm = p >= threshold
    confusion = {"tp": int((pos & alarm).sum()), "fp": int((~pos & alarm).sum()),
                 "fn": int((pos & ~alarm).sum()), "tn": int((~pos & ~alarm).sum())}
    return {"threshold": round(threshold, 6), "positives": int(pos.sum()),
            "negatives": int((~pos).sum()), "confusion": confusion,
            "curve": {"threshold": [float(t) for t in grid], "tp": tp.tolist(),
                      "fp": fp.tolist()}}


def _multiclass(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> dict[str, Any]:
    pred = predicted.argmax(axis=1) if predicted.ndim == 2 else predicted.astype(int).ravel()
    k = max(n_classes, int(y.max(initial=0)) + 1, int(pred.max(initial=0)) + 1)
    matrix = np.zeros((k, k), dtype=int)
    np.add.at(matrix, (y, pred.astype(int)), 1)
    return {"confusion": matrix.tolist()}


def _residuals(y: np.ndarray, pred: np.ndarray) -> dict[str, Any]:
    ok = np.isfinite(y) & np.isfinite(pred)
    y, pred = y[ok], pred[ok]
    if y.size == 0:
        return {"n": 0}
    r = y - pred
    qs = np.quantile(r, RESIDUAL_QUANTILES)
    bands = []
    edges = np.quantile(pred, np.linspace(0, 1, RESIDUAL_BANDS + 1))
    which = np.clip(np.searchsorted(edges, pred, side="right") - 1, 0, RESIDUAL_BANDS - 1)
    for b in range(RESIDUAL_BANDS):
        rows = which == b
        if not rows.any():
            continue
        bands.append({"low": _r(edges[b]), "high": _r(edges[b + 1]), "n": int(rows.sum()),
                      "mean": _r(r[rows].mean()), "mean_abs": _r(np.abs(r[rows]).mean())})
    return {"n": int(r.size), "mean": _r(r.mean()), "mean_abs": _r(np.abs(r).mean()),
            "quantiles": {f"{q:g}": _r(v) for q, v in zip(RESIDUAL_QUANTILES, qs, strict=True)},
            "too_high": int((r < 0).sum()), "too_low": int((r > 0).sum()), "bands": bands}


def _r(x: float) -> float:
    return float(f"{float(x):.6g}")


__all__ = ["FORMAT", "GRID", "holdout_detail"]
