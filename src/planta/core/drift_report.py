"""The drift report: a window compared with its reference, feature by feature, in plant words.

    compare(reference, window, settings, importance) -> DriftReport
        features   per feature: tests (method, statistic, p_value, threshold), drifted,
                   importance, impact (importance × effect), alerting, one plain sentence
        score      score PSI / KS against the holdout's scores, share of alarms
        quality    missing and out-of-contract rates, new categories
        signals    flat {"psi(torque_nm)": 0.31, "drift_share": 0.33, …} for the alert rules

A drifted feature alerts only when the model leans on it: its share of the model's importance
is at least ``min_importance``. Otherwise it is reported (``drifted: true``) and pages no one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from planta.core.drift import (
    MonitorSettings,
    adjust_pvalues,
    chi2_test,
    js_distance,
    ks_binned,
    ks_pvalue,
    psi,
    psi_groups,
    wasserstein_binned,
)
from planta.core.drift_effect import Effect
from planta.core.drift_window import (
    CategoryCounts,
    CategoryReference,
    NumericCounts,
    NumericReference,
    Reference,
    Window,
)


@dataclass(frozen=True)
class Test:
    """One statistic of one feature. ``p_value`` is None for effect sizes (PSI, distances)."""

    method: str
    statistic: float
    p_value: float | None
    threshold: float
    p_adjusted: float | None = None
    error_bound: float | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"method": self.method, "statistic": _r(self.statistic),
                               "p_value": _r(self.p_value), "threshold": self.threshold}
        if self.p_adjusted is not None:
            out["p_adjusted"] = _r(self.p_adjusted)
        if self.error_bound is not None:
            out["error_bound"] = _r(self.error_bound)
        return out


@dataclass
class FeatureDrift:
    """What happened to one feature in the window."""

    name: str
    label: str
    kind: str                       # numeric or category
    rows: int
    tests: list[Test]
    drifted: bool = False
    importance: float | None = None
    impact: float | None = None
    alerting: bool = False
    enough_rows: bool = True
    missing_rate: float = 0.0
    out_of_contract_rate: float = 0.0
    new_categories: dict[str, int] = field(default_factory=dict)
    effect: Effect | None = None
    says: str = ""
    plot: dict[str, Any] = field(default_factory=dict)

    def test(self, method: str) -> Test | None:
        return next((t for t in self.tests if t.method == method), None)

    def to_dict(self, *, plots: bool = False) -> dict[str, Any]:
        out = {"name": self.name, "label": self.label, "kind": self.kind, "rows": self.rows,
               "drifted": self.drifted, "importance": _r(self.importance),
               "impact": _r(self.impact), "alerting": self.alerting,
               "enough_rows": self.enough_rows, "missing_rate": _r(self.missing_rate),
               "out_of_contract_rate": _r(self.out_of_contract_rate),
               "tests": [t.to_dict() for t in self.tests], "says": self.says}
        if self.new_categories:
            out["new_categories"] = dict(self.new_categories)
        if self.effect is not None:
            out["effect"] = self.effect.to_dict()
        if plots:
            out["plot"] = self.plot
        return out


@dataclass
class DriftReport:
    """The comparison of one window with the reference (see the module docstring)."""

    rows: int
    features: list[FeatureDrift]
    score: dict[str, Any]
    quality: dict[str, Any]
    settings: MonitorSettings
    signals: dict[str, float] = field(default_factory=dict)

    @property
    def drifted(self) -> list[FeatureDrift]:
        return [f for f in self.features if f.drifted]

    def to_dict(self, *, plots: bool = False) -> dict[str, Any]:
        return {"rows": self.rows, "features": [f.to_dict(plots=plots) for f in self.features],
                "score": self.score, "quality": self.quality, "signals": dict(self.signals),
                "settings": self.settings.to_dict()}


def _r(value: float | None, digits: int = 6) -> float | None:
    if value is None:
        return None
    value = float(value)
    if not np.isfinite(value):
        return None
    return float(f"{value:.{digits}g}")


def _importance_shares(importance: Mapping[str, float] | None) -> dict[str, float]:
    if not importance:
        return {}
    total = sum(max(0.0, float(v)) for v in importance.values())
    return {k: (max(0.0, float(v)) / total if total > 0 else 0.0) for k, v in importance.items()}


def _numeric(ref: NumericReference, acc: NumericCounts, settings: MonitorSettings
             ) -> FeatureDrift:
    th = settings.for_feature(ref.name)
    n = acc.n
    d, bound = ks_binned(ref.counts, acc.counts)
    p = ks_pvalue(d, ref.n, n, fast=True) if n else None
    w, w_bound = wasserstein_binned(ref.counts, acc.counts, ref.edges, acc.below_sum,
                                    acc.above_sum)
    scale = ref.std if ref.std else (float(ref.edges[-1] - ref.edges[0]) or 1.0)
    tests = [Test("ks", d, p, th.alpha, error_bound=0.0 if ref.exact else bound),
             Test("psi", psi(ref.counts, acc.counts, ref.groups), None, th.psi),
             Test("wasserstein", w / scale, None, th.wasserstein,
                  error_bound=w_bound / scale)]
    rows = n + acc.missing
    out = FeatureDrift(name=ref.name, label=ref.label, kind="numeric", rows=n, tests=tests,
                       enough_rows=n >= th.min_rows,
                       missing_rate=acc.missing / rows if rows else 0.0,
                       out_of_contract_rate=(acc.below_contract + acc.above_contract) / n
                       if n else 0.0)
    ref_share = ref.counts / max(ref.n, 1)
    cur_share = acc.counts / max(n, 1)
    out.plot = {"edges": ref.edges.tolist(), "reference": ref_share.round(6).tolist(),
                "current": cur_share.round(6).tolist(), "mean_reference": ref.mean,
                "mean_current": acc.mean, "std_reference": ref.std}
    return out


def _category(ref: CategoryReference, acc: CategoryCounts, settings: MonitorSettings
              ) -> FeatureDrift:
    th = settings.for_feature(ref.name)
    new = sorted(acc.new)
    r = np.concatenate([ref.counts, np.zeros(len(new), np.int64)])
    c = np.concatenate([acc.counts, np.array([acc.new[k] for k in new], np.int64)])
    n = int(c.sum())
    stat, p = chi2_test(r, c) if n else (0.0, None)
    tests = [Test("chi2", stat, p, th.alpha), Test("js", js_distance(r, c), None, th.js)]
    rows = n + acc.missing
    out = FeatureDrift(name=ref.name, label=ref.label, kind="category", rows=n, tests=tests,
                       enough_rows=n >= th.min_rows,
                       missing_rate=acc.missing / rows if rows else 0.0,
                       out_of_contract_rate=sum(acc.new.values()) / n if n and not ref.boolean
                       else 0.0,
                       new_categories=dict(acc.new))
    out.plot = {"categories": ref.categories + new,
                "reference": (r / max(int(r.sum()), 1)).round(6).tolist(),
                "current": (c / max(n, 1)).round(6).tolist()}
    return out


def _score(reference: Reference, window: Window) -> dict[str, Any]:
    ref = reference.score
    out: dict[str, Any] = {"rows": int(window.score.counts.sum()),
                           "positive_rate": (window.score.positives / window.score.answered
                                             if window.score.answered else None),
                           "reference_positive_rate": ref.positive_share if ref else None,
                           "psi": None, "ks": None}
    if ref is not None and window.score.counts.sum() > 0:
        # Deciles of the holdout's scores, as for inputs: PSI over the 100 score bins would read
        # about 0.3 on a calm window of a few hundred answers.
        out["psi"] = _r(psi(ref.counts, window.score.counts, psi_groups(ref.counts)))
        out["ks"] = _r(ks_binned(ref.counts, window.score.counts)[0])
        out["plot"] = {"edges": ref.edges.tolist(),
                       "reference": (ref.counts / ref.counts.sum()).round(6).tolist(),
                       "current": (window.score.counts / window.score.counts.sum())
                       .round(6).tolist(), "threshold": ref.threshold}
    return out


def compare(reference: Reference, window: Window, settings: MonitorSettings | None = None,
            importance: Mapping[str, float] | None = None,
            rejected: int = 0) -> DriftReport:
    """Compare a window with its reference (see the module docstring).

    ``importance`` maps feature names to the model's importances (any scale: shares are taken);
    ``rejected`` counts records the contract refused in the window (they never reached the
    model, so they are not in ``window``).
    """
    settings = settings or MonitorSettings()
    shares = _importance_shares(importance)
    features: list[FeatureDrift] = []
    for name, ref in reference.fields.items():
        acc = window.fields[name]
        if isinstance(ref, NumericReference) and isinstance(acc, NumericCounts):
            features.append(_numeric(ref, acc, settings))
        elif isinstance(ref, CategoryReference) and isinstance(acc, CategoryCounts):
            features.append(_category(ref, acc, settings))
    # One p-value per feature, corrected together: with 6 features tested at 5 % each, one of
    # them would "drift" in a quarter of perfectly normal windows.
    primary = [f.tests[0] for f in features]          # ks or chi2: the one with a p-value
    adjusted = adjust_pvalues([t.p_value if f.enough_rows else None
                               for f, t in zip(features, primary)], settings.correction)
    for f, t, p_adj in zip(features, primary, adjusted):
        f.tests[0] = Test(t.method, t.statistic, t.p_value, t.threshold, p_adjusted=p_adj,
                          error_bound=t.error_bound)
        th = settings.for_feature(f.name)
        effects = f.tests[1:]
        big = any(x.statistic >= x.threshold for x in effects)
        f.drifted = bool(f.enough_rows and p_adj is not None and p_adj < th.alpha and big)
        f.importance = shares.get(f.name) if shares else None
        effect = max((x.statistic / x.threshold for x in effects if x.threshold > 0), default=0.0)
        f.impact = (f.importance or 0.0) * effect if shares else None
        f.alerting = f.drifted and (f.importance is None or f.importance >= th.min_importance)
        f.says = describe(f)
    features.sort(key=lambda f: (not f.drifted, not f.alerting, -(f.impact or 0.0), f.name))
    score = _score(reference, window)
    total = window.rows + rejected
    quality = {"rows": window.rows, "rejected": rejected,
               "rejected_rate": rejected / total if total else 0.0,
               "out_of_contract_rate": ((window.out_of_contract + rejected) / total
                                        if total else 0.0),
               "missing_rate": {f.name: _r(f.missing_rate) for f in features},
               "new_categories": {f.name: f.new_categories for f in features
                                  if f.new_categories}}
    report = DriftReport(rows=window.rows, features=features, score=score, quality=quality,
                         settings=settings)
    report.signals = signals(report)
    return report


def with_effects(report: DriftReport, effects: Mapping[str, Effect],
                 score_words: str = "score") -> DriftReport:
    """Attach model-based effects (``planta.core.drift_effect``) to the report's features: the
    impact becomes the mean absolute change of the score, and the sentence says it.
    ``score_words`` names the score ("chance of Machine failure" is shown as a percentage).
    """
    for f in report.features:
        effect = effects.get(f.name)
        if effect is None:
            continue
        f.effect = effect
        f.impact = effect.mean_abs_change
        f.says = describe(f, score_words)
    report.features.sort(key=lambda f: (not f.drifted, not f.alerting, -(f.impact or 0.0),
                                        f.name))
    return report


_SIGNAL_NAMES = {"ks": ("ks", "ks_p"), "psi": ("psi", None), "wasserstein": ("wasserstein", None),
                 "js": ("js", None), "chi2": ("chi2", "chi2_p")}


def signals(report: DriftReport) -> dict[str, float]:
    """The flat numbers alert rules read: ``psi(torque_nm)``, ``drift_share``, ``rows``…

    A feature's statistics are left out when the window holds fewer than ``min_rows`` of its
    values (a rule on them then reads "cannot be evaluated" instead of a false calm), and its
    missing rate when the window holds no row at all.
    """
    out: dict[str, float] = {}
    for f in report.features:
        if f.rows == 0 and f.missing_rate == 0.0:
            continue  # no value at all in the window: a rule on it cannot be evaluated
        out[f"missing_rate({f.name})"] = float(f.missing_rate)
        if not f.enough_rows:
            continue  # too few values: no statistic to alert on
        for t in f.tests:
            stat_name, p_name = _SIGNAL_NAMES[t.method]
            out[f"{stat_name}({f.name})"] = float(t.statistic)
            if p_name and t.p_value is not None:
                out[f"{p_name}({f.name})"] = float(t.p_value)
    n = len(report.features)
    out["drift_share"] = sum(f.drifted for f in report.features) / n if n else 0.0
    out["drifted_important"] = float(sum(f.alerting for f in report.features))
    if report.score.get("psi") is not None:
        out["score_psi"] = float(report.score["psi"])
    if report.score.get("positive_rate") is not None:
        out["positive_rate"] = float(report.score["positive_rate"])
    out["rejected_rate"] = float(report.quality["rejected_rate"])
    out["out_of_contract_rate"] = float(report.quality["out_of_contract_rate"])
    out["rows"] = float(report.rows)
    return out


# -- plain words --------------------------------------------------------------------------------
def _moved(value: float, threshold: float, what: str) -> str:
    if value >= 2 * threshold:
        return f"{what} has moved a lot from training"
    if value >= threshold:
        return f"{what} has moved clearly from training"
    if value >= threshold / 2:
        return f"{what} has moved a little from training"
    return f"{what} is as in training"


def _effect_words(f: FeatureDrift, score_words: str) -> str:
    e = f.effect
    if e is None or not f.drifted:
        return ""
    if score_words.startswith("chance"):
        now, before = f"{e.mean_now * 100:.1f} %", f"{e.mean_as_training * 100:.1f} %"
    else:
        now, before = f"{e.mean_now:.4g}", f"{e.mean_as_training:.4g}"
    return (f"; with it as in training the mean {score_words} would be {before} instead of "
            f"{now}")


def describe(f: FeatureDrift, score_words: str = "score") -> str:
    """One sentence a process engineer can act on: plain words first, the statistic in
    brackets behind them (PSI for numbers, Jensen–Shannon for categories), then what to do.

    >>> f = FeatureDrift("torque_nm", "Torque [Nm]", "numeric", 500, [Test("psi", 0.31, None,
    ...                  0.2)], drifted=True, alerting=True, plot={"mean_reference": 40.0,
    ...                  "mean_current": 48.0})
    >>> describe(f)
    'The spread of Torque [Nm] readings has moved clearly from training (PSI 0.31; mean 40 in training, 48 now); check the sensor, its calibration or the raw material.'
    """
    if not f.enough_rows:
        return (f"{f.label}: only {f.rows:,} values in this window; too few to judge drift "
                "(widen the window).")
    if f.kind == "numeric":
        p = f.test("psi")
        assert p is not None
        mean_ref, mean_cur = f.plot.get("mean_reference"), f.plot.get("mean_current")
        detail = f"PSI {p.statistic:.2f}"
        if mean_ref is not None and mean_cur is not None:
            detail += f"; mean {mean_ref:.4g} in training, {mean_cur:.4g} now"
        head = (_moved(p.statistic, p.threshold, f"the spread of {f.label} readings")
                + f" ({detail}){_effect_words(f, score_words)}")
        advice = "check the sensor, its calibration or the raw material"
    else:
        js = f.test("js")
        assert js is not None
        new = ""
        if f.new_categories:
            shown = ", ".join(f"{k} ({v:,})" for k, v in sorted(
                f.new_categories.items(), key=lambda kv: -kv[1])[:5])
            new = f"; new values the model never saw: {shown}"
        head = (_moved(js.statistic, js.threshold, f"the mix of {f.label}")
                + f" (Jensen–Shannon {js.statistic:.2f}){new}{_effect_words(f, score_words)}")
        advice = "check the product plan or how the value is entered"
    if f.drifted:
        tail = advice if f.alerting else "the model barely uses it, so no alert"
    else:
        tail = "nothing to do"
    return f"{head[0].upper()}{head[1:]}; {tail}."


__all__ = ["DriftReport", "FeatureDrift", "Test", "compare", "describe", "signals",
           "with_effects"]
