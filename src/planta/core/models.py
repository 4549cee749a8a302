"""Models without pickle: each in its library's own format, evaluated by a Predictor.

    member of a bundle          what                                    read with
    features.json               Encoding: category codes + steps        planta_edge.model_input
    model/model.json            descriptor: task, classes, members,     json
                                their weights, the calibrator
    model/lightgbm-<i>.txt      LightGBM text model                     lgb.Booster(model_str=...)
    model/xgboost-<i>.json      XGBoost JSON model                      xgb.Booster().load_model
    model/linear-<i>.json       standardisation + coefficients          numpy
    model/calibrator.json       Platt, isotonic or temperature          numpy
    metrics.json                holds the decision threshold            json

A model with several members averages their margins (log-odds, class scores or the
regression value) with the descriptor's weights; the calibrator then maps the averaged margin
to a probability. Contributions (for reason codes) are averaged the same way, so they still
add up to the margin. Loading never unpickles and never runs code: JSON and text only.

The fitting helpers at the end turn arrays into these model objects; the search that decides
what to fit lives in ``planta.services.train``.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from planta.core.spec import Task
from planta.errors import IntegrityError
from planta_edge.model_input import Encoding, build_matrix

MODEL_FORMAT = "planta.model/1"
LINEAR_FORMAT = "planta.linear/1"
CALIBRATOR_FORMAT = "planta.calibrator/1"
ESTIMATORS = ("lightgbm", "xgboost", "linear")


def default_threads() -> int:
    """CPU cores this process may use (the affinity mask, not the machine's count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - macOS and Windows
        return max(1, os.cpu_count() or 1)


# Below this many rows, one thread answers faster than several: waking a thread pool costs more
# than a few trees, and on a busy 2-core box a single record waited milliseconds for a second
# thread (measured: 9 ms per LightGBM call and 17 ms per XGBoost call on a loaded machine).
SMALL_BATCH_ROWS = 2048


def threads_for(X: np.ndarray, num_threads: int) -> int:
    """Threads to use for a predict call on ``X``."""
    return 1 if X.shape[0] < SMALL_BATCH_ROWS else num_threads


class Model(Protocol):
    """What every model member offers: margins, contributions and its own bytes."""

    @property
    def kind(self) -> str: ...

    @property
    def suffix(self) -> str: ...

    def margin(self, X: np.ndarray, rounds: int | None = None) -> np.ndarray: ...

    def contributions(self, X: np.ndarray) -> np.ndarray: ...

    def to_bytes(self) -> bytes: ...


# ---------------------------------------------------------------------------------------------
# Model members
# ---------------------------------------------------------------------------------------------

class LightGBMModel:
    """A LightGBM booster, stored as LightGBM's text model."""

    kind = "lightgbm"
    suffix = ".txt"

    def __init__(self, booster: Any, n_classes: int, num_threads: int | None = None) -> None:
        self.booster = booster
        self.n_classes = n_classes
        self.num_threads = num_threads or default_threads()

    @classmethod
    def from_bytes(cls, data: bytes, n_classes: int,
                   num_threads: int | None = None) -> LightGBMModel:
        import lightgbm as lgb
        return cls(lgb.Booster(model_str=data.decode("utf-8")), n_classes, num_threads)

    def margin(self, X: np.ndarray, rounds: int | None = None) -> np.ndarray:
        """Raw scores (log-odds for classifiers); ``rounds`` uses only the first trees."""
        return np.asarray(self.booster.predict(X, raw_score=True, num_iteration=rounds,
                                               num_threads=threads_for(X, self.num_threads)))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        out = np.asarray(self.booster.predict(X, pred_contrib=True,
                                              num_threads=self.num_threads))
        if self.n_classes > 2:
            # LightGBM lays classes side by side: n x (k * (features + 1)).
            out = out.reshape(X.shape[0], self.n_classes, -1)
        return out

    def to_bytes(self) -> bytes:
        return str(self.booster.model_to_string()).encode("utf-8")


class XGBoostModel:
    """An XGBoost booster, stored as XGBoost's JSON model."""

    kind = "xgboost"
    suffix = ".json"

    def __init__(self, booster: Any, n_classes: int, num_threads: int | None = None) -> None:
        self.booster = booster
        self.n_classes = n_classes
        self.num_threads = num_threads or default_threads()
        self._nthread = self.num_threads
        self.booster.set_param({"nthread": self.num_threads})

    @classmethod
    def from_bytes(cls, data: bytes, n_classes: int,
                   num_threads: int | None = None) -> XGBoostModel:
        import xgboost as xgb
        booster = xgb.Booster()
        booster.load_model(bytearray(data))
        return cls(booster, n_classes, num_threads)

    def margin(self, X: np.ndarray, rounds: int | None = None) -> np.ndarray:
        """Raw scores (log-odds for classifiers); ``rounds`` uses only the first trees."""
        wanted = threads_for(X, self.num_threads)
        if wanted != self._nthread:
            self.booster.set_param({"nthread": wanted})
            self._nthread = wanted
        return np.asarray(self.booster.inplace_predict(
            X, predict_type="margin", missing=np.nan,
            iteration_range=(0, rounds) if rounds else (0, 0)))

    def contributions(self, X: np.ndarray) -> np.ndarray:
        import xgboost as xgb
        return np.asarray(self.booster.predict(xgb.DMatrix(X, missing=np.nan),
                                               pred_contribs=True))

    def to_bytes(self) -> bytes:
        return bytes(self.booster.save_raw("json"))


@dataclass(frozen=True, eq=False)
class LinearModel:
    """Standardised numbers and one-hot category codes times coefficients, in numpy.

    ``columns`` describes each matrix column: ``{"kind": "number", "mean", "scale"}`` (a missing
    value counts as the mean) or ``{"kind": "category", "n_codes", "freq"}`` (one coefficient per
    code; a missing or unknown code adds nothing). ``coef`` is ``outputs x design columns``.
    """

    columns: tuple[dict[str, Any], ...]
    coef: np.ndarray
    intercept: np.ndarray
    kind: str = "linear"
    suffix: str = ".json"

    def design(self, X: np.ndarray) -> np.ndarray:
        """The standardised, one-hot design matrix the coefficients apply to."""
        parts = []
        for j, col in enumerate(self.columns):
            x = X[:, j]
            if col["kind"] == "category":
                k = int(col["n_codes"])
                onehot = np.zeros((X.shape[0], k))
                ok = np.isfinite(x) & (x >= 0) & (x < k)
                onehot[np.flatnonzero(ok), x[ok].astype(int)] = 1.0
                parts.append(onehot)
            else:
                z = (x - col["mean"]) / col["scale"]
                # Far outside the training range a straight line keeps growing; 10 standard
                # deviations is past anything the contract's range check lets through.
                parts.append(np.clip(np.nan_to_num(z, nan=0.0), -10.0, 10.0)[:, None])
        return np.hstack(parts) if parts else np.zeros((X.shape[0], 0))

    def margin(self, X: np.ndarray, rounds: int | None = None) -> np.ndarray:
        """Linear margins (``rounds`` is ignored: a linear model has no rounds)."""
        out = self.design(X) @ self.coef.T + self.intercept
        return np.asarray(out[:, 0] if out.shape[1] == 1 else out)

    def contributions(self, X: np.ndarray) -> np.ndarray:
        """Per column: coefficient times (value - training average); bias last."""
        design = self.design(X)
        centre = np.concatenate([np.asarray(col["freq"], dtype=float) if col["kind"] == "category"
                                 else np.zeros(1) for col in self.columns]) \
            if self.columns else np.zeros(0)
        widths = [int(col["n_codes"]) if col["kind"] == "category" else 1 for col in self.columns]
        splits = np.cumsum(widths)[:-1]
        outs = []
        for coef, intercept in zip(self.coef, self.intercept, strict=True):
            terms = (design - centre) * coef
            per_col = [part.sum(axis=1) for part in np.split(terms, splits, axis=1)]
            bias = np.full(X.shape[0], float(intercept + centre @ coef))
            outs.append(np.column_stack(per_col + [bias]))
        return outs[0] if len(outs) == 1 else np.stack(outs, axis=1)

    def to_bytes(self) -> bytes:
        return _dump({"format": LINEAR_FORMAT, "columns": list(self.columns),
                      "coef": self.coef.tolist(), "intercept": self.intercept.tolist()})

    @classmethod
    def from_bytes(cls, data: bytes) -> LinearModel:
        doc = _load(data, "linear model")
        if doc.get("format") != LINEAR_FORMAT:
            raise IntegrityError(f"The linear model is not in format {LINEAR_FORMAT!r}.")
        return cls(columns=tuple(doc["columns"]), coef=np.asarray(doc["coef"], dtype=float),
                   intercept=np.asarray(doc["intercept"], dtype=float))


# ---------------------------------------------------------------------------------------------
# Calibrators
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Calibrator:
    """Margin -> probability. ``platt``: sigmoid(a * m + b); ``isotonic``: a monotone step
    curve interpolated between its points; ``temperature`` (multiclass): softmax(m / T);
    ``identity``: the link function alone (sigmoid or softmax).

    >>> c = Calibrator("platt", {"a": 1.0, "b": 0.0})
    >>> c.probability(np.array([0.0])).tolist()
    [0.5]
    >>> Calibrator.from_bytes(c.to_bytes()) == c
    True
    """

    kind: str
    params: dict[str, Any]

    def probability(self, margin: np.ndarray) -> np.ndarray:
        if margin.ndim == 2:
            t = float(self.params.get("t", 1.0)) if self.kind == "temperature" else 1.0
            return _softmax(margin / t)
        if self.kind == "platt":
            return _sigmoid(self.params["a"] * margin + self.params["b"])
        if self.kind == "isotonic":
            return np.interp(margin, np.asarray(self.params["x"], dtype=float),  # type: ignore[no-any-return]
                             np.asarray(self.params["y"], dtype=float))
        return _sigmoid(margin)

    def to_bytes(self) -> bytes:
        return _dump({"format": CALIBRATOR_FORMAT, "kind": self.kind, **self.params})

    @classmethod
    def from_bytes(cls, data: bytes) -> Calibrator:
        doc = _load(data, "calibrator")
        if doc.pop("format", None) != CALIBRATOR_FORMAT:
            raise IntegrityError(f"The calibrator is not in format {CALIBRATOR_FORMAT!r}.")
        kind = doc.pop("kind")
        if kind not in ("platt", "isotonic", "temperature", "identity"):
            raise IntegrityError(f"Unknown calibrator kind {kind!r}.")
        return cls(kind, doc)


def fit_platt(margin: np.ndarray, y: np.ndarray) -> Calibrator:
    """Platt scaling on the margin: strictly increasing, so rankings (AUCs) are unchanged."""
    from scipy.optimize import minimize

    m, t = np.asarray(margin, dtype=float), np.asarray(y, dtype=float)

    def loss(ab: np.ndarray) -> tuple[float, np.ndarray]:
        z = ab[0] * m + ab[1]
        # log(1 + e^z) - t z, stable for large |z|
        value = float(np.sum(np.logaddexp(0.0, z) - t * z))
        g = _sigmoid(z) - t
        return value, np.array([float(g @ m), float(g.sum())])

    res = minimize(loss, np.array([1.0, 0.0]), jac=True, method="L-BFGS-B",
                   bounds=[(1e-3, None), (None, None)])
    return Calibrator("platt", {"a": float(res.x[0]), "b": float(res.x[1])})


def fit_isotonic(margin: np.ndarray, y: np.ndarray) -> Calibrator:
    """Isotonic regression on the margin (flat steps: ties can lower AUC slightly)."""
    from sklearn.isotonic import IsotonicRegression

    iso = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0)
    iso.fit(np.asarray(margin, dtype=float), np.asarray(y, dtype=float))
    return Calibrator("isotonic", {"x": iso.X_thresholds_.tolist(),
                                   "y": iso.y_thresholds_.tolist()})


