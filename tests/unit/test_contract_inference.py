"""Inferring a contract from a table, and the editable TOML file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planta.core.contract import (
    canonical_names,
    contract_from_text,
    contract_to_text,
    infer_contract,
)
from planta.core.leakage import Exclusion, find_exclusions
from planta.core.spec import Task, UseCase, parse_objective
from planta.errors import ContractError
from planta.services.tables import read_table
from planta_edge.contract import Contract, Field

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
AI4I = DATA / "ai4i2020" / "ai4i2020.csv"
SECOM = DATA / "secom"
GAS_2015 = DATA / "gas_turbine_co_nox" / "gt_2015.csv"
needs_ai4i = pytest.mark.skipif(not AI4I.is_file(), reason=f"AI4I 2020 data not found at {AI4I}")


def usecase(target: str, task: Task = Task.BINARY, **kw: object) -> UseCase:
    return UseCase("uc", task, target, parse_objective("", task), **kw)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def ai4i() -> pd.DataFrame:
    if not AI4I.is_file():
        pytest.skip(f"AI4I 2020 data not found at {AI4I}")
    return read_table(AI4I).frame


@pytest.fixture(scope="module")
def ai4i_contract(ai4i: pd.DataFrame) -> Contract:
    guard = find_exclusions(ai4i, "Machine failure", Task.BINARY)
    return infer_contract(ai4i, usecase("Machine failure"), exclusions=guard.exclusions)


def test_ai4i_fields(ai4i_contract: Contract) -> None:
    c = ai4i_contract
    assert c.target == "machine_failure"
    kinds = {f.name: (f.kind, f.role) for f in c.fields}
    assert kinds == {
        "udi": ("integer", "ignored"), "product_id": ("text", "ignored"),
        "type": ("category", "feature"), "air_temperature_k": ("number", "feature"),
        "process_temperature_k": ("number", "feature"),
        "rotational_speed_rpm": ("number", "feature"), "torque_nm": ("number", "feature"),
        "tool_wear_min": ("number", "feature"), "machine_failure": ("boolean", "target"),
        "twf": ("integer", "ignored"), "hdf": ("integer", "ignored"),
        "pwf": ("integer", "ignored"), "osf": ("integer", "ignored"),
        "rnf": ("integer", "feature"),
    }
    air = c.field("air_temperature_k")
    assert (air.label, air.unit, air.physical_min) == ("Air temperature [K]", "K", 0.0)
    assert (air.minimum, air.maximum, air.tolerance) == (295.3, 304.5, 0.1)
    assert c.field("tool_wear_min").minimum == 0.0 and c.field("tool_wear_min").maximum == 253.0
    assert c.field("type").categories == ("H", "L", "M")
    assert not any(f.nullable for f in c.fields)
    assert "TWF is set in 46 rows" in (c.field("twf").description or "")
    assert "id_like" in (c.field("udi").description or "")


def test_canonical_names_suffix_collisions() -> None:
    frame = pd.DataFrame({"Torque [Nm]": [1.0, 2.0], "torque (Nm)": [3.0, 4.0],
                          "y": [0, 1]})
    c = infer_contract(frame, usecase("y"))
    assert [(f.name, f.label) for f in c.fields[:2]] == [("torque_nm", "Torque [Nm]"),
                                                        ("torque_nm_2", "torque (Nm)")]
    assert canonical_names(["a", "A", "a!"]) == ["a", "a_2", "a_3"]


def test_kinds_from_text_and_numbers() -> None:
    frame = pd.DataFrame({
        "ok": ["yes", "no", "yes", "no"],
        "mostly numbers": np.array([1.5, 2.5, "broken", 3.5], dtype=object),
        "comment": ["first", "second", "third", "fourth"],
        "stamp": ["2024-01-01 06:00:00", "2024-01-01 07:00:00", "2024-01-01 08:00:00",
                  "2024-01-01 09:00:00"],
        "shift": [1, 2, 3, 1],
        "flag": [0, 1, 0, 1],
        "y": [0, 1, 1, 0],
    })
    c = infer_contract(frame, usecase("y"))
    kinds = {f.name: f.kind for f in c.fields}
    assert kinds == {"ok": "boolean", "mostly_numbers": "number", "comment": "text",
                     "stamp": "datetime", "shift": "integer", "flag": "integer",
                     "y": "boolean"}
    # Free text and a stray time stamp cannot be read by a model: set aside, with the reason.
    assert c.field("comment").role == "ignored"
    assert "free text" in (c.field("comment").description or "")
    assert c.field("stamp").role == "ignored"
    assert "time column" in (c.field("stamp").description or "")


def test_nullable_when_training_data_has_gaps() -> None:
    frame = pd.DataFrame({"a": [1.0, np.nan, 2.0], "b": ["x", "", "y"], "c": [1.0, 2.0, 3.0],
                          "y": [0, 1, 0]})
    c = infer_contract(frame, usecase("y"))
    assert (c.field("a").nullable, c.field("b").nullable, c.field("c").nullable) == (
        True, True, False)


def test_categories_are_values_never_codes() -> None:
    frame = pd.DataFrame({"Grade": [10, 2, 2, 10], "Line": ["B", "A", "B", "A"],
                          "Class": [3.0, 1.0, 2.0, 1.0]})
    c = infer_contract(frame, usecase("Class", Task.MULTICLASS))
    assert c.field("class").kind == "category"
    assert c.field("class").categories == ("1", "2", "3")
    assert c.field("line").categories == ("A", "B")


def test_physical_bound_dropped_when_the_data_breaks_it() -> None:
    frame = pd.DataFrame({"Position [m]": [-2.0, -1.0, 0.5, 3.0], "Speed [rpm]": [1, 2, 3, 4],
                          "y": [0, 1, 0, 1]})
    c = infer_contract(frame, usecase("y"))
    assert c.field("position_m").physical_min is None
    assert "physical bound" in (c.field("position_m").description or "")
    assert c.field("speed_rpm").physical_min == 0.0


def test_include_exclude_by_header_or_canonical_name() -> None:
    frame = pd.DataFrame({"Torque [Nm]": [1.0, 2.0], "Speed": [3.0, 4.0], "Noise": [5, 6],
                          "y": [0, 1]})
    c = infer_contract(frame, usecase("y", exclude=("torque_nm",)))
    assert c.field("torque_nm").role == "ignored"
    assert "exclude list" in (c.field("torque_nm").description or "")
    c = infer_contract(frame, usecase("y", include=("Speed",)))
    assert [f.name for f in c.features] == ["speed"]
    assert "include list" in (c.field("noise").description or "")
    with pytest.raises(ContractError, match=r"'Pressure' is not a column"):
        infer_contract(frame, usecase("y", exclude=("Pressure",)))


def test_exclusions_and_keep() -> None:
    frame = pd.DataFrame({"Serial": ["a", "b"], "Code": [1, 0], "y": [1, 0]})
    found = [Exclusion("Serial", "id_unique", "Serial names the row."),
             Exclusion("Code", "leak_flag", "Code is the answer.", kept=True)]
    c = infer_contract(frame, usecase("y"), exclusions=found)
    assert c.field("serial").role == "ignored"
    assert c.field("serial").description == ("left out by the leak and id guard (id_unique): "
                                             "Serial names the row.")
    assert c.field("code").role == "feature"


def test_entity_and_time_roles() -> None:
    frame = pd.DataFrame({"Machine": ["M1", "M2", "M1"],
                          "When": ["19/07/2008 11:55:00", "20/07/2008 12:00:00",
                                   "21/07/2008 13:10:00"],
                          "x": [1.0, 2.0, 3.0], "y": [0, 1, 0]})
    c = infer_contract(frame, usecase("y", entity="Machine", time="when"))
    assert c.field("machine").role == "entity"
    when = c.field("when")
    assert (when.role, when.kind, when.datetime_format) == ("time", "datetime",
                                                            "%d/%m/%Y %H:%M:%S")


def test_target_problems() -> None:
    frame = pd.DataFrame({"x": [1.0, 2.0, 3.0], "grade": ["a", "b", "c"]})
    with pytest.raises(ContractError, match=r"target 'Machine failure' is not a column"):
        infer_contract(frame, usecase("Machine failure"))
    with pytest.raises(ContractError, match=r"3 different values .*needs two"):
        infer_contract(frame, usecase("grade"))
    with pytest.raises(ContractError, match=r"not a column of numbers"):
        infer_contract(frame, usecase("grade", Task.REGRESSION))
    with pytest.raises(ContractError, match=r"no rows"):
        infer_contract(frame.iloc[:0], usecase("x", Task.REGRESSION))


@pytest.mark.skipif(not (SECOM / "secom.data.gz").is_file(), reason="SECOM data not found")
def test_secom_target_and_time() -> None:
    sensors = pd.read_csv(SECOM / "secom.data.gz", sep=" ", header=None)
    sensors.columns = [f"Sensor {i + 1}" for i in sensors.columns]
    labels = pd.read_csv(SECOM / "secom_labels.data", sep=" ", header=None,
                         names=["Pass/Fail", "Timestamp"])
    frame = pd.concat([sensors, labels], axis=1)
    c = infer_contract(frame, usecase("Pass/Fail", time="Timestamp"))
    assert c.field("pass_fail").kind == "category"
    assert c.field("pass_fail").categories == ("-1", "1")
    assert c.field("timestamp").datetime_format == "%d/%m/%Y %H:%M:%S"
    assert sum(f.nullable for f in c.fields) > 400


@pytest.mark.skipif(not GAS_2015.is_file(), reason="gas turbine data not found")
def test_gas_turbine_regression() -> None:
    frame = read_table(GAS_2015).frame
    c = infer_contract(frame, usecase("NOX", Task.REGRESSION))
    assert c.field("nox").kind == "number" and c.field("nox").role == "target"
    assert c.field("afdp").label == "AFDP "
    assert all(f.kind == "number" for f in c.fields)


# ---------------------------------------------------------------- the editable file


def test_text_round_trip(ai4i_contract: Contract) -> None:
    text = contract_to_text(ai4i_contract)
    assert text.startswith("# planta data contract")
    assert "#   tolerance" in text
    assert contract_from_text(text) == ai4i_contract
    # The JSON a bundle carries reads too.
    assert contract_from_text(json.dumps(ai4i_contract.to_dict())) == ai4i_contract


def edited(contract: Contract, old: str, new: str) -> str:
    text = contract_to_text(contract)
    assert old in text
    return text.replace(old, new, 1)


@pytest.fixture()
def small() -> Contract:
    return Contract((Field("torque_nm", "number", label="Torque [Nm]", minimum=3.8, maximum=76.6),
                     Field("type", "category", label="Type", categories=("H", "L", "M")),
                     Field("failed", "boolean", label="Failed", role="target")),
                    target="failed")


@pytest.mark.parametrize("old,new,words", [
    ("minimum = 3.8", "minimum = \"low\"", r"Field 'torque_nm': key 'minimum' is 'low'"),
    ("minimum = 3.8", "minmum = 3.8", r"unknown keys: 'minmum' \(did you mean 'minimum'\?\)"),
    ("minimum = 3.8", "minimum = 99.0", r"minimum 99 is above maximum 76.6"),
    ('kind = "number"', 'kind = "numbr"', r"kind 'numbr' is not one of"),
    ('target = "failed"', 'target = "broken"', r"key 'target' names 'broken'"),
    ("nullable = false", "nullable = \"no\"", r"key 'nullable'"),
    ("minimum = 3.8", "minimum = = 3.8", r"not valid TOML .*line"),
])
def test_bad_edits_name_the_field_and_key(small: Contract, old: str, new: str,
                                          words: str) -> None:
    with pytest.raises(ContractError, match=words) as info:
        contract_from_text(edited(small, old, new), source="contracts/failure.toml")
    assert str(info.value).startswith("contracts/failure.toml: ")


def test_category_needs_its_values(small: Contract) -> None:
    text = contract_to_text(small)
    start = text.index("categories = [")
    end = text.index("]", start) + 1
    with pytest.raises(ContractError, match=r"field 'type', key 'categories'"):
        contract_from_text(text[:start] + text[end:])
