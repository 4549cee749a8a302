"""Continuous training end to end on AI4I 2020: a SQLite project, the real CLI, the real
prediction log and feedback store, then `planta retrain` and `planta compare`.

The production model is trained on 600 rows whose failure labels were shuffled (a model that
learned nothing, as after a sensor swap); 4,000 later records are scored by it, logged, and
labelled by the plant. The retrained version learns from them and must beat production with
confidence on the same held-out records.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from planta.cli.app import app
from planta.core.lifecycle import State
from planta.core.spec import Task
from planta.services.predict import Scorer
from planta.services.retrain import (
    POLICY_ACTOR,
    apply_policy,
    build_dataset,
    compare_versions,
    label_key,
    map_labels,
)
from planta.services.versions import load_bundle
from planta.services.workspace import Workspace
from planta.store.feedback import FeedbackStore
from planta.store.ids import id_range, reserve
from planta.store.metadata import utc_now
from planta.store.predictions import LogEntry, PredictionLog

AI4I = Path(__file__).resolve().parents[2] / "src" / "planta" / "data" / "ai4i2020.csv"
BUDGET = "3"
runner = CliRunner()


def run(*args: str, code: int = 0) -> Any:
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == code, f"planta {' '.join(args)} -> {result.exit_code}:\n" \
                                     f"{result.output}"
    return json.loads(result.output)


def _project(root: Path, monkeypatch: pytest.MonkeyPatch, policy: str, objective: str) -> None:
    run("init", str(root))
    monkeypatch.chdir(root)
    run("usecase", "add", "failure", "--target", "Machine failure", "--objective", objective)
    toml = root / "planta.toml"
    toml.write_text(toml.read_text() + f'gate_on = "point"\nretrain_policy = "{policy}"\n')


@pytest.fixture(scope="module")
def ai4i() -> pd.DataFrame:
    return pd.read_csv(AI4I).sample(4600, random_state=7).reset_index(drop=True)


def _log_and_label(root: Path, rows: pd.DataFrame, version: int) -> list[str]:
    """Score ``rows`` with ``version`` as the server would, log them, send their labels."""
    ws = Workspace.open(root)
    try:
        scorer = Scorer.from_bundle(load_bundle(ws, "failure", version), version=version)
        contract = scorer.contract
        canonical = {c: contract.resolve(c) for c in rows.columns}
        records = [{canonical[c]: v for c, v in rec.items()
                    if canonical[c] is not None and canonical[c] != contract.target}
                   for rec in rows.to_dict("records")]
        ids: list[str] = []
        with PredictionLog(ws.store) as log:
            for start in range(0, len(records), 500):
                chunk = records[start:start + 500]
                batch = scorer.predict(chunk, range_policy="flag")  # as `[serve] range_policy`
                first = log.write_now(LogEntry(
                    first_id=reserve(len(chunk)), n=len(chunk), at=utc_now(),
                    usecase="failure", version=version, route="production", channel="sync",
                    caller="line-4", inputs_json=json.dumps(chunk),
                    outputs_json=json.dumps(batch.outputs())))
                ids.extend(id_range(first, len(chunk)))
            # Labels arrive as the plant writes them: text, numbers and booleans mixed.
            truth = rows["Machine failure"].to_numpy()
            forms = (lambda v: str(int(v)), lambda v: int(v), lambda v: bool(v))
            items = [{"prediction_id": pid, "value": forms[i % 3](truth[i])}
                     for i, pid in enumerate(ids)]
            result = FeedbackStore(ws.store, log).add("failure", items, actor="qa",
                                                      source="file:labels.csv")
            assert result.added == len(ids) and not result.unknown
    finally:
        ws.close()
    return ids


# TestClient over httpx (the version page): Starlette's notice about its future transport.
@pytest.mark.filterwarnings("ignore:Using `httpx` with `starlette.testclient`")
def test_retrain_beats_a_blind_champion_and_canary_policy_moves_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ai4i: pd.DataFrame) -> None:
    root = tmp_path / "plant"
    # A low bar: the blind production model must pass it whatever its luck on 120 rows.
    _project(root, monkeypatch, "canary", "roc_auc>=0.05")
    base = ai4i.iloc[:600].copy()
    base["Machine failure"] = np.random.default_rng(0).permutation(
        base["Machine failure"].to_numpy())
    base.to_csv(tmp_path / "base.csv", index=False)
    run("ingest", "failure", str(tmp_path / "base.csv"))
    assert run("train", "failure", "--budget", BUDGET)["version"] == 1
    run("promote", "failure", "1", "--reason", "first model")

    later = ai4i.iloc[600:].reset_index(drop=True)
    ids = _log_and_label(root, later, 1)
    assert len(ids) == len(later) == 4000

    out = run("retrain", "failure", "--budget", "5", "--reason", "new labels arrived")
    assert out["version"] == 2 and out["gate_passed"] and out["champion"] == 1
    assert out["feedback_rows"] == 4000 and out["base_dataset_version"] == 1
    comparison = out["comparison"]
    assert comparison["verdict"] == "better", (comparison, out)
    assert comparison["p_value"] < 0.05
    assert comparison["rows"]["n"] > 400 and comparison["rows"]["seen_by_champion"] > 0
    assert comparison["words"][0].startswith(f"On the same {comparison['rows']['n']} recent")
    assert out["moved_to"] == "canary" and out["state"] == State.CANARY.value

    ws = Workspace.open(root)
    try:
        # Lineage to both: the base dataset version and every labelled prediction.
        dv = ws.registry.get_dataset_version("failure", out["dataset_version"])
        lineage = dv.report["lineage"]
        assert lineage["base_dataset_version"] == 1 and lineage["feedback_rows"] == 4000
        assert dv.n_accepted == 600 + 4000
        listed = json.loads(ws.artifacts.get_bytes(lineage["feedback_sha256"]))
        assert sorted(p for p, _ in listed["predictions"]) == sorted(ids)
        assert ws.registry.get_model("failure", 2).dataset_version == dv.version
        # Built on the latest ingested version, never on a retrain's: nothing new, same data.
        again = build_dataset(ws, "failure", actor="qa")
        assert (again.version, again.created, again.n_feedback) == (dv.version, False, 4000)
        # The comparison report is an artifact, referenced from the audit trail.
        events = {e.action: e for e in ws.audit.events(limit=None)}
        for action in ("retrain_data", "train", "compare", "canary", "retrain"):
            assert action in events, action
        assert events["canary"].actor == POLICY_ACTOR
        assert events["retrain"].payload["comparison_sha256"] == out["comparison_sha256"]
        assert ws.audit.verify().ok
        # The policy never moves a version that is not better with confidence, nor one that
        # failed the gate; a person takes it off canary first.
        run("stop", "failure", "2", "--reason", "check the policy")
        uc = ws.project.usecase("failure")
        lines: list[str] = []
        assert apply_policy(ws, uc, 2, True, {"verdict": "unclear", "champion": 1}, lines) is None
        assert apply_policy(ws, uc, 2, False, {"verdict": "better", "champion": 1}, lines) is None
        assert apply_policy(ws, uc, 2, True, None, lines) is None
        assert ws.registry.get_model("failure", 2).state == State.CANDIDATE.value
        assert "does not beat production with confidence" in lines[0]
        assert ws.registry.aliases("failure")["production"] == 1   # production untouched
    finally:
        ws.close()

    stored = run("compare", "failure", "2", "1")
    assert stored["stored"] and stored["verdict"] == "better"
    # No stored report this way round: computed on version 1's own held-out rows (its
    # shuffled data, where neither model can be right more than by chance).
    fresh = run("compare", "failure", "1", "2")
    assert not fresh["stored"] and "dataset version 1" in fresh["rows"]["source"]
    assert fresh["candidate"] == 1 and fresh["champion"] == 2
    # Recomputed from the dataset version and seed, the held-out rows are training's own.
    ws = Workspace.open(root)
    try:
        again = compare_versions(ws, "failure", 2, 1)
    finally:
        ws.close()
    assert again["rows"]["n"] == comparison["rows"]["n"]
    assert again["comparison"]["counts"] == comparison["comparison"]["counts"]
    _version_page_shows_the_paired_comparison(root, comparison["rows"]["n"])


def _version_page_shows_the_paired_comparison(root: Path, n: int) -> None:
    from starlette.testclient import TestClient

    from planta.server.app import create_app
    from planta.server.runtime import ServeOptions

    ws = Workspace.open(root)
    try:
        with TestClient(create_app(ws, ServeOptions(worker=False)),
                        base_url="http://127.0.0.1:8000") as client:
            page = client.get("/ui/usecases/failure/versions/2")
            assert page.status_code == 200, page.text
            text = " ".join(re.sub(r"<[^>]+>", " ", html.unescape(page.text)).split())
            assert 'id="paired"' in page.text and 'data-verdict="better"' in page.text
            assert f"On the same {n} recent records, this version catches" in text
            assert "unlikely to be luck (p" in text and "p is the chance" in text
            assert "Worked out when version 2 was retrained" in text
            spanish = client.get("/ui/usecases/failure/versions/2?lang=es").text
            assert "Fila a fila" in spanish and f"Sobre los mismos {n} registros" in spanish
            # Production itself has nothing to be compared with.
            assert 'id="paired"' not in client.get("/ui/usecases/failure/versions/1").text
    finally:
        ws.close()


def test_retrain_without_production_is_rejected_by_the_gate_with_exit_3(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ai4i: pd.DataFrame) -> None:
    root = tmp_path / "plant"
    _project(root, monkeypatch, "canary", "roc_auc>=0.999")
    ai4i.iloc[:800].to_csv(tmp_path / "base.csv", index=False)
    run("ingest", "failure", str(tmp_path / "base.csv"))
    out = run("retrain", "failure", "--budget", BUDGET, code=3)
    assert out["state"] == "rejected" and out["moved_to"] is None
    assert out["champion"] is None and out["comparison"] is None
    assert any("no production model yet" in line for line in out["lines"])
    assert out["feedback_rows"] == 0 and out["dataset_version"] == 1


def test_feedback_labels_map_onto_the_targets_own_values() -> None:
    known = pd.Series([0, 1, 1, 0])
    mapped, skipped = map_labels(["1", 1, True, "yes", "0", 0.0, False, "no", "maybe"], known,
                                 Task.BINARY)
    assert mapped == [1, 1, 1, 1, 0, 0, 0, 0] and skipped == [8]
    words = pd.Series(["Failure", "OK"])
    mapped, skipped = map_labels([" failure", "ok", "1"], words, Task.BINARY)
    assert mapped == ["Failure", "OK"] and skipped == [2]
    assert label_key(2.0) == "2" and label_key("2.5") == "2.5"


def test_regression_retrain_compares_errors_and_shadow_policy_follows_the_verdict(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, ai4i: pd.DataFrame) -> None:
    """Torque from the other readings: labels come back as text ("41.3"), the comparison is
    on absolute errors, and the shadow policy moves the version only if it is better."""
    root = tmp_path / "plant"
    run("init", str(root))
    monkeypatch.chdir(root)
    run("usecase", "add", "torque", "--target", "Torque [Nm]", "--task", "regression",
        "--objective", "mae<=100")
    toml = root / "planta.toml"
    toml.write_text(toml.read_text() + 'gate_on = "point"\nretrain_policy = "shadow"\n')
    failures = ["Machine failure", "TWF", "HDF", "PWF", "OSF", "RNF"]
    ai4i.iloc[:400].drop(columns=failures).to_csv(tmp_path / "base.csv", index=False)
    run("ingest", "torque", str(tmp_path / "base.csv"))
    run("train", "torque", "--budget", "2")
    run("promote", "torque", "1", "--reason", "first model")
    later = ai4i.iloc[400:1400].reset_index(drop=True)
    ws = Workspace.open(root)
    try:
        scorer = Scorer.from_bundle(load_bundle(ws, "torque", 1), version=1)
        names = {f.label: f.name for f in scorer.contract.inputs}
        records = [{names[c]: v for c, v in r.items() if c in names}
                   for r in later.to_dict("records")]
        with PredictionLog(ws.store) as log:
            first = log.write_now(LogEntry(
                first_id=reserve(len(records)), n=len(records), at=utc_now(), usecase="torque",
                version=1, route="production", channel="sync", caller="line-4",
                inputs_json=json.dumps(records), outputs_json=json.dumps(
                    scorer.predict(records, range_policy="flag").outputs())))
            items = [{"prediction_id": pid, "value": f"{v:.1f}"} for pid, v in
                     zip(id_range(first, len(records)), later["Torque [Nm]"], strict=True)]
            assert FeedbackStore(ws.store, log).add("torque", items, actor="qa",
                                                    source="api").added == len(items)
    finally:
        ws.close()
    out = run("retrain", "torque", "--budget", "2", "--reason", "torque labels")
    report = out["comparison"]["comparison"]
    assert out["feedback_rows"] == 1000 and report["task"] == "regression"
    assert report["metric"] == "mae" and report["test"]["name"] == \
        "wilcoxon_signed_rank_abs_error"
    assert out["moved_to"] == ("shadow" if out["comparison"]["verdict"] == "better" else None)
    assert out["state"] == (out["moved_to"] or "candidate")


def test_retrain_without_data_says_so_and_is_audited(tmp_path: Path,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "plant"
    _project(root, monkeypatch, "manual", "recall>=0.5")
    out = run("retrain", "failure", "--reason", "weekly", code=1)
    assert out["error"] == "NotFoundError" and "no data yet" in out["message"]
    ws = Workspace.open(root)
    try:
        [event] = ws.audit.events(action="retrain_failed")
        assert event.payload["reason"] == "weekly" and "no data" in event.payload["error"]
    finally:
        ws.close()


def test_retrain_policy_is_read_from_planta_toml_and_checked() -> None:
    from planta.core.spec import UseCase
    from planta.errors import ConfigError

    base = {"target": "Machine failure", "objective": "recall>=0.5"}
    assert UseCase.from_dict("failure", base).retrain_policy == "manual"
    canary = UseCase.from_dict("failure", base | {"retrain_policy": "canary"})
    assert canary.retrain_policy == "canary" and canary.to_dict()["retrain_policy"] == "canary"
    assert "retrain_policy" not in canary.extra
    with pytest.raises(ConfigError, match="retrain_policy = 'production'"):
        UseCase.from_dict("failure", base | {"retrain_policy": "production"})
