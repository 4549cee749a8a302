"""Model performance in production: realised from ground truth, estimated without it.

    labels arrived ──► realised_metrics(task, y, predicted)   bootstrap intervals (core.metrics)
    no labels yet ──► ScoreSummary (additive sums per window) ──► estimate_binary / _multiclass
                      confidence-based performance estimation (CBPE): with calibrated
                      probabilities, a row alarmed at p is a real failure with chance p, so
                      the expected confusion matrix is E[TP] = Σ p over alarms,
                      E[FN] = Σ p over the rest; intervals come from simulating the labels
    either ──────────► judge(objective, estimates) ──► Verdict: met / not_met / unclear
                      ──► sentence(...) in plant words

**The summary is additive and bounded.** A window keeps, for alarmed and not-alarmed rows
apart, the count and the sum of p in ``BINS`` equal bins of the probability: windows add up by
``+``, and memory does not grow with the number of rows. The expected counts use the exact
sums, so point estimates are exact. The interval simulates each bin's labels as
Binomial(count, mean p of the bin) instead of the exact Poisson-binomial: that can only widen
it, by at most count x (bin width)² / 4 in variance per bin (1/1600 of a row per row with 20
bins), which is negligible next to the sampling spread.

**Honest limits.** Estimation needs calibrated probabilities (planta serves calibrated ones),
and holds only while the relation between inputs and failures is what it was in training
(covariate shift is fine, concept drift is not: then only labels tell). Regression has no
estimate without measured values: :func:`estimate_regression` says so rather than invent one.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from planta.core.metrics import (
    Estimate,
    _binary_from_weights,
    bootstrap_metrics,
    rate_counts,
    widen_rate,
)
from planta.core.spec import Clause, Cost, Objective, Task
from planta.errors import InputError

# Sentences are made here as data (said: a catalogue key and values); the catalogue's English
# words are looked up only where a caller asks for plain English text (judge, sentence).
from planta.i18n import DEFAULT_LANG, said, said_number, say, translator

BINS = 20
# Simulated label draws per window: the 2.5 % and 97.5 % quantiles of 1,000 draws sit within
# about half a standard error of the true ones, plenty for a monitoring chart.
DRAWS = 1000
LEVEL = 0.95
# Bootstrap resamples for realised metrics per window. The gate uses 1,000 on its holdout;
# the cost grows with resamples x labelled rows (a year of 100,000 labels: 20 million weights
# per metric), and 200 put the 2.5 % quantile within about 1 percentile point of its limit.
RESAMPLES = 200
# Binary metrics that can be estimated from calibrated probabilities alone.
ESTIMABLE = ("recall", "precision", "f1", "accuracy", "specificity", "false_alarm_rate",
             "false_alarms_per_day", "expected_cost", "savings")
_TRUTHY = {"1", "true", "yes", "y", "t", "si", "sí", "ja", "oui", "failure", "fail", "positive"}
_FALSY = {"0", "false", "no", "n", "f", "nein", "non", "ok", "none", "negative", "pass"}


# ---------------------------------------------------------------------------------------------
# Streaming summary for estimation
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class ScoreSummary:
    """Counts and probability sums of one window, per (alarm, probability bin).

    ``counts[a, b]`` rows with alarm ``a`` (0 no, 1 yes) whose probability falls in bin ``b``;
    ``sums[a, b]`` the sum of their probabilities. For multiclass models, feed the
    probability of the predicted class and ``alarm`` all False (see :func:`estimate_multiclass`).

    >>> s = ScoreSummary.from_scores(np.array([0.1, 0.9, 0.8]), np.array([False, True, True]))
    >>> s.n, s.n_alarm, round(s.expected_positives, 2)
    (3, 2, 1.8)
    >>> (s + s).n
    6
    """

    counts: np.ndarray
    sums: np.ndarray

    @classmethod
    def empty(cls, bins: int = BINS) -> ScoreSummary:
        return cls(np.zeros((2, bins), dtype=np.int64), np.zeros((2, bins)))

    @classmethod
    def from_scores(cls, probability: np.ndarray, alarm: np.ndarray,
                    bins: int = BINS) -> ScoreSummary:
        """Summarise probabilities (NaN rows are left out) and the alarms raised on them."""
        p = np.asarray(probability, dtype=np.float64).ravel()
        a = np.asarray(alarm, dtype=bool).ravel()
        if p.shape != a.shape:
            raise InputError(f"{p.shape[0]} probabilities but {a.shape[0]} alarm flags.")
        keep = np.isfinite(p)
        p, a = np.clip(p[keep], 0.0, 1.0), a[keep]
        index = a.astype(np.int64) * bins + bin_of(p, bins)
        counts = np.bincount(index, minlength=2 * bins).reshape(2, bins)
        sums = np.bincount(index, weights=p, minlength=2 * bins).reshape(2, bins)
        return cls(counts.astype(np.int64), sums)

    @classmethod
    def from_bins(cls, rows: Iterable[tuple[int, int, int, float]],
                  bins: int = BINS) -> ScoreSummary:
        """From ``(alarm, bin, count, sum)`` rows, as a SQL ``GROUP BY`` returns them."""
        counts = np.zeros((2, bins), dtype=np.int64)
        sums = np.zeros((2, bins))
        for alarm, b, count, total in rows:
            a, k = int(bool(alarm)), min(max(int(b), 0), bins - 1)
            counts[a, k] += int(count)
            sums[a, k] += float(total)
        return cls(counts, sums)

    def __add__(self, other: ScoreSummary) -> ScoreSummary:
        return ScoreSummary(self.counts + other.counts, self.sums + other.sums)

    @property
    def n(self) -> int:
        return int(self.counts.sum())

    @property
    def n_alarm(self) -> int:
        return int(self.counts[1].sum())

    @property
    def expected_positives(self) -> float:
        return float(self.sums.sum())

    def to_dict(self) -> dict[str, Any]:
        return {"counts": self.counts.tolist(), "sums": [[round(v, 9) for v in row]
                                                         for row in self.sums.tolist()]}


def bin_of(p: np.ndarray, bins: int = BINS) -> np.ndarray:
    """The bin of each probability (1.0 falls in the last bin)."""
    return np.minimum((np.asarray(p) * bins).astype(np.int64), bins - 1)


# ---------------------------------------------------------------------------------------------
# Estimation (CBPE)
# ---------------------------------------------------------------------------------------------

def _draw(counts: np.ndarray, sums: np.ndarray, draws: int,
          rng: np.random.Generator) -> np.ndarray:
    """Simulated totals of positives over the bins (shape ``draws``)."""
    used = counts > 0
    if not used.any():
        return np.zeros(draws)
    n = counts[used]
    p = np.clip(sums[used] / n, 0.0, 1.0)
    return rng.binomial(n[None, :], p[None, :], size=(draws, n.size)).sum(axis=1).astype(float)


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def _binary_table(tp: np.ndarray, fn: np.ndarray, n_alarm: float, n_quiet: float,
                  days: float | None, cost: Cost | None) -> dict[str, np.ndarray]:
    fp, tn = n_alarm - tp, n_quiet - fn
    out = {"recall": _ratio(tp, tp + fn), "precision": _ratio(tp, np.full_like(tp, n_alarm)),
           "f1": _ratio(2 * tp, 2 * tp + fp + fn), "accuracy": _ratio(tp + tn, tp + tn + fp + fn),
           "specificity": _ratio(tn, tn + fp), "false_alarm_rate": _ratio(fp, fp + tn)}
    if days is not None and days > 0:
        out["false_alarms_per_day"] = fp / days
    if cost is not None:
        spent = cost.missed * fn + cost.false_alarm * fp
        baseline = np.minimum(cost.missed * (tp + fn), cost.false_alarm * (fp + tn))
        out["expected_cost"] = spent
        out["savings"] = baseline - spent
    return out


def estimate_binary(summary: ScoreSummary, *, days: float | None = None,
                    cost: Cost | None = None, level: float = LEVEL, draws: int = DRAWS,
                    seed: int = 0) -> dict[str, Estimate]:
    """Expected binary metrics of a window from calibrated probabilities, with intervals.

    The point value is the metric of the expected confusion matrix; the interval holds
    ``level`` of the metric's values over label sets simulated from the probabilities.
    Metrics that are undefined (no expected failure at all) come back as NaN.

    >>> p = np.r_[np.full(80, 0.9), np.full(920, 0.01)]
    >>> est = estimate_binary(ScoreSummary.from_scores(p, p >= 0.5))
    >>> round(est["recall"].value, 3), est["recall"].lower < est["recall"].value
    (0.887, True)
    """
    if summary.n == 0:
        return {}
    rng = np.random.default_rng(seed)
    n_alarm, n_quiet = float(summary.counts[1].sum()), float(summary.counts[0].sum())
    point = _binary_table(np.array([summary.sums[1].sum()]), np.array([summary.sums[0].sum()]),
                          n_alarm, n_quiet, days, cost)
    tp = _draw(summary.counts[1], summary.sums[1], draws, rng)
    fn = _draw(summary.counts[0], summary.sums[0], draws, rng)
    drawn = _binary_table(tp, fn, n_alarm, n_quiet, days, cost)
    names = list(point)
    lows, highs = _quantiles(np.vstack([drawn[n] for n in names]), level)
    return {name: _bounded(float(point[name][0]), lows[i], highs[i])
            for i, name in enumerate(names)}


def estimate_multiclass(summary: ScoreSummary, *, level: float = LEVEL, draws: int = DRAWS,
                        seed: int = 0) -> dict[str, Estimate]:
    """Expected accuracy from the calibrated probability of each predicted class.

    >>> s = ScoreSummary.from_scores(np.full(200, 0.7), np.zeros(200, dtype=bool))
    >>> round(estimate_multiclass(s)["accuracy"].value, 3)
    0.7
    """
    if summary.n == 0:
        return {}
    rng = np.random.default_rng(seed)
    counts, sums = summary.counts.sum(axis=0), summary.sums.sum(axis=0)
    right = _draw(counts, sums, draws, rng)
    return {"accuracy": _interval(float(sums.sum()) / summary.n, right / summary.n, level)}


def estimate_regression() -> dict[str, Estimate]:
    """Nothing: a regression model's error cannot be known before the measured values arrive
    (its prediction carries no probability of being right). Returned empty on purpose."""
    return {}


def _interval(value: float, draws: np.ndarray, level: float) -> Estimate:
    lows, highs = _quantiles(draws[None, :], level)
    return _bounded(value, lows[0], highs[0])


def _bounded(value: float, low: float, high: float) -> Estimate:
    if not math.isfinite(value) or not (math.isfinite(low) and math.isfinite(high)):
        return Estimate(value, math.nan, math.nan)
    return Estimate(value, float(min(low, value)), float(max(high, value)))


def _quantiles(draws: np.ndarray, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row, the (1 - level) / 2 and (1 + level) / 2 quantiles of the finite values
    (numpy's default linear interpolation), NaN for a row with none; one sort for all rows
    (np.quantile row by row cost more than the simulation itself)."""
    alpha = (1.0 - level) / 2.0
    ordered = np.sort(draws, axis=1)                 # NaN sorts last
    finite = np.isfinite(draws).sum(axis=1)
    out = []
    for q in (alpha, 1.0 - alpha):
        pos = q * np.maximum(finite - 1, 0)
        lo = np.floor(pos).astype(np.int64)
        hi = np.minimum(lo + 1, np.maximum(finite - 1, 0))
        frac = pos - lo
        rows = np.arange(draws.shape[0])
        value = ordered[rows, lo] * (1 - frac) + ordered[rows, hi] * frac
        out.append(np.where(finite > 0, value, np.nan))
    return out[0], out[1]


