"""The hub's in-memory onnxruntime engine (planta.services.onnx_engine): the Scorer's answers
are the native predictor's, bit for bit, or the native predictor answers."""

from __future__ import annotations

import numpy as np
import pytest
from exportkit import predictor, readings, records, source_bundle

from planta.core.spec import Task
from planta.services.onnx_engine import ENGINE_ENV, build_engine
from planta.services.predict import Scorer
from planta_edge.model_input import build_matrix


@pytest.mark.parametrize("task", [Task.BINARY, Task.REGRESSION])
@pytest.mark.parametrize("kind", ["lightgbm", "xgboost", "ensemble"])
def test_engine_gives_the_native_numbers_exactly(kind: str, task: Task) -> None:
    pred, _ = predictor(kind, task, n=600)
    choice = build_engine(pred)
    if kind == "ensemble" and choice.engine is None:
        # The linear member's matrix product may be summed differently by onnxruntime; then
        # the check must have refused the engine, saying so.
        assert "differs" in choice.reason
        return
    assert choice.engine is not None, choice.reason
    fresh = readings(700, seed=5)  # rows no check saw, with NaN and zero speeds
    native, fast = pred.predict(fresh), choice.engine.predict(fresh)
    assert fast.label.tolist() == native.label.tolist()
    if task == Task.BINARY:
        assert np.array_equal(fast.probability, native.probability)
        assert fast.probability.dtype == native.probability.dtype
    else:
        assert np.array_equal(fast.score, native.score)
    X = build_matrix(pred.encoding, fresh)
    assert choice.engine.predict_matrix(X).label.tolist() == native.label.tolist()
    one = {k: v[:1] for k, v in fresh.items()}  # the single-record hot path
    assert choice.engine.predict(one).label.tolist() == native.label.tolist()[:1]


def test_decisions_on_the_threshold_match() -> None:
    pred, _ = predictor("lightgbm", Task.BINARY, n=600)
    fresh = readings(300, seed=9)
    for p in np.sort(pred.predict(fresh).probability)[::41]:
        pred.threshold = float(p)
        engine = build_engine(pred).engine
        assert engine is not None
        assert engine.predict(fresh).label.tolist() == pred.predict(fresh).label.tolist()


def test_multiclass_and_the_switch_keep_the_native_predictor(
        monkeypatch: pytest.MonkeyPatch) -> None:
    multi, _ = predictor("lightgbm", Task.MULTICLASS, n=600)
    choice = build_engine(multi)
    assert choice.engine is None and "multiclass" in choice.reason
    binary, _ = predictor("lightgbm", Task.BINARY, n=600)
    monkeypatch.setenv(ENGINE_ENV, "native")
    choice = build_engine(binary)
    assert choice.engine is None and ENGINE_ENV in choice.reason


def test_scorer_answers_and_explains_as_the_native_one() -> None:
    pred, _ = predictor("xgboost", Task.BINARY, n=600)
    bundle = source_bundle(pred)
    fast, native = Scorer.from_bundle(bundle), Scorer.from_bundle(bundle, engine="native")
    assert fast.engine is not None, fast.engine_note
    assert native.engine is None
    fresh = readings(50, seed=13)
    fresh["air_k"] = np.where(np.isnan(fresh["air_k"]), 300.0, fresh["air_k"])
    recs = records(fresh, range(50))
    a = fast.predict(recs, explain=True)
    b = native.predict(recs, explain=True)
    assert a.prediction == b.prediction
    assert a.probability == b.probability
    assert a.reasons == b.reasons and a.reasons is not None and any(a.reasons)
