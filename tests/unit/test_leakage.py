"""The leak and id guard on the real AI4I, SECOM and gas turbine files, and on small frames."""

from __future__ import annotations

import time
from collections import Counter
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planta.core.leakage import ExclusionReport, find_exclusions
from planta.core.spec import Task
from planta.errors import ContractError
from planta.services.tables import read_table

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
AI4I = DATA / "ai4i2020" / "ai4i2020.csv"
SECOM = DATA / "secom"
GAS_2015 = DATA / "gas_turbine_co_nox" / "gt_2015.csv"


@pytest.fixture(scope="module")
def ai4i() -> pd.DataFrame:
    if not AI4I.is_file():
        pytest.skip(f"AI4I 2020 data not found at {AI4I}")
    return read_table(AI4I).frame


@pytest.fixture(scope="module")
def secom() -> pd.DataFrame:
    if not (SECOM / "secom.data.gz").is_file():
        pytest.skip(f"SECOM data not found in {SECOM}")
    sensors = pd.read_csv(SECOM / "secom.data.gz", sep=" ", header=None)
    sensors.columns = [f"Sensor {i + 1}" for i in sensors.columns]
    labels = pd.read_csv(SECOM / "secom_labels.data", sep=" ", header=None,
                         names=["Pass/Fail", "Timestamp"])
    return pd.concat([sensors, labels], axis=1)


def reasons(report: ExclusionReport) -> dict[str, str]:
    return {e.column: e.reason for e in report.exclusions}


def test_ai4i_without_a_hint(ai4i: pd.DataFrame) -> None:
    report = find_exclusions(ai4i, "Machine failure", Task.BINARY)
    assert reasons(report) == {"UDI": "id_like", "Product ID": "id_unique", "TWF": "leak_flag",
                               "HDF": "leak_flag", "PWF": "leak_flag", "OSF": "leak_flag"}
    assert not any(e.kept for e in report.exclusions)
    evidence = {e.column: e.evidence for e in report.exclusions}
    assert evidence["TWF"] == ("TWF is set in 46 rows and all 46 are failures: it records the "
                               "failure after the fact.")
    assert evidence["UDI"].startswith("UDI rises with every row, from 1 to 10,000")
    notes = " ".join(report.notes)
    assert ("RNF is set in 19 rows, only 1 of them a failure (5.3 %): it does not give the "
            "failure away, so it stays a feature.") in report.notes
    assert "reproduce 'Machine failure' in 9,991 of 10,000 rows (99.9 %)" in notes
    assert report.excluded == ["UDI", "Product ID", "TWF", "HDF", "PWF", "OSF"]


def test_keep_is_honoured(ai4i: pd.DataFrame) -> None:
    report = find_exclusions(ai4i, "machine_failure", "binary", keep=("twf", "Product ID"))
    kept = {e.column for e in report.exclusions if e.kept}
    assert kept == {"TWF", "Product ID"}
    assert "TWF" not in report.excluded
    assert any(n.startswith("TWF stays a feature because the use case keeps it")
               for n in report.notes)


def test_secom_is_fast_and_finds_the_constants(secom: pd.DataFrame) -> None:
    start = time.perf_counter()
    report = find_exclusions(secom, "Pass/Fail", Task.BINARY, time="Timestamp")
    elapsed = time.perf_counter() - start
    assert Counter(e.reason for e in report.exclusions) == {"constant": 116}
    assert elapsed < 2.0, f"the guard took {elapsed:.2f} s on SECOM"
    first = report.exclusions[0]
    assert "has the same value" in first.evidence and "carries no information" in first.evidence


@pytest.mark.skipif(not GAS_2015.is_file(), reason="gas turbine data not found")
def test_regression_copy_of_the_target() -> None:
    frame = read_table(GAS_2015).frame
    assert find_exclusions(frame, "NOX", Task.REGRESSION).exclusions == []
    frame["NOX [ppm]"] = frame["NOX"] * 0.487 + 0.1
    report = find_exclusions(frame, "NOX", Task.REGRESSION)
    assert reasons(report) == {"NOX [ppm]": "leak_copy"}
    assert "follows 'NOX' almost exactly" in report.exclusions[0].evidence


