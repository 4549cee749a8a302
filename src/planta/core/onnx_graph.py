"""A bundle's feature steps and model as one ONNX graph, for onnxruntime on a device.

    input  "X"  float64, rows x encoded inputs (numbers; category codes; NaN = missing)
      │ feature steps     a - b, a * b, a / b (b == 0 -> NaN; non-finite -> NaN)   ONNX
      │ members           LightGBM, XGBoost: TreeEnsemble (ai.onnx.ml 5, float64)    ONNX
      │                   linear: standardise / one-hot, then MatMul + intercept
      │ weighted average of the members' margins                                   ONNX
      │ calibrator        Platt, isotonic (piecewise linear), temperature, identity ONNX
      ▼ decision          P >= threshold (binary), arg-max (multiclass)              ONNX
    outputs "probability" and "label" (class index), or "score" (regression)

Only turning category text into codes stays outside the graph: it is a dictionary lookup on
strings, done by :mod:`planta_edge.model_input` on the device (the same code training used).

Why trees are converted here from each library's own dump rather than with onnxmltools: the
converters (onnxmltools 1.16, up to opset 15) write thresholds and leaf values as float32 and
read float32 inputs, while LightGBM compares float64 inputs with float64 thresholds. On an AI4I
LightGBM member that gave probability differences up to 1e-7 (no decision flipped on those
3,000 rows, but a reading within float32 rounding of a split, or a probability that close to
the decision threshold, would flip); this module gives 2e-16. They also cover the booster
alone: feature steps, ensembles, the calibrator and the decision would still need building.
``TreeEnsemble`` (ai.onnx.ml opset 5) holds float64 thresholds, NaN handling per node and
category sets, so LightGBM's rules map one to one:

    LightGBM node                      ONNX node(s)
    x <= t, missing NaN                BRANCH_LEQ t, missing -> default side
    x <= t, missing None (NaN = 0)     BRANCH_LEQ t, missing -> the side 0 goes to
    x <= t, missing Zero               BRANCH_EQ 0 (missing too) -> default side, else LEQ t
    category in {c1, c2, ...}          BRANCH_MEMBER {c1, c2, ...}, missing -> right

XGBoost reads its inputs as float32 and compares ``x < t`` with float32 thresholds, then adds
its base score; the graph rounds the inputs to float32 the same way (BRANCH_LT).
"""

from __future__ import annotations

import json
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from planta.core.models import (
    Calibrator,
    LightGBMModel,
    LinearModel,
    Model,
    Predictor,
    XGBoostModel,
)
from planta.core.spec import Task
from planta.errors import InputError

OPSET = 21
ML_OPSET = 5
INPUT = "X"
# TreeEnsemble node modes (ai.onnx.ml 5).
_LEQ, _LT, _EQ, _MEMBER = 0, 1, 4, 6


class ExportError(InputError):
    """A part of the model cannot be put into the ONNX graph; the message names it and why."""


@dataclass
class Graph:
    """The ONNX model and what the exporter tells the user about it."""

    model: Any                               # onnx.ModelProto
    outputs: tuple[str, ...]
    notes: list[str] = field(default_factory=list)
    in_graph: list[str] = field(default_factory=list)
    on_device: list[str] = field(default_factory=list)

    def to_bytes(self) -> bytes:
        return bytes(self.model.SerializeToString())


class _Builder:
    """Appends nodes and constants; names are unique by construction."""

    def __init__(self) -> None:
        self.nodes: list[Any] = []
        self.inits: list[Any] = []
        self._n = 0

    def name(self, hint: str) -> str:
        self._n += 1
        return f"{hint}_{self._n}"

    def const(self, value: Any, dtype: Any = np.float64, hint: str = "c") -> str:
        from onnx import numpy_helper

        out = self.name(hint)
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype=dtype), out))
        return out

    def op(self, op_type: str, inputs: Sequence[str], hint: str | None = None,
           domain: str = "", **attrs: Any) -> str:
        from onnx import helper

        out = self.name(hint or op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], domain=domain, **attrs))
        return out

    def cast(self, x: str, to: str) -> str:
        from onnx import TensorProto

        return self.op("Cast", [x], to={"float": TensorProto.FLOAT, "double": TensorProto.DOUBLE,
                                        "int64": TensorProto.INT64, "bool": TensorProto.BOOL}[to])

    def nan_where(self, cond: str, x: str) -> str:
        return self.op("Where", [cond, self.const(np.nan), x])


