"""Paired comparison of two models on the same rows: is the new one really better?

Both models score exactly the same records, so their difference is measured row by row and
the noise that two separate holdouts would add cancels out:

    classifiers   McNemar's test on the rows where exactly one model is right (exact binomial
                  p-value and its mid-p version, which is less conservative on few rows), and
                  a paired bootstrap of the objective's metric: the same resampled rows score
                  both models, so the interval is on the *difference*
    regression    Wilcoxon's signed-rank test on the absolute errors, and the same paired
                  bootstrap of the metric (mae, rmse, ...)

The verdict and the p-value a person reads follow the bootstrap of the objective's metric,
because that is the number the plant asked for (a model can be right more often overall and
still catch fewer failures); the p-value is the bootstrap's two-sided one (twice the share of
resampled differences on the far side of zero), so it is below 0.05 exactly when the 95 %
interval excludes zero. McNemar's and Wilcoxon's tests are reported beside it, as a second
opinion on right/wrong answers or on error sizes:

    better      the whole 95 % interval of the difference favours the new model
    worse       the whole interval favours the current one
    unclear     the interval holds zero: no clear difference

>>> import numpy as np
>>> m = mcnemar(np.array([1, 1, 1, 1, 1, 1, 1, 0], bool), np.array([0, 0, 1, 1, 1, 1, 1, 1], bool))
>>> m.only_a, m.only_b, round(m.p_exact, 4)
(2, 1, 1.0)
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# The bootstrap kernels score every resample at once; sharing them keeps the paired
# differences and the holdout intervals of planta.core.metrics computed the same way.
from planta.core.metrics import (
    _binary_from_weights,
    _multiclass_from_weights,
    _regression_from_weights,
    _resample_weights,
)
from planta.core.spec import METRICS, Task
from planta.errors import InputError

FORMAT = "planta.comparison/1"
BETTER, UNCLEAR, WORSE = "better", "unclear", "worse"
LEVEL = 0.95
N_RESAMPLES = 2000
# What "p" means, beside every p-value a person reads.
P_VALUE_LINE = ("p is the chance of a difference at least this large if both models were "
                "equally good: below 0.05 it is unlikely to be luck.")
_DEFAULT_METRIC = {Task.BINARY: "pr_auc", Task.MULTICLASS: "f1_macro", Task.REGRESSION: "mae"}


@dataclass(frozen=True)
class McNemar:
    """McNemar's test on paired right/wrong answers.

    ``only_a``: rows model A got right and model B wrong; ``only_b`` the reverse. Under "equally
    good", each such disagreement goes either way with probability 1/2.
    """

    only_a: int
    only_b: int
    p_exact: float
    p_mid: float

    @property
    def disagreements(self) -> int:
        return self.only_a + self.only_b


def _binom_cdf_half(k: int, n: int) -> float:
    """P(X <= k) for X ~ Binomial(n, 1/2), exact in integers up to n = 2000."""
    if k < 0:
        return 0.0
    if k >= n:
        return 1.0
    if n <= 2000:
        # Python divides big integers correctly rounded: exact to the last bit.
        return sum(math.comb(n, i) for i in range(k + 1)) / (1 << n)
    from scipy.stats import binom

    return float(binom.cdf(k, n, 0.5))


def _binom_pmf_half(k: int, n: int) -> float:
    if not 0 <= k <= n:
        return 0.0
    return math.exp(math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1)
                    - n * math.log(2))


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> McNemar:
    """McNemar's exact test (two-sided) and its mid-p on two boolean "was right" arrays.

    Raises :class:`InputError` when the arrays differ in length.
    """
    a = np.asarray(correct_a, dtype=bool).ravel()
    b = np.asarray(correct_b, dtype=bool).ravel()
    if a.shape != b.shape:
        raise InputError(f"Both models must answer the same rows ({a.size} vs {b.size}).")
    only_a = int((a & ~b).sum())
    only_b = int((~a & b).sum())
    n = only_a + only_b
    if n == 0:
        return McNemar(only_a, only_b, 1.0, 1.0)
    k = min(only_a, only_b)
    exact = min(1.0, 2.0 * _binom_cdf_half(k, n))
    mid = min(1.0, 2.0 * _binom_cdf_half(k, n) - _binom_pmf_half(k, n))
    return McNemar(only_a, only_b, exact, max(0.0, mid))


@dataclass(frozen=True)
class Difference:
    """A metric of both models on the same rows, and the paired interval of ``a - b``."""

    metric: str
    a: float
    b: float
    diff: float
    lower: float
    upper: float
    higher_is_better: bool
    p_value: float = 1.0

    @property
    def verdict(self) -> str:
        """``better`` / ``worse`` when the whole interval favours A / B, else ``unclear``."""
        if not (math.isfinite(self.lower) and math.isfinite(self.upper)):
            return UNCLEAR
        gain_low, gain_high = ((self.lower, self.upper) if self.higher_is_better
                               else (-self.upper, -self.lower))
        if gain_low > 0:
            return BETTER
        if gain_high < 0:
            return WORSE
        return UNCLEAR


def metric_for(task: Task, goal_metric: str | None) -> str:
    """The metric the comparison is about: the objective's goal, else a sensible default."""
    if goal_metric and goal_metric in METRICS and task in METRICS[goal_metric][0]:
        return goal_metric
    if goal_metric == "savings" and task == Task.BINARY:
        return goal_metric
    return _DEFAULT_METRIC[task]


