"""planta_edge.model.EdgeModel: a signed edge bundle loaded and run with onnxruntime, as the
device runtime calls it (`load`, `predict`, `predict_records`)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from exportkit import CONTRACT, edge_bundle, predictor, readings, records, source_bundle

from planta.core.bundle import write_bundle
from planta.core.signing import Signer
from planta.core.spec import Task
from planta.errors import ContractError, IntegrityError
from planta_edge.contract import validate_records
from planta_edge.model import EdgeModel, trusted_keys_from

SIGNER = Signer.generate()


@pytest.fixture(scope="module")
def binary() -> tuple[EdgeModel, object, dict[str, np.ndarray]]:
    pred, values = predictor("lightgbm", Task.BINARY)
    built = edge_bundle(pred, SIGNER)
    return EdgeModel.load(built.data, trusted_keys=[SIGNER.public_key.text]), pred, values


def test_load_exposes_what_the_runtime_reads(binary, tmp_path: Path) -> None:
    model, pred, _ = binary
    assert (model.usecase, model.version, model.task) == ("failure", 1, "binary")
    assert model.classes == ["ok", "failure"] and model.threshold == pred.threshold
    assert model.contract == CONTRACT
    assert model.signed_by == SIGNER.key_id and len(model.digest) == 64
    assert model.source_digest and model.source_digest != model.digest
    path = tmp_path / "failure.planta"
    path.write_bytes(edge_bundle(pred, SIGNER).data)
    again = EdgeModel.load(path, trusted_keys=[SIGNER.public_key.text])
    assert again.describe()["digest"] == again.digest


def test_predict_records_matches_the_native_model(binary) -> None:
    model, pred, values = binary
    recs = records(values, range(200))
    out = model.predict_records(recs)
    checked = validate_records(CONTRACT, recs)
    native = pred.predict(checked.values)
    assert out.ok.all() and out.n == 200
    assert out.prediction == native.label.tolist()
    assert np.max(np.abs(out.probability - native.probability)) < 1e-12
    first = out.record(0)
    assert first["ok"] and first["prediction"] in ("ok", "failure")
    assert 0.0 <= first["probability"] <= 1.0


def test_a_record_breaking_the_contract_is_refused_alone(binary) -> None:
    model, _, values = binary
    recs = records(values, range(4))
    recs[1]["torque_nm"] = -50.0
    recs[2]["kind"] = "XL"
    out = model.predict_records(recs)
    assert out.ok.tolist() == [True, False, False, True]
    assert out.prediction[1] is None and np.isnan(out.probability[1])
    assert out.rules[1] == "below_min" and "torque_nm" in out.reasons[1]
    assert out.rules[2] == "unknown_category"
    assert out.record(1) == {"ok": False, "reason": out.reasons[1], "rule": "below_min"}
    # The good rows are scored exactly as they are alone.
    alone = model.predict_records([recs[0], recs[3]])
    assert [out.prediction[0], out.prediction[3]] == alone.prediction


def test_an_empty_batch_is_refused(binary) -> None:
    with pytest.raises(ContractError, match="empty"):
        binary[0].predict_records([])


@pytest.mark.parametrize("task", [Task.MULTICLASS, Task.REGRESSION])
def test_multiclass_and_regression_outputs(task: Task) -> None:
    pred, values = predictor("ensemble", task, n=800)
    model = EdgeModel.load(edge_bundle(pred, SIGNER).data,
                           trusted_keys=[SIGNER.public_key.text])
    out = model.predict(values)
    native = pred.predict(values)
    if task == Task.REGRESSION:
        assert out.probability is None and out.score is not None
        assert np.max(np.abs(out.score - native.score)) < 1e-9
    else:
        assert out.probabilities is not None and out.probabilities.shape == (800, 3)
        assert out.prediction == native.label.tolist()
        assert np.allclose(out.probability, out.probabilities.max(axis=1))
        assert set(out.record(0)["probability"]) == {"low", "mid", "high"}


def test_a_registered_hub_bundle_is_not_an_edge_bundle() -> None:
    pred, _ = predictor("linear", Task.BINARY, n=300)
    source = source_bundle(pred)
    signed = write_bundle(dict(source.members), signer=SIGNER, **{
        k: v for k, v in source.manifest.items() if k not in ("members", "format")})
    with pytest.raises(IntegrityError, match="not an edge bundle"):
        EdgeModel.load(signed, trusted_keys=[SIGNER.public_key.text])


def test_an_untrusted_bundle_is_refused_before_loading(binary) -> None:
    other = Signer.generate()
    _, pred, _ = binary
    with pytest.raises(IntegrityError, match="does not trust"):
        EdgeModel.load(edge_bundle(pred, other).data, trusted_keys=[SIGNER.public_key.text])


def test_trusted_keys_from_a_text_file() -> None:
    text = f"# hub keys\n{SIGNER.public_key.text}  # current\n\n"
    assert trusted_keys_from(text.splitlines()) == [SIGNER.public_key.text]


def test_readings_fixture_has_missing_values_and_zero_speeds() -> None:
    # The parity checks above are only meaningful if the data reaches NaN branches and the
    # ratio step's division by zero.
    values = readings(1200)
    assert np.isnan(values["air_k"]).any() and (values["speed_rpm"] == 0).any()
