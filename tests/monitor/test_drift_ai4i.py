"""Drift on AI4I 2020, with the reference built as ingest builds it (contract inference, leak
guard, whole-frame check, profile): injected shifts are flagged, and only they; unshifted
windows of 500 rows and of 200,000 rows raise no alarm.

The statistics work on counts, so 200 windows take a second or two.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from planta.core.contract import infer_contract
from planta.core.drift import MonitorSettings
from planta.core.drift_report import compare
from planta.core.drift_window import Reference, Window
from planta.core.leakage import find_exclusions
from planta.core.profile import profile_frame
from planta.core.spec import Task, UseCase, parse_objective
from planta.core.validation import check_frame
from planta.services.demo import demo_data
from planta.services.tables import read_table

SHIFTED = {"process_temperature_k", "torque_nm", "type"}


@pytest.fixture(scope="module")
def ai4i() -> dict[str, Any]:
    frame = read_table(demo_data()).frame
    uc = UseCase("failure", Task.BINARY, "Machine failure", parse_objective("", Task.BINARY))
    contract = infer_contract(frame, uc, exclusions=find_exclusions(
        frame, "Machine failure", Task.BINARY).exclusions)
    accepted = check_frame(contract, frame).accepted
    profile = profile_frame(accepted, contract)
    columns = {f.name: accepted[f.name].to_numpy() for f in contract.features}
    columns["type"] = columns["type"].astype(object)
    # Importances as a trained model reports them (rnf: the model ignores it).
    importance = {"torque_nm": 0.33, "tool_wear_min": 0.24, "air_temperature_k": 0.2,
                  "rotational_speed_rpm": 0.13, "process_temperature_k": 0.1, "type": 0.008,
                  "rnf": 0.0}
    return {"contract": contract, "profile": profile, "columns": columns,
            "reference": Reference.from_profile(profile, contract), "importance": importance,
            "rows": len(accepted)}


def _window(ai4i: dict[str, Any], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx].copy() for k, v in ai4i["columns"].items()}


def _shift(cols: dict[str, np.ndarray], rng: np.random.Generator) -> dict[str, np.ndarray]:
    n = len(cols["torque_nm"])
    half = rng.permutation(n)[: n // 2]
    cols["process_temperature_k"][half] += 1.5
    cols["torque_nm"] = cols["torque_nm"] * 1.2
    cols["type"][rng.permutation(n)[: n // 10]] = "X"   # a product type never made before
    return cols


def _report(ai4i: dict[str, Any], cols: dict[str, np.ndarray], chunk: int | None = None) -> Any:
    window = Window(ai4i["reference"])
    n = len(cols["torque_nm"])
    step = chunk or n
    for start in range(0, n, step):
        window.add({k: v[start:start + step] for k, v in cols.items()})
    return compare(ai4i["reference"], window, MonitorSettings(), ai4i["importance"])


@pytest.mark.parametrize("rows", [500, 2000, 20_000])
def test_injected_shift_flags_exactly_the_shifted_features(ai4i: dict[str, Any],
                                                           rows: int) -> None:
    rng = np.random.default_rng(rows)
    cols = _shift(_window(ai4i, rng.integers(0, ai4i["rows"], rows)), rng)
    report = _report(ai4i, cols, chunk=997)
    assert {f.name for f in report.drifted} == SHIFTED
    by_name = {f.name: f for f in report.features}
    assert by_name["type"].new_categories["X"] == rows // 10
    assert report.quality["new_categories"] == {"type": {"X": rows // 10}}
    # type drifted, but the model barely reads it: reported, no alert.
    assert by_name["type"].drifted and not by_name["type"].alerting
    assert by_name["torque_nm"].alerting and by_name["process_temperature_k"].alerting
    assert report.signals["drifted_important"] == 2
    assert report.signals["drift_share"] == pytest.approx(3 / 7)
    assert "check the sensor" in by_name["torque_nm"].says
    assert "barely uses it" in by_name["type"].says
    # Drifted and important first.
    assert [f.name for f in report.features[:2]] == ["torque_nm", "process_temperature_k"]


def test_windows_of_500_unshifted_rows_raise_no_alarm(ai4i: dict[str, Any]) -> None:
    rng = np.random.default_rng(2020)
    alarms = 0
    for _ in range(200):
        idx = rng.choice(ai4i["rows"], 500, replace=False)
        alarms += bool(_report(ai4i, _window(ai4i, idx)).drifted)
    assert alarms <= 10, f"{alarms} of 200 unshifted windows raised an alarm"


def test_windows_of_200000_resampled_rows_raise_no_alarm(ai4i: dict[str, Any]) -> None:
    rng = np.random.default_rng(7)
    for _ in range(5):
        idx = rng.integers(0, ai4i["rows"], 200_000)
        report = _report(ai4i, _window(ai4i, idx), chunk=50_000)
        assert not report.drifted, [f.to_dict() for f in report.drifted]
        # The p-values alone would not protect a window this big; the effect size does.
        assert all(f.test("psi").statistic < 0.01 for f in report.features  # type: ignore
                   if f.kind == "numeric")


def test_a_bundle_made_before_fine_bins_is_still_monitorable(ai4i: dict[str, Any]) -> None:
    old = {**ai4i["profile"], "fields": {k: {kk: vv for kk, vv in v.items() if kk != "bins"}
                                         for k, v in ai4i["profile"]["fields"].items()}}
    reference = Reference.from_profile(old, ai4i["contract"])
    assert reference.fields["torque_nm"].source == "histogram"  # type: ignore[union-attr]
    rng = np.random.default_rng(11)
    cols = _shift(_window(ai4i, rng.integers(0, ai4i["rows"], 5000)), rng)
    window = Window(reference)
    window.add(cols)
    report = compare(reference, window, MonitorSettings(), ai4i["importance"])
    assert {f.name for f in report.drifted} == SHIFTED
    calm = Window(reference)
    calm.add(_window(ai4i, rng.choice(ai4i["rows"], 2000, replace=False)))
    assert not compare(reference, calm).drifted


def test_memory_is_counts_whatever_the_rows(ai4i: dict[str, Any]) -> None:
    small, large = Window(ai4i["reference"]), Window(ai4i["reference"])
    rng = np.random.default_rng(1)
    small.add(_window(ai4i, rng.integers(0, ai4i["rows"], 1000)))
    for _ in range(10):
        large.add(_window(ai4i, rng.integers(0, ai4i["rows"], 100_000)))
    assert large.rows == 1_000_000
    for name, acc in small.fields.items():
        assert acc.counts.shape == large.fields[name].counts.shape
    assert len(str(large.to_dict())) < 2 * len(str(small.to_dict()))


def test_missing_and_out_of_contract_values_are_counted(ai4i: dict[str, Any]) -> None:
    rng = np.random.default_rng(5)
    cols = _window(ai4i, rng.choice(ai4i["rows"], 1000, replace=False))
    cols["torque_nm"][:50] = np.nan
    cols["rotational_speed_rpm"][:30] = 9000.0       # far above the contract's maximum
    cols["type"][:20] = None
    window = Window(ai4i["reference"])
    window.add(cols, out_of_contract=np.arange(1000) < 30)
    report = compare(ai4i["reference"], window, MonitorSettings(), ai4i["importance"],
                     rejected=250)
    by_name = {f.name: f for f in report.features}
    assert by_name["torque_nm"].missing_rate == pytest.approx(0.05)
    assert by_name["type"].missing_rate == pytest.approx(0.02)
    assert by_name["rotational_speed_rpm"].out_of_contract_rate == pytest.approx(0.03)
    assert report.signals["missing_rate(torque_nm)"] == pytest.approx(0.05)
    assert report.quality["rejected_rate"] == pytest.approx(250 / 1250)
    assert report.signals["out_of_contract_rate"] == pytest.approx(280 / 1250)