def _higher_is_better(metric: str) -> bool:
    if metric in ("savings",):
        return True
    if metric == "expected_cost":
        return False
    return METRICS[metric][1]


def paired_bootstrap(task: Task, y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray,
                     metric: str, *, threshold_a: float = 0.5, threshold_b: float = 0.5,
                     days: float | None = None, cost: Any = None,
                     n_resamples: int = N_RESAMPLES, level: float = LEVEL,
                     seed: int = 0) -> Difference:
    """The metric of both models and a percentile interval of ``metric(a) - metric(b)``,
    each resample scoring both models on the same drawn rows.

    ``pred_*`` are P(positive) (binary, with each model's own threshold), an n × k probability
    matrix or class codes (multiclass), or predicted values (regression). Classifiers resample
    within each class, as the holdout intervals do.
    """
    y = np.asarray(y)
    strata: np.ndarray | None = y.astype(int) if task != Task.REGRESSION else None

    def score(w: np.ndarray, pred: np.ndarray, threshold: float) -> np.ndarray:
        if task == Task.BINARY:
            out = _binary_from_weights(y.astype(int), np.asarray(pred, float), w, threshold,
                                       days, cost)
        elif task == Task.MULTICLASS:
            p = np.asarray(pred)
            codes = p.argmax(axis=1) if p.ndim == 2 else p.astype(int)
            k = int(max(y.max(initial=0), codes.max(initial=0))) + 1
            out = _multiclass_from_weights(y.astype(int), codes, k, w)
        else:
            out = _regression_from_weights(y.astype(float), np.asarray(pred, float), w)
        if metric not in out:
            raise InputError(f"The metric {metric!r} cannot be computed for this comparison.",
                             hint="Check the use case's objective.")
        return np.asarray(out[metric], dtype=float)

    n = y.shape[0]
    if n == 0:
        raise InputError("There are no rows to compare the two models on.",
                         hint="Ingest recent data or add feedback first.")
    ones = np.ones((1, n))
    a = float(score(ones, pred_a, threshold_a)[0])
    b = float(score(ones, pred_b, threshold_b)[0])
    rng = np.random.default_rng(seed)
    draws = []
    for w in _resample_weights(n, strata, n_resamples, rng):
        draws.append(score(w, pred_a, threshold_a) - score(w, pred_b, threshold_b))
    diffs = np.concatenate(draws)
    diffs = diffs[np.isfinite(diffs)]
    alpha = (1.0 - level) / 2.0
    if not diffs.size:
        return Difference(metric, a, b, a - b, math.nan, math.nan, _higher_is_better(metric))
    low, high = np.quantile(diffs, [alpha, 1.0 - alpha])
    p = min(1.0, 2.0 * min(float((diffs <= 0).mean()), float((diffs >= 0).mean())))
    return Difference(metric, a, b, a - b, float(low), float(high), _higher_is_better(metric),
                      p)


def wilcoxon_abs_errors(y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray) -> float:
    """Two-sided p-value of Wilcoxon's signed-rank test on |error of A| − |error of B|."""
    from scipy.stats import wilcoxon

    ea = np.abs(np.asarray(y, float) - np.asarray(pred_a, float))
    eb = np.abs(np.asarray(y, float) - np.asarray(pred_b, float))
    d = ea - eb
    if not np.any(d != 0):
        return 1.0
    return float(wilcoxon(ea, eb, zero_method="wilcox").pvalue)


