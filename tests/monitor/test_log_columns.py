"""The prediction log read column-wise (planta.store.log_columns) and counted in one pass per
run of spans (planta.services.monitor_log): on a real store of each engine, the counts equal
those of the same records validated and counted directly, whatever the rows hold (several
records, shadow answers, short or damaged rows), and a month made of cached days equals the
month read at once."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from planta.core.drift_window import Reference, Window
from planta.services.monitor import Baseline
from planta.services.monitor_log import WindowCache, _scan_spans, window_from_log
from planta.store.ids import reserve
from planta.store.log_columns import iter_log_columns, parse_many
from planta.store.predictions import LogEntry, PredictionLog
from planta_edge.contract import Contract, Field, validate_records

DAY0 = datetime(2026, 1, 1, tzinfo=UTC)
CONTRACT = Contract((Field("torque_nm", "number", minimum=0.0, maximum=80.0),
                     Field("type", "category", categories=("L", "M", "H")),
                     Field("failure", "boolean")), target="failure")
PROFILE = {"rows": 6, "fields": {
    "torque_nm": {"kind": "number", "count": 6, "missing": 0, "mean": 40.0, "std": 10.0,
                  "bins": {"edges": [20.0, 30.0, 40.0, 50.0, 60.0],
                           "counts": [0, 1, 1, 2, 1, 1]}},
    "type": {"kind": "category", "count": 6, "missing": 0, "counts": {"L": 3, "M": 2, "H": 1}}}}


def _baseline() -> Baseline:
    reference = Reference.from_profile(PROFILE, CONTRACT)
    return Baseline(usecase="failure", version=1, digest="0" * 64, contract=CONTRACT,
                    reference=reference, importance={}, positive_class="1", task="binary")


def _rows(rng: np.random.Generator) -> list[tuple[datetime, str, int, str, str]]:
    """(at, route, n, inputs, outputs) over 40 days: mostly one record, some requests of
    three, a shadow answer, a short row and a damaged one."""
    out = []
    for i in range(400):
        at = DAY0 + timedelta(hours=2.4 * i)
        n = 3 if i % 7 == 0 else 1
        recs = [{"torque_nm": float(rng.normal(40, 12)), "type": "LMHX"[int(rng.integers(4))]}
                for _ in range(n)]
        probs = [float(rng.random()) for _ in range(n)]
        outputs = {"prediction": [int(p > 0.5) for p in probs], "probability": probs,
                   "score": None}
        out.append((at, "production", n, json.dumps(recs), json.dumps(outputs)))
    out.append((DAY0 + timedelta(days=3, hours=1), "shadow", 1, '[{"torque_nm": 500.0}]',
                '{"prediction": [1], "probability": [0.9]}'))
    out.append((DAY0 + timedelta(days=4, hours=1), "production", 2, '[{"torque_nm": 45.0}]',
                '{"prediction": [0], "probability": [0.2]}'))           # short: padded
    out.append((DAY0 + timedelta(days=5, hours=1), "production", 1, '{"torque_nm": 1}',
                '{"prediction": [0]}'))                                  # not a list: skipped
    return out


def _write(store: Any, rows: list[tuple[datetime, str, int, str, str]]) -> None:
    with PredictionLog(store) as log:
        for at, route, n, inputs, outputs in rows:
            log.write_now(LogEntry(first_id=reserve(n), n=n, at=at, usecase="failure",
                                   version=1, route=route, channel="sync", caller="t",
                                   inputs_json=inputs, outputs_json=outputs))


def _expected(baseline: Baseline, rows: list[tuple[datetime, str, int, str, str]],
              since: datetime, until: datetime) -> Window:
    """The plain way: every record of the span, validated and counted at once."""
    records: list[dict[str, Any]] = []
    probability: list[Any] = []
    prediction: list[Any] = []
    for at, route, n, inputs, outputs in rows:
        parsed = json.loads(inputs)
        if not since <= at < until or route == "shadow" or not isinstance(parsed, list):
            continue
        out = json.loads(outputs)
        records += parsed + [{}] * (n - len(parsed))
        probability += out.get("probability", []) + [None] * (n - len(out.get("probability", [])))
        prediction += out["prediction"] + [None] * (n - len(out["prediction"]))
    window = Window(baseline.reference)
    checked = validate_records(CONTRACT, records, range_policy="flag", extra_policy="ignore")
    window.add(checked.values, rows=len(records), out_of_contract=checked.flagged | ~checked.ok)
    window.add_outputs(probability=np.array([np.nan if p is None else p for p in probability]),
                       positive=np.array([str(v) == "1" for v in prediction if v is not None]))
    return window


def _same(got: Window, want: Window) -> bool:
    """Equal counts; sums equal up to the order they were added in."""
    def walk(a: Any, b: Any) -> bool:
        if isinstance(a, dict):
            return a.keys() == b.keys() and all(walk(a[k], b[k]) for k in a)
        if isinstance(a, float):
            return a == pytest.approx(b, rel=1e-12)
        return bool(a == b)
    return walk(got.to_dict(), want.to_dict())


def test_column_chunks_hold_every_row_in_time_order(store: Any) -> None:
    rows = _rows(np.random.default_rng(0))
    _write(store, rows)
    with store.read() as conn:
        chunks = list(iter_log_columns(conn, "failure", DAY0, DAY0 + timedelta(days=50),
                                       chunk_rows=64))
    assert [len(c) for c in chunks[:-1]] == [64] * (len(chunks) - 1)
    at = np.concatenate([c.at for c in chunks])
    assert len(at) == len(rows) and (np.diff(at) >= np.timedelta64(0, "us")).all()
    expected = sorted(rows)
    assert at[0] == np.datetime64(expected[0][0].replace(tzinfo=None), "us")
    inputs = [v for c in chunks for v in c.inputs]
    assert inputs == [json.loads(r[3]) for r in expected]
    assert int(sum(c.shadow.sum() for c in chunks)) == 1
    assert [int(n) for c in chunks for n in c.n] == [r[2] for r in expected]


def test_parse_many_keeps_rows_aligned_when_one_is_damaged() -> None:
    assert parse_many([b"[1]", b"{bad", None, b"2]", b"[3"]) == [[1], None, None, None, None]
    assert parse_many(["[1]", '{"a": 2}']) == [[1], {"a": 2}]


def test_counts_equal_the_plain_way_and_months_come_from_days(store: Any,
                                                               tmp_path: Path) -> None:
    rows = _rows(np.random.default_rng(1))
    _write(store, rows)
    baseline = _baseline()
    since, until = DAY0 - timedelta(hours=5, minutes=17), DAY0 + timedelta(days=38, hours=3)
    now = DAY0 + timedelta(days=60)
    cache = WindowCache(tmp_path / "cache")
    cold = window_from_log(store, baseline, since, until, cache=cache, now=now)
    want = _expected(baseline, rows, since, until)
    assert _same(cold, want)
    assert any((tmp_path / "cache").rglob("202601.json"))   # January, made of its days
    assert any((tmp_path / "cache").rglob("20260203.json"))  # a day of February
    # Warm: from the files, nothing read from the log.
    assert _same(window_from_log(store, baseline, since, until, cache=cache, now=now), want)
    # The January file lost: the month is made again from its day files.
    for path in (tmp_path / "cache").rglob("202601.json"):
        path.unlink()
    assert _same(window_from_log(store, baseline, since, until, cache=cache, now=now), want)
    # Two spans read in one pass give each its own counts.
    a, b, c = DAY0, DAY0 + timedelta(days=3), DAY0 + timedelta(days=9)
    (first, rows_a), (second, rows_b) = _scan_spans(store, baseline, [(a, b), (b, c)])
    assert _same(first, _expected(baseline, rows, a, b))
    assert _same(second, _expected(baseline, rows, b, c))
    assert rows_a == sum(1 for r in rows if a <= r[0] < b)  # shadow rows counted as log rows


@pytest.mark.parametrize("shift_s", [0.0, 0.5])
def test_a_span_boundary_splits_rows_exactly(store: Any, shift_s: float) -> None:
    """A row stamped exactly at a span's start belongs to that span, not the one before."""
    t = DAY0 + timedelta(days=2, seconds=shift_s)
    _write(store, [(t, "production", 1, '[{"torque_nm": 41.0, "type": "L"}]',
                    '{"prediction": [0], "probability": [0.1]}')])
    (before, n0), (after, n1) = _scan_spans(store, _baseline(), [(t - timedelta(hours=1), t),
                                                                 (t, t + timedelta(hours=1))])
    assert (before.rows, n0, after.rows, n1) == (0, 0, 1, 1)
