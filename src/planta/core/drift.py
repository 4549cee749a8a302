"""Drift statistics: how far a window of production inputs has moved from the training data.

    statistic        kind         from counts (streaming)               exact (raw samples)
    psi              numeric      reference deciles, exact on counts    same (PSI is defined on bins)
    ks               numeric      CDF at the reference bin edges        ks_statistic / ks_pvalue
    wasserstein      numeric      CDF linear inside bins, exact tails   wasserstein (scipy's W1)
    chi2             categorical  exact (counts are the data)           chi2_test (scipy's, Yates
                                                                        on 2 × 2 as scipy does)
    js               categorical  exact                                 js_distance (base e)

**Binned approximations and their error bounds.** Numeric windows are kept as counts on the
reference's bins (``[e_0, e_1), …, [e_{B-1}, e_B)`` plus an open bin on each side), never as raw
values, so a million rows cost what a thousand do. On those counts:

* ``ks_binned`` evaluates both CDFs at the bin edges only, so it never exceeds the exact KS
  statistic, and inside one bin the exact difference cannot move further than the bin's mass
  allows: ``ks_binned <= ks_exact <= ks_binned + error_bound`` where the bound is computed from
  the counts (for 100 quantile bins it is about 0.01 under no drift). Its p-value uses scipy's
  asymptotic Smirnov formula, the one ``ks_2samp(method="asymp")`` uses; a smaller statistic
  gives a larger p-value, so the binned test is conservative: it cries wolf less, never more.
* ``wasserstein_binned`` assumes values spread evenly inside each bin and is exact beyond the
  reference's range (the tails are kept as sums); ``|exact - binned| <= sum(width_i *
  (p_ref_i + p_cur_i))`` over the inner bins.

**Deciding "drifted".** A p-value alone cries wolf on big windows (any real but tiny
difference is "significant" with 200,000 rows) and an effect size alone cries wolf on small
ones. A feature is drifted when (1) the window has at least ``min_rows`` values, (2) its test's
p-value, corrected for testing every feature at once (Holm by default), is below ``alpha``, and
(3) the effect is large enough: PSI >= ``psi`` or normalised Wasserstein >= ``wasserstein``
(numeric), Jensen–Shannon distance >= ``js`` (categorical).

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> ref, cur = rng.normal(0, 1, 2000), rng.normal(0.5, 1, 1000)
>>> edges = quantile_edges(ref, 100)
>>> r, c = bin_counts(ref, edges), bin_counts(cur, edges)
>>> d, bound = ks_binned(r, c)
>>> d <= ks_statistic(ref, cur) <= d + bound
True
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

import numpy as np

from planta.errors import ConfigError

CORRECTIONS = ("holm", "bh", "none")
# Probabilities of empty bins in PSI: log(0) is undefined, and a smaller floor lets one stray
# value in an empty reference bin dominate the index.
PSI_FLOOR = 1e-4
PSI_GROUPS = 10
FINE_BINS = 100
# ks_pvalue follows scipy's ks_2samp(method="asymp") up to this effective size n·m/(n+m).
_KSTWO_UP_TO = 2_000


# -- bins ---------------------------------------------------------------------------------------
def quantile_edges(values: np.ndarray, bins: int = FINE_BINS) -> np.ndarray:
    """Edges at the 0, 1/bins, …, 100 % quantiles of the finite values (repeats merged).

    >>> quantile_edges(np.array([1.0, 2.0, 2.0, 3.0]), 4).tolist()
    [1.0, 1.75, 2.0, 2.25, 3.0]
    """
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return np.zeros(0)
    return np.unique(np.quantile(finite, np.linspace(0.0, 1.0, bins + 1)))


# Above this many values, bin_index looks bins up in a table instead of a binary search.
_LOOKUP_FROM = 20_000


def bin_index(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Bin of each value: 0 below ``edges[0]``, i + 1 for ``edges[i] <= v < edges[i+1]``,
    ``len(edges)`` at or above the last edge (``np.searchsorted(edges, values, "right")``).
    Values must be finite: drop NaN first.

    >>> bin_index(np.array([-1.0, 0.0, 0.5, 1.0, 7.0]), np.array([0.0, 1.0])).tolist()
    [0, 1, 1, 2, 2]
    """
    k = edges.size
    if values.size < _LOOKUP_FROM or k < 4 or not edges[-1] > edges[0]:
        return np.searchsorted(edges, values, side="right")
    # A binary search costs ~100 ns a value on 100 edges (a million values: 0.1 s a column).
    # Instead: cut [e_0, e_B] into 16 equal cells per edge, look up the bin of each cell's left
    # end, then move each value up or down across the (rarely more than one) edge inside its
    # cell. The result is the binary search's, exactly: the moves compare with the edges.
    lo, hi = float(edges[0]), float(edges[-1])
    cells = 16 * k
    scale = cells / (hi - lo)
    # table[j]: the bin of cell j's left end; one more entry, 0, which index -1 (below e_0)
    # reads.
    table = np.append(np.searchsorted(edges, lo + np.arange(cells + 1) / scale, side="right"),
                      0)
    pos = (values - lo) * scale
    np.clip(pos, -1, cells, out=pos)
    idx = table[pos.astype(np.int64)]
    upper = np.append(edges, np.inf)     # bin i holds values below upper[i]
    lower = np.insert(edges, 0, -np.inf)  # … and at or above lower[i]
    while True:
        idx += values >= upper[idx]
        idx -= values < lower[idx]
        if not ((values >= upper[idx]) | (values < lower[idx])).any():
            break
    return idx


