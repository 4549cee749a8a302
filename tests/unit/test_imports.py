"""The layers hold: core and the edge package pull in nothing they must not."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _modules_after(code: str) -> set[str]:
    out = subprocess.run([sys.executable, "-c", code + "\nimport sys, json\n"
                          "print(json.dumps(sorted(sys.modules)))"],
                         capture_output=True, text=True, check=True)
    return {m.split(".")[0] for m in json.loads(out.stdout)}


def test_edge_package_needs_only_numpy_and_stdlib() -> None:
    loaded = _modules_after("import planta_edge.contract, planta_edge.bundle, "
                            "planta_edge.model_input, planta_edge.model, planta_edge.signing")
    for heavy in ("pandas", "sklearn", "lightgbm", "xgboost", "fastapi", "sqlalchemy", "planta",
                  "pyarrow", "scipy"):
        assert heavy not in loaded, f"planta_edge pulled in {heavy}"


def test_core_has_no_store_web_or_cli() -> None:
    loaded = _modules_after("import planta.core.spec, planta.core.bundle, planta.core.contract, "
                            "planta.core.validation, planta.core.leakage, planta.core.profile")
    for outer in ("sqlalchemy", "fastapi", "typer", "alembic", "rich"):
        assert outer not in loaded, f"planta.core pulled in {outer}"


@pytest.mark.parametrize("module", ["planta", "planta.cli.app"])
def test_entry_points_import_light(module: str) -> None:
    loaded = _modules_after(f"import {module}")
    for heavy in ("lightgbm", "xgboost", "sklearn", "optuna", "pandas", "sqlalchemy"):
        assert heavy not in loaded, f"import {module} pulled in {heavy}"


def test_edge_model_loads_and_predicts_without_the_hub_libraries(tmp_path) -> None:
    """A device verifies a signed edge bundle and predicts with onnxruntime alone."""
    import numpy as np

    from planta.core.bundle import write_bundle
    from planta.core.models import Calibrator, LinearModel, Predictor
    from planta.core.signing import Signer
    from planta.core.spec import Task
    from planta.services.export import build_edge_bundle
    from planta_edge.bundle import canonical_json, read_bundle
    from planta_edge.contract import Contract, Field
    from planta_edge.model_input import ColumnEncoding, Encoding

    linear = LinearModel(({"kind": "number", "mean": 0.0, "scale": 1.0},), np.array([[2.0]]),
                         np.array([0.0]))
    pred = Predictor(Encoding((ColumnEncoding("x"),)), Task.BINARY, ["ok", "failure"],
                     [(1.0, linear)], Calibrator("platt", {"a": 1.0, "b": 0.0}), 0.5)
    members = dict(pred.to_members()) | {
        "contract.json": canonical_json(Contract(fields=(Field("x", "number"),)).to_dict()),
        "lineage.json": b"{}"}
    source = read_bundle(write_bundle(members, usecase="u", version=1))
    signer = Signer.generate()
    path = tmp_path / "edge.planta"
    path.write_bytes(build_edge_bundle(source, source.digest, signer=signer).data)
    loaded = _modules_after(
        "import planta_edge.model, planta_edge.signing\n"
        f"m = planta_edge.model.EdgeModel.load({str(path)!r}, "
        f"trusted_keys=[{signer.public_key.text!r}])\n"
        "assert m.predict_records([{'x': 1.0}, {'x': -1.0}]).prediction == ['failure', 'ok']")
    # The signature is checked in a short-lived child process (planta_edge.verify), so the
    # long-running device keeps cryptography's memory out of its own.
    assert "onnxruntime" in loaded and "cryptography" not in loaded
    for heavy in ("pandas", "sklearn", "lightgbm", "xgboost", "fastapi", "sqlalchemy", "planta",
                  "pyarrow", "scipy", "onnxmltools", "skl2onnx", "onnx"):
        assert heavy not in loaded, f"planta_edge.model pulled in {heavy}"


def test_edge_runtime_needs_no_hub_libraries() -> None:
    """The runtime, its inputs, outbox, sync, updates and CLI: stdlib, numpy, paho-mqtt."""
    loaded = _modules_after(
        "import planta_edge.runtime, planta_edge.outbox, planta_edge.sync, planta_edge.mqtt, "
        "planta_edge.httpin, planta_edge.folder, planta_edge.updates, planta_edge.cli, "
        "planta_edge.config, planta_edge.ids")
    assert "paho" in loaded
    for heavy in ("pandas", "sklearn", "lightgbm", "xgboost", "fastapi", "sqlalchemy", "planta",
                  "pyarrow", "scipy", "httpx", "requests", "starlette", "pydantic"):
        assert heavy not in loaded, f"the edge runtime pulled in {heavy}"
