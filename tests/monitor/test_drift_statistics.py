"""Drift statistics: the exact ones agree with SciPy to 1e-9; the binned ones keep their stated
error bounds; multiple-testing corrections and planta.toml thresholds behave as documented."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from scipy.spatial.distance import jensenshannon

from planta.core.drift import (
    DriftThresholds,
    MonitorSettings,
    adjust_pvalues,
    bin_counts,
    chi2_test,
    js_distance,
    ks_binned,
    ks_pvalue,
    ks_statistic,
    psi,
    psi_groups,
    quantile_edges,
    wasserstein,
    wasserstein_binned,
)
from planta.core.spec import UseCase
from planta.errors import ConfigError

TOL = 1e-9


def _samples(seed: int) -> list[tuple[np.ndarray, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        (rng.normal(0, 1, 300), rng.normal(0.3, 1.2, 250)),
        (rng.normal(40, 10, 2000).round(1), rng.normal(41, 10, 700).round(1)),  # ties
        (rng.integers(0, 5, 100).astype(float), rng.integers(0, 6, 80).astype(float)),
        (rng.exponential(2.0, 5000), rng.exponential(2.0, 5000)),
        (np.array([1.0]), np.array([2.0, 3.0])),
    ]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_numeric_statistics_match_scipy(seed: int) -> None:
    for ref, cur in _samples(seed):
        ks = stats.ks_2samp(ref, cur, method="asymp")
        assert ks_statistic(ref, cur) == pytest.approx(ks.statistic, abs=TOL)
        assert ks_pvalue(ks_statistic(ref, cur), ref.size, cur.size) == pytest.approx(
            ks.pvalue, abs=TOL)
        assert wasserstein(ref, cur) == pytest.approx(stats.wasserstein_distance(ref, cur),
                                                      abs=TOL, rel=TOL)


@pytest.mark.parametrize("n", [2500, 10_000, 100_000])
def test_fast_ks_pvalue_is_close_to_scipys_and_never_smaller(n: int) -> None:
    for d in (0.002, 0.005, 0.01, 0.02, 0.05):
        exact = ks_pvalue(d, n, 10**7)
        fast = ks_pvalue(d, n, 10**7, fast=True)
        assert exact - 1e-12 <= fast <= exact + 0.006


def test_missing_values_are_left_out_of_exact_statistics() -> None:
    ref = np.array([1.0, 2.0, np.nan, 3.0])
    cur = np.array([2.5, np.inf, 4.0])
    assert ks_statistic(ref, cur) == pytest.approx(
        stats.ks_2samp([1.0, 2.0, 3.0], [2.5, 4.0]).statistic, abs=TOL)


@pytest.mark.parametrize("table", [
    ([60, 30, 10], [50, 35, 15]),
    ([600, 300, 100], [500, 350, 150]),
    ([40, 60], [55, 45]),            # 2 x 2: scipy applies Yates' correction
    ([4, 1], [3, 2]),                # 2 x 2, a cell closer to its expectation than 0.5
    ([10, 0, 5], [8, 2, 0]),
])
def test_chi2_matches_scipy(table: tuple[list[int], list[int]]) -> None:
    ref, cur = (np.array(t) for t in table)
    expected = stats.chi2_contingency(np.vstack([ref, cur]))
    stat, p = chi2_test(ref, cur)
    assert stat == pytest.approx(expected.statistic, abs=TOL)
    assert p == pytest.approx(expected.pvalue, abs=TOL)


def test_chi2_with_a_category_nobody_saw_drops_it_like_a_table_without_it() -> None:
    stat, p = chi2_test(np.array([60, 30, 0]), np.array([50, 35, 0]))
    expected = stats.chi2_contingency(np.array([[60, 30], [50, 35]]))
    assert (stat, p) == (pytest.approx(expected.statistic), pytest.approx(expected.pvalue))


@pytest.mark.parametrize("pair", [([1, 2, 3], [3, 2, 1]), ([5, 0, 5], [0, 5, 5]),
                                  ([1, 0], [0, 1]), ([10, 10, 10], [10, 10, 10])])
def test_js_matches_scipy(pair: tuple[list[int], list[int]]) -> None:
    p, q = (np.array(x, float) for x in pair)
    assert js_distance(p, q) == pytest.approx(float(jensenshannon(p, q)), abs=TOL)


@pytest.mark.parametrize("seed", range(5))
def test_binned_ks_and_wasserstein_stay_within_their_bounds(seed: int) -> None:
    rng = np.random.default_rng(seed)
    ref = rng.gamma(2.0, 10.0, 3000).round(1)
    cur = rng.gamma(2.0, 10.0 + seed, 1500).round(1) + rng.choice([0.0, 50.0], 1500, p=[.97, .03])
    edges = quantile_edges(ref, 100)
    r, c = bin_counts(ref, edges), bin_counts(cur, edges)
    d, bound = ks_binned(r, c)
    exact = ks_statistic(ref, cur)
    assert d <= exact + TOL and exact <= d + bound + TOL
    assert bound <= 0.05  # 100 quantile bins: about 1 % of mass each, plus the current's
    below = float((edges[0] - cur[cur < edges[0]]).sum())
    above = float((cur[cur >= edges[-1]] - edges[-1]).sum())
    w, w_bound = wasserstein_binned(r, c, edges, below, above)
    assert abs(w - wasserstein(ref, cur)) <= w_bound + TOL


def test_binned_statistics_are_exact_when_each_bin_holds_one_value() -> None:
    rng = np.random.default_rng(3)
    ref = rng.integers(0, 8, 500).astype(float)
    cur = rng.integers(1, 9, 400).astype(float)
    edges = np.unique(ref)
    d, _ = ks_binned(bin_counts(ref, edges), bin_counts(cur, edges))
    assert d == pytest.approx(ks_statistic(ref, cur), abs=TOL)


def test_psi_is_zero_for_the_same_shares_and_grows_with_the_shift() -> None:
    rng = np.random.default_rng(0)
    ref = rng.normal(0, 1, 10_000)
    edges = quantile_edges(ref)
    r = bin_counts(ref, edges)
    groups = psi_groups(r)
    assert groups.max() + 1 == 10  # deciles
    assert psi(r, r, groups) == 0.0
    small = psi(r, bin_counts(rng.normal(0.2, 1, 5000), edges), groups)
    large = psi(r, bin_counts(rng.normal(1.0, 1, 5000), edges), groups)
    assert 0.01 < small < 0.1 < 0.5 < large


def test_holm_and_benjamini_hochberg_match_their_definitions() -> None:
    p = [0.01, 0.04, 0.03, 0.005]
    # Holm: sorted 0.005, 0.01, 0.03, 0.04 times 4, 3, 2, 1, then running maximum.
    assert adjust_pvalues(p, "holm") == pytest.approx([0.03, 0.06, 0.06, 0.02])
    # BH: sorted times 4/1, 4/2, 4/3, 4/4, then running minimum from the top.
    assert adjust_pvalues(p, "bh") == pytest.approx([0.02, 0.04, 0.04, 0.02])
    assert adjust_pvalues(p, "none") == p
    assert adjust_pvalues([None, 0.5], "holm") == [None, 0.5]
    with pytest.raises(ConfigError):
        adjust_pvalues(p, "bonferroni-ish")


def test_thresholds_come_from_planta_toml_per_feature() -> None:
    uc = UseCase.from_dict("failure", {
        "task": "binary", "target": "Machine failure",
        "monitor": {"psi": 0.25, "min_rows": 100, "correction": "bh",
                    "features": {"torque_nm": {"psi": 0.1}}}})
    settings = uc.monitor
    assert settings.correction == "bh"
    assert settings.for_feature("torque_nm") == DriftThresholds(psi=0.1, min_rows=100)
    assert settings.for_feature("type").psi == 0.25
    assert uc.to_dict()["monitor"]["features"] == {"torque_nm": {"psi": 0.1}}  # as written
    assert UseCase.from_dict("x", {"target": "y"}).monitor == MonitorSettings()


@pytest.mark.parametrize("table, words", [
    ({"psi": "high"}, "not a number"),
    ({"alpha": 1.5}, "between 0 and 1"),
    ({"pvalue": 0.05}, "unknown drift setting"),
    ({"correction": "magic"}, "correction"),
    ({"features": {"torque_nm": {"js": -1}}}, "torque_nm"),
])
def test_bad_thresholds_fail_at_load_with_the_key(table: dict, words: str) -> None:
    with pytest.raises(ConfigError, match=words):
        UseCase.from_dict("failure", {"target": "y", "monitor": table})


def test_js_of_disjoint_shares_is_its_maximum() -> None:
    assert js_distance(np.array([3, 0]), np.array([0, 7])) == pytest.approx(
        math.sqrt(math.log(2)))


def test_putting_an_input_back_as_in_training_restores_its_distribution() -> None:
    from planta.core.drift_effect import as_training
    from planta.core.drift_window import CategoryReference, NumericReference

    rng = np.random.default_rng(4)
    train = rng.normal(40, 10, 20_000)
    edges = quantile_edges(train)
    ref = NumericReference(name="torque_nm", label="Torque", edges=edges,
                           counts=bin_counts(train, edges), missing=0, mean=40.0, std=10.0,
                           lower=None, upper=None, exact=False, source="bins")
    now = rng.normal(40, 10, 3000) * 1.2 + np.where(rng.random(3000) < 0.01, np.nan, 0.0)
    back = as_training(ref, now, rng)
    assert np.isnan(back).sum() == np.isnan(now).sum()          # missing stays missing
    finite = np.isfinite(now)
    assert ks_statistic(train, back[finite]) < 0.02 < ks_statistic(train, now[finite])
    # Each row keeps its rank among the window's rows.
    assert (np.argsort(back[finite], kind="stable") ==
            np.argsort(now[finite], kind="stable")).all()
    cats = CategoryReference(name="type", label="Type", categories=["H", "L", "M"],
                             counts=np.array([100, 600, 300]), missing=0)
    drawn = as_training(cats, np.array(["X"] * 5000, dtype=object), rng)
    shares = {c: float(np.mean(drawn == c)) for c in ("H", "L", "M")}
    assert shares == pytest.approx({"H": 0.1, "L": 0.6, "M": 0.3}, abs=0.03)