# ---------------------------------------------------------------------------------------------
# Realised metrics
# ---------------------------------------------------------------------------------------------

def realised_metrics(task: Task, y_true: np.ndarray, predicted: np.ndarray, *,
                     threshold: float = 0.5, days: float | None = None,
                     cost: Cost | None = None, resamples: int = RESAMPLES,
                     level: float = LEVEL, seed: int = 0,
                     metrics: Collection[str] | None = None) -> dict[str, Estimate]:
    """Metrics on the labelled predictions of a window, with bootstrap intervals.

    The same definitions and interval machinery as the training gate
    (:func:`planta.core.metrics.bootstrap_metrics`), so a window and the validation interval
    are comparable. ``metrics`` keeps only those named (default: all). Empty input gives ``{}``.

    A binary window asked for no ranking metric (ROC-AUC, PR-AUC) is resampled from its
    confusion counts: drawing each class's rows with replacement (the stratified bootstrap)
    draws its alarms from a binomial law, so ``resamples`` binomial draws per class give the
    same distribution of every count-based metric in microseconds instead of a
    (resamples x rows) weight matrix.

    >>> y = np.array([1, 1, 0, 0, 1, 0])
    >>> p = np.array([0.9, 0.2, 0.1, 0.3, 0.8, 0.7])
    >>> round(realised_metrics(Task.BINARY, y, p)["recall"].value, 3)
    0.667
    """
    if np.asarray(y_true).size == 0:
        return {}
    if task == Task.BINARY and metrics is not None and _RANKING.isdisjoint(metrics):
        return _binary_from_counts(y_true, predicted, threshold=threshold, days=days,
                                   cost=cost, resamples=resamples, level=level, seed=seed,
                                   metrics=metrics)
    return bootstrap_metrics(task, y_true, predicted, threshold=threshold, days=days, cost=cost,
                             n_resamples=resamples, level=level, seed=seed, metrics=metrics)


