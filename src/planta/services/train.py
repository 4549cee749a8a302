"""Training: a validated table in, a trained, calibrated, evaluated and gated model out.

    frame (FrameCheck.accepted: canonical names, clean dtypes)
      │ labels      classes as strings; positive = positive_label, else 1/true/yes, else minority
      │ holdout     20 %: the last 20 % in time (time column), whole entities (entity column),
      │             else stratified; never touched until the final evaluation
      │ folds       from the data: TimeSeriesSplit / (Stratified)GroupKFold / StratifiedKFold;
      │             5 folds, 3 or 2 when the rarer class is small
      │ features    feature-step search (planta.core.features), about 20 % of the budget
      │ search      Optuna TPE over LightGBM, XGBoost and a linear baseline; each library's
      │             defaults are the first trials, so the search can only improve on them on CV;
      │             boosting rounds by early stopping on the fold-averaged validation loss;
      │             class imbalance is a searched choice (none / sqrt / balanced weights)
      │ winner      by mean CV score (log-loss of calibrated out-of-fold probabilities for
      │             classifiers, the goal's error for regression): the cheapest trial within one
      │             standard error of the best; the average of the 3 cheapest such trials
      │             only when it beats that by more than the fold-to-fold noise
      │ refit       on all training rows (train + validation folds)
      │ calibrate   Platt (binary) / temperature (multiclass) on out-of-fold margins
      │ threshold   chosen on out-of-fold probabilities for the objective, never on the holdout
      │ evaluate    the shipped Predictor (rebuilt from bytes) on the holdout; bootstrap intervals
      ▼ gate        planta.core.metrics.evaluate_gate
    TrainOutcome (members: features.json, model/..., metrics.json, importance.json)

The budget (``budget_s``) covers everything; the search stops early enough to leave time for
the refit and evaluation it has measured, and the first trial always completes. Given the seed,
the sequence of trials is the same on every run; a faster machine may only complete more of
them within the budget (``max_trials`` pins the number for exact repeats).
"""

from __future__ import annotations

import json
import math
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from planta.core.features import parallel_map, search_steps
from planta.core.holdout import holdout_detail
from planta.core.metrics import (
    Estimate,
    Gate,
    ThresholdChoice,
    bootstrap_metrics,
    choose_threshold,
    compute_metrics,
    evaluate_gate,
)
from planta.core.models import (
    Calibrator,
    Fitted,
    LightGBMModel,
    Model,
    Predictor,
    XGBoostModel,
    default_threads,
    fit_lightgbm,
    fit_linear,
    fit_platt,
    fit_temperature,
    fit_xgboost,
    softmax,
)
from planta.core.spec import Task, UseCase
from planta.errors import ConfigError, InputError
from planta.services.split import (
    FALSY,
    TRUTHY,
    encode_target,
    group_values,
    holdout_split,
    is_missing,
    label_text,
    time_values,
)
from planta_edge.contract import Contract, Field
from planta_edge.model_input import Encoding, FeatureStep, build_matrix

FEATURE_SHARE = 0.2          # of the budget, for the feature-step search
ENSEMBLE_SIZE = 3


@dataclass(frozen=True)
class TrainEvent:
    """Progress of a training run, for a progress bar or a log line.

    ``kind`` is ``"stage"`` (a step began; ``stage`` names it) or ``"trial"`` (a search trial
    finished: ``n``, ``estimator``, ``score``, ``best`` so far).
    """

    kind: str
    stage: str
    message: str
    elapsed_s: float
    budget_s: float
    n: int | None = None
    estimator: str | None = None
    score: float | None = None
    best: float | None = None


@dataclass(frozen=True)
class Trial:
    """One search trial: what was fitted, its CV scores and how long it took."""

    number: int
    estimator: str
    params: dict[str, Any]
    cv_scores: tuple[float, ...]
    score: float
    rounds: int | None
    duration_s: float
    state: str = "complete"            # or "stopped" (cut short by the budget)

    def to_dict(self) -> dict[str, Any]:
        return {"number": self.number, "estimator": self.estimator, "params": self.params,
                "cv_scores": [round(s, 6) for s in self.cv_scores],
                "score": None if not math.isfinite(self.score) else round(self.score, 6),
                "rounds": self.rounds, "duration_s": round(self.duration_s, 3),
                "state": self.state}


