"""The model's trees in one onnxruntime session, for the serving hot path and batch scoring.

A registered bundle's native predictor (LightGBM / XGBoost boosters) costs about 300 µs per
single-record call, most of it the libraries' per-call setup; the same feature steps and
members as one ONNX graph (:mod:`planta.core.onnx_graph`) answer in 30–50 µs. This module
builds that graph in memory when a model is loaded, with only the members' weighted margin as
its output, and keeps the rest native:

    contract values ─► category codes (numpy) ─► ONNX: feature steps + members ─► margin
         margin ─► the predictor's own calibrator and threshold (numpy) ─► Predictions

Calibrating and deciding in numpy on a margin that is bit-for-bit the native one gives
probabilities and decisions that are bit-for-bit the native ones (onnxruntime's sigmoid may
differ from numpy's in the last bit). Before it is used, the engine is checked on rows drawn
from the model's reference profile: any margin that is not exactly the native margin, a
multiclass model, or a member with no ONNX form keeps the native predictor, and
:func:`build_engine` says why. Explanations always use the native predictor (its boosters'
own contributions).

Which is faster depends on the rows per call (thread CPU, one thread each, on the bench's AI4I
models; ``bench/RESULTS.md`` §4):

    rows per call                        1      10     100    1,000   32,768
    LightGBM 46 + XGBoost 26 trees     7.2×    6.5×   2.8×   1.22×   0.84×   native / onnxruntime
    LightGBM 35 + 169 + 256 trees      2.7×    2.1×   1.5×   1.27×   1.28×

so the Scorer uses the engine up to :data:`MAX_ENGINE_ROWS` records per request, and batch
scoring measures both on one block of its own size before choosing (:func:`cheaper`).

``PLANTA_ENGINE=native`` turns the engine off (for measuring, or as a way out).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from planta.core.models import Predictions, Predictor
from planta.core.spec import Task
from planta_edge.model_input import Encoding, build_matrix

ENGINE_ENV = "PLANTA_ENGINE"
# Rows of the load-time parity check (about 10 ms with a 500-tree model).
CHECK_ROWS = 512
# Requests up to this many records go through the engine (above, the native boosters' own
# row loops can be cheaper: see the table above).
MAX_ENGINE_ROWS = 2_000
_MISSING_SHARE = 0.05


@dataclass
class EngineChoice:
    """What :func:`build_engine` decided: the engine (None = native) and why."""

    engine: OnnxEngine | None
    reason: str


class OnnxEngine:
    """Feature steps and members in onnxruntime, calibrator and decision in numpy.

    Has the native :class:`Predictor`'s ``predict`` and ``predict_matrix`` with the same
    results (checked at load); build it with :func:`build_engine`.
    """

    def __init__(self, predictor: Predictor, session: Any, output: str,
                 margin_shape: tuple[int, ...], margin_dtype: np.dtype[Any]) -> None:
        self.predictor = predictor
        self.task = predictor.task
        self.classes = predictor.classes
        self._session = session
        self._output = [output]
        self._inputs = Encoding(columns=predictor.encoding.columns)
        self._n_inputs = len(predictor.encoding.columns)
        self._margin_ndim = len(margin_shape)
        self._margin_dtype = margin_dtype
        self._names = np.asarray(predictor.classes, dtype=object)

    def margin(self, inputs: np.ndarray) -> np.ndarray:
        """The weighted margin of encoded inputs (category codes, no feature steps), in the
        native predictor's dtype and shape."""
        out = self._session.run(self._output, {"X": inputs})[0]
        if self._margin_ndim == 1:
            out = out.reshape(-1)
        return np.asarray(out.astype(self._margin_dtype, copy=False))

    def predict(self, values: Mapping[str, Any]) -> Predictions:
        """As :meth:`Predictor.predict`: contract values in."""
        return self._decide(self.margin(build_matrix(self._inputs, values)))

    def predict_matrix(self, X: np.ndarray) -> Predictions:
        """As :meth:`Predictor.predict_matrix`: a model matrix (inputs, then feature steps)."""
        inputs = np.ascontiguousarray(X[:, :self._n_inputs], dtype=np.float64)
        return self._decide(self.margin(inputs))

    def _decide(self, margin: np.ndarray) -> Predictions:
        # The same arithmetic as Predictor.predict_matrix after its margin.
        p = self.predictor
        if self.task == Task.REGRESSION:
            return Predictions(label=margin, probability=None, score=margin, classes=[])
        proba = p.calibrator.probability(margin)
        label = np.where(proba >= p.threshold, self._names[1], self._names[0])
        return Predictions(label=label, probability=proba, score=None, classes=p.classes)


def engine_wanted() -> bool:
    """False when ``PLANTA_ENGINE=native`` asks for the native predictor."""
    return os.environ.get(ENGINE_ENV, "auto").strip().lower() != "native"