def build_graph(predictor: Predictor, *, float32_linear: bool = False) -> Graph:
    """The ONNX graph of a predictor's feature steps, members, calibrator and decision.

    ``float32_linear`` computes linear members' matrix product in float32, which dynamic
    quantization needs (it quantizes float32 MatMul weights to int8).

    Raises :class:`ExportError` naming the part that cannot be exported and why.
    """
    from onnx import TensorProto, helper

    b = _Builder()
    enc = predictor.encoding
    n_inputs = len(enc.columns)
    columns: dict[str, str] = {}
    for j, col in enumerate(enc.columns):
        columns[col.name] = b.op("Gather", [INPUT, b.const([j], np.int64)], hint="col", axis=1)
    parts = [INPUT]
    for step in enc.steps:
        a, c = columns[step.a], columns[step.b]
        if step.op == "difference":
            out = b.op("Sub", [a, c])
        elif step.op == "product":
            out = b.op("Mul", [a, c])
        else:
            zero = b.op("Equal", [c, b.const(0.0)])
            safe = b.op("Where", [zero, b.const(1.0), c])
            out = b.nan_where(zero, b.op("Div", [a, safe]))
        out = b.nan_where(b.op("IsInf", [out]), out)
        columns[step.name] = out
        parts.append(out)
    features = b.op("Concat", parts, hint="features", axis=1) if len(parts) > 1 else INPUT
    k = len(predictor.classes) if predictor.task == Task.MULTICLASS else 1
    notes: list[str] = []
    total: str | None = None
    total_float32 = True
    for weight, (_, model) in zip(predictor.weights, predictor.members, strict=True):
        margin, is_float32 = _member(b, model, features, k, float32_linear, notes)
        if is_float32:
            # The native predictor multiplies a float32 margin by a Python float and stays in
            # float32 (NumPy's promotion rules); do the same so the numbers agree.
            part = b.op("Mul", [margin, b.const(weight, np.float32)])
        else:
            part = b.op("Mul", [margin, b.const(weight)])
        if total is None:
            total, total_float32 = part, is_float32
        else:
            if total_float32 != is_float32:
                total = b.cast(total, "double") if total_float32 else total
                part = b.cast(part, "double") if is_float32 else part
                total_float32 = False
            total = b.op("Add", [total, part])
    assert total is not None
    outputs: list[Any] = []
    dbl = TensorProto.DOUBLE
    if predictor.task == Task.REGRESSION:
        score = b.op("Reshape", [b.cast(total, "double"), b.const([-1], np.int64)],
                     hint="score_flat")
        b.nodes.append(helper.make_node("Identity", [score], ["score"]))
        outputs.append(helper.make_tensor_value_info("score", dbl, [None]))
        names: tuple[str, ...] = ("score",)
    else:
        proba = _calibrate(b, predictor.calibrator, total, total_float32, predictor.task)
        if predictor.task == Task.BINARY:
            proba = b.op("Reshape", [proba, b.const([-1], np.int64)], hint="p_flat")
            # Decide on the margin, not on the probability: onnxruntime's tanh may differ from
            # numpy's in the last bit, which flips a row whose probability sits exactly on the
            # threshold. The margin is bit-identical, and so is this cut.
            dtype = np.float32 if total_float32 else np.float64
            cut = margin_threshold(predictor.calibrator, predictor.threshold, dtype)
            flat_margin = b.op("Reshape", [total, b.const([-1], np.int64)], hint="m_flat")
            label = b.cast(b.op("GreaterOrEqual", [flat_margin, b.const(cut, dtype)]), "int64")
            shape: list[Any] = [None]
        else:
            label = b.op("ArgMax", [proba], axis=1, keepdims=0)
            shape = [None, k]
        b.nodes.append(helper.make_node("Identity", [proba], ["probability"]))
        b.nodes.append(helper.make_node("Identity", [label], ["label"]))
        outputs += [helper.make_tensor_value_info("probability", dbl, shape),
                    helper.make_tensor_value_info("label", TensorProto.INT64, [None])]
        names = ("probability", "label")
    graph = helper.make_graph(b.nodes, "planta", [helper.make_tensor_value_info(
        INPUT, dbl, [None, n_inputs])], outputs, initializer=b.inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET),
                                                    helper.make_opsetid("ai.onnx.ml", ML_OPSET)],
                              producer_name="planta")
    model.ir_version = 10  # readable by every onnxruntime that has TreeEnsemble v5 (tested: 1.32)
    in_graph = [f"feature step {s.name} = {s.describe()}" for s in enc.steps]
    kinds = Counter(m.kind for _, m in predictor.members)
    in_graph += [f"{n} {kind} member{'s' if n > 1 else ''}" for kind, n in kinds.items()]
    if len(predictor.members) > 1:
        in_graph.append("weighted average of the members")
    if predictor.task != Task.REGRESSION:
        in_graph.append(f"calibrator ({predictor.calibrator.kind})")
        in_graph.append("decision (threshold)" if predictor.task == Task.BINARY
                        else "decision (most likely class)")
    cats = [c.name for c in enc.columns if c.kind == "category"]
    on_device = [f"category codes of {', '.join(cats)} (text -> code, planta_edge.model_input)"
                 ] if cats else []
    return Graph(model, names, notes, in_graph, on_device)


