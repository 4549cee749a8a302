"""Invariants of the paired comparison: symmetry, a model against itself, row order."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from planta.core.compare import UNCLEAR, compare, mcnemar
from planta.core.spec import Task

_bools = st.lists(st.tuples(st.booleans(), st.booleans()), min_size=1, max_size=300)


@settings(max_examples=60, deadline=None)
@given(_bools)
def test_mcnemar_swapping_the_models_swaps_the_counts_not_the_p_value(pairs: list) -> None:
    a = np.array([p[0] for p in pairs])
    b = np.array([p[1] for p in pairs])
    ab, ba = mcnemar(a, b), mcnemar(b, a)
    assert (ab.only_a, ab.only_b) == (ba.only_b, ba.only_a)
    assert ab.p_exact == pytest.approx(ba.p_exact) and ab.p_mid == pytest.approx(ba.p_mid)
    assert 0.0 <= ab.p_mid <= ab.p_exact <= 1.0


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 10_000), st.integers(20, 200))
def test_a_model_against_itself_shows_no_difference(seed: int, n: int) -> None:
    rng = np.random.default_rng(seed)
    y = np.r_[0, 1, rng.integers(0, 2, n - 2)]
    p = rng.random(n)
    result = compare(Task.BINARY, y, p, p, metric="recall", n_resamples=100, seed=seed)
    assert result.verdict == UNCLEAR and result.p_value == 1.0
    assert result.difference.diff == 0.0 and result.difference.lower == 0.0 == \
        result.difference.upper


@settings(max_examples=20, deadline=None)
@given(st.integers(0, 10_000))
def test_row_order_does_not_change_the_point_difference_or_the_test(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 120
    y = np.r_[0, 1, rng.integers(0, 2, n - 2)]
    pa, pb = rng.random(n), rng.random(n)
    order = rng.permutation(n)
    one = compare(Task.BINARY, y, pa, pb, metric="roc_auc", n_resamples=50)
    two = compare(Task.BINARY, y[order], pa[order], pb[order], metric="roc_auc", n_resamples=50)
    assert one.difference.diff == pytest.approx(two.difference.diff, abs=1e-12)
    # The bootstrap draws rows by position; the exact test and the counts do not care.
    assert one.test == two.test and one.counts == two.counts
