"""Export a registered model version as a signed edge bundle (ONNX), checked for parity.

    registered bundle (verified against the registry's sha256; never changed)
      │ graph     planta.core.onnx_graph: feature steps + members + calibrator + decision
      │ quantize  onnxruntime dynamic quantization of MatMul weights (linear members only;
      │           tree ensembles have no weights to quantize, and the export says so)
      │ bundle    model.onnx, edge.json, the same contract / encoding / profile / metrics,
      │           lineage.json naming the source's sha256; signed with the hub's key
      │ parity    the signed bundle loaded as a device loads it (planta_edge.model.EdgeModel)
      │           against the native predictor on the holdout rows: max |P difference| and
      │           decisions at the threshold, which must all match, else nothing is stored
      ▼ store     content-addressed like every artifact; audit event "export" (its payload
                  holds both digests, so `edge_bundle_for` finds the newest export)

Latency is measured on one record at a time through each path (median, µs), with the size of
the graph and of both bundles.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import numpy as np

import planta
from planta.core.bundle import write_bundle
from planta.core.models import LinearModel, Predictor
from planta.core.onnx_graph import ExportError, Graph, build_graph
from planta.core.signing import Signer
from planta.core.spec import Task, UseCase
from planta.errors import NotFoundError, PlantaError
from planta.services.versions import load_bundle, load_predictor
from planta.services.workspace import Workspace
from planta_edge.bundle import Bundle, canonical_json
from planta_edge.contract import Contract
from planta_edge.model import DESCRIPTOR, EDGE_FORMAT, EDGE_KIND, GRAPH, EdgeModel

# Members copied from the registered bundle unchanged (the contract rules and the encoding the
# device applies, the drift reference, the holdout metrics).
_COPIED = ("contract.json", "features.json", "profile.json", "metrics.json")
# How long each latency measurement may take at most.
_LATENCY_BUDGET_S = 0.5


@dataclass(frozen=True)
class ExportResult:
    """What an export made and measured."""

    usecase: str
    version: int
    source_digest: str
    source_size: int
    edge_digest: str
    edge_size: int
    graph_size: int
    signed_by: str
    quantized: bool
    quantize_note: str | None
    parity: dict[str, Any]
    latency: dict[str, Any]
    in_graph: list[str] = field(default_factory=list)
    on_device: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"usecase": self.usecase, "version": self.version,
                "source_sha256": self.source_digest, "source_bytes": self.source_size,
                "edge_sha256": self.edge_digest, "edge_bytes": self.edge_size,
                "onnx_bytes": self.graph_size, "signed_by": self.signed_by,
                "quantized": self.quantized, "quantize_note": self.quantize_note,
                "parity": dict(self.parity), "latency": dict(self.latency),
                "in_graph": list(self.in_graph), "on_device": list(self.on_device)}


def export_edge(ws: Workspace, usecase: str, version: int | str = "production", *,
                signer: Signer, quantize: bool = False) -> ExportResult:
    """Export a version (number or alias) as a signed edge bundle; see the module docstring.

    Raises :class:`ExportError` when a part cannot be exported or parity fails (nothing is
    stored then), :class:`planta.errors.NotFoundError` for an unknown version.
    """
    mv = ws.registry.resolve(usecase, version)
    source = load_bundle(ws, usecase, mv.version)
    built = build_edge_bundle(source, mv.bundle_digest, signer=signer, quantize=quantize,
                              actor=ws.actor)
    predictor = built.predictor
    values, parity_rows = holdout_values(ws, source, built.contract)
    edge = EdgeModel.load(built.data, trusted_keys=[signer.public_key.text])
    parity = check_parity(predictor, edge, values)
    parity["rows"] = parity_rows
    if parity["decisions_differ"]:
        what = "quantization" if built.quantized else "the ONNX graph"
        raise ExportError(
            f"The edge model disagrees with the registered model on {parity['decisions_differ']}"
            f" of {parity['n']} holdout rows at the decision threshold (largest probability "
            f"difference {parity['max_abs_diff']:.3g}), because of {what}. Nothing was stored.",
            hint="Export without --quantize." if built.quantized else
            "Report this with the model's version: the export should match exactly.")
    # The parity figures go into the bundle itself, so a device can show what was checked.
    built = build_edge_bundle(source, mv.bundle_digest, signer=signer, quantize=quantize,
                              actor=ws.actor, parity=parity)
    data, onnx_bytes, graph, quantized, note = (built.data, built.onnx_bytes, built.graph,
                                                built.quantized, built.note)
    edge = EdgeModel.load(data, trusted_keys=[signer.public_key.text])
    latency = compare_latency(predictor, edge, values)
    digest = ws.artifacts.put_bytes(data)
    result = ExportResult(
        usecase=usecase, version=mv.version, source_digest=mv.bundle_digest,
        source_size=mv.bundle_size, edge_digest=digest, edge_size=len(data),
        graph_size=len(onnx_bytes), signed_by=signer.key_id, quantized=quantized,
        quantize_note=note, parity=parity, latency=latency, in_graph=graph.in_graph,
        on_device=graph.on_device)
    ws.audit.append("export", f"usecase/{usecase}/model/{mv.version}", ws.actor,
                    {"edge_sha256": digest, "source_sha256": mv.bundle_digest,
                     "signed_by": signer.key_id, "quantized": quantized,
                     "max_abs_diff": parity["max_abs_diff"],
                     "decisions_differ": parity["decisions_differ"], "rows": parity["n"]})
    return result


@dataclass(frozen=True)
class EdgeBuild:
    """An edge bundle's bytes and what went into them."""

    data: bytes
    onnx_bytes: bytes
    graph: Graph
    predictor: Predictor
    contract: Contract
    quantized: bool
    note: str | None


