"""planta.services.train end to end on real plant-like tables, each in a few seconds."""

from __future__ import annotations

import gzip
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score

from planta.core.models import Predictor
from planta.core.spec import Task, UseCase, parse_objective
from planta.errors import InputError
from planta.services.train import TrainEvent, TrainOutcome, train
from planta_edge.contract import Contract, Field

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
OVERHEAD_S = 2.5          # what a run may take beyond its budget on a busy 2-core machine


def _need(folder: str) -> Path:
    path = DATA / folder
    if not path.exists():
        pytest.skip(f"shared data folder {path} is missing")
    return path


def _usecase(task: Task, target: str, objective: str = "", **kw: object) -> UseCase:
    return UseCase("test", task, target, parse_objective(objective, task), **kw)  # type: ignore[arg-type]


def _values(frame: pd.DataFrame, rows: np.ndarray, outcome: TrainOutcome) -> dict[str, np.ndarray]:
    enc = json.loads(outcome.members["features.json"])
    return {c["name"]: frame[c["name"]].to_numpy()[rows] for c in enc["columns"]}


# --- AI4I: binary, imbalanced, with units -----------------------------------------------------

@pytest.fixture(scope="module")
def ai4i() -> tuple[pd.DataFrame, Contract]:
    raw = pd.read_csv(_need("ai4i2020") / "ai4i2020.csv")
    frame = pd.DataFrame({
        "type": raw["Type"].astype(str).astype(object),
        "air_temperature_k": raw["Air temperature [K]"].astype(float),
        "process_temperature_k": raw["Process temperature [K]"].astype(float),
        "rotational_speed_rpm": raw["Rotational speed [rpm]"].astype(float),
        "torque_nm": raw["Torque [Nm]"].astype(float),
        "tool_wear_min": raw["Tool wear [min]"].astype(float),
        "rnf": raw["RNF"].astype(float),
        "machine_failure": raw["Machine failure"].astype(int),
    })
    contract = Contract(fields=(
        Field("type", "category", label="Type", categories=("L", "M", "H")),
        Field("air_temperature_k", "number", label="Air temperature [K]", unit="K"),
        Field("process_temperature_k", "number", label="Process temperature [K]", unit="K"),
        Field("rotational_speed_rpm", "number", label="Rotational speed [rpm]", unit="rpm"),
        Field("torque_nm", "number", label="Torque [Nm]", unit="Nm"),
        Field("tool_wear_min", "number", label="Tool wear [min]", unit="min"),
        Field("rnf", "boolean", label="RNF"),
        Field("machine_failure", "integer", label="Machine failure", role="target"),
    ), target="machine_failure")
    return frame, contract


def test_ai4i_binary(ai4i: tuple[pd.DataFrame, Contract]) -> None:
    frame, contract = ai4i
    events: list[TrainEvent] = []
    usecase = _usecase(Task.BINARY, "machine_failure", "recall>=0.6 and precision>=0.5")
    budget = 8.0
    started = time.monotonic()
    out = train(usecase, frame, contract, budget_s=budget, seed=0, progress=events.append)
    assert time.monotonic() - started < budget + OVERHEAD_S
    # What the bundle needs, as bytes, no pickle.
    assert {"features.json", "model/model.json", "metrics.json", "importance.json"} <= set(
        out.members)
    assert all(isinstance(v, bytes) for v in out.members.values())
    assert out.classes == ("0", "1") and out.positive_class == "1"
    assert out.n_train + out.n_holdout == len(frame) and len(out.holdout_index) == out.n_holdout
    # The holdout metrics are the shipped model's, recomputed here from its bytes.
    predictor = Predictor.from_members(out.members)
    pred = predictor.predict(_values(frame, out.holdout_index, out))
    y = frame["machine_failure"].to_numpy()[out.holdout_index]
    assert pred.probability is not None
    assert out.metrics["roc_auc"].value == pytest.approx(roc_auc_score(y, pred.probability))
    assert out.metrics["pr_auc"].value == pytest.approx(
        average_precision_score(y, pred.probability))
    assert out.metrics["roc_auc"].value > 0.93 and out.metrics["pr_auc"].value > 0.6
    for est in out.metrics.values():
        assert est.lower <= est.value + 1e-9 and est.value <= est.upper + 1e-9
    assert out.threshold is not None and 0.0 < out.threshold < 1.0
    assert set(pred.label.tolist()) <= {"0", "1"}
    # Gate: one plain-words reason per clause.
    assert len(out.gate.reasons) == 2 and "recall" in out.gate.reasons[0]
    # Trials kept, with the defaults first; progress reported per trial.
    assert out.trials[0].estimator == "lightgbm" and out.trials[0].params["num_leaves"] == 31
    assert all(t.duration_s > 0 for t in out.trials)
    trial_events = [e for e in events if e.kind == "trial"]
    assert trial_events and trial_events[0].n == 1 and trial_events[-1].best is not None
    assert any(e.stage == "done" for e in events)
    # Importances by feature name, shares adding up to one.
    assert set(out.importances) == set(predictor.feature_names)
    assert sum(out.importances.values()) == pytest.approx(1.0)
    metrics_doc = json.loads(out.members["metrics.json"])
    assert metrics_doc["threshold"] == out.threshold and metrics_doc["gate"]["clauses"]