def fit_temperature(margin: np.ndarray, y: np.ndarray) -> Calibrator:
    """One temperature for all classes, minimising log-loss (keeps the arg-max)."""
    from scipy.optimize import minimize_scalar

    m, codes = np.asarray(margin, dtype=float), np.asarray(y, dtype=int)

    def loss(t: float) -> float:
        z = m / t
        z = z - z.max(axis=1, keepdims=True)
        return float(np.mean(np.log(np.exp(z).sum(axis=1)) - z[np.arange(len(codes)), codes]))

    res = minimize_scalar(loss, bounds=(0.05, 20.0), method="bounded")
    return Calibrator("temperature", {"t": float(res.x)})


# ---------------------------------------------------------------------------------------------
# Predictor
# ---------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Predictions:
    """What a model says about each row.

    ``label``: the decision (class names for classifiers, the value for regression).
    ``probability``: binary P(positive) of shape (n,), multiclass (n, k) in ``classes`` order.
    ``score``: the regression value. ``classes``: class names, the positive class last (binary).
    """

    label: np.ndarray
    probability: np.ndarray | None
    score: np.ndarray | None
    classes: list[str]


class Predictor:
    """Encoding + model members + calibrator + threshold: values in, predictions out.

    Build it from a bundle's members with :meth:`from_members`; nothing is unpickled.
    """

    def __init__(self, encoding: Encoding, task: Task, classes: Sequence[str],
                 members: Sequence[tuple[float, Model]], calibrator: Calibrator | None,
                 threshold: float | None = None) -> None:
        if not members:
            raise IntegrityError("A model needs at least one member.")
        self.encoding = encoding
        self.task = task
        self.classes = [str(c) for c in classes]
        self.members = [(float(w), m) for w, m in members]
        total = sum(w for w, _ in self.members)
        self.weights = [w / total for w, _ in self.members]
        self.calibrator = calibrator or Calibrator("identity", {})
        self.threshold = 0.5 if threshold is None else float(threshold)

    @property
    def feature_names(self) -> tuple[str, ...]:
        return self.encoding.feature_names

    @classmethod
    def from_members(cls, members: Mapping[str, bytes], *,
                     num_threads: int | None = None) -> Predictor:
        """Load from bundle members: ``features.json``, ``model/...`` and ``metrics.json``."""
        try:
            encoding = Encoding.from_dict(_load(members["features.json"], "features.json"))
            doc = _load(members["model/model.json"], "model/model.json")
        except KeyError as exc:
            raise IntegrityError(f"The bundle lacks the member {exc.args[0]!r}.") from None
        if doc.get("format") != MODEL_FORMAT:
            raise IntegrityError(f"model/model.json is not in format {MODEL_FORMAT!r}.")
        task = Task(doc["task"])
        classes = [str(c) for c in doc.get("classes", [])]
        n_classes = len(classes) if task != Task.REGRESSION else 0
        loaded: list[tuple[float, Model]] = []
        for entry in doc["members"]:
            data = members.get(entry["file"])
            if data is None:
                raise IntegrityError(f"The bundle lacks the model file {entry['file']!r}.")
            kind = entry["kind"]
            model: Model
            if kind == "lightgbm":
                model = LightGBMModel.from_bytes(data, n_classes, num_threads)
            elif kind == "xgboost":
                model = XGBoostModel.from_bytes(data, n_classes, num_threads)
            elif kind == "linear":
                model = LinearModel.from_bytes(data)
            else:
                raise IntegrityError(f"Unknown model kind {kind!r} in model/model.json.")
            loaded.append((float(entry.get("weight", 1.0)), model))
        calibrator = None
        if doc.get("calibrator"):
            calibrator = Calibrator.from_bytes(members[doc["calibrator"]])
        threshold = None
        if "metrics.json" in members:
            threshold = _load(members["metrics.json"], "metrics.json").get("threshold")
        return cls(encoding, task, classes, loaded, calibrator, threshold)

    def to_members(self) -> dict[str, bytes]:
        """``features.json`` and ``model/...`` (the threshold travels in metrics.json)."""
        out: dict[str, bytes] = {"features.json": _dump(self.encoding.to_dict())}
        entries = []
        for i, (weight, model) in enumerate(self.members):
            name = f"model/{model.kind}-{i}{model.suffix}"
            out[name] = model.to_bytes()
            entries.append({"kind": model.kind, "file": name, "weight": weight})
        doc: dict[str, Any] = {"format": MODEL_FORMAT, "task": self.task.value,
                               "classes": self.classes, "members": entries,
                               "feature_names": list(self.feature_names), "calibrator": None}
        if self.task != Task.REGRESSION:
            out["model/calibrator.json"] = self.calibrator.to_bytes()
            doc["calibrator"] = "model/calibrator.json"
        out["model/model.json"] = _dump(doc)
        return out

    def matrix(self, values: Mapping[str, Any]) -> np.ndarray:
        """The model matrix of contract values (see ``planta_edge.model_input``)."""
        return build_matrix(self.encoding, values)

    def margin_matrix(self, X: np.ndarray) -> np.ndarray:
        """Weighted average of the members' margins on a model matrix."""
        X = np.ascontiguousarray(X, dtype=np.float64)
        total: np.ndarray | None = None
        for weight, (_, model) in zip(self.weights, self.members, strict=True):
            part = weight * model.margin(X)
            total = part if total is None else total + part
        assert total is not None
        return total

    def predict_matrix(self, X: np.ndarray) -> Predictions:
        """Predictions for a model matrix (already encoded, steps appended)."""
        margin = self.margin_matrix(X)
        if self.task == Task.REGRESSION:
            return Predictions(label=margin, probability=None, score=margin, classes=[])
        proba = self.calibrator.probability(margin)
        names = np.asarray(self.classes, dtype=object)
        if self.task == Task.BINARY:
            label = np.where(proba >= self.threshold, names[1], names[0])
        else:
            label = names[np.argmax(proba, axis=1)]
        return Predictions(label=label, probability=proba, score=None, classes=self.classes)

    def predict(self, values: Mapping[str, Any]) -> Predictions:
        """Predictions for contract values (canonical field names -> 1-D arrays)."""
        return self.predict_matrix(self.matrix(values))

    def contributions(self, values: Mapping[str, Any]) -> tuple[np.ndarray, list[str]]:
        """Per-row contributions of each feature to the margin, and their names.

        Binary and regression: ``n x (features + 1)``; multiclass ``n x classes x
        (features + 1)``. The last column is the bias (``"(baseline)"``); a row's
        contributions add up to its margin (log-odds for classifiers, before calibration).
        """
        X = np.ascontiguousarray(self.matrix(values), dtype=np.float64)
        total: np.ndarray | None = None
        for weight, (_, model) in zip(self.weights, self.members, strict=True):
            part = weight * model.contributions(X)
            total = part if total is None else total + part
        assert total is not None
        return total, list(self.feature_names) + ["(baseline)"]