def build_edge_bundle(source: Bundle, source_digest: str, *, signer: Signer,
                      quantize: bool = False, actor: str = "planta",
                      parity: Mapping[str, Any] | None = None) -> EdgeBuild:
    """The signed edge bundle of a verified registered bundle (no store involved)."""
    predictor, contract = load_predictor(source)
    has_linear = any(isinstance(m, LinearModel) for _, m in predictor.members)
    graph = build_graph(predictor, float32_linear=quantize and has_linear)
    onnx_bytes = graph.to_bytes()
    note = None
    if quantize and has_linear:
        onnx_bytes = quantize_graph(onnx_bytes)
        note = ("The linear model's weights are stored as 8-bit integers (dynamic "
                "quantization)." if len(predictor.members) == 1 else
                "The linear member's weights are stored as 8-bit integers (dynamic "
                "quantization); the tree members are unchanged.")
    elif quantize:
        note = ("Not quantized: this model is a tree ensemble, which has no weight matrices to "
                "quantize (its thresholds and leaf values must stay exact). The export is the "
                "full-precision graph.")
    quantized = quantize and has_linear
    lineage: dict[str, Any] = {
        "format": "planta.edge_lineage/1", "source_sha256": source_digest,
        "source_version": source.version,
        "source_lineage_sha256": source.manifest["members"].get("lineage.json", {}).get("sha256"),
        "quantized": quantized, "packages": _packages(), "exported_by": actor}
    if parity is not None:
        lineage["parity"] = dict(parity)
    members = _edge_members(source, predictor, graph, onnx_bytes, quantized)
    members["lineage.json"] = canonical_json(lineage)
    data = write_bundle(members, signer=signer, usecase=source.usecase, version=source.version,
                        kind=EDGE_KIND, source_sha256=source_digest, created_by=actor,
                        planta_version=planta.__version__)
    return EdgeBuild(data, onnx_bytes, graph, predictor, contract, quantized, note)


def edge_bundle_for(ws: Workspace, usecase: str, version: int) -> str | None:
    """The sha256 of the newest edge bundle exported from a version, or None (from the audit
    log's export events; the bundle itself is in the artifact store)."""
    events = ws.audit.events(limit=None, action="export",
                             subject=f"usecase/{usecase}/model/{version}")
    for event in reversed(events):  # newest first
        digest = (event.payload or {}).get("edge_sha256")
        if digest and ws.artifacts.exists(digest):
            return str(digest)
    return None


# ---------------------------------------------------------------------------------------------
# Parity and latency
# ---------------------------------------------------------------------------------------------

