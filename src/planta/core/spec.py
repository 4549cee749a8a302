"""Use cases and their business objectives.

A use case is what a plant wants predicted (target, task) and what "good enough" means in its
own words (the objective). The objective is written as text in planta.toml and parsed here:

    recall>=0.80 and precision>=0.50     first clause is the goal; the others are constraints
                                         the decision threshold may not trade away
    false_alarms_per_day<=3              needs a time column or rows_per_day
    cost missed=5000 false_alarm=200     the threshold minimises expected cost (plant currency)
    rmse<=12                             regression: rmse, mae, mape, r2
    f1_macro>=0.7                        multiclass: f1_macro, accuracy, balanced_accuracy

The gate compares the lower bound of the holdout interval (upper bound for "<=" metrics) with
each target, unless ``gate_on = "point"``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from planta.core.drift import MonitorSettings
from planta.errors import ConfigError, keyed, phrase


class Task(str, Enum):
    """What kind of answer the model gives."""

    BINARY = "binary"
    MULTICLASS = "multiclass"
    REGRESSION = "regression"


# metric -> (tasks it applies to, True when higher is better)
METRICS: dict[str, tuple[frozenset[Task], bool]] = {
    "recall": (frozenset({Task.BINARY}), True),
    "precision": (frozenset({Task.BINARY}), True),
    "f1": (frozenset({Task.BINARY}), True),
    "accuracy": (frozenset({Task.BINARY, Task.MULTICLASS}), True),
    "balanced_accuracy": (frozenset({Task.BINARY, Task.MULTICLASS}), True),
    "roc_auc": (frozenset({Task.BINARY}), True),
    "pr_auc": (frozenset({Task.BINARY}), True),
    "specificity": (frozenset({Task.BINARY}), True),
    "false_alarm_rate": (frozenset({Task.BINARY}), False),
    "false_alarms_per_day": (frozenset({Task.BINARY}), False),
    "f1_macro": (frozenset({Task.MULTICLASS}), True),
    "rmse": (frozenset({Task.REGRESSION}), False),
    "mae": (frozenset({Task.REGRESSION}), False),
    "mape": (frozenset({Task.REGRESSION}), False),
    "r2": (frozenset({Task.REGRESSION}), True),
}
# Metrics that depend on the decision threshold (the others are threshold-free or regression).
THRESHOLD_METRICS = frozenset({"recall", "precision", "f1", "accuracy", "balanced_accuracy",
                               "specificity", "false_alarm_rate", "false_alarms_per_day"})

_CLAUSE = re.compile(r"^\s*(?P<metric>[a-z_0-9]+)\s*(?P<op>>=|<=)\s*(?P<target>[-+0-9.eE]+)\s*$")
_COST = re.compile(r"^\s*cost\s+(?P<body>.+)$")


@dataclass(frozen=True)
class Clause:
    """One ``metric op target`` condition."""

    metric: str
    op: str
    target: float

    @property
    def higher_is_better(self) -> bool:
        return self.op == ">="

    def met_by(self, value: float) -> bool:
        return value >= self.target if self.op == ">=" else value <= self.target

    def __str__(self) -> str:
        return f"{self.metric}{self.op}{self.target:g}"


@dataclass(frozen=True)
class Cost:
    """Expected-cost objective: what a missed failure and a false alarm cost the plant."""

    missed: float
    false_alarm: float


@dataclass(frozen=True)
class Objective:
    """A parsed business objective."""

    text: str
    clauses: tuple[Clause, ...] = ()
    cost: Cost | None = None
    gate_on: str = "lower_bound"

    @property
    def goal(self) -> Clause | None:
        """The first clause: what the threshold search maximises (or minimises)."""
        return self.clauses[0] if self.clauses else None

    @property
    def constraints(self) -> tuple[Clause, ...]:
        return self.clauses[1:]

    @property
    def metrics(self) -> tuple[str, ...]:
        return tuple(c.metric for c in self.clauses)

    def describe(self) -> str:
        """The objective in plain words."""
        if self.cost is not None:
            return (f"keep the expected cost low: a missed failure costs {self.cost.missed:g}, "
                    f"a false alarm {self.cost.false_alarm:g}")
        parts = []
        for c in self.clauses:
            parts.append(_PLAIN.get(c.metric, c.metric).format(
                pct=f"{c.target * 100:.0f} %", v=f"{c.target:g}", op="at least" if c.op == ">="
                else "at most"))
        return "; ".join(parts)


_PLAIN = {
    "recall": "catch {op} {pct} of the real cases",
    "precision": "{op} {pct} of alarms are real cases",
    "false_alarms_per_day": "{op} {v} false alarms a day",
    "false_alarm_rate": "{op} {pct} of normal cases raise a false alarm",
    "rmse": "typical error (RMSE) {op} {v}",
    "mae": "average error {op} {v}",
    "mape": "average relative error {op} {pct}",
    "r2": "explain {op} {pct} of the variation (R²)",
    "f1_macro": "balanced score over all classes (macro F1) {op} {v}",
    "accuracy": "right {op} {pct} of the time",
    "roc_auc": "ranking quality (ROC-AUC) {op} {v}",
    "pr_auc": "alarm quality (PR-AUC) {op} {v}",
}


def parse_objective(text: str, task: Task, *, gate_on: str = "lower_bound") -> Objective:
    """Parse an objective written in planta.toml or on the command line.

    >>> o = parse_objective("recall>=0.80 and precision>=0.50", Task.BINARY)
    >>> o.goal.metric, [str(c) for c in o.constraints]
    ('recall', ['precision>=0.5'])
    >>> parse_objective("cost missed=5000 false_alarm=200", Task.BINARY).cost
    Cost(missed=5000.0, false_alarm=200.0)
    """
    if gate_on not in ("lower_bound", "point"):
        raise keyed(ConfigError, "spec.gate_on", value=gate_on)
    text = (text or "").strip()
    if not text:
        default = {Task.BINARY: "pr_auc>=0.5", Task.MULTICLASS: "f1_macro>=0.5",
                   Task.REGRESSION: "r2>=0.5"}[task]
        return parse_objective(default, task, gate_on=gate_on)
    cost_match = _COST.match(text)
    if cost_match:
        if task != Task.BINARY:
            raise keyed(ConfigError, "spec.cost_binary")
        values: dict[str, float] = {}
        for part in cost_match.group("body").split():
            key, _, raw = part.partition("=")
            try:
                values[key.strip()] = float(raw)
            except ValueError:
                raise keyed(ConfigError, "spec.cost_part", text=text, part=part) from None
        if set(values) != {"missed", "false_alarm"}:
            raise keyed(ConfigError, "spec.cost_keys", text=text)
        if min(values.values()) < 0:
            raise keyed(ConfigError, "spec.cost_negative", text=text)
        return Objective(text=text, cost=Cost(values["missed"], values["false_alarm"]),
                         gate_on=gate_on)
    clauses = []
    for part in re.split(r"\s+and\s+|\s*,\s*|\s*&&\s*", text):
        m = _CLAUSE.match(part)
        if not m:
            raise keyed(ConfigError, "spec.unreadable", text=text, part=part)
        metric, op = m.group("metric"), m.group("op")
        if metric not in METRICS:
            raise keyed(ConfigError, "spec.unknown_metric", text=text, metric=metric,
                        known=", ".join(sorted(METRICS)))
        tasks, higher = METRICS[metric]
        if task not in tasks:
            raise keyed(ConfigError, "spec.wrong_task", text=text, metric=metric,
                        task=phrase(f"spec.task.{task.value}"), known=_metrics_for(task))
        if (op == ">=") != higher:
            raise keyed(ConfigError, "spec.direction_higher" if higher else
                        "spec.direction_lower", text=text, metric=metric)
        clauses.append(Clause(metric, op, float(m.group("target"))))
    return Objective(text=text, clauses=tuple(clauses), gate_on=gate_on)


def _metrics_for(task: Task) -> str:
    return ", ".join(sorted(m for m, (tasks, _) in METRICS.items() if task in tasks))


RETRAIN_POLICIES = ("manual", "canary", "shadow")


@dataclass(frozen=True)
class UseCase:
    """What a plant wants predicted, and what good enough means.

    Columns are named by their canonical (snake_case) names or original headers.
    """

    name: str
    task: Task
    target: str
    objective: Objective
    entity: str | None = None
    time: str | None = None
    include: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    keep: tuple[str, ...] = ()
    rows_per_day: float | None = None
    max_latency_ms: float | None = None
    max_bundle_mb: float | None = None
    positive_label: str | None = None
    # Prediction log retention for this use case; None falls back to the project's
    # [serve] log_retention_days. Rows count predictions (records), not requests.
    retention_days: int | None = None
    retention_rows: int | None = None
    # What `planta retrain` does with a candidate that passed the gate and beats production
    # with confidence: "manual" leaves it for approval; "canary" / "shadow" move it there.
    retrain_policy: str = "manual"
    # Allow an average of several models when cross-validation says it helps (off by default:
    # on AI4I's five benchmark splits it matched one model's holdout quality at twice the
    # prediction cost; bench/RESULTS.md §2).
    ensemble: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def monitor(self) -> MonitorSettings:
        """Drift thresholds from ``[usecases.<name>.monitor]`` (kept as written in ``extra``,
        so saving planta.toml does not spell out every default)."""
        return MonitorSettings.from_dict(self.extra.get("monitor"), self.name)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"task": self.task.value, "target": self.target,
                               "objective": self.objective.text}
        if self.objective.gate_on != "lower_bound":
            out["gate_on"] = self.objective.gate_on
        for key in ("entity", "time", "rows_per_day", "max_latency_ms", "max_bundle_mb",
                    "positive_label", "retention_days", "retention_rows"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        for key in ("include", "exclude", "keep"):
            value = getattr(self, key)
            if value:
                out[key] = list(value)
        if self.retrain_policy != "manual":
            out["retrain_policy"] = self.retrain_policy
        if self.ensemble:
            out["ensemble"] = True
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, name: str, data: Mapping[str, Any]) -> UseCase:
        if not re.fullmatch(r"[a-z][a-z0-9_-]{0,62}", name):
            raise keyed(ConfigError, "spec.bad_name", name=name)
        try:
            task = Task(data.get("task", "binary"))
        except ValueError:
            raise keyed(ConfigError, "spec.bad_task", name=name,
                        task=repr(data.get("task"))) from None
        if not data.get("target"):
            raise keyed(ConfigError, "spec.no_target", name=name)
        known = {"task", "target", "objective", "gate_on", "entity", "time", "include", "exclude",
                 "keep", "rows_per_day", "max_latency_ms", "max_bundle_mb", "positive_label",
                 "retention_days", "retention_rows", "retrain_policy", "ensemble"}
        policy = str(data.get("retrain_policy", "manual"))
        if policy not in RETRAIN_POLICIES:
            raise keyed(ConfigError, "spec.retrain_policy", name=name, policy=policy,
                        known=", ".join(RETRAIN_POLICIES))
        MonitorSettings.from_dict(data.get("monitor"), name)  # a bad [monitor] table fails here
        objective = parse_objective(str(data.get("objective", "")), task,
                                    gate_on=str(data.get("gate_on", "lower_bound")))
        if any(c.metric == "false_alarms_per_day" for c in objective.clauses) and not (
                data.get("time") or data.get("rows_per_day")):
            raise keyed(ConfigError, "spec.per_day", name=name)
        return cls(
            name=name, task=task, target=str(data["target"]), objective=objective,
            entity=data.get("entity"), time=data.get("time"),
            include=tuple(data.get("include", ())), exclude=tuple(data.get("exclude", ())),
            keep=tuple(data.get("keep", ())),
            rows_per_day=_opt_float(data.get("rows_per_day")),
            max_latency_ms=_opt_float(data.get("max_latency_ms")),
            max_bundle_mb=_opt_float(data.get("max_bundle_mb")),
            positive_label=(str(data["positive_label"]) if data.get("positive_label") is not None
                            else None),
            retention_days=_opt_count(name, "retention_days", data.get("retention_days")),
            retention_rows=_opt_count(name, "retention_rows", data.get("retention_rows")),
            retrain_policy=policy,
            ensemble=_opt_bool(name, "ensemble", data.get("ensemble")),
            extra={k: v for k, v in data.items() if k not in known},
        )


def _opt_bool(name: str, key: str, value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise keyed(ConfigError, "spec.bad_bool", name=name, key=key, value=repr(value))
    return value


def _opt_float(value: Any) -> float | None:
    return None if value is None else float(value)


def _opt_count(name: str, key: str, value: Any) -> int | None:
    """A positive whole number from planta.toml, or None.

    >>> _opt_count("failure", "retention_days", 90), _opt_count("failure", "retention_rows", None)
    (90, None)
    """
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise keyed(ConfigError, "spec.not_count", name=name, key=key, value=repr(value))
    return value


__all__ = ["METRICS", "RETRAIN_POLICIES", "THRESHOLD_METRICS", "Clause", "Cost", "Objective",
           "Task", "UseCase", "parse_objective"]