def bin_counts(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """Counts of the finite ``values`` in the ``len(edges) + 1`` bins of :func:`bin_index`.

    >>> bin_counts(np.array([0.0, 1.0, 1.5, 2.0, 9.0, np.nan]), np.array([1.0, 2.0])).tolist()
    [1, 2, 2]
    """
    finite = values[np.isfinite(values)]
    return np.bincount(bin_index(finite, edges), minlength=edges.size + 1).astype(np.int64)


def psi_groups(reference: np.ndarray, groups: int = PSI_GROUPS) -> np.ndarray:
    """Group index of each fine bin, so that the groups hold about equal reference mass
    (deciles for ``groups=10``); the open outer bins join the first and last groups.

    PSI on 100 fine bins would read about 0.2 on 500 rows with no drift at all (its bias is
    roughly (bins - 1) / rows); on 10 groups the same window reads about 0.02.
    """
    n = reference.sum()
    k = reference.size
    if n == 0 or k <= groups:
        return np.arange(k)
    cum = np.cumsum(reference) / n
    # The group of a bin is how many decile marks its reference mass has passed (bins are
    # never split, so a heavy bin keeps its own group).
    group = np.minimum((np.concatenate(([0.0], cum[:-1])) * groups + 1e-9).astype(int),
                       groups - 1)
    _, dense = np.unique(group, return_inverse=True)
    return dense.ravel()


# -- numeric statistics on counts -------------------------------------------------------------
def psi(reference: np.ndarray, current: np.ndarray, groups: np.ndarray | None = None) -> float:
    """Population stability index ``sum((c - r) * ln(c / r))`` over grouped bins.

    >>> psi(np.array([50, 50]), np.array([50, 50]))
    0.0
    >>> round(psi(np.array([50, 50]), np.array([90, 10])), 3)
    0.879
    """
    r = np.asarray(reference, dtype=float)
    c = np.asarray(current, dtype=float)
    if groups is not None:
        r = np.bincount(groups, weights=r)
        c = np.bincount(groups, weights=c)
    if r.sum() == 0 or c.sum() == 0:
        return 0.0
    p = np.maximum(r / r.sum(), PSI_FLOOR)
    q = np.maximum(c / c.sum(), PSI_FLOOR)
    return float(np.sum((q - p) * np.log(q / p)))


def _cdf_diff(reference: np.ndarray, current: np.ndarray) -> tuple[np.ndarray, np.ndarray,
                                                                    np.ndarray]:
    p = reference / reference.sum()
    q = current / current.sum()
    # D at the virtual edges -inf, e_0 … e_B, +inf (0 at both ends): F(e) = P(X < e).
    d = np.concatenate(([0.0], np.cumsum(p - q)))
    d[-1] = 0.0
    return d, p, q


def ks_binned(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """KS statistic from counts on the same bins, and the bound on its error.

    Returns ``(d, bound)`` with ``d <= ks_exact <= d + bound``: inside bin i the difference of
    the CDFs lies in ``[D_i - q_i, D_i + p_i]`` (p, q the bin's reference and current shares).
    """
    r = np.asarray(reference, dtype=float)
    c = np.asarray(current, dtype=float)
    if r.sum() == 0 or c.sum() == 0:
        return 0.0, 0.0
    d, p, q = _cdf_diff(r, c)
    statistic = float(np.abs(d).max())
    worst = float(max(np.max(d[:-1] + p), np.max(q - d[:-1])))
    return statistic, max(0.0, worst - statistic)


def ks_pvalue(statistic: float, n_reference: int, n_current: int, *,
              fast: bool = False) -> float:
    """Two-sided p-value of a two-sample KS statistic, by Smirnov's asymptotic formula (as
    ``scipy.stats.ks_2samp(..., method="asymp")``, to 1e-9).

    With ``fast`` and an effective size ``n·m/(n+m)`` above 2,000, Kolmogorov's limit
    distribution is used instead: scipy's takes 12 ms at 10,000 (0.2 s at 100,000), and the
    limit is within 0.006 of it there, slightly larger (more conservative). Drift reports use
    ``fast``; they compare p-values with alpha, and they run every few seconds.
    """
    from scipy.stats import kstwo

    if n_reference == 0 or n_current == 0:
        return 1.0
    m, n = sorted((float(n_reference), float(n_current)), reverse=True)
    en = m * n / (m + n)
    if fast and en > _KSTWO_UP_TO:
        from scipy.special import kolmogorov

        return float(np.clip(kolmogorov(math.sqrt(en) * statistic), 0.0, 1.0))
    return float(np.clip(kstwo.sf(statistic, np.round(en)), 0.0, 1.0))


def wasserstein_binned(reference: np.ndarray, current: np.ndarray, edges: np.ndarray,
                       below_sum: float = 0.0, above_sum: float = 0.0,
                       ref_below_sum: float = 0.0, ref_above_sum: float = 0.0
                       ) -> tuple[float, float]:
    """Wasserstein-1 distance from counts, and the bound on its error.

    ``below_sum`` is the sum of ``edges[0] - x`` over current values below the first edge and
    ``above_sum`` that of ``x - edges[-1]`` over those at or above the last (the ``ref_`` pair
    the same for the reference, 0 when the edges span it): with them the outer bins are exact.
    """
    r = np.asarray(reference, dtype=float)
    c = np.asarray(current, dtype=float)
    nr, nc = r.sum(), c.sum()
    if nr == 0 or nc == 0 or edges.size < 2:
        return (abs(below_sum / nc - ref_below_sum / nr) + abs(above_sum / nc - ref_above_sum / nr)
                if nr and nc else 0.0), 0.0
    d, p, q = _cdf_diff(r, c)
    inner = d[1:-1]                      # D at e_0 … e_B
    a, b = inner[:-1], inner[1:]
    width = np.diff(edges)
    same = (a * b) >= 0
    area = np.where(same, width * (np.abs(a) + np.abs(b)) / 2,
                    width * (a * a + b * b) / (2 * np.maximum(np.abs(a) + np.abs(b), 1e-300)))
    # Beyond the edges: one sample's mass there (the reference's is zero when the edges are its
    # quantiles); the other's CDF is 0 (left) or 1 (right), so the area is a mean distance.
    tails = abs(below_sum / nc - ref_below_sum / nr) + abs(above_sum / nc - ref_above_sum / nr)
    bound = float(np.sum(width * (p[1:-1] + q[1:-1])))
    return float(area.sum() + tails), bound


# -- categorical statistics on counts ---------------------------------------------------------
def chi2_test(reference: np.ndarray, current: np.ndarray) -> tuple[float, float]:
    """Chi-square test of homogeneity of a 2 × k table (categories with no count dropped),
    with Yates' correction when the table is 2 × 2, as ``scipy.stats.chi2_contingency``.

    >>> stat, p = chi2_test(np.array([60, 30, 10]), np.array([60, 30, 10]))
    >>> stat, round(p, 6)
    (0.0, 1.0)
    """
    from scipy.special import chdtrc

    table = np.vstack([np.asarray(reference, float), np.asarray(current, float)])
    table = table[:, table.sum(axis=0) > 0]
    if table.shape[1] < 2 or (table.sum(axis=1) == 0).any():
        return 0.0, 1.0
    expected = table.sum(axis=1, keepdims=True) * table.sum(axis=0, keepdims=True) / table.sum()
    dof = table.shape[1] - 1
    diff = table - expected
    if dof == 1:
        # Yates: move each observed count half a unit towards its expectation, never past it.
        diff = np.sign(diff) * np.maximum(np.abs(diff) - 0.5, 0.0)
    stat = float(np.sum(diff * diff / expected))
    return stat, float(chdtrc(dof, stat))


def js_distance(reference: np.ndarray, current: np.ndarray) -> float:
    """Jensen–Shannon distance (natural log; 0 same, sqrt(ln 2) ≈ 0.83 disjoint), as
    ``scipy.spatial.distance.jensenshannon``.

    >>> js_distance(np.array([1, 0]), np.array([0, 1])) == math.sqrt(math.log(2))
    True
    """
    p = np.asarray(reference, float)
    q = np.asarray(current, float)
    if p.sum() == 0 or q.sum() == 0:
        return 0.0
    p, q = p / p.sum(), q / q.sum()
    m = (p + q) / 2

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log(a[nz] / m[nz])))

    return math.sqrt(max(0.0, (kl(p) + kl(q)) / 2))


