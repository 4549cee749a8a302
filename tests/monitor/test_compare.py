"""The paired comparison's statistics against SciPy, and its interval's coverage."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.stats import binom, binomtest, wilcoxon

from planta.core.compare import (
    BETTER,
    P_VALUE_LINE,
    UNCLEAR,
    WORSE,
    Difference,
    compare,
    describe,
    mcnemar,
    metric_for,
    paired_bootstrap,
    wilcoxon_abs_errors,
)
from planta.core.spec import Task


def _pair(only_a: int, only_b: int, both: int = 50, neither: int = 7) -> tuple[np.ndarray, ...]:
    a = np.r_[np.ones(only_a), np.zeros(only_b), np.ones(both), np.zeros(neither)].astype(bool)
    b = np.r_[np.zeros(only_a), np.ones(only_b), np.ones(both), np.zeros(neither)].astype(bool)
    return a, b


@pytest.mark.parametrize("only_a,only_b", [(0, 0), (0, 1), (3, 0), (9, 3), (3, 9), (10, 10),
                                           (25, 40), (120, 80), (700, 650), (1500, 1390),
                                           (2600, 2500)])
def test_mcnemar_exact_matches_scipy_binomtest(only_a: int, only_b: int) -> None:
    result = mcnemar(*_pair(only_a, only_b))
    assert (result.only_a, result.only_b) == (only_a, only_b)
    n = only_a + only_b
    expected = 1.0 if n == 0 else binomtest(only_a, n, 0.5).pvalue
    assert result.p_exact == pytest.approx(expected, abs=1e-9, rel=1e-9)
    # mid-p: the exact p-value less the probability of the observed split itself.
    if n:
        k = min(only_a, only_b)
        mid = min(1.0, 2 * binom.cdf(k, n, 0.5) - binom.pmf(k, n, 0.5))
        assert result.p_mid == pytest.approx(mid, abs=1e-9, rel=1e-9)
        assert result.p_mid <= result.p_exact


def test_mcnemar_refuses_rows_that_do_not_pair() -> None:
    from planta.errors import InputError

    with pytest.raises(InputError):
        mcnemar(np.ones(3, bool), np.ones(4, bool))


def test_wilcoxon_on_absolute_errors_matches_scipy() -> None:
    rng = np.random.default_rng(3)
    y = rng.normal(50, 10, 300)
    a = y + rng.normal(0, 2.0, 300)
    b = y + rng.normal(0, 2.6, 300)
    expected = wilcoxon(np.abs(y - a), np.abs(y - b)).pvalue
    assert wilcoxon_abs_errors(y, a, b) == pytest.approx(expected, abs=1e-9)
    assert wilcoxon_abs_errors(y, a, a) == 1.0


def test_paired_bootstrap_interval_covers_the_true_difference() -> None:
    """Two classifiers whose true accuracies differ by 0.04; in repeated samples of 400 rows,
    the 95 % paired interval covers 0.04 about 95 % of the time."""
    rng = np.random.default_rng(11)
    true_diff, covered, trials = 0.04, 0, 120
    for i in range(trials):
        n = 400
        y = rng.integers(0, 2, n)
        u = rng.random(n)
        # Correlated errors, as two models of one plant have: A right w.p. 0.84, B 0.80.
        right_a = u < 0.84
        right_b = (u < 0.78) | ((u >= 0.84) & (u < 0.86))
        pa = np.where(right_a, y, 1 - y).astype(float)
        pb = np.where(right_b, y, 1 - y).astype(float)
        d = paired_bootstrap(Task.BINARY, y, pa, pb, "accuracy", n_resamples=400, seed=i)
        covered += d.lower <= true_diff <= d.upper
    assert 0.89 <= covered / trials <= 0.99


def test_paired_interval_is_narrower_than_separate_intervals() -> None:
    """Pairing is the point: the same rows cancel most of the noise."""
    rng = np.random.default_rng(5)
    y = (rng.random(600) < 0.1).astype(int)
    signal = y * 1.2 + rng.normal(0, 0.6, 600)
    pa = 1 / (1 + np.exp(-(signal + rng.normal(0, 0.1, 600))))
    pb = 1 / (1 + np.exp(-(signal + rng.normal(0, 0.1, 600))))
    paired = paired_bootstrap(Task.BINARY, y, pa, pb, "roc_auc", n_resamples=500)
    from planta.core.metrics import bootstrap_metrics

    ea = bootstrap_metrics(Task.BINARY, y, pa, n_resamples=500)["roc_auc"]
    assert paired.upper - paired.lower < 0.5 * (ea.upper - ea.lower)


def test_the_p_value_shown_agrees_with_the_verdict() -> None:
    """The headline p is the bootstrap's: below 0.05 exactly when the interval excludes 0."""
    rng = np.random.default_rng(8)
    for i in range(30):
        y = (rng.random(300) < 0.2).astype(int)
        base = y * rng.uniform(0.2, 1.5) + rng.normal(0, 0.7, 300)
        pa = base + rng.normal(0, rng.uniform(0.05, 1.0), 300)
        pb = base + rng.normal(0, rng.uniform(0.05, 1.0), 300)
        r = compare(Task.BINARY, y, pa, pb, metric="roc_auc", n_resamples=400, seed=i)
        assert (r.p_value < 0.05) == (r.verdict != UNCLEAR) or abs(r.p_value - 0.05) < 0.01