# ---------------------------------------------------------------------------------------------
# Fitting: arrays -> model members (the search that calls these lives in services/train.py)
# ---------------------------------------------------------------------------------------------

@dataclass
class Fitted:
    """A fitted member, and its validation curve when a validation set was given."""

    model: Model
    curve: np.ndarray | None = None        # validation loss per boosting round
    rounds: int = 0


def lightgbm_params(task: Task, n_classes: int, params: Mapping[str, Any], *, seed: int,
                    num_threads: int) -> dict[str, Any]:
    """LightGBM training parameters: the searched ones plus what makes runs repeatable."""
    objective = {Task.BINARY: "binary", Task.MULTICLASS: "multiclass",
                 Task.REGRESSION: "regression"}[task]
    out: dict[str, Any] = {
        "objective": objective, "verbosity": -1, "seed": seed, "num_threads": num_threads,
        # LightGBM otherwise picks row- or column-wise histograms by timing them, which can
        # change the model from run to run; col-wise is the faster one on narrow tables.
        "deterministic": True, "force_col_wise": True,
        "metric": {"binary": "binary_logloss", "multiclass": "multi_logloss",
                   "regression": "l2"}[objective],
    }
    if task == Task.MULTICLASS:
        out["num_class"] = n_classes
    for key, value in params.items():
        if key in ("subsample", "bagging_fraction") and float(value) < 1.0:
            out["bagging_fraction"] = float(value)
            out["bagging_freq"] = 1
        elif key in ("subsample", "bagging_fraction"):
            continue
        else:
            out[key] = value
    return out


