"""planta.core.models: every model kind survives a trip through bytes; nothing is pickled."""

from __future__ import annotations

import json
import pickle
from collections.abc import Callable

import numpy as np
import pytest

from planta.core.models import (
    Calibrator,
    LinearModel,
    Model,
    Predictor,
    fit_isotonic,
    fit_lightgbm,
    fit_linear,
    fit_platt,
    fit_temperature,
    fit_xgboost,
)
from planta.core.spec import Task
from planta.errors import IntegrityError
from planta_edge.model_input import ColumnEncoding, Encoding, FeatureStep, build_matrix

ENCODING = Encoding(
    columns=(ColumnEncoding("kind", "category", ("L", "M", "H")), ColumnEncoding("torque_nm"),
             ColumnEncoding("speed_rpm")),
    steps=(FeatureStep("product", "torque_nm", "speed_rpm", "power"),))


def _values(n: int, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    torque = rng.normal(40, 10, n)
    torque[::17] = np.nan
    return {"kind": rng.choice(np.array(["L", "M", "H", "?"], dtype=object), n),
            "torque_nm": torque, "speed_rpm": rng.normal(1500, 150, n)}


def _target(task: Task, values: dict[str, np.ndarray]) -> np.ndarray:
    power = np.nan_to_num(values["torque_nm"], nan=40) * values["speed_rpm"] / 1000.0
    if task == Task.REGRESSION:
        return power
    if task == Task.BINARY:
        return (power > 66).astype(int)
    return np.digitize(power, [55, 65]).astype(int)


def _fit(kind: str, task: Task, X: np.ndarray, y: np.ndarray) -> Model:
    n_classes = {Task.BINARY: 2, Task.MULTICLASS: 3, Task.REGRESSION: 0}[task]
    if kind == "lightgbm":
        return fit_lightgbm(X, y, task, n_classes, {"num_leaves": 7}, rounds=30,
                            categorical=(0,)).model
    if kind == "xgboost":
        return fit_xgboost(X, y, task, n_classes, {"max_depth": 3}, rounds=30).model
    kinds = ["category", "number", "number", "number"]
    return fit_linear(X, y, task, kinds, [3, 0, 0, 0], {}).model


CLASSES = {Task.BINARY: ["ok", "fail"], Task.MULTICLASS: ["low", "mid", "high"],
           Task.REGRESSION: []}


@pytest.mark.parametrize("task", [Task.BINARY, Task.MULTICLASS, Task.REGRESSION])
@pytest.mark.parametrize("kind", ["lightgbm", "xgboost", "linear"])
def test_round_trip_through_bytes_gives_identical_predictions(kind: str, task: Task,
                                                              monkeypatch: pytest.MonkeyPatch
                                                              ) -> None:
    values = _values(600)
    X = build_matrix(ENCODING, values)
    y = _target(task, values)
    model = _fit(kind, task, X, y)
    calibrator = (Calibrator("platt", {"a": 0.9, "b": -0.1}) if task == Task.BINARY else
                  Calibrator("temperature", {"t": 1.3}) if task == Task.MULTICLASS else None)
    original = Predictor(ENCODING, task, CLASSES[task], [(1.0, model)], calibrator, 0.4)
    members = original.to_members()
    members["metrics.json"] = json.dumps({"threshold": 0.4}).encode()
    assert all(isinstance(v, bytes) for v in members.values())

    # Loading must never touch pickle.
    def refuse(*_: object, **__: object) -> None:
        raise AssertionError("pickle used")
    monkeypatch.setattr(pickle, "loads", refuse)
    monkeypatch.setattr(pickle, "load", refuse)
    loaded = Predictor.from_members(members, num_threads=1)

    test = _values(300, seed=1)
    a, b = original.predict(test), loaded.predict(test)
    np.testing.assert_array_equal(a.label, b.label)
    if task == Task.REGRESSION:
        assert a.score is not None and b.score is not None and b.probability is None
        np.testing.assert_array_equal(a.score, b.score)
    else:
        assert a.probability is not None and b.probability is not None
        np.testing.assert_array_equal(a.probability, b.probability)
        assert b.classes == CLASSES[task]
        expected_shape = (300,) if task == Task.BINARY else (300, 3)
        assert b.probability.shape == expected_shape
    # Contributions add up to the margin and have one name per feature plus the baseline.
    contrib, names = loaded.contributions(test)
    assert names == list(ENCODING.feature_names) + ["(baseline)"]
    margin = loaded.margin_matrix(loaded.matrix(test))
    np.testing.assert_allclose(contrib.sum(axis=-1), margin, rtol=1e-5, atol=1e-5)


def test_binary_labels_follow_the_threshold() -> None:
    values = _values(400)
    model = _fit("lightgbm", Task.BINARY, build_matrix(ENCODING, values),
                 _target(Task.BINARY, values))
    predictor = Predictor(ENCODING, Task.BINARY, ["ok", "fail"], [(1.0, model)],
                          Calibrator("platt", {"a": 1.0, "b": 0.0}), threshold=0.3)
    pred = predictor.predict(values)
    assert pred.probability is not None
    assert ((pred.label == "fail") == (pred.probability >= 0.3)).all()


def test_ensemble_averages_margins() -> None:
    values = _values(500)
    X = build_matrix(ENCODING, values)
    y = _target(Task.BINARY, values)
    a, b = _fit("lightgbm", Task.BINARY, X, y), _fit("linear", Task.BINARY, X, y)
    both = Predictor(ENCODING, Task.BINARY, ["ok", "fail"], [(1.0, a), (3.0, b)], None)
    expected = 0.25 * a.margin(X) + 0.75 * b.margin(X)
    np.testing.assert_allclose(both.margin_matrix(X), expected)
    again = Predictor.from_members(both.to_members())
    np.testing.assert_allclose(again.margin_matrix(X), expected)


def test_linear_model_is_plain_json() -> None:
    values = _values(300)
    X = build_matrix(ENCODING, values)
    model = _fit("linear", Task.REGRESSION, X, _target(Task.REGRESSION, values))
    assert isinstance(model, LinearModel)
    doc = json.loads(model.to_bytes())
    assert doc["format"] == "planta.linear/1" and len(doc["columns"]) == 4
    np.testing.assert_array_equal(LinearModel.from_bytes(model.to_bytes()).margin(X),
                                  model.margin(X))


@pytest.mark.parametrize("fit", [fit_platt, fit_isotonic])
def test_calibrators_round_trip_and_are_monotone(fit: Callable[..., Calibrator]) -> None:
    rng = np.random.default_rng(3)
    margin = rng.normal(0, 2, 2000)
    y = (rng.random(2000) < 1 / (1 + np.exp(-(0.5 * margin - 1)))).astype(int)
    cal = fit(margin, y)
    again = Calibrator.from_bytes(cal.to_bytes())
    grid = np.linspace(-6, 6, 50)
    np.testing.assert_array_equal(cal.probability(grid), again.probability(grid))
    assert np.all(np.diff(again.probability(grid)) >= -1e-12)
    # A calibrated probability tracks the observed rate.
    assert abs(again.probability(margin).mean() - y.mean()) < 0.02


def test_platt_recovers_a_known_scale() -> None:
    rng = np.random.default_rng(4)
    margin = rng.normal(0, 2, 20000)
    y = (rng.random(20000) < 1 / (1 + np.exp(-(0.5 * margin - 1)))).astype(int)
    cal = fit_platt(margin, y)
    assert cal.params["a"] == pytest.approx(0.5, abs=0.05)
    assert cal.params["b"] == pytest.approx(-1.0, abs=0.1)


def test_temperature_keeps_the_argmax() -> None:
    rng = np.random.default_rng(5)
    margin = rng.normal(0, 3, (500, 3))
    y = margin.argmax(axis=1)
    cal = fit_temperature(margin, y)
    assert (cal.probability(margin).argmax(axis=1) == y).all()


def test_damaged_members_raise_integrity_errors() -> None:
    values = _values(200)
    model = _fit("linear", Task.BINARY, build_matrix(ENCODING, values),
                 _target(Task.BINARY, values))
    members = Predictor(ENCODING, Task.BINARY, ["ok", "fail"], [(1.0, model)], None).to_members()
    with pytest.raises(IntegrityError):
        Predictor.from_members({k: v for k, v in members.items() if k != "model/model.json"})
    broken = dict(members)
    broken["model/linear-0.json"] = b"{not json"
    with pytest.raises(IntegrityError):
        Predictor.from_members(broken)
    other = dict(members)
    other["model/model.json"] = json.dumps({"format": "something/9"}).encode()
    with pytest.raises(IntegrityError):
        Predictor.from_members(other)


def test_predict_on_a_million_rows_is_fast() -> None:
    import time

    values = _values(5000)
    X = build_matrix(ENCODING, values)
    model = fit_lightgbm(X, _target(Task.BINARY, values), Task.BINARY, 2,
                         {"num_leaves": 31}, rounds=100, categorical=(0,)).model
    predictor = Predictor.from_members(
        Predictor(ENCODING, Task.BINARY, ["ok", "fail"], [(1.0, model)],
                  Calibrator("platt", {"a": 1.0, "b": 0.0})).to_members())
    big = _values(1_000_000, seed=9)
    started = time.perf_counter()
    pred = predictor.predict(big)
    elapsed = time.perf_counter() - started
    assert pred.label.shape == (1_000_000,)
    assert elapsed < 20.0, f"{elapsed:.1f} s for 1M rows"