_RANKING = frozenset({"roc_auc", "pr_auc"})
# The four cells of a confusion matrix as rows of a table (truth, score): weights on them are
# counts, so the training gate's own kernel computes every count-based metric from them.
_CELLS_Y = np.array([1, 1, 0, 0])
_CELLS_P = np.array([1.0, 0.0, 1.0, 0.0])


def _binary_from_counts(y_true: np.ndarray, probability: np.ndarray, *, threshold: float,
                        days: float | None, cost: Cost | None, resamples: int, level: float,
                        seed: int, metrics: Collection[str]) -> dict[str, Estimate]:
    """Stratified-bootstrap intervals of the count-based binary metrics, drawn as binomials.

    >>> y = np.array([1] * 20 + [0] * 180)
    >>> p = np.r_[np.full(16, 0.9), np.full(4, 0.1), np.full(9, 0.8), np.full(171, 0.2)]
    >>> est = _binary_from_counts(y, p, threshold=0.5, days=1.0, cost=None, resamples=200,
    ...                           level=0.95, seed=0, metrics={"recall", "precision"})
    >>> round(est["recall"].value, 2), est["recall"].lower < 0.8 < est["recall"].upper
    (0.8, True)
    """
    y = np.asarray(y_true).astype(int).ravel()
    alarm = np.asarray(probability, dtype=np.float64).ravel() >= threshold
    pos = y == 1
    n_pos, n_neg = int(pos.sum()), int((~pos).sum())
    tp, fp = int((pos & alarm).sum()), int((~pos & alarm).sum())
    rng = np.random.default_rng(seed)
    tp_drawn = rng.binomial(n_pos, tp / n_pos, resamples) if n_pos else np.zeros(resamples)
    fp_drawn = rng.binomial(n_neg, fp / n_neg, resamples) if n_neg else np.zeros(resamples)
    weights = np.column_stack([np.r_[tp, tp_drawn], n_pos - np.r_[tp, tp_drawn],
                               np.r_[fp, fp_drawn], n_neg - np.r_[fp, fp_drawn]]).astype(float)
    table = _binary_from_weights(_CELLS_Y, _CELLS_P, weights, 0.5, days, cost, ranking=False)
    names = [key for key in table if key in metrics]
    drawn = np.vstack([table[key][1:] for key in names]) if names else np.zeros((0, 1))
    drawn[~np.isfinite(drawn)] = np.nan
    alpha = (1.0 - level) / 2.0
    with warnings.catch_warnings():  # a metric undefined in every draw: NaN bounds
        warnings.simplefilter("ignore", RuntimeWarning)
        lows, highs = np.nanquantile(drawn, [alpha, 1.0 - alpha], axis=1)
    counts = rate_counts(y, alarm.astype(np.float64), 0.5)
    return {key: Estimate(float(table[key][0]),
                          *widen_rate(key, float(lows[i]), float(highs[i]), counts, level))
            for i, key in enumerate(names)}


