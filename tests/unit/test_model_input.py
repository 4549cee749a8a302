"""planta_edge.model_input: category codes, feature steps, the one matrix builder."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from planta_edge.contract import Contract, Field
from planta_edge.errors import ContractError
from planta_edge.model_input import ColumnEncoding, Encoding, FeatureStep, build_matrix, step_name


def _encoding() -> Encoding:
    return Encoding(
        columns=(ColumnEncoding("kind", "category", ("L", "M", "H")),
                 ColumnEncoding("air_k"), ColumnEncoding("process_k"),
                 ColumnEncoding("torque_nm"), ColumnEncoding("speed_rpm")),
        steps=(FeatureStep("difference", "process_k", "air_k", "delta_k"),
               FeatureStep("product", "torque_nm", "speed_rpm", "power"),
               FeatureStep("ratio", "torque_nm", "speed_rpm", "torque_per_speed")))


def test_build_matrix_encodes_categories_in_contract_order_and_appends_steps() -> None:
    values = {"kind": np.array(["H", "L", "M"], dtype=object),
              "air_k": np.array([300.0, 301.0, 302.0]),
              "process_k": np.array([310.0, 311.5, 312.0]),
              "torque_nm": np.array([40.0, 0.0, 10.0]),
              "speed_rpm": np.array([1500.0, 1400.0, 0.0]),
              "ignored_extra": np.array([1, 2, 3])}
    X = build_matrix(_encoding(), values)
    assert X.dtype == np.float64 and X.shape == (3, 8)
    assert X[:, 0].tolist() == [2.0, 0.0, 1.0]
    assert X[:, 5].tolist() == [10.0, 10.5, 10.0]
    assert X[:, 6].tolist() == [60000.0, 0.0, 0.0]
    ratio = X[:, 7]
    assert ratio[0] == pytest.approx(40 / 1500) and ratio[1] == 0.0 and np.isnan(ratio[2])


def test_unknown_and_missing_categories_become_nan() -> None:
    enc = Encoding((ColumnEncoding("kind", "category", ("L", "M", "H")),))
    X = build_matrix(enc, {"kind": np.array(["X", None, float("nan"), "", "M"], dtype=object)})
    assert np.isnan(X[:4, 0]).all() and X[4, 0] == 1.0


def test_numeric_categories_match_their_text() -> None:
    # A category column written as 1, 2, 3 may arrive as numbers from JSON.
    enc = Encoding((ColumnEncoding("line", "category", ("1", "2", "3")),))
    assert build_matrix(enc, {"line": np.array([3.0, 1.0, 7.0])})[:, 0].tolist()[:2] == [2.0, 0.0]
    assert build_matrix(enc, {"line": np.array([2, 3])})[:, 0].tolist() == [1.0, 2.0]


def test_missing_numbers_and_non_finite_step_results_are_nan() -> None:
    enc = Encoding((ColumnEncoding("a"), ColumnEncoding("b")),
                   (FeatureStep("product", "a", "b", "ab"),
                    FeatureStep("ratio", "a", "b", "a_per_b")))
    X = build_matrix(enc, {"a": np.array([np.nan, 1e308, 0.0, np.inf]),
                           "b": np.array([1.0, 1e308, 0.0, 1.0])})
    assert np.isnan(X[0]).sum() == 3          # a missing, and both steps
    assert np.isnan(X[1, 2])                  # overflow is missing, not inf
    assert np.isnan(X[2, 3])                  # 0 / 0
    assert np.isnan(X[3, 0])                  # inf input is missing


def test_steps_may_read_earlier_steps() -> None:
    enc = Encoding((ColumnEncoding("a"), ColumnEncoding("b")),
                   (FeatureStep("difference", "a", "b", "d"),
                    FeatureStep("product", "d", "a", "d_x_a")))
    assert build_matrix(enc, {"a": np.array([3.0]), "b": np.array([1.0])}).tolist() == [
        [3.0, 1.0, 2.0, 6.0]]


def test_round_trip_through_json() -> None:
    enc = _encoding()
    text = json.dumps(enc.to_dict())
    again = Encoding.from_dict(json.loads(text))
    assert again == enc
    assert again.feature_names == enc.feature_names
    assert json.loads(text)["feature_names"][-1] == "torque_per_speed"


def test_from_fields_follows_the_contract() -> None:
    contract = Contract(fields=(
        Field("kind", "category", categories=("L", "M", "H")),
        Field("torque_nm", "number", unit="Nm"), Field("ok", "boolean"),
        Field("note", "text"), Field("failure", "integer", role="target")), target="failure")
    enc = Encoding.from_fields(contract.features)
    assert enc.input_names == ("kind", "torque_nm", "ok")
    assert enc.columns[0].categories == ("L", "M", "H")
    assert enc.categorical_indices == (0,)


@pytest.mark.parametrize("bad", [
    lambda: FeatureStep("sum", "a", "b", "s"),
    lambda: FeatureStep("product", "a", "b", "a"),
    lambda: Encoding((ColumnEncoding("a"),), (FeatureStep("product", "a", "zz", "p"),)),
    lambda: Encoding((ColumnEncoding("k", "category", ("x",)), ColumnEncoding("a")),
                     (FeatureStep("product", "a", "k", "p"),)),
    lambda: Encoding.from_dict({"format": "other", "columns": []}),
])
def test_invalid_encodings_are_refused(bad: object) -> None:
    with pytest.raises(ContractError):
        bad()  # type: ignore[operator]


def test_missing_input_field_is_named() -> None:
    with pytest.raises(ContractError, match="torque_nm"):
        build_matrix(_encoding(), {"kind": np.array(["L"], dtype=object)})


def test_text_in_a_number_field_is_refused() -> None:
    enc = Encoding((ColumnEncoding("a"),))
    assert build_matrix(enc, {"a": np.array(["1.5", None, ""], dtype=object)})[0, 0] == 1.5
    with pytest.raises(ContractError, match="not a number"):
        build_matrix(enc, {"a": np.array(["fast"], dtype=object)})


def test_step_name_convention() -> None:
    assert step_name("difference", "a", "b") == "a_minus_b"
    assert step_name("product", "a", "b") == "a_x_b"


def test_a_million_rows_encode_quickly() -> None:
    import time
    n = 1_000_000
    rng = np.random.default_rng(0)
    values = {"kind": rng.choice(np.array(["L", "M", "H"], dtype=object), n),
              "air_k": rng.normal(300, 2, n), "process_k": rng.normal(310, 1, n),
              "torque_nm": rng.normal(40, 10, n), "speed_rpm": rng.normal(1500, 100, n)}
    started = time.perf_counter()
    X = build_matrix(_encoding(), values)
    assert X.shape == (n, 8)
    assert time.perf_counter() - started < 3.0


def test_edge_module_imports_only_numpy_and_stdlib() -> None:
    code = ("import sys, planta_edge.model_input; "
            "bad = [m for m in ('pandas', 'sklearn', 'lightgbm', 'xgboost', 'scipy', 'planta') "
            "if m in sys.modules]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"