# ---------------------------------------------------------------------------------------------
# Members
# ---------------------------------------------------------------------------------------------

def _member(b: _Builder, model: Model, features: str, k: int, float32_linear: bool,
            notes: list[str]) -> tuple[str, bool]:
    """(margin tensor [n, k], whether it is float32 as the native library's is)."""
    if isinstance(model, LightGBMModel):
        return _trees(b, features, _lightgbm_trees(model, k), k), False
    if isinstance(model, XGBoostModel):
        trees = _xgboost_trees(model, k)
        return _trees(b, b.cast(features, "float"), trees, k, dtype=np.float32), True
    if isinstance(model, LinearModel):
        return _linear(b, model, features, float32_linear), False
    raise ExportError(f"Model member of kind {getattr(model, 'kind', type(model).__name__)!r} "
                      "has no ONNX form.", hint="Export supports LightGBM, XGBoost and linear "
                                                "members.")


@dataclass
class _Trees:
    """Flattened trees in TreeEnsemble (v5) layout."""

    roots: list[int] = field(default_factory=list)
    modes: list[int] = field(default_factory=list)
    features: list[int] = field(default_factory=list)
    splits: list[float] = field(default_factory=list)
    true_ids: list[int] = field(default_factory=list)
    true_leaf: list[int] = field(default_factory=list)
    false_ids: list[int] = field(default_factory=list)
    false_leaf: list[int] = field(default_factory=list)
    missing_true: list[int] = field(default_factory=list)
    members: list[float] = field(default_factory=list)
    leaf_targets: list[int] = field(default_factory=list)
    leaf_weights: list[float] = field(default_factory=list)

    def leaf(self, value: float, target: int) -> tuple[int, int]:
        self.leaf_targets.append(target)
        self.leaf_weights.append(float(value))
        return len(self.leaf_weights) - 1, 1

    def node(self, mode: int, feature: int, split: float, missing_true: bool) -> int:
        self.modes.append(mode)
        self.features.append(feature)
        self.splits.append(float(split))
        self.missing_true.append(int(missing_true))
        for lst in (self.true_ids, self.true_leaf, self.false_ids, self.false_leaf):
            lst.append(0)
        return len(self.modes) - 1

    def link(self, node: int, true: tuple[int, int], false: tuple[int, int]) -> None:
        self.true_ids[node], self.true_leaf[node] = true
        self.false_ids[node], self.false_leaf[node] = false

    def single_leaf(self, value: float, target: int) -> None:
        """A tree that is one leaf: TreeEnsemble needs a root node, so one that always leads
        to the leaf on both sides."""
        node = self.node(_LEQ, 0, 0.0, True)
        leaf = self.leaf(value, target)
        self.link(node, leaf, leaf)
        self.roots.append(node)