def fit_lightgbm(X: np.ndarray, y: np.ndarray, task: Task, n_classes: int,
                 params: Mapping[str, Any], *, rounds: int, weight: np.ndarray | None = None,
                 categorical: Sequence[int] = (), valid: tuple[np.ndarray, np.ndarray] | None
                 = None, patience: int = 50, seed: int = 0, num_threads: int = 1,
                 deadline: float | None = None) -> Fitted:
    """Train LightGBM for up to ``rounds``; with ``valid``, stop ``patience`` rounds after the
    best validation loss and return the loss curve."""
    import lightgbm as lgb

    full = lightgbm_params(task, n_classes, params, seed=seed, num_threads=num_threads)
    train_set = lgb.Dataset(X, label=y, weight=weight, categorical_feature=list(categorical),
                            free_raw_data=True, params={"verbosity": -1})
    callbacks: list[Any] = []
    record: dict[str, Any] = {}
    valid_sets = []
    if valid is not None:
        valid_sets = [lgb.Dataset(valid[0], label=valid[1], reference=train_set)]
        callbacks += [lgb.record_evaluation(record),
                      lgb.early_stopping(patience, first_metric_only=True, verbose=False)]
    if deadline is not None:
        def stop_at_deadline(env: Any) -> None:
            if time.monotonic() > deadline:
                raise lgb.callback.EarlyStopException(env.iteration,
                                                      env.evaluation_result_list or [])
        callbacks.append(stop_at_deadline)
    booster = lgb.train(full, train_set, num_boost_round=rounds, valid_sets=valid_sets,
                        callbacks=callbacks)
    curve = None
    if record:
        curve = np.asarray(next(iter(next(iter(record.values())).values())), dtype=float)
    return Fitted(LightGBMModel(booster, n_classes, num_threads), curve,
                  int(booster.current_iteration()))


