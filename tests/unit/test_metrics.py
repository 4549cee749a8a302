"""planta.core.metrics: definitions, intervals, threshold rule, gate."""

from __future__ import annotations

import time

import numpy as np
import pytest
from sklearn import metrics as skm

from planta.core.metrics import (
    Estimate,
    binary_metrics,
    bootstrap_metrics,
    choose_threshold,
    evaluate_gate,
    multiclass_metrics,
    regression_metrics,
    wilson_interval,
)
from planta.core.spec import Task, parse_objective
from planta.errors import ConfigError


def _binary(n: int = 1000, rate: float = 0.1, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = (rng.random(n) < rate).astype(int)
    p = np.clip(0.35 * y + 0.65 * rng.random(n), 0, 1).round(3)   # ties on purpose
    return y, p


def test_binary_metrics_agree_with_scikit_learn() -> None:
    y, p = _binary()
    m = binary_metrics(y, p, 0.5, days=10.0)
    pred = (p >= 0.5).astype(int)
    tn, fp, _, _ = skm.confusion_matrix(y, pred).ravel()
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(y, p))
    assert m["pr_auc"] == pytest.approx(skm.average_precision_score(y, p))
    assert m["recall"] == pytest.approx(skm.recall_score(y, pred))
    assert m["precision"] == pytest.approx(skm.precision_score(y, pred))
    assert m["f1"] == pytest.approx(skm.f1_score(y, pred))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(y, pred))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    assert m["specificity"] == pytest.approx(tn / (tn + fp))
    assert m["false_alarm_rate"] == pytest.approx(fp / (tn + fp))
    assert m["false_alarms_per_day"] == pytest.approx(fp / 10.0)


def test_no_alarm_means_zero_precision() -> None:
    m = binary_metrics(np.array([0, 1]), np.array([0.1, 0.2]), threshold=0.9)
    assert m["precision"] == 0.0 and m["recall"] == 0.0


