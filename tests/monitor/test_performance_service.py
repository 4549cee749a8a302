"""Performance over time on a real project: a SQLite file, a trained AI4I model in production,
predictions written by the real prediction log, ground truth through the real feedback store.

The service must count what was logged, compute realised metrics exactly as the metrics module
does on the same rows, give the same sums in SQLite and in Python, read labels however they
were spelled, notice new rows after it remembered a window, and speak in plant words.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from trained_plants import trained_plant
from typer.testing import CliRunner

from planta.cli.app import app
from planta.core.metrics import binary_metrics
from planta.core.spec import UseCase
from planta.errors import InputError, NotFoundError
from planta.i18n import say, translator
from planta.project import Project
from planta.services import performance as perf
from planta.services import performance_log as reader
from planta.services.demo import demo_data
from planta.services.ingest import ingest
from planta.services.predict import Scorer
from planta.services.versions import load_bundle, train_version
from planta.services.workspace import Workspace
from planta.store.feedback import FeedbackStore
from planta.store.ids import reserve
from planta.store.predictions import LogEntry, PredictionLog

DAY0 = datetime(2026, 3, 2, tzinfo=UTC)  # a Monday, midnight UTC
DAYS = 4
PER_DAY = 300


@pytest.fixture(scope="module")
def plant(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, dict]]:
    """Use case 'failure' (recall>=0.5) trained on 2,000 AI4I rows, in production; four days of
    300 predictions each on later rows, logged one request per record except one request of
    25 records a day; ground truth for the first 200 of each day, spelled in four ways."""
    ws, data = _make_plant(tmp_path_factory.mktemp("perf") / "plant")
    yield ws, data
    ws.close()


def _make_plant(root: Path, env: dict[str, str] | None = None) -> tuple[Workspace, dict]:
    ws, scorer, raw = trained_plant(root, env)
    later = raw.iloc[2000:2000 + DAYS * PER_DAY].reset_index(drop=True)
    truth = later["Machine failure"].to_numpy()
    records = [{f.name: row[f.label] if f.label in row else row.get(f.name)
                for f in scorer.contract.fields if f.role not in ("target", "ignored")}
               for row in later.to_dict("records")]
    batch = scorer.predict(records, range_policy="flag")
    prob = np.asarray(batch.probability, dtype=float)
    ids: list[str] = []
    log = PredictionLog(ws.store)
    try:
        for day in range(DAYS):
            start = day * PER_DAY
            single = range(start, start + PER_DAY - 25)
            for i in single:
                at = DAY0 + timedelta(days=day, seconds=60 * (i - start))
                first = reserve(1)
                log.submit(_entry(first, 1, at, batch, [i]))
                ids.append(first)
            many = list(range(start + PER_DAY - 25, start + PER_DAY))
            first = reserve(len(many))
            log.write_now(_entry(first, len(many), DAY0 + timedelta(days=day, hours=23),
                                 batch, many))
            ids.extend(first + k for k in range(len(many)))
    finally:
        log.close()
    from planta.store.ids import encode
    pids = [encode(i) for i in ids]
    spellings = [lambda v: int(v), lambda v: str(v), lambda v: float(v),
                 lambda v: "yes" if v else "no"]
    items = []
    labelled: list[int] = []
    for day in range(DAYS):
        for i in list(range(day * PER_DAY, day * PER_DAY + 175)) + list(
                range(day * PER_DAY + PER_DAY - 25, day * PER_DAY + PER_DAY)):
            items.append({"prediction_id": pids[i], "value": spellings[i % 4](int(truth[i]))})
            labelled.append(i)
    # One label nobody can read: counted, never guessed.
    items.append({"prediction_id": pids[180], "value": "maybe"})
    with PredictionLog(ws.store) as reader:
        result = FeedbackStore(ws.store, reader).add("failure", items, actor="ana", source="test")
    assert result.unknown == []
    perf.clear_memory(ws)
    return ws, {"prob": prob, "truth": truth, "labelled": labelled,
                "threshold": scorer.predictor.threshold, "pids": pids}


def _entry(first: int, n: int, at: datetime, batch, rows: list[int],
           usecase: str = "failure") -> LogEntry:
    outputs = {"prediction": [batch.prediction[i] for i in rows],
               "probability": (None if batch.probability is None
                               else [batch.probability[i] for i in rows]),
               "score": None if batch.score is None else [batch.score[i] for i in rows]}
    return LogEntry(first_id=first, n=n, at=at, usecase=usecase, version=batch.version,
                    route="production", channel="sync", caller="line-4",
                    inputs_json=json.dumps([batch.inputs[i] if batch.inputs else {}
                                            for i in rows]),
                    outputs_json=json.dumps(outputs))


def _series(ws: Workspace, **kw) -> perf.PerformanceSeries:
    return perf.performance_over_time(ws, "failure", since=DAY0, until=DAY0 + timedelta(days=DAYS),
                                      window=timedelta(days=1), now=DAY0 + timedelta(days=30),
                                      **kw)


def test_counts_and_realised_metrics_match_the_metrics_module(plant) -> None:
    ws, data = plant
    series = _series(ws)
    assert [w.n_predictions for w in series.windows] == [PER_DAY] * DAYS
    assert [w.n_labelled for w in series.windows] == [200] * DAYS  # 180: "maybe", unread
    assert [w.n_unreadable for w in series.windows] == [1, 0, 0, 0]
    for day, w in enumerate(series.windows):
        rows = [i for i in data["labelled"] if day * PER_DAY <= i < (day + 1) * PER_DAY]
        expected = binary_metrics(data["truth"][rows], data["prob"][rows], data["threshold"])
        assert w.realised is not None
        for name in ("recall", "precision", "accuracy"):
            got, want = w.realised[name].value, expected[name]
            assert got == pytest.approx(want, abs=1e-12) or (np.isnan(got) and np.isnan(want))
        # Ranking metrics only when the objective names them (recall>=… here): their
        # bootstrap was most of a window's cost.
        assert "roc_auc" not in w.realised and "pr_auc" not in w.realised
        assert w.realised["accuracy"].lower <= w.realised["accuracy"].value \
            <= w.realised["accuracy"].upper


def test_estimates_come_from_every_prediction_and_sqlite_agrees_with_python(plant) -> None:
    ws, data = plant
    perf.clear_memory(ws)
    in_sql = _series(ws)
    perf.clear_memory(ws)
    in_python = _series(ws, engine_sql=False)
    for day, (a, b) in enumerate(zip(in_sql.windows, in_python.windows, strict=True)):
        p = data["prob"][day * PER_DAY:(day + 1) * PER_DAY]
        alarm = p >= data["threshold"]
        expected_recall = p[alarm].sum() / p.sum()
        assert a.estimated["recall"].value == pytest.approx(expected_recall, rel=1e-9)
        for name, est in a.estimated.items():
            other = b.estimated[name]
            assert (est.value, est.lower, est.upper) == pytest.approx(
                (other.value, other.lower, other.upper), rel=1e-9, nan_ok=True)


def test_remembered_windows_notice_new_predictions(plant, monkeypatch) -> None:
    ws, data = plant
    # A changed window is re-read alone (from the log's side) while it is under half the log.
    monkeypatch.setattr(perf, "_WINDOW_SHARE", 0.5)
    perf.clear_memory(ws)
    before = _series(ws)
    again = _series(ws)
    assert again.to_dict() == before.to_dict()
    # A late edge upload into day 2: the window's count changes, so its sums are re-read.
    at = DAY0 + timedelta(days=2, hours=5)
    with PredictionLog(ws.store) as log:
        log.write_now(LogEntry(first_id=reserve(1), n=1, at=at, usecase="failure", version=1,
                               route="production", channel="edge", caller="edge-7",
                               inputs_json="[{}]", outputs_json=json.dumps(
                                   {"prediction": ["1"], "probability": [0.99], "score": None})))
    after = _series(ws)
    assert after.windows[2].n_predictions == PER_DAY + 1
    assert after.windows[2].estimated["recall"].value != before.windows[2].estimated[
        "recall"].value
    assert [w.n_predictions for w in after.windows[:2]] == [PER_DAY, PER_DAY]
    assert [w.n_labelled for w in after.windows] == [w.n_labelled for w in before.windows]
    assert after.windows[2].realised == before.windows[2].realised


def test_signals_verdicts_and_words(plant) -> None:
    ws, _ = plant
    series = _series(ws)
    signals = series.signals()
    for name in ("recall", "precision", "f1", "estimated_recall", "estimated_precision",
                 "labelled_rows", "labelled_rows_total"):
        assert name in signals, name
    assert signals["labelled_rows"] == 200
    assert signals["labelled_rows_total"] == 800
    assert signals["target_recall"] == 0.5
    verdict = series.verdict()
    if verdict is not None:
        assert signals["objective_met"] == (1.0 if verdict.state == "met" else 0.0)
    else:
        assert "objective_met" not in signals
    measured = series.latest_labelled().realised_verdict
    assert ("objective_met_measured" in signals) == measured.decided
    doc = json.loads(json.dumps(series.to_dict()))
    assert doc["metric"] == "recall" and doc["targets"] == {"recall": 0.5}
    assert "recall" in doc["validation"]
    assert any(s.startswith("Out of 100 real machine failures, the model caught about")
               for s in doc["sentences"]), doc["sentences"]
    # The same story in Spanish, from the sentences kept as data (the UI and CLI say them).
    spanish = [say(d, translator("es")) for d in doc["sentences_said"]]
    assert spanish == series.sentences(translator("es"))
    assert any(s.startswith("De cada 100 machine failures reales, el modelo detectó unos")
               for s in spanish), spanish
    assert any("cuando se validó" in s for s in spanish), spanish
    assert "1 ground-truth value matches none of the model's classes" in " ".join(doc["notes"])


def test_windows_outside_the_log_are_empty_and_bad_windows_are_refused(plant) -> None:
    ws, _ = plant
    series = perf.performance_over_time(ws, "failure", since=DAY0 - timedelta(days=3),
                                        until=DAY0, window=timedelta(days=1))
    assert [w.n_predictions for w in series.windows] == [0, 0, 0]
    assert all(w.realised is None and w.estimated == {} for w in series.windows)
    assert "objective_met" not in series.signals()
    with pytest.raises(InputError):
        perf.performance_over_time(ws, "failure", since=DAY0, until=DAY0 + timedelta(days=500),
                                   window=timedelta(hours=1))
    with pytest.raises(InputError):
        perf.performance_over_time(ws, "failure", since=DAY0, window=timedelta(0))
    with pytest.raises(NotFoundError):
        perf.performance_over_time(ws, "nothing", since=DAY0)


def test_cli_prints_the_story_and_json(plant, monkeypatch: pytest.MonkeyPatch) -> None:
    ws, _ = plant
    monkeypatch.chdir(ws.project.root)
    runner = CliRunner()
    result = runner.invoke(app, ["performance", "failure", "--since", "2026-03-02",
                                 "--until", "2026-03-06", "--window", "1d", "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    assert len(doc["windows"]) == DAYS and doc["signals"]["labelled_rows_total"] == 800
    text = runner.invoke(app, ["performance", "failure", "--since", "2026-03-02",
                               "--until", "2026-03-06"])
    assert text.exit_code == 0, text.output
    assert "real machine failures" in text.output
    bad = runner.invoke(app, ["performance", "failure", "--window", "soon"])
    assert bad.exit_code == 2
    # Once through the installed command, as a user runs it.
    import shutil
    import subprocess
    import sys

    planta = shutil.which("planta") or str(Path(sys.executable).with_name("planta"))
    done = subprocess.run([planta, "performance", "failure", "--since", "2026-03-02",
                           "--until", "2026-03-06", "--json"], cwd=ws.project.root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["windows"][0]["n_predictions"] == PER_DAY
    missing = subprocess.run([planta, "performance", "nothing"], cwd=ws.project.root,
                             capture_output=True, text=True, timeout=120)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr


def test_the_page_draws_measured_and_estimated_beside_validation(plant) -> None:
    from starlette.testclient import TestClient

    from planta.server.app import create_app
    from planta.server.runtime import ServeOptions

    ws, _ = plant
    app = create_app(ws, ServeOptions(worker=False))
    until = (DAY0 + timedelta(days=DAYS)).strftime("%Y-%m-%d")
    with TestClient(app, base_url="http://127.0.0.1") as client:
        page = client.get(f"/ui/usecases/failure/performance?since=7d&window=1d&until={until}")
        assert page.status_code == 200, page.text
        html = page.text
        recall = html.split('data-metric="recall"')[1].split("</section>")[0]
        assert recall.count('class="measured"') == DAYS
        assert recall.count('class="estimated"') == DAYS
        assert 'class="validation"' in recall and 'class="goal"' in recall
        assert "Out of 100 real machine failures" in html
        assert "<script" not in html.split("</header>")[-1]
        spanish = client.get(f"/ui/usecases/failure/performance?lang=es&until={until}"
                             "&since=7d")
        assert spanish.status_code == 200
        assert "¿Qué tal lo está haciendo el modelo?" in spanish.text
        assert client.get("/ui/usecases/nothing/performance").status_code == 404


def test_an_objective_missed_with_confidence_says_so(plant, monkeypatch) -> None:
    import dataclasses

    from planta.core.spec import Task, parse_objective

    ws, _ = plant
    strict = dataclasses.replace(ws.project.usecase("failure"),
                                 objective=parse_objective("accuracy>=0.999", Task.BINARY))
    monkeypatch.setattr(ws.project, "usecase", lambda name: strict)
    series = _series(ws)
    assert series.latest_labelled().realised_verdict.state == "not_met"
    signals = series.signals()
    assert signals["objective_met"] == 0.0 and signals["objective_met_measured"] == 0.0
    assert any(s.startswith("The objective is no longer met, with confidence")
               for s in series.sentences())


def test_three_ways_of_reading_labels_agree(plant) -> None:
    """SQLite from the labels' side, SQLite from the log's side, and the portable statements
    other engines run (here on the same SQLite file) find the same labelled predictions."""
    from planta.core.spec import Task

    ws, _ = plant
    a, b = DAY0, DAY0 + timedelta(days=DAYS)

    def rows(labels) -> list[tuple]:
        at = [str(x).replace("T", " ") for x in np.asarray(labels.at, dtype="datetime64[us]")]
        return sorted(zip(at, map(str, labels.values), labels.served, labels.versions,
                          strict=True))

    wide = rows(reader.read_labels(ws, "failure", Task.BINARY, a, b, few=False))
    narrow = rows(reader.read_labels(ws, "failure", Task.BINARY, a, b, few=True))
    portable = rows(reader.read_labels(ws, "failure", Task.BINARY, a, b, few=True, portable=True))
    assert len(wide) == DAYS * 200 + 1
    assert wide == narrow
    assert [r[0] for r in wide] == [r[0] for r in portable]
    assert [r[2] for r in wide] == pytest.approx([r[2] for r in portable], rel=1e-12)


def test_a_new_process_reuses_the_project_cache_and_survives_a_damaged_one(
        plant, monkeypatch) -> None:
    ws, _ = plant
    perf.clear_memory(ws)
    first = _series(ws).to_dict()
    perf.clear_memory()                       # this process forgets; the cache file stays

    def refuse(*args, **kwargs):
        raise AssertionError("the log was read again")

    with monkeypatch.context() as m:
        m.setattr(reader, "sum_in_sqlite", refuse)
        m.setattr(reader, "read_labels", refuse)
        assert _series(ws).to_dict() == first
    (cache,) = (ws.project.root / ".planta" / "cache" / "performance").glob("*.json")
    cache.write_text("{not json")
    perf.clear_memory()
    assert _series(ws).to_dict() == first
    assert json.loads(cache.read_text())["format"].startswith("planta.performance-cache")


@pytest.mark.parametrize(("task", "target"), [("multiclass", "Type"),
                                              ("regression", "Torque [Nm]")])
def test_multiclass_is_estimated_and_regression_only_measured(
        task: str, target: str, tmp_path_factory: pytest.TempPathFactory) -> None:
    from planta.core.metrics import multiclass_metrics, regression_metrics

    root = tmp_path_factory.mktemp(task) / "plant"
    Project.init(root, name="plant")
    project = Project.open(root)
    objective = "accuracy>=0.3" if task == "multiclass" else "mae<=20"
    project.add_usecase(UseCase.from_dict("u", {"task": task, "target": target,
                                                "objective": objective}))
    ws = Workspace.from_project(project)
    try:
        raw = pd.read_csv(demo_data()).sample(n=1700, random_state=1).reset_index(drop=True)
        raw.iloc[:1500].to_csv(root / "history.csv", index=False)
        ingest(ws, "u", root / "history.csv")
        trained = train_version(ws, "u", budget_s=1.0)
        ws.registry.move("u", trained.version, "production", action="promote", actor="ana",
                         role="admin", reason="test", exception=trained.state == "rejected")
        scorer = Scorer.from_bundle(load_bundle(ws, "u"), version=trained.version)
        later = raw.iloc[1500:].reset_index(drop=True)
        records = [{f.name: row.get(f.label, row.get(f.name)) for f in scorer.contract.fields
                    if f.role not in ("target", "ignored")} for row in later.to_dict("records")]
        batch = scorer.predict(records, range_policy="flag")
        with PredictionLog(ws.store) as log:
            first = reserve(len(records))
            log.write_now(_entry(first, len(records), DAY0 + timedelta(hours=3), batch,
                                 list(range(len(records))), usecase="u"))
            from planta.store.ids import encode
            items = [{"prediction_id": encode(first + i), "value": later[target][i]}
                     for i in range(0, len(records), 2)]
            assert not FeedbackStore(ws.store, log).add("u", items, actor="ana",
                                                        source="test").unknown
        series = perf.performance_over_time(ws, "u", since=DAY0, until=DAY0 + timedelta(days=1),
                                            now=DAY0 + timedelta(days=2), remember=False)
        (w,) = series.windows
        assert w.n_predictions == len(records) and w.n_labelled == len(items)
        truth = later[target].to_numpy()[::2]
        if task == "multiclass":
            classes = list(scorer.classes)
            y = np.asarray([classes.index(str(v)) for v in truth])
            pred = np.asarray([classes.index(str(v)) for v in batch.prediction[::2]])
            assert w.realised["accuracy"].value == pytest.approx(
                multiclass_metrics(y, pred)["accuracy"])
            top = np.asarray([max(p.values()) for p in batch.probability])
            assert w.estimated["accuracy"].value == pytest.approx(top.mean())
        else:
            assert w.estimated == {} and not series.estimable
            assert any("cannot be estimated" in n for n in series.notes)
            assert w.realised["mae"].value == pytest.approx(
                regression_metrics(truth.astype(float), np.asarray(batch.score[::2]))["mae"])
    finally:
        ws.close()


@pytest.mark.postgres
def test_on_postgresql_the_portable_path_gives_the_same_numbers(
        postgres_url: str, tmp_path: Path) -> None:
    ws, data = _make_plant(tmp_path / "plant", env={"PLANTA_STORE_URL": postgres_url})
    try:
        assert ws.store.dialect == "postgresql"
        series = _series(ws)
        assert [w.n_predictions for w in series.windows] == [PER_DAY] * DAYS
        assert [w.n_labelled for w in series.windows] == [200] * DAYS
        assert [w.n_unreadable for w in series.windows] == [1, 0, 0, 0]
        for day, w in enumerate(series.windows):
            p = data["prob"][day * PER_DAY:(day + 1) * PER_DAY]
            alarm = p >= data["threshold"]
            assert w.estimated["recall"].value == pytest.approx(p[alarm].sum() / p.sum())
            rows = [i for i in data["labelled"] if day * PER_DAY <= i < (day + 1) * PER_DAY]
            want = binary_metrics(data["truth"][rows], data["prob"][rows], data["threshold"])
            assert w.realised["accuracy"].value == pytest.approx(want["accuracy"])
    finally:
        ws.close()
