"""Ground truth counted per day as it is written (planta.services.label_rollup).

A real project (SQLite file, an AI4I model in production), predictions written through the real
PredictionLog, labels through the real FeedbackStore with the label rollup observing it; what
the day files give is compared with the cold join of the same labels, exactly.
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
from sqlalchemy import insert
from trained_plants import trained_plant

from planta.services import label_rollup, performance
from planta.services import performance_log as reader
from planta.services.workspace import Workspace
from planta.store.feedback import FeedbackStore
from planta.store.ids import encode, reserve
from planta.store.metadata import feedback
from planta.store.predictions import LogEntry, PredictionLog

DAY0 = datetime(2026, 3, 1, tzinfo=UTC)
DAYS = 3
NOW = DAY0 + timedelta(days=10)             # every day closed
SPAN = {"since": DAY0, "until": DAY0 + timedelta(days=DAYS), "window": timedelta(days=1),
        "now": NOW}


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, list[Any], Any]]:
    root = tmp_path_factory.mktemp("labels") / "plant"
    ws, scorer, raw = trained_plant(root)
    pool = raw.iloc[5000:5300].reset_index(drop=True)
    records = [{f.name: row[f.label] for f in scorer.contract.inputs}
               for row in pool.to_dict("records")]
    ws.close()
    yield root, records, scorer


@pytest.fixture
def plant(project: tuple[Path, list[Any], Any], tmp_path: Path
          ) -> Iterator[tuple[Workspace, list[str], list[str]]]:
    """A fresh copy with three days of predictions (one- and three-record requests, some
    shadow answers); yields the workspace, the production and the shadow prediction ids."""
    root, records, scorer = project
    copy = tmp_path / "plant"
    shutil.copytree(root, copy)
    ws = Workspace.open(copy)
    ids: list[str] = []
    shadows: list[str] = []
    with PredictionLog(ws.store) as log:
        k = 0
        for i in range(DAYS * 60):
            n = 3 if i % 7 == 0 else 1
            rows = [records[(k + j) % len(records)] for j in range(n)]
            k += n
            answers = scorer.predict(rows, range_policy="flag")
            first = reserve(n)
            shadow = i % 11 == 5
            log.write_now(LogEntry(
                first_id=first, n=n, at=DAY0 + timedelta(minutes=24 * i), usecase="failure",
                version=scorer.version, route="shadow" if shadow else "production",
                channel="sync", caller="line-4", inputs_json=json.dumps(rows),
                outputs_json=json.dumps({"prediction": list(answers.prediction),
                                         "probability": list(answers.probability),
                                         "score": None})))
            (shadows if shadow else ids).extend(encode(first + j) for j in range(n))
    yield ws, ids, shadows
    ws.close()


def _truth(store: FeedbackStore, ids: list[str], seed: int) -> None:
    rng = np.random.default_rng(seed)
    items = [{"prediction_id": pid, "value": int(rng.random() < 0.3)} for pid in ids]
    items[0]["value"] = "maybe"   # matches no class: unreadable, counted as such
    store.add("failure", items, actor="ana", source="test")


def _series(ws: Workspace) -> list[tuple[int, int, Any]]:
    performance.clear_memory(ws)
    out = performance.performance_over_time(ws, "failure", **SPAN)
    return [(w.n_labelled, w.n_unreadable,
             None if w.realised is None else {k: (e.value, e.lower, e.upper)
                                              for k, e in w.realised.items()})
            for w in out.windows]


def _cold(ws: Workspace) -> list[tuple[int, int, Any]]:
    shutil.rmtree(label_rollup.label_cache_for(ws).root / "failure", ignore_errors=True)
    return _series(ws)


def _hits(ws: Workspace) -> int:
    """How many of the days the label files answer for (no join)."""
    performance.clear_memory(ws)
    series = performance.performance_over_time(ws, "failure", **SPAN)
    edges = [w.start for w in series.windows] + [series.windows[-1].end]
    counts = reader.row_counts(ws, "failure", edges)
    uc = ws.project.usecase("failure")
    model = performance.model_for(ws, "failure", uc.task)
    return len(label_rollup.from_cache(ws, "failure", uc, model, edges, counts, NOW,
                                       range(DAYS), reader.feedback_state(ws, "failure")))


def _store(ws: Workspace) -> tuple[FeedbackStore, PredictionLog]:
    log = PredictionLog(ws.store)
    store = FeedbackStore(ws.store, log)
    label_rollup.attach_labels(ws, store)
    return store, log


def test_day_files_equal_the_cold_join(plant: tuple[Workspace, list[str], list[str]],
                                       monkeypatch: pytest.MonkeyPatch) -> None:
    ws, ids, shadows = plant
    store, log = _store(ws)
    _truth(store, ids[::3], seed=1)            # one batch: each day counted whole
    _truth(store, ids[1::3] + shadows[:4], seed=2)   # a second: added to the day files
    log.close()
    uc = ws.project.usecase("failure")
    model = performance.model_for(ws, "failure", uc.task)
    cache = label_rollup.label_cache_for(ws)
    for d in range(DAYS):
        day = DAY0 + timedelta(days=d)
        labels = reader.read_labels(ws, "failure", uc.task, day, day + timedelta(days=1),
                                    few=False)
        y, served = performance.label_arrays(uc.task, model, labels)
        usable = np.isfinite(y) & np.isfinite(served)
        thr = np.full(int(usable.sum()), model.threshold(model.version or 1))
        doc = cache.get("failure", day)
        assert doc is not None
        assert doc.counts == label_rollup.confusion(y[usable], served[usable], thr).tolist()
        assert doc.unreadable == int((~np.isfinite(y)).sum())
    assert sum(doc.counts) > 30
    assert _hits(ws) == DAYS
    # The page from the files reads no label, and says exactly what the cold join says.
    real = reader.read_labels

    def no_join(*_a: Any, **_k: Any) -> Any:
        raise AssertionError("a label was joined")

    monkeypatch.setattr(reader, "read_labels", no_join)
    cached = _series(ws)
    monkeypatch.setattr(reader, "read_labels", real)
    cold = _cold(ws)
    assert cached == cold
    # Every label on a production answer counted, less the two unreadable ones ("maybe");
    # those on shadow answers not at all.
    assert sum(n for n, _, _ in cold) == len(ids[0::3]) + len(ids[1::3]) - 2
    assert sum(u for _, u, _ in cold) == 2


def test_a_corrected_label_is_counted_once(plant: tuple[Workspace, list[str], list[str]]) -> None:
    ws, ids, _ = plant
    store, log = _store(ws)
    _truth(store, ids[::2], seed=3)
    before = _series(ws)
    flipped = [{"prediction_id": pid, "value": 1} for pid in ids[2:40:2]]
    result = store.add("failure", flipped, actor="ana", source="correction")
    log.close()
    assert result.updated > 0
    assert _hits(ws) == DAYS
    after = _series(ws)
    assert [n for n, _, _ in after] == [n for n, _, _ in before]   # not counted twice
    assert after != before                                          # but counted anew
    assert after == _cold(ws)


def test_labels_written_behind_plantas_back_are_read(
        plant: tuple[Workspace, list[str], list[str]]) -> None:
    ws, ids, _ = plant
    store, log = _store(ws)
    _truth(store, ids[::4], seed=4)
    log.close()
    assert _hits(ws) == DAYS
    late = ids[-3]                                       # a label on the last day, inserted
    with ws.store.write() as conn:                       # straight into the table
        conn.execute(insert(feedback), [{"usecase": "failure", "prediction_id": late,
                                         "value": 1, "source": "sql", "actor": "etl",
                                         "received_at": NOW}])
    assert _hits(ws) == 0                      # the feedback moved: nothing trusted
    # Even with the observer's state brought up to date, that day's own count tells.
    cache = label_rollup.label_cache_for(ws)
    cache.put_state("failure", reader.feedback_state(ws, "failure"))
    assert _hits(ws) == DAYS - 1
    cached = _series(ws)
    assert cached == _cold(ws)


def test_an_observer_that_fails_loses_no_feedback(plant: tuple[Workspace, list[str], list[str]],
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    ws, ids, _ = plant
    store, log = _store(ws)
    _truth(store, ids[::5], seed=5)
    assert _hits(ws) == DAYS

    def broken(*_a: Any, **_k: Any) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(label_rollup.LabelCache, "put", broken)
    monkeypatch.setattr(label_rollup.LabelCache, "put_state", broken)
    result = store.add("failure", [{"prediction_id": ids[1], "value": 1}], actor="ana",
                       source="api")
    log.close()
    monkeypatch.undo()
    assert result.added == 1
    assert store.count("failure") == len(ids[::5]) + 1
    assert _hits(ws) == 0                      # the files missed it: read cold instead
    assert _series(ws) == _cold(ws)
