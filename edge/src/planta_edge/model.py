"""An edge bundle loaded for prediction with onnxruntime: what the device runs.

    EdgeModel.load(bundle, trusted_keys=[...])
      │ read_bundle: seal, signature by a trusted key (before the manifest is parsed),
      │              every member's sha256; then the edge descriptor (edge.json)
      ▼
    predict_records(records) ─► validate_records (the server's rules) ─┐
    predict(columns)  (columns already validated) ─────────────────────┤
                                                                       ▼
          category text -> codes (planta_edge.model_input) ─► model.onnx (onnxruntime):
          feature steps, trees / linear members, calibrator, decision ─► EdgePredictions

An edge bundle (``kind: "edge"`` in its manifest) is made by ``planta export <usecase> --onnx``
on the hub from a registered bundle; it carries the same contract and encoding, the ONNX graph
and ``edge.json``. Standard library, numpy, onnxruntime and cryptography only; on a device
the signature is checked in a short-lived child process (:mod:`planta_edge.verify`), so that
`cryptography` does not stay in the runtime's memory.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from planta_edge import verify
from planta_edge.bundle import Bundle, read_bundle
from planta_edge.contract import Contract, validate_records
from planta_edge.errors import IntegrityError, PlantaError
from planta_edge.model_input import Encoding, build_matrix
from planta_edge.signing import verify_manifest

EDGE_FORMAT = "planta.edge/1"
EDGE_KIND = "edge"
GRAPH = "model.onnx"
DESCRIPTOR = "edge.json"


@dataclass
class EdgePredictions:
    """What an edge model says about each row, in row order.

    ``prediction``: the decision per row (class name, or the value for regression); None for a
    record the contract refused. ``probability``: binary P(positive class), multiclass the
    predicted class's probability (NaN where refused); ``probabilities``: multiclass, rows x
    classes in ``classes`` order. ``score``: the regression value. ``ok``/``reasons``/``rules``:
    per record, whether it passed the contract and, if not, the first violation's message and
    rule code. ``flagged``: broke a range rule under the ``flag`` policy but was scored.
    """

    prediction: list[Any]
    probability: np.ndarray | None
    score: np.ndarray | None
    classes: list[str]
    ok: np.ndarray
    probabilities: np.ndarray | None = None
    reasons: list[str | None] = field(default_factory=list)
    rules: list[str | None] = field(default_factory=list)
    flagged: np.ndarray | None = None

    @property
    def n(self) -> int:
        return len(self.prediction)

    def record(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a plain dict (what a device publishes)."""
        if not self.ok[i]:
            return {"ok": False, "reason": self.reasons[i], "rule": self.rules[i]}
        out: dict[str, Any] = {"ok": True, "prediction": self.prediction[i]}
        if self.probabilities is not None:
            out["probability"] = dict(zip(self.classes, self.probabilities[i].tolist(),
                                          strict=True))
        elif self.probability is not None:
            out["probability"] = float(self.probability[i])
        if self.score is not None:
            out["score"] = float(self.score[i])
        if self.flagged is not None and self.flagged[i]:
            out["flagged"] = True
        return out


