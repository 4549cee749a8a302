"""What a drifted input does to the model's output: the window's rows scored as they are, and
again with that one input put back as it was in training.

    estimate_effects(reference, sample, names, score) -> {name: Effect}
        numeric      each value is moved to the same rank in the training distribution
                     (quantile mapping on the reference's bins), so the row keeps its place
                     among the window's rows and every other input stays as it came
        category     values are redrawn from the training shares (seeded)
        Effect       mean_change: mean score now − mean score with the input as in training
                     (binary: P(positive); regression: the prediction); mean_abs_change: the
                     mean of |change| per row

The score function is the model's (``Predictor.predict(values).probability``); this module
never loads one: services hand it over.

>>> import numpy as np
>>> from planta.core.drift_window import NumericReference
>>> ref = NumericReference(name="torque_nm", label="Torque", edges=np.array([0.0, 10.0]),
...     counts=np.array([0, 100, 0]), missing=0, mean=5.0, std=2.9, lower=None, upper=None,
...     exact=False, source="bins")
>>> from planta.core.drift_window import Reference
>>> sample = {"torque_nm": np.array([12.0, 14.0, 16.0, 18.0])}
>>> e = estimate_effects(Reference({"torque_nm": ref}), sample, ["torque_nm"],
...                      lambda cols: cols["torque_nm"] / 100)
>>> round(e["torque_nm"].mean_change, 3), e["torque_nm"].rows
(0.1, 4)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from planta.core.drift_window import CategoryReference, NumericReference, Reference

Score = Callable[[Mapping[str, np.ndarray]], np.ndarray]


@dataclass(frozen=True)
class Effect:
    """The shift of one input, seen through the model."""

    mean_change: float
    mean_abs_change: float
    mean_now: float
    mean_as_training: float
    rows: int

    def to_dict(self) -> dict[str, Any]:
        return {k: (round(v, 6) if isinstance(v, float) else v)
                for k, v in self.__dict__.items()}


def as_training(ref: NumericReference | CategoryReference, values: np.ndarray,
                rng: np.random.Generator) -> np.ndarray:
    """``values`` of one input put back to its training distribution (see the module doc)."""
    if isinstance(ref, CategoryReference):
        shares = ref.counts / max(ref.n, 1)
        cats = np.array(ref.categories, dtype=object)
        if ref.boolean:
            cats = np.array([float(c) for c in ref.categories])
        return cats[rng.choice(len(cats), size=values.shape[0], p=shares)]
    x = np.asarray(values, dtype=np.float64)
    out = x.copy()
    finite = np.isfinite(x)
    k = int(finite.sum())
    if k == 0 or ref.n == 0:
        return out
    ranks = np.empty(k)
    ranks[np.argsort(x[finite], kind="stable")] = np.arange(k)
    u = (ranks + 0.5) / k
    # Training CDF at the edges: share of values below e_i (bins are [e_i, e_{i+1})).
    cdf = np.cumsum(ref.counts)[:-1] / ref.n
    if ref.exact:
        # One bin per value: step to the value whose bin holds rank u.
        pos = np.searchsorted(np.append(cdf[1:], 1.0), u, side="right")
        out[finite] = ref.edges[np.minimum(pos, ref.edges.size - 1)]
    else:
        keep = np.concatenate(([True], np.diff(cdf) > 0))  # np.interp needs increasing x
        out[finite] = np.interp(u, cdf[keep], ref.edges[keep])
    return out


def estimate_effects(reference: Reference, sample: Mapping[str, np.ndarray],
                     names: Iterable[str], score: Score, *, seed: int = 0) -> dict[str, Effect]:
    """The effect on the score of each input in ``names`` (see the module docstring).

    ``sample`` holds equal-length columns as the contract's validation gives them (every input
    the model reads); inputs missing from the reference or the sample are skipped.
    """
    rows = len(next(iter(sample.values()))) if sample else 0
    if rows == 0:
        return {}
    now = np.asarray(score(sample), dtype=np.float64)
    rng = np.random.default_rng(seed)
    out: dict[str, Effect] = {}
    for name in names:
        ref = reference.fields.get(name)
        if ref is None or name not in sample:
            continue
        changed = dict(sample)
        changed[name] = as_training(ref, sample[name], rng)
        before = np.asarray(score(changed), dtype=np.float64)
        ok = np.isfinite(now) & np.isfinite(before)
        if not ok.any():
            continue
        diff = now[ok] - before[ok]
        out[name] = Effect(mean_change=float(diff.mean()),
                           mean_abs_change=float(np.abs(diff).mean()),
                           mean_now=float(now[ok].mean()),
                           mean_as_training=float(before[ok].mean()), rows=int(ok.sum()))
    return out


__all__ = ["Effect", "as_training", "estimate_effects"]