# -- exact statistics on raw samples ----------------------------------------------------------
def ks_statistic(reference: np.ndarray, current: np.ndarray) -> float:
    """Exact two-sample KS statistic of the finite values (``ks_2samp(...).statistic``)."""
    a = np.sort(reference[np.isfinite(reference)])
    b = np.sort(current[np.isfinite(current)])
    if a.size == 0 or b.size == 0:
        return 0.0
    both = np.concatenate([a, b])
    fa = np.searchsorted(a, both, side="right") / a.size
    fb = np.searchsorted(b, both, side="right") / b.size
    return float(np.max(np.abs(fa - fb)))


def wasserstein(reference: np.ndarray, current: np.ndarray) -> float:
    """Exact Wasserstein-1 distance of the finite values (``wasserstein_distance``)."""
    a = np.sort(reference[np.isfinite(reference)])
    b = np.sort(current[np.isfinite(current)])
    if a.size == 0 or b.size == 0:
        return 0.0
    both = np.sort(np.concatenate([a, b]))
    fa = np.searchsorted(a, both[:-1], side="right") / a.size
    fb = np.searchsorted(b, both[:-1], side="right") / b.size
    return float(np.sum(np.abs(fa - fb) * np.diff(both)))


# -- multiple testing -------------------------------------------------------------------------
def adjust_pvalues(pvalues: Sequence[float | None], method: str = "holm") -> list[float | None]:
    """p-values corrected for testing several features at once (None stays None).

    ``holm`` controls the chance of any false alarm in the family; ``bh`` (Benjamini–Hochberg)
    the expected share of false alarms among the alarms; ``none`` leaves them as they are.

    >>> adjust_pvalues([0.01, 0.04, None, 0.03], "holm")
    [0.03, 0.06, None, 0.06]
    """
    if method not in CORRECTIONS:
        raise ConfigError(f"Multiple-testing correction {method!r} is not one of "
                          f"{', '.join(CORRECTIONS)}.")
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    out: list[float | None] = list(pvalues)
    m = len(idx)
    if m == 0 or method == "none":
        return out
    order = sorted(idx, key=lambda i: float(pvalues[i]))  # type: ignore[arg-type]
    ps = [float(pvalues[i]) for i in order]  # type: ignore[arg-type]
    adjusted = [0.0] * m
    if method == "holm":
        running = 0.0
        for k, p in enumerate(ps):
            running = max(running, min(1.0, (m - k) * p))
            adjusted[k] = running
    else:
        running = 1.0
        for k in range(m - 1, -1, -1):
            running = min(running, ps[k] * m / (k + 1))
            adjusted[k] = min(1.0, running)
    for k, i in enumerate(order):
        out[i] = round(adjusted[k], 15)
    return out


