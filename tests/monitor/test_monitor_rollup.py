"""The monitoring caches kept up to date as the log is written (planta.services.monitor_rollup).

A real project (SQLite file, an AI4I model in production), entries written through the real
PredictionLog with the rollup observing it; what it writes is compared with a cold read of the
same log, and rows it never saw (another writer, a restart mid-hour) must be read again.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from trained_plants import trained_plant

from planta.core.drift_window import NumericCounts, Window
from planta.core.spec import Task
from planta.services import monitor as mon
from planta.services import monitor_log, monitor_rollup, performance
from planta.services import performance_log as reader
from planta.services.monitor_rollup import Rollup, score_cache_for, scores_from_cache
from planta.services.workspace import Workspace
from planta.store.ids import reserve
from planta.store.predictions import LogEntry, PredictionLog

DAY0 = datetime(2026, 2, 27, tzinfo=UTC)   # two days, the second crossing into March
HOUR = timedelta(hours=1)
PER_HOUR = 12
LATER = DAY0 + timedelta(days=5)           # "now" for flushing: everything settled


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Any], Any]]:
    """A trained project (no log yet), its production scorer's answers for a pool of AI4I
    rows, and the scorer."""
    root = tmp_path_factory.mktemp("rollup") / "plant"
    ws, scorer, raw = trained_plant(root)
    pool = raw.iloc[5000:5400].reset_index(drop=True)
    records = [{f.name: row[f.label] for f in scorer.contract.inputs}
               for row in pool.to_dict("records")]
    records[7]["torque_nm"] = 999.0        # out of the contract's range: flagged
    records[8]["type"] = "Z"        # a category never seen
    ws.close()
    yield root, records, scorer


@pytest.fixture
def plant(project: tuple[Path, list[Any], Any], tmp_path: Path
          ) -> Iterator[tuple[Workspace, list[Any], Any]]:
    """A fresh copy of the trained project for each test (its own log and caches)."""
    root, records, scorer = project
    copy = tmp_path / "plant"
    shutil.copytree(root, copy)
    ws = Workspace.open(copy)
    yield ws, records, scorer
    ws.close()


def _entries(records: list[Any], scorer: Any, hours: range, *, start: datetime = DAY0,
             shadow_every: int = 9, multi_every: int = 7,
             prechecked: bool = False) -> list[LogEntry]:
    """``PER_HOUR`` requests per hour: mostly one record, some of three, some shadow.

    ``prechecked``: as the server logs them, with the values its scorer validated (and so
    with no unseen category: the server refuses those; an edge device's rows may carry one).
    """
    out = []
    k = 0
    for h in hours:
        for i in range(PER_HOUR):
            n = 3 if i % multi_every == 0 else 1
            rows = [records[(k + j) % len(records)] for j in range(n)]
            k += n
            seen = [r | {"type": "L"} if r["type"] == "Z" else r for r in rows]
            batch = scorer.predict(seen, range_policy="flag")
            out.append(LogEntry(
                first_id=reserve(n), n=n, at=start + h * HOUR + timedelta(seconds=i * 290),
                usecase="failure", version=scorer.version,
                route="shadow" if i % shadow_every == 4 else "production", channel="sync",
                caller="line-4", inputs_json=json.dumps(seen if prechecked else rows),
                outputs_json=json.dumps({"prediction": list(batch.prediction),
                                         "probability": list(batch.probability),
                                         "score": None}),
                checked=batch.checked if prechecked else None))
    return out


def _write(ws: Workspace, entries: list[LogEntry], rollup: Rollup | None) -> None:
    with PredictionLog(ws.store, observers=[rollup.observe] if rollup else ()) as log:
        for entry in entries:
            log.submit(entry)


def _same(a: Window, b: Window) -> None:
    """Counts equal exactly; float sums (added in another order) to 1e-12."""
    assert (a.rows, a.out_of_contract) == (b.rows, b.out_of_contract)
    assert a.score.counts.tolist() == b.score.counts.tolist()
    assert (a.score.positives, a.score.answered) == (b.score.positives, b.score.answered)
    for name, acc in a.fields.items():
        other = b.fields[name]
        assert acc.counts.tolist() == other.counts.tolist(), name
        assert acc.missing == other.missing, name
        if isinstance(acc, NumericCounts):
            assert isinstance(other, NumericCounts)
            assert (acc.below_contract, acc.above_contract) == (other.below_contract,
                                                                other.above_contract)
            for k in ("total", "below_sum", "above_sum"):
                assert getattr(acc, k) == pytest.approx(getattr(other, k), rel=1e-12, abs=1e-9)
        else:
            assert acc.new == other.new, name


def _cold(ws: Workspace, baseline: Any, a: datetime, b: datetime) -> Window:
    return monitor_log._scan_spans(ws.store, baseline, [(a, b)])[0][0]


def test_what_the_rollup_writes_equals_a_cold_read_of_the_log(
        plant: tuple[Workspace, list[Any], Any], log_scans: list[Any]) -> None:
    ws, records, scorer = plant
    rollup = Rollup(ws, background=False)
    _write(ws, _entries(records, scorer, range(48)), rollup)
    assert rollup.drain() == 48 * PER_HOUR
    assert rollup.flush(LATER) == 48
    baseline = mon.load_baseline(ws, "failure")
    cache = mon.cache_for(ws)
    for start, level, end in ((DAY0 + 5 * HOUR, "hour", DAY0 + 6 * HOUR),
                              (DAY0, "day", DAY0 + timedelta(days=1)),
                              (DAY0 + timedelta(days=1), "day", DAY0 + timedelta(days=2))):
        got = cache.get(baseline, start, level)
        assert got is not None, (start, level)
        window, rows = got
        _same(window, _cold(ws, baseline, start, end))
        assert rows == monitor_log._count_rows(ws.store, "failure", start, end)
    assert cache.get(baseline, DAY0, "day")[0].fields["type"].new == {"Z": 1}
    # The report over both days reads nothing from the log, and says what a cold read says.
    scans = log_scans
    scans.clear()   # what the rollup's own roll-ups read
    span = {"since": DAY0, "until": DAY0 + timedelta(days=2), "now": LATER}
    warm = mon.monitor(ws, "failure", effects=False, **span).to_dict()
    assert scans == []
    shutil.rmtree(ws.project.root / ".planta" / "cache" / "monitor")
    cold = mon.monitor(ws, "failure", effects=False, **span).to_dict()
    assert scans  # this one read the log
    assert warm["rows"] == cold["rows"]
    for w, c in zip(warm["features"], cold["features"], strict=True):
        assert w["name"] == c["name"] and w["drifted"] == c["drifted"]
        for tw, tc in zip(w["tests"], c["tests"], strict=True):
            assert tw["statistic"] == pytest.approx(tc["statistic"], rel=1e-9, abs=1e-12)


def test_counts_from_the_servers_validated_values_equal_a_cold_read(
        plant: tuple[Workspace, list[Any], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    ws, records, scorer = plant
    entries = _entries(records, scorer, range(3), prechecked=True)
    assert all(e.checked is not None for e in entries)
    assert any(e.checked.flagged.any() for e in entries)   # the out-of-range torque

    def no_parsing(*_: Any) -> None:
        raise AssertionError("the rollup parsed and validated inputs the server had checked")

    monkeypatch.setattr(monitor_rollup, "_count_chunk", no_parsing)
    rollup = Rollup(ws, background=False)
    _write(ws, entries, rollup)
    assert rollup.drain() == 3 * PER_HOUR
    assert rollup.flush(LATER) == 3
    baseline = mon.load_baseline(ws, "failure")
    for h in range(3):
        got = mon.cache_for(ws).get(baseline, DAY0 + h * HOUR, "hour")
        assert got is not None and got[1] == PER_HOUR
        _same(got[0], _cold(ws, baseline, DAY0 + h * HOUR, DAY0 + (h + 1) * HOUR))


def test_performance_sums_come_from_the_rollup_and_equal_the_log(
        plant: tuple[Workspace, list[Any], Any], monkeypatch: pytest.MonkeyPatch) -> None:
    ws, records, scorer = plant
    rollup = Rollup(ws, background=False)
    _write(ws, _entries(records, scorer, range(48)), rollup)
    rollup.drain()
    rollup.flush(LATER)
    threshold_of, _ = performance.model_thresholds(ws, "failure", Task.BINARY)
    cache = score_cache_for(ws)
    day1 = DAY0 + timedelta(days=1)
    for a, b in ((DAY0, day1), (DAY0 + 3 * HOUR, DAY0 + 9 * HOUR),
                 (DAY0, DAY0 + timedelta(days=2))):
        rows = reader.row_counts(ws, "failure", [a, b])[0]
        got = scores_from_cache(cache, "failure", a, b, rows=rows, threshold_of=threshold_of,
                                now=LATER)
        assert got is not None
        with ws.store.read() as conn:
            cold = reader.sum_in_python(conn, "failure", Task.BINARY, threshold_of, a, b)
        assert got.counts.tolist() == cold.counts.tolist()
        np.testing.assert_allclose(got.sums, cold.sums, rtol=1e-12)
    # A window that is not made of whole settled hours is not answered from the cache.
    assert scores_from_cache(cache, "failure", DAY0 + HOUR / 2, day1, rows=0,
                             threshold_of=threshold_of, now=LATER) is None
    # performance_over_time, nothing remembered: no log row is summed, no estimate drawn.
    performance.clear_memory(ws)

    def no_reading(*_args: Any, **_kw: Any) -> Any:
        raise AssertionError("read the log")

    monkeypatch.setattr(reader, "sum_in_sqlite", no_reading)
    monkeypatch.setattr(reader, "sum_in_python", no_reading)
    # Nor is an estimate drawn: each closed day's was drawn when the rollup wrote the day.
    monkeypatch.setattr(performance, "_estimate", no_reading)
    fast = performance.performance_over_time(ws, "failure", since=DAY0,
                                             until=DAY0 + timedelta(days=2), now=LATER)
    monkeypatch.undo()
    performance.clear_memory(ws)
    shutil.rmtree(ws.project.root / ".planta" / "cache" / "scores")
    slow = performance.performance_over_time(ws, "failure", since=DAY0,
                                             until=DAY0 + timedelta(days=2), now=LATER)
    assert [w.n_predictions for w in fast.windows] == [w.n_predictions for w in slow.windows]
    for f, s in zip(fast.windows, slow.windows, strict=True):
        assert f.estimated.keys() == s.estimated.keys()
        for name, est in f.estimated.items():
            assert est.value == pytest.approx(s.estimated[name].value, rel=1e-9)


def test_rows_the_rollup_never_saw_are_read_from_the_log(
        plant: tuple[Workspace, list[Any], Any], log_scans: list[Any]) -> None:
    ws, records, scorer = plant
    rollup = Rollup(ws, background=False)
    entries = _entries(records, scorer, range(24))
    # Hour 3 gets rows from another writer (a batch job, an edge sync) while it is open.
    _write(ws, entries[: 3 * PER_HOUR + 5], rollup)
    _write(ws, _entries(records, scorer, range(3, 4), start=DAY0 + timedelta(minutes=1))[:4],
           None)
    _write(ws, entries[3 * PER_HOUR + 5:], rollup)
    rollup.drain()
    rollup.flush(LATER)
    baseline = mon.load_baseline(ws, "failure")
    cache = mon.cache_for(ws)
    window, rows = cache.get(baseline, DAY0 + 3 * HOUR, "hour")
    assert rows == PER_HOUR + 4
    _same(window, _cold(ws, baseline, DAY0 + 3 * HOUR, DAY0 + 4 * HOUR))
    _same(cache.get(baseline, DAY0, "day")[0], _cold(ws, baseline, DAY0, DAY0 + timedelta(1)))
    # A late row behind the rollup's back, into a settled and written hour: that hour only is
    # read again, by the report and by performance.
    _write(ws, _entries(records, scorer, range(10, 11))[:1], None)
    scans = log_scans
    scans.clear()
    report = mon.monitor(ws, "failure", since=DAY0, until=DAY0 + timedelta(days=1), now=LATER,
                         effects=False)
    assert scans == [(DAY0 + 10 * HOUR, DAY0 + 11 * HOUR)]
    assert report.report.rows == _cold(ws, baseline, DAY0, DAY0 + timedelta(days=1)).rows
    threshold_of, _ = performance.model_thresholds(ws, "failure", Task.BINARY)
    day = (DAY0, DAY0 + timedelta(days=1))
    rows_now = reader.row_counts(ws, "failure", list(day))[0]
    assert scores_from_cache(score_cache_for(ws), "failure", *day, rows=rows_now,
                             threshold_of=threshold_of, now=LATER) is None


def test_a_restart_mid_hour_rereads_that_hour(plant: tuple[Workspace, list[Any], Any]) -> None:
    ws, records, scorer = plant
    entries = _entries(records, scorer, range(2))
    first = Rollup(ws, background=False)
    _write(ws, entries[: PER_HOUR + 5], first)
    first.drain()
    first.flush(DAY0 + 2 * HOUR)       # hour 0 settled and written; hour 1 still open
    # The process stops here: hour 1's counts so far are lost with it.
    second = Rollup(ws, background=False)
    _write(ws, entries[PER_HOUR + 5:], second)
    second.drain()
    assert second.flush(LATER) == 1
    baseline = mon.load_baseline(ws, "failure")
    window, rows = mon.cache_for(ws).get(baseline, DAY0 + HOUR, "hour")
    assert rows == PER_HOUR
    _same(window, _cold(ws, baseline, DAY0 + HOUR, DAY0 + 2 * HOUR))
    threshold_of, _ = performance.model_thresholds(ws, "failure", Task.BINARY)
    got = scores_from_cache(score_cache_for(ws), "failure", DAY0 + HOUR, DAY0 + 2 * HOUR,
                            rows=PER_HOUR, threshold_of=threshold_of, now=LATER)
    with ws.store.read() as conn:
        cold = reader.sum_in_python(conn, "failure", Task.BINARY, threshold_of,
                                    DAY0 + HOUR, DAY0 + 2 * HOUR)
    assert got is not None and got.counts.tolist() == cold.counts.tolist()


def test_a_failing_observer_never_loses_a_prediction(
        plant: tuple[Workspace, list[Any], Any], caplog: pytest.LogCaptureFixture) -> None:
    ws, records, scorer = plant
    seen: list[int] = []

    def broken(entries: list[LogEntry]) -> None:
        raise RuntimeError("observer bug")

    entries = _entries(records, scorer, range(1))
    with PredictionLog(ws.store, observers=[broken]) as log:
        log.add_observer(lambda batch: seen.append(len(batch)))
        ids = [log.write_now(e) for e in entries]
        assert log.healthy and log.last_error is None
        assert log.count("failure") == sum(e.n for e in entries)
        assert [r.prediction_id for r in log.query("failure", limit=None)][-1] == ids[0]
    assert sum(seen) == len(entries)   # the observer after the broken one still ran
    assert "observer failed" in caplog.text


def test_entries_dropped_by_a_full_queue_are_read_from_the_log(
        plant: tuple[Workspace, list[Any], Any]) -> None:
    ws, records, scorer = plant
    rollup = Rollup(ws, background=False, max_queue=5)
    entries = _entries(records, scorer, range(3))
    for part in (entries[:3], entries[3:]):   # the second batch overflows the queue
        rollup.observe(part)
    _write(ws, entries, None)
    assert rollup.dropped == len(entries) - 3
    rollup.drain()
    assert rollup.flush(LATER) == 3
    baseline = mon.load_baseline(ws, "failure")
    threshold_of, _ = performance.model_thresholds(ws, "failure", Task.BINARY)
    for h in range(3):
        a, b = DAY0 + h * HOUR, DAY0 + (h + 1) * HOUR
        window, rows = mon.cache_for(ws).get(baseline, a, "hour")
        assert rows == PER_HOUR
        _same(window, _cold(ws, baseline, a, b))
        assert scores_from_cache(score_cache_for(ws), "failure", a, b, rows=PER_HOUR,
                                 threshold_of=threshold_of, now=LATER) is not None


def test_the_server_counts_what_it_logs(plant: tuple[Workspace, list[Any], Any]) -> None:
    from planta.server.app import build_runtime
    from planta.server.runtime import ServeOptions

    ws, records, scorer = plant
    rt = build_runtime(ws, ServeOptions())
    try:
        assert rt.rollup is not None
        entries = _entries(records, scorer, range(2))
        for entry in entries:
            rt.log.write_now(entry)
        rt.rollup.drain()
        assert rt.rollup.flush(LATER) == 2
    finally:
        rt.log.close()
        rt.rollup.close()
    baseline = mon.load_baseline(ws, "failure")
    window, rows = mon.cache_for(ws).get(baseline, DAY0 + HOUR, "hour")
    assert rows == PER_HOUR
    _same(window, _cold(ws, baseline, DAY0 + HOUR, DAY0 + 2 * HOUR))
