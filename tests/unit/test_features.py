"""planta.core.features: candidate rule (units, importance, cap) and the CV-verified search."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.model_selection import KFold, StratifiedKFold

from planta.core.features import ColumnInfo, propose_steps, search_steps, unit_family
from planta.core.spec import Task


@pytest.mark.parametrize(("unit", "family"), [
    ("K", "temperature"), ("°C", "temperature"), ("degC", "temperature"), ("rpm", "rotational_speed"),
    ("1/min", "rotational_speed"), ("Nm", "torque"), ("N·m", "torque"), ("kW", "power"),
    ("mbar", "pressure"), ("m³/h", "volume_flow"), ("nm", "length"), ("NM", None), ("widgets", None), (None, None),
])
def test_unit_family(unit: str | None, family: str | None) -> None:
    assert unit_family(unit) == family


def _formulas(columns: list[ColumnInfo], **kw: int) -> list[str]:
    return [c.step.describe() for c in propose_steps(columns, **kw)]


def test_related_units_propose_physical_steps() -> None:
    cols = [ColumnInfo("torque", "Nm", 5.0), ColumnInfo("speed", "rpm", 4.0),
            ColumnInfo("t_air", "K", 3.0), ColumnInfo("t_proc", "K", 2.0),
            ColumnInfo("power", "kW", 1.0), ColumnInfo("wear", "min", 0.5)]
    found = _formulas(cols, top_k=0)
    assert "torque * speed" in found                 # power
    assert "t_air - t_proc" in found                 # temperature difference
    assert "t_air / t_proc" in found
    assert "power / speed" in found                  # torque from power and speed
    assert "power * wear" in found                   # energy
    assert not any("torque" in f and "t_air" in f for f in found)   # unrelated units


def test_difference_needs_the_same_scale() -> None:
    cols = [ColumnInfo("p_in", "bar", 2.0), ColumnInfo("p_out", "mbar", 1.0),
            ColumnInfo("t_in", "K", 2.0), ColumnInfo("t_out", "°C", 1.0)]
    found = _formulas(cols, top_k=0)
    assert "p_in / p_out" in found and "p_in - p_out" not in found
    assert "t_in - t_out" in found            # kelvin and Celsius differ by a constant only


def test_columns_without_units_rely_on_importance() -> None:
    cols = [ColumnInfo(f"s{i}", None, float(10 - i), spread=1.0) for i in range(10)]
    found = _formulas(cols, top_k=3)
    assert sorted(found) == sorted(["s0 * s1", "s0 / s1", "s0 - s1", "s0 * s2", "s0 / s2",
                                    "s0 - s2", "s1 * s2", "s1 / s2", "s1 - s2"])


def test_unitless_difference_needs_comparable_spreads() -> None:
    cols = [ColumnInfo("a", None, 2.0, spread=1.0), ColumnInfo("b", None, 1.0, spread=500.0)]
    assert "a - b" not in _formulas(cols, top_k=2)


def test_binary_columns_are_left_out() -> None:
    cols = [ColumnInfo("flag", None, 9.0, n_distinct=2), ColumnInfo("a", None, 2.0),
            ColumnInfo("b", None, 1.0)]
    assert not any("flag" in f for f in _formulas(cols, top_k=3))


def test_candidate_count_is_capped_for_wide_tables() -> None:
    rng = np.random.default_rng(0)
    cols = [ColumnInfo(f"t{i}", "K", float(rng.random())) for i in range(300)] + [
        ColumnInfo(f"x{i}", None, float(rng.random())) for i in range(290)]
    candidates = propose_steps(cols)
    assert 0 < len(candidates) <= 64
    assert any(c.rule.startswith("related units") for c in candidates)
    assert any(c.rule == "pair of important columns" for c in candidates)
    assert len({c.step.name for c in candidates}) == len(candidates)


def test_search_finds_a_hidden_product_and_a_difference() -> None:
    rng = np.random.default_rng(1)
    n = 3000
    torque = rng.normal(40, 10, n)
    speed = rng.normal(1500, 200, n)
    t_air = rng.normal(300, 2, n)
    t_proc = t_air + rng.normal(10, 1, n)
    noise = rng.normal(size=(n, 2))
    power = torque * speed
    y = ((power > np.quantile(power, 0.93)) | (t_proc - t_air < 8.2)).astype(int)
    X = np.column_stack([torque, speed, t_air, t_proc, noise])
    names = ["torque", "speed", "t_air", "t_proc", "n1", "n2"]
    units = ["Nm", "rpm", "K", "K", None, None]
    folds = list(StratifiedKFold(5, shuffle=True, random_state=0).split(X, y))
    result = search_steps(X, y, names, units, Task.BINARY, folds, seed=0, num_threads=2)
    kept = {s.describe() for s in result.steps}
    assert "torque * speed" in kept
    assert kept & {"t_air - t_proc", "t_proc - t_air"}
    assert result.score > result.baseline
    assert result.to_dict()["tried"][0]["kept"] in (True, False)


def test_search_keeps_nothing_when_nothing_helps() -> None:
    rng = np.random.default_rng(2)
    n = 2000
    X = rng.normal(size=(n, 5))
    y = 3.0 * X[:, 0] + rng.normal(size=n)            # one column explains it all
    folds = list(KFold(5, shuffle=True, random_state=0).split(X))
    result = search_steps(X, y, [f"c{i}" for i in range(5)], [None] * 5, Task.REGRESSION,
                          folds, seed=0)
    assert len(result.steps) <= 1
    assert result.n_candidates > 0


def test_search_is_deterministic_and_respects_the_deadline() -> None:
    import time
    rng = np.random.default_rng(3)
    X = rng.normal(size=(1500, 4))
    y = (X[:, 0] * X[:, 1] > 0.5).astype(int)
    folds = list(StratifiedKFold(3, shuffle=True, random_state=0).split(X, y))
    args = (X, y, ["a", "b", "c", "d"], [None] * 4, Task.BINARY, folds)
    a = search_steps(*args, seed=4)
    b = search_steps(*args, seed=4)
    assert a.steps == b.steps and [t.gain for t in a.tried] == [t.gain for t in b.tried]
    started = time.monotonic()
    quick = search_steps(*args, seed=4, deadline=time.monotonic() + 0.05)
    assert time.monotonic() - started < 2.0
    assert quick.stopped_early or not quick.tried
