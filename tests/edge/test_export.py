"""`planta export --onnx`: one ONNX graph with the native model's numbers and decisions, stored
as a signed edge bundle derived from the registered one."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnx
import pandas as pd
import pytest
from exportkit import ENCODING, edge_bundle, predictor, readings, targets
from typer.testing import CliRunner

from planta.cli.app import app
from planta.core.models import fit_lightgbm
from planta.core.onnx_graph import ExportError, build_graph
from planta.core.signing import Signer
from planta.core.spec import Task
from planta.services.demo import demo_data
from planta.services.export import check_parity, edge_bundle_for, holdout_values
from planta.services.versions import load_bundle, load_predictor
from planta.services.workspace import Workspace
from planta_edge.bundle import read_bundle
from planta_edge.model import EdgeModel
from planta_edge.model_input import build_matrix
from planta_edge.signing import PublicKey

runner = CliRunner()
SIGNER = Signer.generate()
TRUST = [SIGNER.public_key.text]


def _edge(pred) -> EdgeModel:
    return EdgeModel.load(edge_bundle(pred, SIGNER).data, trusted_keys=TRUST)


# -- the graph, member by member -----------------------------------------------------------------

@pytest.mark.parametrize("task", [Task.BINARY, Task.MULTICLASS, Task.REGRESSION])
@pytest.mark.parametrize("kind", ["lightgbm", "xgboost", "linear", "ensemble"])
def test_graph_reproduces_the_native_predictor(kind: str, task: Task) -> None:
    pred, _ = predictor(kind, task, n=900)
    fresh = readings(600, seed=7)   # rows the models never saw, with NaN and zero speeds
    parity = check_parity(pred, _edge(pred), fresh)
    assert parity["n"] == 600
    assert parity["decisions_differ"] == 0
    # Float32 softmax (XGBoost's own precision) is the only place the numbers may differ.
    limit = 1e-6 if task == Task.MULTICLASS and kind == "xgboost" else 1e-9
    assert parity["max_abs_diff"] < limit, parity


def test_isotonic_calibration_in_the_graph() -> None:
    pred, _ = predictor("ensemble", Task.BINARY, n=900, calibrator="isotonic")
    assert pred.calibrator.kind == "isotonic"
    parity = check_parity(pred, _edge(pred), readings(600, seed=3))
    assert parity["decisions_differ"] == 0 and parity["max_abs_diff"] < 1e-9


def test_decisions_at_the_threshold_match_exactly() -> None:
    # Put the threshold exactly on native probabilities: a row sitting on it must get the
    # same decision from both (onnxruntime's tanh may differ from numpy's in the last bit, so
    # the graph decides on the margin, with the cut found by the native arithmetic).
    pred, _ = predictor("lightgbm", Task.BINARY, n=900)
    fresh = readings(400, seed=11)
    for p in np.sort(pred.predict(fresh).probability)[::57]:
        pred.threshold = float(p)
        edge = _edge(pred)
        assert edge.threshold == float(p)
        native, exported = pred.predict(fresh), edge.predict(fresh)
        assert exported.prediction == native.label.tolist()
        assert exported.prediction.count("failure") == int((native.probability >= p).sum())


def test_every_feature_step_runs_in_the_graph() -> None:
    pred, _ = predictor("linear", Task.BINARY, n=300)
    graph = build_graph(pred)
    ops = {n.op_type for n in graph.model.graph.node}
    assert {"Sub", "Mul", "Div", "IsInf", "MatMul"} <= ops
    assert any("torque_nm_per_speed_rpm" in s for s in graph.in_graph)
    assert graph.on_device == ["category codes of kind (text -> code, planta_edge.model_input)"]
    onnx.checker.check_model(graph.model)


def test_a_part_without_an_onnx_form_is_named() -> None:
    pred, values = predictor("lightgbm", Task.BINARY, n=400)
    X = build_matrix(ENCODING, values)
    linear_trees = fit_lightgbm(X, targets(values, Task.BINARY), Task.BINARY, 2,
                                {"linear_tree": True, "num_leaves": 4}, rounds=3).model
    pred.members = [(1.0, linear_trees)]
    with pytest.raises(ExportError, match="linear trees"):
        build_graph(pred)


def test_quantize_applies_to_the_linear_model_only() -> None:
    pred, _ = predictor("linear", Task.BINARY, n=900)
    plain = edge_bundle(pred, SIGNER)
    small = edge_bundle(pred, SIGNER, quantize=True)
    assert small.quantized and "8-bit" in (small.note or "")
    ops = {n.op_type for n in onnx.load_from_string(small.onnx_bytes).graph.node}
    assert "MatMulInteger" in ops or "DynamicQuantizeLinear" in ops
    edge = EdgeModel.load(small.data, trusted_keys=TRUST)
    parity = check_parity(pred, edge, readings(600, seed=5))
    assert 0.0 < parity["max_abs_diff"] < 0.05       # int8 weights: close, not exact
    trees, _ = predictor("lightgbm", Task.BINARY, n=300)
    tree_build = edge_bundle(trees, SIGNER, quantize=True)
    assert not tree_build.quantized
    assert "tree ensemble, which has no weight matrices" in (tree_build.note or "")
    assert len(plain.onnx_bytes) > 0


# -- the command, on AI4I 2020 trained by `planta train` -----------------------------------------

def _run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, f"planta {' '.join(args)} -> {result.exit_code}:\n" \
                                     f"{result.output}"
    assert "Traceback" not in result.output
    return result.output


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    base = tmp_path_factory.mktemp("export")
    root = base / "plant"
    saved = {k: os.environ.get(k) for k in ("PLANTA_SIGNING_KEYS",)}
    os.environ["PLANTA_SIGNING_KEYS"] = str(base / "signing")
    cwd = os.getcwd()
    _run("init", str(root))
    os.chdir(root)
    try:
        raw = pd.read_csv(demo_data())
        raw.iloc[:2500].to_csv(root / "history.csv", index=False)
        _run("usecase", "add", "failure", "--target", "Machine failure", "--task", "binary",
             "--objective", "recall>=0.05 and precision>=0.05")
        _run("ingest", "failure", "history.csv", "--json")
        trained = runner.invoke(app, ["train", "failure", "--budget", "3", "--json"])
        assert trained.exit_code in (0, 3), trained.output
        yield root
    finally:
        os.chdir(cwd)
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="module")
def public_key(project: Path) -> str:
    created = json.loads(_run("keys", "create", "--json"))
    shown = json.loads(_run("keys", "show", "--json"))
    assert [k["public_key"] for k in shown["keys"]] == [created["key"]["public_key"]]
    return str(created["key"]["public_key"])


def test_export_needs_a_signing_key_first(project: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PLANTA_SIGNING_KEYS", str(tmp_path / "no-keys-here"))
    out = _run("export", "failure", "--version", "1", "--onnx", code=1)
    assert "no signing key" in out and "planta keys create" in out
    out = _run("export", "failure", "--version", "1", code=2)
    assert "--onnx" in out


def test_export_stores_a_signed_edge_bundle_with_parity(project: Path, public_key: str) -> None:
    public = public_key
    ws = Workspace.open(project)
    try:
        mv = ws.registry.get_model("failure", 1)
        before = ws.artifacts.get_bytes(mv.bundle_digest)
        out = json.loads(_run("export", "failure", "--version", "1", "--onnx", "--json"))
        assert out["ok"] and out["source_sha256"] == mv.bundle_digest
        assert out["parity"]["decisions_differ"] == 0
        assert out["parity"]["max_abs_diff"] < 1e-9
        assert out["parity"]["rows"].startswith("the holdout: ")
        assert out["parity"]["n"] == ws.registry.get_model("failure", 1).summary["n_holdout"]
        assert out["latency"]["onnx_median_us"] > 0 and out["latency"]["native_median_us"] > 0
        assert out["signed_by"] == PublicKey.parse(public).key_id
        # The registered bundle is unchanged; the edge bundle is a new artifact of its own.
        assert ws.artifacts.get_bytes(mv.bundle_digest) == before
        data = ws.artifacts.get_bytes(out["edge_sha256"])
        assert out["edge_sha256"] != mv.bundle_digest and len(data) == out["edge_bytes"]
        edge = EdgeModel.load(data, trusted_keys=[public], expected_digest=out["edge_sha256"])
        lineage = edge.bundle.json("lineage.json")
        assert lineage["source_sha256"] == mv.bundle_digest
        assert lineage["parity"]["decisions_differ"] == 0
        assert edge.manifest["kind"] == "edge"
        assert edge_bundle_for(ws, "failure", 1) == out["edge_sha256"]
        events = ws.audit.events(action="export")
        assert events[-1].payload["edge_sha256"] == out["edge_sha256"]
        # The device model decides exactly as the registered one on the holdout.
        source = load_bundle(ws, "failure", 1)
        pred, contract = load_predictor(source)
        values, _ = holdout_values(ws, source, contract)
        assert edge.predict(values).prediction == pred.predict(values).label.tolist()
        assert read_bundle(data, trusted_keys=[public]).signed_by == out["signed_by"]
    finally:
        ws.close()


def test_quantize_on_a_tree_model_says_there_is_nothing_to_quantize(project: Path,
                                                                     public_key: str) -> None:
    text = _run("export", "failure", "--version", "1", "--onnx", "--quantize")
    assert "Not quantized" in text and "0 of" in text and "decisions differ" in text


def test_versions_registered_after_a_key_exists_are_signed(project: Path,
                                                            public_key: str) -> None:
    trained = runner.invoke(app, ["train", "failure", "--budget", "2", "--json"])
    assert trained.exit_code in (0, 3), trained.output
    version = json.loads(trained.output)["version"]
    ws = Workspace.open(project)
    try:
        old = load_bundle(ws, "failure", 1)
        new = load_bundle(ws, "failure", version)
    finally:
        ws.close()
    assert old.signature is None              # trained before the key: left as it was
    data = ws.artifacts.get_bytes(new.digest)
    assert read_bundle(data, trusted_keys=[public_key]).signed_by == \
        PublicKey.parse(public_key).key_id