def test_tiny_budget_still_gives_a_model(ai4i: tuple[pd.DataFrame, Contract]) -> None:
    frame, contract = ai4i
    started = time.monotonic()
    out = train(_usecase(Task.BINARY, "machine_failure"), frame, contract, budget_s=3.0)
    assert time.monotonic() - started < 3.0 + OVERHEAD_S
    assert out.trials and out.metrics["roc_auc"].value > 0.85


def test_one_model_unless_the_use_case_allows_an_ensemble(
        ai4i: tuple[pd.DataFrame, Contract]) -> None:
    frame, contract = ai4i
    out = train(_usecase(Task.BINARY, "machine_failure"), frame, contract, budget_s=3.0)
    assert len(out.params["members"]) == 1 and out.cv["ensemble"] is False
    assert not out.estimator.startswith("ensemble(")


def test_a_latency_limit_gives_one_refitted_model(ai4i: tuple[pd.DataFrame, Contract]) -> None:
    # A tiny budget often leaves no time to refit, and planta then averages the fold models
    # (5 or more models per prediction) or keeps an ensemble; with max_latency_ms it refits
    # the one chosen model whatever the budget.
    frame, contract = ai4i
    lean = train(_usecase(Task.BINARY, "machine_failure", max_latency_ms=5.0), frame, contract,
                 budget_s=1.5)
    shipped = Predictor.from_members(lean.members)
    assert len(lean.params["members"]) == 1 and len(shipped.members) == 1
    assert any("limits prediction time" in n for n in lean.notes)
    assert not any("averages the cross-validation models" in n for n in lean.notes)
    assert shipped.predict(_values(frame, np.arange(5), lean)).probability is not None

def test_cost_objective(ai4i: tuple[pd.DataFrame, Contract]) -> None:
    frame, contract = ai4i
    sample = frame.sample(4000, random_state=1).reset_index(drop=True)
    out = train(_usecase(Task.BINARY, "machine_failure", "cost missed=5000 false_alarm=200"),
                sample, contract, budget_s=3.0, seed=1)
    assert out.threshold_choice is not None and out.threshold_choice.savings is not None
    assert out.threshold_choice.savings > 0
    assert {"savings", "expected_cost", "cost_no_model"} <= set(out.metrics)
    assert out.gate.clauses[0].metric == "savings"
    assert out.gate.passed == (out.metrics["savings"].lower > 0)


# --- labels ------------------------------------------------------------------------------------

def _synthetic(n: int = 1200, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"pressure_bar": rng.normal(5, 1, n), "flow_l_min": rng.normal(20, 4, n),
                          "line": rng.choice(np.array(["A", "B", "C"], dtype=object), n)})
    score = frame.pressure_bar * frame.flow_l_min / 100 + (frame.line == "C") * 0.3
    frame["event"] = (score + rng.normal(0, 0.15, n) > np.quantile(score, 0.85)).astype(int)
    return frame


def _synthetic_contract(target_kind: str = "integer") -> Contract:
    return Contract(fields=(
        Field("pressure_bar", "number", unit="bar"), Field("flow_l_min", "number", unit="l/min"),
        Field("line", "category", categories=("A", "B", "C")),
        Field("event", target_kind, role="target")), target="event")