@dataclass(frozen=True)
class Comparison:
    """Everything a page or a policy needs about "new model (A) against current (B)"."""

    task: str
    n_rows: int
    metric: str
    difference: Difference
    verdict: str
    p_value: float
    test: dict[str, Any]
    counts: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        def clean(v: Any) -> Any:
            return None if isinstance(v, float) and not math.isfinite(v) else (
                round(v, 6) if isinstance(v, float) else v)

        return {"format": FORMAT, "task": self.task, "n_rows": self.n_rows,
                "metric": self.metric, "verdict": self.verdict,
                "p_value": clean(self.p_value), "p_value_of": "paired_bootstrap",
                "test": {k: clean(v) for k, v in self.test.items()},
                "difference": {k: clean(v) for k, v in asdict(self.difference).items()},
                "counts": self.counts, "level": LEVEL}


def compare(task: Task | str, y: np.ndarray, pred_a: np.ndarray, pred_b: np.ndarray, *,
            metric: str, threshold_a: float = 0.5, threshold_b: float = 0.5,
            days: float | None = None, cost: Any = None, seed: int = 0,
            n_resamples: int = N_RESAMPLES) -> Comparison:
    """Compare model A (new) with model B (current) on the same rows.

    ``y`` is 0/1 (binary), class codes (multiclass) or values (regression); the predictions
    are as for :func:`paired_bootstrap`.
    """
    task = Task(task)
    y = np.asarray(y)
    diff = paired_bootstrap(task, y, pred_a, pred_b, metric, threshold_a=threshold_a,
                            threshold_b=threshold_b, days=days, cost=cost, seed=seed,
                            n_resamples=n_resamples)
    counts: dict[str, Any]
    if task == Task.REGRESSION:
        ea = np.abs(y.astype(float) - np.asarray(pred_a, float))
        eb = np.abs(y.astype(float) - np.asarray(pred_b, float))
        counts = {"closer_a": int((ea < eb).sum()), "closer_b": int((eb < ea).sum()),
                  "mae_a": float(ea.mean()), "mae_b": float(eb.mean())}
        test = {"name": "wilcoxon_signed_rank_abs_error",
                "p_value": wilcoxon_abs_errors(y, pred_a, pred_b)}
    else:
        if task == Task.BINARY:
            dec_a = np.asarray(pred_a, float) >= threshold_a
            dec_b = np.asarray(pred_b, float) >= threshold_b
            pos = y.astype(int) == 1
            counts = {"positives": int(pos.sum()), "negatives": int((~pos).sum()),
                      "caught_a": int((dec_a & pos).sum()), "caught_b": int((dec_b & pos).sum()),
                      "false_alarms_a": int((dec_a & ~pos).sum()),
                      "false_alarms_b": int((dec_b & ~pos).sum())}
            right_a, right_b = dec_a == pos, dec_b == pos
        else:
            pa, pb = np.asarray(pred_a), np.asarray(pred_b)
            code_a = pa.argmax(axis=1) if pa.ndim == 2 else pa.astype(int)
            code_b = pb.argmax(axis=1) if pb.ndim == 2 else pb.astype(int)
            right_a, right_b = code_a == y.astype(int), code_b == y.astype(int)
            counts = {"right_a": int(right_a.sum()), "right_b": int(right_b.sum())}
        m = mcnemar(right_a, right_b)
        counts.update(only_a_right=m.only_a, only_b_right=m.only_b)
        test = {"name": "mcnemar", "p_value": m.p_mid, "p_exact": m.p_exact,
                "only_a_right": m.only_a, "only_b_right": m.only_b}
    return Comparison(task.value, int(y.shape[0]), metric, diff, diff.verdict, diff.p_value,
                      test, counts)


# Metric names in plant words (the UI has its own, translated, in its catalogue).
METRIC_WORDS = {
    "recall": "share of real failures caught (recall)",
    "precision": "share of alarms that are real (precision)",
    "f1": "balance of catching failures and raising only real alarms (F1)",
    "accuracy": "share of right answers (accuracy)",
    "balanced_accuracy": "right answers, every class counted equally (balanced accuracy)",
    "roc_auc": "ranking quality (ROC-AUC; 0.5 is a coin toss)",
    "pr_auc": "alarm quality (PR-AUC)",
    "specificity": "share of normal cases left alone (specificity)",
    "false_alarm_rate": "share of normal cases that raise a false alarm",
    "false_alarms_per_day": "false alarms a day",
    "f1_macro": "balanced score over all classes (macro F1)",
    "rmse": "typical error (RMSE)",
    "mae": "average error (MAE)",
    "mape": "average relative error (MAPE)",
    "r2": "share of the variation explained (R²)",
    "savings": "money saved against no model",
}