class EdgeModel:
    """A verified edge bundle with its onnxruntime session.

    Build it with :meth:`load`; the constructor assumes a bundle already verified.
    """

    def __init__(self, bundle: Bundle, *, num_threads: int = 1) -> None:
        self.bundle = bundle
        self.manifest = bundle.manifest
        self.usecase = bundle.usecase
        self.version = int(bundle.version or 0)
        self.digest = bundle.digest
        self.signed_by = bundle.signed_by
        self.source_digest = str(self.manifest.get("source_sha256") or "")
        doc = bundle.json(DESCRIPTOR)
        if not isinstance(doc, dict) or doc.get("format") != EDGE_FORMAT:
            raise IntegrityError(f"The bundle's {DESCRIPTOR} is not in format {EDGE_FORMAT!r}.",
                                 hint="Export it again with this version of planta.")
        self.descriptor = doc
        self.task = str(doc["task"])
        self.classes = [str(c) for c in doc.get("classes", [])]
        threshold = doc.get("threshold")
        self.threshold: float | None = None if threshold is None else float(threshold)
        self.outputs = tuple(str(o) for o in doc["outputs"])
        contract_doc = bundle.json("contract.json")
        self.contract = Contract.from_dict({k: v for k, v in contract_doc.items()
                                            if k in ("fields", "target", "version")})
        encoding = Encoding.from_dict(bundle.json("features.json"))
        self.encoding = encoding
        # The graph computes the feature steps itself; the device only turns text into codes.
        self._inputs = Encoding(columns=encoding.columns)
        self._session = _session(bundle.members[GRAPH], num_threads)
        self._input_name = self._session.get_inputs()[0].name

    @classmethod
    def load(cls, source: str | Path | bytes, *, trusted_keys: Sequence[bytes | str],
             expected_digest: str | None = None, num_threads: int = 1,
             verify_in_child: bool | None = None) -> EdgeModel:
        """Verify an edge bundle (file path or bytes) and load it.

        The signature (by one of ``trusted_keys``) and every hash are checked before anything
        in the bundle is used. Raises :class:`IntegrityError` (altered, truncated, signed by
        an untrusted key, not an edge bundle) or :class:`ConfigError` (no usable trusted key),
        each with a plain message.

        ``verify_in_child``: check the signature in a short-lived child process
        (:mod:`planta_edge.verify`), so that `cryptography` never loads into this process
        (about 7 MB a device would keep for good). None (default): in a child unless this
        process has `cryptography` loaded already (the hub, which signs), where a child would
        save nothing.
        """
        if verify_in_child is None:
            verify_in_child = "cryptography" not in sys.modules
        importing = None
        if verify_in_child and "onnxruntime" not in sys.modules:
            # Start-up time: import onnxruntime (~0.1 s, nothing of the bundle) while the child
            # checks the signature; the session is built only after the check and the hashes.
            importing = threading.Thread(target=_preload, name="planta-edge-import",
                                         daemon=True)
            importing.start()
        try:
            bundle = read_bundle(source, expected_digest=expected_digest,
                                 trusted_keys=list(trusted_keys),
                                 verifier=verify.verify_in_child if verify_in_child
                                 else verify_manifest)
        finally:
            if importing is not None:
                # Never left running: a process that exits (a refused bundle) while a thread
                # is still inside onnxruntime's C++ initialisation aborts.
                importing.join()
        if bundle.manifest.get("kind") != EDGE_KIND or GRAPH not in bundle.members:
            raise IntegrityError(
                f"Bundle {bundle.usecase!r} version {bundle.version} is a registered hub bundle, "
                "not an edge bundle: a device runs the ONNX export.",
                hint=f"On the hub, run `planta export {bundle.usecase or '<usecase>'} --onnx`.")
        return cls(bundle, num_threads=num_threads)

    # -- prediction --------------------------------------------------------------------------
    def predict(self, columns: Mapping[str, Any]) -> EdgePredictions:
        """Predictions for validated columns (canonical names -> 1-D arrays, as
        ``validate_columns(...).values``); every row is scored."""
        X = build_matrix(self._inputs, columns)
        n = X.shape[0]
        if n == 0:
            return EdgePredictions([], None, None, list(self.classes), np.ones(0, bool))
        out = dict(zip(self.outputs, self._session.run(None, {self._input_name: X}),
                       strict=True))
        ok = np.ones(n, dtype=bool)
        if self.task == "regression":
            score = np.asarray(out["score"], dtype=np.float64)
            return EdgePredictions(score.tolist(), None, score, [], ok, reasons=[None] * n,
                                   rules=[None] * n)
        label = np.asarray(out["label"], dtype=np.int64)
        names = np.asarray(self.classes, dtype=object)[label].tolist()
        proba = np.asarray(out["probability"], dtype=np.float64)
        if self.task == "multiclass":
            return EdgePredictions(names, proba[np.arange(n), label], None, list(self.classes),
                                   ok, probabilities=proba, reasons=[None] * n,
                                   rules=[None] * n)
        return EdgePredictions(names, proba, None, list(self.classes), ok, reasons=[None] * n,
                               rules=[None] * n)

    def predict_records(self, records: list[dict[str, Any]], *, range_policy: str = "reject",
                        extra_policy: str = "reject") -> EdgePredictions:
        """Validate JSON-like records with the server's rules, then score those that pass.

        A record that breaks a rule is not scored: its ``ok`` is False, with the first
        violation's message and rule code. An empty batch raises :class:`ContractError`.
        """
        checked = validate_records(self.contract, records, range_policy=range_policy,
                                   extra_policy=extra_policy)
        n = len(records)
        good = np.flatnonzero(checked.ok)
        reasons: list[str | None] = [None] * n
        rules: list[str | None] = [None] * n
        for v in checked.violations:
            row = getattr(v, "row", None)
            i = _row_index(row, n)
            if i is not None and reasons[i] is None and not checked.ok[i]:
                reasons[i], rules[i] = v.message, v.rule
        for j in np.flatnonzero(~checked.ok).tolist():
            if reasons[j] is None:
                reasons[j] = str(checked.reasons[j] or "the record breaks the contract")
                rules[j] = "contract"
        if good.size == n:
            out = self.predict(checked.values)
        else:
            sub = self.predict({k: v[good] for k, v in checked.values.items()})
            out = _spread(sub, good, n)
        out.ok = np.asarray(checked.ok, dtype=bool)
        out.reasons, out.rules = reasons, rules
        out.flagged = np.asarray(checked.flagged, dtype=bool)
        return out

    def describe(self) -> dict[str, Any]:
        """What a device reports about the model it runs."""
        return {"usecase": self.usecase, "version": self.version, "digest": self.digest,
                "source_digest": self.source_digest, "signed_by": self.signed_by,
                "task": self.task, "classes": list(self.classes), "threshold": self.threshold}