@pytest.mark.parametrize(("mapping", "positive", "expected_classes"), [
    ({0: -1, 1: 1}, None, ("-1", "1")),
    ({0: False, 1: True}, None, ("False", "True")),
    ({0: "ok", 1: "fail"}, None, ("ok", "fail")),
    ({0: "no", 1: "yes"}, None, ("no", "yes")),
    ({0: "good", 1: "scrap"}, "scrap", ("good", "scrap")),
])
def test_binary_labels_stay_strings(mapping: dict[int, object], positive: str | None,
                                    expected_classes: tuple[str, str]) -> None:
    frame = _synthetic()
    frame["event"] = frame["event"].map(mapping)
    if isinstance(next(iter(mapping.values())), str):
        frame["event"] = frame["event"].astype(object)
    usecase = _usecase(Task.BINARY, "event", positive_label=positive)
    out = train(usecase, frame, _synthetic_contract("category"), budget_s=2.0, max_trials=2)
    assert out.classes == expected_classes
    assert out.positive_class == expected_classes[1]
    pred = out.predictor().predict(_values(frame, np.arange(50), out))
    assert set(pred.label.tolist()) <= set(expected_classes)
    assert out.metrics["roc_auc"].value > 0.8


def test_deterministic_given_the_seed() -> None:
    frame = _synthetic(800, seed=3)
    usecase = _usecase(Task.BINARY, "event")
    a = train(usecase, frame, _synthetic_contract(), budget_s=30.0, seed=5, max_trials=4)
    b = train(usecase, frame, _synthetic_contract(), budget_s=30.0, seed=5, max_trials=4)
    for name in a.members:
        if name.startswith("model/") or name == "features.json":
            assert a.members[name] == b.members[name], name
    assert a.threshold == b.threshold
    assert [t.params for t in a.trials] == [t.params for t in b.trials]
    assert a.metrics == b.metrics


# --- entity: grouped validation ----------------------------------------------------------------

def test_grouped_by_entity() -> None:
    rng = np.random.default_rng(4)
    machines = np.array([f"M{i:02d}" for i in range(30)], dtype=object)
    machine = rng.choice(machines, 1500)
    offset = {m: rng.normal(0, 1) for m in machines}
    vibration = rng.normal(3, 1, 1500) + np.array([offset[m] for m in machine])
    temperature = rng.normal(60, 5, 1500)
    failure = ((vibration - np.array([offset[m] for m in machine])) * 0.8
               + (temperature - 60) / 10 + rng.normal(0, 0.6, 1500) > 1.6).astype(int)
    frame = pd.DataFrame({"machine_id": machine, "vibration_mm_s": vibration,
                          "temperature_c": temperature, "failure": failure})
    contract = Contract(fields=(
        Field("machine_id", "text", role="entity"),
        Field("vibration_mm_s", "number", unit="mm/s"),
        Field("temperature_c", "number", unit="°C"),
        Field("failure", "integer", role="target")), target="failure")
    out = train(_usecase(Task.BINARY, "failure", entity="machine_id"), frame, contract,
                budget_s=3.0)
    held = set(frame["machine_id"].to_numpy()[out.holdout_index])
    trained = set(frame["machine_id"]) - held
    assert held and trained and not held & set(
        frame["machine_id"].to_numpy()[np.setdiff1d(np.arange(len(frame)), out.holdout_index)])
    assert "entit" in out.cv["scheme"] and "entities" in out.cv["holdout"]
    assert "machine_id" not in json.loads(out.members["features.json"])["feature_names"]


# --- gas turbine NOx: regression, time-ordered --------------------------------------------------

def test_gas_turbine_nox_regression_in_time_order() -> None:
    folder = _need("gas_turbine_co_nox")
    parts = []
    for year in range(2011, 2016):
        part = pd.read_csv(folder / f"gt_{year}.csv")
        part.columns = [c.strip().lower() for c in part.columns]
        # Hourly readings, in file order within the year.
        part["time"] = pd.Timestamp(f"{year}-01-01", tz="UTC") + pd.to_timedelta(
            np.arange(len(part)), unit="h")
        parts.append(part.iloc[::8])
    frame = pd.concat(parts, ignore_index=True).sample(frac=1.0, random_state=0)
    frame = frame.reset_index(drop=True)
    units = {"at": "°C", "ap": "mbar", "ah": "%", "afdp": "mbar", "gtep": "mbar", "tit": "°C",
             "tat": "°C", "tey": "MWh", "cdp": "mbar"}
    contract = Contract(fields=tuple(Field(n, "number", unit=u) for n, u in units.items()) + (
        Field("time", "datetime", role="time"), Field("nox", "number", role="target")),
        target="nox")
    usecase = _usecase(Task.REGRESSION, "nox", "rmse<=12", time="time")
    started = time.monotonic()
    out = train(usecase, frame.drop(columns=["co"]), contract, budget_s=6.0)
    assert time.monotonic() - started < 6.0 + OVERHEAD_S
    # The holdout is the latest fifth of the rows.
    cut = frame["time"].sort_values().iloc[-out.n_holdout]
    assert (frame["time"].iloc[out.holdout_index] >= cut).all()
    assert "time" in out.cv["scheme"]
    # NOx drifts from year to year: LightGBM defaults trained on the first 80 % in time score
    # R2 0.01 on the last 20 % (RMSE 10.7); better than the mean is the honest bar here.
    assert out.metrics["r2"].value > 0.0 and out.metrics["rmse"].value < 11.0
    assert out.threshold is None and out.classes == ()
    pred = out.predictor().predict(_values(frame, out.holdout_index, out))
    assert pred.score is not None and pred.probability is None
    np.testing.assert_allclose(pred.label, pred.score)


