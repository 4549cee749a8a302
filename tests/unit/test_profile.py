"""The reference profile: statistics, histograms, determinism."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from planta.core.contract import infer_contract
from planta.core.leakage import find_exclusions
from planta.core.profile import QUANTILES, numeric_summary, profile_frame, profile_to_json
from planta.core.spec import Task, UseCase, parse_objective
from planta.core.validation import check_frame
from planta.services.tables import read_table
from planta_edge.contract import Contract, Field

DATA = Path(__file__).resolve().parents[3] / "shared" / "data"
AI4I = DATA / "ai4i2020" / "ai4i2020.csv"


@pytest.fixture(scope="module")
def ai4i() -> tuple[pd.DataFrame, Contract]:
    if not AI4I.is_file():
        pytest.skip(f"AI4I 2020 data not found at {AI4I}")
    frame = read_table(AI4I).frame
    uc = UseCase("failure", Task.BINARY, "Machine failure", parse_objective("", Task.BINARY))
    contract = infer_contract(frame, uc, exclusions=find_exclusions(
        frame, "Machine failure", Task.BINARY).exclusions)
    return check_frame(contract, frame).accepted, contract


def test_ai4i_profile(ai4i: tuple[pd.DataFrame, Contract]) -> None:
    accepted, contract = ai4i
    profile = profile_frame(accepted, contract)
    assert profile["format"] == "planta.profile/1" and profile["rows"] == 10_000
    assert set(profile["fields"]) == {f.name for f in contract.fields if f.role != "ignored"}
    torque = profile["fields"]["torque_nm"]
    values = accepted["torque_nm"]
    assert torque["count"] == 10_000 and torque["missing"] == 0
    assert torque["mean"] == pytest.approx(values.mean(), rel=1e-12)
    assert torque["std"] == pytest.approx(values.std(ddof=0), rel=1e-9)
    assert (torque["min"], torque["max"]) == (3.8, 76.6)
    assert torque["quantiles"]["p50"] == pytest.approx(values.quantile(0.5))
    assert list(torque["quantiles"]) == [f"p{round(q * 100)}" for q in QUANTILES]
    edges, counts = torque["histogram"]["edges"], torque["histogram"]["counts"]
    assert (edges[0], edges[-1]) == (3.8, 76.6) and len(edges) == 21
    assert sum(counts) == 10_000 and len(counts) == len(edges) - 1
    assert profile["fields"]["type"]["counts"] == {"H": 1003, "L": 6000, "M": 2997}
    assert profile["fields"]["rnf"]["values"] == {"0": 9981, "1": 19}
    assert profile["target"] == {"name": "machine_failure", "kind": "boolean",
                                 "distribution": {"0": 9661, "1": 339}}


def test_same_rows_in_any_order_give_the_same_bytes(ai4i: tuple[pd.DataFrame, Contract]) -> None:
    accepted, contract = ai4i
    first = profile_to_json(profile_frame(accepted, contract))
    shuffled = accepted.sample(frac=1.0, random_state=3).reset_index(drop=True)
    assert profile_to_json(profile_frame(shuffled, contract)) == first
    assert json.loads(first)["rows"] == 10_000


def test_gaps_constants_and_dates() -> None:
    contract = Contract((
        Field("a", "number", nullable=True), Field("k", "number"),
        Field("gone", "number", nullable=True),
        Field("when", "datetime", datetime_format="%d/%m/%Y"),
        Field("ok", "boolean", nullable=True), Field("grade", "category", categories=("A", "B")),
        Field("note", "text", nullable=True), Field("skip", "number", role="ignored")))
    frame = pd.DataFrame({"a": [1.0, np.nan, 3.0], "k": [5.0, 5.0, 5.0],
                          "gone": [np.nan] * 3, "when": ["01/02/2024", "03/02/2024", None],
                          "ok": ["yes", "no", None], "grade": ["A", "A", None],
                          "note": ["x", "y", "x"], "skip": [1, 2, 3]})
    profile = profile_frame(frame, contract)
    fields = profile["fields"]
    assert "skip" not in fields and profile["target"] is None
    assert fields["a"]["missing"] == 1 and fields["a"]["count"] == 2
    assert fields["k"]["histogram"] == {"edges": [5.0, 5.0], "counts": [3]}
    assert fields["gone"]["mean"] is None and fields["gone"]["histogram"] is None
    assert (fields["when"]["min"], fields["when"]["max"]) == ("2024-02-01T00:00:00",
                                                              "2024-02-03T00:00:00")
    assert fields["ok"]["counts"] == {"0": 1, "1": 1} and fields["ok"]["share_true"] == 0.5
    assert fields["grade"]["counts"] == {"A": 2, "B": 0}
    assert fields["note"]["distinct"] == 2
    json.dumps(profile, allow_nan=False)


def test_histogram_edges_cover_every_value() -> None:
    values = np.random.default_rng(0).lognormal(size=5000)
    summary = numeric_summary(values)
    edges = summary["histogram"]["edges"]
    assert edges == sorted(edges) and len(set(edges)) == len(edges)
    assert sum(summary["histogram"]["counts"]) == 5000
    assert "values" not in summary