def xgboost_params(task: Task, n_classes: int, params: Mapping[str, Any], *, seed: int,
                   num_threads: int) -> dict[str, Any]:
    """XGBoost training parameters (hist trees) plus what makes runs repeatable."""
    out: dict[str, Any] = {
        "objective": {Task.BINARY: "binary:logistic", Task.MULTICLASS: "multi:softprob",
                      Task.REGRESSION: "reg:squarederror"}[task],
        "eval_metric": {Task.BINARY: "logloss", Task.MULTICLASS: "mlogloss",
                        Task.REGRESSION: "rmse"}[task],
        "tree_method": "hist", "seed": seed, "nthread": num_threads, "verbosity": 0,
    }
    if task == Task.MULTICLASS:
        out["num_class"] = n_classes
    out.update(params)
    return out


def fit_xgboost(X: np.ndarray, y: np.ndarray, task: Task, n_classes: int,
                params: Mapping[str, Any], *, rounds: int, weight: np.ndarray | None = None,
                valid: tuple[np.ndarray, np.ndarray] | None = None, patience: int = 50,
                seed: int = 0, num_threads: int = 1, deadline: float | None = None) -> Fitted:
    """Train XGBoost for up to ``rounds`` (same contract as :func:`fit_lightgbm`)."""
    import xgboost as xgb

    full = xgboost_params(task, n_classes, params, seed=seed, num_threads=num_threads)
    dtrain = xgb.DMatrix(X, label=y, weight=weight, missing=np.nan, nthread=num_threads)
    evals = []
    record: dict[str, Any] = {}
    callbacks: list[Any] = []
    if deadline is not None:
        stop_at: float = deadline

        class StopAtDeadline(xgb.callback.TrainingCallback):
            def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
                return time.monotonic() > stop_at

        callbacks.append(StopAtDeadline())
    if valid is not None:
        evals = [(xgb.DMatrix(valid[0], label=valid[1], missing=np.nan, nthread=num_threads),
                  "valid")]
        callbacks.append(xgb.callback.EarlyStopping(rounds=patience, save_best=False))
    booster = xgb.train(full, dtrain, num_boost_round=rounds, evals=evals, evals_result=record,
                        verbose_eval=False, callbacks=callbacks)
    curve = None
    if record:
        curve = np.asarray(next(iter(record["valid"].values())), dtype=float)
    return Fitted(XGBoostModel(booster, n_classes, num_threads), curve,
                  int(booster.num_boosted_rounds()))