# ---------------------------------------------------------------------------------------------
# Ground truth as the model's classes
# ---------------------------------------------------------------------------------------------

def _text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return "true" if value else "false"
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        if not math.isfinite(float(value)):
            return None
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    text = str(value).strip()
    return text or None


def label_codes(values: Sequence[Any], classes: Sequence[str]) -> np.ndarray:
    """Feedback values as class codes (index into ``classes``), -1 where unreadable.

    ``classes`` are the model's class names as trained (binary: negative first, positive
    last). A value matches a class when it is spelled the same once numbers and case are
    normalised (1, 1.0, "1", " 1 " are one label; "Yes" and "yes" too); for a binary model,
    yes/true/1-like words also match a yes-like positive class, and their opposites the other.

    >>> label_codes([1, "1", 1.0, "yes", "0", False, "maybe", None], ["0", "1"]).tolist()
    [1, 1, 1, 1, 0, 0, -1, -1]
    >>> label_codes(["Failure", "ok", "FAILURE"], ["ok", "failure"]).tolist()
    [1, 0, 1]
    """
    names = [_text(c) or "" for c in classes]
    lookup: dict[str, int] = {}
    for code, name in enumerate(names):
        lookup.setdefault(name.lower(), code)
        number = _number(name)
        if number is not None:
            lookup.setdefault(_text(number) or name, code)
    if len(names) == 2:
        neg, pos = names[0].lower(), names[1].lower()
        if neg in _FALSY or pos in _TRUTHY or neg not in _TRUTHY:
            for word in _TRUTHY:
                lookup.setdefault(word, 1)
            for word in _FALSY:
                lookup.setdefault(word, 0)
    out = np.full(len(values), -1, dtype=np.int64)
    for i, value in enumerate(values):
        text = _text(value)
        if text is None:
            continue
        code = lookup.get(text.lower())
        if code is None:
            number = _number(text)
            code = lookup.get(_text(number) or "") if number is not None else None
        if code is not None:
            out[i] = code
    return out


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# ---------------------------------------------------------------------------------------------
# Verdicts and sentences
# ---------------------------------------------------------------------------------------------

