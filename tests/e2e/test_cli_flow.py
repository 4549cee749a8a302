"""The lifecycle through the `planta` command, as a plant engineer would type it.

One project is built once per module (ingest + two small trainings) and the tests walk it.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
from pathlib import Path

import pandas as pd
import pytest
from clikit import PLANTA, planta, planta_json, runner

from planta.cli.app import app
from planta.services.demo import demo_data


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "plant-a"
    cwd = os.getcwd()
    planta("init", str(root))
    os.chdir(root)
    try:
        raw = pd.read_csv(demo_data())
        raw.iloc[:3000].to_csv(root / "history.csv", index=False)
        raw.iloc[9000:9200].drop(columns=["Machine failure"]).to_csv(root / "new.csv",
                                                                      index=False)
        planta("usecase", "add", "failure", "--target", "Machine failure", "--task", "binary",
               "--objective", "recall>=0.10 and precision>=0.10")
        out = planta_json("ingest", "failure", "history.csv")
        assert out["dataset_version"] == 1
        first = runner.invoke(app, ["train", "failure", "--budget", "4", "--json"])
        assert first.exit_code in (0, 3), first.output
        second = runner.invoke(app, ["train", "failure", "--budget", "3", "--seed", "1",
                                     "--json"])
        assert second.exit_code in (0, 3), second.output
        yield root
    finally:
        os.chdir(cwd)


def test_ingest_report_names_exclusions_and_is_idempotent(project: Path) -> None:
    out = planta_json("ingest", "failure", "history.csv")
    assert out["created"] is False and out["dataset_version"] == 1
    excluded = {e["column"] for e in out["exclusions"] if not e["kept"]}
    assert {"UDI", "Product ID", "TWF", "HDF", "PWF", "OSF"} <= excluded
    assert "RNF" not in excluded
    text = planta("ingest", "failure", "history.csv")
    assert "same data as dataset version 1" in text


def test_models_list_has_intervals_and_states(project: Path) -> None:
    models = planta_json("models", "failure")
    assert [m["version"] for m in models] == [1, 2]
    for m in models:
        assert m["state"] in ("candidate", "rejected")
        assert m["metrics"]["roc_auc"]["lower"] <= m["metrics"]["roc_auc"]["value"]
    text = planta("models", "failure")
    assert "recall" in text and "Model versions of failure" in text
    trials = planta_json("trials", "failure", "1")
    assert trials and all("estimator" in t for t in trials)


def test_promote_score_rollback_and_audit(project: Path) -> None:
    states = {m["version"]: m["state"] for m in planta_json("models", "failure")}
    for version, reason in ((1, "first model"), (2, "second model")):
        extra = ["--exception"] if states[version] == "rejected" else []
        planta("promote", "failure", str(version), "--reason", reason, *extra)
    out = planta_json("score", "failure", "new.csv", "-o", "scored.csv")
    assert out["rows"] == 200 and out["model_version"] == 2
    scored = pd.read_csv(project / "scored.csv")
    assert len(scored) == 200 and set(scored["status"]) <= {"ok", "rejected"}
    assert "probability" in scored.columns
    back = planta_json("rollback", "failure", "--reason", "back to v1")
    assert back["version"] == 1
    out = planta_json("score", "failure", "new.csv", "-o", "scored.parquet")
    assert out["model_version"] == 1
    verify = planta_json("audit", "verify")
    assert verify["ok"] is True
    actions = [e["action"] for e in planta_json("audit", "log", "--limit", "100")]
    for action in ("ingest", "train", "promote", "rollback", "score"):
        assert action in actions


def test_user_mistakes_get_one_clear_line(project: Path) -> None:
    (project / "empty.csv").write_text("")
    (project / "header.csv").write_text("a,b,c\n")
    out = planta("ingest", "failure", "empty.csv", code=1)
    assert "empty.csv" in out
    out = planta("ingest", "failure", "header.csv", code=1)
    assert "header.csv" in out
    out = planta("ingest", "failure", "missing.csv", code=1)
    assert "missing.csv" in out
    out = planta("promote", "failure", "99", "--reason", "x", code=1)
    assert "99" in out
    out = planta("train", "nope", code=1)
    assert "nope" in out
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 2


def test_altered_bundle_is_refused_and_nothing_is_lost(project: Path) -> None:
    models = planta_json("models", "failure")
    digest = models[0]["bundle_digest"]
    path = project / ".planta" / "artifacts" / digest[:2] / digest[2:]
    original = path.read_bytes()
    os.chmod(path, 0o600)
    altered = bytearray(original)
    altered[len(altered) // 2] ^= 0xFF
    path.write_bytes(bytes(altered))
    try:
        out = planta("score", "failure", "new.csv", "-o", "x.csv", "--version", "1", code=1)
        assert "damaged" in out and "sha256" in out
    finally:
        path.write_bytes(original)
    planta("score", "failure", "new.csv", "-o", "x.csv", "--version", "1")


def test_tampered_audit_event_is_named(project: Path) -> None:
    db = project / ".planta" / "planta.db"
    con = sqlite3.connect(db)
    try:
        seq, payload = con.execute("SELECT seq, payload FROM audit_events WHERE action = 'promote'"
                                   " ORDER BY seq LIMIT 1").fetchone()
        con.execute("UPDATE audit_events SET payload = ? WHERE seq = ?",
                    (payload.replace("first model", "nobody approved"), seq))
        con.commit()
        out = planta("audit", "verify", code=1)
        assert str(seq) in out and "promote" in out
    finally:
        con.execute("UPDATE audit_events SET payload = ? WHERE seq = ?", (payload, seq))
        con.commit()
        con.close()
    assert planta_json("audit", "verify")["ok"] is True


def test_installed_command_help_is_fast_and_works() -> None:
    out = subprocess.run([PLANTA, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "demo" in out.stdout
