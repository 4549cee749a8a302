"""Invariants of the contract rules, checked on contracts and data that Hypothesis draws.

* Data drawn from a contract validates, with no violation.
* One corrupted cell yields exactly one violation, naming its row and column.
* Every row of a table ends up accepted or quarantined, and the quarantine names exactly the
  corrupted rows.
* The profile does not depend on row order.
"""

from __future__ import annotations

import json
import string
from typing import Any

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from planta.core.profile import numeric_summary
from planta.core.validation import check_frame
from planta_edge.contract import Contract, Field, validate_columns

# Bounded runs: each property takes a second or two.
BOUNDED = settings(max_examples=60, deadline=None,
                   suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
KINDS = ("number", "integer", "boolean", "category")


@st.composite
def fields(draw: st.DrawFn, index: int) -> Field:
    kind = draw(st.sampled_from(KINDS))
    name, label = f"f{index}", f"Reading {index} [{kind}]"
    nullable = draw(st.booleans())
    if kind == "number":
        low = draw(st.floats(-1e4, 1e4, allow_nan=False, allow_infinity=False))
        span = draw(st.floats(0.5, 1e4, allow_nan=False, allow_infinity=False))
        return Field(name, kind, label=label, minimum=low, maximum=low + span, nullable=nullable)
    if kind == "integer":
        low = draw(st.integers(-1000, 1000))
        return Field(name, kind, label=label, minimum=float(low),
                     maximum=float(low + draw(st.integers(2, 1000))), nullable=nullable)
    if kind == "category":
        values = draw(st.lists(st.text(string.ascii_letters, min_size=1, max_size=4),
                               min_size=1, max_size=6, unique=True))
        return Field(name, kind, label=label, categories=tuple(sorted(values)),
                     nullable=nullable)
    return Field(name, kind, label=label, nullable=nullable)


@st.composite
def contracts(draw: st.DrawFn) -> Contract:
    count = draw(st.integers(1, 5))
    return Contract(tuple(draw(fields(i)) for i in range(count)))


def cell(draw: Any, f: Field) -> Any:
    """One valid value of a field, in the forms a file or a JSON record may carry it."""
    if f.nullable and draw(st.integers(0, 9)) == 0:
        return None
    if f.kind == "number":
        assert f.minimum is not None and f.maximum is not None
        return draw(st.floats(f.minimum, f.maximum, allow_nan=False, allow_infinity=False))
    if f.kind == "integer":
        assert f.minimum is not None and f.maximum is not None
        value = draw(st.integers(int(f.minimum), int(f.maximum)))
        return draw(st.sampled_from([value, float(value), str(value)]))
    if f.kind == "boolean":
        return draw(st.sampled_from([0, 1, 0.0, 1.0, True, False, "yes", "no", "1", "0"]))
    assert f.categories is not None
    return draw(st.sampled_from(f.categories))


def broken(draw: Any, f: Field) -> tuple[Any, set[str]]:
    """A value that breaks exactly one rule of the field, and the rules it may break."""
    if f.kind in ("number", "integer"):
        assert f.minimum is not None and f.maximum is not None
        span = f.maximum - f.minimum
        choices: list[tuple[Any, set[str]]] = [
            ("abc", {"type"}), (f.maximum + 10 * span + 1, {"above_max"}),
            (f.minimum - 10 * span - 1, {"below_min"}), (float("inf"), {"not_finite"})]
        if f.kind == "integer":
            choices.append((f.minimum + 0.5, {"not_integer"}))
        if not f.nullable:
            choices.append((None, {"null"}))
        return draw(st.sampled_from(choices))
    if f.kind == "boolean":
        return draw(st.sampled_from([("maybe", {"type"}), (2, {"type"})]))
    return draw(st.sampled_from([("?new", {"unknown_category"}), ("0", {"unknown_category"})]))


@st.composite
def tables(draw: st.DrawFn) -> tuple[Contract, dict[str, list[Any]], int]:
    contract = draw(contracts())
    n = draw(st.integers(1, 25))
    columns = {f.display: [cell(draw, f) for _ in range(n)] for f in contract.fields}
    return contract, columns, n


@BOUNDED
@given(tables())
def test_data_drawn_from_a_contract_validates(table: tuple[Contract, dict[str, list[Any]], int]
                                              ) -> None:
    contract, columns, n = table
    result = validate_columns(contract, columns)
    assert result.violations == []
    assert result.ok.all() and result.n_rows == n


@BOUNDED
@given(tables(), st.data())
def test_one_corrupted_cell_gives_one_violation(table: tuple[Contract, dict[str, list[Any]], int],
                                                data: st.DataObject) -> None:
    contract, columns, n = table
    f = data.draw(st.sampled_from(contract.fields))
    row = data.draw(st.integers(0, n - 1))
    value, expected = broken(data.draw, f)
    columns[f.display][row] = value
    result = validate_columns(contract, columns)
    assert [(v.row, v.field) for v in result.violations] == [(row, f.name)]
    assert result.violations[0].rule in expected
    assert f"Row {row + 1}, column {f.display!r}" in result.violations[0].message
    assert result.ok.tolist() == [i != row for i in range(n)]


@BOUNDED
@given(tables(), st.data())
def test_every_row_is_accepted_or_quarantined(table: tuple[Contract, dict[str, list[Any]], int],
                                              data: st.DataObject) -> None:
    contract, columns, n = table
    target = Field("y", "boolean", label="Failed", role="target")
    contract = Contract(contract.fields + (target,), target="y")
    bad_rows = set(data.draw(st.lists(st.integers(0, n - 1), max_size=n)))
    for row in bad_rows:
        f = data.draw(st.sampled_from(contract.fields[:-1]))
        columns[f.display][row] = broken(data.draw, f)[0]
    # Two clean rows of each answer at the end, so that the accepted rows hold both classes.
    for f in contract.fields[:-1]:
        columns[f.display] += [cell(data.draw, f) for _ in range(2)]
    columns["Failed"] = [data.draw(st.sampled_from([0, 1])) for _ in range(n)] + [0, 1]
    frame = pd.DataFrame({k: pd.Series(v, dtype=object) for k, v in columns.items()})
    check = check_frame(contract, frame)
    assert len(check.accepted) + len(check.quarantine) == n + 2
    assert set(check.quarantine["_row"] - 1) == bad_rows
    assert check.report["rejected"] == len(bad_rows)
    json.dumps(check.report, allow_nan=False)


@BOUNDED
@given(st.lists(st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False), min_size=1,
                max_size=200), st.randoms())
def test_profile_ignores_row_order(values: list[float], random: Any) -> None:
    shuffled = list(values)
    random.shuffle(shuffled)
    first = numeric_summary(np.asarray(values))
    assert json.dumps(first, sort_keys=True) == json.dumps(
        numeric_summary(np.asarray(shuffled)), sort_keys=True)
    assert sum(first["histogram"]["counts"]) == len(values)