def fit_linear(X: np.ndarray, y: np.ndarray, task: Task, encoding_kinds: Sequence[str],
               n_codes: Sequence[int], params: Mapping[str, Any], *,
               weight: np.ndarray | None = None, seed: int = 0) -> Fitted:
    """Logistic regression (classifiers) or ridge (regression) on a standardised design.

    ``encoding_kinds[j]`` is ``"number"`` or ``"category"`` for matrix column ``j``;
    ``n_codes[j]`` the number of category codes (ignored for numbers). ``params``: ``C`` for
    logistic regression, ``alpha`` for ridge.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression, Ridge

    columns: list[dict[str, Any]] = []
    for j, kind in enumerate(encoding_kinds):
        x = X[:, j]
        if kind == "category":
            k = int(n_codes[j])
            counts = np.bincount(x[np.isfinite(x)].astype(int), minlength=k)[:k]
            columns.append({"kind": "category", "n_codes": k,
                            "freq": (counts / max(x.shape[0], 1)).tolist()})
        else:
            finite = x[np.isfinite(x)]
            mean = float(finite.mean()) if finite.size else 0.0
            scale = float(finite.std()) if finite.size else 1.0
            columns.append({"kind": "number", "mean": mean,
                            "scale": scale if scale > 1e-12 else 1.0})
    shell = LinearModel(tuple(columns), np.zeros((1, 0)), np.zeros(1))
    design = shell.design(X)
    with warnings.catch_warnings():
        # A few hundred lbfgs steps are plenty for a baseline; a late convergence warning
        # says nothing the cross-validated score does not.
        warnings.simplefilter("ignore", ConvergenceWarning)
        if task == Task.REGRESSION:
            est = Ridge(alpha=float(params.get("alpha", 1.0)))
            est.fit(design, y, sample_weight=weight)
            coef = np.atleast_2d(est.coef_)
            intercept = np.atleast_1d(est.intercept_).astype(float)
        else:
            est = LogisticRegression(C=float(params.get("C", 1.0)), max_iter=300,
                                     random_state=seed)
            est.fit(design, y, sample_weight=weight)
            coef, intercept = np.asarray(est.coef_, float), np.asarray(est.intercept_, float)
    model = LinearModel(tuple(columns), coef, intercept)
    return Fitted(model, None, 0)


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=float))))


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def _dump(doc: Mapping[str, Any]) -> bytes:
    return json.dumps(doc, indent=1, sort_keys=False, allow_nan=False,
                      default=_json_default).encode("utf-8")


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _load(data: bytes, what: str) -> dict[str, Any]:
    try:
        doc = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IntegrityError(f"{what} is not valid JSON: {exc}.") from None
    if not isinstance(doc, dict):
        raise IntegrityError(f"{what} is not a JSON object.")
    return doc


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, stable for large |z|."""
    return _sigmoid(z)


def softmax(z: np.ndarray) -> np.ndarray:
    """Row-wise softmax of an ``n x k`` matrix."""
    return _softmax(z)


__all__ = [
    "CALIBRATOR_FORMAT",
    "ESTIMATORS",
    "LINEAR_FORMAT",
    "MODEL_FORMAT",
    "Calibrator",
    "Fitted",
    "LightGBMModel",
    "LinearModel",
    "Model",
    "Predictions",
    "Predictor",
    "XGBoostModel",
    "default_threads",
    "fit_isotonic",
    "fit_lightgbm",
    "fit_linear",
    "fit_platt",
    "fit_temperature",
    "fit_xgboost",
    "lightgbm_params",
    "sigmoid",
    "softmax",
    "xgboost_params",
]
