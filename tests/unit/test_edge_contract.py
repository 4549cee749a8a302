"""The contract rules as the edge runs them: stdlib + numpy, one implementation."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import numpy as np
import pytest

from planta.errors import ContractError
from planta_edge.contract import (
    Contract,
    Field,
    parse_unit,
    physical_bounds,
    slugify,
    text_values,
    validate_columns,
    validate_records,
)


@pytest.fixture()
def contract() -> Contract:
    return Contract((
        Field("air_temperature_k", "number", label="Air temperature [K]", minimum=295.3,
              maximum=304.5, physical_min=0.0, unit="K"),
        Field("rotational_speed_rpm", "integer", label="Rotational speed [rpm]",
              minimum=1168.0, maximum=2886.0, physical_min=0.0, unit="rpm"),
        Field("type", "category", label="Type", categories=("H", "L", "M")),
        Field("ok", "boolean", label="OK", nullable=True),
        Field("humidity", "number", label="Humidity [%]", physical_min=0.0, physical_max=100.0,
              unit="%", nullable=True),
        Field("failed", "boolean", label="Failed", role="target"),
    ), target="failed")


def good(n: int = 3) -> dict[str, Any]:
    return {"Air temperature [K]": [300.0] * n, "Rotational speed [rpm]": [1500] * n,
            "Type": ["L"] * n, "OK": [1] * n, "Humidity [%]": [50.0] * n}


def rules(result: object) -> list[tuple[int | None, str | None, str]]:
    return [(v.row, v.field, v.rule) for v in result.violations]  # type: ignore[attr-defined]


@pytest.mark.parametrize("header,slug,unit,bounds", [
    ("Torque [Nm]", "torque_nm", "Nm", (None, None)),
    ("Air temperature [K]", "air_temperature_k", "K", (0.0, None)),
    ("Humedad (%)", "humedad", "%", (0.0, 100.0)),
    ("2nd stage [bar]", "c_2nd_stage_bar", "bar", (0.0, None)),
    ("  AFDP ", "afdp", None, (None, None)),
])
def test_names_and_units(header: str, slug: str, unit: str | None,
                         bounds: tuple[float | None, float | None]) -> None:
    assert slugify(header) == slug
    assert parse_unit(header) == unit
    assert physical_bounds(unit) == bounds


def test_clean_input_passes(contract: Contract) -> None:
    result = validate_columns(contract, good())
    assert result.ok.all() and result.violations == []
    assert result.values["type"].tolist() == ["L"] * 3
    assert result.values["rotational_speed_rpm"].dtype == np.float64


@pytest.mark.parametrize("header,value,rule", [
    ("Air temperature [K]", "warm", "type"),
    ("Air temperature [K]", None, "null"),
    ("Air temperature [K]", float("inf"), "not_finite"),
    ("Air temperature [K]", -3.0, "below_physical"),
    ("Air temperature [K]", 250.0, "below_min"),
    ("Air temperature [K]", 320.0, "above_max"),
    ("Humidity [%]", 120.0, "above_physical"),
    ("Rotational speed [rpm]", 1500.5, "not_integer"),
    ("Type", "XL", "unknown_category"),
    ("OK", "maybe", "type"),
    ("OK", 2, "type"),
])
def test_each_rule(contract: Contract, header: str, value: object, rule: str) -> None:
    columns = good()
    columns[header] = [columns[header][0], value, columns[header][0]]
    result = validate_columns(contract, columns)
    name = contract.resolve(header)
    assert rules(result) == [(1, name, rule)]
    assert result.ok.tolist() == [True, False, True]
    assert result.reasons[1].startswith(f"{rule}: Row 2, column {header!r}")


def test_tolerance_widens_the_range(contract: Contract) -> None:
    air = contract.field("air_temperature_k")
    span = 304.5 - 295.3
    assert air.lower_bound == pytest.approx(295.3 - 0.1 * span)
    columns = good()
    columns["Air temperature [K]"] = [295.3 - 0.09 * span, 304.5 + 0.09 * span, 300.0]
    assert validate_columns(contract, columns).ok.all()


def test_missing_and_extra_fields(contract: Contract) -> None:
    columns = good(2)
    del columns["Type"]
    columns["Operator"] = ["Ana", "Ben"]
    result = validate_columns(contract, columns, extra_policy="reject")
    assert sorted({v.rule for v in result.violations}) == ["extra_field", "missing_field"]
    assert not result.ok.any()


def test_range_policies_and_row_offset(contract: Contract) -> None:
    columns = good()
    columns["Air temperature [K]"] = [300.0, 400.0, 300.0]
    flagged = validate_columns(contract, columns, range_policy="flag", row_offset=1000)
    assert flagged.ok.all() and flagged.flagged.tolist() == [False, True, False]
    assert flagged.violations[0].row == 1001
    assert flagged.violations[0].message.startswith("Row 1002, column 'Air temperature [K]'")
    clipped = validate_columns(contract, columns, range_policy="clip")
    assert clipped.values["air_temperature_k"][1] == pytest.approx(
        contract.field("air_temperature_k").upper_bound)
    with pytest.raises(ContractError, match=r"Range policy 'loose'"):
        validate_columns(contract, columns, range_policy="loose")


def test_text_numbers_and_decimal_comma(contract: Contract) -> None:
    columns = good()
    columns["Air temperature [K]"] = np.array(["300,5", " 301.5 ", "300"], dtype=object)
    result = validate_columns(contract, columns)
    assert result.values["air_temperature_k"].tolist() == [300.5, 301.5, 300.0]


def test_boolean_numbers_inside_object_columns(contract: Contract) -> None:
    columns = good()
    columns["OK"] = np.array([1.0, np.int64(0), True], dtype=object)
    result = validate_columns(contract, columns)
    assert result.ok.all() and result.values["ok"].tolist() == [1.0, 0.0, 1.0]


def test_datetimes() -> None:
    c = Contract((Field("t", "datetime", label="Time", datetime_format="%d/%m/%Y %H:%M:%S"),
                  Field("iso", "datetime", nullable=True)))
    result = validate_columns(c, {
        "Time": ["19/07/2008 11:55:00", "31/02/2008 11:55:00", "19/07/2008"],
        "iso": ["2008-07-19 11:55", "2008-07-19T11:55:00+02:00", None]})
    assert rules(result) == [(1, "t", "type"), (2, "t", "type")]
    assert result.values["t"][0] == np.datetime64("2008-07-19T11:55:00")
    assert result.values["iso"][1] == np.datetime64("2008-07-19T09:55:00")
    assert np.isnat(result.values["iso"][2])
    stamps = np.array(["2024-01-01T00:00:00", "2024-01-02T00:00:00"], dtype="datetime64[s]")
    assert validate_columns(c, {"Time": stamps, "iso": stamps}).ok.all()


def test_records(contract: Contract) -> None:
    record = {"Air temperature [K]": 300.0, "Rotational speed [rpm]": 1500, "Type": "L"}
    result = validate_records(contract, [record, {k: v for k, v in record.items()
                                                  if k != "Type"}])
    assert rules(result) == [(1, "type", "missing_field")]
    with pytest.raises(ContractError, match=r"empty"):
        validate_records(contract, [])
    with pytest.raises(ContractError, match=r"Record 0 is not an object"):
        validate_records(contract, [[1, 2]])  # type: ignore[list-item]


def test_field_checks_and_round_trip() -> None:
    with pytest.raises(ContractError, match=r"minimum 5 is above maximum 3"):
        Field("x", "number", minimum=5.0, maximum=3.0)
    with pytest.raises(ContractError, match=r"tolerance"):
        Field("x", "number", tolerance=-0.1)
    with pytest.raises(ContractError, match=r"did you mean 'maximum'"):
        Field.from_dict({"name": "x", "kind": "number", "maximun": 3})
    with pytest.raises(ContractError, match=r"key 'kind' is missing"):
        Field.from_dict({"name": "x"})
    with pytest.raises(ContractError, match=r"names these fields twice"):
        Contract((Field("x", "number"), Field("x", "integer")))
    field = Field("t", "datetime", label="Time", datetime_format="%d.%m.%Y", nullable=True)
    assert Field.from_dict(field.to_dict()) == field


def test_text_values() -> None:
    assert text_values([1.0, 2.5, "L", None, float("nan"), " ", np.int64(3)]).tolist() == [
        "1", "2.5", "L", None, None, None, "3"]


def test_edge_imports_no_pandas() -> None:
    code = ("import sys, planta_edge.contract; "
            "print(sorted(m for m in ('pandas', 'pyarrow', 'sklearn', 'scipy') "
            "if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True).stdout.strip()
    assert out == "[]"