# -- thresholds (planta.toml [usecases.<name>.monitor]) ---------------------------------------
@dataclass(frozen=True)
class DriftThresholds:
    """When a feature counts as drifted (see the module docstring) and when it alerts.

    ``min_importance`` is the share of the model's total importance below which a drifted
    feature is reported but does not alert (the model barely reads it).
    """

    alpha: float = 0.05
    psi: float = 0.2
    wasserstein: float = 0.2
    js: float = 0.1
    min_rows: int = 200
    min_importance: float = 0.02

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str,
                  base: DriftThresholds | None = None) -> DriftThresholds:
        known = {f.name for f in fields(cls)}
        values: dict[str, Any] = {}
        for key, raw in data.items():
            if key not in known:
                raise ConfigError(f"{where}: unknown drift setting {key!r}.",
                                  hint=f"Known settings: {', '.join(sorted(known))}.")
            if isinstance(raw, bool) or not isinstance(raw, (int, float)) or raw < 0:
                raise ConfigError(f"{where}: {key} = {raw!r} is not a number of zero or more.",
                                  hint=f"Write it like {key} = {getattr(cls(), key)}.")
            if key == "alpha" and not 0 < raw < 1:
                raise ConfigError(f"{where}: alpha = {raw!r} must lie between 0 and 1.",
                                  hint="0.05 means a 5 % chance of a false alarm per window.")
            values[key] = int(raw) if key == "min_rows" else float(raw)
        return replace(base or cls(), **values)

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True)
class MonitorSettings:
    """Monitoring settings of a use case: defaults, per-feature overrides, correction.

    planta.toml::

        [usecases.failure.monitor]
        psi = 0.2                 # defaults for every feature
        correction = "holm"       # or "bh", "none"
        [usecases.failure.monitor.features.torque_nm]
        psi = 0.1                 # this feature alerts earlier

    >>> s = MonitorSettings.from_dict({"psi": 0.25, "features": {"torque_nm": {"psi": 0.1}}},
    ...                               "failure")
    >>> s.for_feature("torque_nm").psi, s.for_feature("type").psi
    (0.1, 0.25)
    """

    defaults: DriftThresholds = field(default_factory=DriftThresholds)
    features: dict[str, DriftThresholds] = field(default_factory=dict)
    correction: str = "holm"

    def for_feature(self, name: str) -> DriftThresholds:
        return self.features.get(name, self.defaults)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None, usecase: str) -> MonitorSettings:
        if data is None:
            return cls()
        if not isinstance(data, Mapping):
            raise ConfigError(f"[usecases.{usecase}.monitor] must be a table of settings.")
        where = f"[usecases.{usecase}.monitor]"
        plain = {k: v for k, v in data.items() if k not in ("features", "correction")}
        defaults = DriftThresholds.from_dict(plain, where)
        correction = str(data.get("correction", "holm"))
        if correction not in CORRECTIONS:
            raise ConfigError(f"{where}: correction = {correction!r} is not one of "
                              f"{', '.join(CORRECTIONS)}.",
                              hint="holm (default) keeps the chance of any false alarm at alpha.")
        per: dict[str, DriftThresholds] = {}
        raw_features = data.get("features") or {}
        if not isinstance(raw_features, Mapping):
            raise ConfigError(f"{where}: features must be a table of feature names.")
        for name, table in raw_features.items():
            if not isinstance(table, Mapping):
                raise ConfigError(f"{where}.features.{name} must be a table of settings.")
            per[str(name)] = DriftThresholds.from_dict(table, f"{where[:-1]}.features.{name}]",
                                                       defaults)
        return cls(defaults=defaults, features=per, correction=correction)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = self.defaults.to_dict() | {"correction": self.correction}
        if self.features:
            out["features"] = {k: v.to_dict() for k, v in self.features.items()}
        return out


__all__ = ["CORRECTIONS", "FINE_BINS", "PSI_GROUPS", "DriftThresholds", "MonitorSettings",
           "adjust_pvalues", "bin_counts", "bin_index", "chi2_test", "js_distance", "ks_binned",
           "ks_pvalue", "ks_statistic", "psi", "psi_groups", "quantile_edges", "wasserstein",
           "wasserstein_binned"]
