"""Invariants of the drift statistics: binned approximations keep their error bounds against the
exact statistics; a sample against itself shows no drift; row order and chunking never change
a window; counts add up across windows."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planta.core.drift import (
    bin_counts,
    chi2_test,
    js_distance,
    ks_binned,
    ks_statistic,
    psi,
    psi_groups,
    quantile_edges,
    wasserstein,
    wasserstein_binned,
)
from planta.core.drift_report import compare
from planta.core.drift_window import Reference, Window
from planta_edge.contract import Contract, Field

TOL = 1e-9
# Readings as a plant logs them: a few decimals, so ties are common.
_values = st.lists(st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: round(v, 1)),
                   min_size=1, max_size=400)


@settings(max_examples=150, deadline=None)
@given(_values, _values, st.integers(2, 120))
def test_binned_ks_and_wasserstein_keep_their_bounds(ref: list[float], cur: list[float],
                                                     bins: int) -> None:
    a, b = np.array(ref), np.array(cur)
    edges = quantile_edges(a, bins)
    r, c = bin_counts(a, edges), bin_counts(b, edges)
    d, bound = ks_binned(r, c)
    exact = ks_statistic(a, b)
    assert d <= exact + TOL
    assert exact <= d + bound + TOL
    below = float((edges[0] - b[b < edges[0]]).sum())
    above = float((b[b >= edges[-1]] - edges[-1]).sum())
    ref_above = float((a[a >= edges[-1]] - edges[-1]).sum())
    w, w_bound = wasserstein_binned(r, c, edges, below, above, ref_above_sum=ref_above)
    assert abs(w - wasserstein(a, b)) <= w_bound + 1e-6 * max(1.0, wasserstein(a, b))


@settings(max_examples=80, deadline=None)
@given(_values, st.randoms(use_true_random=False))
def test_a_sample_against_itself_in_any_order_shows_no_drift(ref: list[float],
                                                             random: object) -> None:
    a = np.array(ref)
    shuffled = a.copy()
    random.shuffle(shuffled)  # type: ignore[attr-defined]
    edges = quantile_edges(a)
    r, c = bin_counts(a, edges), bin_counts(shuffled, edges)
    assert ks_binned(r, c)[0] == 0.0 and ks_statistic(a, shuffled) == 0.0
    assert psi(r, c, psi_groups(r)) == 0.0
    assert wasserstein(a, shuffled) == 0.0


@settings(max_examples=80, deadline=None)
@given(st.lists(st.integers(0, 50), min_size=2, max_size=8))
def test_categorical_self_comparison(counts: list[int]) -> None:
    c = np.array(counts)
    if c.sum() == 0:
        return
    stat, p = chi2_test(c, c)
    assert stat == pytest.approx(0.0, abs=1e-12) and p == pytest.approx(1.0)
    assert js_distance(c, c) == pytest.approx(0.0, abs=1e-7)


_CONTRACT = Contract((Field("torque_nm", "number", minimum=0.0, maximum=80.0),
                      Field("type", "category", categories=("H", "L", "M"))))
_PROFILE = {"rows": 6, "fields": {
    "torque_nm": {"kind": "number", "missing": 0, "mean": 40.0, "std": 10.0,
                  "bins": {"edges": [10.0, 30.0, 40.0, 50.0, 70.0],
                           "counts": [0, 1, 2, 2, 0, 1]}},
    "type": {"kind": "category", "missing": 0, "counts": {"H": 1, "L": 3, "M": 2}}}}


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.one_of(st.floats(-10, 100), st.just(float("nan"))), st.sampled_from(
    ["H", "L", "M", "X", None])), min_size=1, max_size=300), st.integers(1, 50),
    st.randoms(use_true_random=False))
def test_chunking_order_and_merging_never_change_a_window(rows: list, chunk: int,
                                                          random: object) -> None:
    reference = Reference.from_profile(_PROFILE, _CONTRACT)
    torque = np.array([r[0] for r in rows], float)
    kind = np.array([r[1] for r in rows], object)
    whole = Window(reference)
    whole.add({"torque_nm": torque, "type": kind})
    order = list(range(len(rows)))
    random.shuffle(order)  # type: ignore[attr-defined]
    pieces = [Window(reference) for _ in range(0, len(rows), chunk)]
    for w, start in zip(pieces, range(0, len(rows), chunk)):
        idx = order[start:start + chunk]
        w.add({"torque_nm": torque[idx], "type": kind[idx]})
    merged = Window(reference)
    for w in pieces:
        merged.merge(Window.from_dict(reference, w.to_dict()))   # through the cache format
    a, b = whole.to_dict(), merged.to_dict()
    assert a["rows"] == b["rows"]
    for name in ("torque_nm", "type"):
        fa, fb = a["fields"][name], b["fields"][name]
        assert fa["counts"] == fb["counts"] and fa["missing"] == fb["missing"]
        for key in ("below_sum", "above_sum", "total"):
            if key in fa:
                assert fa[key] == pytest.approx(fb[key], rel=1e-9, abs=1e-9)
    assert a["fields"]["type"]["new"] == b["fields"]["type"]["new"]
    ra, rb = compare(reference, whole), compare(reference, merged)
    assert [f.drifted for f in ra.features] == [f.drifted for f in rb.features]
    assert ra.signals == pytest.approx(rb.signals)


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1), st.integers(2, 200), st.integers(0, 3))
def test_the_bin_lookup_table_gives_the_binary_searchs_bins(seed: int, bins: int,
                                                           decimals: int) -> None:
    from planta.core.drift import bin_index

    rng = np.random.default_rng(seed)
    ref = rng.standard_t(3, 3000).round(decimals)
    edges = quantile_edges(ref, bins)
    x = np.concatenate([rng.standard_t(2, 30_000).round(decimals) * rng.uniform(0.5, 3),
                        edges, np.nextafter(edges, -np.inf), np.nextafter(edges, np.inf),
                        [1e300, -1e300]])
    assert (bin_index(x, edges) == np.searchsorted(edges, x, side="right")).all()