def test_multiclass_and_regression_agree_with_scikit_learn() -> None:
    rng = np.random.default_rng(1)
    y = rng.integers(0, 3, 300)
    proba = rng.dirichlet(np.ones(3), 300) + np.eye(3)[y] * 0.4
    pred = proba.argmax(axis=1)
    m = multiclass_metrics(y, proba)
    assert m["f1_macro"] == pytest.approx(skm.f1_score(y, pred, average="macro"))
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(y, pred))
    t = rng.normal(10, 2, 300)
    e = t + rng.normal(0, 1, 300)
    r = regression_metrics(t, e)
    assert r["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(t, e)))
    assert r["mae"] == pytest.approx(skm.mean_absolute_error(t, e))
    assert r["mape"] == pytest.approx(skm.mean_absolute_percentage_error(t, e))
    assert r["r2"] == pytest.approx(skm.r2_score(t, e))


def test_bootstrap_is_seeded_and_fast() -> None:
    y, p = _binary(2000)
    started = time.perf_counter()
    a = bootstrap_metrics(Task.BINARY, y, p, threshold=0.5, seed=3)
    assert time.perf_counter() - started < 2.0        # 1,000 resamples, vectorised
    b = bootstrap_metrics(Task.BINARY, y, p, threshold=0.5, seed=3)
    assert a == b
    for key, est in a.items():
        assert est.lower <= est.value + 1e-12 <= est.upper + 2e-12, key


def test_bootstrap_resamples_keep_the_class_balance() -> None:
    # Stratified: every resample has the holdout's positives, so recall is never undefined
    # and its interval stays inside [0, 1].
    y = np.r_[np.ones(5, int), np.zeros(195, int)]
    p = np.r_[np.linspace(0.6, 0.9, 5), np.linspace(0.0, 0.7, 195)]
    est = bootstrap_metrics(Task.BINARY, y, p, threshold=0.5, n_resamples=500)
    assert est["recall"].value == 1.0 and est["recall"].upper == 1.0
    assert 0.0 <= est["roc_auc"].lower <= est["roc_auc"].upper <= 1.0
    # Every resample catches all 5, yet 5 of 5 does not prove a perfect recall: the interval
    # is Wilson's for 5 of 5, not the bootstrap's collapsed "1 to 1".
    assert est["recall"].lower == pytest.approx(wilson_interval(5, 5)[0])
    assert est["recall"].lower < 0.6


def test_a_handful_of_cases_cannot_pass_a_demanding_gate() -> None:
    # 3 failures in the holdout, all caught: the point estimate is 100 %, but "catch at least
    # 90 %" is not shown by 3 cases; the lower bound says so.
    y = np.r_[np.ones(3, int), np.zeros(300, int)]
    p = np.r_[np.full(3, 0.9), np.linspace(0.0, 0.4, 300)]
    est = bootstrap_metrics(Task.BINARY, y, p, threshold=0.5, n_resamples=300)
    assert est["recall"].value == 1.0 and est["recall"].lower < 0.9
    assert est["precision"].value == 1.0 and est["precision"].lower < 0.9
    assert est["specificity"].lower < 1.0 <= est["specificity"].upper


def test_wilson_interval_matches_the_textbook() -> None:
    # 81 of 263 at 95 %: Wilson (1927) as in Newcombe (1998), table I, example (0.2553, 0.3662).
    low, high = wilson_interval(81, 263)
    assert low == pytest.approx(0.2553, abs=5e-4) and high == pytest.approx(0.3662, abs=5e-4)


def test_intervals_cover_the_true_value() -> None:
    """Across many holdouts drawn from one population, the 95 % interval of the AUC holds the
    population AUC about 95 % of the time (at least 85 % here, 60 draws)."""
    rng = np.random.default_rng(7)

    def draw(n: int) -> tuple[np.ndarray, np.ndarray]:
        y = (rng.random(n) < 0.2).astype(int)
        return y, rng.normal(loc=1.0 * y, scale=1.0)

    big_y, big_s = draw(200_000)
    truth = skm.roc_auc_score(big_y, big_s)
    hits = 0
    for i in range(60):
        y, s = draw(400)
        est = bootstrap_metrics(Task.BINARY, y, s, n_resamples=400, seed=i)["roc_auc"]
        hits += est.lower <= truth <= est.upper
    assert hits >= 51


def test_regression_intervals_cover() -> None:
    rng = np.random.default_rng(11)
    hits = 0
    for i in range(40):
        t = rng.normal(0, 1, 300)
        e = t + rng.normal(0, 0.5, 300)
        est = bootstrap_metrics(Task.REGRESSION, t, e, n_resamples=400, seed=i)["rmse"]
        hits += est.lower <= 0.5 <= est.upper
    assert hits >= 34


# --- threshold -------------------------------------------------------------------------------

def _ladder() -> tuple[np.ndarray, np.ndarray]:
    # 10 positives, 90 negatives; scores give a clean precision / recall trade-off.
    rng = np.random.default_rng(5)
    y = np.r_[np.ones(10, int), np.zeros(90, int)]
    p = np.r_[np.linspace(0.35, 0.95, 10), rng.uniform(0.0, 0.5, 90)]
    return y, p


def test_threshold_prefers_the_best_precision_once_the_goal_is_met() -> None:
    y, p = _ladder()
    objective = parse_objective("recall>=0.8 and precision>=0.5", Task.BINARY)
    choice = choose_threshold(y, p, objective)
    assert choice.met
    m = binary_metrics(y, p, choice.threshold)
    assert m["recall"] >= 0.8 and m["precision"] >= 0.5
    # No other threshold meeting both clauses has a better precision.
    for t in np.unique(p):
        other = binary_metrics(y, p, t)
        if other["recall"] >= 0.8 and other["precision"] >= 0.5:
            assert other["precision"] <= m["precision"] + 1e-12


def test_threshold_maximises_the_goal_under_the_constraints_when_the_goal_is_out_of_reach() -> None:
    y, p = _ladder()
    objective = parse_objective("recall>=0.99 and precision>=0.8", Task.BINARY)
    choice = choose_threshold(y, p, objective)
    assert not choice.met
    m = binary_metrics(y, p, choice.threshold)
    assert m["precision"] >= 0.8
    best = max(binary_metrics(y, p, t)["recall"] for t in np.unique(p)
               if binary_metrics(y, p, t)["precision"] >= 0.8)
    assert m["recall"] == pytest.approx(best)


def test_threshold_leaves_room_for_the_lower_bound_gate() -> None:
    y, p = _binary(4000, 0.1, seed=2)
    objective = parse_objective("recall>=0.6", Task.BINARY)
    plain = choose_threshold(y, p, objective)
    safe = choose_threshold(y, p, objective, gate_rows=1000)
    assert binary_metrics(y, p, safe.threshold)["recall"] > \
        binary_metrics(y, p, plain.threshold)["recall"]
    assert "room" in safe.rule


def test_threshold_with_room_passes_a_fresh_holdouts_lower_bound_most_of_the_time() -> None:
    # Out-of-fold rows choose the threshold; a fresh holdout a quarter their size is then
    # judged by the gate's lower bound (point − 1.96 standard errors). With room for only the
    # lower bound, about half the holdouts would fail a model whose true recall meets it.
    objective = parse_objective("recall>=0.6", Task.BINARY)
    passed = 0
    for seed in range(120):
        y, p = _binary(4000, 0.1, seed=seed)
        threshold = choose_threshold(y, p, objective, gate_rows=1000).threshold
        y_h, p_h = _binary(1000, 0.1, seed=10_000 + seed)
        caught = p_h[y_h == 1] >= threshold
        recall = caught.mean()
        lower = recall - 1.96 * np.sqrt(recall * (1 - recall) / caught.size)
        passed += lower >= 0.6
    assert passed >= 0.7 * 120

def test_threshold_is_between_scores() -> None:
    y = np.array([0, 1, 0, 1])
    p = np.array([0.1, 0.4, 0.3, 0.9])
    t = choose_threshold(y, p, parse_objective("recall>=0.9", Task.BINARY)).threshold
    assert 0.3 < t < 0.4


def test_cost_threshold_minimises_expected_cost_and_reports_savings() -> None:
    y, p = _ladder()
    objective = parse_objective("cost missed=1000 false_alarm=50", Task.BINARY)
    choice = choose_threshold(y, p, objective)
    costs = [1000 * ((p < t) & (y == 1)).sum() + 50 * ((p >= t) & (y == 0)).sum()
             for t in np.r_[np.unique(p), 2.0]]
    assert choice.metrics["expected_cost"] == pytest.approx(min(costs))
    assert choice.savings == pytest.approx(min(1000 * 10, 50 * 90) - min(costs))
    assert choice.savings is not None and choice.savings > 0


def test_false_alarms_per_day_needs_days() -> None:
    y, p = _ladder()
    objective = parse_objective("recall>=0.5 and false_alarms_per_day<=2", Task.BINARY)
    with pytest.raises(ConfigError):
        choose_threshold(y, p, objective)
    choice = choose_threshold(y, p, objective, days=10.0)
    assert binary_metrics(y, p, choice.threshold, days=10.0)["false_alarms_per_day"] <= 2


# --- gate ------------------------------------------------------------------------------------

def test_gate_reads_the_lower_bound_by_default() -> None:
    objective = parse_objective("recall>=0.8 and precision>=0.5", Task.BINARY)
    metrics = {"recall": Estimate(0.86, 0.78, 0.93), "precision": Estimate(0.7, 0.6, 0.8)}
    gate = evaluate_gate(metrics, objective)
    assert not gate.passed
    assert [c.passed for c in gate.clauses] == [False, True]
    assert "lower bound 0.78" in gate.reasons[0] and "below the target 0.8" in gate.reasons[0]
    assert gate.clauses[0].compared == "lower"
    assert gate.to_dict()["clauses"][0]["target"] == 0.8


def test_gate_on_point_estimates() -> None:
    objective = parse_objective("recall>=0.8", Task.BINARY, gate_on="point")
    gate = evaluate_gate({"recall": {"value": 0.86, "lower": 0.78, "upper": 0.93}}, objective)
    assert gate.passed and gate.clauses[0].compared == "point"


def test_gate_reads_the_upper_bound_of_at_most_clauses() -> None:
    objective = parse_objective("rmse<=10", Task.REGRESSION)
    assert evaluate_gate({"rmse": Estimate(9.0, 8.0, 9.9)}, objective).passed
    failed = evaluate_gate({"rmse": Estimate(9.0, 8.0, 10.5)}, objective)
    assert not failed.passed and failed.clauses[0].compared == "upper"


def test_gate_on_cost_needs_savings_above_zero() -> None:
    objective = parse_objective("cost missed=1000 false_alarm=50", Task.BINARY)
    assert evaluate_gate({"savings": Estimate(500.0, 120.0, 900.0)}, objective).passed
    gate = evaluate_gate({"savings": Estimate(500.0, -20.0, 900.0)}, objective)
    assert not gate.passed and "saves 500" in gate.reasons[0]


def test_gate_fails_a_clause_that_was_not_measured() -> None:
    objective = parse_objective("false_alarms_per_day<=2", Task.BINARY, )
    gate = evaluate_gate({"recall": Estimate(0.9, 0.8, 1.0)}, objective)
    assert not gate.passed and "not measured" in gate.reasons[0]


def test_holdout_cost_savings_have_an_interval() -> None:
    y, p = _ladder()
    objective = parse_objective("cost missed=1000 false_alarm=50", Task.BINARY)
    est = bootstrap_metrics(Task.BINARY, y, p, threshold=0.5, cost=objective.cost)
    assert est["savings"].lower <= est["savings"].value <= est["savings"].upper
    assert est["cost_no_model"].value == pytest.approx(min(10 * 1000, 90 * 50))
