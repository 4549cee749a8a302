"""Use cases and objectives: parsing, plain words, and clear refusals."""

from __future__ import annotations

import pytest

from planta.core.spec import Task, UseCase, parse_objective
from planta.errors import ConfigError


def test_goal_and_constraints() -> None:
    o = parse_objective("recall>=0.80 and precision>=0.50", Task.BINARY)
    assert o.goal is not None and (o.goal.metric, o.goal.target) == ("recall", 0.80)
    assert [str(c) for c in o.constraints] == ["precision>=0.5"]
    assert o.describe() == "catch at least 80 % of the real cases; at least 50 % of alarms are " \
                           "real cases"


@pytest.mark.parametrize("text,task,metric", [
    ("rmse<=12", Task.REGRESSION, "rmse"),
    ("f1_macro>=0.7", Task.MULTICLASS, "f1_macro"),
    ("false_alarms_per_day<=3", Task.BINARY, "false_alarms_per_day"),
    ("pr_auc>=0.8, roc_auc>=0.9", Task.BINARY, "pr_auc"),
])
def test_other_metrics(text: str, task: Task, metric: str) -> None:
    assert parse_objective(text, task).goal.metric == metric


def test_cost_objective() -> None:
    o = parse_objective("cost missed=5000 false_alarm=200", Task.BINARY)
    assert o.cost is not None and (o.cost.missed, o.cost.false_alarm) == (5000, 200)
    assert "5000" in o.describe()


def test_default_objective_per_task() -> None:
    assert parse_objective("", Task.REGRESSION).goal.metric == "r2"


@pytest.mark.parametrize("text,task,match", [
    ("recall>=", Task.BINARY, "cannot read"),
    ("speed>=1", Task.BINARY, "unknown metric"),
    ("rmse<=3", Task.BINARY, "does not apply"),
    ("rmse>=3", Task.REGRESSION, "better when lower"),
    ("cost missed=1", Task.BINARY, "exactly missed= and false_alarm="),
    ("cost missed=1 false_alarm=x", Task.BINARY, "not key=number"),
    ("cost missed=1 false_alarm=2", Task.REGRESSION, "binary"),
])
def test_bad_objectives_say_what_to_write(text: str, task: Task, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        parse_objective(text, task)


def test_usecase_round_trip_and_checks() -> None:
    uc = UseCase.from_dict("failure", {"task": "binary", "target": "Machine failure",
                                       "objective": "recall>=0.8", "keep": ["RNF"]})
    assert UseCase.from_dict("failure", uc.to_dict()) == uc
    with pytest.raises(ConfigError, match="no target"):
        UseCase.from_dict("failure", {"task": "binary"})
    with pytest.raises(ConfigError, match="task"):
        UseCase.from_dict("failure", {"task": "ranking", "target": "y"})
    with pytest.raises(ConfigError, match="lower-case"):
        UseCase.from_dict("Bad Name", {"target": "y"})
    with pytest.raises(ConfigError, match="time column or rows_per_day"):
        UseCase.from_dict("f", {"target": "y", "objective": "false_alarms_per_day<=3"})


def test_ensembles_are_allowed_only_when_the_use_case_says_so() -> None:
    base = {"task": "binary", "target": "Machine failure"}
    assert UseCase.from_dict("failure", base).ensemble is False
    allowed = UseCase.from_dict("failure", base | {"ensemble": True})
    assert allowed.ensemble is True and allowed.to_dict()["ensemble"] is True
    assert "ensemble" not in UseCase.from_dict("failure", base).to_dict()
    assert UseCase.from_dict("failure", allowed.to_dict()) == allowed
    with pytest.raises(ConfigError, match="ensemble must be true or false"):
        UseCase.from_dict("failure", base | {"ensemble": "yes"})
