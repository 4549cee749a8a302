"""Properties of performance estimation and measurement.

* Row order never changes a window's summary, its estimates, or its realised point metrics.
* Summaries are additive: a window split anywhere adds back to the whole.
* Perfect calibration makes the estimate unbiased: when labels are drawn from the
  probabilities, the mean realised precision and accuracy (linear in the counts) over many
  draws agree with the estimate within 4 standard errors.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planta.core.metrics import binary_metrics
from planta.core.performance import ScoreSummary, estimate_binary, realised_metrics
from planta.core.spec import Task

# Bounded here: the shared ci/dev profiles live in the root conftest, which this suite does
# not own. Each example takes a few milliseconds.
SETTINGS = settings(max_examples=60, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow])

probabilities = st.lists(st.floats(0.0, 1.0, allow_nan=False), min_size=2, max_size=300)
thresholds = st.floats(0.05, 0.95)


@SETTINGS
@given(probabilities, thresholds, st.randoms(use_true_random=False))
def test_row_order_changes_nothing(values, threshold, random) -> None:
    p = np.asarray(values)
    y = (np.arange(p.size) % 3 == 0).astype(int)
    order = np.arange(p.size)
    random.shuffle(order)
    a = ScoreSummary.from_scores(p, p >= threshold)
    b = ScoreSummary.from_scores(p[order], p[order] >= threshold)
    assert np.array_equal(a.counts, b.counts)
    assert np.allclose(a.sums, b.sums, rtol=1e-12, atol=1e-12)
    ea, eb = estimate_binary(a, days=1.0), estimate_binary(b, days=1.0)
    for name, est in ea.items():
        assert math.isclose(est.value, eb[name].value, rel_tol=1e-9, abs_tol=1e-9) or (
            math.isnan(est.value) and math.isnan(eb[name].value))
    ra = realised_metrics(Task.BINARY, y, p, threshold=threshold, resamples=20)
    rb = realised_metrics(Task.BINARY, y[order], p[order], threshold=threshold, resamples=20)
    for name, est in ra.items():
        assert math.isclose(est.value, rb[name].value, rel_tol=1e-9, abs_tol=1e-12) or (
            math.isnan(est.value) and math.isnan(rb[name].value))


@SETTINGS
@given(probabilities, thresholds, st.integers(0, 300))
def test_summaries_add_up(values, threshold, cut) -> None:
    p = np.asarray(values)
    cut = min(cut, p.size)
    alarm = p >= threshold
    whole = ScoreSummary.from_scores(p, alarm)
    parts = ScoreSummary.from_scores(p[:cut], alarm[:cut]) + ScoreSummary.from_scores(
        p[cut:], alarm[cut:])
    assert np.array_equal(whole.counts, parts.counts)
    assert np.allclose(whole.sums, parts.sums)
    assert whole.expected_positives == sum(values) or math.isclose(
        whole.expected_positives, sum(values), rel_tol=1e-9, abs_tol=1e-9)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.floats(0.2, 3.0), st.floats(1.0, 12.0), thresholds, st.integers(0, 2**31 - 1))
def test_perfect_calibration_makes_the_estimate_unbiased(a, b, threshold, seed) -> None:
    rng = np.random.default_rng(seed)
    p = rng.beta(a, b, 400)
    alarm = p >= threshold
    est = estimate_binary(ScoreSummary.from_scores(p, alarm))
    draws = 400
    labels = rng.random((draws, p.size)) < p
    # Counted directly (all draws at once); one draw is checked against the metrics module.
    tp = (labels & alarm).sum(axis=1)
    tn = (~labels & ~alarm).sum(axis=1)
    first = binary_metrics(labels[0].astype(int), p, threshold)
    by_name = {"accuracy": (tp + tn) / p.size}
    if alarm.any():
        by_name["precision"] = tp / alarm.sum()
    for name, realised in by_name.items():
        assert math.isclose(realised[0], first[name], rel_tol=1e-12, abs_tol=1e-12)
        se = realised.std() / math.sqrt(draws)
        assert abs(realised.mean() - est[name].value) <= 4 * se + 1e-9, name
