"""`planta predictions` and `planta feedback`, as a plant engineer would type them."""

from __future__ import annotations

import json
import subprocess
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest
from clikit import PLANTA, planta, planta_json, runner

from planta.cli.app import app
from planta.services.workspace import Workspace
from planta.store.ids import id_range, reserve
from planta.store.metadata import utc_now
from planta.store.predictions import LogEntry, PredictionLog


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    root = tmp_path / "plant-a"
    planta("init", str(root))
    monkeypatch.chdir(root)
    planta("usecase", "add", "failure", "--target", "Machine failure", "--entity", "Machine")
    return root


def log_requests(root: Path) -> dict[str, list[str]]:
    """Two requests of version 1 two hours ago, one of version 2 now."""
    ws = Workspace.open(root)
    ids: dict[str, list[str]] = {}
    try:
        with PredictionLog(ws.store) as log:
            for name, n, version, hours, machines in (("old", 2, 1, 2, ["M-1", "M-2"]),
                                                      ("new", 3, 2, 0, ["M-1", "M-3", "M-4"])):
                first = log.write_now(LogEntry(
                    first_id=reserve(n), n=n, at=utc_now() - timedelta(hours=hours),
                    usecase="failure", version=version, route="production", channel="sync",
                    caller="line-4", latency_ms=2.5, entities=machines,
                    inputs_json=json.dumps([{"machine": m, "torque_nm": 40.0 + i}
                                            for i, m in enumerate(machines)]),
                    outputs_json=json.dumps({"prediction": [i % 2 for i in range(n)],
                                             "probability": [0.25] * n, "score": None})))
                ids[name] = id_range(first, n)
    finally:
        ws.close()
    return ids


def test_predictions_lists_newest_first_with_filters(project: Path) -> None:
    ids = log_requests(project)
    records = planta_json("predictions", "failure")
    assert [r["prediction_id"] for r in records] == ids["new"][::-1] + ids["old"][::-1]
    assert records[0]["inputs"] == {"machine": "M-4", "torque_nm": 42.0}
    assert records[0]["probability"] == 0.25 and records[0]["version"] == 2
    assert len(planta_json("predictions", "failure", "--since", "1h")) == 3
    assert len(planta_json("predictions", "failure", "--until", "1h")) == 2
    assert [r["entity"] for r in planta_json("predictions", "failure", "--entity", "M-1")] == [
        "M-1", "M-1"]
    assert len(planta_json("predictions", "failure", "--version", "1", "--limit", "1")) == 1
    text = planta("predictions", "failure", "--limit", "2")
    assert ids["new"][2] in text and "Predictions of failure" in text
    assert "The newest 2" in text


def test_predictions_says_what_to_do_when_there_are_none(project: Path) -> None:
    text = planta("predictions", "failure")
    assert "No predictions of failure are logged yet" in text
    assert "planta server" in text
    log_requests(project)
    text = planta("predictions", "failure", "--version", "9")
    assert "--version" in text and "drop" in text
    assert planta_json("predictions", "failure", "--version", "9") == []


def test_predictions_refuses_a_bad_use_case_or_time(project: Path) -> None:
    out = planta_json("predictions", "scrap", code=1)
    assert out["ok"] is False and out["error"] == "NotFoundError"
    result = runner.invoke(app, ["predictions", "failure", "--since", "last tuesday"])
    assert result.exit_code == 2 and "span" in result.output


def test_feedback_from_a_file_is_idempotent_and_names_unknown_rows(project: Path) -> None:
    ids = log_requests(project)
    labels = pd.DataFrame({"prediction_id": [ids["old"][0], ids["new"][1], "01J000BADID"],
                           "Machine failure": [1, 0, 1]})
    labels.to_csv(project / "labels.csv", index=False)
    out = planta_json("feedback", "labels.csv")
    assert (out["usecase"], out["added"], out["unchanged"], out["updated"]) == ("failure", 2, 0,
                                                                                0)
    assert out["value_column"] == "Machine failure"
    assert [u["index"] for u in out["unknown"]] == [2]
    again = planta_json("feedback", "labels.csv", "--usecase", "failure")
    assert (again["added"], again["unchanged"]) == (0, 2)
    labels["Machine failure"] = [1, 1, 1]
    labels.to_parquet(project / "labels.parquet")
    text = planta("feedback", "labels.parquet")
    assert "0 added, 1 unchanged, 1 updated, 1 unknown" in text
    assert "row 3:" in text and "audit" in text


def test_feedback_by_entity_and_event_time(project: Path) -> None:
    ids = log_requests(project)
    events = pd.DataFrame({"Machine": ["M-3", "M-2", "M-7"],
                           "event_time": [utc_now().isoformat()] * 3, "label": [1, 0, 1]})
    events.to_csv(project / "events.csv", index=False)
    out = planta_json("feedback", "events.csv", "--value-column", "label")
    assert out["added"] == 2 and [u["index"] for u in out["unknown"]] == [2]
    ws = Workspace.open(project)
    try:
        from planta.store.feedback import FeedbackStore

        with PredictionLog(ws.store) as log:
            joined = {r.prediction_id: v for r, v in FeedbackStore(ws.store, log).joined(
                "failure")}
    finally:
        ws.close()
    assert joined == {ids["new"][1]: 1, ids["old"][1]: 0}


def test_feedback_without_a_usable_column_says_which(project: Path) -> None:
    pd.DataFrame({"id": ["x"], "label": [1]}).to_csv(project / "bad.csv", index=False)
    out = planta_json("feedback", "bad.csv", code=1)
    assert out["error"] == "InputError" and "'prediction_id'" in out["message"]


def test_the_installed_command_prints_the_log(project: Path) -> None:
    ids = log_requests(project)
    done = subprocess.run([PLANTA, "predictions", "failure", "--json"], cwd=project,
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert {r["prediction_id"] for r in json.loads(done.stdout)} == set(ids["new"] + ids["old"])