def _row_index(row: Any, n: int) -> int | None:
    """A violation's record (0-based, as ``validate_records`` counts); None when not a row."""
    if isinstance(row, (int, np.integer)) and 0 <= int(row) < n:
        return int(row)
    return None


def _spread(sub: EdgePredictions, rows: np.ndarray, n: int) -> EdgePredictions:
    """Predictions for a subset of rows placed back among ``n`` rows (others empty)."""
    prediction: list[Any] = [None] * n
    for j, i in enumerate(rows.tolist()):
        prediction[i] = sub.prediction[j]

    def widen(a: np.ndarray | None) -> np.ndarray | None:
        if a is None:
            return None
        out = np.full((n,) + a.shape[1:], np.nan)
        out[rows] = a
        return out

    return EdgePredictions(prediction, widen(sub.probability), widen(sub.score), sub.classes,
                           np.zeros(n, dtype=bool), probabilities=widen(sub.probabilities))


def _import_onnxruntime() -> Any:
    # onnxruntime's Linux telemetry writes a world-readable session file into TMPDIR on import.
    os.environ.setdefault("ORT_DISABLE_TELEMETRY", "1")
    import onnxruntime

    return onnxruntime


def _preload() -> None:
    with contextlib.suppress(ImportError):  # _session says so, in plant words
        _import_onnxruntime()


def _session(graph: bytes, num_threads: int) -> Any:
    try:
        ort = _import_onnxruntime()  # waits for an import already under way in another thread
    except ImportError as exc:  # pragma: no cover - onnxruntime is a dependency
        raise PlantaError("onnxruntime is not installed, so this device cannot run models.",
                          hint="pip install onnxruntime (planta-edge depends on it).") from exc
    options = ort.SessionOptions()
    # One thread: a device scores one reading at a time, and one thread also keeps the tree
    # sums in the native libraries' order (bit-for-bit parity; see planta.core.onnx_graph).
    options.intra_op_num_threads = max(1, int(num_threads))
    options.inter_op_num_threads = 1
    options.log_severity_level = 3
    # The memory-pattern planner and the CPU arena keep memory sized for the largest batch
    # seen; a device that scores a burst of readings would hold it for good. Without them each
    # call's buffers go back to the allocator (no measurable cost for a tree model).
    options.enable_mem_pattern = False
    options.enable_cpu_mem_arena = False
    try:
        return ort.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own untyped errors
        raise IntegrityError(f"onnxruntime cannot load the bundle's model: {exc}.",
                             hint="Update onnxruntime on the device, or export the bundle again."
                             ) from exc


def trusted_keys_from(lines: Iterable[str]) -> list[str]:
    """Trusted keys from text lines (one ``ed25519:...`` key per line; ``#`` starts a comment)."""
    return [line.split("#", 1)[0].strip() for line in lines
            if line.split("#", 1)[0].strip()]


__all__ = ["DESCRIPTOR", "EDGE_FORMAT", "EDGE_KIND", "GRAPH", "EdgeModel", "EdgePredictions",
           "trusted_keys_from"]