def check_parity(predictor: Predictor, edge: EdgeModel,
                 values: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Native and edge predictions on the same rows: max |difference| and decisions differing.

    For classifiers the difference is in probability (every class for multiclass); for
    regression in the predicted value.
    """
    native = predictor.predict(values)
    exported = edge.predict(values)
    n = len(exported.prediction)
    if predictor.task == Task.REGRESSION:
        assert native.score is not None and exported.score is not None
        diff = np.abs(np.asarray(native.score, float) - exported.score)
        return {"n": n, "max_abs_diff": float(diff.max(initial=0.0)), "decisions_differ": 0,
                "compared": "predicted value"}
    assert native.probability is not None
    other = exported.probabilities if predictor.task == Task.MULTICLASS else \
        exported.probability
    assert other is not None
    diff = np.abs(np.asarray(native.probability, float) - other)
    differ = int(np.sum(np.asarray(native.label, dtype=object)
                        != np.asarray(exported.prediction, dtype=object)))
    return {"n": n, "max_abs_diff": float(diff.max(initial=0.0)), "decisions_differ": differ,
            "compared": "probability and decision"}


def compare_latency(predictor: Predictor, edge: EdgeModel,
                    values: Mapping[str, np.ndarray]) -> dict[str, Any]:
    """Single-record latency (median, µs) of the edge model and of the native predictor,
    both from contract values (category codes, steps, model, calibrator, decision)."""
    row = {k: v[:1] for k, v in values.items()}
    onnx_us, n1 = median_us(lambda: edge.predict(row))
    native_us, n2 = median_us(lambda: predictor.predict(row))
    return {"onnx_median_us": round(onnx_us, 1), "native_median_us": round(native_us, 1),
            "samples": min(n1, n2), "speedup": round(native_us / onnx_us, 2) if onnx_us else None}


def median_us(fn: Callable[[], Any], repeats: int = 300,
              budget_s: float = _LATENCY_BUDGET_S) -> tuple[float, int]:
    """Median wall time of ``fn`` in µs, over up to ``repeats`` calls within ``budget_s``."""
    for _ in range(5):
        fn()
    times: list[float] = []
    deadline = time.perf_counter() + budget_s
    while len(times) < repeats and (len(times) < 20 or time.perf_counter() < deadline):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times), len(times)


def holdout_values(ws: Workspace, bundle: Bundle, contract: Contract
                   ) -> tuple[dict[str, np.ndarray], str]:
    """The model's holdout rows as contract values, rebuilt from the dataset version, seed and
    use case in its lineage with training's own split; and a description of them."""
    # Training does not store its holdout rows (they would grow with the data); the split is
    # deterministic given the data, seed and use case, so rebuild it with training's code.
    from planta.services.ingest import parquet_to_frame
    from planta.services.split import holdout_rows, is_missing

    lineage = bundle.json("lineage.json")
    metrics = bundle.json("metrics.json") if "metrics.json" in bundle.members else {}
    dv = ws.registry.get_dataset_version(bundle.usecase, int(lineage["dataset_version"]))
    if dv.snapshot_digest is None:
        raise NotFoundError(f"Dataset version {dv.version} of {bundle.usecase!r} has no stored "
                            "snapshot, so the holdout rows for the parity check are missing.",
                            hint="Restore the project's artifacts from a backup.")
    frame = parquet_to_frame(ws.artifacts.get_bytes(dv.snapshot_digest))
    usecase = _usecase(ws, bundle.usecase, lineage)
    target = contract.target or usecase.target
    inputs = [f for f in contract.inputs if f.name in frame.columns]
    sub = frame[~is_missing(frame[target])] if target in frame.columns else frame
    description = f"all {len(sub)} rows of dataset version {dv.version}"
    rows = np.arange(len(sub))
    if target in frame.columns:
        hold = holdout_rows(sub, usecase, target, int(lineage.get("seed", 0)))
        if len(hold) == int(metrics.get("n_holdout", -1)):
            rows = hold
            description = f"the holdout: {len(hold)} rows of dataset version {dv.version}"
    part = sub.iloc[rows]
    values = {f.name: _column_values(part[f.name], f.kind) for f in inputs}
    return values, description


def _usecase(ws: Workspace, name: str, lineage: Mapping[str, Any]) -> UseCase:
    spec = dict(lineage.get("usecase") or {})
    spec.pop("name", None)
    try:
        return UseCase.from_dict(name, spec)
    except (PlantaError, KeyError, TypeError, ValueError):
        return ws.project.usecase(name)


def _column_values(series: Any, kind: str) -> np.ndarray:
    import pandas as pd

    if kind in ("number", "integer", "boolean"):
        if pd.api.types.is_bool_dtype(series.dtype):
            return np.asarray(series.astype("float64"), dtype=float)
        return np.asarray(pd.to_numeric(series, errors="coerce").to_numpy(
            dtype=float, na_value=np.nan))
    return np.asarray(series.astype(object).where(series.notna(), None), dtype=object)


# ---------------------------------------------------------------------------------------------
# Building the bundle
# ---------------------------------------------------------------------------------------------

def _edge_members(source: Bundle, predictor: Predictor, graph: Graph, onnx_bytes: bytes,
                  quantized: bool) -> dict[str, bytes]:
    members = {name: source.members[name] for name in _COPIED if name in source.members}
    members[GRAPH] = onnx_bytes
    members[DESCRIPTOR] = canonical_json({
        "format": EDGE_FORMAT, "task": predictor.task.value, "classes": predictor.classes,
        "threshold": predictor.threshold if predictor.task == Task.BINARY else None,
        "inputs": list(predictor.encoding.input_names),
        "features": list(predictor.encoding.feature_names), "outputs": list(graph.outputs),
        "in_graph": graph.in_graph, "on_device": graph.on_device, "quantized": quantized,
        "opset": {"ai.onnx": 21, "ai.onnx.ml": 5}})
    return members


def quantize_graph(onnx_bytes: bytes) -> bytes:
    """onnxruntime dynamic quantization of the graph's float32 MatMul weights (to int8)."""
    import tempfile
    from pathlib import Path

    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="planta-quantize-") as tmp:
        src, dst = Path(tmp) / "model.onnx", Path(tmp) / "model.int8.onnx"
        src.write_bytes(onnx_bytes)
        try:
            quantize_dynamic(src, dst, weight_type=QuantType.QInt8,
                             op_types_to_quantize=["MatMul"])
        except Exception as exc:  # noqa: BLE001 - the quantizer raises untyped errors
            raise ExportError(f"onnxruntime's quantizer failed on this model: {exc}.",
                              hint="Export without --quantize.") from exc
        return dst.read_bytes()


def _packages() -> dict[str, str]:
    out = {}
    for name in ("onnx", "onnxruntime", "numpy", "lightgbm", "xgboost-cpu", "xgboost"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


__all__ = ["EdgeBuild", "ExportError", "ExportResult", "build_edge_bundle", "check_parity", "compare_latency",
           "edge_bundle_for", "export_edge", "holdout_values", "median_us",
           "quantize_graph"]
