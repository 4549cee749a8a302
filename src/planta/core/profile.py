"""The statistical profile of a dataset: the reference that drift monitoring compares against.

    {"format": "planta.profile/1", "rows": n,
     "fields": {name: {kind, role, label, count, missing, ...by kind}},
     "target": {name, kind, distribution}}

By kind:

    number, integer  mean, std (population), min, max, quantiles p1 p5 p25 p50 p75 p95 p99,
                     histogram {edges, counts}: edges at the 0, 5, ..., 100 % quantiles (so the
                     outer edges are the observed min and max; repeated edges merged), counts
                     per bin, the last bin closed; plus ``values`` (count per value) when the
                     column has at most 20 distinct values; plus ``bins`` {edges, counts}:
                     edges at the 0, 1, ..., 100 % quantiles (repeats merged), counts on
                     [e_0, e_1) … [e_{B-1}, e_B) with an open bin below e_0 and one from e_B
                     up (len(edges) + 1 counts), for drift monitoring (planta.core.drift);
                     profiles made before it have no ``bins`` and drift falls back to
                     ``histogram``
    boolean          counts {"0", "1"} and share_true
    category         counts for every category of the contract (zeros included), then others
    datetime         min and max (ISO 8601)
    text             distinct

The profile is deterministic: the same rows, in any order, give byte-identical JSON with
:func:`profile_to_json` (sums are exact with :func:`math.fsum`, quantiles come from sorted
values). Nothing in it is NaN: an empty statistic is ``null``.
"""

from __future__ import annotations

import json
import math
from dataclasses import replace
from typing import Any

import numpy as np
import pandas as pd

from planta.core.drift import FINE_BINS, bin_counts, quantile_edges
from planta_edge.contract import Contract, Field, text_values, validate_columns

PROFILE_FORMAT = "planta.profile/1"
QUANTILES = (0.01, 0.05, 0.25, 0.5, 0.75, 0.95, 0.99)
HISTOGRAM_BINS = 20
MAX_VALUE_COUNTS = 20


def _float(value: float) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _values(f: Field, series: pd.Series) -> np.ndarray:
    """Numbers (float64) of a number, integer or boolean field, read by the contract rules
    themselves, so that "3,14" or "yes" count as they do at validation."""
    if pd.api.types.is_bool_dtype(series.dtype) or pd.api.types.is_numeric_dtype(series.dtype):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    raw = series.to_numpy(dtype=object, copy=True)
    raw[pd.isna(raw)] = None
    loose = replace(f, nullable=True, role="feature")
    return validate_columns(Contract((loose,)), {f.name: raw}, fields=(loose,)).values[f.name]


def numeric_summary(values: np.ndarray) -> dict[str, Any]:
    """Mean, std, min, max, quantiles and histogram of the finite values.

    >>> s = numeric_summary(np.array([1.0, 2.0, 3.0, 4.0, np.nan]))
    >>> s["mean"], s["min"], s["max"], s["quantiles"]["p50"]
    (2.5, 1.0, 4.0, 2.5)
    >>> sum(s["histogram"]["counts"]), s["values"]
    (4, {'1': 1, '2': 1, '3': 1, '4': 1})
    """
    finite = np.sort(values[np.isfinite(values)])
    if finite.size == 0:
        return {"mean": None, "std": None, "min": None, "max": None, "quantiles": None,
                "histogram": None}
    mean = math.fsum(finite.tolist()) / finite.size
    std = math.sqrt(math.fsum(((finite - mean) ** 2).tolist()) / finite.size)
    quantiles = {f"p{round(q * 100)}": _float(np.quantile(finite, q)) for q in QUANTILES}
    edges = np.unique(np.quantile(finite, np.linspace(0.0, 1.0, HISTOGRAM_BINS + 1)))
    if edges.size < 2:
        histogram = {"edges": [float(finite[0]), float(finite[0])], "counts": [int(finite.size)]}
    else:
        counts, _ = np.histogram(finite, bins=edges)
        histogram = {"edges": [float(e) for e in edges], "counts": [int(c) for c in counts]}
    out: dict[str, Any] = {"mean": _float(mean), "std": _float(std), "min": float(finite[0]),
                           "max": float(finite[-1]), "quantiles": quantiles,
                           "histogram": histogram}
    fine = quantile_edges(finite, FINE_BINS)
    out["bins"] = {"edges": [float(e) for e in fine],
                   "counts": [int(c) for c in bin_counts(finite, fine)]}
    distinct, counts = np.unique(finite, return_counts=True)
    if distinct.size <= MAX_VALUE_COUNTS:
        out["values"] = {_key(v): int(c) for v, c in zip(distinct, counts)}
    return out