def describe(report: Mapping[str, Any], *, new: str = "the new model",
             current: str = "the current model") -> list[str]:
    """The comparison in plain words: what changed on the same records, whether it is likely
    luck, what p means, and the second opinion of McNemar's or Wilcoxon's test.

    >>> print(describe({"task": "binary", "n_rows": 412, "verdict": "better", "p_value": 0.01,
    ...                 "metric": "recall", "counts": {"caught_a": 30, "caught_b": 21,
    ...                 "false_alarms_a": 5, "false_alarms_b": 8}})[0])
    ... # doctest: +NORMALIZE_WHITESPACE
    On the same 412 recent records, the new model catches 9 more failures and raises 3 fewer
    false alarms; that difference is unlikely to be luck (p = 0.01).
    """
    n = report.get("n_rows", 0)
    counts = report.get("counts") or {}
    verdict = report.get("verdict")
    p = report.get("p_value")
    p_text = "" if p is None else f" ({format_p(float(p))})"
    if verdict == BETTER:
        luck = f"that difference is unlikely to be luck{p_text}"
    elif verdict == WORSE:
        luck = f"{new} is worse, and that is unlikely to be luck{p_text}"
    else:
        luck = f"that difference could well be luck{p_text}: no clear difference"
    task = report.get("task")
    if task == "binary":
        caught = int(counts.get("caught_a", 0)) - int(counts.get("caught_b", 0))
        alarms = int(counts.get("false_alarms_a", 0)) - int(counts.get("false_alarms_b", 0))
        what = f"{new} catches {_more(caught, 'failure')} and raises {_more(alarms, 'false alarm')}"
    elif task == "multiclass":
        what = (f"{new} is right {_times(counts.get('right_a', 0))} and {current} "
                f"{_times(counts.get('right_b', 0))}")
    else:
        a, b = counts.get("mae_a"), counts.get("mae_b")
        what = (f"{new}'s average error is {float(a):.4g} against {float(b):.4g}"
                if a is not None and b is not None else "the errors differ")
    lines = [f"On the same {n} recent records, {what}; {luck}."]
    diff = report.get("difference") or {}
    metric = str(report.get("metric"))
    if diff.get("lower") is not None and diff.get("upper") is not None:
        words = METRIC_WORDS.get(metric, metric)
        lines.append(f"{words[:1].upper()}{words[1:]}: {diff.get('a'):.3f} "
                     f"for {new} against {diff.get('b'):.3f} for {current}; the difference "
                     f"lies between {diff['lower']:+.3f} and {diff['upper']:+.3f} in 95 of 100 "
                     "resamplings of these records.")
    test = report.get("test") or {}
    if test.get("name") == "mcnemar" and test.get("p_value") is not None:
        lines.append(f"Where the two disagree, {new} is right {_times(test.get('only_a_right'))} "
                     f"and {current} {_times(test.get('only_b_right'))} "
                     f"({format_p(float(test['p_value']))}, counting every record alike).")
    elif test.get("p_value") is not None:
        lines.append(f"{new[:1].upper()}{new[1:]} is closer to the truth on "
                     f"{counts.get('closer_a')} records, {current} on {counts.get('closer_b')} "
                     f"({format_p(float(test['p_value']))}, by the size of the errors).")
    lines.append(P_VALUE_LINE)
    return lines


def _times(n: Any) -> str:
    return f"{n} time" if n == 1 else f"{n} times"


def _more(delta: int, noun: str) -> str:
    if delta == 0:
        return f"as many {noun}s"
    word = "more" if delta > 0 else "fewer"
    count = abs(delta)
    return f"{count} {word} {noun}{'' if count == 1 else 's'}"


def format_p(p: float) -> str:
    """A p-value as a person reads it.

    >>> format_p(0.0001), format_p(0.0123), format_p(0.342)
    ('p < 0.001', 'p = 0.012', 'p = 0.34')
    """
    return "p < 0.001" if p < 0.001 else f"p = {p:.2g}" if p < 0.1 else f"p = {p:.2f}"


__all__ = ["BETTER", "FORMAT", "METRIC_WORDS", "P_VALUE_LINE", "UNCLEAR", "WORSE", "Comparison",
           "Difference", "McNemar", "compare", "describe", "format_p", "mcnemar", "metric_for",
           "paired_bootstrap", "wilcoxon_abs_errors"]
