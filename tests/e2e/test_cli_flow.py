"""The lifecycle through the `planta` command, as a plant engineer would type it.

One project is built once per module (ingest + two small trainings) and the tests walk it.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from planta.cli.app import app
from planta.services.demo import demo_data

runner = CliRunner()
PLANTA = shutil.which("planta") or str(Path(sys.executable).with_name("planta"))


def run(*args: str, code: int = 0) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == code, f"planta {' '.join(args)} -> {result.exit_code}:\n" \
                                     f"{result.output}"
    assert "Traceback" not in result.output
    return result.output


def run_json(*args: str, code: int = 0) -> object:
    return json.loads(run(*args, "--json", code=code))


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("cli") / "plant-a"
    cwd = os.getcwd()
    run("init", str(root))
    os.chdir(root)
    try:
        raw = pd.read_csv(demo_data())
        raw.iloc[:3000].to_csv(root / "history.csv", index=False)
        raw.iloc[9000:9200].drop(columns=["Machine failure"]).to_csv(root / "new.csv",
                                                                      index=False)
        run("usecase", "add", "failure", "--target", "Machine failure", "--task", "binary",
            "--objective", "recall>=0.10 and precision>=0.10")
        out = run_json("ingest", "failure", "history.csv")
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
    out = run_json("ingest", "failure", "history.csv")
    assert out["created"] is False and out["dataset_version"] == 1
    excluded = {e["column"] for e in out["exclusions"] if not e["kept"]}
    assert {"UDI", "Product ID", "TWF", "HDF", "PWF", "OSF"} <= excluded
    assert "RNF" not in excluded
    text = run("ingest", "failure", "history.csv")
    assert "same data as dataset version 1" in text


def test_models_list_has_intervals_and_states(project: Path) -> None:
    models = run_json("models", "failure")
    assert [m["version"] for m in models] == [1, 2]
    for m in models:
        assert m["state"] in ("candidate", "rejected")
        assert m["metrics"]["roc_auc"]["lower"] <= m["metrics"]["roc_auc"]["value"]
    text = run("models", "failure")
    assert "recall" in text and "Model versions of failure" in text
    trials = run_json("trials", "failure", "1")
    assert trials and all("estimator" in t for t in trials)


def test_promote_score_rollback_and_audit(project: Path) -> None:
    states = {m["version"]: m["state"] for m in run_json("models", "failure")}
    for version, reason in ((1, "first model"), (2, "second model")):
        extra = ["--exception"] if states[version] == "rejected" else []
        run("promote", "failure", str(version), "--reason", reason, *extra)
    out = run_json("score", "failure", "new.csv", "-o", "scored.csv")
    assert out["rows"] == 200 and out["model_version"] == 2
    scored = pd.read_csv(project / "scored.csv")
    assert len(scored) == 200 and set(scored["status"]) <= {"ok", "rejected"}
    assert "probability" in scored.columns
    back = run_json("rollback", "failure", "--reason", "back to v1")
    assert back["version"] == 1
    out = run_json("score", "failure", "new.csv", "-o", "scored.parquet")
    assert out["model_version"] == 1
    verify = run_json("audit", "verify")
    assert verify["ok"] is True
    actions = [e["action"] for e in run_json("audit", "log", "--limit", "100")]
    for action in ("ingest", "train", "promote", "rollback", "score"):
        assert action in actions


def test_user_mistakes_get_one_clear_line(project: Path) -> None:
    (project / "empty.csv").write_text("")
    (project / "header.csv").write_text("a,b,c\n")
    out = run("ingest", "failure", "empty.csv", code=1)
    assert "empty.csv" in out
    out = run("ingest", "failure", "header.csv", code=1)
    assert "header.csv" in out
    out = run("ingest", "failure", "missing.csv", code=1)
    assert "missing.csv" in out
    out = run("promote", "failure", "99", "--reason", "x", code=1)
    assert "99" in out
    out = run("train", "nope", code=1)
    assert "nope" in out
    result = runner.invoke(app, ["train"])
    assert result.exit_code == 2


def test_altered_bundle_is_refused_and_nothing_is_lost(project: Path) -> None:
    models = run_json("models", "failure")
    digest = models[0]["bundle_digest"]
    path = project / ".planta" / "artifacts" / digest[:2] / digest[2:]
    original = path.read_bytes()
    os.chmod(path, 0o600)
    altered = bytearray(original)
    altered[len(altered) // 2] ^= 0xFF
    path.write_bytes(bytes(altered))
    try:
        out = run("score", "failure", "new.csv", "-o", "x.csv", "--version", "1", code=1)
        assert "damaged" in out and "sha256" in out
    finally:
        path.write_bytes(original)
    run("score", "failure", "new.csv", "-o", "x.csv", "--version", "1")


def test_tampered_audit_event_is_named(project: Path) -> None:
    db = project / ".planta" / "planta.db"
    con = sqlite3.connect(db)
    try:
        seq, payload = con.execute("SELECT seq, payload FROM audit_events WHERE action = 'promote'"
                                   " ORDER BY seq LIMIT 1").fetchone()
        con.execute("UPDATE audit_events SET payload = ? WHERE seq = ?",
                    (payload.replace("first model", "nobody approved"), seq))
        con.commit()
        out = run("audit", "verify", code=1)
        assert str(seq) in out and "promote" in out
    finally:
        con.execute("UPDATE audit_events SET payload = ? WHERE seq = ?", (payload, seq))
        con.commit()
        con.close()
    assert run_json("audit", "verify")["ok"] is True


def test_installed_command_help_is_fast_and_works() -> None:
    out = subprocess.run([PLANTA, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "demo" in out.stdout