def build_engine(predictor: Predictor, profile: Mapping[str, Any] | None = None, *,
                 check_rows: int = CHECK_ROWS, seed: int = 0) -> EngineChoice:
    """An :class:`OnnxEngine` for ``predictor`` if it is exact on sample rows, else why not."""
    if not engine_wanted():
        return EngineChoice(None, f"{ENGINE_ENV}=native")
    if predictor.task == Task.MULTICLASS:
        return EngineChoice(None, "multiclass models use the native predictor")
    # onnxruntime 1.32's Linux wheel starts a telemetry client on import, which writes a
    # session file (.ses) into TMPDIR, readable by all; planta runs offline and leaves no
    # temporary files (tests/server/test_security.py). The variable must be set before import.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    try:
        import onnxruntime as ort

        from planta.core.onnx_graph import ExportError, build_graph
    except ImportError as exc:
        return EngineChoice(None, f"onnxruntime or onnx is not installed ({exc.name})")
    # The members' weighted margin is the "score" of the same predictor read as a regression.
    margin_only = Predictor(predictor.encoding, Task.REGRESSION, [], predictor.members, None)
    try:
        graph = build_graph(margin_only).to_bytes()
    except ExportError as exc:
        return EngineChoice(None, f"a part of the model has no ONNX form: {exc}")
    options = ort.SessionOptions()
    # One thread: the requests are small, and one thread sums the trees in the libraries'
    # order, which is what makes the margin bit-identical. (Two threads measured slower.)
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    try:
        session = ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
        return EngineChoice(None, f"onnxruntime cannot load the graph: {exc}")
    values = sample_values(predictor.encoding, profile or {}, check_rows, seed)
    X = predictor.matrix(values)
    native = predictor.margin_matrix(X)
    engine = OnnxEngine(predictor, session, "score", native.shape[1:] if native.ndim > 1
                        else (native.shape[0],), native.dtype)
    got = engine.margin(np.ascontiguousarray(X[:, :len(predictor.encoding.columns)]))
    if got.shape != native.shape or not np.array_equal(got, native, equal_nan=True):
        diff = np.nanmax(np.abs(got.astype(float) - native.astype(float))) \
            if got.shape == native.shape else math.inf
        return EngineChoice(None, f"the ONNX margin differs from the native one on the check "
                                  f"rows (largest difference {diff:.3g})")
    # Decisions too (the same numpy code on equal margins, so equal unless something changes).
    a, b = predictor.predict_matrix(X), engine.predict(values)
    if not np.array_equal(np.asarray(a.label), np.asarray(b.label)):
        return EngineChoice(None, "a decision differs on the check rows")
    return EngineChoice(engine, f"onnxruntime (exact on {len(native)} check rows)")


def cheaper(engine: OnnxEngine, predictor: Predictor, profile: Mapping[str, Any] | None,
            rows: int) -> tuple[bool, float, float]:
    """Whether the engine costs less CPU than the native predictor on ``rows``-row calls:
    (engine cheaper, engine µs, native µs), thread CPU time of the calling thread, best of 2
    calls each (both run on the calling thread: the engine with one thread, and the native
    predictor is given one thread per call by the batch pool)."""
    import time

    X = predictor.matrix(sample_values(predictor.encoding, profile or {}, rows, seed=1))

    def cost(fn: Any) -> float:
        best = math.inf
        for _ in range(2):
            start = time.thread_time_ns()
            fn(X)
            best = min(best, (time.thread_time_ns() - start) / 1000)
        return best

    fast, slow = cost(engine.predict_matrix), cost(predictor.predict_matrix)
    return fast < slow * 0.95, fast, slow


def sample_values(encoding: Encoding, profile: Mapping[str, Any], n: int, seed: int = 0
                  ) -> dict[str, np.ndarray]:
    """``n`` rows of contract values drawn from the reference profile: numbers uniform over
    the observed range (and on the histogram's edges, which are observed values), a few
    missing; categories from the contract's list, a few missing."""
    rng = np.random.default_rng(seed)
    fields = profile.get("fields") or {}
    out: dict[str, np.ndarray] = {}
    for col in encoding.columns:
        if col.kind == "category":
            cats = list(col.categories) or ["?"]
            arr = np.asarray([cats[i] for i in rng.integers(0, len(cats), n)], dtype=object)
            arr[rng.random(n) < _MISSING_SHARE] = None
            out[col.name] = arr
            continue
        prof = fields.get(col.name) or {}
        lo, hi = prof.get("min"), prof.get("max")
        lo = 0.0 if lo is None or not isinstance(lo, (int, float)) else float(lo)
        hi = lo + 1.0 if hi is None or not isinstance(hi, (int, float)) else float(hi)
        vals = rng.uniform(lo, hi, n)
        edges = ((prof.get("histogram") or {}).get("edges") or [])
        if edges:
            on_edge = rng.random(n) < 0.25
            vals[on_edge] = np.asarray(edges, dtype=float)[rng.integers(0, len(edges),
                                                                          int(on_edge.sum()))]
        vals[rng.random(n) < _MISSING_SHARE] = np.nan
        out[col.name] = vals
    return out


__all__ = ["ENGINE_ENV", "MAX_ENGINE_ROWS", "EngineChoice", "OnnxEngine", "build_engine",
           "cheaper", "engine_wanted", "sample_values"]
