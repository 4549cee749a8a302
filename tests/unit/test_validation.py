"""Whole-frame checks: accepted rows, quarantine, the quality report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planta.core.contract import infer_contract
from planta.core.leakage import find_exclusions
from planta.core.spec import Task, UseCase, parse_objective
from planta.core.validation import TARGET_MISSING, check_frame
from planta.errors import ContractError, InputError
from planta.services.tables import read_table
from planta_edge.contract import Contract, Field

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
AI4I = DATA / "ai4i2020" / "ai4i2020.csv"


def usecase(target: str, task: Task = Task.BINARY, **kw: object) -> UseCase:
    return UseCase("uc", task, target, parse_objective("", task), **kw)  # type: ignore[arg-type]


@pytest.fixture()
def contract() -> Contract:
    return Contract((
        Field("batch", "text", label="Batch", role="entity"),
        Field("torque_nm", "number", label="Torque [Nm]", minimum=3.8, maximum=76.6,
              physical_min=0.0, unit="Nm"),
        Field("air_temperature_k", "number", label="Air temperature [K]", minimum=295.3,
              maximum=304.5, physical_min=0.0, unit="K", nullable=True),
        Field("type", "category", label="Type", categories=("H", "L", "M")),
        Field("machine_failure", "boolean", label="Machine failure", role="target"),
    ), target="machine_failure")


def plant_frame(n: int = 40) -> pd.DataFrame:
    rng = np.random.default_rng(1)
    return pd.DataFrame({
        "Batch": [f"B{i:03d}" for i in range(n)],
        "Torque [Nm]": np.round(rng.uniform(10, 60, n), 1).astype(object),
        "Air temperature [K]": np.round(rng.uniform(296, 304, n), 1),
        "Type": rng.choice(["L", "M", "H"], n).astype(object),
        "Machine failure": np.r_[np.zeros(n - 5, int), np.ones(5, int)].astype(float),
    })


@pytest.fixture(scope="module")
def ai4i() -> pd.DataFrame:
    if not AI4I.is_file():
        pytest.skip(f"AI4I 2020 data not found at {AI4I}")
    return read_table(AI4I).frame


def test_ai4i_passes_whole(ai4i: pd.DataFrame) -> None:
    guard = find_exclusions(ai4i, "Machine failure", Task.BINARY)
    contract = infer_contract(ai4i, usecase("Machine failure"), exclusions=guard.exclusions)
    check = check_frame(contract, ai4i)
    assert len(check.accepted) == 10_000 and len(check.quarantine) == 0
    assert list(check.accepted.columns) == [
        "type", "air_temperature_k", "process_temperature_k", "rotational_speed_rpm",
        "torque_nm", "tool_wear_min", "rnf", "machine_failure"]
    assert check.accepted["type"].dtype == "category"
    assert check.accepted["torque_nm"].dtype == np.float64
    assert check.accepted["machine_failure"].dtype == np.int64
    report = check.report
    assert report["label_balance"] == {"0": {"count": 9661, "share": 0.9661},
                                       "1": {"count": 339, "share": 0.0339}}
    json.dumps(report, allow_nan=False)
    assert report["findings"][0] == "10,000 rows read: 10,000 accepted, 0 set aside."
    assert "'Machine failure' is 1 in 339 accepted rows (3.4 %)" in report["findings"][-1]


def test_text_in_a_numeric_column_names_the_row(contract: Contract) -> None:
    frame = plant_frame()
    frame.loc[2, "Torque [Nm]"] = "abc"
    check = check_frame(contract, frame)
    assert check.quarantine["_row"].tolist() == [3]
    assert check.quarantine["_reason"].iloc[0] == (
        "type: Row 3, column 'Torque [Nm]': 'abc' is not a number")
    assert check.quarantine["Torque [Nm]"].iloc[0] == "abc"
    assert check.report["rejected_by_rule"] == {"type": 1}
    assert any(line.startswith("1 row (2.5 %) were set aside because a value was not of the "
                               "column's kind") for line in check.report["findings"])


def test_every_row_is_accepted_or_quarantined(contract: Contract) -> None:
    frame = plant_frame(200)
    frame.loc[[3, 50], "Torque [Nm]"] = ["x", -4.0]
    frame.loc[7, "Type"] = "XL"
    frame.loc[9, "Air temperature [K]"] = np.inf
    frame.loc[11, "Machine failure"] = np.nan
    frame.loc[12, "Batch"] = None
    frame.loc[13, "Torque [Nm]"] = 500.0
    check = check_frame(contract, frame)
    assert len(check.accepted) + len(check.quarantine) == len(frame)
    assert sorted(check.quarantine["_row"]) == [4, 8, 10, 12, 13, 14, 51]
    seen = set(check.accepted["batch"]) | set(check.quarantine["Batch"].dropna())
    assert seen | {None} >= set(frame["Batch"].dropna())
    assert check.report["rows"] == 200
    assert check.report["accepted"] + check.report["rejected"] == 200
    assert sum(check.report["rejected_by_rule"].values()) == 7
    assert check.report["out_of_range"] == {"Torque [Nm]": {"below_physical": 1,
                                                            "above_max": 1}}
    assert check.report["new_categories"] == {"Type": {"XL": 1}}


def test_missing_target_column(contract: Contract) -> None:
    frame = plant_frame().drop(columns=["Machine failure"])
    with pytest.raises(ContractError, match=r"no target column 'Machine failure'"):
        check_frame(contract, frame)
    check = check_frame(contract, frame, require_target=False)
    assert "machine_failure" not in check.accepted
    assert len(check.accepted) == len(frame)


def test_empty_target_is_quarantined_with_its_reason(contract: Contract) -> None:
    frame = plant_frame()
    frame.loc[[0, 1], "Machine failure"] = np.nan
    check = check_frame(contract, frame)
    assert check.quarantine["_reason"].str.startswith(TARGET_MISSING).all()
    assert check.report["rejected_by_rule"] == {TARGET_MISSING: 2}
    assert any("the target was empty" in line for line in check.report["findings"])


def test_one_class_target(contract: Contract) -> None:
    frame = plant_frame()
    frame["Machine failure"] = 0
    with pytest.raises(InputError) as info:
        check_frame(contract, frame)
    assert str(info.value).startswith(
        "The target 'Machine failure' has only one value (0): there is nothing to learn.")


def test_all_rows_rejected(contract: Contract) -> None:
    frame = plant_frame()
    frame["Type"] = "XXL"
    with pytest.raises(ContractError) as info:
        check_frame(contract, frame)
    assert "All 40 rows break the contract" in str(info.value)
    assert "'XXL' is a category the model has never seen" in str(info.value)
    assert len(info.value.violations) == 40


def test_duplicates_are_kept_and_counted(contract: Contract) -> None:
    frame = plant_frame()
    frame = pd.concat([frame, frame.iloc[[0, 1]]], ignore_index=True)
    clash = frame.iloc[[2]].copy()
    clash["Machine failure"] = 1.0 - clash["Machine failure"]
    frame = pd.concat([frame, clash], ignore_index=True)
    check = check_frame(contract, frame)
    assert len(check.accepted) == len(frame)
    assert check.report["duplicates"] == {"rows": 2, "conflicting": 2, "kept": True}
    assert any("exact copies of an earlier row" in line for line in check.report["findings"])


def test_missing_values_are_counted(contract: Contract) -> None:
    frame = plant_frame()
    frame.loc[[1, 2, 3], "Air temperature [K]"] = np.nan
    check = check_frame(contract, frame)
    assert check.report["missing_by_column"] == {"Air temperature [K]": 3}
    assert len(check.accepted) == 40


def test_range_policies(contract: Contract) -> None:
    frame = plant_frame()
    frame.loc[0, "Torque [Nm]"] = 90.0  # above 76.6 + 10 % of the span
    flagged = check_frame(contract, frame, range_policy="flag")
    assert len(flagged.quarantine) == 0 and flagged.report["flagged"] == 1
    clipped = check_frame(contract, frame, range_policy="clip")
    assert clipped.accepted["torque_nm"].iloc[0] == pytest.approx(76.6 + 0.1 * (76.6 - 3.8))
    rejected = check_frame(contract, frame)
    assert rejected.quarantine["_reason"].iloc[0].startswith("above_max: Row 1")


def test_canonical_names_are_accepted(contract: Contract) -> None:
    frame = plant_frame().rename(columns={"Torque [Nm]": "torque_nm", "Type": "type"})
    assert len(check_frame(contract, frame).accepted) == 40


def test_time_column_becomes_datetime() -> None:
    frame = pd.DataFrame({"When": ["19/07/2008 11:55:00", "20/07/2008 12:00:00", "bad"],
                          "x": [1.0, 2.0, 3.0], "y": [0, 1, 1]})
    contract = infer_contract(frame.iloc[:2], usecase("y", time="When"))
    check = check_frame(contract, frame, range_policy="flag")
    assert str(check.accepted["when"].dtype).startswith("datetime64")
    assert check.accepted["when"].iloc[1] == pd.Timestamp("2008-07-20 12:00:00")
    assert check.quarantine["_reason"].iloc[0].startswith("type: Row 3, column 'When'")


def test_regression_target_may_leave_its_training_range() -> None:
    contract = Contract((Field("x", "number", minimum=0.0, maximum=1.0),
                         Field("nox", "number", label="NOX", role="target", minimum=25.0,
                               maximum=120.0, physical_min=0.0, unit="mg/m3")), target="nox")
    frame = pd.DataFrame({"x": [0.5, 0.6, 0.7], "NOX": [10.0, 200.0, -1.0]})
    check = check_frame(contract, frame)
    assert check.accepted["nox"].tolist() == [10.0, 200.0]
    assert check.quarantine["_reason"].iloc[0].startswith("below_physical")
    assert "runs from 10 to 200" in check.report["findings"][-1]