def _trees(b: _Builder, x: str, t: _Trees, k: int, dtype: Any = np.float64) -> str:
    from onnx import numpy_helper

    if not t.roots:
        raise ExportError("A tree model without trees cannot be exported.")
    extra: dict[str, Any] = {}
    if t.members:
        extra["membership_values"] = numpy_helper.from_array(np.asarray(t.members, dtype))
    return b.op(
        "TreeEnsemble", [x], hint="trees", domain="ai.onnx.ml",
        aggregate_function=1, post_transform=0, n_targets=k, tree_roots=t.roots,
        nodes_modes=numpy_helper.from_array(np.asarray(t.modes, dtype=np.uint8)),
        nodes_featureids=t.features,
        nodes_splits=numpy_helper.from_array(np.asarray(t.splits, dtype=dtype)),
        nodes_truenodeids=t.true_ids, nodes_trueleafs=t.true_leaf,
        nodes_falsenodeids=t.false_ids, nodes_falseleafs=t.false_leaf,
        nodes_missing_value_tracks_true=t.missing_true, leaf_targetids=t.leaf_targets,
        leaf_weights=numpy_helper.from_array(np.asarray(t.leaf_weights, dtype=dtype)),
        **extra)


def _lightgbm_trees(model: LightGBMModel, k: int) -> _Trees:
    if b"is_linear=1" in model.to_bytes():
        raise ExportError("The LightGBM member uses linear trees (a formula in each leaf), "
                          "which the ONNX tree operator cannot express.",
                          hint="Retrain without linear_tree.")
    dump = model.booster.dump_model()
    per_iteration = int(dump.get("num_tree_per_iteration", 1))
    if per_iteration != k:
        raise ExportError(f"The LightGBM member has {per_iteration} trees per round, the model "
                          f"{k} outputs.")
    info = dump["tree_info"]
    scale = 1.0 / max(1, len(info) // per_iteration) if dump.get("average_output") else 1.0
    t = _Trees()
    for i, tree in enumerate(info):
        target = i % per_iteration
        root = tree["tree_structure"]
        if "leaf_value" in root and "split_feature" not in root:
            t.single_leaf(float(root["leaf_value"]) * scale, target)
            continue
        t.roots.append(_lightgbm_node(t, root, target, scale))
    return t


def _lightgbm_node(t: _Trees, node: dict[str, Any], target: int, scale: float) -> int:
    """Flatten one LightGBM (sub)tree; returns the id of its top node."""

    def child(sub: dict[str, Any]) -> tuple[int, int]:
        if "split_feature" not in sub:
            return t.leaf(float(sub["leaf_value"]) * scale, target)
        return _lightgbm_node(t, sub, target, scale), 0

    feature = int(node["split_feature"])
    default_left = bool(node.get("default_left", True))
    if node.get("decision_type") == "==":
        cats = [float(c) for c in str(node["threshold"]).split("||") if c != ""]
        top = t.node(_MEMBER, feature, math.nan, False)
        t.members.extend(cats + [math.nan])
        t.link(top, child(node["left_child"]), child(node["right_child"]))
        return top
    if node.get("decision_type") != "<=":
        raise ExportError(f"LightGBM split kind {node.get('decision_type')!r} has no ONNX form.")
    threshold = float(node["threshold"])
    missing = node.get("missing_type", "None")
    if missing == "Zero":
        # Zero (and NaN, read as zero) goes to the default side; everything else compares.
        zero = t.node(_EQ, feature, 0.0, True)
        compare = t.node(_LEQ, feature, threshold, False)
        left, right = child(node["left_child"]), child(node["right_child"])
        t.link(compare, left, right)
        t.link(zero, left if default_left else right, (compare, 0))
        return zero
    missing_true = default_left if missing == "NaN" else 0.0 <= threshold
    top = t.node(_LEQ, feature, threshold, missing_true)
    t.link(top, child(node["left_child"]), child(node["right_child"]))
    return top


def _xgboost_trees(model: XGBoostModel, k: int) -> _Trees:
    """XGBoost's trees in float32, as XGBoost evaluates them: the base score is folded into
    the first tree of each output, so the float32 sums run in XGBoost's order
    (base + tree 1 + tree 2 ...)."""
    doc = json.loads(bytes(model.booster.save_raw("json")))
    learner = doc["learner"]
    booster = learner["gradient_booster"]
    if booster.get("name") != "gbtree":
        raise ExportError(f"XGBoost booster {booster.get('name')!r} cannot be exported (only "
                          "gbtree).", hint="Retrain with the default tree booster.")
    objective = str(learner.get("objective", {}).get("name", ""))
    raw = str(learner["learner_model_param"]["base_score"]).strip("[]")
    base = [float(v) for v in raw.split(",") if v.strip()]
    if objective in ("binary:logistic", "reg:logistic"):
        # Stored as a probability; the margin starts from its log-odds, which XGBoost
        # computes in float32 as -log(1 / p - 1).
        one = np.float32(1.0)
        base = [float(-np.log(one / np.float32(p) - one, dtype=np.float32)) for p in base]
    if len(base) == 1 and k > 1:
        base = base * k
    trees = booster["model"]["trees"]
    tree_info = booster["model"]["tree_info"]
    t = _Trees()
    f32 = np.float32
    pending = {target: f32(base[target]) for target in range(len(base))}

    def leaf_value(value: float, target: int) -> float:
        start = pending.get(target)
        return float(f32(value) if start is None else f32(start + f32(value)))

    for tree, target in zip(trees, tree_info, strict=True):
        if any(int(s) != 0 for s in tree.get("split_type", [])):
            raise ExportError("The XGBoost member has category splits, which planta does not "
                              "export.", hint="Retrain: planta trains XGBoost on category codes.")
        left, right = tree["left_children"], tree["right_children"]
        cond, feat, dleft = tree["split_conditions"], tree["split_indices"], tree["default_left"]
        target = int(target)
        if left[0] == -1:
            t.single_leaf(leaf_value(cond[0], target), target)
            pending.pop(target, None)
            continue
        ids: dict[int, int] = {}
        for i in range(len(left)):
            if left[i] != -1:
                ids[i] = t.node(_LT, int(feat[i]), float(f32(cond[i])), bool(dleft[i]))
        for i, node in ids.items():
            links = []
            for c in (left[i], right[i]):
                if left[c] == -1:
                    links.append(t.leaf(leaf_value(cond[c], target), target))
                else:
                    links.append((ids[c], 0))
            t.link(node, links[0], links[1])
        t.roots.append(ids[0])
        pending.pop(target, None)
    return t


def _linear(b: _Builder, model: LinearModel, features: str, float32: bool) -> str:
    parts = []
    for j, col in enumerate(model.columns):
        x = b.op("Gather", [features, b.const([j], np.int64)], hint="lin_col", axis=1)
        if col["kind"] == "category":
            codes = np.arange(int(col["n_codes"]), dtype=np.float64).reshape(1, -1)
            parts.append(b.cast(b.op("Equal", [x, b.const(codes)]), "double"))
        else:
            z = b.op("Div", [b.op("Sub", [x, b.const(float(col["mean"]))]),
                             b.const(float(col["scale"]))])
            z = b.op("Where", [b.op("IsNaN", [z]), b.const(0.0), z])
            parts.append(b.op("Clip", [z, b.const(-10.0), b.const(10.0)]))
    if not parts:
        raise ExportError("The linear member reads no columns.")
    design = b.op("Concat", parts, hint="design", axis=1)
    weights = np.ascontiguousarray(model.coef.T)
    if float32:
        product = b.cast(b.op("MatMul", [b.cast(design, "float"),
                                         b.const(weights, np.float32, hint="coef")]), "double")
    else:
        product = b.op("MatMul", [design, b.const(weights, np.float64, hint="coef")])
    return b.op("Add", [product, b.const(model.intercept.reshape(1, -1))])


# ---------------------------------------------------------------------------------------------
# Calibration
# ---------------------------------------------------------------------------------------------

def margin_threshold(cal: Calibrator, threshold: float, dtype: Any = np.float64) -> float:
    """The smallest margin whose native probability reaches ``threshold``.

    Found by bisection over the representable numbers of ``dtype`` with the native
    calibrator's own arithmetic, so ``margin >= cut`` gives exactly the native decision
    ``probability >= threshold`` for every margin (the calibrators are non-decreasing).
    ``-inf``: every margin reaches it; ``inf``: none does.

    >>> cut = margin_threshold(Calibrator("platt", {"a": 1.0, "b": 0.0}), 0.5)
    >>> -1e-15 < cut <= 0.0     # sigmoid rounds to 0.5 a hair below zero
    True
    """
    f = np.dtype(dtype)
    ints = np.int64 if f == np.float64 else np.int32
    sign = int(np.iinfo(ints).min)

    def key(x: float) -> int:
        bits = int(np.array([x], dtype=f).view(ints)[0])
        return bits if bits >= 0 else -(bits - sign)

    def value(k: int) -> Any:
        bits = k if k >= 0 else (-k) + sign
        return np.array([bits], dtype=ints).view(f)[0]

    def reaches(k: int) -> bool:
        with np.errstate(all="ignore"):  # the search goes out to the largest numbers
            return bool(cal.probability(np.array([value(k)], dtype=f))[0] >= threshold)

    lo, hi = key(float(np.finfo(f).min)), key(float(np.finfo(f).max))
    if reaches(lo):
        return -math.inf
    if not reaches(hi):
        return math.inf
    while hi - lo > 1:  # reaches(hi) and not reaches(lo)
        mid = (lo + hi) // 2
        if reaches(mid):
            hi = mid
        else:
            lo = mid
    return float(value(hi))


def _calibrate(b: _Builder, cal: Calibrator, margin: str, is_float32: bool, task: Task) -> str:
    dt = np.float32 if is_float32 else np.float64
    if task == Task.MULTICLASS:
        t = float(cal.params.get("t", 1.0)) if cal.kind == "temperature" else 1.0
        scaled = b.op("Div", [margin, b.const(t, dt)])
        return b.cast(b.op("Softmax", [scaled], axis=1), "double")
    if cal.kind == "platt":
        z = b.op("Add", [b.op("Mul", [margin, b.const(float(cal.params["a"]), dt)]),
                         b.const(float(cal.params["b"]), dt)])
        return _sigmoid(b, b.cast(z, "double"))
    if cal.kind == "isotonic":
        return _interp(b, b.cast(margin, "double"), np.asarray(cal.params["x"], np.float64),
                       np.asarray(cal.params["y"], np.float64))
    return _sigmoid(b, b.cast(margin, "double"))


def _sigmoid(b: _Builder, z: str) -> str:
    # 0.5 * (1 + tanh(z / 2)), the native formula, so both agree to the last bit or two.
    half = b.const(0.5)
    return b.op("Mul", [half, b.op("Add", [b.const(1.0), b.op("Tanh", [b.op("Mul", [z, half])])])])


def _interp(b: _Builder, m: str, xs: np.ndarray, ys: np.ndarray) -> str:
    """np.interp(m, xs, ys), step for step as numpy computes it (slope * (m - x0) + y0; exact
    values at the points and beyond the ends), so the probabilities agree to the last bit."""
    if xs.size == 0:
        raise ExportError("The isotonic calibrator has no points.")
    if xs.size == 1:
        return b.op("Add", [b.op("Mul", [m, b.const(0.0)]), b.const(float(ys[0]))])
    # j = (number of points <= m) - 1, kept in 0 .. P-2: m lies in [xs[j], xs[j+1]).
    count = b.op("ReduceSum", [b.cast(b.op("LessOrEqual", [b.const(xs.reshape(1, -1)), m]),
                                      "int64"), b.const([1], np.int64)], keepdims=1)
    lo = b.op("Clip", [b.op("Sub", [count, b.const(1, np.int64)]), b.const(0, np.int64),
                       b.const(xs.size - 2, np.int64)])
    hi = b.op("Add", [lo, b.const(1, np.int64)])
    x0, x1 = (b.op("Gather", [b.const(xs), i], axis=0) for i in (lo, hi))
    y0, y1 = (b.op("Gather", [b.const(ys), i], axis=0) for i in (lo, hi))
    slope = b.op("Div", [b.op("Sub", [y1, y0]), b.op("Sub", [x1, x0])])
    out = b.op("Add", [b.op("Mul", [slope, b.op("Sub", [m, x0])]), y0])
    out = b.op("Where", [b.op("Equal", [m, x0]), y0, out])
    out = b.op("Where", [b.op("Less", [m, b.const(float(xs[0]))]), b.const(float(ys[0])), out])
    return b.op("Where", [b.op("GreaterOrEqual", [m, b.const(float(xs[-1]))]),
                          b.const(float(ys[-1])), out])


__all__ = ["INPUT", "ML_OPSET", "OPSET", "ExportError", "Graph", "build_graph",
           "margin_threshold"]