def test_verdicts_follow_the_interval_and_the_metric_direction() -> None:
    assert Difference("recall", .9, .8, .1, .02, .18, True).verdict == BETTER
    assert Difference("recall", .8, .9, -.1, -.18, -.02, True).verdict == WORSE
    assert Difference("recall", .8, .8, 0, -.05, .05, True).verdict == UNCLEAR
    assert Difference("mae", 2.0, 3.0, -1, -1.5, -0.5, False).verdict == BETTER
    assert Difference("mae", 3.0, 2.0, 1, 0.5, 1.5, False).verdict == WORSE


def test_a_clearly_better_classifier_is_found_better_in_plain_words() -> None:
    rng = np.random.default_rng(2)
    y = (rng.random(412) < 0.15).astype(int)
    good = np.clip(0.7 * y + 0.3 * rng.random(412), 0, 1)
    poor = np.clip(0.25 * y + 0.75 * rng.random(412), 0, 1)
    result = compare(Task.BINARY, y, good, poor, metric="recall", threshold_a=0.5,
                     threshold_b=0.5, n_resamples=500)
    assert result.verdict == BETTER and result.p_value < 0.01
    words = describe(result.to_dict())
    caught = result.counts["caught_a"] - result.counts["caught_b"]
    assert words[0].startswith(f"On the same 412 recent records, the new model catches "
                               f"{caught} more failures")
    assert "unlikely to be luck" in words[0] and words[-1] == P_VALUE_LINE
    # The other way round, the same rows: worse, with the same p-value.
    back = compare(Task.BINARY, y, poor, good, metric="recall", n_resamples=500)
    assert back.verdict == WORSE and back.p_value == pytest.approx(result.p_value)


def test_multiclass_and_regression_comparisons() -> None:
    rng = np.random.default_rng(4)
    y = rng.integers(0, 3, 300)
    sharp = np.eye(3)[np.where(rng.random(300) < 0.9, y, (y + 1) % 3)]
    blur = np.eye(3)[np.where(rng.random(300) < 0.6, y, (y + 1) % 3)]
    mc = compare(Task.MULTICLASS, y, sharp, blur, metric="f1_macro", n_resamples=300)
    assert mc.verdict == BETTER and mc.test["name"] == "mcnemar"
    assert "is right 260 times and the current model 181 times" in describe(mc.to_dict())[0]
    t = rng.normal(0, 1, 300)
    close, far = t + rng.normal(0, .3, 300), t + rng.normal(0, .9, 300)
    reg = compare(Task.REGRESSION, t, close, far, metric="mae", n_resamples=300)
    assert reg.verdict == BETTER and reg.test["name"] == "wilcoxon_signed_rank_abs_error"
    assert reg.p_value < 0.001 and reg.test["p_value"] < 0.001
    assert "average error" in describe(reg.to_dict())[0]
    same = compare(Task.REGRESSION, t, close, close.copy(), metric="rmse", n_resamples=300)
    assert same.verdict == UNCLEAR and "could well be luck" in describe(same.to_dict())[0]


def test_metric_follows_the_objective_goal() -> None:
    assert metric_for(Task.BINARY, "recall") == "recall"
    assert metric_for(Task.BINARY, None) == "pr_auc"
    assert metric_for(Task.REGRESSION, "rmse") == "rmse"
    assert metric_for(Task.MULTICLASS, "recall") == "f1_macro"