MET, NOT_MET, UNCLEAR, UNKNOWN = "met", "not_met", "unclear", "unknown"


@dataclass(frozen=True)
class Verdict:
    """Whether a window meets the objective, with confidence.

    ``state``: ``met`` (every clause met even at the unfavourable end of its interval),
    ``not_met`` (some clause missed even at the favourable end: the objective is no longer
    met, with confidence), ``unclear`` (the interval straddles a target), ``unknown`` (a
    clause's metric is not available in this window).
    """

    state: str
    reasons: tuple[str, ...] = ()
    # The same reasons as data (planta.i18n.said), for a reader in another language.
    reasons_said: tuple[dict[str, Any], ...] = ()

    @property
    def decided(self) -> bool:
        return self.state in (MET, NOT_MET)

    def reasons_in(self, t: Any, state: str | None = None) -> list[str]:
        """The reasons in ``t``'s language (only those of clauses in ``state``, if given).

        >>> from planta.core.spec import parse_objective
        >>> v = judge(parse_objective("recall>=0.8", Task.BINARY), {"recall": Estimate(0.6, 0.5, 0.7)})
        >>> v.reasons_in(translator("es"), NOT_MET)
        ['recall>=0.8 no se cumple: ni siquiera el extremo favorable, 0,7, lo alcanza']
        """
        if len(self.reasons_said) != len(self.reasons):  # made by hand, without the data
            return list(self.reasons) if state is None else []
        return [say(d, t) for d in self.reasons_said
                if state is None or d.get("params", {}).get("state") == state]

    def to_dict(self) -> dict[str, Any]:
        return {"state": self.state, "reasons": list(self.reasons),
                "reasons_said": list(self.reasons_said)}


def objective_clauses(objective: Objective) -> tuple[Clause, ...]:
    """The clauses a window is judged on (a cost objective: savings above zero)."""
    if objective.cost is not None:
        return (Clause("savings", ">=", 0.0),)
    return objective.clauses