def _key(value: float) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))


def _missing(series: pd.Series) -> np.ndarray:
    mask = series.isna().to_numpy()
    if pd.api.types.is_object_dtype(series.dtype) or pd.api.types.is_string_dtype(series.dtype):
        mask = mask | series.map(lambda v: isinstance(v, str) and not v.strip()).to_numpy(bool)
    return mask


def _counts(series: pd.Series, known: tuple[str, ...] | None) -> dict[str, int]:
    text = text_values(series.to_numpy(dtype=object, na_value=None))
    present = pd.Series([v for v in text if v is not None], dtype=object)
    seen = present.value_counts().to_dict() if len(present) else {}
    out = {k: int(seen.pop(k, 0)) for k in (known or ())}
    out.update({str(k): int(v) for k, v in sorted(seen.items(), key=lambda kv: str(kv[0]))})
    return out


def _field_profile(f: Field, series: pd.Series) -> dict[str, Any]:
    missing = _missing(series)
    out: dict[str, Any] = {"kind": f.kind, "role": f.role, "label": f.display,
                           "count": int((~missing).sum()), "missing": int(missing.sum())}
    if f.kind in ("number", "integer"):
        out.update(numeric_summary(_values(f, series)))
    elif f.kind == "boolean":
        values = _values(f, series)
        ones, zeros = int((values == 1).sum()), int((values == 0).sum())
        out["counts"] = {"0": zeros, "1": ones}
        out["share_true"] = _float(ones / (ones + zeros)) if ones + zeros else None
    elif f.kind == "category":
        out["counts"] = _counts(series, f.categories)
    elif f.kind == "datetime":
        moments = pd.to_datetime(series, errors="coerce", format=f.datetime_format)
        moments = moments.dropna()
        out["min"] = moments.min().isoformat() if len(moments) else None
        out["max"] = moments.max().isoformat() if len(moments) else None
    else:
        out["distinct"] = int(series.nunique(dropna=True))
    return out


def profile_frame(frame: pd.DataFrame, contract: Contract) -> dict[str, Any]:
    """Profile every used field (features, entity, time, target) of a table; JSON-able.

    ``frame`` may have canonical names (``FrameCheck.accepted``) or the original headers.

    >>> from planta_edge.contract import Field
    >>> c = Contract((Field("torque_nm", "number", label="Torque [Nm]"),
    ...               Field("failed", "boolean", role="target")), target="failed")
    >>> p = profile_frame(pd.DataFrame({"torque_nm": [40.0, 50.0, 60.0], "failed": [0, 0, 1]}), c)
    >>> p["fields"]["torque_nm"]["mean"], p["target"]["distribution"]
    (50.0, {'0': 2, '1': 1})
    """
    by_name: dict[str, str] = {}
    for column in frame.columns:
        name = contract.resolve(str(column))
        if name is not None:
            by_name.setdefault(name, column)
    fields: dict[str, Any] = {}
    for f in contract.fields:
        if f.role == "ignored" or f.name not in by_name:
            continue
        fields[f.name] = _field_profile(f, frame[by_name[f.name]])
    target: dict[str, Any] | None = None
    if contract.target and contract.target in fields:
        t = fields[contract.target]
        if t["kind"] in ("number", "integer"):
            distribution: Any = {k: t[k] for k in ("mean", "std", "min", "max", "quantiles")}
        else:
            distribution = dict(t["counts"])
        target = {"name": contract.target, "kind": t["kind"], "distribution": distribution}
    return {"format": PROFILE_FORMAT, "rows": len(frame), "fields": fields,
            "target": target}


def profile_to_json(profile: dict[str, Any]) -> str:
    """Deterministic JSON text of a profile (sorted keys, no NaN)."""
    return json.dumps(profile, sort_keys=True, ensure_ascii=False, allow_nan=False,
                      separators=(",", ":"))


__all__ = ["HISTOGRAM_BINS", "PROFILE_FORMAT", "QUANTILES", "numeric_summary",
           "profile_frame", "profile_to_json"]
