"""Per-window bootstrap without the ranking metrics: ``bootstrap_metrics(metrics=…)`` keeps the
training gate's numbers for the metrics it keeps, and the binomial draws from confusion counts
(``realised_metrics`` with no ranking metric asked) give the same intervals as the stratified
weight-matrix bootstrap, up to Monte Carlo error."""

from __future__ import annotations

import numpy as np
import pytest

from planta.core.metrics import bootstrap_metrics
from planta.core.performance import realised_metrics
from planta.core.spec import Cost, Task

COUNTED = ["recall", "precision", "f1", "accuracy", "balanced_accuracy", "specificity",
           "false_alarm_rate", "false_alarms_per_day", "expected_cost", "savings"]


def _window(seed: int, n: int, rate: float) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    return y, np.clip(0.45 * y + 0.6 * rng.random(n), 0, 1)


def test_metrics_argument_keeps_the_same_numbers() -> None:
    y, p = _window(0, 800, 0.1)
    cost = Cost(missed=10.0, false_alarm=1.0)
    full = bootstrap_metrics(Task.BINARY, y, p, n_resamples=150, days=2.0, cost=cost)
    assert {"roc_auc", "pr_auc"} <= set(full)
    kept = bootstrap_metrics(Task.BINARY, y, p, n_resamples=150, days=2.0, cost=cost,
                             metrics=COUNTED)
    assert list(kept) == [k for k in full if k in COUNTED]
    assert all(kept[k] == full[k] for k in kept)
    assert bootstrap_metrics(Task.BINARY, y, p, n_resamples=150) == \
        bootstrap_metrics(Task.BINARY, y, p, n_resamples=150, metrics=None)
    ranking = bootstrap_metrics(Task.BINARY, y, p, n_resamples=150, metrics={"pr_auc"})
    assert list(ranking) == ["pr_auc"] and ranking["pr_auc"] == full["pr_auc"]


@pytest.mark.parametrize(("n", "rate"), [(300, 0.1), (2000, 0.03), (60, 0.5)])
def test_binomial_draws_match_the_weight_bootstrap(n: int, rate: float) -> None:
    y, p = _window(n, n, rate)
    cost = Cost(missed=5.0, false_alarm=1.0)
    weights = bootstrap_metrics(Task.BINARY, y, p, n_resamples=4000, days=1.0, cost=cost,
                                metrics=COUNTED)
    counts = realised_metrics(Task.BINARY, y, p, days=1.0, cost=cost, resamples=4000,
                              metrics=COUNTED)
    assert list(counts) == list(weights)
    for name, est in weights.items():
        got = counts[name]
        assert got.value == pytest.approx(est.value, rel=1e-12, abs=1e-12)  # same point
        width = max(est.upper - est.lower, 1e-9)
        # Bounds agree to a share of the interval's width: Monte Carlo error, and counts are
        # whole numbers, so a bound can land one count away (1/31 of a recall with 31
        # failures is a sixth of its interval).
        assert abs(got.lower - est.lower) <= 0.25 * width + 1e-9, name
        assert abs(got.upper - est.upper) <= 0.25 * width + 1e-9, name


def test_a_window_without_failures_has_undefined_recall() -> None:
    y = np.zeros(50, dtype=int)
    p = np.linspace(0, 1, 50)
    out = realised_metrics(Task.BINARY, y, p, metrics=COUNTED)
    assert out["recall"].value == 0.0 and out["false_alarm_rate"].value == pytest.approx(0.5)
    assert out["specificity"].lower <= out["specificity"].value <= out["specificity"].upper
