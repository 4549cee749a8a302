"""Ground truth against the real stores: matched to the prediction log, idempotent, audited."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from planta.store.audit import AuditLog
from planta.store.feedback import FeedbackStore
from planta.store.ids import id_range, new_id, reserve
from planta.store.metadata import Store, open_store, utc_now
from planta.store.predictions import LogEntry, PredictionLog


def log_request(log: PredictionLog, n: int, *, usecase: str = "failure", at: Any = None,
                entities: list[Any] | None = None) -> list[str]:
    first = log.write_now(LogEntry(
        first_id=reserve(n), n=n, at=at or utc_now(), usecase=usecase, version=1,
        route="production", channel="sync", caller="line-4", entities=entities,
        inputs_json=json.dumps([{"torque_nm": 40.0 + i} for i in range(n)]),
        outputs_json=json.dumps({"prediction": [0] * n, "probability": [0.1] * n,
                                 "score": None})))
    return id_range(first, n)


@pytest.fixture
def log(store: Store):
    with PredictionLog(store) as opened:
        yield opened


@pytest.fixture
def sqlite_log(tmp_path: Path):
    with open_store(f"sqlite:///{tmp_path / 'planta.db'}") as store, \
            PredictionLog(store) as opened:
        yield opened


def test_the_same_feedback_twice_changes_nothing_and_corrections_are_audited(
        log: PredictionLog, store: Store) -> None:
    truth = FeedbackStore(store, log)
    ids = log_request(log, 3)
    items = [{"prediction_id": ids[0], "value": 1}, {"prediction_id": ids[2], "value": 0}]
    first = truth.add("failure", items, actor="ana", source="api")
    assert (first.added, first.unchanged, first.updated, first.unknown) == (2, 0, 0, [])
    again = truth.add("failure", items, actor="ana", source="api")
    assert (again.added, again.unchanged, again.updated) == (0, 2, 0)
    # 1.0 (a CSV column with a gap) is the same value as 1; no event for an unchanged call.
    same = truth.add("failure", [{"prediction_id": ids[0], "value": 1.0}], actor="luis",
                     source="file:labels.csv")
    assert same.unchanged == 1
    assert AuditLog(store).events(action="feedback_correct") == []
    fixed = truth.add("failure", [{"prediction_id": ids[2], "value": 1},
                                  {"prediction_id": ids[0].lower(), "value": 1}],
                      actor="luis", source="file:labels.csv")
    assert (fixed.added, fixed.unchanged, fixed.updated) == (0, 1, 1)
    events = AuditLog(store).events(action="feedback_correct")
    assert len(events) == 1 and events[0].actor == "luis"
    assert events[0].payload["corrections"] == [{"prediction_id": ids[2], "old": 0, "new": 1}]
    pairs = truth.joined("failure")
    assert [(r.prediction_id, v) for r, v in pairs] == [(ids[0], 1), (ids[2], 1)]
    assert pairs[0][0].inputs == {"torque_nm": 40.0}
    assert truth.count("failure") == 2


def test_unknown_items_are_reported_by_index_and_the_rest_recorded(
        sqlite_log: PredictionLog) -> None:
    log = sqlite_log
    truth = FeedbackStore(log.store, log)
    ids = log_request(log, 2)
    elsewhere = log_request(log, 1, usecase="quality")[0]
    result = truth.add("failure", [
        {"prediction_id": ids[0], "value": "yes"},
        {"prediction_id": "P-17", "value": 1},
        {"prediction_id": new_id(), "value": 1},
        {"prediction_id": elsewhere, "value": 1},
        {"prediction_id": ids[1], "value": None},
        {"value": 1},
        {"entity": "M-1", "event_time": "yesterday", "value": 1},
        "not an object",  # type: ignore[list-item]
    ], actor="ana", source="api")
    assert result.added == 1
    reasons = dict(result.unknown)
    assert sorted(reasons) == [1, 2, 3, 4, 5, 6, 7]
    assert "not a prediction id" in reasons[1]
    assert "no prediction" in reasons[2] and "in the log" in reasons[2]
    assert "'quality'" in reasons[3]
    assert reasons[4] == "the value is empty"
    assert "prediction_id" in reasons[5] and "entity" in reasons[5]
    assert "not a time" in reasons[6]
    assert result.to_dict()["unknown"][0] == {"index": 1, "reason": reasons[1]}
    assert [v for _, v in truth.joined("failure")] == ["yes"]


def test_repeated_ids_in_one_call_keep_the_last_value(sqlite_log: PredictionLog) -> None:
    truth = FeedbackStore(sqlite_log.store, sqlite_log)
    pid = log_request(sqlite_log, 1)[0]
    result = truth.add("failure", [{"prediction_id": pid, "value": 0},
                                   {"prediction_id": pid, "value": 0},
                                   {"prediction_id": pid, "value": 1}], actor="ana", source="api")
    assert (result.added, result.unchanged, result.updated) == (1, 1, 1)
    assert [v for _, v in truth.joined("failure")] == [1]


def test_an_entity_event_matches_its_latest_prediction_before_it(log: PredictionLog,
                                                                  store: Store) -> None:
    now = utc_now().replace(microsecond=0)
    old = log_request(log, 1, at=now - timedelta(hours=30), entities=["M-1"])[0]
    earlier = log_request(log, 2, at=now - timedelta(hours=5), entities=["M-2", "M-1"])
    numeric = log_request(log, 1, at=now - timedelta(hours=3), entities=[17.0])[0]
    latest = log_request(log, 2, at=now - timedelta(hours=1), entities=["M-1", "M-1%"])
    log_request(log, 1, at=now + timedelta(hours=1), entities=["M-1"])  # after the event
    truth = FeedbackStore(store, log)
    result = truth.add("failure", [
        {"entity": "M-1", "event_time": now, "value": 1},
        {"entity": "M-1", "event_time": (now - timedelta(hours=4)).isoformat(), "value": 0},
        {"entity": 17, "event_time": now.replace(tzinfo=None).isoformat(), "value": 1},
        {"entity": "M-1", "event_time": now - timedelta(hours=30, minutes=-1), "value": 1},
        {"entity": "M-9", "event_time": now, "value": 1},
        {"entity": "M-1", "event_time": now - timedelta(days=20), "value": 1},
    ], actor="ana", source="api")
    assert result.added == 4
    assert [i for i, _ in result.unknown] == [4, 5]
    assert "no prediction for entity 'M-9' in the 24 h before" in result.unknown[0][1]
    # One entity: the log is pre-filtered in SQL, where % and _ must not act as wildcards.
    alone = truth.add("failure", [{"entity": "M-1%", "event_time": now, "value": 0}],
                      actor="ana", source="api")
    assert alone.added == 1
    matched = {r.prediction_id: v for r, v in truth.joined("failure")}
    assert matched == {latest[0]: 1, earlier[1]: 0, numeric: 1, old: 1, latest[1]: 0}


def test_joined_keeps_the_prediction_time_window(sqlite_log: PredictionLog) -> None:
    now = utc_now()
    week_ago = log_request(sqlite_log, 1, at=now - timedelta(days=7))[0]
    today = log_request(sqlite_log, 1, at=now)[0]
    truth = FeedbackStore(sqlite_log.store, sqlite_log)
    truth.add("failure", [{"prediction_id": week_ago, "value": 1},
                          {"prediction_id": today, "value": 0}], actor="ana", source="api")
    recent = truth.joined("failure", since=now - timedelta(days=1))
    assert [r.prediction_id for r, _ in recent] == [today]
    assert [r.prediction_id for r, _ in truth.joined("failure", until=now)] == [week_ago]
    assert truth.joined("quality") == []