def judge(objective: Objective, estimates: Mapping[str, Estimate]) -> Verdict:
    """Judge a window's metrics against the objective with their intervals.

    >>> from planta.core.spec import parse_objective
    >>> o = parse_objective("recall>=0.8", Task.BINARY)
    >>> judge(o, {"recall": Estimate(0.6, 0.5, 0.7)}).state
    'not_met'
    >>> judge(o, {"recall": Estimate(0.82, 0.7, 0.9)}).state
    'unclear'
    """
    states: list[str] = []
    docs: list[dict[str, Any]] = []
    for clause in objective_clauses(objective):
        est = estimates.get(clause.metric)
        if est is None or not all(math.isfinite(v) for v in (est.value, est.lower, est.upper)):
            states.append(UNKNOWN)
            docs.append(said("perf.reason.unknown", metric=clause.metric, state=UNKNOWN))
            continue
        good, bad = (est.lower, est.upper) if clause.higher_is_better else (est.upper, est.lower)
        if clause.met_by(good):
            states.append(MET)
            docs.append(said("perf.reason.met", clause=str(clause), v=said_number(good),
                             state=MET))
        elif not clause.met_by(bad):
            states.append(NOT_MET)
            docs.append(said("perf.reason.not_met", clause=str(clause), v=said_number(bad),
                             state=NOT_MET))
        else:
            states.append(UNCLEAR)
            docs.append(said("perf.reason.unclear", clause=str(clause),
                             low=said_number(est.lower), high=said_number(est.upper),
                             state=UNCLEAR))
    if not states:
        return _verdict(UNKNOWN, [said("perf.reason.none")])
    for state in (NOT_MET, UNKNOWN, UNCLEAR):
        if state in states:
            return _verdict(state, docs)
    return _verdict(MET, docs)


def _verdict(state: str, docs: list[dict[str, Any]]) -> Verdict:
    english = translator(DEFAULT_LANG)
    return Verdict(state, tuple(say(d, english) for d in docs), tuple(docs))


# Counted out of 100 in the sentences (their catalogue keys: perf.<metric>, perf.<metric>.est).
_COUNTED = frozenset({"recall", "precision", "specificity", "false_alarm_rate", "accuracy",
                      "balanced_accuracy", "f1", "f1_macro"})
_LABELLED = frozenset({"false_alarms_per_day", "expected_cost", "savings", "rmse", "mae",
                       "mape", "r2", "roc_auc", "pr_auc"})


def sentence_said(metric: str, est: Estimate, *, period: Any, estimated: bool,
                  target: float | None = None, positive: str = "failures") -> dict[str, Any]:
    """One plant-words sentence about a metric in a window, as data (:func:`planta.i18n.said`)
    that any language can say; ``period`` is text or a said sentence itself."""
    if not math.isfinite(est.value):
        return said("perf.unknown", metric=metric, period=period)
    hedge = math.isfinite(est.lower) and math.isfinite(est.upper)
    if metric in _COUNTED:
        def pct(v: float) -> dict[str, Any]:
            return said_number(v * 100, 0)
        text = said(f"perf.{metric}" + (".est" if estimated else ""), pos=positive,
                    v=pct(est.value))
        span: Any = said("perf.between", low=pct(est.lower), high=pct(est.upper)) if hedge \
            else ""
        goal: Any = said("perf.goal", target=pct(target)) if target is not None else ""
    else:
        label = said(f"perf.label.{metric}") if metric in _LABELLED else metric
        text = said("perf.about.est" if estimated else "perf.about", label=label,
                    v=said_number(est.value))
        span = said("perf.between", low=said_number(est.lower),
                    high=said_number(est.upper)) if hedge else ""
        goal = said("perf.goal", target=said_number(target)) if target is not None else ""
    return said("perf.sentence", text=text, span=span, period=period, goal=goal)


def sentence(metric: str, est: Estimate, *, period: str, estimated: bool,
             target: float | None = None, positive: str = "failures",
             t: Any = None) -> str:
    """One plant-words sentence about a metric in a window, in ``t``'s language (English
    by default; :func:`sentence_said` gives it as data).

    >>> print(sentence("recall", Estimate(0.78, 0.70, 0.85), period="last week",
    ...                estimated=False, target=0.8))  # doctest: +NORMALIZE_WHITESPACE
    Out of 100 real failures, the model caught about 78 (between 70 and 85) last week;
    the goal is 80.
    """
    return say(sentence_said(metric, est, period=period, estimated=estimated, target=target,
                             positive=positive), t or translator(DEFAULT_LANG))


__all__ = ["BINS", "DRAWS", "ESTIMABLE", "LEVEL", "MET", "NOT_MET", "RESAMPLES", "UNCLEAR",
           "UNKNOWN", "ScoreSummary", "Verdict", "bin_of", "estimate_binary",
           "estimate_multiclass", "estimate_regression", "judge", "label_codes",
           "objective_clauses", "realised_metrics", "sentence", "sentence_said"]