def flags_frame(n: int = 1000) -> pd.DataFrame:
    rng = np.random.default_rng(3)
    y = np.zeros(n, dtype=int)
    y[:45] = 1
    frame = pd.DataFrame({"Speed": rng.normal(1500, 100, n), "y": y})
    for k, name in enumerate(["Mode A", "Mode B", "Mode C"]):
        flag = np.zeros(n, dtype=int)
        flag[15 * k: 15 * (k + 1)] = 1
        frame[name] = flag
    return frame


def test_union_of_flags_that_are_each_too_rare() -> None:
    report = find_exclusions(flags_frame(), "y", Task.BINARY)
    # 15 rows each, all failures-to-be: too few for one flag alone, together they are the target.
    assert reasons(report) == {"Mode A": "leak_union", "Mode B": "leak_union",
                               "Mode C": "leak_union"}
    assert "reproduce 'y' in 1,000 of 1,000 rows (100.0 %)" in report.exclusions[0].evidence


def test_a_rare_flag_alone_is_kept_with_a_note() -> None:
    frame = flags_frame()[["Speed", "y", "Mode A"]]
    report = find_exclusions(frame, "y", Task.BINARY)
    assert report.exclusions == []
    assert any(n.startswith("Mode A is set in 15 rows, all of them rows with 'y' = 1: too few "
                            "rows to be sure") for n in report.notes)


def test_category_values_that_spell_the_outcome() -> None:
    n = 400
    kind = np.array(["No Failure"] * n, dtype=object)
    kind[:40] = "Power Failure"
    kind[40:80] = "Heat Dissipation Failure"
    frame = pd.DataFrame({"Failure Type": kind, "Target": (np.arange(n) < 80).astype(int),
                          "Torque": np.linspace(3, 70, n)[::-1]})
    report = find_exclusions(frame, "Target", Task.BINARY)
    assert reasons(report) == {"Failure Type": "leak_flag"}
    assert report.exclusions[0].evidence.startswith(
        "Failure Type is 'Heat Dissipation Failure' or 'Power Failure' in 80 rows and all 80 "
        "are rows with 'Target' = 1: it records the outcome after the fact.")


def test_ids_and_constants() -> None:
    n = 50
    rng = np.random.default_rng(5)
    frame = pd.DataFrame({
        "Row": np.arange(n), "Serial": rng.permutation(np.arange(1000, 1000 + n)),
        "Lot": [f"L{i}" for i in range(n)], "Reading": rng.normal(0, 1, n),
        "Site": ["Plant 1"] * n, "Empty": [np.nan] * n, "y": np.arange(n) % 2})
    report = find_exclusions(frame, "y", Task.BINARY)
    assert reasons(report) == {"Row": "id_like", "Serial": "id_unique", "Lot": "id_unique",
                               "Site": "constant", "Empty": "constant"}
    evidence = {e.column: e.evidence for e in report.exclusions}
    assert evidence["Site"] == ("Site has the same value ('Plant 1') in every row: it carries no "
                                "information.")
    assert evidence["Empty"] == "Empty is empty in every row: there is nothing to learn from it."
    # Unique readings (floats) are not ids.
    assert "Reading" not in reasons(report)


def test_entity_and_time_are_not_examined() -> None:
    n = 30
    frame = pd.DataFrame({"Machine": [f"M{i}" for i in range(n)], "Stamp": np.arange(n),
                          "x": np.linspace(0, 1, n), "y": np.arange(n) % 2})
    report = find_exclusions(frame, "y", Task.BINARY, entity="Machine", time="Stamp")
    assert report.exclusions == []


def test_unknown_names() -> None:
    frame = pd.DataFrame({"x": [1, 2], "y": [0, 1]})
    with pytest.raises(ContractError, match=r"target 'Machine failure' is not a column"):
        find_exclusions(frame, "Machine failure", Task.BINARY)
    with pytest.raises(ContractError, match=r"keep list names 'z'"):
        find_exclusions(frame, "y", Task.BINARY, keep=("z",))


def test_multiclass_gets_a_note() -> None:
    frame = pd.DataFrame({"x": np.linspace(0, 1, 30), "y": np.arange(30) % 3})
    report = find_exclusions(frame, "y", Task.MULTICLASS)
    assert any("yes/no targets only" in n for n in report.notes)
    assert report.to_dict()["exclusions"] == []