# --- wine: multiclass ----------------------------------------------------------------------------

def test_wine_multiclass() -> None:
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True)
    frame = wine.frame.rename(columns=lambda c: c.replace("/", "_"))
    features = [c for c in frame.columns if c != "target"]
    contract = Contract(fields=tuple(Field(c, "number") for c in features) + (
        Field("target", "integer", role="target"),), target="target")
    out = train(_usecase(Task.MULTICLASS, "target", "f1_macro>=0.8"), frame, contract,
                budget_s=4.0)
    assert out.classes == ("0", "1", "2")
    assert out.metrics["f1_macro"].value > 0.85
    pred = out.predictor().predict(_values(frame, out.holdout_index, out))
    assert pred.probability is not None and pred.probability.shape == (out.n_holdout, 3)
    np.testing.assert_allclose(pred.probability.sum(axis=1), 1.0)
    contrib, names = out.predictor().contributions(_values(frame, out.holdout_index[:5], out))
    assert contrib.shape == (5, 3, len(names))


# --- SECOM: 590 columns, missing values ----------------------------------------------------------

def test_secom_wide_table_finishes_within_budget() -> None:
    folder = _need("secom")
    with gzip.open(folder / "secom.data.gz", "rt") as fh:
        X = np.loadtxt(fh)
    labels = [line.split()[0] for line in
              (folder / "secom_labels.data").read_text().splitlines() if line.strip()]
    names = [f"f{i:03d}" for i in range(X.shape[1])]
    frame = pd.DataFrame(X, columns=names)
    frame["pass_fail"] = pd.Series(labels, dtype=object)
    # Every fail, and a sample of passes: fast, and still 590 columns with their gaps.
    fails = frame[frame["pass_fail"] == "1"]
    passes = frame[frame["pass_fail"] == "-1"].sample(500, random_state=0)
    sample = pd.concat([fails, passes]).sample(frac=1.0, random_state=0).reset_index(drop=True)
    contract = Contract(fields=tuple(Field(n, "number", nullable=True) for n in names) + (
        Field("pass_fail", "category", role="target"),), target="pass_fail")
    budget = 5.0
    started = time.monotonic()
    out = train(_usecase(Task.BINARY, "pass_fail"), sample, contract, budget_s=budget)
    assert time.monotonic() - started < budget + OVERHEAD_S
    assert out.positive_class == "1" and out.classes == ("-1", "1")
    assert len(out.importances) >= 590
    assert np.isfinite(out.metrics["roc_auc"].value)


# --- refusals ------------------------------------------------------------------------------------

def test_three_values_are_not_binary() -> None:
    frame = _synthetic()
    frame["event"] = np.resize(np.array(["a", "b", "c"], dtype=object), len(frame))
    with pytest.raises(InputError, match="exactly two"):
        train(_usecase(Task.BINARY, "event"), frame, _synthetic_contract("category"),
              budget_s=1.0)


def test_too_few_failures_are_refused() -> None:
    frame = _synthetic()
    frame["event"] = 0
    frame.loc[:2, "event"] = 1
    with pytest.raises(InputError, match="class"):
        train(_usecase(Task.BINARY, "event"), frame, _synthetic_contract(), budget_s=1.0)


def test_missing_target_column_is_refused() -> None:
    with pytest.raises(InputError, match="target"):
        train(_usecase(Task.BINARY, "event"), _synthetic().drop(columns=["event"]),
              _synthetic_contract(), budget_s=1.0)