@dataclass(frozen=True)
class TrainOutcome:
    """Everything the bundle needs from training; nothing is written to disk."""

    members: dict[str, bytes]
    metrics: dict[str, Estimate]
    cv: dict[str, Any]
    threshold: float | None
    gate: Gate
    trials: tuple[Trial, ...]
    importances: dict[str, float]
    feature_steps: tuple[FeatureStep, ...]
    holdout_index: np.ndarray
    params: dict[str, Any]
    estimator: str
    duration_s: float
    n_train: int
    n_holdout: int
    classes: tuple[str, ...] = ()
    positive_class: str | None = None
    threshold_choice: ThresholdChoice | None = None
    feature_search: dict[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def predictor(self) -> Predictor:
        """The trained model, loaded from its own bytes."""
        return Predictor.from_members(self.members)


# ---------------------------------------------------------------------------------------------
# The entry point
# ---------------------------------------------------------------------------------------------

def train(usecase: UseCase, frame: pd.DataFrame, contract: Contract, *, budget_s: float,
          seed: int = 0, progress: Callable[[TrainEvent], None] | None = None,
          max_trials: int | None = None, num_threads: int | None = None) -> TrainOutcome:
    """Train, calibrate, evaluate and gate a model for ``usecase`` on ``frame``.

    ``frame`` has canonical column names: the contract's features, the target
    (``contract.target``, else ``usecase.target``) and the entity / time columns the use case
    names. ``budget_s`` is the wall-clock budget in seconds (a few seconds work, for tests).

    Raises :class:`InputError` when the data cannot support a model (too few rows or
    failures, a missing column) and :class:`ConfigError` for a use case that contradicts it.
    """
    clock = _Clock(budget_s, progress)
    threads = num_threads or default_threads()
    task = usecase.task
    notes: list[str] = []
    clock.stage("prepare", "reading the table")
    target = contract.target or usecase.target
    if target not in frame.columns:
        raise InputError(f"The table has no target column {target!r}.",
                         hint="Check the use case's target and the contract.")
    fields = _feature_fields(contract, frame, usecase)
    target_raw = frame[target]
    labelled = ~is_missing(target_raw)
    if not labelled.all():
        notes.append(f"{int((~labelled).sum())} rows without a target value were left out.")
    rows = np.flatnonzero(labelled.to_numpy())
    y_all, classes, positive = encode_target(target_raw.to_numpy()[rows], task,
                                              usecase.positive_label)
    n_classes = len(classes) if task != Task.REGRESSION else 0
    sub = frame.iloc[rows]
    times = time_values(sub, usecase.time)
    groups = group_values(sub, usecase.entity)
    train_pos, hold_pos, split_desc = holdout_split(y_all, task, groups, times, seed)
    _check_enough(y_all[train_pos], task, classes)
    clock.stage("prepare", f"holdout: {split_desc}")

    encoding = _encoding(fields, sub.iloc[train_pos])
    values = {f.name: _column(sub[f.name], f) for f in fields}
    X_base = build_matrix(encoding, values)
    X_train_base, y_train = X_base[train_pos], y_all[train_pos]
    folds, cv_desc = _folds(y_train, task, None if groups is None else groups[train_pos],
                            times is not None, seed)

    # Feature steps ------------------------------------------------------------------------
    clock.stage("features", "searching feature steps")
    units = [_unit_of(contract, name) for name in encoding.input_names]
    search = search_steps(
        X_train_base, y_train, encoding.input_names, units, task, folds,
        categorical=encoding.categorical_indices, n_classes=max(n_classes, 2), seed=seed,
        num_threads=threads, deadline=clock.at(FEATURE_SHARE))
    encoding = encoding.with_steps(search.steps)
    X_all = build_matrix(encoding, values)
    X_train = X_all[train_pos]
    if search.steps:
        clock.stage("features", "kept " + ", ".join(s.describe() for s in search.steps))

    # Search ---------------------------------------------------------------------------------
    metric = _selection_metric(usecase)
    space = _Space(task, n_classes, y_train, encoding, seed, threads)
    runner = _Runner(space, X_train, y_train, folds, metric, clock)
    results = runner.run(max_trials=max_trials)
    complete = [r for r in results if r.trial.state.startswith("complete")]
    # A use case that limits prediction time gets one model, refitted: never an ensemble nor
    # the average of the cross-validation models (several models to run per prediction).
    # Ensembles at all only where the use case allows them.
    lean = usecase.max_latency_ms is not None
    chosen = _choose(complete, runner, ensemble=usecase.ensemble and not lean)
    if lean:
        notes.append("The use case limits prediction time (max_latency_ms): one model, "
                     "refitted on all training rows, rather than an ensemble.")
    clock.stage("refit", f"refitting {'+'.join(r.trial.estimator for r in chosen.members)} "
                         "on all training rows")

    # Refit, calibrate, threshold -------------------------------------------------------------
    fitted = _final_members(chosen, space, X_train, y_train, clock, notes,
                            fold_average=not lean)
    oof_rows = np.flatnonzero(chosen.oof_mask)
    calibrator = _calibrate(task, chosen.oof_margin[oof_rows], y_train[oof_rows])
    threshold_choice: ThresholdChoice | None = None
    threshold: float | None = None
    oof_days = _days(None if times is None else times[train_pos], oof_rows.size,
                     usecase.rows_per_day)
    if task == Task.BINARY:
        p_oof = calibrator.probability(chosen.oof_margin[oof_rows])
        threshold_choice = choose_threshold(y_train[oof_rows], p_oof, usecase.objective,
                                            oof_days, gate_rows=len(hold_pos))
        threshold = threshold_choice.threshold
    predictor = Predictor(encoding, task, classes, fitted, calibrator, threshold)
    members = predictor.to_members()

    # Evaluate on the holdout, through the shipped bytes --------------------------------------
    clock.stage("evaluate", "holdout evaluation with bootstrap intervals")
    shipped = Predictor.from_members({**members, "metrics.json": json.dumps(
        {"threshold": threshold}).encode()}, num_threads=threads)
    hold_values = {name: col[hold_pos] for name, col in values.items()}
    pred = shipped.predict(hold_values)
    y_hold = y_all[hold_pos]
    hold_days = _days(None if times is None else times[hold_pos], len(hold_pos),
                      usecase.rows_per_day)
    evaluated = pred.probability if task != Task.REGRESSION else pred.score
    assert evaluated is not None
    metrics = bootstrap_metrics(task, y_hold, evaluated, threshold=threshold or 0.5,
                                days=hold_days, cost=usecase.objective.cost, seed=seed)
    if task == Task.BINARY and 0 < y_hold.sum() == len(y_hold):
        notes.append("The holdout has no negative rows; ranking metrics are undefined.")
    if task == Task.BINARY and y_hold.sum() == 0:
        notes.append("The holdout has no positive rows; recall and PR-AUC are undefined.")
    gate = evaluate_gate(metrics, usecase.objective)

    importances = _importances(shipped, {n: c[train_pos] for n, c in values.items()}, seed,
                               seconds=min(2.0, clock.end - time.monotonic() - 0.1))
    oof_metrics = _oof_metrics(task, y_train[oof_rows], chosen.oof_margin[oof_rows],
                               calibrator, threshold, oof_days, usecase)
    cv = {"scheme": cv_desc, "k": len(folds), "holdout": split_desc, "metric": metric,
          "score": chosen.score, "fold_scores": list(chosen.fold_scores),
          "best_trial_score": chosen.best_score, "ensemble": len(chosen.members) > 1,
          "n_trials": len(results), "n_complete": len(complete), "oof_rows": int(oof_rows.size),
          "oof_metrics": oof_metrics}
    params = {"members": [{"estimator": m.trial.estimator, "params": m.trial.params,
                           "rounds": space.refit_rounds(m.trial), "trial": m.trial.number}
                          for m in chosen.members],
              "calibrator": calibrator.kind, "selection_metric": metric, "seed": seed}
    estimator = (chosen.members[0].trial.estimator if len(chosen.members) == 1 else
                 "ensemble(" + "+".join(m.trial.estimator for m in chosen.members) + ")")
    metrics_doc = {
        "format": "planta.metrics/1", "task": task.value, "classes": classes,
        "positive_class": positive, "threshold": threshold,
        "threshold_choice": None if threshold_choice is None else threshold_choice.to_dict(),
        "objective": usecase.objective.text, "gate_on": usecase.objective.gate_on,
        "holdout": {k: v.to_dict() for k, v in metrics.items()},
        # Counts for the model page: confusion matrix, threshold table, residual summary.
        "holdout_detail": holdout_detail(task.value, y_hold, evaluated, threshold, classes),
        "holdout_days": hold_days, "cv": cv, "gate": gate.to_dict(),
        "n_train": len(train_pos), "n_holdout": len(hold_pos),
        "estimator": estimator, "params": params, "feature_search": search.to_dict(),
        "notes": notes,
    }
    members["metrics.json"] = _dump(metrics_doc)
    members["importance.json"] = _dump({
        "format": "planta.importance/1", "kind": "mean_abs_contribution",
        "features": [{"name": k, "importance": round(v, 6)} for k, v in importances.items()],
        "steps": {s.name: s.describe() for s in encoding.steps}})
    duration = clock.elapsed()
    clock.stage("done", f"{estimator}: {metric} {chosen.score:.4g} on CV; gate "
                        f"{'passed' if gate.passed else 'not passed'}")
    return TrainOutcome(
        members=members, metrics=metrics, cv=cv, threshold=threshold, gate=gate,
        trials=tuple(r.trial for r in results), importances=importances,
        feature_steps=tuple(encoding.steps), holdout_index=rows[hold_pos], params=params,
        estimator=estimator, duration_s=duration, n_train=len(train_pos),
        n_holdout=len(hold_pos), classes=tuple(classes), positive_class=positive,
        threshold_choice=threshold_choice, feature_search=search.to_dict(), notes=tuple(notes))


# ---------------------------------------------------------------------------------------------
# Time
# ---------------------------------------------------------------------------------------------

class _Clock:
    """The budget: elapsed time, deadlines as fractions of the budget, progress events."""

    def __init__(self, budget_s: float, progress: Callable[[TrainEvent], None] | None) -> None:
        if budget_s <= 0:
            raise ConfigError(f"The training budget must be positive, not {budget_s} s.")
        self.budget_s = float(budget_s)
        self.start = time.monotonic()
        self.progress = progress

    def elapsed(self) -> float:
        return time.monotonic() - self.start

    def at(self, fraction: float) -> float:
        return self.start + fraction * self.budget_s

    @property
    def end(self) -> float:
        return self.start + self.budget_s

    def stage(self, stage: str, message: str) -> None:
        if self.progress is not None:
            self.progress(TrainEvent("stage", stage, message, self.elapsed(), self.budget_s))

    def trial(self, n: int, estimator: str, score: float, best: float) -> None:
        if self.progress is not None:
            self.progress(TrainEvent("trial", "search", f"trial {n} ({estimator}): {score:.4g}",
                                     self.elapsed(), self.budget_s, n, estimator, score, best))


# ---------------------------------------------------------------------------------------------
# Columns, labels, splits
# ---------------------------------------------------------------------------------------------

def _feature_fields(contract: Contract, frame: pd.DataFrame, usecase: UseCase) -> list[Field]:
    skip = {usecase.entity, usecase.time, contract.target, usecase.target}
    fields = [f for f in contract.features if f.name not in skip and
              f.kind in ("number", "integer", "boolean", "category")]
    missing = [f.name for f in fields if f.name not in frame.columns]
    if missing:
        raise InputError(f"The table lacks these contract features: {missing}.",
                         hint="Train on the table the contract was made from (canonical names).")
    if not fields:
        raise InputError("The contract has no number or category feature to learn from.",
                         hint="Check the contract's roles: at least one field must be a feature.")
    return fields


def _check_enough(y: np.ndarray, task: Task, classes: Sequence[str]) -> None:
    if y.shape[0] < 20:
        raise InputError(f"Only {y.shape[0]} training rows: a model needs at least 20 (and "
                         "far more to be trusted).", hint="Collect more labelled rows.")
    if task != Task.REGRESSION:
        counts = np.bincount(y, minlength=len(classes))
        rare = int(counts.min())
        if rare < 4:
            name = classes[int(counts.argmin())]
            raise InputError(f"The training part has only {rare} rows of class {name!r}; "
                             "cross-validation needs at least 4.",
                             hint="Collect more examples of that class.")


def _folds(y: np.ndarray, task: Task, groups: np.ndarray | None, time_ordered: bool,
           seed: int) -> tuple[list[tuple[np.ndarray, np.ndarray]], str]:
    from sklearn.model_selection import (
        GroupKFold,
        KFold,
        StratifiedGroupKFold,
        StratifiedKFold,
        TimeSeriesSplit,
    )

    n = y.shape[0]
    classify = task != Task.REGRESSION
    if classify:
        rare = int(np.bincount(y).min())
        # About 10 or more of the rarer class per validation fold keeps PR-AUC readable.
        k = 5 if rare >= 50 else 3 if rare >= 9 else 2
    else:
        k = 5 if n >= 500 else 3
    dummy = np.zeros(n)
    if time_ordered:
        splits = list(TimeSeriesSplit(n_splits=k).split(dummy))
        desc = f"time-ordered {k}-split (expanding window)"
        if classify:
            # A validation block without a positive cannot score; merge such blocks forward.
            splits = [(tr, va) for tr, va in splits
                      if len(np.unique(y[va])) > 1 and len(np.unique(y[tr])) == len(np.unique(y))]
            if not splits:
                splits = list(StratifiedKFold(k, shuffle=True, random_state=seed)
                              .split(dummy, y))
                desc = f"stratified {k}-fold (no time block held both classes)"
    elif groups is not None:
        n_groups = len(set(groups.tolist()))
        k = max(2, min(k, n_groups))
        if classify:
            splitter: Any = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
            splits = list(splitter.split(dummy, y, groups))
        else:
            splits = list(GroupKFold(n_splits=k).split(dummy, y, groups))
        desc = f"{k}-fold by entity"
        splits = [(tr, va) for tr, va in splits if not classify or
                  len(np.unique(y[va])) > 1]
    elif classify:
        splits = list(StratifiedKFold(k, shuffle=True, random_state=seed).split(dummy, y))
        desc = f"stratified {k}-fold"
    else:
        splits = list(KFold(k, shuffle=True, random_state=seed).split(dummy))
        desc = f"{k}-fold"
    if not splits:
        raise InputError("No cross-validation fold holds every class.",
                         hint="Collect more rows of the rarer class.")
    return [(np.asarray(tr), np.asarray(va)) for tr, va in splits], desc


def _encoding(fields: Sequence[Field], train_frame: pd.DataFrame) -> Encoding:
    resolved = []
    for f in fields:
        if f.kind == "category" and not f.categories:
            seen = train_frame[f.name].dropna().map(label_text).unique().tolist()
            f = Field(name=f.name, kind=f.kind, categories=tuple(sorted(str(v) for v in seen)))
        resolved.append(f)
    return Encoding.from_fields(resolved)


def _column(series: pd.Series, f: Field) -> np.ndarray:
    """A frame column as build_matrix wants it: float64 with NaN, or an object array of text
    (pandas' nullable types carry pd.NA, which numpy cannot turn into a float)."""
    if f.kind == "category":
        return np.asarray(series.astype(object).where(series.notna(), None), dtype=object)
    if pd.api.types.is_bool_dtype(series.dtype):
        return np.asarray(series.astype("float64"), dtype=float)
    if f.kind == "boolean" and not pd.api.types.is_numeric_dtype(series.dtype):
        text = series.astype(str).str.strip().str.lower()
        mapped = text.map(lambda v: 1.0 if v in TRUTHY else 0.0 if v in FALSY else np.nan)
        return np.asarray(mapped, dtype=float)
    return np.asarray(pd.to_numeric(series, errors="coerce").to_numpy(dtype=float,
                                                                      na_value=np.nan))


def _unit_of(contract: Contract, name: str) -> str | None:
    return next((f.unit for f in contract.fields if f.name == name), None)


def _days(times: np.ndarray | None, n_rows: int, rows_per_day: float | None) -> float | None:
    """How many days ``n_rows`` rows cover: from the time column, else rows_per_day."""
    if times is not None and times.size > 1:
        span = float(np.max(times) - np.min(times))
        if span > 0:
            return span * n_rows / times.size
    if rows_per_day:
        return n_rows / float(rows_per_day)
    return None


def _selection_metric(usecase: UseCase) -> str:
    """The CV score that picks the winner (higher is better).

    Classifiers: log-loss of calibrated out-of-fold probabilities. On AI4I (5 splits, 60 s, every
    trial refitted and scored on the benchmark's test rows) the trial with the best CV log-loss
    scored 0.9809 ROC-AUC / 0.8929 PR-AUC on average, the best CV PR-AUC 0.9788 / 0.8910: per-fold
    PR-AUC rests on a few dozen failures and is too noisy to rank trials by. Calibrating first
    (Platt, or a temperature) keeps class-weighted trials comparable with unweighted ones.
    Regression: the objective's error measure (RMSE by default).
    """
    goal = usecase.objective.goal
    if usecase.task != Task.REGRESSION:
        return "neg_log_loss"
    return {"mae": "neg_mae", "mape": "neg_mape", "r2": "r2"}.get(
        goal.metric if goal else "", "neg_rmse")


def _fold_scores(metric: str, y: np.ndarray, margin: np.ndarray,
                 folds: Sequence[tuple[np.ndarray, np.ndarray]], task: Task) -> list[float]:
    """Per-fold scores of out-of-fold margins; log-loss after one calibration on all of them."""
    if metric == "neg_log_loss":
        rows = np.concatenate([va for _, va in folds])
        calibrator = _calibrate(task, margin[rows], y[rows])
        out = []
        for _, va in folds:
            p = calibrator.probability(margin[va])
            if task == Task.BINARY:
                p = np.column_stack([1.0 - p, p])
            out.append(float(np.mean(np.log(np.clip(p[np.arange(va.size), y[va]], 1e-15, 1.0)))))
        return out
    return [_score(metric, y[va], margin[va]) for _, va in folds]


def _score(metric: str, y: np.ndarray, margin: np.ndarray) -> float:
    if metric == "pr_auc":
        from sklearn.metrics import average_precision_score
        return float(average_precision_score(y, margin)) if 0 < y.sum() < y.size else math.nan
    if metric == "roc_auc":
        from sklearn.metrics import roc_auc_score
        return float(roc_auc_score(y, margin)) if 0 < y.sum() < y.size else math.nan
    if metric == "neg_log_loss":
        p = softmax(margin)
        return float(np.mean(np.log(np.clip(p[np.arange(y.size), y], 1e-15, 1.0))))
    err = margin - y
    if metric == "neg_mae":
        return -float(np.mean(np.abs(err)))
    if metric == "neg_mape":
        nz = y != 0
        return -float(np.mean(np.abs(err[nz] / y[nz]))) if nz.any() else math.nan
    if metric == "r2":
        sst = float(np.sum((y - y.mean()) ** 2))
        return 1.0 - float(np.sum(err ** 2)) / sst if sst > 0 else math.nan
    return -float(np.sqrt(np.mean(err ** 2)))


# ---------------------------------------------------------------------------------------------
# Estimators and their search space
# ---------------------------------------------------------------------------------------------

# The libraries' own defaults: the first trials of every search (``balance`` = no weights).
_DEFAULTS: dict[str, dict[str, Any]] = {
    "lightgbm": {"learning_rate": 0.1, "num_leaves": 31, "min_data_in_leaf": 20,
                 "bagging_fraction": 1.0, "feature_fraction": 1.0, "lambda_l2": 1e-8,
                 "lambda_l1": 1e-8, "max_bin": 255, "balance": "none"},
    "xgboost": {"learning_rate": 0.3, "max_depth": 6, "min_child_weight": 1.0,
                "subsample": 1.0, "colsample_bytree": 1.0, "reg_lambda": 1.0,
                "reg_alpha": 1e-8, "max_bin": 256, "balance": "none"},
    "linear": {"C": 1.0, "alpha": 1.0, "balance": "none"},
}
_BALANCE_POWER = {"none": 0.0, "sqrt": 0.5, "balanced": 1.0}
_MAX_ROUNDS = 2500
# A refit sees all training rows, a fold model 80 % or fewer (4/5 with 5 folds): 1.25x, with
# a margin for the machine's jitter.
_REFIT_FACTOR = 1.35


class _Space:
    """Suggests parameters, fits one fold, refits on all rows."""

    def __init__(self, task: Task, n_classes: int, y: np.ndarray, encoding: Encoding,
                 seed: int, threads: int) -> None:
        self.task = task
        self.n_classes = n_classes
        self.encoding = encoding
        self.seed = seed
        self.threads = threads
        self.categorical = encoding.categorical_indices
        kinds = ["category" if c.kind == "category" else "number" for c in encoding.columns]
        self.kinds = kinds + ["number"] * len(encoding.steps)
        self.n_codes = [len(c.categories) for c in encoding.columns] + [0] * len(encoding.steps)
        self.class_counts = np.bincount(y, minlength=n_classes) if n_classes else None

    estimators = ("lightgbm", "xgboost", "linear")

    def defaults(self, estimator: str) -> dict[str, Any]:
        params = dict(_DEFAULTS[estimator])
        if estimator == "linear":
            params.pop("alpha" if self.task != Task.REGRESSION else "C")
        if self.task == Task.REGRESSION:
            params.pop("balance")
        return {f"{estimator}.{k}": v for k, v in params.items()}

    def suggest(self, trial: Any) -> tuple[str, dict[str, Any]]:
        est = trial.suggest_categorical("estimator", list(self.estimators))
        p: dict[str, Any] = {}
        s = trial
        if est == "lightgbm":
            p["learning_rate"] = s.suggest_float("lightgbm.learning_rate", 0.02, 0.3, log=True)
            p["num_leaves"] = s.suggest_int("lightgbm.num_leaves", 4, 128, log=True)
            p["min_data_in_leaf"] = s.suggest_int("lightgbm.min_data_in_leaf", 2, 100, log=True)
            p["bagging_fraction"] = s.suggest_float("lightgbm.bagging_fraction", 0.5, 1.0)
            p["feature_fraction"] = s.suggest_float("lightgbm.feature_fraction", 0.3, 1.0)
            p["lambda_l2"] = s.suggest_float("lightgbm.lambda_l2", 1e-8, 30.0, log=True)
            p["lambda_l1"] = s.suggest_float("lightgbm.lambda_l1", 1e-8, 10.0, log=True)
            # Histogram resolution matters where failures follow sharp physical limits: on
            # AI4I, 1,023 bins against the default 255 took CV log-loss from 0.058 to 0.052 and
            # test PR-AUC from 0.888 to 0.903 (LightGBM defaults otherwise, 5 splits).
            p["max_bin"] = s.suggest_int("lightgbm.max_bin", 15, 1023, log=True)
        elif est == "xgboost":
            p["learning_rate"] = s.suggest_float("xgboost.learning_rate", 0.02, 0.3, log=True)
            p["max_depth"] = s.suggest_int("xgboost.max_depth", 2, 10)
            p["min_child_weight"] = s.suggest_float("xgboost.min_child_weight", 0.1, 30.0,
                                                    log=True)
            p["subsample"] = s.suggest_float("xgboost.subsample", 0.5, 1.0)
            p["colsample_bytree"] = s.suggest_float("xgboost.colsample_bytree", 0.3, 1.0)
            p["reg_lambda"] = s.suggest_float("xgboost.reg_lambda", 1e-3, 30.0, log=True)
            p["reg_alpha"] = s.suggest_float("xgboost.reg_alpha", 1e-8, 10.0, log=True)
            p["max_bin"] = s.suggest_int("xgboost.max_bin", 16, 1024, log=True)
        elif self.task == Task.REGRESSION:
            p["alpha"] = s.suggest_float("linear.alpha", 1e-3, 1e3, log=True)
        else:
            p["C"] = s.suggest_float("linear.C", 1e-3, 100.0, log=True)
        if self.task != Task.REGRESSION:
            p["balance"] = s.suggest_categorical(f"{est}.balance", list(_BALANCE_POWER))
        return est, p

    def weights(self, params: Mapping[str, Any], y: np.ndarray) -> np.ndarray | None:
        power = _BALANCE_POWER.get(str(params.get("balance", "none")), 0.0)
        if power == 0.0 or self.class_counts is None:
            return None
        counts = np.bincount(y, minlength=self.n_classes).astype(float)
        per_class = (y.size / (self.n_classes * np.maximum(counts, 1.0))) ** power
        return np.asarray(per_class[y])

    def fit(self, estimator: str, params: Mapping[str, Any], X: np.ndarray, y: np.ndarray, *,
            valid: tuple[np.ndarray, np.ndarray] | None = None, rounds: int | None = None,
            deadline: float | None = None, num_threads: int | None = None) -> Fitted:
        lib = {k: v for k, v in params.items() if k != "balance"}
        weight = self.weights(params, y)
        if estimator == "linear":
            return fit_linear(X, y, self.task, self.kinds, self.n_codes, lib, weight=weight,
                              seed=self.seed)
        lr = float(params.get("learning_rate", 0.1))
        patience = int(min(100, max(30, 5.0 / lr)))
        # Enough rounds for early stopping to find the best at this learning rate, no more.
        n_rounds = rounds or int(min(_MAX_ROUNDS, max(200, 50.0 / lr)))
        # One thread is faster than two below about 50,000 rows (thread start-up per round).
        threads = num_threads or (1 if X.shape[0] < 50_000 else self.threads)
        if estimator == "lightgbm":
            return fit_lightgbm(X, y, self.task, self.n_classes, lib, rounds=n_rounds,
                                weight=weight, categorical=self.categorical, valid=valid,
                                patience=patience, seed=self.seed, num_threads=threads,
                                deadline=deadline)
        return fit_xgboost(X, y, self.task, self.n_classes, lib, rounds=n_rounds, weight=weight,
                           valid=valid, patience=patience, seed=self.seed,
                           num_threads=threads, deadline=deadline)

    @staticmethod
    def refit_rounds(trial: Trial) -> int | None:
        # The refit sees all training rows, a quarter more than a fold's model: a few more
        # rounds than the fold-chosen number (10 %) is the usual compromise.
        return None if trial.rounds is None else max(1, round(trial.rounds * 1.1))

    def refit(self, trial: Trial, X: np.ndarray, y: np.ndarray) -> Model:
        fitted = self.fit(trial.estimator, trial.params, X, y, rounds=self.refit_rounds(trial))
        return fitted.model


@dataclass
class _Result:
    trial: Trial
    oof_margin: np.ndarray
    oof_mask: np.ndarray
    fit_s: float                        # mean seconds per fold fit
    # Fold models and the rounds to use: the fallback when no time is left to refit.
    fold_models: list[tuple[Model, int | None]] = field(default_factory=list)
    refit_s: float = 0.0                # expected seconds to refit on all training rows

    def __post_init__(self) -> None:
        if not self.refit_s:
            self.refit_s = self.fit_s * _REFIT_FACTOR


class _Runner:
    """Runs the trials of the search under the budget."""

    def __init__(self, space: _Space, X: np.ndarray, y: np.ndarray,
                 folds: Sequence[tuple[np.ndarray, np.ndarray]], metric: str,
                 clock: _Clock) -> None:
        self.space, self.X, self.y, self.folds = space, X, y, folds
        self.metric, self.clock = metric, clock
        self.results: list[_Result] = []

    def finish_reserve(self) -> float:
        """Seconds to keep for refit, calibration, evaluation: measured, with a margin."""
        complete = [r for r in self.results if r.trial.state.startswith("complete")]
        if not complete:
            return 0.5
        best = sorted(complete, key=lambda r: -_finite(r.trial.score))[:ENSEMBLE_SIZE]
        refit = sum(r.refit_s for r in best)
        # Evaluation: bootstrap (~0.2 s), holdout predictions and contributions per member.
        evaluate = 0.5 + 0.3 * len(best)
        return refit + evaluate + 0.02 * self.clock.budget_s

    def run(self, max_trials: int | None) -> list[_Result]:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            sampler = optuna.samplers.TPESampler(seed=self.space.seed, multivariate=True,
                                                 group=True, n_startup_trials=8)
        study = optuna.create_study(direction="maximize", sampler=sampler)
        for est in self.space.estimators:
            study.enqueue_trial({"estimator": est, **self.space.defaults(est)})
        best = -math.inf
        while max_trials is None or len(self.results) < max_trials:
            now = time.monotonic()
            stop_at = self.clock.end - self.finish_reserve()
            if self.results and now >= stop_at:
                break
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
                ot = study.ask()
                estimator, params = self.space.suggest(ot)
            # The first trial must give a model whatever the budget: it keeps the folds it
            # finished (and a fold cut short keeps the rounds it had) instead of being dropped.
            first = not self.results
            result = self.evaluate(len(self.results) + 1, estimator, params,
                                   self.clock.end - 0.25 if first else stop_at,
                                   keep_partial=first)
            self.results.append(result)
            self._forget_fold_models()
            if result.trial.state.startswith("complete") and math.isfinite(result.trial.score):
                study.tell(ot, result.trial.score)
                best = max(best, result.trial.score)
                self.clock.trial(result.trial.number, estimator, result.trial.score, best)
            else:
                study.tell(ot, state=optuna.trial.TrialState.PRUNED)
        return self.results

    def _forget_fold_models(self) -> None:
        """Keep fold models only for the trials that could still be chosen (memory)."""
        with_models = [r for r in self.results if r.fold_models]
        ranked = sorted(with_models, key=lambda r: -_finite(r.trial.score))
        cheap = sorted(_near_best(with_models), key=lambda r: _cost(r.trial))
        keep = {id(r) for r in ranked[:ENSEMBLE_SIZE] + cheap[:ENSEMBLE_SIZE]}
        for r in with_models:
            if id(r) not in keep:
                r.fold_models = []

    def evaluate(self, number: int, estimator: str, params: dict[str, Any],
                 deadline: float | None, *, keep_partial: bool = False) -> _Result:
        started = time.monotonic()
        n = self.y.shape[0]
        k = self.space.n_classes if self.space.task == Task.MULTICLASS else 0
        oof = np.full((n, k) if k else n, np.nan)
        mask = np.zeros(n, dtype=bool)

        def one(item: tuple[int, tuple[np.ndarray, np.ndarray]]) -> tuple[Fitted, float] | None:
            i, (tr, va) = item
            if deadline is not None and time.monotonic() > deadline and not (
                    keep_partial and i == 0):
                return None
            t0 = time.monotonic()
            fitted = self.space.fit(estimator, params, self.X[tr], self.y[tr],
                                    valid=(self.X[va], self.y[va]), deadline=deadline,
                                    num_threads=1)
            return fitted, time.monotonic() - t0

        # Folds train side by side, one thread each (see planta.core.features.parallel_map).
        done = parallel_map(one, list(enumerate(self.folds)), self.space.threads)
        fit_times = [d[1] for d in done if d is not None]
        fit_s = float(np.mean(fit_times)) if fit_times else 0.0
        cut = any(d is None for d in done) or (deadline is not None and
                                               time.monotonic() > deadline)
        if cut and not keep_partial:
            trial = Trial(number, estimator, dict(params), (), math.nan, None,
                          time.monotonic() - started, "stopped")
            return _Result(trial, oof, mask, fit_s)
        kept = [(d[0], fold) for d, fold in zip(done, self.folds, strict=True) if d is not None]
        rounds: int | None = None
        if estimator != "linear":
            rounds = _best_round([f.curve for f, _ in kept])
        models: list[tuple[Model, int | None]] = []
        for fitted, (_, va) in kept:
            use = None if rounds is None else min(rounds, fitted.rounds)
            model = fitted.model
            oof[va] = model.margin(self.X[va], rounds=use)
            mask[va] = True
            models.append((model, use))
        used = [fold for _, fold in kept]
        trained = float(np.mean([f.rounds for f, _ in kept])) if rounds else 0.0
        # Early stopping trains past the best round; the refit stops at it (x 1.1).
        share = min(1.0, 1.1 * rounds / trained) if rounds and trained else 1.0
        scores = _fold_scores(self.metric, self.y, oof, used, self.space.task)
        score = float(np.nanmean(scores)) if np.isfinite(scores).any() else math.nan
        trial = Trial(number, estimator, dict(params), tuple(float(s) for s in scores), score,
                      rounds, time.monotonic() - started,
                      "complete" if not cut else "complete (cut short by the budget)")
        return _Result(trial, oof, mask, fit_s, models, fit_s * share * _REFIT_FACTOR)


def _trimmed(model: Model, rounds: int) -> Model:
    """The first ``rounds`` boosting rounds of a model, as a model of its own."""
    if isinstance(model, LightGBMModel):
        import lightgbm as lgb
        if model.booster.current_iteration() <= rounds:
            return model
        text = model.booster.model_to_string(num_iteration=rounds)
        return LightGBMModel(lgb.Booster(model_str=text), model.n_classes, model.num_threads)
    if isinstance(model, XGBoostModel):
        if model.booster.num_boosted_rounds() <= rounds:
            return model
        return XGBoostModel(model.booster[:rounds], model.n_classes, model.num_threads)
    return model


def _best_round(curves: Sequence[np.ndarray | None]) -> int:
    """The round with the lowest validation loss averaged over folds (early-stopped folds
    are padded with their last value)."""
    usable = [c for c in curves if c is not None and c.size]
    if not usable:
        return 100
    length = max(c.size for c in usable)
    padded = np.vstack([np.pad(c, (0, length - c.size), mode="edge") for c in usable])
    return int(np.argmin(padded.mean(axis=0))) + 1


@dataclass
class _Chosen:
    members: list[_Result]
    oof_margin: np.ndarray
    oof_mask: np.ndarray
    score: float
    fold_scores: tuple[float, ...]
    best_score: float               # the best single trial's CV score


def _choose(complete: Sequence[_Result], runner: _Runner, *, ensemble: bool = True) -> _Chosen:
    """The cheapest trial whose CV score is within one standard error of the best (Breiman's
    one-standard-error rule), or (``ensemble``) the average of the three cheapest such trials
    when that beats it by more than the fold-to-fold noise.

    On AI4I (5 splits, every trial refitted and scored on the benchmark's test rows) the rule
    kept test ROC-AUC / PR-AUC at 0.9786 / 0.8949 against 0.9780 / 0.8933 for the best CV score,
    with models 2 to 14 times smaller (trees x leaves); a 3-model ensemble of 650 kB LightGBM
    texts had taken 26 s to score a million rows on 2 cores.
    """
    if not complete:
        raise InputError("No model could be trained within the budget.",
                         hint="Give training more time (budget_s).")
    ranked = sorted(complete, key=lambda r: (-_finite(r.trial.score), r.trial.number))
    best = ranked[0]
    near = _near_best(complete)
    pick = min(near, key=lambda r: (_cost(r.trial), -_finite(r.trial.score), r.trial.number))
    chosen = _Chosen([pick], pick.oof_margin, pick.oof_mask, pick.trial.score,
                     pick.trial.cv_scores, best.trial.score)
    # Ensemble candidates: the cheapest near-best trials, so an ensemble costs a few small
    # models, never a few of the largest.
    top = sorted(near, key=lambda r: (_cost(r.trial), r.trial.number))[:ENSEMBLE_SIZE]
    if not ensemble or len(top) < 2 or len(pick.trial.cv_scores) != len(runner.folds):
        return chosen
    # Time left for refitting more members?
    need = sum(r.refit_s for r in top) + 0.3
    if time.monotonic() + need > runner.clock.end:
        return chosen
    margin = np.mean([r.oof_margin for r in top], axis=0)
    fold_scores = tuple(_fold_scores(runner.metric, runner.y, margin, runner.folds,
                                     runner.space.task))
    gains = np.asarray(fold_scores) - np.asarray(pick.trial.cv_scores)
    noise = float(gains.std(ddof=1) / math.sqrt(gains.size)) if gains.size > 1 else math.inf
    if np.isfinite(gains).all() and gains.mean() > noise:
        return _Chosen(list(top), margin, pick.oof_mask, float(np.mean(fold_scores)),
                       fold_scores, best.trial.score)
    return chosen


def _near_best(results: Sequence[_Result]) -> list[_Result]:
    """Trials whose CV score is within one standard error (of the best's folds) of the best."""
    scored = [r for r in results if math.isfinite(r.trial.score)]
    if not scored:
        return list(results[:1])
    best = max(scored, key=lambda r: (r.trial.score, -r.trial.number))
    folds = np.asarray(best.trial.cv_scores, dtype=float)
    se = float(folds.std(ddof=1) / math.sqrt(folds.size)) if folds.size > 1 else 0.0
    return [r for r in scored if r.trial.score >= best.trial.score - se]


def _cost(trial: Trial) -> float:
    """Prediction cost of a trial's model: trees x leaves per tree (a linear model: 1)."""
    p = trial.params
    if trial.estimator == "lightgbm":
        return float((trial.rounds or 1) * int(p.get("num_leaves", 31)))
    if trial.estimator == "xgboost":
        return float((trial.rounds or 1) * 2 ** int(p.get("max_depth", 6)))
    return 1.0


def _final_members(chosen: _Chosen, space: _Space, X: np.ndarray, y: np.ndarray,
                   clock: _Clock, notes: list[str], *,
                   fold_average: bool = True) -> list[tuple[float, Model]]:
    """Refit the chosen trials on all training rows; when the budget has no room left for
    that (and ``fold_average``), average the trials' fold models instead (they exist
    already)."""
    need = sum(m.refit_s for m in chosen.members) + 0.5 + 0.3 * len(chosen.members)
    if fold_average and time.monotonic() + need > clock.end and all(
            m.fold_models for m in chosen.members):
        notes.append("The budget left no time to refit on all training rows; the model "
                     "averages the cross-validation models instead.")
        out: list[tuple[float, Model]] = []
        for member in chosen.members:
            k = len(member.fold_models)
            for model, rounds in member.fold_models:
                out.append((1.0 / k, _trimmed(model, rounds) if rounds else model))
        return out
    # Members refit side by side, one thread each, as the folds did.
    models = parallel_map(lambda m: space.refit(m.trial, X, y), chosen.members, space.threads)
    return [(1.0, model) for model in models]


def _finite(value: float) -> float:
    return value if math.isfinite(value) else -math.inf


# ---------------------------------------------------------------------------------------------
# Calibration, importances, out-of-fold metrics
# ---------------------------------------------------------------------------------------------

def _calibrate(task: Task, margin: np.ndarray, y: np.ndarray) -> Calibrator:
    if task == Task.BINARY:
        return fit_platt(margin, y)
    if task == Task.MULTICLASS:
        return fit_temperature(margin, y)
    return Calibrator("identity", {})


def _importances(predictor: Predictor, values: Mapping[str, np.ndarray], seed: int,
                 seconds: float) -> dict[str, float]:
    """Share of the mean |contribution| per feature, on up to 500 training rows.

    TreeSHAP costs from 0.1 to several ms per row (300 trees of 31 leaves: about 1 ms), so the
    number of rows is sized to ``seconds`` from a first timing on 25 rows.
    """
    n = len(next(iter(values.values())))
    rng = np.random.default_rng(seed)
    order = rng.permutation(n)

    def contributions(rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
        return predictor.contributions({k: v[rows] for k, v in values.items()})

    first = np.sort(order[:25])
    started = time.monotonic()
    contrib, names = contributions(first)
    per_row = (time.monotonic() - started) / max(len(first), 1)
    more = int(min(500, n) - len(first))
    if per_row > 0:
        more = int(min(more, max(0.0, seconds) / per_row))
    if more > 0:
        extra, _ = contributions(np.sort(order[len(first):len(first) + more]))
        contrib = np.concatenate([contrib, extra], axis=0)
    mag = np.abs(contrib)
    if mag.ndim == 3:
        mag = mag.sum(axis=1)
    per_feature = mag[:, :-1].mean(axis=0)
    total = float(per_feature.sum()) or 1.0
    pairs = sorted(zip(names[:-1], per_feature / total, strict=True), key=lambda t: -t[1])
    return {name: float(v) for name, v in pairs}


def _oof_metrics(task: Task, y: np.ndarray, margin: np.ndarray, calibrator: Calibrator,
                 threshold: float | None, days: float | None,
                 usecase: UseCase) -> dict[str, float]:
    if y.size == 0:
        return {}
    if task == Task.REGRESSION:
        predicted = margin
    else:
        predicted = calibrator.probability(margin)
    out = compute_metrics(task, y, predicted, threshold=threshold or 0.5, days=days,
                          cost=usecase.objective.cost)
    return {k: round(v, 6) for k, v in out.items() if math.isfinite(v)}


def _dump(doc: Mapping[str, Any]) -> bytes:
    def default(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, np.ndarray):
            return value.tolist()
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")

    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return None
        if isinstance(value, dict):
            return {k: clean(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(v) for v in value]
        return value

    return json.dumps(clean(doc), indent=1, default=default, allow_nan=False).encode("utf-8")


__all__ = ["TrainEvent", "TrainOutcome", "Trial", "train"]
